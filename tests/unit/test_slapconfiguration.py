from recipes.instance.slapconfiguration import serialise


def test_strings_stay_and_the_rest_becomes_json():
    assert serialise('fd00::2') == 'fd00::2'
    assert serialise(10025) == '10025'
    assert serialise(True) == 'true'
    assert serialise({'fd00::3', 'fd00::2'}) == '["fd00::2", "fd00::3"]'
    assert serialise({'b': [1], 'a': None}) == '{"a": null, "b": [1]}'


# -- what the cookbook's validator leaves out: defaults, formats, ignored keys
import copy
import logging
import os
import pathlib

import pytest
from slapos.recipe.slapconfiguration import JsonSchema
from zc.buildout import UserError

from recipes.instance.slapconfiguration import apply_defaults
from tests.unit.test_parameters import UPSTREAM_CLUSTER

RELAY_SCHEMA = str(pathlib.Path(__file__).resolve().parents[2] / 'software'
                   / 'mail-server-relay' / 'software.cfg.json')


class ValidatedBy:
    """The cookbook's recipe once it validated: its schema lookups, and the
    master it reports an error to."""
    _description = JsonSchema._description
    _getSharedSchema = JsonSchema._getSharedSchema

    def __init__(self):
        self._computer_partition = self
        self.reported = []

    def error(self, message, logger=None):
        self.reported.append(message)


def cluster_values(configuration):
    return {'jsonschema': RELAY_SCHEMA, 'slap-software-type': 'cluster',
            'configuration': copy.deepcopy(configuration)}


def test_upstreams_unknown_keys_are_named_in_the_instance_log(caplog):
    values = cluster_values(UPSTREAM_CLUSTER)
    with caplog.at_level(logging.WARNING, logger='slap-configuration'):
        apply_defaults(ValidatedBy(), values,
                       logging.getLogger('slap-configuration'))
    logged = [r.getMessage() for r in caplog.records]
    assert 'parameter default-relay-config.greylisting-enabled is not used ' \
        'by this software release: ignored' in logged
    # upstream's dmarc is used
    assert not any('.dmarc ' in line for line in logged)
    assert any('topology.relay-one.monitor ' in line for line in logged)
    assert len(logged) == 4
    # and the rest is completed with its defaults
    assert values['configuration']['check-mx'] is False
    assert values['configuration.check-mx'] is False


def test_a_wrong_nameserver_fails_naming_the_parameter():
    recipe = ValidatedBy()
    values = cluster_values({
        'topology': {'node1': {'fqdn': 'relay1.example.com'}},
        'default-relay-config': {'nameservers': ['1.2.3']}})
    with pytest.raises(UserError) as error:
        apply_defaults(recipe, values, logging.getLogger('test'))
    assert str(error.value) == (
        "Invalid parameters:\n  default-relay-config.nameservers[0]: "
        "'1.2.3' is not a resolver: give an IP address, or [address]:port "
        "(for example 192.0.2.53, 2001:db8::53 or [2001:db8::53]:5353)")
    # reported to the master, as the validator's errors are
    assert recipe.reported == [str(error.value)]


# -- the shared instances: validated once for the same parameters ------------
import json

from recipes.instance import slapconfiguration

BACKEND_SCHEMA = str(pathlib.Path(__file__).resolve().parents[2] /
                     'software' / 'mail-server' / 'software.cfg.json')


class SharedValidatedBy(ValidatedBy):

    def error(self, message, logger=None, slave_reference=None):
        self.reported.append((slave_reference, message))


def backend_values(*shared):
    """What the cookbook's recipe leaves with validate-parameters main and
    unwrap-shared false: the shared instances as the master sent them."""
    return {'jsonschema': BACKEND_SCHEMA, 'slap-software-type': 'default',
            'slave-instance-list': [
                {'slave_reference': reference, 'slap_software_type': 'default',
                 '_': json.dumps(parameters)}
                for reference, parameters in shared]}


def test_shared_instances_are_validated_once_for_the_same_parameters(
        tmp_path, monkeypatch):
    cache = str(tmp_path / 'validation.json')
    recipe = SharedValidatedBy()
    shared = [('alice', {'address': 'alice@example.com'}),
              ('wrong', {'address': 'bob@example.com', 'quota': 'big'})]
    values = backend_values(*shared)
    slapconfiguration.validate_shared(recipe, values, cache,
                                      logging.getLogger('test'))
    assert 'slave-instance-list' not in values     # never recorded
    # (apply_defaults completes them after)
    assert values['valid-shared-instance-list'] == [{
        'reference': 'alice', 'parameters': {'address': 'alice@example.com'}}]
    (invalid,) = values['invalid-shared-instance-list']
    assert invalid['reference'] == 'wrong' and "'big'" in invalid['errors']
    assert recipe.reported == [('wrong', invalid['errors'])]
    assert oct(os.stat(cache).st_mode & 0o777) == '0o600'
    # the next run: the same lists and reports, nothing validated again
    validated = []
    from slapos.recipe import slapconfiguration as cookbook
    real = cookbook.DefaultValidator

    class Counting(real):
        def validate(self, schema, instance):
            validated.append(instance)
            return super().validate(schema, instance)
    monkeypatch.setattr(cookbook, 'DefaultValidator', Counting)
    again = backend_values(*shared)
    recipe.reported = []
    slapconfiguration.validate_shared(recipe, again, cache,
                                      logging.getLogger('test'))
    assert validated == []
    assert again['valid-shared-instance-list'] == values[
        'valid-shared-instance-list']
    assert again['invalid-shared-instance-list'] == values[
        'invalid-shared-instance-list']
    assert recipe.reported == [('wrong', invalid['errors'])]
    # a changed shared instance is validated again, and only it
    changed = backend_values(shared[0], ('wrong', {'address': 'bob@example.com',
                                                   'quota': 10}))
    slapconfiguration.validate_shared(recipe, changed, cache,
                                      logging.getLogger('test'))
    assert validated == [{'address': 'bob@example.com', 'quota': 10}]
    assert changed['invalid-shared-instance-list'] == []
    assert len(json.load(open(cache))) == 2
