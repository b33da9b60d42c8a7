"""Recipe: publish the connection parameters of every shared instance of the
partition, serialised as JSON-in-XML, in one section (one section per shared
instance would make the profile grow with them).

  [publish-shared]
  recipe = slapos.mailbundle:publish-shared
  server-url, key-file, cert-file, computer-id, partition-id   (slap-connection)
  results-file = ${accounts:published-file}
  invalid = ${slap-configuration:invalid-shared-instance-list}
  state-file = ${directory:etc}/.published-shared.json

``results-file`` (JSON, or ``results``: the same inline) maps a shared
instance reference to what it gets published; a file keeps what is secret
(setup tokens, passwords) out of buildout's records of options. Each shared
instance of ``invalid`` (refused by the schema) gets
``{"error": <what the schema says>}``. A shared instance is published only
when what it gets changed since the last run (state in ``state-file``).
"""
import json

from slapos import slap as slapmodule

from .files import read_json, write_atomically


def publications(results, invalid):
    """``{reference: connection parameters}`` for every shared instance."""
    published = {reference: dict(parameters)
                 for reference, parameters in results.items()}
    for shared in invalid:
        published[shared['reference']] = {
            'error': 'invalid parameters: %s' % shared['errors'].strip()}
    return published


class Recipe:

    def __init__(self, buildout, name, options):
        self.options = options

    def install(self):
        o = self.options
        if 'results-file' in o:
            with open(o['results-file']) as f:
                results = json.load(f)
        else:
            results = json.loads(o['results'])
        published = publications(results, json.loads(o.get('invalid') or '[]'))
        state_file = o['state-file']
        before = read_json(state_file, {})
        changed = {r: p for r, p in published.items() if before.get(r) != p}
        if changed:
            slap = slapmodule.slap()
            slap.initializeConnection(o['server-url'], o.get('key-file'),
                                      o.get('cert-file'))
            partition = slap.registerComputerPartition(o['computer-id'],
                                                       o['partition-id'])
            for reference, parameters in sorted(changed.items()):
                partition.setConnectionDict(
                    {'_': json.dumps(parameters, sort_keys=True)}, reference)
        write_atomically(state_file, json.dumps(published, sort_keys=True))
        return []

    update = install
