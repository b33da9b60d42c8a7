"""Addresses: which client is which, and where a relay node listens."""
import ipaddress


def ip_address(value):
    """The IP address ``value`` (an IPv4-mapped IPv6 address as its IPv4,
    as Postfix may report a client), or None when it is not one."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def network_of(address, ipv4_prefix, ipv6_prefix):
    """The network of ``address`` (``192.0.2.0/24``) with the prefix of its
    version, or None when it is not an address."""
    ip = ip_address(address)
    if ip is None:
        return None
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return ipaddress.ip_network('%s/%d' % (ip, prefix), strict=False)


def same_address(a, b):
    first = ip_address(a)
    return first is not None and first == ip_address(b)


def inbound_ipv4(address):
    """The partition's IPv4 address when inbound mail may listen on it: an
    address of the node's own (public or private), not loopback nor
    unspecified. On a node whose partitions all share a loopback IPv4 (an
    embedded SlapOS, a test machine) binding it would take the port from
    every other partition, so inbound stays on the partition's IPv6 alone.
    Returns '' when it must not be used."""
    try:
        ip = ipaddress.ip_address((address or '').strip())
    except ValueError:
        return ''
    if ip.version != 4 or ip.is_loopback or ip.is_unspecified \
            or ip.is_link_local or ip.is_multicast:
        return ''
    return str(ip)


def address_error(text):
    """Why ``text`` is not one IPv6 or IPv4 address, or None."""
    if not text:
        return 'is missing'
    if ip_address(text) is None:
        return '%r is not an IP address' % text
    return None


def networks(entries):
    """Each address or network of ``entries`` as a network in CIDR notation
    (an address as its /32 or /128), without repeats nor empty entries:
    whom a partition trusts as itself."""
    found = []
    for entry in entries:
        entry = (entry or '').strip().strip('[]')
        if not entry:
            continue
        network = str(ipaddress.ip_network(entry, strict=False))
        if network not in found:
            found.append(network)
    return found


def postfix_networks(entries):
    """``networks(entries)`` in the syntax of Postfix's network lists
    (``mynetworks``): an IPv6 network in brackets, ``[fd00::2]/128``."""
    return ' '.join(
        '[%s]/%s' % tuple(n.split('/')) if ':' in n else n
        for n in networks(entries))


INTERNAL_PORT_OFFSET = 20000


def internal_port(port):
    """Where a daemon behind the partition's connection limiter (HAProxy)
    listens for what the limiter lets through on ``port``: 20000 above it
    (below it, for a port above 45535), on the partition's address."""
    port = int(port)
    if port + INTERNAL_PORT_OFFSET <= 65535:
        return port + INTERNAL_PORT_OFFSET
    return port - INTERNAL_PORT_OFFSET
