"""Postfix policy services of a relay node (SMTPD_POLICY_README), run by
spawn(8) per smtpd process, talking on its standard input and output:

  python -m recipes.relay_policy outbound CONFIG.json
  python -m recipes.relay_policy inbound CONFIG.json

``inbound`` (SMTP port, at RCPT): SPF of the sender (``recipes.spf_check``:
refused on ``fail`` only, a ``Received-SPF`` header otherwise), then
greylisting (``recipes.greylisting``: a first attempt is deferred with
``DEFER_IF_PERMIT 4.7.1``, so that a recipient refused for another reason
is still refused at once). Clients that are the node itself (its addresses,
loopback) or a backend of the cluster skip both, as Postfix's own
``mynetworks`` would; whitelisted clients and recipients skip greylisting.

CONFIG.json of ``inbound``: ``{"greylisting": {enable, greylisting-delay,
whitelist-clients, whitelist-recipients}, "spf": {enable, nameservers,
timeout}, "trusted-clients": [address or network], "node-addresses":
[address], "database": path, "log-file": path, "receiver": the node's
name}``.

``outbound`` (submission port, at RCPT): the client must be a backend,
recognised as its domain shared instance says (``authentication``: its IP
address, its SASL login or its TLS client certificate fingerprint), and the
sender's domain must be one of the domains it is recognised for.

CONFIG.json of ``outbound``: ``{"domains": [{"name", "authentication",
"mail-server-host", "outbound-user", "fingerprints"}]}`` (the node's
``mail-domains``).
"""
import functools
import ipaddress
import json
import sys
import time

from . import greylisting
from .spf_check import spf_action

REJECT_STRANGER = ('REJECT 5.7.1 Relay access denied: authenticate as the '
                   'backend of your domain (IP address, SASL login or TLS '
                   'client certificate)')


def same_address(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def normalise_fingerprint(fingerprint):
    return fingerprint.replace(':', '').upper()


def identified_domains(request, domains):
    """The names of the domains whose backend the client proves to be."""
    found = set()
    fingerprint = normalise_fingerprint(request.get('ccert_fingerprint', ''))
    for domain in domains:
        method = domain.get('authentication', 'none')
        if method == 'none':
            ok = same_address(request.get('client_address', ''),
                              domain['mail-server-host'])
        elif method == 'password':
            ok = bool(request.get('sasl_username')) and \
                request['sasl_username'] == domain.get('outbound-user')
        elif method == 'fingerprint':
            ok = bool(fingerprint) and fingerprint in {
                normalise_fingerprint(f) for f in domain.get('fingerprints', ())}
        else:
            ok = False
        if ok:
            found.add(domain['name'])
    return found


def outbound_action(request, domains):
    """The policy answer for a recipient on the submission port."""
    mine = identified_domains(request, domains)
    if not mine:
        return REJECT_STRANGER
    sender = request.get('sender', '')
    if not sender:
        return 'OK'  # a bounce from an authenticated backend
    domain = sender.rpartition('@')[2].lower()
    if domain in mine:
        return 'OK'
    return ('REJECT 5.7.1 <%s>: Sender address rejected: domain %s is not '
            'one of your domains' % (sender, domain))


class Inbound:
    """The ``inbound`` policy: one per policy process, keeping its database
    connection, SPF resolver and log open across requests."""

    def __init__(self, config):
        self.config = config
        self.grey = config.get('greylisting', {})
        self.trusted = list(config.get('trusted-clients', ())) + list(
            config.get('node-addresses', ()))
        self.log_file = config.get('log-file')
        self.headers_for = None      # the message (instance) given its header
        self.spf_checked = (None, None)  # (message and sender, result)

    # Opened at the first client that is not trusted: the backends and the
    # node's own addresses (most of a busy relay's connections, every one
    # of the benchmark's) never pay for the SPF resolver's imports nor the
    # database (a policy process lives as long as its smtpd process).
    @functools.cached_property
    def greylist(self):
        if not self.grey.get('enable', True):
            return None
        return greylisting.Greylist(
            self.config['database'],
            int(self.grey.get('greylisting-delay', 60)))

    @functools.cached_property
    def spf(self):
        spf = self.config.get('spf', {})
        if not spf.get('enable', True):
            return None
        from .spf_check import Checker
        return Checker(spf.get('nameservers', ()), int(spf.get('timeout', 10)),
                       self.config.get('receiver', ''))

    def log(self, request, what):
        if not self.log_file:
            return
        line = '%s inbound client=[%s] from=<%s> to=<%s>: %s\n' % (
            time.strftime('%Y-%m-%dT%H:%M:%S'), request.get('client_address'),
            request.get('sender', ''), request.get('recipient', ''), what)
        try:
            with open(self.log_file, 'a') as f:
                f.write(line)
        except OSError:
            pass

    def __call__(self, request):
        try:
            return self.decide(request)
        except Exception as e:   # a policy that breaks must not refuse mail
            self.log(request, 'policy error, mail let through: %r' % e)
            return 'DUNNO'

    def decide(self, request):
        client = request.get('client_address', '')
        if greylisting.whitelisted_client(self.trusted, client):
            return 'DUNNO'
        sender = request.get('sender', '')
        recipient = request.get('recipient', '')
        header = None
        if self.spf is not None:
            # once per message, whatever its number of recipients
            key = (request.get('instance'), client, sender,
                   request.get('helo_name', ''))
            if self.spf_checked[0] != key:
                self.spf_checked = (key, self.spf.check(*key[1:]))
            result, explanation, header = self.spf_checked[1]
            refusal = spf_action(result, explanation, sender)
            if refusal:
                self.log(request, 'SPF %s, refused' % result)
                return refusal
        if self.greylist is not None and not (
                greylisting.whitelisted_client(
                    self.grey.get('whitelist-clients', ()), client,
                    request.get('client_name', ''))
                or greylisting.whitelisted_recipient(
                    self.grey.get('whitelist-recipients', ()), recipient)):
            wait = self.greylist.check(client, sender, recipient)
            if wait:
                self.log(request, 'greylisted, retry in %d s' % wait)
                return ('DEFER_IF_PERMIT 4.7.1 Greylisted, retry in %d '
                        'seconds' % wait)
        instance = request.get('instance')
        if header and instance != self.headers_for:
            # one header per message, not one per recipient
            self.headers_for = instance
            return 'PREPEND Received-SPF: %s' % header
        return 'DUNNO'


def serve(decide, stdin=sys.stdin, stdout=sys.stdout):
    """Answer each request (``name=value`` lines, then an empty line)."""
    request = {}
    for line in stdin:
        line = line.rstrip('\n')
        if line:
            name, _, value = line.partition('=')
            request[name] = value
            continue
        stdout.write('action=%s\n\n' % decide(request))
        stdout.flush()
        request = {}


def main(argv=None):
    mode, config_path = (argv or sys.argv[1:])[:2]
    with open(config_path) as f:
        config = json.load(f)
    if mode == 'outbound':
        serve(lambda request: outbound_action(request, config['domains']))
    elif mode == 'inbound':
        serve(Inbound(config))
    else:
        raise SystemExit('unknown policy %r: inbound or outbound' % mode)


if __name__ == '__main__':
    main()
