"""Whether a domain may be relayed by a cluster (upstream's domain
verification): a domain shared instance is accepted only once its domain is
verified, so that a backend cannot take the mail of a domain that already
goes elsewhere.

A domain is verified when its MX points at one of the cluster's node
names (or its ``relay-domain``), when it does not exist, or when it has
neither an MX nor an address (nobody receives its mail yet). A domain that a
``proxy-map`` entry lists is exempt: the operator of the cluster vouched for
it. A lookup that fails leaves the domain unverified, with the reason, until
the next run asks again.

A verified domain stays verified: the claim it gets
(``recipes.decisions.claims``, kept by ``recipes.stores.relay_domains``) is
kept for as long as its shared instance asks for it, and only a domain that
is not claimed yet is looked up.
"""
from .dns import LookupFailed, names

# upstream's error text, which its users match on
UNVERIFIED = ('Your domain has not yet passed our domain verification:\n'
              'please set MX records pointing to this mail relay cluster')


def verify(domain, expected, lookup):
    """``(True, how)`` or ``(False, why)`` for ``domain``. ``expected``: the
    names its MX may point at; ``lookup(domain)``: ``{exists, mx: [target],
    address}`` or LookupFailed (``recipes.clients.resolver.domain_lookup``).
    """
    expected = names(expected)
    try:
        answer = lookup(domain)
    except LookupFailed as e:
        return False, ('%s could not be looked up: %s; it is tried again at '
                       'the next run' % (domain, e))
    if not answer['exists']:
        return True, '%s does not exist yet' % domain
    targets = names(answer['mx'])
    if targets & expected:
        return True, 'the MX of %s points at %s' % (
            domain, ', '.join(sorted(targets & expected)))
    if targets:
        return False, ('the MX of %s points at %s, not at this cluster '
                       '(%s)' % (domain, ', '.join(sorted(targets)),
                                 ', '.join(sorted(expected))))
    if answer['address']:
        return False, ('%s has an address and no MX: its mail goes to that '
                       'address; set an MX pointing at %s'
                       % (domain, ' or '.join(sorted(expected))))
    return True, '%s has neither an MX nor an address yet' % domain


def verified(asks, expected, exempt, lookup):
    """``(verified names, {name: why not})`` for the ``asks`` (names of
    domains not claimed yet), each looked up once; the ``exempt`` names
    (``proxy-map``'s) are verified without a lookup."""
    found, why_not = set(), {}
    for name in dict.fromkeys(asks):
        if name in exempt:
            found.add(name)
            continue
        ok, reason = verify(name, expected, lookup)
        if ok:
            found.add(name)
        else:
            why_not[name] = reason
    return found, why_not
