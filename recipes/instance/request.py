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
for a value that holds secrets, which never go into an option;
``secret-file-config-<name> = PATH``: the parameter ``<name>`` is the text
of that file (a secret the partition generated: its monitor's password,
given to a relay cluster's nodes); and
``secrets-of-shared-instances = <name>...``: the entries of each
``config-<name>`` (a list of objects with a ``reference``) get back, in
place of the placeholder ``[slap-configuration]`` put in its options, the
secrets of the valid shared instance of that reference (an HTTPS API
domain's ``http-token`` in the ``mail-domains`` a relay node is given).
Exports ``connection-<name>`` for each name in
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
from .slapconfiguration import REDACTED, partition_parameters, serialise

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


def with_shared_secrets(entries, shared_instances):
    """``entries`` with each redacted value replaced by the value of the
    same key in the shared instance of the entry's ``reference``."""
    by_reference = {s['reference']: s['parameters'] for s in shared_instances}
    restored = []
    for entry in entries:
        real = by_reference.get(entry.get('reference'), {})
        restored.append({key: real.get(key, value) if value == REDACTED
                         else value for key, value in entry.items()})
    return restored


class Recipe:

    def __init__(self, buildout, name, options):
        values = {key: options[key] for key in options.keys()}
        secret = set()
        for key in list(values):
            if key.startswith(SECRET_PREFIX):
                value = find(partition_parameters(buildout),
                             values.pop(key).split())
                parameter = key[len(SECRET_PREFIX):]
            elif key.startswith(SECRET_FILE_PREFIX):
                with open(values.pop(key)) as f:
                    value = f.read().strip()
                parameter = key[len(SECRET_FILE_PREFIX):]
            else:
                continue
            if value is not None:
                values['config-' + parameter] = json.dumps(value)
                secret.add('config-' + parameter)
        for parameter in values.pop('secrets-of-shared-instances', '').split():
            key = 'config-' + parameter
            values[key] = json.dumps(with_shared_secrets(
                json.loads(values[key]), partition_parameters(
                    buildout, 'valid-shared-instance-list', [])))
            secret.add(key)
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
