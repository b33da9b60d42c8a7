"""Greylisting of a relay node's inbound mail: what counts as the same
sender (``client_network``) and who skips it (the ``whitelist-clients`` and
``whitelist-recipients`` of the relay configuration). The triplets
themselves are kept by ``recipes.stores.greylist``.

The first attempt of a triplet (client network, sender, recipient) is
deferred with a temporary error; a retry once the delay has passed is let
through, and so is every later one while the triplet keeps being seen. A
real mail server retries; most spam engines do not.

- client network: the client's IPv4 /24 or IPv6 /64, so that a sender
  retrying from another address of the same farm is not greylisted again;
- sender and recipient: the envelope addresses, lower-cased (the null
  sender of a bounce counts as the empty address).
"""
import functools
import ipaddress

from .network import ip_address, network_of


def triplet(client_address, sender, recipient):
    """The key a message's attempts are counted under."""
    return '%s/%s/%s' % (client_network(client_address),
                         (sender or '').lower(), (recipient or '').lower())


def client_network(address):
    """The network a client address counts as: /24 for IPv4, /64 for IPv6
    (an IPv4-mapped IPv6 address counts as its IPv4)."""
    network = network_of(address, 24, 64)
    return address.lower() if network is None else str(network)


def whitelisted_client(entries, client_address, client_name=''):
    """Whether the client matches an entry of ``whitelist-clients``:

    - an IP address (``192.0.2.7``, ``2001:db8::7``): that address;
    - a network in CIDR notation (``192.0.2.0/24``, ``2001:db8::/32``): any
      address in it;
    - anything else is a host name: the client's name as Postfix verified it
      (``client_name``: its reverse name, confirmed by a forward lookup;
      never the HELO name, which the client chooses) is that name or ends
      with ``.`` + that name (``example.net`` matches ``mx1.example.net``).
    """
    address = ip_address(client_address)
    name = (client_name or '').lower().rstrip('.')
    if name == 'unknown':
        name = ''
    networks, addresses, names = client_entries(tuple(entries))
    if address is not None and (address in addresses or any(
            address.version == n.version and address in n for n in networks)):
        return True
    return bool(name) and any(name == entry or name.endswith('.' + entry)
                              for entry in names)


@functools.lru_cache(maxsize=64)
def client_entries(entries):
    """``(networks, addresses, host names)`` of the ``whitelist-clients``
    entries (a tuple), parsed once for every request that asks (the policy
    asks at each message); an entry that is neither is a name."""
    networks, addresses, names = [], set(), []
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            continue
        if '/' in entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                pass
            continue
        ip = ip_address(entry)
        if ip is not None:
            addresses.add(ip)
        else:
            names.append(entry.lstrip('.').rstrip('.'))
    return tuple(networks), frozenset(addresses), tuple(names)


def whitelisted_recipient(entries, recipient):
    """Whether the recipient matches an entry of ``whitelist-recipients``:
    an address (``postmaster@example.com``) matches that address; a domain
    (``example.com``, or ``@example.com``) matches every address of that
    domain. Case does not matter."""
    recipient = (recipient or '').lower()
    domain = recipient.rpartition('@')[2]
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            continue
        if '@' in entry.lstrip('@'):
            if entry == recipient:
                return True
        elif entry.lstrip('@') == domain:
            return True
    return False
