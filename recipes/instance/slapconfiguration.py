"""Read the partition's parameters from the SlapOS master, validated by the
software release's JSON schemas (``software.cfg.json``), with their defaults.

This is ``slapos.cookbook:slapconfiguration.jsonschema`` made to run on both
the zc.buildout from PyPI and SlapOS's fork: the cookbook recipe stores Python
objects in options, which only the fork accepts, so it runs here against a
plain dict and every value is written back as a string (JSON when it is not a
string already).

Every default of the schemas is applied, also inside defaults, open
objects and lists (``recipes.decisions.parameters``): no template or module
restates one.

The shared instances are validated here, not by the cookbook's recipe,
with its validator and its error texts, and each result is kept
(``shared-validation-file``, 0600: the parameters hold secrets) for as long
as the shared instance asks for the same parameters under the same schema:
an instance run where nothing changed validates nothing again (the
cookbook's validator cost about 15 ms per shared instance: 500 accounts
made such a run half as long again as an empty one).

Secrets never sit in the options, which buildout records in the partition's
``.installed*.cfg``: the value of every key named in ``SECRET_KEYS``
(passwords, reset tokens, a private key) is replaced there by
``REDACTED``, and the whole validated set is written, 0600, to
``parameters-file``, which the recipes that need a secret read
(``partition_parameters``).

Input options (as the cookbook's):
  url, partition, computer, key, cert   the slap connection
                                        (``${slap-connection:...}``)
  jsonschema                            path of ``software.cfg.json``
(the main parameters and the shared instances are always validated and
completed with their defaults: the cookbook's ``set-default`` and
``validate-parameters`` ``all``)

Output options:
  configuration                         the validated parameters, JSON
  configuration.<name>                  each parameter (JSON unless a string)
  valid-shared-instance-list            JSON list of ``{reference, parameters}``
  invalid-shared-instance-list          JSON list of ``{reference, parameters,
                                        errors}``: each also reported to the
                                        master as that shared instance's error
  parameters-file                       the same, secrets included (0600)
  slap-software-type, ipv4-random, ipv6-random, instance-state,
  root-instance-title, ...              as the cookbook's
  user, group                           the partition's unix user and group,
                                        which every service runs as

A main-parameter error fails the run with a message naming the parameter
(``$.mail-domains: ...``) and is reported to the master; so does a value
whose ``format`` the validator does not check (a ``nameserver``:
``recipes.decisions.parameters.format_errors``). The keys that an open
object accepts and this release ignores (``$defs/ignored``) are named in
the instance log.
"""
import copy
import functools
import grp
import hashlib
import json
import logging
import os
import pwd

from zc.buildout import UserError

from ..decisions.parameters import format_errors, ignored_keys, with_defaults
from ..stores.files import read_json, write_atomically
from .profile_text import json_value

# (http-ca-certificate is public, but a PEM block: out of the options too)
SECRET_KEYS = frozenset(('password', 'reset-token',
                         'custom-inbound-certificate', 'monitor-password',
                         'http-token', 'http-ca-certificate'))
REDACTED = '<secret: see parameters-file>'
# what the parameters file keeps, secrets included
KEPT = ('configuration', 'valid-shared-instance-list',
        'invalid-shared-instance-list')
PARAMETERS_FILE = '.slap-parameters.json'
# what validate_shared found of each shared instance's parameters
SHARED_VALIDATION_FILE = '.slap-shared-validation.json'


def serialise(value):
    """An option value as buildout stores it: strings as they are, the rest
    as JSON (sets become sorted lists), which buildout takes literally
    (``profile_text.json_value``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (set, frozenset)):
        value = sorted(value)
    return json_value(value)


def redact(value):
    """``value`` with the value of every key of ``SECRET_KEYS`` (in nested
    objects and lists too) replaced by ``REDACTED`` when it is not empty."""
    if isinstance(value, dict):
        return {key: (REDACTED if key in SECRET_KEYS and item not in ('', None)
                      else redact(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def recorded(values):
    """``values`` as the options buildout records: strings, every secret
    redacted."""
    options = {}
    for key, value in values.items():
        if key.startswith('configuration.'):
            # configuration.<name>: that parameter alone
            value = redact({key[len('configuration.'):]: value}).popitem()[1]
        elif key == 'configuration' or key.endswith('instance-list'):
            value = redact(value)
        options[key] = serialise(value)
    return options


def partition_parameters(buildout, key='configuration', default=None):
    """What ``[slap-configuration]`` validated, secrets included: ``key`` of
    its parameters file (``configuration``: the parameters,
    ``valid-shared-instance-list``...), ``default`` (``{}``) when there is
    none. For a recipe that needs a secret."""
    default = {} if default is None else default
    try:
        path = buildout['slap-configuration']['parameters-file']
    except KeyError:
        return default
    return read_json(path, {}).get(key, default)


def apply_defaults(recipe, values, logger):
    """Complete what the cookbook's ``recipe`` validated in ``values`` with
    the defaults it leaves out; check the formats of the main parameters
    (a UserError names the wrong ones, also reported to the master) and
    log the keys they give that are ignored."""
    description = recipe._description(values)
    load = functools.lru_cache()(lambda url: description._readAsJson(url))
    main = description.getInstanceRequestParameterSchema()
    configuration = values.get('configuration')
    if main and isinstance(configuration, dict):
        base = main.get('$id', '')
        errors = format_errors(main, configuration, load, base)
        if errors:
            message = 'Invalid parameters:\n' + '\n'.join(
                '  %s' % e for e in errors)
            recipe._computer_partition.error(message, logger=logger)
            raise UserError(message)
        for path, note in ignored_keys(main, configuration, load, base):
            logger.warning('parameter %s is not used by this software '
                           'release: ignored%s', path,
                           ' (%s)' % note if note else '')
        with_defaults(main, configuration, load, base)
        for key, value in configuration.items():
            values['configuration.' + key] = value
    shared = recipe._getSharedSchema(description)
    if shared:
        for instance in values.get('valid-shared-instance-list') or ():
            with_defaults(shared, instance['parameters'], load,
                          shared.get('$id', ''))


def validate_shared(recipe, values, cache_path, logger):
    """``values``' valid- and invalid-shared-instance-list from its
    slave-instance-list (as the master sent it), as the cookbook's recipe
    makes them with ``set-default`` and ``validate-parameters`` ``all``, its
    errors reported to the master the same way; a result found in the
    cache at ``cache_path`` is not computed again."""
    from slapos.recipe.librecipe import unwrap
    from slapos.recipe.slapconfiguration import DefaultValidator
    from slapos.util import SoftwareReleaseSchemaValidationError
    shared_list = values.pop('slave-instance-list', None) or []
    schema = recipe._getSharedSchema(recipe._description(values)) \
        if shared_list else None
    if shared_list and schema is None:
        raise UserError('requested shared software-type %r seems to have no '
                        'JSON schema entry in the software.cfg.json.'
                        % values.get('slap-software-type'))
    schema_digest = hashlib.sha256(json.dumps(
        schema, sort_keys=True).encode()).hexdigest()
    cache = read_json(cache_path, {})
    kept, valid, invalid = {}, [], []
    for instance in shared_list:
        instance = dict(instance)
        reference = instance.pop('slave_reference')
        parameters = unwrap(instance)
        key = hashlib.sha256(json.dumps(
            [schema_digest, parameters], sort_keys=True).encode()).hexdigest()
        result = cache.get(key)
        if result is None:
            try:
                errors = list(DefaultValidator(True).validate(schema,
                                                              parameters))
            except UserError as e:
                errors = list(e.args)
            result = {'parameters': parameters}
            if errors:
                result['errors'] = str(SoftwareReleaseSchemaValidationError(
                    errors).format_error(indent=2))
        kept[key] = result
        item = dict(result, reference=reference)
        if 'errors' in item:
            invalid.append(item)
            recipe._computer_partition.error(
                item['errors'], logger=logger, slave_reference=reference)
        else:
            valid.append(item)
    if kept != cache:
        write_atomically(cache_path, json.dumps(kept, sort_keys=True))
    values['valid-shared-instance-list'] = copy.deepcopy(valid)
    values['invalid-shared-instance-list'] = copy.deepcopy(invalid)


class Recipe:

    def __init__(self, buildout, name, options):
        # imported here: partition_parameters() serves modules that the
        # promises import, which must not load the slap client
        from slapos.recipe.slapconfiguration import JsonSchema
        values = {key: options[key] for key in options.keys()}
        # the main parameters by the cookbook's recipe; the shared
        # instances as they come (validate_shared)
        values.update({'set-default': 'main', 'validate-parameters': 'main',
                       'unwrap-shared': 'false'})
        recipe = JsonSchema(buildout, name, values)
        logger = logging.getLogger(name)
        validate_shared(recipe, values, os.path.join(
            buildout['buildout']['directory'], SHARED_VALIDATION_FILE),
            logger)
        apply_defaults(recipe, values, logger)
        values['user'] = pwd.getpwuid(os.getuid()).pw_name
        values['group'] = grp.getgrgid(os.getgid()).gr_name
        self.path = values['parameters-file'] = os.path.join(
            buildout['buildout']['directory'], PARAMETERS_FILE)
        self.kept = {key: values.get(key) for key in KEPT}
        for key, value in recorded(values).items():
            if options.get(key) != value:
                options[key] = value

    def install(self):
        # before the type profile's sub-buildout (switch-softwaretype refers
        # to this section), whose recipes read it
        if read_json(self.path, None) != self.kept:
            write_atomically(self.path, json.dumps(self.kept, sort_keys=True))
        return []

    update = install
