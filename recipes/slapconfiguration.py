"""Read the partition's parameters from the SlapOS master, validated by the
software release's JSON schemas (``software.cfg.json``), with their defaults.

This is ``slapos.cookbook:slapconfiguration.jsonschema`` made to run on both
the zc.buildout from PyPI and SlapOS's fork: the cookbook recipe stores Python
objects in options, which only the fork accepts, so it runs here against a
plain dict and every value is written back as a string (JSON when it is not a
string already).

Input options (as the cookbook's):
  url, partition, computer, key, cert   the slap connection
                                        (``${slap-connection:...}``)
  jsonschema                            path of ``software.cfg.json``
  set-default                           ``all`` (default), ``main``, ``shared``
                                        or ``none``: apply schema defaults
  validate-parameters                   ``all`` (default) ... as above

Output options:
  configuration                         the validated parameters, JSON
  configuration.<name>                  each parameter (JSON unless a string)
  valid-shared-instance-list            JSON list of ``{reference, parameters}``
  invalid-shared-instance-list          JSON list of ``{reference, parameters,
                                        errors}``: each also reported to the
                                        master as that shared instance's error
  slap-software-type, ipv4-random, ipv6-random, instance-state,
  root-instance-title, ...              as the cookbook's
  user, group                           the partition's unix user and group,
                                        which every service runs as

A main-parameter error fails the run with a message naming the parameter
(``$.mail-domains: ...``) and is reported to the master.
"""
import grp
import json
import os
import pwd


def serialise(value):
    """An option value as buildout stores it: strings as they are, the rest
    as JSON (sets become sorted lists)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (set, frozenset)):
        value = sorted(value)
    return json.dumps(value, sort_keys=True)


def partition_parameters(buildout):
    """The partition's parameters (``[slap-configuration] configuration``),
    ``{}`` when there are none: for a recipe that reads a secret itself
    rather than through an option, which buildout would record."""
    try:
        return json.loads(
            buildout['slap-configuration'].get('configuration') or '{}')
    except ValueError:
        return {}


class Recipe:

    def __init__(self, buildout, name, options):
        # imported here: partition_parameters() serves modules (certificates,
        # which the promises import) that must not load the slap client
        from slapos.recipe.slapconfiguration import JsonSchema
        values = {key: options[key] for key in options.keys()}
        values.setdefault('set-default', 'all')
        values.setdefault('validate-parameters', 'all')
        JsonSchema(buildout, name, values)
        values['user'] = pwd.getpwuid(os.getuid()).pw_name
        values['group'] = grp.getgrgid(os.getgid()).gr_name
        for key, value in values.items():
            value = serialise(value)
            if options.get(key) != value:
                options[key] = value

    def install(self):
        return []

    update = install
