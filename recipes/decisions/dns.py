"""The DNS records a hosted domain needs, and what its MX says of it.

A record is ``{"name", "type", "value"}``. ``domain_records`` gives those of
one domain relayed by a cluster: an MX to each node, each node's address,
SPF (the nodes and the smarthosts that send for it), each node's DKIM key,
DMARC.
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


def domain_records(domain, nodes, smarthosts):
    """The records ``domain`` needs. ``nodes``: ``[{fqdn, smtp-ipv6,
    dns-entries: {domain: [DKIM record]}}]``; ``smarthosts``: the hosts that
    send its mail."""
    records = [record(domain, 'MX', '10 %s.' % node['fqdn'])
               for node in nodes]
    records += [record(node['fqdn'], 'AAAA', node['smtp-ipv6'])
                for node in nodes if node.get('smtp-ipv6')]
    mechanisms = [spf_mechanism(n['smtp-ipv6']) for n in nodes
                  if n.get('smtp-ipv6')]
    mechanisms += [spf_mechanism(h) for h in smarthosts]
    records.append(record(domain, 'TXT', ' '.join(
        ['v=spf1'] + mechanisms + ['~all'])))
    for node in nodes:
        records.extend(node.get('dns-entries', {}).get(domain, ()))
    records.append(record('_dmarc.%s' % domain, 'TXT', DMARC_POLICY))
    return records


# -- what the MX of a domain says (cluster parameter check-mx) ----------------
class LookupFailed(Exception):
    """DNS could not answer (no resolver, a timeout, a server failure)."""


def mx_check(domain, expected, lookup):
    """What the domain's shared instance is told about its MX records:
    ``ok: ...``, ``warning: ...`` or ``could not be checked: ...``.
    ``expected`` are the names the MX may point at (the nodes' fqdns, the
    relay-domain); ``lookup(domain)`` returns the MX targets or raises
    LookupFailed. Never an error: the domain is accepted either way."""
    expected = sorted({e.lower().rstrip('.') for e in expected if e})
    try:
        targets = sorted({t.lower().rstrip('.') for t in lookup(domain)})
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
