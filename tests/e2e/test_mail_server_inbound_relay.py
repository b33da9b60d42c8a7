"""A mail backend that orders its domain from a relay cluster
(``inbound-relay``, by default from the relay found as
``urn:slapos:mail-relay``): the relay verifies the domain (its MX, asked of
a stand-in DNS server) and routes its inbound mail to it, the backend sends
its outbound mail through the relay (TLS, known by its certificate's
fingerprint, the relay pinned by its own), and publishes the DNS records the
relay gives."""
import imaplib
import json
import os
import subprocess
import time
import uuid

import pytest

from tests.deployment import (MAIL_SERVER, RELAY, imaps_find, insecure_tls,
                              mx_dns, send, smtp_submit, software_binary)
from tests.harness import SlapOSCommandFailed

DOMAIN = 'relayed.example.com'
USER = 'testmail@' + DOMAIN
# a backend processed before the relay answered its order (its MX points at
# the relay too)
UNLUCKY = 'unlucky.example.com'


@pytest.fixture(scope='module')
def dns():
    # lonely.example.com is not there: a domain that does not exist yet is
    # verified too
    with mx_dns({DOMAIN: 'relay1.example.com',
                 UNLUCKY: 'relay1.example.com'}) as server:
        yield server


@pytest.fixture(scope='module')
def deployment(slapos, dns):
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node1': {'fqdn': 'relay1.example.com'}},
        'default-relay-config': {'nameservers': [dns.address]}})
    slapos.wait_instance(max_retry=4)
    # inbound-relay's default: the relay found as urn:slapos:mail-relay
    slapos.request(MAIL_SERVER, 'backend', 'default', {
        'mail-domains': [DOMAIN], 'test-account': True})
    # the relay's answer bumps the backend, whose next run reads it (the
    # request is optional: the first run does not wait for it)
    slapos.wait_instance(max_retry=6)
    backend = slapos.connection_parameters(MAIL_SERVER, 'backend')
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    postfix = software_binary(slapos, 'postfix', 'sbin')
    return {'backend': backend, 'relay': relay, 'postfix': postfix,
            'partition': slapos.partition_of_address(
                backend['imap-smtp-ipv6'])}


def queue(deployment, partition):
    out = subprocess.run(
        [os.path.join(deployment['postfix'], 'postqueue'), '-c',
         os.path.join(partition, 'etc', 'postfix'), '-j'],
        check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_the_relay_accepted_the_domain_and_its_records_are_published(
        deployment, dns):
    assert (DOMAIN, 'MX') in dns.queries
    assert DOMAIN in deployment['relay']['backend-domains'].splitlines()
    records = deployment['backend']['dns-records']
    assert {'name': DOMAIN, 'type': 'MX',
            'value': '10 relay1.example.com.'} in records, records


def test_inbound_mail_comes_through_the_relay(deployment):
    node = deployment['relay']['relay-hosts'][0]
    backend = deployment['backend']
    subject = 'inbound %s' % uuid.uuid4()
    send(node, 10025, 'etienne@hotmail.example', [USER], subject)
    imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'], USER,
               'password123', subject)


def test_outbound_mail_leaves_through_the_relay(deployment, slapos):
    backend = deployment['backend']
    node = deployment['relay']['relay-hosts'][0]
    with open(os.path.join(deployment['partition'], 'etc', 'postfix',
                           'main.cf')) as f:
        main = f.read()
    assert 'smtp_tls_security_level = fingerprint' in main
    assert 'relayhost = [%s]:' % node in main
    subject = 'outbound %s' % uuid.uuid4()
    smtp_submit(backend['imap-smtp-ipv6'], backend['submission-port'], USER,
                'password123', USER, ['david@gmail.example'], subject)
    # it left the backend (the relay took it: TLS both ways, our
    # certificate's fingerprint accepted) ...
    deadline = time.time() + 60
    while any(r['address'] == 'david@gmail.example'
              for m in queue(deployment, deployment['partition'])
              for r in m['recipients']):
        assert time.time() < deadline, queue(deployment, deployment['partition'])
        time.sleep(1)
    with open(os.path.join(deployment['partition'], 'var', 'log',
                           'postfix.log')) as f:
        log = f.read()
    sent = [l for l in log.splitlines()
            if 'to=<david@gmail.example>' in l and 'status=sent' in l]
    assert sent and node in sent[-1], sent
    # ... and the relay node took it from the backend (what it does next
    # is the relay's business: the Internet is out of reach here)
    queue_id = sent[-1].split(': ')[1]
    relay_id = sent[-1].split('queued as ')[-1].rstrip(')').strip()
    assert queue_id != relay_id
    with open(os.path.join(slapos.partition_of_address(node), 'var', 'log',
                           'postfix.log')) as f:
        relay_log = [l for l in f if relay_id in l]
    assert any(backend['imap-smtp-ipv6'] in l for l in relay_log), relay_log


def test_without_a_relay_answer_outbound_mail_waits_in_the_queue(
        deployment, slapos):
    """A backend that wants the relay (outbound-relay's default) but has
    ordered none: its outbound mail stays queued, it is not bounced."""
    slapos.request(MAIL_SERVER, 'lonely', 'default', {
        'mail-domains': ['lonely.example.com'], 'test-account': True,
        'inbound-relay': {'enable': False}})
    slapos.wait_instance(max_retry=2)
    lonely = slapos.connection_parameters(MAIL_SERVER, 'lonely')
    partition = slapos.partition_of_address(lonely['imap-smtp-ipv6'])
    user = 'testmail@lonely.example.com'
    subject = 'waiting %s' % uuid.uuid4()
    smtp_submit(lonely['imap-smtp-ipv6'], lonely['submission-port'], user,
                'password123', user, ['david@gmail.example'], subject)
    deadline = time.time() + 60
    while True:
        waiting = [r for m in queue(deployment, partition)
                   if m['queue_name'] == 'deferred'
                   for r in m['recipients']
                   if r['address'] == 'david@gmail.example']
        if waiting:
            break
        assert time.time() < deadline, queue(deployment, partition)
        time.sleep(1)
    assert 'deferred transport' in waiting[0]['delay_reason']
    # nothing came back to the sender
    with imaplib.IMAP4_SSL(lonely['imap-smtp-ipv6'], lonely['imaps-port'],
                           ssl_context=insecure_tls()) as imap:
        imap.login(user, 'password123')
        imap.select('INBOX')
        assert imap.search(None, 'ALL')[1] == [b'']
    # the backend orders its domain from the relay: once the relay answers,
    # the waiting mail leaves for it at once (no waiting for a retry)
    slapos.request(MAIL_SERVER, 'lonely', 'default', {
        'mail-domains': ['lonely.example.com'], 'test-account': True})
    slapos.wait_instance(max_retry=6)
    deadline = time.time() + 30
    while any(r['address'] == 'david@gmail.example'
              for m in queue(deployment, partition)
              for r in m['recipients']):
        assert time.time() < deadline, queue(deployment, partition)
        time.sleep(1)
    with open(os.path.join(slapos.partition_of_address(
            deployment['relay']['relay-hosts'][0]), 'var', 'log',
            'postfix.log')) as f:
        # the relay took it (and keeps it: no DNS here to reach gmail)
        assert any('to=<david@gmail.example>' in l for l in f)


def left_through(deployment, partition, recipient, node):
    """Waits until the backend's queue has no mail for ``recipient`` and
    its log says the relay node took it."""
    deadline = time.time() + 30
    while any(r['address'] == recipient for m in queue(deployment, partition)
              for r in m['recipients']):
        assert time.time() < deadline, queue(deployment, partition)
        time.sleep(1)
    with open(os.path.join(partition, 'var', 'log', 'postfix.log')) as f:
        sent = [line for line in f if 'to=<%s>' % recipient in line
                and 'status=sent' in line]
    assert sent and node in sent[-1], sent


def test_a_backend_processed_before_its_relay_answered_waits_then_settles(
        deployment, slapos):
    """The unlucky order of upstream's suites: the backend's run comes
    before the relay answered its order. Its run fails naming what it
    waits for (its services run meanwhile: local logins work), the node
    processes it again, and slapos.testing's own wait
    (StandaloneSlapOS.waitForInstance, which wait_instance wraps) returns
    only once mail flows, within three node runs."""
    user = 'testmail@' + UNLUCKY
    node = deployment['relay']['relay-hosts'][0]
    with slapos.node_loop_paused():     # the test makes every run
        slapos.request(MAIL_SERVER, 'unlucky', 'default', {
            'mail-domains': [UNLUCKY], 'test-account': True})
        # run 1: the backend orders its domain; nobody answered yet
        with pytest.raises(SlapOSCommandFailed) as failed:
            slapos.wait_instance(max_retry=0, max_passes=1)
        message = str(failed.value)
        assert ("waiting for the relay's answer to the order of domain %s: "
                'outbound-host, outbound-smtp-port, tls-fingerprints, '
                'dns-records not published yet' % UNLUCKY) in message, message
        assert 'KeyError' not in message, message
        backend = slapos.connection_parameters(MAIL_SERVER, 'unlucky')
        partition = slapos.partition_of_address(backend['imap-smtp-ipv6'])
        # what does not need the relay works meanwhile
        with imaplib.IMAP4_SSL(backend['imap-smtp-ipv6'],
                               backend['imaps-port'],
                               ssl_context=insecure_tls()) as imap:
            imap.login(user, 'password123')
        # runs 2 and 3 at most: slapos.testing's wait returns once a run
        # has no error
        slapos.wait_instance(max_retry=1, max_passes=1)
    # ... and mail flows at once: out through the relay, in through it
    subject = 'unlucky %s' % uuid.uuid4()
    smtp_submit(backend['imap-smtp-ipv6'], backend['submission-port'], user,
                'password123', user, ['david@gmail.example'], subject)
    left_through(deployment, partition, 'david@gmail.example', node)
    send(node, 10025, 'etienne@hotmail.example', [user], subject)
    imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'], user,
               'password123', subject)
    with open(os.path.join(slapos.base_directory, 'var', 'log',
                           'slapos-node-instance.log')) as f:
        assert 'KeyError' not in f.read()
