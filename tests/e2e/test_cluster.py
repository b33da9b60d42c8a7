"""The relay cluster across three SlapOS computers, as users outgrowing one
machine run it: the cluster and node1 on the first computer, node2 on a
second (``sla: {computer_guid}``), the backends of mail1 and mail2 on a
third, each computer a node of its own (partitions, users, IPv6 prefix,
supervisord, instance runs) attached to one master. Every node serves
every domain (MX, DKIM key, the backends' pinned certificates, the
domains' logins), the backends send through any node in turn, a retry
through another MX is not greylisted again; then node1's computer dies
(kill -9 of its supervisord and of node1's processes, its node runs
stopped): the four mail paths go on through node2 within a minute, and
once node1 is back, what it held is delivered once."""
import smtplib
import time
import uuid

import pytest

from tests.deployment import (MAIL1, MAIL2, OUTSIDE_SENDER, PATHS, RELAY,
                              RELAY_INBOUND_PORT, deploy_reference_topology,
                              imaps_subjects, insecure_tls, move_mail,
                              postfix, postfix_queue, reference_fixtures,
                              relay_fqdn, send_retrying, text_message,
                              wait_for)
from tests.e2e.test_paths import dkim_records, hops, verify_dkim
from tests.harness import partition_ipv6

SMARTHOST_LOGIN = ('relay', 'smarthost secret')
PASSWORDS = {PATHS[1][0]: 'alice password 21', PATHS[1][1]: 'bob password 21',
             PATHS[2][1]: 'charlie password 21'}
COMPUTERS = {'node2': 'COMP-2', 'mail1': 'COMP-3', 'mail2': 'COMP-3'}
STRANGER = partition_ipv6(27)      # an Internet server, neither node nor backend
GREYLISTING_DELAY = 3


smarthost, dns = reference_fixtures(SMARTHOST_LOGIN)


@pytest.fixture(scope='module')
def topology(slapos, smarthost, dns):
    for computer in sorted(set(COMPUTERS.values())):
        slapos.add_computer(computer)
    found = deploy_reference_topology(
        slapos, SMARTHOST_LOGIN, PASSWORDS, smarthost_tls=smarthost.tls,
        nodes=2, computers=COMPUTERS,
        relay_config={'greylisting': {'greylisting-delay': GREYLISTING_DELAY}})
    # the nodes' names in DNS, as every domain's dns-records says (the
    # nodes find each other by them: their greylisting is shared)
    for i, address in enumerate(found['nodes'], 1):
        dns.records[(relay_fqdn(i), 'AAAA')] = [address]
    return found


def computer_of(slapos, partition):
    return slapos.computer_of(partition).computer_id


def test_the_instances_are_where_their_sla_put_them(slapos, topology):
    assert [computer_of(slapos, p) for p in topology['node-partitions']] == [
        'local', 'COMP-2']
    assert {computer_of(slapos, p) for p in topology['partitions'].values()} \
        == {'COMP-3'}
    # each computer's partitions run as its own users
    users = {slapos.partition_user(p) for p in topology['node-partitions']}
    assert len(users) == 2


def test_every_node_is_an_mx_of_every_domain_with_its_dkim_key(topology):
    for backend in topology['backends'].values():
        records = backend['dns-records']
        domain = backend['dns-records'][0]['name']
        mx = sorted(r['value'] for r in records
                    if r['type'] == 'MX' and r['name'] == domain)
        assert mx == ['10 %s.' % relay_fqdn(1), '10 %s.' % relay_fqdn(2)]
        addresses = {r['name']: r['value'] for r in records
                     if r['type'] == 'AAAA' and r['name'].startswith('relay')}
        assert addresses == {relay_fqdn(i): a
                             for i, a in enumerate(topology['nodes'], 1)}
        dkim_records = [r for r in records if '._domainkey.' in r['name']]
        assert len({r['name'] for r in dkim_records}) == 2, dkim_records


def test_a_backend_knows_every_node(slapos, topology):
    partition = topology['partitions']['mail1']
    relayhost = postfix(slapos, partition, 'postconf', '-h',
                        'relayhost').stdout.strip()
    assert relayhost == ', '.join('[%s]:10587' % a for a in topology['nodes'])
    # both nodes' certificates (current and next) are pinned
    fingerprints = postfix(slapos, partition, 'postconf', '-h',
                           'smtp_tls_fingerprint_cert_match').stdout.split()
    assert len(fingerprints) == 4


@pytest.mark.parametrize('node', [0, 1])
def test_the_internets_mail_enters_through_either_node(topology, node):
    """Path 4 through each MX: each node routes to the backend over TLS
    with its own client certificate, which the backend pinned."""
    subject = 'through node%d %s' % (node + 1, uuid.uuid4())
    # greylisted first (the machine's address is a stranger's): sent
    # again after the delay, as an MTA does
    send_retrying(topology['nodes'][node], RELAY_INBOUND_PORT,
                  OUTSIDE_SENDER, ['alice@' + MAIL1],
                  text_message(OUTSIDE_SENDER, ['alice@' + MAIL1], subject))
    b = topology['backends']['mail1']
    wait_for(lambda: subject in imaps_subjects(
        b['imap-smtp-ipv6'], b['imaps-port'], 'alice@' + MAIL1,
        PASSWORDS['alice@' + MAIL1]), 'path 4 through node%d' % (node + 1))


def test_a_retry_through_the_other_mx_is_not_greylisted_again(topology):
    """A sender greylisted by node1 retries through node2 (another MX)
    after the delay: node2 knows of the first attempt and lets it in."""
    recipient, subject = 'charlie@' + MAIL2, 'greylisted %s' % uuid.uuid4()

    def attempt(node):
        with smtplib.SMTP(topology['nodes'][node], RELAY_INBOUND_PORT,
                          timeout=30, source_address=(STRANGER, 0)) as smtp:
            smtp.ehlo('mx.hotmail.example')
            smtp.mail(OUTSIDE_SENDER)
            code, text = smtp.rcpt(recipient)
            if code == 250:
                code, text = smtp.data(
                    'From: %s\r\nSubject: %s\r\n\r\nHi.\r\n'
                    % (OUTSIDE_SENDER, subject))
            return code, text.decode()
    # a new client waits out postscreen's first greeting test once
    code, text = attempt(0)
    if code != 450 or b'Greylisted' not in text.encode():
        code, text = attempt(0)
    assert code == 450 and 'Greylisted' in text, (code, text)
    time.sleep(GREYLISTING_DELAY + 1)
    code, text = attempt(1)
    assert code == 250, (code, text)
    b = topology['backends']['mail2']
    wait_for(lambda: subject in imaps_subjects(
        b['imap-smtp-ipv6'], b['imaps-port'], recipient,
        PASSWORDS[recipient]), 'the retry through node2 delivered')


def test_a_domains_login_works_on_every_node(slapos, topology):
    """A domain ordered with a password: the login the cluster published
    works on each node's submission port."""
    domain = 'login.example.com'
    slapos.request(RELAY, 'domain-' + domain, 'cluster', {
        'name': domain, 'authentication': 'password',
        'mail-server-host': topology['backends']['mail1']['imap-smtp-ipv6']},
        shared=True)
    slapos.wait_instance(max_retry=4)
    published = slapos.connection_parameters(RELAY, 'domain-' + domain,
                                             'cluster', shared=True)
    assert published['outbound-hosts'] == topology['nodes'], published
    for node in topology['nodes']:
        with smtplib.SMTP(node, published['outbound-smtp-port'],
                          timeout=30) as smtp:
            smtp.starttls(context=insecure_tls())
            code, _ = smtp.login(published['outbound-user'],
                                 published['outbound-password'])
            assert code == 235


# --- node1's computer dies -----------------------------------------------------

@pytest.fixture(scope='module')
def node1_held(slapos, topology):
    """A message node1 takes while backend 2 does not answer: it is in
    node1's queue when node1 dies."""
    mail2 = topology['partitions']['mail2']
    slapos.service(mail2, 'postfix', 'stop')
    subject = 'held by node1 %s' % uuid.uuid4()
    try:
        send_retrying(topology['nodes'][0], RELAY_INBOUND_PORT,
                      OUTSIDE_SENDER, ['charlie@' + MAIL2],
                      text_message(OUTSIDE_SENDER, ['charlie@' + MAIL2],
                                   subject))
        wait_for(lambda: postfix_queue(slapos, topology['node-partitions'][0]),
                 'the message queued on node1')
    finally:
        slapos.service(mail2, 'postfix', 'start')
    return subject


@pytest.fixture(scope='module')
def node1_dead(slapos, topology, node1_held):
    """node1's computer dies (its instance supervisord and node1's
    processes killed, its node runs stopped); it is the first computer,
    whose slapproxy stands for the master and goes on."""
    slapos.crash([topology['node-partitions'][0]])
    yield time.time()
    slapos.boot()


@pytest.mark.parametrize('path', [1, 2, 3, 4])
def test_with_node1_dead_the_four_paths_go_on_within_a_minute(
        topology, smarthost, node1_dead, path):
    """Outbound (paths 2 and 3) moves to node2, the next of the backends'
    relay hosts; inbound (path 4) comes through node2, which a sender tries
    when node1 does not answer."""
    through = dict(topology, node=topology['nodes'][1])
    _, message, seconds = move_mail(through, PASSWORDS, smarthost, path,
                                    timeout=60)
    if path in (2, 3, 4):
        assert relay_fqdn(2) in hops(message), hops(message)
    if path == 3:
        # signed by node2, whose key mail1's records publish
        assert verify_dkim(message, dkim_records(topology, 'mail1'))


def test_node1_back_delivers_what_it_held_once(slapos, topology, node1_held,
                                               node1_dead):
    b = topology['backends']['mail2']
    recipient = 'charlie@' + MAIL2
    assert node1_held not in imaps_subjects(
        b['imap-smtp-ipv6'], b['imaps-port'], recipient, PASSWORDS[recipient])
    # node1's machine starts again
    slapos.boot()
    postfix(slapos, topology['node-partitions'][0], 'postqueue', '-f')
    wait_for(lambda: node1_held in imaps_subjects(
        b['imap-smtp-ipv6'], b['imaps-port'], recipient, PASSWORDS[recipient]),
        'what node1 held, delivered once it is back', 120)
    time.sleep(5)
    subjects = imaps_subjects(b['imap-smtp-ipv6'], b['imaps-port'], recipient,
                              PASSWORDS[recipient])
    assert subjects.count(node1_held) == 1
    assert not postfix_queue(slapos, topology['node-partitions'][0])
