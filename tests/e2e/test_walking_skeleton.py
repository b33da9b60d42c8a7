"""A relay cluster and a mail backend in the embedded SlapOS: mail sent to
the relay's inbound port for the backend's domain is read back over IMAPS.
The domain is ordered by hand (the backend orders none: inbound-relay
disabled), and verified by its MX, which the relay asks a stand-in DNS
server."""
import os
import uuid

import psutil
import pytest

from tests.deployment import (MACHINE_CLIENTS, MAIL_SERVER, RELAY, imaps_find,
                              mx_dns, send)
from tests.harness import IPV6_RANGE, SlapOSCommandFailed

PREFIX = IPV6_RANGE.split('/')[0]

DOMAIN = 'mail1.example.com'


@pytest.fixture(scope='module')
def dns():
    with mx_dns({DOMAIN: 'relay1.example.com'}) as server:
        yield server


@pytest.fixture(scope='module')
def deployment(slapos, dns):
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(MAIL_SERVER, 'backend', 'default',
                   {'mail-domains': [DOMAIN], 'test-account': True,
                    'inbound-relay': {'enable': False}})
    slapos.wait_instance(max_retry=2)
    backend = slapos.connection_parameters(MAIL_SERVER, 'backend')
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node1': {'fqdn': 'relay1.example.com'}},
        'default-relay-config': {'nameservers': [dns.address],
                                 'greylisting': MACHINE_CLIENTS}})
    slapos.request(RELAY, 'domain-' + DOMAIN, 'cluster',
                   {'name': DOMAIN,
                    'mail-server-host': backend['imap-smtp-ipv6'],
                    'mail-server-port': backend['smtp-port']},
                   shared=True)
    slapos.wait_instance(max_retry=6)
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    return {'backend': backend, 'relay': relay}


def test_backend_publishes_its_endpoints(deployment):
    backend = deployment['backend']
    assert backend['imap-smtp-ipv6'].startswith(PREFIX)
    # JSON values, as upstream's users read them
    assert backend['smtp-port'] == 10025
    assert backend['imaps-port'] == 10993
    assert len(backend['tls-fingerprints']) == 2


def test_relay_cluster_publishes_its_node_and_domains(deployment, dns):
    relay = deployment['relay']
    assert relay['backend-domains'].splitlines() == [DOMAIN]
    assert relay['errors'] == []
    hosts = relay['relay-hosts']
    assert len(hosts) == 1 and hosts[0].startswith(PREFIX)
    # the domain was verified: its MX points at the node
    assert (DOMAIN, 'MX') in dns.queries
    assert hosts[0] != deployment['backend']['imap-smtp-ipv6']


def test_inbound_mail_crosses_the_relay_to_the_backend(deployment):
    node = deployment['relay']['relay-hosts'][0]
    backend = deployment['backend']
    subject = 'skeleton %s' % uuid.uuid4()
    send(node, 10025, 'etienne@hotmail.com', ['testmail@' + DOMAIN], subject)
    message = imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
                         'testmail@' + DOMAIN, 'password123', subject)
    assert 'etienne@hotmail.com' in message
    # it went through the relay node's Postfix, then the backend's
    received = [l for l in message.splitlines() if l.startswith('Received:')]
    assert len(received) >= 2


def test_daemons_run_as_their_partitions_users(deployment, slapos):
    """As on a SlapOS node: each partition's daemons run as the partition's
    own user, neither root nor the software user who built them."""
    masters = {'postfix': [], 'dovecot': []}
    for process in psutil.process_iter(['cmdline']):
        cmdline = ' '.join(process.info['cmdline'] or [])
        if slapos.base_directory + os.sep not in cmdline:  # not slapos-gwK's
            continue
        if 'libexec/postfix/master' in cmdline:
            masters['postfix'].append(process)
        elif 'dovecot.conf' in cmdline:
            masters['dovecot'].append(process)
    # the relay node's Postfix and the backend's; the backend's Dovecot (and
    # the relay node's, which authenticates backends)
    assert len(masters['postfix']) == 2 and len(masters['dovecot']) >= 1
    users = set()
    for master in masters['postfix'] + masters['dovecot']:
        partition = next(os.path.join(slapos.base_directory, 'inst', name)
                         for name in os.listdir(os.path.join(
                             slapos.base_directory, 'inst'))
                         if '/inst/%s/' % name in ' '.join(master.cmdline()))
        user = slapos.partition_user(partition)
        assert user not in ('root', slapos.software_user)
        tree = [master] + master.children(recursive=True)
        assert {p.username() for p in tree} == {user}, master.cmdline()
        users.add(user)
    assert len(users) == 2  # the relay node's and the backend's


def test_a_wrong_parameter_names_itself(deployment, slapos):
    slapos.request(MAIL_SERVER, 'no-domains', 'default', {'smtp-port': 10026})
    try:
        with pytest.raises(SlapOSCommandFailed) as error:
            slapos.wait_instance()
        assert "'mail-domains' is a required property" in str(error.value)
    finally:
        slapos.destroy(MAIL_SERVER, 'no-domains')
