"""Recipes of a relay cluster (software type ``cluster``): the buildout
adapters of ``recipes.decisions.relay_domains``.

  [relay-domains]
  recipe = slapos.mailbundle:relay-domains
  parameters = ${slap-configuration:configuration}
  shared-instances = ${slap-configuration:valid-shared-instance-list}
  state-directory = ${directory:srv}

Decides which shared instance owns each domain and the outbound password of
each domain with ``authentication: password`` (generated once, kept with
the claims by ``recipes.stores.relay_domains``). Exports ``accepted`` (JSON
list, no secret), ``accepted-names`` (JSON list of the domains),
``node-domains`` (JSON: what each node gets as ``mail-domains``, with
password hashes only), ``errors`` (JSON: reference -> message) and
``credentials-file``. The claims and the passwords are written on install.

  [relay-publications]
  recipe = slapos.mailbundle:relay-publications
  <= slap-master
  parameters = ${slap-configuration:configuration}
  accepted = ${relay-domains:accepted}
  errors = ${relay-domains:errors}
  credentials-file = ${relay-domains:credentials-file}
  invalid = ${slap-configuration:invalid-shared-instance-list}
  state-file = ${directory:srv}/published.json
  nodes = node1 node2
  node1-fqdn, node1-smtp-ipv6, node1-submission-port,
  node1-tls-fingerprints (JSON), node1-dns-entries (JSON)   (each node)

With the cluster parameter ``check-mx``, each accepted domain also gets
``mx-check``: whether its MX points at the cluster (a lookup that fails says
so, and never refuses the domain).

Publishes every shared instance's connection parameters (as
``slapos.mailbundle:publish-shared`` does; the passwords are read from the
credentials file, so that they never sit in buildout's records), then fails
while a node has not published its DKIM record of an accepted domain yet, so
that slapgrid runs the cluster again.
"""
import json

from zc.buildout import UserError

from ..clients.resolver import mx_lookup
from ..decisions import relay_domains, smarthosts
from ..decisions.passwords import hash_password, verify_password
from ..stores import relay_domains as state
from ..stores.files import read_json
from .publish import publish_changed


class Domains:

    def __init__(self, buildout, name, options):
        parameters = json.loads(options['parameters'])
        self.directory = options['state-directory']
        configs = smarthosts.relay_configs(parameters)
        accepted, errors, self.claims = relay_domains.accept(
            json.loads(options['shared-instances']),
            state.read_claims(self.directory), smarthosts.conflicts(configs))
        self.credentials = relay_domains.credentials(
            accepted, state.read_credentials(self.directory),
            hash_password, verify_password)
        options['accepted'] = json.dumps(accepted, sort_keys=True)
        options['accepted-names'] = json.dumps([d['name'] for d in accepted])
        options['node-domains'] = json.dumps(
            relay_domains.node_domains(accepted, self.credentials),
            sort_keys=True)
        options['errors'] = json.dumps(errors, sort_keys=True)
        options['credentials-file'] = state.credentials_path(self.directory)

    def install(self):
        state.write(self.directory, self.claims, self.credentials)
        return []

    update = install


class Publications:

    def __init__(self, buildout, name, options):
        self.name = name
        self.options = options

    def nodes(self):
        o = self.options
        return [{
            'name': node,
            'fqdn': o['%s-fqdn' % node],
            'smtp-ipv6': o['%s-smtp-ipv6' % node],
            'submission-port': o['%s-submission-port' % node],
            'tls-fingerprints': json.loads(
                o.get('%s-tls-fingerprints' % node) or '[]'),
            'dns-entries': json.loads(o.get('%s-dns-entries' % node) or '{}'),
        } for node in o['nodes'].split()]

    def install(self):
        o = self.options
        parameters = json.loads(o['parameters'])
        accepted = json.loads(o['accepted'])
        nodes = self.nodes()
        results = relay_domains.publications(
            accepted, json.loads(o['errors']),
            read_json(o['credentials-file'], {}), nodes,
            smarthosts.relay_configs(parameters),
            parameters.get('relay-domain'))
        if parameters['check-mx'] and nodes:
            relay_domains.add_mx_checks(results, accepted, nodes,
                                        parameters.get('relay-domain'),
                                        mx_lookup())
        publish_changed(o, results)
        missing = relay_domains.missing_keys(accepted, nodes)
        if missing:
            raise UserError('waiting for the DKIM records of %s' % ', '.join(
                'node %s (domain %s)' % m for m in missing))
        return []

    update = install
