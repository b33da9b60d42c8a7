"""Which backend each domain of a relay cluster goes to, and what each
domain's shared instance and each relay node get.

A domain is ordered as a shared instance of the cluster. It belongs to the
shared instance that claimed it first, for as long as that shared instance
exists (the claims are kept in a state file, so that the order does not
depend on the order the master lists the shared instances in); every other
claimant gets an error, published to it only. So does a shared instance
whose name is not a domain name, whose backend host is missing, or whose
domain is listed under two smarthosts of a node's ``proxy-map``.

Everything here works on plain data; ``recipes.relay_cluster`` is the
buildout adapter.
"""
import ipaddress
import json
import re
import secrets
import string

DOMAIN_RE = re.compile(
    r'^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$')
DEFAULT_BACKEND_PORT = 10025
DMARC_POLICY = 'v=DMARC1; p=quarantine; adkim=r; aspf=r'
PASSWORD_ALPHABET = string.ascii_letters + string.digits


# -- claims ------------------------------------------------------------------
def order_claims(shared_instances, claims=()):
    """The claims ``[[reference, name], ...]`` in the order they were made:
    the earlier ``claims`` whose shared instance still exists and still
    names the same domain, then the new ones in the given order."""
    current = [[s['reference'], s['parameters'].get('name', '').lower()]
               for s in shared_instances]
    kept = [c for c in claims if list(c) in current]
    return [list(c) for c in kept] + [c for c in current if c not in kept]


def smarthost_conflicts(relay_configs):
    """``{domain: error}`` for each domain listed under more than one
    smarthost of a relay configuration. ``relay_configs`` maps the parameter
    path of each configuration (``topology.node1.config``) to it."""
    conflicts = {}
    for path, config in sorted(relay_configs.items()):
        listed = {}
        for smarthost, entry in sorted(config.get('proxy-map', {}).items()):
            for domain in entry.get('domains', ()):
                listed.setdefault(domain.lower(), []).append(smarthost)
        for domain, smarthosts in sorted(listed.items()):
            if len(smarthosts) > 1 and domain not in conflicts:
                conflicts[domain] = (
                    '%s.proxy-map lists domain %s under smarthosts %s: a '
                    'domain may be listed under one smarthost only'
                    % (path, domain, ' and '.join(smarthosts)))
    return conflicts


def accept(shared_instances, claims=(), conflicts=None):
    """From the schema-valid shared instances ``[{reference, parameters}]``,
    the accepted domains and the errors.

    Returns ``(accepted, errors, claims)``: ``accepted`` is a list of the
    parameters of each accepted shared instance with its ``reference`` and
    defaults added, in claim order; ``errors`` maps a reference to its error
    message; ``claims`` is what to keep for the next run (see
    ``order_claims``)."""
    conflicts = conflicts or {}
    by_reference = {s['reference']: s['parameters'] for s in shared_instances}
    claims = order_claims(shared_instances, claims)
    owner = {}
    accepted, errors = [], {}
    for reference, name in claims:
        parameters = by_reference[reference]
        if not DOMAIN_RE.match(name):
            errors[reference] = ('name %r is not a domain name: give the '
                                 'domain, for example mail.example.com'
                                 % parameters.get('name'))
        elif not parameters.get('mail-server-host'):
            errors[reference] = ('mail-server-host is missing: give the '
                                 'address of the backend that hosts %s' % name)
        elif name in owner:
            errors[reference] = ('domain %s is already claimed by another '
                                 'shared instance' % name)
        elif name in conflicts:
            errors[reference] = conflicts[name]
        else:
            owner[name] = reference
            domain = {'mail-server-port': DEFAULT_BACKEND_PORT,
                      'authentication': 'none', 'fingerprints': []}
            domain.update(parameters, name=name, reference=reference)
            accepted.append(domain)
    return accepted, errors, claims


# -- outbound credentials ----------------------------------------------------
def credentials(accepted, stored, hash_password, verify_password):
    """``{reference: {user, password, hash}}`` for each accepted domain with
    ``authentication: password``. A stored entry of the same user whose hash
    matches its password is kept (the password stays the same across runs);
    otherwise a new password is generated."""
    result = {}
    for domain in accepted:
        if domain['authentication'] != 'password':
            continue
        reference, user = domain['reference'], domain['name']
        entry = stored.get(reference) or {}
        if entry.get('user') != user or not verify_password(
                entry.get('hash', ''), entry.get('password', '')):
            password = ''.join(secrets.choice(PASSWORD_ALPHABET)
                               for _ in range(24))
            entry = {'user': user, 'password': password,
                     'hash': hash_password(password)}
        result[reference] = entry
    return result


def node_domains(accepted, creds):
    """What every relay node gets as ``mail-domains``: no password, only its
    hash."""
    nodes = []
    for domain in accepted:
        entry = {key: domain[key] for key in (
            'reference', 'name', 'mail-server-host', 'mail-server-port',
            'authentication', 'fingerprints')}
        if domain['reference'] in creds:
            entry['outbound-user'] = creds[domain['reference']]['user']
            entry['outbound-password-hash'] = \
                creds[domain['reference']]['hash']
        nodes.append(entry)
    return nodes


# -- DNS ---------------------------------------------------------------------
def record(name, type_, value):
    return {'name': name, 'type': type_, 'value': value}


def spf_mechanism(host):
    """``ip6:``/``ip4:`` for an address, ``include:`` for a host name."""
    try:
        address = ipaddress.ip_address(host.strip('[]'))
    except ValueError:
        return 'include:%s' % host
    return 'ip%d:%s' % (address.version, address)


def smarthost_hosts(domain, relay_configs):
    """The hosts of the smarthosts that send ``domain``'s mail, on any node."""
    hosts = []
    for _, config in sorted(relay_configs.items()):
        for _, entry in sorted(config.get('proxy-map', {}).items()):
            if domain in entry.get('domains', ()) and entry['host'] not in hosts:
                hosts.append(entry['host'])
    return hosts


def dns_entries(domain, nodes, smarthosts):
    """The records ``domain`` needs: MX to each node, the node's address,
    SPF (the nodes and the smarthosts that send for it), each node's DKIM
    key, DMARC."""
    entries = []
    for node in nodes:
        entries.append(record(domain, 'MX', '10 %s.' % node['fqdn']))
    for node in nodes:
        if node.get('smtp-ipv6'):
            entries.append(record(node['fqdn'], 'AAAA', node['smtp-ipv6']))
    mechanisms = [spf_mechanism(n['smtp-ipv6']) for n in nodes
                  if n.get('smtp-ipv6')]
    mechanisms += [spf_mechanism(h) for h in smarthosts]
    entries.append(record(domain, 'TXT', ' '.join(
        ['v=spf1'] + mechanisms + ['~all'])))
    for node in nodes:
        entries.extend(node.get('dns-entries', {}).get(domain, ()))
    entries.append(record('_dmarc.%s' % domain, 'TXT', DMARC_POLICY))
    return entries


def missing_keys(accepted, nodes):
    """``[(node name, domain)]`` for each node that has not published its
    DKIM record of an accepted domain yet."""
    return [(node['name'], domain['name']) for node in nodes
            for domain in accepted
            if domain['name'] not in node.get('dns-entries', {})]


# -- what each shared instance gets ------------------------------------------
def publications(accepted, errors, creds, nodes, relay_configs,
                 relay_domain=None):
    """``{reference: connection parameters}``. ``nodes`` lists each running
    node as ``{name, fqdn, smtp-ipv6, submission-port, tls-fingerprints
    (list), dns-entries ({domain: [record]})}``; list values are published
    as JSON text."""
    results = {reference: {'error': error}
               for reference, error in errors.items()}
    if not nodes:
        return results
    fingerprints = [f for node in nodes for f in node['tls-fingerprints']]
    for domain in accepted:
        published = {
            'outbound-host': relay_domain or nodes[0]['smtp-ipv6'],
            'outbound-smtp-port': str(nodes[0]['submission-port']),
            'tls-fingerprints': json.dumps(fingerprints),
            'dns-entries': json.dumps(dns_entries(
                domain['name'], nodes,
                smarthost_hosts(domain['name'], relay_configs))),
        }
        if domain['reference'] in creds:
            published['outbound-user'] = creds[domain['reference']]['user']
            published['outbound-password'] = \
                creds[domain['reference']]['password']
        results[domain['reference']] = published
    return results


def add_mx_checks(results, accepted, nodes, relay_domain, lookup):
    """Add ``mx-check`` (``mx_check``) to the publication of each accepted
    domain."""
    expected = [n['fqdn'] for n in nodes] + [relay_domain or '']
    for domain in accepted:
        if domain['reference'] in results and \
                'error' not in results[domain['reference']]:
            results[domain['reference']]['mx-check'] = mx_check(
                domain['name'], expected, lookup)
    return results


def running_nodes(topology):
    """The names of the topology's nodes that are not to be destroyed, sorted."""
    return sorted(name for name, node in topology.items()
                  if node.get('state', 'started') != 'destroyed')


def relay_configs(parameters):
    """``{parameter path: relay configuration}`` of each node of the cluster
    parameters, ``config`` merged over ``default-relay-config``."""
    default = parameters.get('default-relay-config', {})
    configs = {}
    for name, node in parameters['topology'].items():
        own = node.get('config', {})
        path = ('topology.%s.config' % name if 'proxy-map' in own
                else 'default-relay-config')
        configs[path] = dict(default, **own)
    return configs


# -- smarthosts ----------------------------------------------------------------
def smarthost_transport(port):
    """The node's Postfix transport for a smarthost port: implicit TLS
    (``smtp_tls_wrappermode``) on the submissions port, 465, and on ports
    that end in 465 (10465, as unprivileged test set-ups use); STARTTLS,
    required, elsewhere."""
    return 'smarthost-tls' if str(port).endswith('465') else 'smarthost'


def sender_transports(proxy_map):
    """``[(sender domain, transport:[host]:port)]`` of a node's proxy-map."""
    routes = []
    for _, smarthost in sorted(proxy_map.items()):
        port = smarthost.get('port', 25)
        for domain in smarthost.get('domains', ()):
            routes.append((domain, '%s:[%s]:%s' % (
                smarthost_transport(port), smarthost['host'], port)))
    return routes


# -- where a node listens --------------------------------------------------------
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


# -- MX check (cluster parameter check-mx) -----------------------------------------
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


def dns_mx_lookup(timeout=5):
    """``lookup(domain)`` for ``mx_check`` over the system's resolver; after
    a failure of DNS itself the next lookups fail at once (one timeout per
    run, not one per domain)."""
    state = {'failed': None}

    def lookup(domain):
        import dns.exception
        import dns.resolver
        if state['failed']:
            raise LookupFailed(state['failed'])
        try:
            resolver = dns.resolver.Resolver()
            resolver.lifetime = timeout
            answers = resolver.resolve(domain, 'MX', search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as e:
            state['failed'] = 'DNS did not answer (%s)' % (
                str(e) or e.__class__.__name__)
            raise LookupFailed(state['failed'])
        return [r.exchange.to_text() for r in answers]
    return lookup
