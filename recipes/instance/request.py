"""Recipe: request an instance or a shared instance from the SlapOS master,
with parameters and connection parameters serialised as JSON-in-XML.

This is ``slapos.cookbook:request.serialised`` made to run on both the
zc.buildout from PyPI (option values must be strings) and SlapOS's fork, and
to pass structured parameters: each ``config-<name>`` option is a JSON value
(``config-mail-domains = ["example.com"]``, ``config-fqdn = "relay.example"``).

Options as the cookbook's: server-url, key-file, cert-file, computer-id,
partition-id, software-url, software-type, name, shared, state, sla-<key>,
config-<name>, return; and ``secret-config-<name> = PATH [PATH...]``: the
parameter ``<name>`` is the value found at the first of these dotted paths
(``topology.node1.config.proxy-map``) in the partition's own parameters
file (``recipes.instance.slapconfiguration``), absent when none is there:
for a value that holds secrets, which never go into an option; and
``secret-file-config-<name> = PATH``: the parameter ``<name>`` is the text
of that file (a secret the partition generated: its monitor's password,
given to a relay cluster's nodes). Exports ``connection-<name>`` for each name in
``return`` (JSON unless a string). Fails until they are all published, so
that slapgrid processes the partition again; with ``optional = true``, it
does not fail but exports empty values for what is not published yet (for
an answer that may never come, such as a relay that refuses the request).

A ``software-url`` of the form ``urn:slapos:<name>`` is requested as the
release the master lists first for the Software Product ``<name>``
(``recipes.clients.master.software_release_url``); ``software-url``
exports what was requested.
"""
import json

from slapos.recipe.request import (RequestJSONEncoded,
                                   RequestOptionalJSONEncoded)
from zc.buildout import UserError

from ..clients.master import software_release_url
from .slapconfiguration import partition_parameters, serialise

SECRET_PREFIX = 'secret-config-'
SECRET_FILE_PREFIX = 'secret-file-config-'


class _DecodeConfig:

    def _filterForStorage(self, partition_parameter_kw):
        decoded = {}
        for key, value in partition_parameter_kw.items():
            try:
                decoded[key] = json.loads(value)
            except ValueError as e:
                raise UserError('config-%s is not JSON (%s): %r'
                                % (key, e, value))
        return super()._filterForStorage(decoded)


class _Request(_DecodeConfig, RequestJSONEncoded):
    pass


class _OptionalRequest(_DecodeConfig, RequestOptionalJSONEncoded):
    pass


def find(parameters, paths):
    """The value at the first dotted path of ``paths`` found in
    ``parameters``, or None."""
    for path in paths:
        value = parameters
        for key in path.split('.'):
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            return value
    return None


class Recipe:

    def __init__(self, buildout, name, options):
        values = {key: options[key] for key in options.keys()}
        secret = set()
        for key in list(values):
            if key.startswith(SECRET_PREFIX):
                value = find(partition_parameters(buildout),
                             values.pop(key).split())
                name = key[len(SECRET_PREFIX):]
            elif key.startswith(SECRET_FILE_PREFIX):
                with open(values.pop(key)) as f:
                    value = f.read().strip()
                name = key[len(SECRET_FILE_PREFIX):]
            else:
                continue
            if value is not None:
                values['config-' + name] = json.dumps(value)
                secret.add('config-' + name)
        values['software-url'] = software_release_url(values,
                                                      values['software-url'])
        optional = values.get('optional', 'false').lower() in ('true', 'yes', '1')
        self._request = (_OptionalRequest if optional else _Request)(
            buildout, name, values)
        for key, value in values.items():
            if key in secret:
                continue
            if isinstance(value, bytes):
                value = value.decode()
            value = serialise(value)
            if options.get(key) != value:
                options[key] = value

    def install(self):
        return self._request.install()

    update = install
