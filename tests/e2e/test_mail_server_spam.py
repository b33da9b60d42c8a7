"""Spam filtering on a mail backend in the embedded SlapOS (parameter
``bogofilter``, on by default as upstream's, deployed off here and turned on
on the running backend):
each user's own bogofilter word list classifies every delivered message
(X-Bogosity), spam goes to Junk, and the user trains the filter by moving
messages into and out of Junk over IMAP."""
import email
import imaplib
import os
import re
import smtplib
import stat
import uuid

import psutil
import pytest

from tests import deployment
from tests.deployment import MAIL_SERVER, imaps_find, insecure_tls, send
from tests.e2e.test_mail_server import (Backend, PASSWORD,
                                        activate_sieve_script,
                                        imaps_subjects, wait_for)

DOMAIN = 'spam.example.com'
ALICE = 'alice@' + DOMAIN
BOB = 'bob@' + DOMAIN
SENDER = 'etienne@hotmail.example'
SPAM = ('Buy cheap pills now! Limited offer, click here to win casino money, '
        'lottery jackpot, free viagra, no prescription, act now.\r\n')
HAM = ('Hi Alice, can we move our project meeting to 3pm tomorrow? I will '
       'bring the budget figures for the quarterly report. Regards, Bob\r\n')


PARAMETERS = {'mail-domains': [DOMAIN], 'outbound-relay': {'enable': False},
              'inbound-relay': {'enable': False},
              'bogofilter': {'enable': False}}


@pytest.fixture(scope='module')
def backend(slapos):
    """Deployed with the filter off."""
    slapos.supply(MAIL_SERVER)
    slapos.wait_software()
    parameters = PARAMETERS
    slapos.request(MAIL_SERVER, 'backend', 'default', parameters)
    slapos.wait_instance(max_retry=2)
    b = Backend(slapos, parameters)
    for reference, address in (('alice', ALICE), ('bob', BOB)):
        b.request_shared(reference, {'address': address})
    slapos.wait_instance(max_retry=2)
    for reference in ('alice', 'bob'):
        b.set_password(reference)
    return b


def imap(backend, user):
    connection = imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                                   ssl_context=insecure_tls())
    connection.login(user, backend.passwords[user])
    return connection


def move(backend, user, subject, source, destination):
    """As a mail program moves a message (IMAP MOVE, RFC 6851)."""
    with imap(backend, user) as connection:
        assert connection.select('"%s"' % source)[0] == 'OK'
        _, found = connection.uid('SEARCH', None, 'SUBJECT', '"%s"' % subject)
        assert found[0], (subject, source)
        typ, data = connection.uid('MOVE', found[0].split()[-1], destination)
        assert typ == 'OK', data


def deliver(backend, user, subject, body, folder='INBOX'):
    """Sent from the Internet (the relay's path), read back over IMAPS from
    ``folder``: the message, parsed."""
    send(backend.host, backend.port('smtp'), SENDER, [user], subject, body)
    wait_for(lambda: subject in imaps_subjects(
        backend.host, backend.port('imaps'), user, backend.passwords[user],
        folder), '%r in %s of %s' % (subject, folder, user))
    with imap(backend, user) as connection:
        connection.select('"%s"' % folder)
        _, found = connection.search(None, 'SUBJECT', '"%s"' % subject)
        _, data = connection.fetch(found[0].split()[-1], '(BODY.PEEK[])')
        return email.message_from_bytes(data[0][1])


def word_list(backend, user):
    return deployment.word_list(backend.slapos, backend.partition, user)


def dovecot_master(backend):
    configuration = os.path.join(backend.partition, 'etc', 'dovecot',
                                 'dovecot.conf')
    found = [p.pid for p in psutil.process_iter(['name', 'cmdline'])
             if p.info['name'] == 'dovecot'
             and configuration in (p.info['cmdline'] or ())]
    assert len(found) == 1, found
    return found[0]


def test_turned_on_by_the_parameter_without_a_restart(backend, slapos):
    before = deliver(backend, ALICE, 'before %s' % uuid.uuid4(), HAM)
    assert before['X-Bogosity'] is None
    assert word_list(backend, ALICE) is None
    master = dovecot_master(backend)
    slapos.request(MAIL_SERVER, 'backend', 'default',
                   dict(PARAMETERS, bogofilter={'enable': True}))
    slapos.wait_instance(max_retry=2)
    # a reload: sessions in progress are kept
    assert dovecot_master(backend) == master
    after = deliver(backend, ALICE, 'after %s' % uuid.uuid4(), HAM)
    assert after['X-Bogosity'].startswith('Unsure,'), after['X-Bogosity']


def test_delivered_mail_gets_the_users_verdict(backend):
    subject = 'first %s' % uuid.uuid4()
    # a verdict written by the sender does not count
    with smtplib.SMTP(backend.host, backend.port('smtp'), timeout=30) as smtp:
        smtp.sendmail(SENDER, [ALICE], (
            'From: %s\r\nTo: %s\r\nSubject: %s\r\n'
            'X-Bogosity: Ham, tests=bogofilter, spamicity=0.000000\r\n\r\n%s'
            % (SENDER, ALICE, subject, HAM)))
    text = imaps_find(backend.host, backend.port('imaps'), ALICE,
                      backend.passwords[ALICE], subject)
    message = email.message_from_string(text)
    verdicts = message.get_all('X-Bogosity')
    # no word list before alice's first move: not classified
    assert len(verdicts) == 1 and verdicts[0].startswith('Unsure,'), verdicts
    assert 'tests=bogofilter' in verdicts[0]
    # Junk is there for every user
    with imap(backend, BOB) as connection:
        _, folders = connection.list()
    assert any(b'Junk' in line for line in folders), folders


def test_moving_into_and_out_of_junk_trains_the_users_filter(backend):
    spam, ham = 'spam %s' % uuid.uuid4(), 'ham %s' % uuid.uuid4()
    assert deliver(backend, ALICE, spam, SPAM)['X-Bogosity'].startswith(
        'Unsure,')
    assert deliver(backend, ALICE, ham, HAM)['X-Bogosity'].startswith(
        'Unsure,')
    # delivery registers nothing: the word list comes with the first move
    assert word_list(backend, ALICE) is None
    before = (0, 0)
    # alice marks the spam as spam
    move(backend, ALICE, spam, 'INBOX', 'Junk')
    wait_for(lambda: word_list(backend, ALICE)[0] == before[0] + 1,
             'one more spam in alice\'s word list', timeout=10)
    # she moves the ham to Junk by mistake, and back
    move(backend, ALICE, ham, 'INBOX', 'Junk')
    move(backend, ALICE, ham, 'Junk', 'INBOX')
    assert wait_for(lambda: word_list(backend, ALICE) == (
        before[0] + 1, before[1] + 1), 'the ham learnt as ham', timeout=10)
    # what she taught is used for her next messages
    again = deliver(backend, ALICE, 'cheap pills %s' % uuid.uuid4(), SPAM,
                    'Junk')
    assert again['X-Bogosity'].startswith('Spam,'), again['X-Bogosity']
    meeting = deliver(backend, ALICE, 'meeting %s' % uuid.uuid4(), HAM)
    assert meeting['X-Bogosity'].startswith('Ham,'), meeting['X-Bogosity']
    # bogofilter's whole verdict, one header, the last one of the header
    assert re.fullmatch(r'Ham, tests=bogofilter, spamicity=[0-9.]+, '
                        r'version=\S+', meeting['X-Bogosity']), (
        meeting['X-Bogosity'])
    assert meeting.keys()[-1] == 'X-Bogosity', meeting.keys()
    # deleting spam teaches nothing
    counts = word_list(backend, ALICE)
    move(backend, ALICE, spam, 'Junk', 'Trash')
    assert word_list(backend, ALICE) == counts
    # bob's filter is his own: he was taught nothing
    deliver(backend, BOB, 'for bob %s' % uuid.uuid4(), SPAM)
    assert word_list(backend, BOB) is None


def test_the_users_own_sieve_script_runs_after_the_filter(backend):
    """alice's script files her meetings; spam goes to Junk first, even
    with the same subject (after the previous test, her word list tells
    them apart)."""
    activate_sieve_script(backend, ALICE, 'Meetings', '[meeting]')
    meeting = deliver(backend, ALICE, '[meeting] %s' % uuid.uuid4(), HAM,
                      'Meetings')
    assert meeting['X-Bogosity'].startswith('Ham,')
    subject = '[meeting] %s' % uuid.uuid4()
    spam = deliver(backend, ALICE, subject, SPAM, 'Junk')
    assert spam['X-Bogosity'].startswith('Spam,')
    assert subject not in imaps_subjects(backend.host, backend.port('imaps'),
                                         ALICE, PASSWORD, 'Meetings')


def test_a_failing_filter_never_loses_mail(backend):
    local, domain = BOB.split('@')
    path = os.path.join(backend.partition, 'srv', 'mail', domain, local,
                        '.bogofilter', 'wordlist.db')
    # written as the user would, through the partition's user
    backend.slapos.run(backend.partition, [
        'sh', '-c', 'mkdir -p "${1%/*}" && echo "not a Berkeley DB file" > "$1"',
        'sh', path], check=True)
    try:
        message = deliver(backend, BOB, 'unclassified %s' % uuid.uuid4(),
                          SPAM)
        assert message['X-Bogosity'].startswith('Unsure, '), message['X-Bogosity']
        assert 'not classified' in message['X-Bogosity']
        assert message.get_payload().startswith('Buy cheap pills')
    finally:
        backend.slapos.run(backend.partition, ['rm', path], check=True)
    assert not [m for m in backend.queue() if m['queue_name'] == 'deferred']


def test_without_its_spam_filter_process_dovecot_runs_bogofilter(backend,
                                                                 slapos):
    """Dovecot reaches the long-running spam filter (recipes/programs/spam_filter.py)
    through its socket. Stopped, it takes its socket away and Dovecot runs
    bogofilter itself: spam is still filed into Junk, moves still learnt."""
    socket_path = os.path.join(backend.partition, 'var', 'run', 'dovecot',
                               'spam-filter', 'bogofilter')
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    promise = 'spam-filter-answering'
    assert not slapos.run_promise(backend.partition, promise, anomaly=True)['failed']
    served = deliver(backend, ALICE, 'pills %s' % uuid.uuid4(), SPAM, 'Junk')
    assert served['X-Bogosity'].startswith('Spam,'), served['X-Bogosity']
    slapos.service(backend.partition, 'spam-filter', 'stop')
    try:
        assert not os.path.exists(socket_path)
        # the promise says so (an alarm, never a failed deployment: mail
        # is still classified)
        result = slapos.run_promise(backend.partition, promise, anomaly=True)
        assert 'spam filter does not answer' in result['message'], result
        run = deliver(backend, ALICE, 'pills %s' % uuid.uuid4(), SPAM, 'Junk')
        assert run['X-Bogosity'].startswith('Spam,'), run['X-Bogosity']
        spam, ham = word_list(backend, ALICE)
        subject = 'unwanted newsletter %s' % uuid.uuid4()
        deliver(backend, ALICE, subject, HAM)
        move(backend, ALICE, subject, 'INBOX', 'Junk')
        wait_for(lambda: word_list(backend, ALICE) == (spam + 1, ham),
                 'the move learnt by bogofilter run by Dovecot', timeout=10)
    finally:
        slapos.service(backend.partition, 'spam-filter', 'start')
    wait_for(lambda: os.path.exists(socket_path), 'the spam filter back')
    assert not [m for m in backend.queue() if m['queue_name'] == 'deferred']
