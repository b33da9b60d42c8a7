"""Postfix policy service of a relay node (SMTPD_POLICY_README), run by
spawn(8) per smtpd process, talking on its standard input and output:

  python -m recipes.relay_policy outbound CONFIG.json

``outbound`` (submission port, at RCPT): the client must be a backend,
recognised as its domain shared instance says (``authentication``: its IP
address, its SASL login or its TLS client certificate fingerprint), and the
sender's domain must be one of the domains it is recognised for.

CONFIG.json: ``{"domains": [{"name", "authentication", "mail-server-host",
"outbound-user", "fingerprints"}]}`` (the node's ``mail-domains``).
"""
import ipaddress
import json
import sys

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
    else:
        raise SystemExit('unknown policy %r: outbound' % mode)


if __name__ == '__main__':
    main()
