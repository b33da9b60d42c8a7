"""Who owns a name that several shared instances may ask for (an address on
a backend, a domain on a relay cluster): the first claim wins, for as long as
its shared instance exists and still asks for that name.

The claims are kept between runs (``{name: claimant}``), so that the order
in which the master lists the shared instances moves nothing: a claim made
earlier keeps its name even when a later claimant comes first in the list.
"""


def first_claims(asks, previous, claimable=lambda name: True):
    """``{name: claimant}`` for ``asks``, the ``(claimant, name)`` pairs in
    the master's order, given the ``previous`` claims: a previous claim is
    kept while its claimant still asks for that name; a free name that is
    ``claimable`` goes to the first claimant in ``asks``; the others get
    nothing."""
    asks = list(asks)
    asked = set(asks)
    claims = {name: claimant for name, claimant in previous.items()
              if (claimant, name) in asked}
    for claimant, name in asks:
        if name not in claims and claimable(name):
            claims[name] = claimant
    return claims
