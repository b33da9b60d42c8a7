"""The Python package of the SlapOS mail bundle (distribution
``slapos.mailbundle``): its buildout recipes and the logic behind them.

One room per kind of code (``docs/flow.md`` follows a message and a
parameter through them):

  decisions/  what the bundle decides: plain data in, plain data out, no I/O
              (who owns an address or a domain, what is published, where
              mail goes, what a valid domain is)
  stores/     the files the bundle keeps, one module writing each (the
              account database, certificates, DKIM keys, greylisting
              triplets, the relay cluster's claims)
  clients/    what the bundle asks other servers (DNS, the SlapOS master)
  instance/   the buildout recipes of the instance profiles: options in,
              decisions and stores called, options out
  software/   what the software profiles run while they build (the
              optional Snappymail archive)
  programs/   what runs in a partition: the policy daemon (policies and
              milters), the spam filter, the password page and the mail
              clients' autoconfiguration (CGI), the password command, the
              scheduler, the backups, the log rotation's reopening, the
              clean start of Apache and PHP-FPM, the monitor (slapos.toolbox's
              feeds of the promises)
  promises/   the SlapOS promise plugins
"""
