"""Postfix policy services of a relay node (SMTPD_POLICY_README): one
daemon per node, run by the partition's supervisor, answering on a unix
socket per policy (``check_policy_service unix:SOCKET`` in main.cf):

  python -m recipes.programs.relay_policy outbound SOCKET CONFIG.json \\
      [inbound SOCKET CONFIG.json]

Each connection (an smtpd process keeps its own, for many requests) is
served by a thread of its own; each policy reads its CONFIG.json again when
the file changes (one stat per request), so that a new domain takes effect
at once and no request is lost to a restart.

``inbound`` (SMTP port, at RCPT): SPF of the sender (``recipes.decisions.spf``:
refused on ``fail`` only, a ``Received-SPF`` header otherwise), then
greylisting (``recipes.decisions.greylisting``: a first attempt is deferred with
``DEFER_IF_PERMIT 4.7.1``, so that a recipient refused for another reason
is still refused at once). Clients that are the node itself (its addresses,
loopback) or a backend of the cluster skip both, as Postfix's own
``mynetworks`` would; whitelisted clients and recipients skip greylisting.

CONFIG.json of ``inbound``: ``{"greylisting": {enable, greylisting-delay,
whitelist-clients, whitelist-recipients}, "spf": {enable, timeout},
"nameservers": [resolver] (the system's when empty), "trusted-clients":
[address or network], "node-addresses": [address], "database": path,
"log-file": path, "receiver": the node's name}``.

``outbound`` (submission port, at RCPT): the client must be a backend,
recognised as its domain shared instance says (``authentication``: its IP
address, its SASL login or its TLS client certificate fingerprint), and the
sender's domain must be one of the domains it is recognised for.

CONFIG.json of ``outbound``: ``{"domains": [{"name", "authentication",
"mail-server-host", "outbound-user", "fingerprints"}]}`` (the node's
``mail-domains``).

When the daemon is down, Postfix answers 4xx
(``smtpd_policy_service_default_action``): the mail is deferred, neither
lost nor let through unchecked.
"""
import json
import os
import socketserver
import stat
import sys
import threading
import time

from ..clients.resolver import SPFChecker
from ..decisions import greylisting
from ..decisions.relay_policy import outbound_action
from ..decisions.spf import spf_action
from ..stores.greylist import Greylist

class InboundChecks:
    """What the ``inbound`` policy of one configuration shares between the
    connections (threads) of the daemon: the SPF resolver, the greylisting
    database and the log file."""

    def __init__(self, config):
        self.config = config
        self.grey = config['greylisting']
        self.trusted = list(config.get('trusted-clients', ())) + list(
            config.get('node-addresses', ()))
        self.log_file = config.get('log-file')
        self.lock = threading.Lock()
        self.opened = {}

    def _once(self, name, open_it):
        if name not in self.opened:
            with self.lock:
                if name not in self.opened:
                    self.opened[name] = open_it()
        return self.opened[name]

    # Opened at the first client that is not trusted: the backends and the
    # node's own addresses (most of a busy relay's connections, every one
    # of the benchmark's) never pay for the SPF resolver's imports nor the
    # database.
    @property
    def greylist(self):
        """The ``greylisting.Greylist`` (safe across threads), or None."""
        return self._once('greylist', self._open_greylist)

    def _open_greylist(self):
        if not self.grey['enable']:
            return None
        return Greylist(self.config['database'],
                        int(self.grey['greylisting-delay']))

    @property
    def spf(self):
        """The ``SPFChecker`` (each check a query of its own, safe across
        threads), or None."""
        return self._once('spf', self._open_spf)

    def _open_spf(self):
        spf = self.config['spf']
        if not spf['enable']:
            return None
        return SPFChecker(self.config.get('nameservers', ()),
                          int(spf['timeout']),
                          self.config.get('receiver', ''))

    def log(self, request, what):
        if not self.log_file:
            return
        line = '%s inbound client=[%s] from=<%s> to=<%s>: %s\n' % (
            time.strftime('%Y-%m-%dT%H:%M:%S'), request.get('client_address'),
            request.get('sender', ''), request.get('recipient', ''), what)
        try:
            with self.lock, open(self.log_file, 'a', encoding='utf-8',
                                 errors='backslashreplace') as f:
                f.write(line)
        except OSError:
            pass


class Inbound:
    """The ``inbound`` policy of one connection: ``checks()`` gives the
    shared ``InboundChecks`` of the configuration in force; what this
    connection's messages were given (their SPF result, their header) stays
    here."""

    def __init__(self, checks):
        self.checks = checks
        self.headers_for = None      # the message (instance) given its header
        self.spf_checked = (None, None)  # (message and sender, result)

    def __call__(self, request):
        checks = self.checks()
        try:
            return self.decide(checks, request)
        except Exception as e:   # a policy that breaks must not refuse mail
            checks.log(request, 'policy error, mail let through: %r' % e)
            return 'DUNNO'

    def decide(self, checks, request):
        client = request.get('client_address', '')
        if greylisting.whitelisted_client(checks.trusted, client):
            return 'DUNNO'
        sender = request.get('sender', '')
        recipient = request.get('recipient', '')
        header = None
        if checks.spf is not None:
            # once per message, whatever its number of recipients
            key = (request.get('instance'), client, sender,
                   request.get('helo_name', ''))
            if self.spf_checked[0] != key:
                self.spf_checked = (key, checks.spf.check(*key[1:]))
            result, explanation, header = self.spf_checked[1]
            refusal = spf_action(result, explanation, sender)
            if refusal:
                checks.log(request, 'SPF %s, refused' % result)
                return refusal
        grey = checks.grey
        if checks.greylist is not None and not (
                greylisting.whitelisted_client(
                    grey.get('whitelist-clients', ()), client,
                    request.get('client_name', ''))
                or greylisting.whitelisted_recipient(
                    grey.get('whitelist-recipients', ()), recipient)):
            wait = checks.greylist.check(client, sender, recipient)
            if wait:
                checks.log(request, 'greylisted, retry in %d s' % wait)
                return ('DEFER_IF_PERMIT 4.7.1 Greylisted, retry in %d '
                        'seconds' % wait)
        instance = request.get('instance')
        if header and instance != self.headers_for:
            # one header per message, not one per recipient
            self.headers_for = instance
            return 'PREPEND Received-SPF: %s' % header
        return 'DUNNO'


def serve(decide, rfile, wfile):
    """Answer each request (``name=value`` lines, then an empty line) read
    from ``rfile`` with ``action=decide(request)`` on ``wfile``."""
    request = {}
    for line in rfile:
        line = line.rstrip('\n')
        if line:
            name, _, value = line.partition('=')
            request[name] = value
            continue
        wfile.write('action=%s\n\n' % decide(request))
        wfile.flush()
        request = {}


class ConfigFile:
    """``make(the JSON of path)``, made again when the file changes (a
    stat per call). A file that cannot be read or parsed (being written)
    leaves the previous one in force until it changes again."""

    def __init__(self, path, make):
        self.path = path
        self.make = make
        self.lock = threading.Lock()
        self.stamp = None
        stamp = self.current_stamp()
        self.value = self.make(self.read())   # the daemon fails at start
        self.stamp = stamp

    def current_stamp(self):
        try:
            s = os.stat(self.path)
        except OSError:
            return self.stamp
        return (s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)

    def read(self):
        with open(self.path) as f:
            return json.load(f)

    def __call__(self):
        stamp = self.current_stamp()
        if stamp != self.stamp:
            with self.lock:
                if stamp != self.stamp:
                    try:
                        self.value = self.make(self.read())
                        print('%s: read again' % self.path, file=sys.stderr)
                    except Exception as e:
                        print('%s: kept the previous configuration: %s' % (
                            self.path, e), file=sys.stderr)
                    self.stamp = stamp
        return self.value


class PolicyConnection(socketserver.BaseRequestHandler):
    """One smtpd's connection: ``serve`` over the socket, with a policy of
    its own (``server.new_policy()``)."""

    def handle(self):
        policy = self.server.new_policy()
        try:
            with self.request.makefile('r', encoding='utf-8',
                                       errors='surrogateescape',
                                       newline='\n') as rfile, \
                    self.request.makefile('w', encoding='utf-8',
                                          errors='surrogateescape',
                                          newline='\n') as wfile:
                serve(policy, rfile, wfile)
        except OSError:       # smtpd went away (killed, or its time is up)
            pass


class PolicyServer(socketserver.ThreadingUnixStreamServer):
    """A policy on the unix socket ``path``, readable by the partition's
    user only; ``new_policy()`` gives each connection its policy."""

    daemon_threads = True
    request_queue_size = 128    # a burst of smtpd processes connecting

    def __init__(self, path, new_policy):
        self.new_policy = new_policy
        # a socket left by a daemon that was killed would stop the bind
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
        super().__init__(path, PolicyConnection)

    def server_bind(self):
        umask = os.umask(0o177)
        try:
            super().server_bind()
        finally:
            os.umask(umask)


def outbound_policy(config_path):
    """``new_policy`` of the outbound socket: one for every connection (it
    keeps nothing between requests)."""
    domains = ConfigFile(config_path, lambda config: config['domains'])

    def decide(request):
        return outbound_action(request, domains())
    return lambda: decide


def inbound_policy(config_path):
    """``new_policy`` of the inbound socket: one ``Inbound`` per
    connection."""
    checks = ConfigFile(config_path, InboundChecks)
    return lambda: Inbound(checks)


POLICIES = {'outbound': outbound_policy, 'inbound': inbound_policy}


def servers(argv):
    """The ``PolicyServer`` of each ``MODE SOCKET CONFIG`` of ``argv``."""
    if not argv or len(argv) % 3:
        raise SystemExit('usage: python -m recipes.programs.relay_policy MODE SOCKET '
                         'CONFIG.json [MODE SOCKET CONFIG.json]... (MODE: %s)'
                         % ' or '.join(POLICIES))
    found = []
    for i in range(0, len(argv), 3):
        mode, path, config_path = argv[i:i + 3]
        if mode not in POLICIES:
            raise SystemExit('unknown policy %r: %s' % (
                mode, ' or '.join(POLICIES)))
        found.append(PolicyServer(path, POLICIES[mode](config_path)))
    return found


def main(argv=None):
    listening = servers(sys.argv[1:] if argv is None else argv)
    for server in listening[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print('policies on %s' % ', '.join(s.server_address for s in listening),
          file=sys.stderr, flush=True)
    listening[0].serve_forever()


if __name__ == '__main__':
    main()
