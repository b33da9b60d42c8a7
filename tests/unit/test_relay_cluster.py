"""recipes.instance.relay_cluster: Domains and Publications."""
import json
import os
import stat

import pytest

from recipes.decisions.passwords import verify_password
from recipes.instance.relay_cluster import Domains, Publications
from tests.dns_server import DNSServer
from tests.unit.fake_master import FakeMaster

# what the cluster's nameservers say: example.org's MX points at a node;
# example.com is exempt from verification (a smarthost of the proxy-map
# sends its mail)
DNS = {('example.org', 'MX'): ['10 relay2.example.net.'],
       ('elsewhere.example', 'MX'): ['10 mx.elsewhere.example.']}
# the cluster's parameters, the schema's defaults applied
PARAMETERS = {
    'topology': {'node1': {'fqdn': 'relay1.example.net', 'state': 'started'},
                 'node2': {'fqdn': 'relay2.example.net', 'state': 'started'}},
    'default-relay-config': {'proxy-map': {'provider': {
        'host': 'smtp.provider.example', 'port': 25,
        'password': '<secret: see parameters-file>',
        'domains': ['example.com']}}},
    'check-mx': False,
}


@pytest.fixture(autouse=True)
def nameservers(monkeypatch):
    """The cluster asks the stand-in DNS server (default-relay-config's
    nameservers)."""
    with DNSServer('127.0.0.1', DNS) as server:
        monkeypatch.setitem(PARAMETERS, 'default-relay-config', dict(
            PARAMETERS['default-relay-config'],
            nameservers=[server.address]))
        yield server


def shared(reference, name, authentication='none'):
    return {'reference': reference, 'parameters': {
        'name': name, 'mail-server-host': 'fd00::2',
        'mail-server-port': 10025, 'authentication': authentication}}


SHARED = [shared('p', 'example.com', 'password'), shared('n', 'example.org'),
          shared('dup', 'example.com')]


def domains(tmp_path, shared_instances=SHARED):
    options = {'parameters': json.dumps(PARAMETERS),
               'shared-instances': json.dumps(shared_instances),
               'state-directory': str(tmp_path / 'srv' / 'relay')}
    return Domains(None, 'relay-domains', options), options


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path) as f:
        return json.load(f)


# -- Domains ------------------------------------------------------------------
def test_computing_the_options_writes_nothing(tmp_path):
    _, options = domains(tmp_path)
    assert not (tmp_path / 'srv').exists()
    assert all(isinstance(v, str) for v in options.values())
    # upstream's backend-domains: one domain a line
    assert options['backend-domains'] == 'example.com\nexample.org'
    assert json.loads(options['errors'])['dup'] == {
        'domain': 'example.com',
        'error': 'this domain has already been claimed'}
    assert json.loads(options['proxy-errors']) == []
    assert options['credentials-file'] == str(
        tmp_path / 'srv' / 'relay' / 'credentials.json')
    (p, n) = json.loads(options['node-domains'])
    assert p['outbound-user'] == 'example.com'
    assert p['outbound-password-hash'] and 'outbound-password' not in p


def test_install_keeps_claims_and_credentials_private(tmp_path):
    recipe, options = domains(tmp_path)
    assert recipe.install() == []
    directory = tmp_path / 'srv' / 'relay'
    assert mode(directory) == 0o700
    assert read(directory / 'claims.json') == {'example.com': 'p',
                                               'example.org': 'n'}
    assert mode(directory / 'claims.json') == 0o600
    credentials = read(directory / 'credentials.json')
    assert mode(directory / 'credentials.json') == 0o600
    assert list(credentials) == ['p']
    password = credentials['p']['password']
    assert verify_password(credentials['p']['hash'], password)
    # the password is in the file only: buildout records every option
    assert password not in json.dumps(options)
    assert json.loads(options['node-domains'])[0][
        'outbound-password-hash'] == credentials['p']['hash']


def test_the_next_run_keeps_the_owner_and_the_password(tmp_path):
    recipe, _ = domains(tmp_path)
    recipe.install()
    directory = tmp_path / 'srv' / 'relay'
    before = read(directory / 'credentials.json')
    # the master now lists the other claimant first
    recipe, options = domains(tmp_path, list(reversed(SHARED)))
    recipe.install()
    assert [d['reference'] for d in json.loads(options['accepted'])] == [
        'n', 'p']
    assert list(json.loads(options['errors'])) == ['dup']
    assert read(directory / 'credentials.json') == before


def test_the_old_list_format_of_claims_is_read(tmp_path):
    directory = tmp_path / 'srv' / 'relay'
    directory.mkdir(parents=True)
    # an earlier release: [[reference, domain], ...] in claim order
    (directory / 'claims.json').write_text(json.dumps(
        [['dup', 'example.com'], ['p', 'example.com'], ['n', 'example.org']]))
    recipe, options = domains(tmp_path)
    # in the master's order: p (refused now), n, dup
    assert [d['reference'] for d in json.loads(options['accepted'])] == [
        'n', 'dup']
    assert list(json.loads(options['errors'])) == ['p']
    recipe.install()
    assert read(directory / 'claims.json') == {'example.com': 'dup',
                                               'example.org': 'n'}


# -- Publications -------------------------------------------------------------
def dkim(domain, node):
    return [{'name': '%s._domainkey.%s' % (node, domain), 'type': 'TXT',
             'value': 'v=DKIM1; k=rsa; p=%s' % node.upper()}]


def node_options(name, index, fingerprints=('AA',), dns_domains=(
        'example.com', 'example.org')):
    return {'%s-fqdn' % name: 'relay%d.example.net' % index,
            '%s-smtp-ipv6' % name: 'fd00::%d' % (10 + index),
            '%s-submission-port' % name: '10587',
            '%s-tls-fingerprints' % name: json.dumps(list(fingerprints)),
            '%s-dns-records' % name: json.dumps(
                [r for d in dns_domains for r in dkim(d, name)])}


def publications(tmp_path, domain_options, **nodes):
    options = {
        'server-url': 'http://master.invalid', 'computer-id': 'COMP-1',
        'partition-id': 'slappart0',
        'parameters': json.dumps(PARAMETERS),
        'accepted': domain_options['accepted'],
        'errors': domain_options['errors'],
        'unverified': domain_options['unverified'],
        'credentials-file': domain_options['credentials-file'],
        'invalid': json.dumps([{
            'reference': 'bad', 'parameters': {},
            'errors': "$: 'name' is a required property"}]),
        'state-file': str(tmp_path / 'srv' / 'published.json'),
        'waiting-file': str(tmp_path / 'var' / 'waiting' / 'dkim-records'),
        'nodes': ' '.join(sorted(nodes)),
    }
    for node in nodes.values():
        options.update(node)
    return Publications(None, 'relay-publications', options), options


def installed_domains(tmp_path):
    recipe, options = domains(tmp_path)
    recipe.install()
    return options


def test_each_shared_instance_gets_its_publication(tmp_path, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    domain_options = installed_domains(tmp_path)
    recipe, options = publications(
        tmp_path, domain_options, node1=node_options('node1', 1),
        node2=node_options('node2', 2, ['BB']))
    before = dict(options)
    assert recipe.install() == []
    assert master.connections == [('http://master.invalid', 'COMP-1',
                                   'slappart0')]
    published = dict(master.publications())
    assert sorted(published) == ['bad', 'dup', 'n', 'p']
    password = read(domain_options['credentials-file'])['p']['password']
    assert published['p']['outbound-user'] == 'example.com'
    assert published['p']['outbound-password'] == password
    assert published['p']['outbound-host'] == 'fd00::11'
    # JSON values, as upstream's users read them
    assert published['p']['outbound-smtp-port'] == '10587'
    assert published['p']['tls-fingerprints'] == ['AA', 'BB']
    assert published['p']['outbound-has-proxy'] is True
    assert published['n']['outbound-has-proxy'] is False
    assert published['n']['dns-entries'] == (
        'example.org. MX 10 relay1.example.net.\n'
        'example.org. MX 10 relay2.example.net.')
    records = published['n']['dns-records']
    assert dkim('example.org', 'node1')[0] in records
    assert dkim('example.org', 'node2')[0] in records
    assert 'outbound-password' not in published['n']
    assert published['dup']['error'] == 'this domain has already been claimed'
    assert published['bad'] == {'error': "invalid parameters: $: 'name' is "
                                         "a required property"}
    # the password went to the master only, never into an option
    assert options == before


def test_only_what_changed_is_published_again(tmp_path, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    domain_options = installed_domains(tmp_path)
    node2 = node_options('node2', 2)
    publications(tmp_path, domain_options, node1=node_options('node1', 1),
                 node2=node2)[0].install()
    assert len(master.published) == 4
    # slapgrid runs the partition again: nothing changed, nothing sent
    publications(tmp_path, domain_options, node1=node_options('node1', 1),
                 node2=node2)[0].install()
    assert len(master.published) == 4
    # a node's new certificate changes what every accepted domain gets
    publications(tmp_path, domain_options,
                 node1=node_options('node1', 1, ['AA', 'CC']),
                 node2=node2)[0].install()
    assert sorted(r for r, _ in master.publications()[4:]) == ['n', 'p']


def test_it_waits_while_a_node_has_no_dkim_record(tmp_path, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    domain_options = installed_domains(tmp_path)
    node2 = node_options('node2', 2, dns_domains=['example.com'])
    recipe, options = publications(tmp_path, domain_options,
                                   node1=node_options('node1', 1), node2=node2)
    wait = tmp_path / 'var' / 'waiting' / 'dkim-records'
    # the waiting-for promise fails with it
    assert recipe.install() == [str(wait)]
    assert wait.read_text() == (
        'waiting for relay node node2 to take domain example.org (its DKIM '
        'record): its answer comes once every node has it\n')
    # the others are published meanwhile; example.org waits for its answer
    assert sorted(r for r, _ in master.publications()) == [
        'bad', 'dup', 'p']
    # the node publishes its record: the wait is over
    recipe, _ = publications(tmp_path, domain_options,
                             node1=node_options('node1', 1),
                             node2=node_options('node2', 2))
    assert recipe.install() == []
    assert not wait.exists()
    assert sorted(r for r, _ in master.publications()[3:]) == ['n']


def test_a_node_that_did_not_publish_itself_is_left_out(
        tmp_path, monkeypatch):
    # its own request waits for it (the request recipe's waiting-file):
    # relay-hosts has the nodes that answered; no domain gets its answer
    # before every node has it
    master = FakeMaster().install(monkeypatch)
    domain_options = installed_domains(tmp_path)
    silent = {key: '' for key in node_options('node2', 2)}
    silent['node2-fqdn'] = 'relay2.example.net'
    recipe, options = publications(tmp_path, domain_options,
                                   node1=node_options('node1', 1),
                                   node2=silent)
    assert json.loads(options['relay-hosts']) == ['fd00::11']
    assert recipe.install() == []
    assert sorted(dict(master.publications())) == ['bad', 'dup']


def test_without_running_nodes_only_the_errors_are_published(
        tmp_path, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    recipe, _ = publications(tmp_path, installed_domains(tmp_path))
    assert recipe.install() == []
    assert dict(master.publications()) == {
        'dup': {'domain': 'example.com',
                'error': 'this domain has already been claimed'},
        'bad': {'error': "invalid parameters: $: 'name' is a required "
                         "property"}}


def test_a_domain_whose_mx_points_elsewhere_is_not_claimed(
        tmp_path, monkeypatch, nameservers):
    master = FakeMaster().install(monkeypatch)
    recipe, options = domains(tmp_path, SHARED + [
        shared('usurper', 'elsewhere.example')])
    assert json.loads(options['unverified']) == {'usurper': {
        'domain': 'elsewhere.example',
        'why': 'the MX of elsewhere.example points at mx.elsewhere.example, '
               'not at this cluster (relay1.example.net, '
               'relay2.example.net)'}}
    assert 'elsewhere.example' not in options['backend-domains']
    recipe.install()
    assert 'elsewhere.example' not in read(
        tmp_path / 'srv' / 'relay' / 'claims.json')
    publications(tmp_path, options, node1=node_options('node1', 1),
                 node2=node_options('node2', 2))[0].install()
    published = dict(master.publications())['usurper']
    assert published['error'].startswith(
        'Your domain has not yet passed our domain verification')
    assert published['dns-entries'] == (
        'elsewhere.example. MX 10 relay1.example.net.\n'
        'elsewhere.example. MX 10 relay2.example.net.')
    # what the cluster asked its nameservers
    assert ('elsewhere.example', 'MX') in nameservers.queries
