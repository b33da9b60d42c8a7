"""recipes.instance.slapconfiguration: redact, partition_parameters."""
import copy
import json
import pathlib

import pytest
from zc.buildout.buildout import Buildout

from recipes.instance import slapconfiguration
from recipes.instance.slapconfiguration import (REDACTED, SECRET_KEYS,
                                                partition_parameters, redact)

SOFTWARE = pathlib.Path(__file__).resolve().parents[2] / 'software'

CLUSTER = {
    'topology': {'node1': {
        'fqdn': 'relay1.example.com',
        'custom-inbound-certificate': '-----BEGIN PRIVATE KEY-----...',
        'config': {'proxy-map': {'own': {'host': 'h', 'user': 'u',
                                         'password': 'node-s3cret'}}}}},
    'default-relay-config': {'proxy-map': {
        'a': {'host': 'h', 'password': 'a-s3cret', 'domains': ['a.example']},
        'b': {'host': 'h', 'password': ''}}},
}


# -- redact -------------------------------------------------------------------
def test_every_secret_is_replaced_at_any_depth():
    redacted = redact(CLUSTER)
    text = json.dumps(redacted)
    assert 's3cret' not in text and 'PRIVATE KEY' not in text
    node = redacted['topology']['node1']
    assert node['custom-inbound-certificate'] == REDACTED
    assert node['config']['proxy-map']['own'] == {
        'host': 'h', 'user': 'u', 'password': REDACTED}
    assert redacted['default-relay-config']['proxy-map']['a'] == {
        'host': 'h', 'password': REDACTED, 'domains': ['a.example']}


def test_secrets_in_lists_are_replaced_too():
    # shared instances come as a list: an account's reset token
    shared = [{'reference': '_a', 'parameters': {
        'address': 'a@example.com', 'reset-token': 'tok-0123456789'}}]
    assert redact(shared) == [{'reference': '_a', 'parameters': {
        'address': 'a@example.com', 'reset-token': REDACTED}}]
    assert redact([[{'password': 'x'}]]) == [[{'password': REDACTED}]]


def test_an_empty_secret_stays_empty():
    # so that "no password set" still reads as such in the options
    assert redact({'password': '', 'reset-token': None}) == {
        'password': '', 'reset-token': None}
    assert redact(CLUSTER)['default-relay-config']['proxy-map']['b'][
        'password'] == ''


def test_what_is_not_a_secret_is_kept_and_the_input_is_not_changed():
    before = copy.deepcopy(CLUSTER)
    value = {'outbound-password-hash': '$6$x', 'name': 'password',
             'list': ['password', 1, None, True], 'n': 3}
    assert redact(value) == value
    redact(CLUSTER)
    # the recipe keeps the unredacted set for the parameters file
    assert CLUSTER == before
    for scalar in ('s3cret', 7, None, True):
        assert redact(scalar) == scalar


def property_names(schema):
    """Every name under a ``properties`` of a JSON schema, at any depth."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == 'properties' and isinstance(value, dict):
                yield from value
            yield from property_names(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from property_names(item)


def test_every_secret_parameter_of_the_schemas_is_a_secret_key():
    # a new parameter that holds a secret must not reach the options
    names = set()
    for path in list(SOFTWARE.glob('*/*-input-schema.json')) + [
            SOFTWARE / 'stack' / 'definitions.json']:
        names.update(property_names(json.loads(path.read_text())))
    secret_looking = {n for n in names if any(
        word in n for word in ('password', 'token', 'certificate', 'secret',
                               'private'))}
    assert secret_looking and secret_looking <= SECRET_KEYS, \
        secret_looking - SECRET_KEYS


# -- partition_parameters -----------------------------------------------------
def parameters_file(tmp_path, content):
    path = tmp_path / '.slap-parameters.json'
    path.write_text(content if isinstance(content, str)
                    else json.dumps(content))
    return {'slap-configuration': {'parameters-file': str(path)}}


def test_the_parameters_are_read_with_their_secrets(tmp_path):
    shared = [{'reference': '_a', 'parameters': {'reset-token': 't' * 10}}]
    buildout = parameters_file(tmp_path, {
        'configuration': CLUSTER, 'valid-shared-instance-list': shared,
        'invalid-shared-instance-list': []})
    assert partition_parameters(buildout) == CLUSTER
    assert partition_parameters(buildout, 'valid-shared-instance-list') == \
        shared
    assert partition_parameters(buildout, 'invalid-shared-instance-list',
                                None) == []


@pytest.mark.parametrize('content', ['', '{"configuration": ', '{}'],
                         ids=['empty', 'damaged', 'no-such-key'])
def test_the_default_when_the_file_has_nothing(tmp_path, content):
    buildout = parameters_file(tmp_path, content)
    assert partition_parameters(buildout) == {}
    assert partition_parameters(buildout, 'valid-shared-instance-list',
                                []) == []


def test_the_default_when_there_is_no_file(tmp_path):
    buildout = {'slap-configuration': {
        'parameters-file': str(tmp_path / 'absent.json')}}
    assert partition_parameters(buildout) == {}
    assert partition_parameters(buildout, default={'x': 1}) == {'x': 1}


def test_the_default_without_a_slap_configuration_section(tmp_path,
                                                          monkeypatch):
    # a real buildout raises its own KeyErrors (MissingSection, MissingOption)
    monkeypatch.setenv('BUILDOUT_HOME', str(tmp_path / 'home'))
    # Buildout() changes into its directory: the worker's next tests (run as
    # a partition user, who cannot enter tmp_path) must not start there
    monkeypatch.chdir(tmp_path)
    for text in ('[buildout]\nparts =\n',
                 '[buildout]\nparts =\n[slap-configuration]\nx = 1\n'):
        cfg = tmp_path / 'instance.cfg'
        cfg.write_text(text)
        buildout = Buildout(str(cfg), [('buildout', 'directory',
                                        str(tmp_path))],
                            use_user_defaults=False)
        assert partition_parameters(buildout) == {}


def test_the_recorded_options_hold_no_secret():
    # what the cookbook's recipe leaves in the options: the parameters as a
    # whole, each parameter on its own, the shared instances
    key = '-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n'
    values = {
        'configuration': {'fqdn': 'r.example.com',
                          'custom-inbound-certificate': key,
                          'proxy-map': {'s': {'host': 'h', 'user': 'u',
                                              'password': 'pw-1'}}},
        'configuration.fqdn': 'r.example.com',
        'configuration.custom-inbound-certificate': key,
        'configuration.proxy-map': {'s': {'host': 'h', 'password': 'pw-1'}},
        'valid-shared-instance-list': [{'reference': 'a', 'parameters': {
            'address': 'a@example.com', 'reset-token': 'tok-123456'}}],
        'ipv6-random': 'fd00::2',
    }
    options = slapconfiguration.recorded(values)
    text = json.dumps(options)
    for secret in ('MIIEvQ', 'pw-1', 'tok-123456'):
        assert secret not in text
    assert options['configuration.fqdn'] == 'r.example.com'
    assert options['configuration.custom-inbound-certificate'] == \
        slapconfiguration.REDACTED
    assert options['ipv6-random'] == 'fd00::2'
    assert 'a@example.com' in options['valid-shared-instance-list']
