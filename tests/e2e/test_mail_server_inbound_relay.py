"""A mail backend that orders its domain from a relay cluster
(``inbound-relay``, by default from the relay found as
``urn:slapos:mail-relay``): the relay verifies the domain (its MX, asked of
a stand-in DNS server) and routes its inbound mail to it, the backend sends
its outbound mail through the relay (TLS, known by its certificate's
fingerprint, the relay pinned by its own), and publishes the DNS records the
relay gives."""
import imaplib
import os
import time
import uuid

import pytest

from tests.deployment import (MACHINE_CLIENTS, MAIL_SERVER, RELAY,
                              imaps_find, insecure_tls, mx_dns, postfix_queue,
                              send, smtp_submit)
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
        'default-relay-config': {'nameservers': [dns.address],
                                 'greylisting': MACHINE_CLIENTS}})
    slapos.wait_instance(max_retry=4)
    # inbound-relay's default: the relay found as urn:slapos:mail-relay
    slapos.request(MAIL_SERVER, 'backend', 'default', {
        'mail-domains': [DOMAIN], 'test-account': True})
    # the relay's answer bumps the backend, whose next run reads it (the
    # request is optional: the first run does not wait for it)
    slapos.wait_instance(max_retry=6)
    backend = slapos.connection_parameters(MAIL_SERVER, 'backend')
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    return {'backend': backend, 'relay': relay, 'slapos': slapos,
            'partition': slapos.partition_of_address(
                backend['imap-smtp-ipv6'])}


def postfix_log(slapos, partition, *words):
    """The lines of the partition's Postfix log that have every word."""
    out = slapos.run(partition, ['cat', os.path.join(
        partition, 'var', 'log', 'postfix.log')], check=True,
        capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if all(word in line for word in words)]


def left_for(slapos, deployment, partition, recipient, status):
    """Waits until the backend's queue has no mail for ``recipient`` any
    more; the last log line of its delivery, which had ``status``."""
    deadline = time.time() + 60
    while any(r['address'] == recipient
              for m in postfix_queue(slapos, partition)
              for r in m['recipients']):
        assert time.time() < deadline, postfix_queue(slapos, partition)
        time.sleep(1)
    found = postfix_log(slapos, partition, 'to=<%s>' % recipient,
                        'status=' + status)
    assert found, postfix_log(slapos, partition, 'to=<%s>' % recipient)
    return found[-1]


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
    """Through the relay, TLS both ways (the relay pinned by its
    fingerprint, the backend known by its certificate); to a domain the
    relay does not host, only a domain that a smarthost of its proxy-map
    sends goes (upstream's rule): this one has none, so the relay refuses
    that recipient and the sender gets its mail back."""
    backend = deployment['backend']
    node = deployment['relay']['relay-hosts'][0]
    main = slapos.run(deployment['partition'], [
        'cat', os.path.join(deployment['partition'], 'etc', 'postfix',
                            'main.cf')], check=True, capture_output=True,
        text=True).stdout
    assert 'smtp_tls_security_level = fingerprint' in main
    assert 'relayhost = [%s]:' % node in main
    subject = 'outbound %s' % uuid.uuid4()
    smtp_submit(backend['imap-smtp-ipv6'], backend['submission-port'], USER,
                'password123', USER, ['david@gmail.example'], subject)
    # the relay took the connection and knew us (no "Relay access
    # denied"): it refused this recipient for want of a smarthost
    line = left_for(slapos, deployment, deployment['partition'],
                    'david@gmail.example', 'bounced')
    assert node in line and ("the mail of %s goes to this relay's own "
                             'domains only' % DOMAIN) in line, line
    bounce = imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
                        USER, 'password123', 'Undelivered Mail')
    assert subject in bounce


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
    # to another domain of the relay
    smtp_submit(lonely['imap-smtp-ipv6'], lonely['submission-port'], user,
                'password123', user, [USER], subject)
    deadline = time.time() + 60
    while True:
        waiting = [r for m in postfix_queue(slapos, partition)
                   if m['queue_name'] == 'deferred'
                   for r in m['recipients'] if r['address'] == USER]
        if waiting:
            break
        assert time.time() < deadline, postfix_queue(slapos, partition)
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
    node = deployment['relay']['relay-hosts'][0]
    assert node in left_for(slapos, deployment, partition, USER, 'sent')
    backend = deployment['backend']
    imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'], USER,
               'password123', subject, timeout=30)


def test_a_backend_processed_before_its_relay_answered_waits_then_settles(
        deployment, slapos):
    """The unlucky order of upstream's suites: the backend's run comes
    before the relay answered its order. Its run fails naming what it
    waits for (its services run meanwhile: local logins work), the node
    processes it again, and slapos.testing's own wait
    (StandaloneSlapOS.waitForInstance, which wait_instance wraps) returns
    only once mail flows, within three more node runs."""
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
        unlucky = slapos.connection_parameters(MAIL_SERVER, 'unlucky')
        partition = slapos.partition_of_address(unlucky['imap-smtp-ipv6'])
        # what does not need the relay works meanwhile
        with imaplib.IMAP4_SSL(unlucky['imap-smtp-ipv6'],
                               unlucky['imaps-port'],
                               ssl_context=insecure_tls()) as imap:
            imap.login(user, 'password123')
        # slapos.testing's wait: it returns at the first run without an
        # error, here within three (the cluster accepts the domain and
        # answers, the node takes it, the cluster sees the node did)
        slapos.wait_instance(max_retry=2, max_passes=1)
    # ... and mail flows at once: out through the relay into another of
    # its domains, in through it
    subject = 'unlucky %s' % uuid.uuid4()
    smtp_submit(unlucky['imap-smtp-ipv6'], unlucky['submission-port'], user,
                'password123', user, [USER], subject)
    assert node in left_for(slapos, deployment, partition, USER, 'sent')
    backend = deployment['backend']
    imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'], USER,
               'password123', subject, timeout=30)
    send(node, 10025, 'etienne@hotmail.example', [user], subject)
    imaps_find(unlucky['imap-smtp-ipv6'], unlucky['imaps-port'], user,
               'password123', subject, timeout=30)
    # (the node's own log: no partition's file)
    with open(os.path.join(slapos.base_directory, 'var', 'log',
                           'slapos-node-instance.log')) as f:
        assert 'KeyError' not in f.read()
