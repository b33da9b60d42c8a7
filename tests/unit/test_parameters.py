"""recipes.decisions.parameters: with_defaults at every depth, the keys
upstream's open objects accept and this release ignores, the formats the
validator leaves out, the types of what is published."""
import json
import pathlib
import urllib.parse

import pytest

from recipes.decisions.parameters import (format_errors, ignored_keys,
                                          response_schema, typed, walk,
                                          with_defaults)

SOFTWARE = pathlib.Path(__file__).resolve().parents[2] / 'software'


def load(url):
    """A schema document at a file URL, as the master's copy would be read."""
    parsed = urllib.parse.urlparse(url)
    assert parsed.scheme == 'file', url
    return json.loads(pathlib.Path(parsed.path).read_text())


def release_schema(release, name):
    path = SOFTWARE / release / name
    return json.loads(path.read_text()), path.as_uri()


def no_load(url):
    raise AssertionError('nothing to load: %s' % url)


# -- small schemas ------------------------------------------------------------
def test_defaults_inside_a_default():
    schema = {'properties': {'greylisting': {'default': {}, 'properties': {
        'enable': {'default': True},
        'delay': {'default': 60}}}}}
    assert with_defaults(schema, {}, no_load) == {
        'greylisting': {'enable': True, 'delay': 60}}
    # what is given stays, what is not is completed
    assert with_defaults(schema, {'greylisting': {'delay': 5}}, no_load) == {
        'greylisting': {'enable': True, 'delay': 5}}


def test_defaults_inside_each_entry_of_an_open_object():
    schema = {'properties': {'known': {'type': 'object'}},
              'additionalProperties': {'properties': {
                  'port': {'default': 25}, 'domains': {'default': []}}}}
    value = {'a': {'host': 'h'}, 'b': {'port': 465}, 'known': {}}
    assert with_defaults(schema, value, no_load) == {
        'a': {'host': 'h', 'port': 25, 'domains': []},
        'b': {'port': 465, 'domains': []},
        # a declared property is not an entry of the open object
        'known': {}}


def test_defaults_inside_list_items():
    schema = {'properties': {'mail-domains': {'items': {'properties': {
        'mail-server-port': {'default': 10025}}}}}}
    value = {'mail-domains': [{'name': 'a.example'},
                              {'name': 'b.example', 'mail-server-port': 25}]}
    assert with_defaults(schema, value, no_load) == {'mail-domains': [
        {'name': 'a.example', 'mail-server-port': 10025},
        {'name': 'b.example', 'mail-server-port': 25}]}


def test_a_default_is_a_copy_never_the_schemas_own():
    schema = {'properties': {'list': {'default': []},
                             'map': {'default': {'a': []}}}}
    first = with_defaults(schema, {}, no_load)
    first['list'].append('x')
    first['map']['a'].append('y')
    assert with_defaults(schema, {}, no_load) == {'list': [],
                                                  'map': {'a': []}}


def test_a_value_of_the_wrong_type_is_left_to_the_validator():
    schema = {'properties': {'greylisting': {'default': {}, 'properties': {
        'enable': {'default': True}}}, 'list': {'items': {
            'properties': {'x': {'default': 1}}}}}}
    assert with_defaults(schema, {'greylisting': 'off', 'list': 'x'},
                         no_load) == {'greylisting': 'off', 'list': 'x'}
    assert with_defaults(schema, {'list': [1, None, {}]}, no_load) == {
        'greylisting': {'enable': True}, 'list': [1, None, {'x': 1}]}


def test_a_ref_to_another_file_and_the_sibling_default_wins(tmp_path):
    (tmp_path / 'stack').mkdir()
    (tmp_path / 'stack' / 'defs.json').write_text(json.dumps({'$defs': {
        'port': {'type': 'integer', 'default': 25},
        # a $ref inside the other file is relative to that file
        'smarthost': {'properties': {'port': {'$ref': '#/$defs/port'},
                                     'tls': {'$ref': 'more.json#/tls'}}}}}))
    (tmp_path / 'stack' / 'more.json').write_text(json.dumps(
        {'tls': {'default': 'required'}}))
    (tmp_path / 'release').mkdir()
    base = (tmp_path / 'release' / 'input.json').as_uri()
    schema = {'properties': {
        'smtp-port': {'$ref': '../stack/defs.json#/$defs/port',
                      'default': 10025},
        'other-port': {'$ref': '../stack/defs.json#/$defs/port'},
        'smarthost': {'$ref': '../stack/defs.json#/$defs/smarthost',
                      'default': {}}}}
    assert with_defaults(schema, {}, load, base) == {
        'smtp-port': 10025, 'other-port': 25,
        'smarthost': {'port': 25, 'tls': 'required'}}


def test_a_ref_in_the_same_document_a_chain_of_refs_and_escapes():
    schema = {'$defs': {'a/b': {'$ref': '#/$defs/c~d'},
                        'c~d': {'properties': {'x': {'default': 1}}}},
              'properties': {'v': {'$ref': '#/$defs/a~1b', 'default': {}}}}
    documents = {'file:///schema.json': schema}
    assert with_defaults(schema, {}, documents.__getitem__,
                         'file:///schema.json') == {'v': {'x': 1}}


def test_the_oneof_branch_whose_required_keys_are_given():
    schema = {'oneOf': [
        {'required': ['address'], 'properties': {
            'suspended': {'default': False}}},
        {'required': ['alias', 'destinations'], 'properties': {
            'catch-all': {'default': False}}}]}
    assert with_defaults(schema, {'address': 'a@x.example'}, no_load) == {
        'address': 'a@x.example', 'suspended': False}
    assert with_defaults(schema, {'alias': 'b@x.example',
                                  'destinations': ['c@y.example']},
                         no_load) == {
        'alias': 'b@x.example', 'destinations': ['c@y.example'],
        'catch-all': False}
    # an alias without its destinations yet: neither branch
    assert with_defaults(schema, {'alias': 'b@x.example'}, no_load) == {
        'alias': 'b@x.example'}


def test_allof_always_and_anyof_by_required_keys():
    schema = {'allOf': [{'properties': {'a': {'default': 1}}}],
              'anyOf': [{'required': ['x'], 'properties': {
                  'b': {'default': 2}}}, {'properties': {
                      'c': {'default': 3}}}]}
    assert with_defaults(schema, {}, no_load) == {'a': 1, 'c': 3}
    assert with_defaults(schema, {'x': 0}, no_load) == {
        'x': 0, 'a': 1, 'b': 2, 'c': 3}


# -- the releases' schemas ----------------------------------------------------
RATE_LIMITS = {'connections': 60, 'concurrent-connections': 20,
               'messages': 120, 'recipients': 600, 'logins': 30}


def test_the_relay_node_schema():
    schema, base = release_schema('mail-server-relay',
                                  'instance-relay-input-schema.json')
    value = {'fqdn': 'r.example.com', 'mail-domains': [],
             'proxy-map': {'s': {'host': 'h', 'domains': ['a.example']}}}
    # mail-domains has no default: the cluster sends it, and a node
    # without it waits for its cluster's configuration
    assert with_defaults(schema, value, load, base) == {
        'fqdn': 'r.example.com',
        'mail-domains': [],
        'cluster-fqdns': [],
        'proxy-map': {'s': {'host': 'h', 'domains': ['a.example'],
                            'port': 25}},
        'greylisting': {'enable': True, 'greylisting-delay': 60,
                        'whitelist-clients': [], 'whitelist-recipients': []},
        'smtp-port': 10025, 'greylisting-peer-port': 10026,
        'submission-port': 10587,
        'spf': {'enable': True, 'timeout': 10},
        'dmarc': {'enable': True},
        'nameservers': [],
        'logs': {'keep': 14, 'max-size': 100, 'alarm-size': 1024},
        'backup': {'enable': True, 'time': '03:00', 'keep': 7},
        'rate-limits': RATE_LIMITS,
    }


def test_the_relay_cluster_schema_leaves_node_configs_to_the_node():
    schema, base = release_schema('mail-server-relay',
                                  'instance-cluster-input-schema.json')
    value = {'topology': {
        'n1': {'fqdn': 'r1.example.com', 'config': {
            'proxy-map': {'s': {'host': 'h'}}}},
        'n2': {'fqdn': 'r2.example.com', 'state': 'stopped'}}}
    assert with_defaults(schema, value, load, base) == {
        'topology': {
            'n1': {'fqdn': 'r1.example.com', 'sla': {},
                   'software-type': 'relay', 'state': 'started',
                   # a node's config overrides the default key by key:
                   # no greylisting nor spf default here
                   'config': {'proxy-map': {'s': {
                       'host': 'h', 'port': 25, 'domains': []}}}},
            'n2': {'fqdn': 'r2.example.com', 'sla': {},
                   'software-type': 'relay', 'state': 'stopped'}},
        'default-relay-config': {},
        'check-mx': False,
    }


def test_the_account_and_alias_schema():
    schema, base = release_schema('mail-server',
                                  'instance-default-slave-input-schema.json')
    assert with_defaults(schema, {'address': 'a@example.com'}, load,
                         base) == {'address': 'a@example.com',
                                   'suspended': False}
    # an alias has no "suspended"
    alias = {'alias': '@example.com', 'destinations': ['b@example.com']}
    assert with_defaults(schema, dict(alias), load, base) == alias


def test_the_domain_schema_of_a_relay_cluster():
    schema, base = release_schema('mail-server-relay',
                                  'instance-cluster-slave-input-schema.json')
    assert with_defaults(schema, {'name': 'example.com',
                                  'mail-server-host': 'fd00::2'},
                         load, base) == {
        'name': 'example.com', 'mail-server-host': 'fd00::2',
        'mail-server-port': 10025, 'email-size-limit': 50,
        'authentication': 'none',
        # read only for a domain with http-endpoint
        'http-timeout': 30, 'http-concurrency': 10,
        'http-verify-recipients': False}


def test_the_mail_server_schema_has_upstreams_defaults():
    schema, base = release_schema('mail-server',
                                  'instance-default-input-schema.json')
    value = with_defaults(schema, {'mail-domains': ['example.com']}, load,
                          base)
    # upstream's defaults: the relay found as urn:slapos:mail-relay, spam
    # filtering on, ManageSieve on 4190
    assert value['inbound-relay'] == {'enable': True,
                                      'relay-sr-url': 'urn:slapos:mail-relay'}
    assert value['outbound-relay'] == {'enable': True, 'port': 25}
    assert value['bogofilter'] == {'enable': True}
    assert value['sieve-port'] == 4190
    assert value['logs'] == {'keep': 14, 'max-size': 100, 'alarm-size': 1024}
    assert value['backup'] == {'enable': True, 'time': '03:00', 'keep': 7}
    # the checks of an MX: greylisting only when configured, SPF on
    assert value['greylisting'] == {
        'enable': False, 'greylisting-delay': 60, 'whitelist-clients': [],
        'whitelist-recipients': []}
    assert value['spf'] == {'enable': True, 'timeout': 10}
    assert value['nameservers'] == []
    assert value['rate-limits'] == RATE_LIMITS
    assert value['email-size-limit'] == 50 and 'postmaster' not in value
    assert with_defaults(schema, {'mail-domains': ['example.com'],
                                  'greylisting': {'greylisting-delay': 5}},
                         load, base)['greylisting']['enable'] is True
    assert with_defaults(schema, {'mail-domains': ['example.com'],
                                  'inbound-relay': {'enable': False}},
                         load, base)['inbound-relay'] == {
        'relay-sr-url': 'urn:slapos:mail-relay', 'enable': False}


# -- upstream's requests: open objects, ignored keys -----------------------------
# Every key of upstream's cluster schema, and keys it accepts in its open
# objects that this release does not use (upstream's own tests give flat
# greylisting-* keys; its relay configuration also has dmarc, which this
# release uses).
UPSTREAM_CLUSTER = {
    'default-relay-config': {
        'proxy-map': {'provider': {
            'host': 'smtp.provider.example', 'port': 587, 'user': 'relay',
            'password': 'secret', 'domains': ['mail1.example.com']}},
        'greylisting': {'enable': True, 'greylisting-delay': 5,
                        'whitelist-clients': ['192.0.2.1'],
                        'whitelist-recipients': ['mail2.example.com'],
                        'postgrey-option': '--auto-whitelist-clients'},
        'dmarc': {'enable': True},
        'greylisting-enabled': True},
    'relay-domain': 'relay.example.net',
    'topology': {'relay-one': {
        'fqdn': 'relay1.example.net',
        'sla': {'computer_guid': 'COMP-1', 'instance_guid': 'SOFTINST-1'},
        'sr-url': 'https://lab.example/mail-server-relay/software.cfg',
        'software-type': 'relay', 'state': 'started',
        'config': {'greylisting': {'greylisting-delay': 10},
                   'monitor-password': 'x'},
        'custom-inbound-certificate': 'PEM',
        'monitor': 'yes'}},
}


def test_upstreams_open_objects_name_their_ignored_keys():
    schema, base = release_schema('mail-server-relay',
                                  'instance-cluster-input-schema.json')
    value = json.loads(json.dumps(UPSTREAM_CLUSTER))
    assert sorted(ignored_keys(schema, value, load, base)) == [
        ('default-relay-config.greylisting-enabled', ''),
        ('default-relay-config.greylisting.postgrey-option', ''),
        ('topology.relay-one.config.monitor-password', ''),
        ('topology.relay-one.monitor', '')]
    # a closed object has no ignored key: the validator refuses the others
    mail, mail_base = release_schema('mail-server',
                                     'instance-default-input-schema.json')
    assert ignored_keys(mail, {'mail-domains': ['a.example'], 'x': 1}, load,
                        mail_base) == []


def test_a_wrong_nameserver_is_named_with_its_path():
    schema, base = release_schema('mail-server-relay',
                                  'instance-cluster-input-schema.json')
    value = {'topology': {'n1': {'fqdn': 'r1.example.com', 'config': {
        'nameservers': ['192.0.2.53', '1.2.3']}}},
        'default-relay-config': {'nameservers': ['[2001:db8::53]:5353']}}
    assert format_errors(schema, value, load, base) == [
        "topology.n1.config.nameservers[1]: '1.2.3' is not a resolver: give "
        "an IP address, or [address]:port (for example 192.0.2.53, "
        "2001:db8::53 or [2001:db8::53]:5353)"]
    value['topology']['n1']['config']['nameservers'] = ['192.0.2.53']
    assert format_errors(schema, value, load, base) == []


def test_walk_names_every_value_it_describes():
    schema = {'properties': {'a': {'items': {'properties': {'b': {}}}}},
              'additionalProperties': {'properties': {'c': {}}}}
    value = {'a': [{'b': 1}], 'x': {'c': 2}}
    assert [path for path, _, _, _ in walk(schema, value, no_load)] == [
        '', 'a', 'a[0]', 'a[0].b', 'x', 'x.c']


# -- what is published, typed by the response schemas ------------------------------
def test_published_text_becomes_what_the_response_schema_says():
    description, base = release_schema('mail-server', 'software.cfg.json')
    schema, url = response_schema(description, 'default', False, load, base)
    assert url.endswith('/instance-default-output-schema.json')
    assert typed(schema, {
        'imap-smtp-ipv6': 'fd00::2', 'smtp-port': '10025',
        'tls-fingerprints': '["AA", "BB"]',
        'dns-records': '[{"name": "a.example", "type": "MX", '
                       '"value": "10 r.example."}]',
        'password-url': 'https://[fd00::2]:8081/password',
        'undeclared': '12'}, load, url) == {
        'imap-smtp-ipv6': 'fd00::2', 'smtp-port': 10025,
        'tls-fingerprints': ['AA', 'BB'],
        'dns-records': [{'name': 'a.example', 'type': 'MX',
                         'value': '10 r.example.'}],
        'password-url': 'https://[fd00::2]:8081/password',
        'undeclared': '12'}
    with pytest.raises(ValueError, match="smtp-port = '' is not a JSON "
                       "integer"):
        typed(schema, {'smtp-port': ''}, load, url)
    with pytest.raises(ValueError, match='tls-fingerprints'):
        typed(schema, {'tls-fingerprints': '"AA"'}, load, url)
    shared, _ = response_schema(description, 'default', True, load, base)
    assert shared['title'] == 'Account or alias connection parameters'
