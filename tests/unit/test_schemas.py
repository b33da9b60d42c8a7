"""The JSON schemas shipped next to each software.cfg accept what
interface.md documents and name the parameter they refuse."""
import json
import pathlib

import jsonschema
import pytest
import referencing

SOFTWARE = pathlib.Path(__file__).resolve().parents[2] / 'software'


def schema(release, name):
    """A schema, with its file URL as its id: its $ref to another file
    resolves as on the SlapOS master, next to the software URL."""
    path = SOFTWARE / release / name
    return dict(json.loads(path.read_text()), **{'$id': path.as_uri()})


def retrieve(uri):
    path = pathlib.Path(uri[len('file://'):])
    return referencing.Resource.from_contents(json.loads(path.read_text()))


REGISTRY = referencing.Registry(retrieve=retrieve)


def errors(s, instance):
    v = jsonschema.Draft202012Validator(s, registry=REGISTRY)
    return [e.json_path + ': ' + e.message for e in v.iter_errors(instance)]


@pytest.mark.parametrize('release', ['mail-server', 'mail-server-relay'])
def test_software_cfg_json_names_existing_schemas(release):
    description = schema(release, 'software.cfg.json')
    assert description['serialisation'] == 'json-in-xml'
    for software_type in description['software-type'].values():
        for key in ('request', 'response'):
            s = schema(release, software_type[key])
            jsonschema.Draft202012Validator.check_schema(s)
            errors(s, {})     # every $ref resolves


def test_mail_server_requires_mail_domains():
    s = schema('mail-server', 'instance-default-input-schema.json')
    assert errors(s, {'mail-domains': ['example.com'],
                      'test-account': True}) == []
    assert any("'mail-domains' is a required property" in e
               for e in errors(s, {}))
    assert any(e.startswith("$['smtp-port']") for e in errors(
        s, {'mail-domains': ['example.com'], 'smtp-port': 'x'}))


def test_account_and_alias_shared_instances():
    s = schema('mail-server', 'instance-default-slave-input-schema.json')
    assert errors(s, {'address': 'alice@example.com'}) == []
    assert errors(s, {'alias': '@example.com',
                      'destinations': ['bob@example.com']}) == []
    assert errors(s, {'address': 'not an address'})
    assert errors(s, {'alias': 'x@example.com', 'destinations': []})


def test_relay_cluster_and_domain():
    s = schema('mail-server-relay', 'instance-cluster-input-schema.json')
    assert errors(s, {'topology': {'node1': {'fqdn': 'relay1.example.com'}}}) == []
    assert any("'topology'" in e for e in errors(s, {}))
    d = schema('mail-server-relay', 'instance-cluster-slave-input-schema.json')
    assert errors(d, {'name': 'example.com', 'mail-server-host': 'fd00::2'}) == []
    assert errors(d, {'name': 'example.com', 'mail-server-host': 'fd00::2',
                      'authentication': 'fingerprint'})
    assert errors(d, {'name': 'not a domain', 'mail-server-host': 'fd00::2'})


# -- upstream's requests, every key of its schemas --------------------------------
UPSTREAM_BACKEND = {
    'mail-domains': ['mail1.example.com'],
    'inbound-relay': {'enable': True, 'relay-sr-url': 'urn:slapos:mail-relay'},
    'outbound-relay': {'enable': True, 'host': 'smtp.provider.example',
                       'port': 587, 'user': 'backend', 'password': 'secret'},
    'email-size-limit': 20, 'mailbox-size-limit': 2048,
    'bogofilter': {'enable': False}, 'test-account': True}


def test_upstreams_full_requests_are_valid():
    from tests.unit.test_parameters import UPSTREAM_CLUSTER
    s = schema('mail-server-relay', 'instance-cluster-input-schema.json')
    assert errors(s, UPSTREAM_CLUSTER) == []
    s = schema('mail-server', 'instance-default-input-schema.json')
    assert errors(s, UPSTREAM_BACKEND) == []
    shared = schema('mail-server', 'instance-default-slave-input-schema.json')
    assert errors(shared, {'address': 'alice@mail1.example.com',
                           'reset-token': 'a-new-token-0123'}) == []
    domain = schema('mail-server-relay',
                    'instance-cluster-slave-input-schema.json')
    assert errors(domain, {'name': 'mail1.example.com',
                           'mail-server-host': '2001:db8::1',
                           'mail-server-port': 10025,
                           'authentication': 'fingerprint',
                           'fingerprints': ['AB' * 32]}) == []


def test_a_relay_domain_name_follows_upstreams_pattern():
    d = schema('mail-server-relay', 'instance-cluster-slave-input-schema.json')
    # upstream's pattern: names.py decides what is a mail domain, with an
    # error of that shared instance only
    for name in ('Mail1.Example.COM', 'under_score.example.com', 'localhost'):
        assert errors(d, {'name': name, 'mail-server-host': 'fd00::2'}) == []
    assert errors(d, {'name': 'not a domain', 'mail-server-host': 'fd00::2'})
    assert errors(d, {'name': 'a/b.example', 'mail-server-host': 'fd00::2'})


def test_upstreams_cluster_requests_are_accepted():
    # upstream's own tests: a topology entry without fqdn, and the
    # top-level outbound-domain-whitelist that upstream dropped
    s = schema('mail-server-relay', 'instance-cluster-input-schema.json')
    assert errors(s, {'topology': {'relay-test': {'state': 'started'}},
                      'outbound-domain-whitelist': ['a.example'],
                      'relay-domain': 'relay.test.lan'}) == []
    # a wrong fqdn is still refused
    assert errors(s, {'topology': {'n': {'fqdn': 'not a name'}}})


# where a relay configuration's (or a backend's) own keys go: each schema,
# and how a request wraps those keys in it
CONFIGURATIONS = [
    ('mail-server', 'instance-default-input-schema.json',
     lambda p: dict({'mail-domains': ['example.com']}, **p)),
    ('mail-server-relay', 'instance-relay-input-schema.json',
     lambda p: dict({'fqdn': 'relay.example.com'}, **p)),
    ('mail-server-relay', 'instance-cluster-input-schema.json',
     lambda p: {'topology': {'n': {'fqdn': 'r.example.com'}},
                'default-relay-config': p})]


@pytest.mark.parametrize('release, name, wrap', CONFIGURATIONS)
def test_logs_and_backup_parameters(release, name, wrap):
    s = schema(release, name)
    assert errors(s, wrap({'logs': {'keep': 30, 'max-size': 10,
                                    'alarm-size': 500},
                           'backup': {'enable': False, 'time': '23:59',
                                      'keep': 3}})) == []
    for bad, where in (({'backup': {'time': '3:00'}}, 'backup.time'),
                       ({'backup': {'time': '24:00'}}, 'backup.time'),
                       ({'backup': {'keep': 0}}, 'backup.keep'),
                       ({'logs': {'keep': 0}}, 'logs.keep'),
                       ({'logs': {'rotate': 1}}, "'rotate'")):
        found = errors(s, wrap(bad))
        assert found and any(where in e for e in found), (bad, found)


@pytest.mark.parametrize('release, name, wrap', CONFIGURATIONS)
def test_the_resolvers_where_interface_md_first_put_them(release, name,
                                                         wrap):
    """spf.nameservers (interface.md's first place) as nameservers beside
    spf: both accepted, both checked."""
    from recipes.decisions.dns import resolvers
    s = schema(release, name)
    for given in ({'spf': {'enable': True, 'nameservers': ['192.0.2.53'],
                           'timeout': 5}},
                  {'nameservers': ['192.0.2.53']}):
        assert errors(s, wrap(given)) == []
        assert resolvers(given) == ['192.0.2.53']
    assert errors(s, wrap({'spf': {'nameservers': 'not a list'}}))
    # nameservers of its own win; none at all: the system's resolver
    assert resolvers({'nameservers': ['[2001:db8::53]:5353'],
                      'spf': {'nameservers': ['192.0.2.53']}}) == [
        '[2001:db8::53]:5353']
    assert resolvers({'nameservers': [], 'spf': {}}) == []


def test_a_relay_domain_with_an_https_api_instead_of_a_backend():
    d = schema('mail-server-relay', 'instance-cluster-slave-input-schema.json')
    api = {'name': 'in.example.com', 'authentication': 'password',
           'http-endpoint': 'https://api.example.com/v1/email',
           'http-token': 'secret'}
    assert errors(d, api) == []
    assert errors(d, dict(api, **{
        'http-ca-certificate': '-----BEGIN CERTIFICATE-----\nMII...\n',
        'http-fingerprints': ['AB' * 32], 'http-timeout': 10,
        'http-concurrency': 4, 'http-verify-recipients': True})) == []
    no_token = dict(api)
    del no_token['http-token']
    assert errors(d, no_token) == [
        "$: 'http-token' is a dependency of 'http-endpoint'"]
    assert errors(d, dict(api, **{'http-endpoint': 'ftp://x/'}))
    assert errors(d, dict(api, **{'http-timeout': 0}))
    assert errors(d, dict(api, **{'http-fingerprints': ['nope']}))
