"""Recipe: request an instance or a shared instance from the SlapOS master,
with parameters and connection parameters serialised as JSON-in-XML.

This is ``slapos.cookbook:request.serialised`` made to run on both the
zc.buildout from PyPI (option values must be strings) and SlapOS's fork, and
to pass structured parameters: each ``config-<name>`` option is a JSON value
(``config-mail-domains = ["example.com"]``, ``config-fqdn = "relay.example"``).

Options as the cookbook's: server-url, key-file, cert-file, computer-id,
partition-id, software-url, software-type, name, shared, state, sla-<key>,
config-<name>, return; ``return-if-published`` (keys exported as
``return``'s when the answer has them, empty otherwise, never waited for);
``waiting-for`` (what the answer is, for the
messages: ``the relay's answer to the order of domain example.com``),
``waiting-file`` (below); and ``secret-config-<name> = PATH [PATH...]``: the
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
``return`` (JSON unless a string), empty while not published, and
``waiting``: the sentence that names what is missing
(``recipes.decisions.readiness``), empty once everything is there.

Until everything is published, install fails with that sentence (never the
cookbook's ``KeyError``), so that slapgrid processes the partition again.
With ``waiting-file = DIRECTORY/NAME``, it does not fail: it keeps the
sentence in that file (``recipes.stores.waiting``) for the partition's
``waiting-for`` promise, which fails instead once the rest of the
partition is in place, and removes it once answered. With ``optional =
true``, it only logs the sentence.

A ``software-url`` of the form ``urn:slapos:<name>`` is requested as the
release the master lists first for the Software Product ``<name>``
(``recipes.clients.master.software_release_url``); ``software-url``
exports what was requested.
"""
import json
import logging
import os

from slapos.recipe.request import (RequestJSONEncoded,
                                   RequestOptionalJSONEncoded)
from zc.buildout import UserError

from ..clients.master import software_release_url
from ..decisions.readiness import default_waiting_for, request_wait
from ..stores import waiting
from .slapconfiguration import REDACTED, partition_parameters, serialise

SECRET_PREFIX = 'secret-config-'
SECRET_FILE_PREFIX = 'secret-file-config-'


class _DecodeConfig:
    """Decodes the ``config-`` values, and keeps what the requested
    instance published (``answer``)."""

    answer = None

    def _getReturnParameterDict(self, instance, return_parameter_list):
        self.answer = super()._getReturnParameterDict(
            instance, return_parameter_list)
        return self.answer

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
        true = ('true', 'yes', '1')
        returned = values.get('return', '').split()
        # exported when published, never waited for (a key an older release
        # of the requested software does not publish)
        extra = values.pop('return-if-published', '').split()
        values['return'] = ' '.join(returned + extra)
        self.optional = values.get('optional', 'false').lower() in true
        self.waiting_file = values.get('waiting-file')
        self.logger = logging.getLogger(name)
        self._request = (_OptionalRequest if self.optional or self.waiting_file
                         else _Request)(buildout, name, values)
        answer = self._request.answer or {}
        error = self._request._raise_request_exception
        self.reason = request_wait(
            values.get('waiting-for') or default_waiting_for(
                values['name'], values.get('software-type', 'default'),
                values['software-url'],
                values.get('shared', 'false').lower() in true),
            [key for key in returned if key not in answer], answer,
            error and (str(error) or error.__class__.__name__))
        values['waiting'] = self.reason or ''
        for key, value in values.items():
            if key in secret:
                continue
            if isinstance(value, bytes):
                value = value.decode()
            value = serialise(value)
            if options.get(key) != value:
                options[key] = value

    def install(self):
        if self.waiting_file:
            directory, name = os.path.split(self.waiting_file)
            if self.reason:
                return [waiting.wait(directory, name, self.reason)]
            waiting.done(directory, name)
        elif self.reason:
            if not self.optional:
                raise UserError(self.reason)
            self.logger.info(self.reason)
        return []

    update = install
