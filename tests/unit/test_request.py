"""recipes.instance.request: find(), secret-config- kept out of options."""
import json

import pytest
from zc.buildout import UserError
from zc.buildout.buildout import Buildout

from recipes.instance.request import Recipe, find
from tests.unit.fake_master import FakeMaster

CLUSTER = {
    'topology': {
        'node1': {'fqdn': 'relay1.example.com', 'config': {'proxy-map': {
            'own': {'host': 'smtp.own.example', 'password': 'node1-s3cret',
                    'domains': ['a.example']}}}},
        'node2': {'fqdn': 'relay2.example.com'},
    },
    'default-relay-config': {'proxy-map': {
        'shared': {'host': 'smtp.shared.example', 'user': 'u',
                   'password': 'default-s3cret', 'domains': ['b.example']}}},
}


# -- find ---------------------------------------------------------------------
def test_find_gives_the_value_at_the_first_path_present():
    paths = ['topology.node1.config.proxy-map',
             'default-relay-config.proxy-map']
    assert find(CLUSTER, paths) == \
        CLUSTER['topology']['node1']['config']['proxy-map']
    # node2 has no config of its own: the cluster's default
    assert find(CLUSTER, ['topology.node2.config.proxy-map',
                          'default-relay-config.proxy-map']) == \
        CLUSTER['default-relay-config']['proxy-map']
    assert find(CLUSTER, ['topology.node2.fqdn']) == 'relay2.example.com'


def test_find_gives_none_when_no_path_is_present():
    assert find(CLUSTER, ['topology.node3.config', 'nowhere']) is None
    assert find(CLUSTER, []) is None
    assert find({}, ['a']) is None


def test_find_does_not_walk_into_what_is_not_an_object():
    # a string or a list on the way is not a match: the next path is tried
    parameters = {'a': 'text', 'b': ['x'], 'c': {'d': 1}}
    assert find(parameters, ['a.length', 'b.0', 'c.d']) == 1


def test_find_gives_empty_and_false_values_found():
    # present but empty is found: it is not "absent"
    parameters = {'a': {}, 'b': False, 'c': 0, 'd': {'e': ''}}
    assert find(parameters, ['a', 'b']) == {}
    assert find(parameters, ['b', 'c']) is False
    assert find(parameters, ['x', 'c']) == 0
    assert find(parameters, ['d.e', 'a']) == ''


# -- the recipe, on a real buildout and a fake master -------------------------
PROFILE = '''
[buildout]
parts =

[slap-connection]
server-url = http://master.invalid
computer-id = COMP-1
partition-id = slappart0

[slap-configuration]
parameters-file = ${buildout:directory}/.slap-parameters.json

[request-node1]
server-url = ${slap-connection:server-url}
computer-id = ${slap-connection:computer-id}
partition-id = ${slap-connection:partition-id}
software-url = http://software.invalid/software.cfg
software-type = relay
name = node1
config-fqdn = "relay1.example.com"
config-cluster-fqdns = ["relay1.example.com", "relay2.example.com"]
secret-config-proxy-map =
  topology.node1.config.proxy-map
  default-relay-config.proxy-map
return = smtp-ipv6 tls-fingerprints
'''


def request_section(tmp_path, parameters=CLUSTER, profile=PROFILE, **more):
    """The options of [request-node1], ``more`` added, with the partition's
    parameters in the parameters file, as [slap-configuration] keeps them."""
    (tmp_path / '.slap-parameters.json').write_text(json.dumps(
        {'configuration': parameters, 'valid-shared-instance-list': []}))
    cfg = tmp_path / 'instance.cfg'
    cfg.write_text(profile + ''.join('%s = %s\n' % item
                                     for item in more.items()))
    buildout = Buildout(str(cfg), [('buildout', 'directory', str(tmp_path))],
                        use_user_defaults=False)
    return buildout, buildout['request-node1']


def test_the_master_gets_config_and_secret_values(tmp_path, monkeypatch):
    master = FakeMaster({'smtp-ipv6': 'fd00::9',
                         'tls-fingerprints': ['AA:BB']}).install(monkeypatch)
    buildout, options = request_section(tmp_path)
    recipe = Recipe(buildout, 'request-node1', options)
    (request,) = master.requests
    assert master.connections == [('http://master.invalid', 'COMP-1',
                                   'slappart0')]
    assert request['software_type'] == 'relay'
    assert request['partition_reference'] == 'node1'
    assert request['shared'] is False
    # serialised as JSON-in-XML, each config-<name> decoded from JSON
    assert list(request['partition_parameter_kw']) == ['_']
    assert json.loads(request['partition_parameter_kw']['_']) == {
        'fqdn': 'relay1.example.com',
        'cluster-fqdns': ['relay1.example.com', 'relay2.example.com'],
        'proxy-map': CLUSTER['topology']['node1']['config']['proxy-map']}
    assert recipe.install() == []


def test_a_secret_value_never_goes_into_the_options(tmp_path, monkeypatch):
    FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}) \
        .install(monkeypatch)
    buildout, options = request_section(tmp_path)
    Recipe(buildout, 'request-node1', options)
    # buildout records every option in .installed.cfg
    recorded = json.dumps({key: options[key] for key in options.keys()})
    assert 's3cret' not in recorded and 'smtp.own.example' not in recorded
    assert 'config-proxy-map' not in options
    # what is not secret is written back as buildout keeps it: strings
    assert options['config-fqdn'] == '"relay1.example.com"'
    assert options['requested-state'] == 'started'


def test_the_connection_parameters_are_exported(tmp_path, monkeypatch):
    FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': ['AA:BB'],
                'other': 'x'}).install(monkeypatch)
    buildout, options = request_section(tmp_path)
    Recipe(buildout, 'request-node1', options)
    # a string as it is, anything else as JSON
    assert options['connection-smtp-ipv6'] == 'fd00::9'
    assert options['connection-tls-fingerprints'] == '["AA:BB"]'
    assert 'connection-other' not in options
    # the cookbook gives the instance's id as bytes: an option is a string
    assert options['instance-guid'] == 'SOFTINST-2'
    assert options['instance-state'] == 'started'


def test_a_secret_from_a_file_is_sent_and_never_an_option(tmp_path,
                                                         monkeypatch):
    # a relay cluster gives its nodes its monitor's password, a file
    master = FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}) \
        .install(monkeypatch)
    (tmp_path / 'password').write_text('monitor-s3cret\n')
    buildout, options = request_section(
        tmp_path, **{'secret-file-config-monitor-password':
                     str(tmp_path / 'password')})
    Recipe(buildout, 'request-node1', options)
    sent = json.loads(master.requests[0]['partition_parameter_kw']['_'])
    assert sent['monitor-password'] == 'monitor-s3cret'
    recorded = json.dumps({key: options[key] for key in options.keys()})
    assert 's3cret' not in recorded


def test_no_secret_found_means_no_parameter(tmp_path, monkeypatch):
    master = FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}) \
        .install(monkeypatch)
    parameters = {'topology': {'node1': {'fqdn': 'relay1.example.com'}}}
    buildout, options = request_section(tmp_path, parameters)
    Recipe(buildout, 'request-node1', options)
    sent = json.loads(master.requests[0]['partition_parameter_kw']['_'])
    assert 'proxy-map' not in sent and sent['fqdn'] == 'relay1.example.com'


def test_an_empty_value_found_is_passed_as_it_is(tmp_path, monkeypatch):
    # a node's own empty proxy-map: no smarthost, not the cluster's ones
    master = FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}) \
        .install(monkeypatch)
    parameters = dict(CLUSTER, topology={'node1': {
        'fqdn': 'relay1.example.com', 'config': {'proxy-map': {}}}})
    buildout, options = request_section(tmp_path, parameters)
    Recipe(buildout, 'request-node1', options)
    sent = json.loads(master.requests[0]['partition_parameter_kw']['_'])
    assert sent['proxy-map'] == {}


def test_without_a_parameters_file_the_secret_is_absent(tmp_path, monkeypatch):
    master = FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}) \
        .install(monkeypatch)
    buildout, options = request_section(tmp_path)
    (tmp_path / '.slap-parameters.json').unlink()
    Recipe(buildout, 'request-node1', options)
    sent = json.loads(master.requests[0]['partition_parameter_kw']['_'])
    assert 'proxy-map' not in sent


def test_install_fails_until_everything_is_published(tmp_path, monkeypatch):
    # slapgrid processes the partition again while install fails; the
    # message names what it waits for (not the cookbook's KeyError)
    FakeMaster({'smtp-ipv6': 'fd00::9'}).install(monkeypatch)
    buildout, options = request_section(
        tmp_path, **{'waiting-for': 'relay node node1 to publish itself'})
    recipe = Recipe(buildout, 'request-node1', options)
    assert options['connection-smtp-ipv6'] == 'fd00::9'
    assert options['connection-tls-fingerprints'] == ''
    with pytest.raises(UserError) as e:
        recipe.install()
    assert str(e.value) == ('waiting for relay node node1 to publish itself: '
                            'tls-fingerprints not published yet')
    assert options['waiting'] == str(e.value)


def test_a_key_returned_if_published_is_exported_never_waited_for(
        tmp_path, monkeypatch):
    # an older relay (upstream's) publishes no outbound-hosts: the backend
    # does not wait for it; a relay that does gets it exported
    FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': ['AA']}).install(
        monkeypatch)
    buildout, options = request_section(
        tmp_path, **{'return-if-published': 'outbound-hosts'})
    recipe = Recipe(buildout, 'request-node1', options)
    assert options['connection-outbound-hosts'] == ''
    assert options['waiting'] == ''
    assert recipe.install() == []
    FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': ['AA'],
                'outbound-hosts': ['fd00::9', 'fd00::a']}).install(monkeypatch)
    buildout, options = request_section(
        tmp_path, **{'return-if-published': 'outbound-hosts'})
    Recipe(buildout, 'request-node1', options)
    assert options['connection-outbound-hosts'] == '["fd00::9", "fd00::a"]'


def test_without_waiting_for_the_request_is_named(tmp_path, monkeypatch):
    FakeMaster(None).install(monkeypatch)
    buildout, options = request_section(tmp_path)
    with pytest.raises(UserError) as e:
        Recipe(buildout, 'request-node1', options).install()
    assert str(e.value) == (
        'waiting for the answer of instance node1 (software type relay of '
        'http://software.invalid/software.cfg): smtp-ipv6, tls-fingerprints '
        'not published yet')


def test_an_answer_that_is_an_error_is_quoted(tmp_path, monkeypatch):
    FakeMaster({'error': 'this domain has already\nbeen claimed'}) \
        .install(monkeypatch)
    buildout, options = request_section(
        tmp_path, **{'waiting-for': "the relay's answer"})
    with pytest.raises(UserError) as e:
        Recipe(buildout, 'request-node1', options).install()
    assert str(e.value) == ("waiting for the relay's answer: it answered with "
                            'an error: this domain has already been claimed')


def test_with_a_waiting_file_the_wait_is_kept_not_raised(
        tmp_path, monkeypatch):
    # the rest of the partition is installed; the waiting-for promise
    # fails with the file's sentence
    master = FakeMaster(None).install(monkeypatch)
    waiting = tmp_path / 'var' / 'waiting'
    buildout, options = request_section(
        tmp_path, **{'waiting-file': str(waiting / 'node1'),
                     'waiting-for': 'relay node node1'})
    assert Recipe(buildout, 'request-node1', options).install() == [
        str(waiting / 'node1')]
    assert (waiting / 'node1').read_text() == (
        'waiting for relay node node1: smtp-ipv6, tls-fingerprints not '
        'published yet\n')
    # answered: the file goes
    master.answer = {'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}
    buildout, options = request_section(
        tmp_path, **{'waiting-file': str(waiting / 'node1')})
    assert Recipe(buildout, 'request-node1', options).install() == []
    assert not (waiting / 'node1').exists()
    assert options['waiting'] == ''


def test_an_optional_request_waits_without_failing(tmp_path, monkeypatch):
    FakeMaster(None).install(monkeypatch)       # nothing published yet
    buildout, options = request_section(tmp_path, optional='true')
    recipe = Recipe(buildout, 'request-node1', options)
    assert recipe.install() == []
    assert options['connection-smtp-ipv6'] == ''
    assert options['connection-tls-fingerprints'] == ''
    assert options['waiting'].endswith(
        'smtp-ipv6, tls-fingerprints not published yet')


def test_a_config_value_that_is_not_json_is_named(tmp_path, monkeypatch):
    FakeMaster({}).install(monkeypatch)
    buildout, options = request_section(
        tmp_path, profile=PROFILE.replace('"relay1.example.com"\n',
                                          'relay1.example.com\n', 1))
    with pytest.raises(UserError) as e:
        Recipe(buildout, 'request-node1', options)
    assert str(e.value).startswith('config-fqdn is not JSON')
    assert "'relay1.example.com'" in str(e.value)


def test_a_urn_slapos_name_is_requested_as_its_products_release(
        tmp_path, monkeypatch):
    relay = '/srv/software/mail-server-relay/software.cfg'
    master = FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []},
                        products={'mail-relay': [relay, '/older.cfg']}) \
        .install(monkeypatch)
    buildout, options = request_section(
        tmp_path, profile=PROFILE.replace(
            'http://software.invalid/software.cfg', 'urn:slapos:mail-relay'))
    Recipe(buildout, 'request-node1', options)
    assert master.requests[0]['software_release'] == relay
    assert options['software-url'] == relay


def test_a_name_the_master_does_not_resolve_is_requested_as_it_is(
        tmp_path, monkeypatch):
    # a master that knows no such product: it may resolve the name itself
    master = FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}) \
        .install(monkeypatch)
    buildout, options = request_section(
        tmp_path, profile=PROFILE.replace(
            'http://software.invalid/software.cfg', 'urn:slapos:mail-relay'))
    Recipe(buildout, 'request-node1', options)
    assert master.requests[0]['software_release'] == 'urn:slapos:mail-relay'
    # an ordinary URL is never looked up
    master.products = {'software.invalid': ['/wrong.cfg']}
    buildout, options = request_section(tmp_path)
    Recipe(buildout, 'request-node1', options)
    assert master.requests[1]['software_release'] == \
        'http://software.invalid/software.cfg'


def test_the_tokens_of_shared_instances_reach_the_node_not_the_options(
        tmp_path, monkeypatch):
    """An HTTPS API domain's http-token: the node's mail-domains carry it
    to the master, the options keep [slap-configuration]'s placeholder."""
    from recipes.instance.slapconfiguration import REDACTED
    master = FakeMaster({'smtp-ipv6': 'fd00::9', 'tls-fingerprints': []}) \
        .install(monkeypatch)
    domains = [{'reference': 'api', 'name': 'in.example.com',
                'http-endpoint': 'https://api.example.com/v1/email',
                'http-token': REDACTED},
               {'reference': 'backend', 'name': 'mail.example.com',
                'mail-server-host': 'fd00::2'}]
    buildout, options = request_section(
        tmp_path, **{'config-mail-domains': json.dumps(domains),
                     'secrets-of-shared-instances': 'mail-domains'})
    (tmp_path / '.slap-parameters.json').write_text(json.dumps(
        {'configuration': CLUSTER, 'valid-shared-instance-list': [
            {'reference': 'api', 'parameters': {
                'name': 'in.example.com', 'http-token': 'the token 123'}}]}))
    Recipe(buildout, 'request-node1', options)
    (request,) = master.requests
    sent = json.loads(request['partition_parameter_kw']['_'])['mail-domains']
    assert sent[0]['http-token'] == 'the token 123'
    assert sent[1] == domains[1]
    recorded = json.dumps({key: options[key] for key in options.keys()})
    assert 'the token 123' not in recorded and REDACTED in recorded
