"""Operations, on the reference topology in the embedded SlapOS, which runs
as a node does (tests/harness.py: the node's periodic runs, the watchdog
that bangs a partition whose service died):

- every daemon of both releases killed with SIGKILL under a trickle of mail
  comes back by SlapOS's own means within 2 minutes, and every message
  that got a 250 is delivered exactly once;
- a backend down 5 minutes gets the mail the relay queued within a minute
  of coming back (mail2's Postfix is stopped when the module starts, and
  started by the last test: the wait overlaps the other tests);
- a forced log rotation: the daemons write to new files, the old ones are
  compressed, nothing logged across it is lost;
- a backend backed up, destroyed, deployed anew and restored: alice and
  bob log in with their old passwords and find their mail and their Sieve
  filter; the relay node's DKIM keys and certificates are in its backups.
"""
import email
import glob
import gzip
import os
import signal
import subprocess
import threading
import time
import uuid
import xmlrpc.client

import pytest

from tests.deployment import (ACCOUNTS, DNS_PORT, MAIL1, MAIL2, MAIL_SERVER,
                              OUTSIDE_RECIPIENT, OUTSIDE_SENDER,
                              REFERENCE_MX, RELAY_INBOUND_PORT,
                              deploy_reference_topology, mx_dns,
                              http_request, imaps_login_works,
                              imaps_subjects, reference_smarthost, send,
                              hand_over, postfix_queue, set_password,
                              sieve_file_into,
                              smtp_submit, wait_for)

SMARTHOST_LOGIN = ('relay', 'smarthost secret')
ALICE, BOB, CHARLIE = (ACCOUNTS[r][0] for r in ('alice', 'bob', 'charlie'))
PASSWORDS = {ALICE: 'alice password 16', BOB: 'bob password 16',
             CHARLIE: 'charlie password 16'}
# the daemons of each partition, as named in its etc/service
DAEMONS = {
    'node': ('postfix', 'dovecot-auth', 'opendkim', 'relay-policy',
             'scheduler'),
    'mail1': ('postfix', 'dovecot', 'httpd', 'php-fpm', 'spam-filter',
              'connection-limiter', 'scheduler'),
}
BACK_WITHIN = 120       # seconds, by SlapOS's own means
OUTAGE = 300            # seconds mail2 stays down
DELIVERED_WITHIN = 60   # seconds after mail2 is back


@pytest.fixture(scope='module')
def topology(slapos, tmp_path_factory):
    """The reference topology, with its smarthost (``smarthost``) and the
    DNS server that verifies mail2, the spam filter in the path of every
    delivery."""
    with reference_smarthost(str(tmp_path_factory.mktemp('smarthost')),
                             SMARTHOST_LOGIN) as smarthost, \
            mx_dns(REFERENCE_MX, DNS_PORT):
        deployed = deploy_reference_topology(
            slapos, SMARTHOST_LOGIN, PASSWORDS,
            backend_parameters={'bogofilter': {'enable': True}},
            smarthost_tls=smarthost.tls)
        yield dict(deployed, smarthost=smarthost)


def partition(topology, name):
    return topology['node-partition'] if name == 'node' \
        else topology['partitions'][name]


def relay_queue(slapos, topology):
    return postfix_queue(slapos, topology['node-partition'])


def subjects_of(topology, address, folder='INBOX'):
    backend = topology['backends'][[b for a, b in ACCOUNTS.values()
                                    if a == address][0]]
    return imaps_subjects(backend['imap-smtp-ipv6'], backend['imaps-port'],
                          address, PASSWORDS[address], folder)


# --- a backend down for 5 minutes (started first, checked last) -----------------

@pytest.fixture(scope='module')
def outage(slapos, topology):
    """mail2's Postfix stopped, as an operator would, and mail for charlie
    sent to the relay meanwhile: it waits in the relay's queue. Charlie
    got mail before, as a mailbox does: the relay verified him then and
    remembers it (a recipient it never verified is deferred, 450, while
    his backend is down)."""
    mail2 = partition(topology, 'mail2')
    first = 'before the outage %s' % uuid.uuid4()
    send(topology['node'], RELAY_INBOUND_PORT, OUTSIDE_SENDER, [CHARLIE],
         first)
    wait_for(lambda: first in subjects_of(topology, CHARLIE),
             'the first message for charlie delivered', 120)
    slapos.service(mail2, 'postfix', 'stop')
    since = time.time()
    subjects = ['outage %d %s' % (i, uuid.uuid4()) for i in range(10)]
    for subject in subjects:
        send(topology['node'], RELAY_INBOUND_PORT, OUTSIDE_SENDER,
             [CHARLIE], subject)
    wait_for(lambda: len([m for m in relay_queue(slapos, topology)
                          if m['recipients'][0]['address'] == CHARLIE])
             == len(subjects), 'the mail for charlie queued on the relay', 60)
    return {'since': since, 'subjects': subjects, 'partition': mail2}


# --- a trickle of mail, as the users and the Internet send it ---------------------

class Trickle(threading.Thread):
    """Sends a message about every half second along paths 1 (alice to bob,
    submission on mail1), 3 (alice to the outside, through the relay and
    the smarthost) and 4 (the Internet to alice, through the relay), each
    with a subject and a Message-ID of its own (``message_id``: what the
    daemons log); records which ones got a 250. A refused message is not
    sent again (a retry would make two of it)."""

    PATHS = {1: (ALICE, BOB), 3: (ALICE, OUTSIDE_RECIPIENT),
             4: (OUTSIDE_SENDER, ALICE)}

    def __init__(self, topology, tag):
        super().__init__(daemon=True)
        self.topology = topology
        self.tag = tag
        self.sent = []         # (path, subject, accepted, when tried)
        self.stopping = threading.Event()

    @staticmethod
    def message_id(subject):
        return '<%s@operations.test>' % subject.rsplit(' ', 1)[1]

    def send(self, path, subject):
        sender, recipient = self.PATHS[path]
        headers = 'Message-ID: %s\r\n' % self.message_id(subject)
        if path == 4:
            send(self.topology['node'], RELAY_INBOUND_PORT, sender,
                 [recipient], subject, headers=headers)
        else:
            b = self.topology['backends']['mail1']
            smtp_submit(b['imap-smtp-ipv6'], b['submission-port'], sender,
                        PASSWORDS[sender], sender, [recipient], subject,
                        headers=headers)

    def run(self):
        n = 0
        while not self.stopping.is_set():
            path = (1, 3, 4)[n % 3]
            subject = '%s %d path %d %s' % (self.tag, n, path,
                                            uuid.uuid4().hex)
            # (when it was tried: a try that began before a daemon served
            # may wait on it and end well after)
            tried = time.time()
            try:
                self.send(path, subject)
                accepted = True
            except Exception:       # refused, reset, timed out: not a 250
                accepted = False
            self.sent.append((path, subject, accepted, tried))
            n += 1
            self.stopping.wait(0.5)

    def stop(self):
        self.stopping.set()
        self.join(60)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def delivered(topology):
    """How many times each subject arrived where its path ends."""
    counts = {}
    found = subjects_of(topology, BOB) + subjects_of(topology, ALICE)
    found += [email.message_from_bytes(data)['Subject']
              for _, data in topology['smarthost'].messages()]
    for subject in found:
        counts[subject] = counts.get(subject, 0) + 1
    return counts


def check_delivered_once(topology, trickle, timeout=120):
    accepted = [s for _, s, ok, _ in trickle.sent if ok]
    assert accepted, 'no message was accepted at all'
    wait_for(lambda: all(s in delivered(topology) for s in accepted),
             'every accepted message delivered', timeout)
    counts = delivered(topology)
    twice = [s for _, s, _, _ in trickle.sent if counts.get(s, 0) > 1]
    assert not twice, 'delivered more than once: %s' % twice
    return accepted


# --- a dead daemon comes back by itself -------------------------------------------

def kill_and_wait(slapos, partition_path, daemons):
    """Kills ``daemons`` of a partition at once (SIGKILL); returns when
    each was killed and, once each runs again, how long it took."""
    killed, back = {}, {}
    services = slapos.services(partition_path)
    for daemon in daemons:
        state, pid = services[daemon]
        assert state == 'RUNNING', (partition_path, daemon, state)
        os.kill(pid, signal.SIGKILL)
        killed[daemon] = (pid, time.time())

    def all_back():
        services = slapos.services(partition_path)
        for daemon, (old, when) in killed.items():
            state, pid = services[daemon]
            if daemon not in back and state == 'RUNNING' and pid != old:
                back[daemon] = time.time() - when
        return len(back) == len(killed)
    try:
        wait_for(all_back, 'every killed daemon of %s running again'
                 % partition_path, BACK_WITHIN + 60)
    finally:
        print('back after (s): %s' % ', '.join(
            '%s %.0f' % item for item in sorted(back.items())))
    return max(when for _, when in killed.values()), back


def test_every_daemon_killed_comes_back_and_no_accepted_mail_is_lost(
        slapos, topology, outage):
    # one partition after the other: a node processes them in turn, and
    # the time each takes is its own
    with Trickle(topology, 'killed') as trickle:
        time.sleep(5)
        for name, daemons in DAEMONS.items():
            killed, back = kill_and_wait(slapos, partition(topology, name),
                                         daemons)
            slow = {k: t for k, t in back.items() if t > BACK_WITHIN}
            assert not slow, '%s: back after more than %d s: %s' % (
                name, BACK_WITHIN, slow)
        # and they serve: mail moves on every path again
        time.sleep(20)
    # a daemon runs a few seconds before it serves (Postfix's master starts
    # its listeners, the policy daemon binds its socket): 10 s under load
    served = killed + max(back.values()) + 10
    after = [ok for _, _, ok, tried in trickle.sent if tried > served]
    assert after and all(after), (
        'mail refused once every daemon was back', [
            (path, round(tried - served, 1))
            for path, _, ok, tried in trickle.sent
            if tried > served and not ok])
    check_delivered_once(topology, trickle)
    # the web pages are served again
    status, _, _ = http_request(topology['backends']['mail1']['password-url'])
    assert status == 200


# --- logs ------------------------------------------------------------------------

def rotated_logs(partition_path):
    """The log files etc/logrotate.conf rotates."""
    with open(os.path.join(partition_path, 'etc', 'logrotate.conf')) as f:
        return [path for line in f if line.endswith(' {\n')
                for path in line.split()[:-1]]


def log_text(path, rotated=True):
    """The text of a log and, with ``rotated``, of its rotated files."""
    text = ''
    for name in sorted(glob.glob(path + '.*.gz')) if rotated else ():
        text += gzip.decompress(open(name, 'rb').read()).decode(
            'utf-8', 'replace')
    if os.path.exists(path):
        text += open(path, encoding='utf-8', errors='replace').read()
    return text


def test_a_forced_rotation_loses_nothing(slapos, topology):
    partitions = [partition(topology, name) for name in ('node', 'mail1')]
    logs = {p: [path for path in rotated_logs(p)
                if os.path.exists(path) and os.path.getsize(path)]
            for p in partitions}
    # a page asked, so that Apache's logs are not empty
    http_request(topology['backends']['mail1']['password-url'])
    with Trickle(topology, 'rotation') as trickle:
        time.sleep(3)
        for p in partitions:
            start = time.time()
            result = slapos.run(p, [os.path.join(p, 'bin', 'rotate-logs'),
                                    '-f'], capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            # no daemon kept its old file open until the helper gave up
            assert time.time() - start < 30
        time.sleep(3)
    for p in partitions:
        for path in logs[p]:
            # the old file compressed whole, a new one written
            assert os.path.exists(path + '.1.gz'), path
            gzip.decompress(open(path + '.1.gz', 'rb').read())
            assert not os.path.exists(path + '.1'), path
    check_delivered_once(topology, trickle)
    # every message is logged, before the rotation, across it or after it,
    # in one of the files: by mail1's Postfix, by the relay's when it went
    # through it, by mail1's Dovecot when it delivered it
    node, mail1 = ({name: log_text(os.path.join(p, 'var', 'log', name))
                    for name in ('postfix.log', 'dovecot.log')}
                   for p in partitions)
    accepted = [(path, s) for path, s, ok, _ in trickle.sent if ok]
    for path, subject in accepted:
        logged = 'message-id=%s' % Trickle.message_id(subject)
        assert logged in mail1['postfix.log'], subject
        if path != 1:
            assert logged in node['postfix.log'], subject
        if path != 3:
            assert 'msgid=%s' % Trickle.message_id(subject) in \
                mail1['dovecot.log'], subject
    # the daemons write to the new files: a message sent now is logged there
    sender = 'rotation-%s@hotmail.com' % uuid.uuid4().hex[:8]
    send(topology['node'], RELAY_INBOUND_PORT, sender, [ALICE],
         'after the rotation')
    for p in partitions:
        wait_for(lambda: 'from=<%s>' % sender in log_text(
            os.path.join(p, 'var', 'log', 'postfix.log'), rotated=False),
            'the message logged in the new postfix.log of %s' % p, 60)
    status, _, _ = http_request(topology['backends']['mail1']['password-url'])
    assert status == 200
    access = os.path.join(partitions[1], 'var', 'log', 'apache-access.log')
    wait_for(lambda: 'GET /password' in log_text(access, rotated=False),
             'the page logged in the new apache-access.log', 30)


# --- backups ---------------------------------------------------------------------

MAIL3 = 'mail3.example.com'
USERS3 = {'alice3': 'alice@' + MAIL3, 'bob3': 'bob@' + MAIL3}
PASSWORDS3 = {'alice@' + MAIL3: 'alice password 3',
              'bob@' + MAIL3: 'bob password 3'}


def deploy_mail3(slapos):
    # on its own, its mail sent to it directly: the relay plays no part
    guid = slapos.request(MAIL_SERVER, 'mail3', 'default',
                          {'mail-domains': [MAIL3],
                           'inbound-relay': {'enable': False}}).getId()
    for reference, address in USERS3.items():
        slapos.request(MAIL_SERVER, reference, 'default',
                       {'address': address}, shared=True,
                       instance_guid=guid)
    slapos.wait_instance(max_retry=4)
    return slapos.connection_parameters(MAIL_SERVER, 'mail3')


def test_a_backend_is_restored_into_a_new_instance(slapos, topology,
                                                   tmp_path):
    mail3 = deploy_mail3(slapos)
    host, imaps = mail3['imap-smtp-ipv6'], mail3['imaps-port']
    for reference, address in USERS3.items():
        set_password(slapos, reference, PASSWORDS3[address],
                     mail3['password-url'])
    alice, bob = USERS3['alice3'], USERS3['bob3']
    sieve_file_into(host, mail3['sieve-port'], alice, PASSWORDS3[alice],
                    'Invoices', '[invoice]')
    mail = {alice: ['hello alice %s' % uuid.uuid4(),
                    '[invoice] 42 %s' % uuid.uuid4()],
            bob: ['hello bob %s' % uuid.uuid4()]}
    for address, subjects in mail.items():
        for subject in subjects:
            send(host, mail3['smtp-port'], 'shop@seller.example', [address],
                 subject)
    wait_for(lambda: mail[alice][1] in imaps_subjects(
        host, imaps, alice, PASSWORDS3[alice], 'Invoices')
        and mail[bob][0] in imaps_subjects(host, imaps, bob,
                                           PASSWORDS3[bob]),
        'the mail delivered', 60)

    # a backup, pulled elsewhere as a backup server would (rsync -aH)
    old = slapos.partition_of_address(host)
    result = slapos.run(old, [os.path.join(old, 'bin', 'backup'), 'create'],
                        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    snapshot = os.path.realpath(os.path.join(old, 'srv', 'backup', 'latest'))
    pulled = str(tmp_path / 'pulled')
    subprocess.run(['rsync', '-aH', snapshot + '/', pulled + '/'],
                   check=True)
    assert oct(os.stat(snapshot).st_mode & 0o777) == '0o700'

    # the backend is lost; a new one of the same domain, the same accounts
    slapos.destroy(MAIL_SERVER, 'mail3')
    assert not os.path.exists(os.path.join(old, 'srv', 'mail'))
    mail3 = deploy_mail3(slapos)
    host, imaps = mail3['imap-smtp-ipv6'], mail3['imaps-port']
    new = slapos.partition_of_address(host)
    assert not imaps_login_works(host, imaps, alice, PASSWORDS3[alice])
    # mail that arrives before the restore stays
    early = 'arrived before the restore %s' % uuid.uuid4()
    send(host, mail3['smtp-port'], 'shop@seller.example', [bob], early)

    result = slapos.run(new, [os.path.join(new, 'bin', 'backup'), 'restore',
                              hand_over(slapos, new, pulled)],
                        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    said = result.stdout
    assert 'accounts: the password of alice@%s, bob@%s restored' % (
        MAIL3, MAIL3) in said, said
    assert 'homes: 3 messages restored' in said, said
    for address in (alice, bob):
        assert imaps_login_works(host, imaps, address, PASSWORDS3[address])
    assert set(mail[alice][:1]) <= set(imaps_subjects(
        host, imaps, alice, PASSWORDS3[alice]))
    assert mail[alice][1] in imaps_subjects(host, imaps, alice,
                                            PASSWORDS3[alice], 'Invoices')
    wait_for(lambda: {mail[bob][0], early} <= set(imaps_subjects(
        host, imaps, bob, PASSWORDS3[bob])), 'bob\'s mail, old and new', 30)
    # alice's filter works on the new instance
    invoice = '[invoice] 43 %s' % uuid.uuid4()
    send(host, mail3['smtp-port'], 'shop@seller.example', [alice], invoice)
    wait_for(lambda: invoice in imaps_subjects(
        host, imaps, alice, PASSWORDS3[alice], 'Invoices'),
        'the new invoice filed by the restored filter', 60)
    # the restore banged the partition: its next run publishes the
    # accounts without their setup links (used by the old instance)
    slapos.wait_instance(max_retry=2)
    published = slapos.connection_parameters(MAIL_SERVER, 'alice3',
                                             shared=True)
    assert 'setup-url' not in published, published


def test_a_relay_node_backs_up_its_dkim_keys_and_certificates(slapos,
                                                              topology):
    node = topology['node-partition']
    result = slapos.run(node, [os.path.join(node, 'bin', 'backup'), 'create'],
                        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    latest = os.path.join(node, 'srv', 'backup', 'latest')
    assert sorted(os.listdir(os.path.join(latest, 'dkim'))) == [
        MAIL1 + '.private', MAIL2 + '.private']
    assert sorted(os.listdir(os.path.join(latest, 'certificates'))) == [
        'current.crt', 'current.key', 'next.crt', 'next.key']
    # restored onto the node it was taken from: nothing to replace
    result = slapos.run(node, [os.path.join(node, 'bin', 'backup'), 'restore',
                               latest], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'replaced' not in result.stdout, result.stdout
    # a backend's snapshot is refused here
    mail1_latest = hand_over(slapos, node, os.path.join(
        partition(topology, 'mail1'), 'srv', 'backup', 'latest'))
    result = slapos.run(node, [os.path.join(node, 'bin', 'backup'), 'restore',
                               mail1_latest], capture_output=True, text=True)
    assert result.returncode != 0
    assert 'is a snapshot of mail-server, this partition is ' \
        'mail-server-relay' in result.stderr


# --- the embedded SlapOS, a node -----------------------------------------------

def test_a_wait_runs_after_the_node_loops_run(slapos, topology):
    """The node loop's instance run and a test's wait_instance take turns
    (slapgrid runs one at a time: the second one would exit)."""
    with slapos.standalone.system_supervisor_rpc as supervisor:
        try:
            supervisor.startProcess('slapos-node-instance', False)
        except xmlrpc.client.Fault as e:
            # the node loop started its own run first: the same situation
            assert 'ALREADY_STARTED' in e.faultString, e.faultString
        else:
            assert supervisor.getProcessInfo('slapos-node-instance')[
                'statename'] in ('STARTING', 'RUNNING', 'EXITED')
    slapos.wait_instance(max_passes=1)


# --- last: the backend that was down 5 minutes -------------------------------------

def test_a_backend_back_after_five_minutes_gets_its_mail_within_a_minute(
        slapos, topology, outage):
    left = outage['since'] + OUTAGE - time.time()
    if left > 0:
        time.sleep(left)
    state, _ = slapos.services(outage['partition'])['postfix']
    assert state == 'STOPPED', 'mail2\'s Postfix was started meanwhile'
    queued = [m for m in relay_queue(slapos, topology)
              if m['recipients'][0]['address'] == CHARLIE]
    assert len(queued) == len(outage['subjects'])
    back = time.time()
    slapos.service(outage['partition'], 'postfix', 'start')
    wait_for(lambda: set(outage['subjects']) <= set(
        subjects_of(topology, CHARLIE)), 'charlie\'s mail after the outage',
        DELIVERED_WITHIN)
    print('mail2 down %.0f s, its mail delivered %.1f s after it was back'
          % (back - outage['since'], time.time() - back))
