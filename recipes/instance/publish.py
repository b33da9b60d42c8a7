"""Recipes that publish connection parameters to the SlapOS master,
serialised as JSON-in-XML (``recipes.clients.master``).

``publish``: the instance's own connection parameters.

  [publish-connection-parameter]
  recipe = slapos.mailbundle:publish
  <= slap-master                  (server-url, key-file, ... of slap-connection)
  -extends = webmail              sections whose ``-publish`` options to add
  smtp-port = ${...}              each other option is published as it is
  -files = webmail-admin-password ${directory:etc}/webmail-admin-password
                                  ``name path`` a line: the content of a file
                                  (a secret never sits in an option)
  -software-schema = ${slap-configuration:jsonschema}
  -software-type = ${slap-configuration:slap-software-type}
                                  the values are published as the response
                                  schema of this software type says
                                  (``software.cfg.json``): integers, lists,
                                  booleans from their JSON text

A section given in ``-extends`` publishes the options its ``-publish``
names, and the files its ``-files`` names.

``publish-shared``: the connection parameters of every shared instance of
the partition, in one section (one section per shared instance would make
the profile grow with them).

  [publish-shared]
  recipe = slapos.mailbundle:publish-shared
  <= slap-master
  results-file = ${accounts:published-file}
  invalid = ${slap-configuration:invalid-shared-instance-list}
  state-file = ${directory:etc}/.published-shared.json

``results-file`` (JSON) maps a shared instance reference to what it gets
published; a file keeps what is secret (setup tokens, passwords) out of
buildout's records of options. Each shared instance of ``invalid`` (refused
by the schema) gets ``{"error": <what the schema says>}``. A shared instance
is published only when what it gets changed since the last run (state in
``state-file``).
"""
import json
import pathlib
import urllib.parse

from zc.buildout import UserError

from ..clients import master
from ..decisions.parameters import response_schema, typed
from ..stores.files import read_json, write_atomically


def file_lines(text):
    """``{name: path}`` of a ``-files`` option."""
    return dict(line.split(None, 1) for line in text.splitlines()
                if line.strip())


def read_text(path):
    with open(path) as f:
        return f.read().strip()


def load_url(url):
    """The JSON document at a file URL (a schema of the software
    release)."""
    return json.loads(pathlib.Path(urllib.parse.urlparse(url).path)
                      .read_text())


def typed_as_published(options, values):
    """``values`` typed by the response schema named in ``options``
    (``-software-schema``, ``-software-type``), or as they are without
    one."""
    if not options.get('-software-schema'):
        return values
    base = pathlib.Path(options['-software-schema']).resolve().as_uri()
    schema, url = response_schema(load_url(base), options['-software-type'],
                                  False, load_url, base)
    try:
        return typed(schema, values, load_url, url)
    except ValueError as e:
        raise UserError('cannot publish %s: %s' % (url, e))


class Recipe:

    def __init__(self, buildout, name, options):
        self.options = options
        sections = [options] + [buildout[section] for section in
                                options.get('-extends', '').split()]
        self.values, self.files = {}, {}
        for section in sections:
            keys = section['-publish'].split() if '-publish' in section else [
                key for key in section.keys() if key != 'recipe'
                and not key.startswith(('-', '_'))
                and key not in master.CONNECTION_OPTIONS]
            self.values.update({key: section[key] for key in keys})
            self.files.update(file_lines(section.get('-files', '')))

    def install(self):
        parameters = typed_as_published(self.options, dict(self.values, **{
            key: read_text(path) for key, path in self.files.items()}))
        master.publish(master.computer_partition(self.options), parameters)
        return []

    update = install


def shared_publications(results, invalid):
    """``{reference: connection parameters}`` for every shared instance."""
    published = {reference: dict(parameters)
                 for reference, parameters in results.items()}
    for shared in invalid:
        published[shared['reference']] = {
            'error': 'invalid parameters: %s' % shared['errors'].strip()}
    return published


def publish_changed(options, results):
    """Publish what changed of ``results`` (and of the invalid shared
    instances of ``options``) since the run that wrote ``state-file``."""
    published = shared_publications(
        results, json.loads(options.get('invalid') or '[]'))
    state_file = options['state-file']
    before = read_json(state_file, {})
    changed = {r: p for r, p in published.items() if before.get(r) != p}
    if changed:
        partition = master.computer_partition(options)
        for reference, parameters in sorted(changed.items()):
            master.publish(partition, parameters, reference)
    write_atomically(state_file, json.dumps(published, sort_keys=True))


class SharedRecipe:

    def __init__(self, buildout, name, options):
        self.options = options

    def install(self):
        with open(self.options['results-file']) as f:
            publish_changed(self.options, json.load(f))
        return []

    update = install
