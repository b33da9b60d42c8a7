"""Recipes of a relay cluster (software type ``cluster``): the buildout
adapters of ``recipes.decisions.relay_domains``.

  [relay-domains]
  recipe = slapos.mailbundle:relay-domains
  parameters = ${slap-configuration:configuration}
  shared-instances = ${slap-configuration:valid-shared-instance-list}
  state-directory = ${directory:srv}

Decides which shared instance owns each domain, once verified
(``recipes.decisions.domain_verification``: the domains not claimed yet
are looked up, over ``default-relay-config``'s ``nameservers``), and the
outbound password of each domain with ``authentication: password``
(generated once, kept with the claims by ``recipes.stores.relay_domains``).
Exports ``accepted`` (JSON list, no secret), ``backend-domains`` (the
accepted domains, one a line), ``node-domains`` (JSON: what each node gets
as ``mail-domains``, with password hashes only), ``errors`` (JSON:
reference -> {domain, error}), ``unverified`` (JSON: reference -> {domain,
why}), ``proxy-errors`` (JSON list: the proxy-map's, upstream's
``errors``), ``warnings`` (JSON list: the smarthosts whose certificate is
not verified, ``recipes.decisions.tls_policy``) and ``credentials-file``.
The claims and the passwords are written on install.

  [relay-publications]
  recipe = slapos.mailbundle:relay-publications
  <= slap-master
  parameters = ${slap-configuration:configuration}
  accepted = ${relay-domains:accepted}
  errors = ${relay-domains:errors}
  unverified = ${relay-domains:unverified}
  credentials-file = ${relay-domains:credentials-file}
  invalid = ${slap-configuration:invalid-shared-instance-list}
  state-file = ${directory:srv}/published.json
  waiting-file = ${directory:waiting}/dkim-records
  nodes = node1 node2
  node1-fqdn, node1-smtp-ipv6, node1-submission-port,
  node1-tls-fingerprints (JSON), node1-dns-records (JSON)   (each node;
  empty until the node published them; fqdn empty when the topology
  gives none)

With the cluster parameter ``check-mx``, each accepted domain also gets
``mx-check``: whether its MX points at the cluster (a lookup that fails says
so, and never refuses the domain).

Exports ``relay-hosts`` (JSON list: the addresses of the nodes that
published theirs). Publishes every shared instance's connection parameters
(as ``slapos.mailbundle:publish-shared`` does; the passwords are read from
the credentials file, so that they never sit in buildout's records); an
accepted domain gets its answer once every node has taken it
(``relay_domains.ready_domains``: a node that does not know a domain
refuses its mail). While a node has not taken an accepted domain yet (its
DKIM record of it), keeps that wait in ``waiting-file``
(``recipes.stores.waiting``) for the ``waiting-for`` promise, so that
slapgrid runs the cluster again.
"""
import json
import os

from ..clients.resolver import domain_lookup
from ..decisions import (domain_verification, relay_domains, smarthosts,
                         tls_policy)
from ..decisions.dns import resolvers
from ..decisions.passwords import hash_password, verify_password
from ..stores import relay_domains as state
from ..stores import waiting
from ..stores.files import read_json
from .publish import publish_changed


def lookup_of(parameters):
    """The DNS lookup of the cluster: ``default-relay-config``'s
    resolvers, the system's without them."""
    return domain_lookup(resolvers(parameters['default-relay-config']))


class Domains:

    def __init__(self, buildout, name, options):
        parameters = json.loads(options['parameters'])
        self.directory = options['state-directory']
        configs = smarthosts.relay_configs(parameters)
        proxy_errors = smarthosts.conflicts(configs)
        topology = parameters['topology']
        expected = relay_domains.node_fqdns({
            name: topology[name] for name in
            relay_domains.running_nodes(topology)}) + [
            parameters.get('relay-domain', '')]
        lookup = lookup_of(parameters)

        def verify(names):
            return domain_verification.verified(
                names, expected, smarthosts.proxied_domains(configs), lookup)
        conflicts = {}
        for domain, error in proxy_errors:     # a domain's first error
            conflicts.setdefault(domain, error)
        accepted, errors, unverified, self.claims = relay_domains.accept(
            json.loads(options['shared-instances']),
            state.read_claims(self.directory), conflicts, verify)
        self.credentials = relay_domains.credentials(
            accepted, state.read_credentials(self.directory),
            hash_password, verify_password)
        options['accepted'] = json.dumps(accepted, sort_keys=True)
        options['backend-domains'] = '\n'.join(d['name'] for d in accepted)
        options['node-domains'] = json.dumps(
            relay_domains.node_domains(accepted, self.credentials),
            sort_keys=True)
        options['errors'] = json.dumps(errors, sort_keys=True)
        options['unverified'] = json.dumps(unverified, sort_keys=True)
        options['proxy-errors'] = json.dumps([e for _, e in proxy_errors])
        options['warnings'] = json.dumps(sorted({
            warning for config in configs.values()
            for warning in tls_policy.warnings(config.get('proxy-map', {}))}))
        options['credentials-file'] = state.credentials_path(self.directory)

    def install(self):
        state.write(self.directory, self.claims, self.credentials)
        return []

    update = install


class Publications:

    def __init__(self, buildout, name, options):
        self.name = name
        self.options = options
        options['relay-hosts'] = json.dumps(
            [node['smtp-ipv6'] for node in self.nodes() if node['smtp-ipv6']])

    def nodes(self):
        o = self.options
        return [{
            'name': node,
            'fqdn': o['%s-fqdn' % node],
            'smtp-ipv6': o['%s-smtp-ipv6' % node],
            'submission-port': o['%s-submission-port' % node],
            'tls-fingerprints': json.loads(
                o.get('%s-tls-fingerprints' % node) or '[]'),
            'dns-records': json.loads(o.get('%s-dns-records' % node) or '[]'),
        } for node in o['nodes'].split()]

    def install(self):
        o = self.options
        parameters = json.loads(o['parameters'])
        accepted = json.loads(o['accepted'])
        nodes = self.nodes()
        ready = relay_domains.ready_domains(accepted, nodes)
        results = relay_domains.publications(
            ready, json.loads(o['errors']), json.loads(o['unverified']),
            read_json(o['credentials-file'], {}), nodes,
            smarthosts.relay_configs(parameters),
            parameters.get('relay-domain'))
        if parameters['check-mx'] and nodes:
            relay_domains.add_mx_checks(results, ready, nodes,
                                        parameters.get('relay-domain'),
                                        lookup_of(parameters))
        publish_changed(o, results)
        directory, wait = os.path.split(o['waiting-file'])
        missing = relay_domains.missing_keys(
            accepted, [node for node in nodes if node['smtp-ipv6']])
        if missing:
            return [waiting.wait(directory, wait, (
                'waiting for %s: its answer comes once every node has it'
                % ', '.join('relay node %s to take domain %s (its DKIM '
                            'record)' % m for m in missing)))]
        waiting.done(directory, wait)
        return []

    update = install
