"""Recipe: request an instance or a shared instance from the SlapOS master,
with parameters and connection parameters serialised as JSON-in-XML.

This is ``slapos.cookbook:request.serialised`` made to run on both the
zc.buildout from PyPI (option values must be strings) and SlapOS's fork, and
to pass structured parameters: each ``config-<name>`` option is a JSON value
(``config-mail-domains = ["example.com"]``, ``config-fqdn = "relay.example"``).

Options as the cookbook's: server-url, key-file, cert-file, computer-id,
partition-id, software-url, software-type, name, shared, state, sla-<key>,
config-<name>, return. Exports ``connection-<name>`` for each name in
``return`` (JSON unless a string). Fails until they are all published, so
that slapgrid processes the partition again; with ``optional = true``, it
does not fail but exports empty values for what is not published yet (for
an answer that may never come, such as a relay that refuses the request).
"""
import json

from slapos.recipe.request import (RequestJSONEncoded,
                                   RequestOptionalJSONEncoded)
from zc.buildout import UserError

from .slapconfiguration import serialise


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


class Recipe:

    def __init__(self, buildout, name, options):
        values = {key: options[key] for key in options.keys()}
        optional = values.get('optional', 'false').lower() in ('true', 'yes', '1')
        self._request = (_OptionalRequest if optional else _Request)(
            buildout, name, values)
        for key, value in values.items():
            if isinstance(value, bytes):
                value = value.decode()
            value = serialise(value)
            if options.get(key) != value:
                options[key] = value

    def install(self):
        return self._request.install()

    update = install
