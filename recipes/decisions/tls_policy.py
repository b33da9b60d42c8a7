"""Which certificate a relay node's Postfix accepts from the servers it
delivers to (``smtp_tls_policy_maps``, one line per next hop), so that an
attacker on the path cannot stand in for one with a certificate of its own:

- a domain's backend: the certificate whose fingerprint the backend
  published in its domain's order (``fingerprints``: its current and its
  next certificate), Postfix's ``fingerprint`` level. A domain ordered
  without fingerprints (``authentication`` none or password) has no line:
  its backend gets the transport's ``encrypt``.
- a smarthost of ``proxy-map`` (``smarthost_policy``): by default a
  certificate of a CA the system trusts, for the name ``host`` (Postfix's
  ``secure`` level); its ``tls`` key changes that: ``ca`` (PEM: only the
  CAs given, instead of the system's), ``fingerprints`` (only the
  certificates given, whoever signed them), ``name`` (the name the
  certificate must show, when ``host`` is an address or another name).
  A smarthost named by an address of a private network (loopback, RFC 1918,
  IPv6 unique local, link-local) and given no ``tls`` gets Postfix's
  ``encrypt``: TLS required, its certificate not verified
  (``unverified``). No public CA certifies such an address, the server
  is on the operator's own network, and upstream's relay sends to it so,
  as its requests and tests expect; the cluster publishes a warning for
  each (``warnings``). A public address or a name is always verified.
"""
import ipaddress

from .relay_policy import normalise_fingerprint
from .smarthosts import nexthop


def fingerprint_match(fingerprints):
    """Postfix's ``match=`` of a ``fingerprint`` policy (colon-separated
    pairs of hex digits, alternatives separated by ``|``)."""
    found = []
    for fingerprint in fingerprints:
        digits = normalise_fingerprint(fingerprint)
        pairs = ':'.join(digits[i:i + 2] for i in range(0, len(digits), 2))
        if pairs not in found:
            found.append(pairs)
    return '|'.join(found)


def backend_policies(domains):
    """``{[host]:port: policy}`` of the backends of a node's accepted
    ``domains`` (their shared instances' parameters) that published their
    fingerprints; two domains of one backend share its line."""
    fingerprints = {}
    for domain in domains:
        if not domain.get('fingerprints'):
            continue
        hop = nexthop(domain['mail-server-host'],
                      domain.get('mail-server-port', 10025))
        fingerprints.setdefault(hop, []).extend(domain['fingerprints'])
    return {hop: 'fingerprint match=%s' % fingerprint_match(found)
            for hop, found in fingerprints.items()}


def unverified(smarthost):
    """Whether a smarthost of ``proxy-map`` is sent to without verifying
    its certificate: named by a private address, without ``tls``."""
    if smarthost.get('tls'):
        return False
    try:
        address = ipaddress.ip_address(smarthost['host'])
    except ValueError:
        return False
    return address.is_private or address.is_link_local


def warnings(proxy_map):
    """What the cluster publishes about the smarthosts of ``proxy-map``
    whose certificate is not verified, one string each."""
    return ["proxy-map entry '%s' is reached by the private address %s "
            "without tls: its certificate is not verified (TLS is required); "
            "give it tls.ca or tls.fingerprints to verify it" % (
                name, smarthost['host'])
            for name, smarthost in sorted(proxy_map.items())
            if unverified(smarthost)]


def smarthost_policy(smarthost, ca_file=None):
    """The policy of one smarthost of ``proxy-map``; ``ca_file``: where its
    ``tls.ca`` is written."""
    if unverified(smarthost):
        return 'encrypt'
    tls = smarthost.get('tls', {})
    if tls.get('fingerprints'):
        return 'fingerprint match=%s' % fingerprint_match(tls['fingerprints'])
    policy = 'secure match=%s' % (tls.get('name') or smarthost['host'])
    if tls.get('ca'):
        policy += ' tafile=%s' % ca_file
    return policy


def relay_policy_map(domains, proxy_map, ca_files):
    """The text of a node's ``smtp_tls_policy_maps``: its backends, then its
    smarthosts (``ca_files % name``: the file of smarthost ``name``'s
    CA)."""
    policies = backend_policies(domains)
    for name, smarthost in sorted(proxy_map.items()):
        hop = nexthop(smarthost['host'], smarthost.get('port', 25))
        policies.setdefault(hop, smarthost_policy(smarthost,
                                                  ca_files % name))
    lines = ['# [host]:port -> the certificate it must show '
             '(recipes/decisions/tls_policy.py)']
    lines.extend('%s %s' % item for item in sorted(policies.items()))
    return '\n'.join(lines) + '\n'
