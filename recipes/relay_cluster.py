"""Recipes of a relay cluster (software type ``cluster``): the buildout
adapters of ``recipes.domains``.

  [relay-domains]
  recipe = slapos.mailbundle:relay-domains
  parameters = ${slap-configuration:configuration}
  shared-instances = ${slap-configuration:valid-shared-instance-list}
  state-directory = ${directory:srv}

Decides which shared instance owns each domain (claims kept in
``state-directory/claims.json``) and generates the outbound password of each
domain with ``authentication: password`` once (kept, 0600, in
``state-directory/credentials.json``). Exports ``accepted`` (JSON list, no
secret), ``accepted-names`` (JSON list of the domains), ``node-domains`` (JSON: what each node gets as ``mail-domains``,
with password hashes only), ``errors`` (JSON: reference -> message) and
``credentials-file``.

  [relay-publications]
  recipe = slapos.mailbundle:relay-publications
  server-url, key-file, cert-file, computer-id, partition-id   (slap-connection)
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
import os

from zc.buildout import UserError

from . import domains, publish
from .accounts import hash_password, verify_password
from .files import read_json, write_atomically




class Domains:

    def __init__(self, buildout, name, options):
        parameters = json.loads(options['parameters'])
        shared = json.loads(options['shared-instances'])
        directory = options['state-directory']
        os.makedirs(directory, mode=0o700, exist_ok=True)
        claims_file = os.path.join(directory, 'claims.json')
        credentials_file = os.path.join(directory, 'credentials.json')
        configs = domains.relay_configs(parameters)
        accepted, errors, claims = domains.accept(
            shared, read_json(claims_file, []),
            domains.smarthost_conflicts(configs))
        creds = domains.credentials(
            accepted, read_json(credentials_file, {}),
            hash_password, verify_password)
        write_atomically(claims_file, json.dumps(claims, indent=1))
        write_atomically(credentials_file, json.dumps(creds, sort_keys=True))
        options['accepted'] = json.dumps(accepted, sort_keys=True)
        options['accepted-names'] = json.dumps([d['name'] for d in accepted])
        options['node-domains'] = json.dumps(
            domains.node_domains(accepted, creds), sort_keys=True)
        options['errors'] = json.dumps(errors, sort_keys=True)
        options['credentials-file'] = credentials_file

    def install(self):
        return []

    update = install


class Publications:

    def __init__(self, buildout, name, options):
        self.name = name
        self.options = options

    def nodes(self):
        o = self.options
        nodes = []
        for node in o['nodes'].split():
            nodes.append({
                'name': node,
                'fqdn': o['%s-fqdn' % node],
                'smtp-ipv6': o['%s-smtp-ipv6' % node],
                'submission-port': o['%s-submission-port' % node],
                'tls-fingerprints': json.loads(
                    o.get('%s-tls-fingerprints' % node) or '[]'),
                'dns-entries': json.loads(
                    o.get('%s-dns-entries' % node) or '{}'),
            })
        return nodes

    def install(self):
        o = self.options
        parameters = json.loads(o['parameters'])
        accepted = json.loads(o['accepted'])
        nodes = self.nodes()
        results = domains.publications(
            accepted, json.loads(o['errors']),
            read_json(o['credentials-file'], {}), nodes,
            domains.relay_configs(parameters), parameters.get('relay-domain'))
        if parameters.get('check-mx') and nodes:
            domains.add_mx_checks(results, accepted, nodes,
                                  parameters.get('relay-domain'),
                                  domains.dns_mx_lookup())
        # publish-shared's own code, with options that buildout never records
        publish.Recipe(None, self.name, {
            key: o[key] for key in ('server-url', 'key-file', 'cert-file',
                                    'computer-id', 'partition-id', 'invalid',
                                    'state-file')
        } | {'results': json.dumps(results)}).install()
        missing = domains.missing_keys(accepted, nodes)
        if missing:
            raise UserError('waiting for the DKIM records of %s' % ', '.join(
                'node %s (domain %s)' % m for m in missing))
        return []

    update = install
