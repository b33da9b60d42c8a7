"""Which backend each domain of a relay cluster goes to, and what each
domain's shared instance and each relay node get.

A domain is ordered as a shared instance of the cluster. It belongs to the
shared instance that claimed it first (``recipes.decisions.claims``); every
other claimant gets an error, published to it only. So does a shared
instance whose name is not a domain name, whose backend host is missing, or
whose domain is listed under two smarthosts of a node's ``proxy-map``.

The shared instances come with the schema's defaults applied
(``mail-server-port``, ``authentication``...): no default is restated here.
"""
import json
import secrets
import string

from . import dns, smarthosts
from .claims import first_claims
from .names import domain_error, normalise_domain

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 24


# -- claims ------------------------------------------------------------------
def accept(shared_instances, claims=None, conflicts=None):
    """From the schema-valid shared instances ``[{reference, parameters}]``,
    the accepted domains and the errors.

    Returns ``(accepted, errors, claims)``: ``accepted`` is a list of the
    parameters of each accepted shared instance with its ``reference`` and
    its normalised ``name``, in the master's order; ``errors`` maps a
    reference to its error message; ``claims`` (``{name: reference}``) is
    what to keep for the next run."""
    conflicts = conflicts or {}
    asks, errors = [], {}
    for shared in shared_instances:
        reference, parameters = shared['reference'], shared['parameters']
        name = normalise_domain(parameters.get('name', ''))
        why = domain_error(name)
        if why:
            errors[reference] = ('name %r is not a domain name (%s): give '
                                 'the domain, for example mail.example.com'
                                 % (parameters.get('name'), why))
        elif not parameters.get('mail-server-host'):
            errors[reference] = ('mail-server-host is missing: give the '
                                 'address of the backend that hosts %s' % name)
        else:
            asks.append((reference, name))
    claims = first_claims(asks, claims or {})
    by_reference = {s['reference']: s['parameters'] for s in shared_instances}
    accepted = []
    for reference, name in asks:
        if claims[name] != reference:
            errors[reference] = ('domain %s is already claimed by another '
                                 'shared instance' % name)
        elif name in conflicts:
            errors[reference] = conflicts[name]
        else:
            accepted.append(dict(by_reference[reference], name=name,
                                 reference=reference))
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
                               for _ in range(PASSWORD_LENGTH))
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
            'email-size-limit', 'authentication', 'fingerprints')
            if key in domain}
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
            'dns-entries': json.dumps(dns.domain_records(
                domain['name'], nodes,
                smarthosts.hosts_for(domain['name'], relay_configs))),
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
    expected = [n['fqdn'] for n in nodes] + [relay_domain or '']
    for domain in accepted:
        if domain['reference'] in results and \
                'error' not in results[domain['reference']]:
            results[domain['reference']]['mx-check'] = dns.mx_check(
                domain['name'], expected, lookup)
    return results


def running_nodes(topology):
    """The names of the topology's nodes that are not to be destroyed,
    sorted."""
    return sorted(name for name, node in topology.items()
                  if node['state'] != 'destroyed')
