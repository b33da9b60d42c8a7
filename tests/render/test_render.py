"""Each instance profile, rendered by slapgrid in the embedded SlapOS with
non-default parameters, gives configurations that the daemons' own checkers
accept and that carry those parameters."""
import json
import os
import subprocess

import pytest

from tests.deployment import MAIL_SERVER, RELAY


DOMAINS = ['render1.example.com', 'render2.example.org']


@pytest.fixture(scope='module')
def rendered(slapos):
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(MAIL_SERVER, 'render-backend', 'default', {
        'mail-domains': DOMAINS, 'email-size-limit': 20,
        'smtp-port': 11025, 'imap-port': 11143, 'imaps-port': 11993})
    slapos.request(RELAY, 'render-relay', 'cluster', {
        'topology': {'render-node': {'fqdn': 'relay.render.example.com'}}})
    slapos.wait_instance(max_retry=2)
    backend = slapos.connection_parameters(MAIL_SERVER, 'render-backend')
    slapos.request(RELAY, 'render-domain', 'cluster', {
        'name': DOMAINS[0], 'mail-server-host': backend['imap-smtp-ipv6'],
        'mail-server-port': 11025}, shared=True)
    slapos.wait_instance(max_retry=4)
    relay = slapos.connection_parameters(RELAY, 'render-relay', 'cluster')
    node = json.loads(relay['relay-hosts'])[0]
    components = {}
    software = os.path.join(slapos.base_directory, 'soft')
    for name in os.listdir(software):
        path = os.path.join(software, name, 'parts', 'postfix')
        if os.path.isdir(path):
            components['postfix'] = path
    return {'backend': slapos.partition_of_address(backend['imap-smtp-ipv6']),
            'backend-ipv6': backend['imap-smtp-ipv6'],
            'node': slapos.partition_of_address(node), 'node-ipv6': node,
            'postfix': components['postfix']}


def run(*command):
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result.stdout


def postconf(rendered, partition, *args):
    return run(os.path.join(rendered['postfix'], 'sbin', 'postconf'),
               '-c', os.path.join(partition, 'etc', 'postfix'), *args)


@pytest.mark.parametrize('partition', ['backend', 'node'])
def test_postfix_check_accepts_the_configuration(rendered, partition):
    run(os.path.join(rendered['postfix'], 'sbin', 'postfix'), '-c',
        os.path.join(rendered[partition], 'etc', 'postfix'), 'check')


def test_backend_postfix_carries_the_parameters(rendered):
    p = rendered['backend']
    assert postconf(rendered, p, '-h', 'message_size_limit').strip() == str(
        20 * 1024 * 1024)
    assert postconf(rendered, p, '-h', 'virtual_mailbox_domains').strip() == (
        ', '.join(DOMAINS))
    services = postconf(rendered, p, '-M')
    assert '[%s]:11025' % rendered['backend-ipv6'] in services
    # nothing else listens on the network
    assert [l for l in services.splitlines() if ' inet ' in l] == [
        l for l in services.splitlines() if l.startswith('[%s]:11025 '
                                                          % rendered['backend-ipv6'])]


def test_dovecot_accepts_the_configuration(rendered):
    conf = os.path.join(rendered['backend'], 'etc', 'dovecot', 'dovecot.conf')
    output = run('/usr/bin/doveconf', '-c', conf, '-n')
    assert rendered['backend-ipv6'] in output
    assert 'port = 11143' in output and 'port = 11993' in output


def test_relay_node_routes_the_accepted_domain(rendered):
    p = rendered['node']
    assert postconf(rendered, p, '-h', 'relay_domains').strip() == DOMAINS[0]
    with open(os.path.join(p, 'etc', 'postfix', 'transport')) as f:
        routes = [l for l in f.read().splitlines() if not l.startswith('#')]
        assert ' '.join(routes).split() == [
            DOMAINS[0], 'smtp:[%s]:11025' % rendered['backend-ipv6']]
