"""Which backend each domain of a relay cluster goes to, and what each
domain's shared instance and each relay node get.

A domain is ordered as a shared instance of the cluster. It belongs to the
first shared instance that claimed it once it was verified
(``recipes.decisions.claims``, ``recipes.decisions.domain_verification``):
a later claimant gets upstream's ``this domain has already been claimed``,
a claimant of a domain not verified yet gets upstream's verification error
with the MX records to set. So does, with its own error, a shared instance
whose name is not a domain name, whose backend host is missing (or whose
HTTPS API, ``http-endpoint``, is not an https URL), or whose
domain is listed under two smarthosts of a ``proxy-map``. Every error is
published to that shared instance only.

The shared instances come with the schema's defaults applied
(``mail-server-port``, ``authentication``...): no default is restated here.
"""
import secrets
import string

from . import dns, http_endpoints, smarthosts
from .claims import first_claims
from .domain_verification import UNVERIFIED
from .names import domain_error, normalise_domain
from .network import address_error

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 24
# upstream's text, which its users match on
ALREADY_CLAIMED = 'this domain has already been claimed'


# -- claims ------------------------------------------------------------------
def accept(shared_instances, claims, conflicts, verify):
    """From the schema-valid shared instances ``[{reference, parameters}]``,
    the accepted domains and the others.

    ``claims`` (``{name: reference}``) are those of earlier runs;
    ``conflicts`` maps a domain to its proxy-map error; ``verify(names)``
    returns ``(verified names, {name: why not})`` for the names not claimed
    yet (``domain_verification.verified``).

    Returns ``(accepted, errors, unverified, claims)``: ``accepted`` is a
    list of the parameters of each accepted shared instance with its
    ``reference`` and its normalised ``name``, in the master's order;
    ``errors`` maps a reference to ``{domain, error}``; ``unverified`` maps
    a reference to ``{domain, why}``; ``claims`` is what to keep for the
    next run."""
    asks, errors = asked(shared_instances)
    claimed = {name for name, reference in claims.items()
               if (reference, name) in asks}
    verified, why_not = verify([name for _, name in asks
                                if name not in claimed])
    claims = first_claims(asks, claims, lambda name: name in verified)
    by_reference = {s['reference']: s['parameters'] for s in shared_instances}
    accepted, unverified = [], {}
    for reference, name in asks:
        if name not in claims:
            unverified[reference] = {'domain': name, 'why': why_not[name]}
        elif claims[name] != reference:
            errors[reference] = {'domain': name, 'error': ALREADY_CLAIMED}
        elif name in conflicts:
            errors[reference] = {'domain': name, 'error': conflicts[name]}
        else:
            accepted.append(dict(by_reference[reference], name=name,
                                 reference=reference))
    return accepted, errors, unverified, claims


def asked(shared_instances):
    """``(asks, errors)``: ``[(reference, normalised name)]`` of the shared
    instances that name a domain and its backend (or HTTPS API), in the
    master's order;
    ``{reference: {domain, error}}`` of the others."""
    asks, errors = [], {}
    for shared in shared_instances:
        reference, parameters = shared['reference'], shared['parameters']
        given = parameters.get('name', '')
        name = normalise_domain(given)
        why = domain_error(name)
        if why:
            errors[reference] = {'domain': given, 'error': (
                'name %r is not a domain name (%s): give the domain, for '
                'example mail.example.com' % (given, why))}
            continue
        why = destination_error(name, parameters)
        if why:
            errors[reference] = {'domain': name, 'error': why}
        else:
            asks.append((reference, name))
    return asks, errors


def destination_error(name, parameters):
    """Why the domain's shared instance names no place for its mail (a
    backend, ``mail-server-host``, or an HTTPS API, ``http-endpoint``), or
    None."""
    host = parameters.get('mail-server-host')
    endpoint = parameters.get('http-endpoint')
    if host and endpoint:
        return ('give mail-server-host (a backend) or http-endpoint (an '
                'HTTPS API) for %s, not both' % name)
    if endpoint:
        why = http_endpoints.endpoint_error(endpoint)
        return why and 'http-endpoint %s' % why
    why = address_error(host)
    return why and ('mail-server-host %s: give the IPv6 or IPv4 address of '
                    'the backend that hosts %s (or http-endpoint, the HTTPS '
                    'API that receives its mail)' % (why, name))


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
                               for _ in range(PASSWORD_LENGTH))
            entry = {'user': user, 'password': password,
                     'hash': hash_password(password)}
        result[reference] = entry
    return result


def node_domains(accepted, creds):
    """What every relay node gets as ``mail-domains``: no password, only its
    hash; an endpoint domain's ``http-token`` as ``accepted`` has it (in
    the cluster's options, the placeholder of ``[slap-configuration]``,
    which the request recipe replaces by the token)."""
    nodes = []
    for domain in accepted:
        keys = ('reference', 'name', 'email-size-limit', 'authentication',
                'fingerprints')
        keys += http_endpoints.ENDPOINT_KEYS if http_endpoints.is_endpoint(
            domain) else ('mail-server-host', 'mail-server-port')
        entry = {key: domain[key] for key in keys if key in domain}
        if domain['reference'] in creds:
            entry['outbound-user'] = creds[domain['reference']]['user']
            entry['outbound-password-hash'] = \
                creds[domain['reference']]['hash']
        nodes.append(entry)
    return nodes


def missing_keys(accepted, nodes):
    """``[(node name, domain)]`` for each node that has not published its
    DKIM record of an accepted domain yet."""
    return [(node['name'], domain['name']) for node in nodes
            for domain in accepted
            if not dns.dkim_records_of(domain['name'],
                                       node.get('dns-records', ()))]


def ready_domains(accepted, nodes):
    """The accepted domains that every running node has taken (published
    its DKIM record of): only those get their answer, so that a backend
    sends through the relay once every node knows its domain (a node that
    does not refuses it, for good). None while a node has not published
    itself."""
    if not all(node.get('smtp-ipv6') for node in nodes):
        return []
    missing = {domain for _, domain in missing_keys(accepted, nodes)}
    return [domain for domain in accepted if domain['name'] not in missing]


# -- what each shared instance gets ------------------------------------------
def publications(accepted, errors, unverified, creds, nodes, relay_configs,
                 relay_domain=None):
    """``{reference: connection parameters}`` (JSON values). ``nodes`` lists
    each running node as ``{name, fqdn, smtp-ipv6, submission-port,
    tls-fingerprints, dns-records}``; those that have not answered yet
    have no address."""
    results = dict(errors)
    fqdns = [node['fqdn'] for node in nodes if node.get('fqdn')]
    for reference, entry in unverified.items():
        records = dns.mx_records(entry['domain'], fqdns)
        results[reference] = {
            'domain': entry['domain'], 'error': UNVERIFIED,
            'verification': entry['why'],
            'dns-entries': dns.zone_text(records), 'dns-records': records}
    answered = [node for node in nodes if node.get('smtp-ipv6')]
    if not answered:
        return results
    fingerprints = [f for node in answered for f in node['tls-fingerprints']]
    for domain in accepted:
        name = domain['name']
        hosts = smarthosts.hosts_for(name, relay_configs)
        published = {
            'outbound-host': relay_domain or answered[0]['smtp-ipv6'],
            # every node, for a backend to move to the next when one does
            # not answer (a relay-domain, a name of every node: itself)
            'outbound-hosts': [relay_domain] if relay_domain else [
                node['smtp-ipv6'] for node in answered],
            # a string: upstream's tests read it so, scripts do too
            'outbound-smtp-port': str(int(answered[0]['submission-port'])),
            'outbound-has-proxy': bool(hosts),
            'tls-fingerprints': fingerprints,
            'dns-entries': dns.zone_text(dns.mx_records(name, fqdns)),
            'dns-records': dns.domain_records(name, answered, hosts),
        }
        if domain['reference'] in creds:
            published['outbound-user'] = creds[domain['reference']]['user']
            published['outbound-password'] = \
                creds[domain['reference']]['password']
        results[domain['reference']] = published
    return results


def add_mx_checks(results, accepted, nodes, relay_domain, lookup):
    """Add ``mx-check`` (``dns.mx_check``) to the publication of each
    accepted domain."""
    expected = [n['fqdn'] for n in nodes if n.get('fqdn')] + [
        relay_domain or '']
    for domain in accepted:
        if domain['reference'] in results and \
                'error' not in results[domain['reference']]:
            results[domain['reference']]['mx-check'] = dns.mx_check(
                domain['name'], expected, lookup)
    return results


def node_fqdns(topology):
    """The fqdn of each node of the topology that has one (it is optional,
    as upstream's: a node without it is named by no MX record), in the
    order of the nodes' names."""
    return [topology[name]['fqdn'] for name in sorted(topology)
            if topology[name].get('fqdn')]


def running_nodes(topology):
    """The names of the topology's nodes that are not to be destroyed,
    sorted."""
    return sorted(name for name, node in topology.items()
                  if node['state'] != 'destroyed')
