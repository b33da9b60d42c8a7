"""The DNS records a hosted domain needs, what its MX says of it, and the
resolvers a relay asks.

A record is ``{"name", "type", "value"}``. ``domain_records`` gives those of
one domain relayed by a cluster: an MX to each node, each node's address,
SPF (the nodes and the smarthosts that send for it), each node's DKIM key,
DMARC. ``zone_text`` writes records as the lines of a zone file (upstream's
``dns-entries``).

A resolver (the relay configuration's ``nameservers``) is an IP address,
or ``[address]:port`` (``address:port`` for IPv4) for one on another port.
"""
import hashlib
import ipaddress

DMARC_POLICY = 'v=DMARC1; p=quarantine; adkim=r; aspf=r'


def record(name, type_, value):
    return {'name': name, 'type': type_, 'value': value}


def spf_mechanism(host):
    """``ip6:``/``ip4:`` for an address, ``include:`` for a host name."""
    try:
        address = ipaddress.ip_address(host.strip('[]'))
    except ValueError:
        return 'include:%s' % host
    return 'ip%d:%s' % (address.version, address)


def dkim_selector(fqdn):
    """A DNS label naming a node's DKIM keys: its fqdn with dashes for dots
    (shortened with a digest past 63 characters), so that every node of a
    cluster signs with its own key."""
    label = fqdn.lower().rstrip('.').replace('.', '-')
    if len(label) > 63:
        label = label[:54] + '-' + hashlib.sha256(label.encode()).hexdigest()[:8]
    return label


def dkim_record(selector, domain, public_key):
    return record('%s._domainkey.%s' % (selector, domain), 'TXT',
                  'v=DKIM1; k=rsa; p=%s' % public_key)


def mx_records(domain, fqdns):
    """The MX record of ``domain`` to each of ``fqdns``, all of preference
    10 (upstream's)."""
    return [record(domain, 'MX', '10 %s.' % fqdn) for fqdn in fqdns]


def domain_records(domain, nodes, smarthosts):
    """The records ``domain`` needs. ``nodes``: ``[{fqdn, smtp-ipv6,
    dns-records: [record]}]`` (each node's DKIM records, of every domain;
    a node without fqdn gets no MX nor AAAA record: nothing names it);
    ``smarthosts``: the hosts that send its mail."""
    records = mx_records(domain, [node['fqdn'] for node in nodes
                                  if node.get('fqdn')])
    records += [record(node['fqdn'], 'AAAA', node['smtp-ipv6'])
                for node in nodes if node.get('smtp-ipv6') and node.get('fqdn')]
    mechanisms = [spf_mechanism(n['smtp-ipv6']) for n in nodes
                  if n.get('smtp-ipv6')]
    mechanisms += [spf_mechanism(h) for h in smarthosts]
    records.append(record(domain, 'TXT', ' '.join(
        ['v=spf1'] + mechanisms + ['~all'])))
    for node in nodes:
        records.extend(dkim_records_of(domain, node.get('dns-records', ())))
    records.append(record('_dmarc.%s' % domain, 'TXT', DMARC_POLICY))
    return records


def dkim_records_of(domain, records):
    """The DKIM key records of ``domain`` among ``records``."""
    return [r for r in records if r['type'] == 'TXT'
            and r['name'].endswith('._domainkey.' + domain)]


# TXT strings are at most 255 bytes: a longer value (a DKIM key) is split
TXT_CHUNK = 255


def zone_text(records):
    """``records`` as zone file lines, ``name. TYPE value``, one a line
    (absolute names; TXT values quoted, split in strings of 255)."""
    lines = []
    for r in records:
        value = r['value']
        if r['type'] == 'TXT':
            value = ' '.join('"%s"' % value[i:i + TXT_CHUNK].replace(
                '\\', '\\\\').replace('"', '\\"')
                for i in range(0, len(value), TXT_CHUNK))
        lines.append('%s. %s %s' % (r['name'].rstrip('.'), r['type'], value))
    return '\n'.join(lines)


# -- the resolvers a relay asks (relay configuration nameservers) --------------
def parse_nameserver(text):
    """``(address, port)`` of ``2001:db8::53``, ``192.0.2.53``,
    ``[2001:db8::53]:5353`` or ``192.0.2.53:5353``; ValueError otherwise."""
    text = text.strip()
    if text.startswith('['):
        address, _, port = text[1:].partition(']')
        port = port.lstrip(':')
    elif text.count(':') == 1:
        address, _, port = text.partition(':')
    else:
        address, port = text, ''
    ipaddress.ip_address(address)        # ValueError when it is not one
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError('%r is not a port' % port)
    return address, int(port or 53)


def resolvers(config):
    """The resolvers a relay configuration (or a backend's parameters)
    names: its ``nameservers``, else ``spf.nameservers``, where
    interface.md first put them; [] for the system's resolver."""
    return list(config.get('nameservers')
                or (config.get('spf') or {}).get('nameservers') or ())


def nameserver_error(text):
    """Why ``text`` is not a resolver the relay can ask, or None."""
    try:
        parse_nameserver(text)
    except ValueError:
        return ('is not a resolver: give an IP address, or [address]:port '
                '(for example 192.0.2.53, 2001:db8::53 or '
                '[2001:db8::53]:5353)')
    return None


# -- what the MX of a domain says (cluster parameter check-mx) ----------------
class LookupFailed(Exception):
    """DNS could not answer (no resolver, a timeout, a server failure)."""


def names(hosts):
    """Host names as DNS compares them: lower-case, no final dot."""
    return {h.lower().rstrip('.') for h in hosts if h}


def mx_check(domain, expected, lookup):
    """What the domain's shared instance is told about its MX records:
    ``ok: ...``, ``warning: ...`` or ``could not be checked: ...``.
    ``expected`` are the names the MX may point at (the nodes' fqdns, the
    relay-domain); ``lookup(domain)`` returns ``{mx: [target], ...}``
    (``recipes.clients.resolver.domain_lookup``) or raises LookupFailed.
    Never an error: the domain is accepted either way."""
    expected = sorted(names(expected))
    try:
        targets = sorted(names(lookup(domain)['mx']))
    except LookupFailed as e:
        return 'could not be checked: %s' % e
    if not targets:
        return ('warning: %s has no MX record: add one pointing at %s'
                % (domain, ' or '.join(expected)))
    strangers = [t for t in targets if t not in expected]
    if strangers:
        return ('warning: the MX of %s points at %s, not at this cluster '
                '(%s): its inbound mail does not come through the relay'
                % (domain, ', '.join(strangers), ', '.join(expected)))
    return 'ok: the MX of %s points at %s' % (domain, ', '.join(targets))
