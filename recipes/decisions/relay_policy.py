"""The outbound policy of a relay node (its submission port, at RCPT): the
client must be a backend, recognised as its domain shared instance says
(``authentication``: its IP address, its SASL login or its TLS client
certificate fingerprint), and the sender's domain must be one of the domains
it is recognised for; a recipient outside the relay's own domains is
taken only from a sender domain that a smarthost of the proxy-map sends
(upstream's rule: a domain no smarthost sends has its mail go to the
relay's domains only). ``recipes.programs.relay_policy`` serves it to
Postfix.

The other way, a backend known by its certificate (``fingerprint``) is
pinned by it when the node delivers its domains' mail (``backend_pins``:
the TLS policy of transport ``backend``), as upstream's relay does: a
server that took the backend's address does not get its mail."""
from .network import same_address


REJECT_STRANGER = ('REJECT 5.7.1 Relay access denied: authenticate as the '
                   'backend of your domain (IP address, SASL login or TLS '
                   'client certificate)')


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
                              domain.get('mail-server-host'))
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


def outbound_action(request, domains, sent_outside=None):
    """The policy answer for a recipient on the submission port.
    ``sent_outside``: the sender domains a smarthost sends outside (None:
    any)."""
    return sender_action(request, identified_domains(request, domains),
                         {d['name'] for d in domains}, sent_outside)


def sender_action(request, mine, hosted=(), sent_outside=None):
    """The policy answer for a client proven to own the domains ``mine``;
    ``hosted``: the relay's own domains, ``sent_outside`` as
    ``outbound_action``."""
    if not mine:
        return REJECT_STRANGER
    sender = request.get('sender', '')
    if not sender:
        return 'OK'  # a bounce from an authenticated backend
    domain = sender.rpartition('@')[2].lower()
    if domain not in mine:
        return ('REJECT 5.7.1 <%s>: Sender address rejected: domain %s is not '
                'one of your domains' % (sender, domain))
    recipient = request.get('recipient', '')
    if sent_outside is None or domain in sent_outside or not recipient or \
            recipient.rpartition('@')[2].lower() in hosted:
        return 'OK'
    return ('REJECT 5.7.1 <%s>: Recipient address rejected: the mail of %s '
            'goes to this relay\'s own domains only: no smarthost of its '
            'proxy-map sends it elsewhere' % (recipient, domain))


def backend_pins(domains):
    """``[(next hop, [fingerprints])]``: each backend (``[host]:port``) of
    the domains whose ``authentication`` is ``fingerprint``, with the
    fingerprints of all its domains (a backend of two domains is one next
    hop), sorted."""
    pins = {}
    for domain in domains:
        if domain.get('authentication') != 'fingerprint' or \
                not domain.get('fingerprints'):
            continue
        hop = '[%s]:%s' % (domain['mail-server-host'],
                           domain.get('mail-server-port', 25))
        known = pins.setdefault(hop, [])
        known += [f for f in domain['fingerprints'] if f not in known]
    return sorted(pins.items())
