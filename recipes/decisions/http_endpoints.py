"""A domain whose inbound mail goes to an HTTPS API instead of a backend
(a domain shared instance of the relay cluster with ``http-endpoint``): what
an endpoint may be, what each relay node's delivery agent is given, and how
the API's answers become the LMTP replies Postfix acts on.

The protocol the API speaks (docs/http-api.md):

- each message is POSTed raw (``Content-Type: message/rfc822``), once per
  recipient, with ``Authorization: Bearer <http-token>``, the envelope in
  ``X-Envelope-From`` and ``X-Envelope-To`` (the original recipient) and
  ``Idempotency-Key``, the same at every attempt of the same delivery;
- a 2xx answer means delivered; 422 refuses the recipient for good (a
  bounce, 550 5.1.1), 413 the message (552 5.3.4); anything else, a
  timeout or a refused connection defers the message, which the node tries
  again with its back-off until the queue lifetime ends;
- with ``http-verify-recipients``, the node asks at RCPT (``GET`` the
  endpoint with ``?recipient=<address>``): 2xx known, 422 unknown (550
  5.1.1 during the SMTP dialogue), anything else 450 (try later).
"""
import ipaddress
import urllib.parse

from .relay_policy import normalise_fingerprint

# the keys of a domain shared instance that a relay node's delivery agent
# needs (http-token: a secret, through the parameters file only)
ENDPOINT_KEYS = ('http-endpoint', 'http-token', 'http-ca-certificate',
                 'http-fingerprints', 'http-timeout', 'http-concurrency',
                 'http-verify-recipients')
DELIVERED, REFUSED, DEFERRED = 'delivered', 'refused', 'deferred'
# the answers by which the API refuses for good: (LMTP reply code, enhanced
# status code, what it means)
PERMANENT = {422: (550, '5.1.1', 'recipient refused by the API'),
             413: (552, '5.3.4', 'message too big for the API')}


def is_endpoint(domain):
    """Whether a domain's parameters name an HTTPS API, not a backend."""
    return bool(domain.get('http-endpoint'))


def endpoint_error(url):
    """Why ``url`` cannot be a domain's ``http-endpoint``, or None: an
    ``https`` URL with a host; ``http`` only to a loopback address (a test
    API on the node itself); no login in it (the token is ``http-token``)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port      # raises on a port out of range
    except ValueError as e:
        return '%r is not a URL (%s)' % (url, e)
    if parts.scheme not in ('https', 'http') or not parts.hostname:
        return '%r is not an https URL with a host' % url
    if parts.username is not None or parts.password is not None:
        return ('%r carries a login: give the secret in http-token, not in '
                'the URL' % url)
    if parts.fragment:
        return '%r has a fragment (#...), which HTTP never sends' % url
    if parts.scheme == 'http' and not is_loopback(parts.hostname):
        return ('%r is plain http: the messages and the token would cross '
                'the network in clear; give an https URL (http is only '
                'accepted to a loopback address, for tests)' % url)
    return None


def is_loopback(host):
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return host == 'localhost'


def agent_domains(domains):
    """What a node's delivery agent reads (``{name: endpoint}``), from the
    node's ``mail-domains`` as its parameters file has them (tokens
    included): the endpoint domains alone."""
    found = {}
    for domain in domains:
        if not is_endpoint(domain):
            continue
        entry = {key: domain[key] for key in ENDPOINT_KEYS if key in domain}
        if 'http-fingerprints' in entry:
            entry['http-fingerprints'] = [normalise_fingerprint(f) for f in
                                          entry['http-fingerprints']]
        found[domain['name']] = entry
    return found


# -- the API's answers as LMTP replies -----------------------------------------
def answer_kind(status):
    """``DELIVERED``, ``REFUSED`` (for good) or ``DEFERRED`` for an HTTP
    status (None: no answer at all)."""
    if status is not None and 200 <= status < 300:
        return DELIVERED
    if status in PERMANENT:
        return REFUSED
    return DEFERRED


def describe(status, reason):
    """The endpoint's answer in words: ``401 Unauthorized``, or why there
    was none (``no answer within 30 s``)."""
    if status is None:
        return reason
    return ('%d %s' % (status, reason)).strip()


def delivery_reply(status, reason, endpoint):
    """The LMTP reply to the end of DATA for one recipient, after the POST
    to ``endpoint`` answered ``status`` (None: no answer, ``reason`` says
    why)."""
    what = describe(status, reason)
    kind = answer_kind(status)
    if kind == DELIVERED:
        return '250 2.0.0 delivered to %s (%s)' % (endpoint, what)
    if kind == REFUSED:
        code, enhanced, meaning = PERMANENT[status]
        return '%d %s %s: %s answered %s' % (code, enhanced, meaning,
                                              endpoint, what)
    if status is None:
        return '451 4.4.1 %s: %s: try again later' % (endpoint, what)
    return '451 4.4.0 %s answered %s: try again later' % (endpoint, what)


def verify_reply(status, reason, endpoint):
    """The LMTP reply to RCPT when the API verifies recipients."""
    what = describe(status, reason)
    if answer_kind(status) == DELIVERED:
        return '250 2.1.5 recipient known to %s' % endpoint
    if status == 422:
        return '550 5.1.1 recipient unknown to %s (%s)' % (endpoint, what)
    return '450 4.4.0 %s could not verify the recipient (%s): try again ' \
        'later' % (endpoint, what)


def idempotency_key(queue_id, node, recipient):
    """The same at every attempt of one delivery (one recipient of one
    message queued on one node)."""
    return '%s@%s/%s' % (queue_id or 'unknown', node, recipient)
