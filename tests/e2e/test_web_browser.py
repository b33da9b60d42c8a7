"""Snappymail in a real headless browser (Debian's Chromium through
chromium-driver and Selenium; tests/browser.py), against a backend in the
embedded SlapOS: what a user sees when they log in, read, write, mark spam,
change their password and log out, and what the administrator sees in the
admin panel. On failure, a screenshot of the page and of the inbox goes to
the test's output directory (pytest's tmp_path, named in the failure)."""
import contextlib
import email
import imaplib
import re
import sys
import time
import uuid

import pytest

from recipes.decisions.passwords import MIN_PASSWORD_LENGTH

from tests import deployment
from tests.browser import Snappymail, chromium
from tests.deployment import (MAIL_SERVER, imaps_login_works, insecure_tls,
                              send, set_password)

DOMAIN = 'browser.example.com'
ALICE, BOB, CAROL = ('%s@%s' % (name, DOMAIN)
                     for name in ('alice', 'bob', 'carol'))
PASSWORDS = {ALICE: 'alice-in-wonderland', BOB: 'bob-the-builder',
             CAROL: 'carol-of-the-bells'}
OUTSIDE = 'etienne@hotmail.com'
# mail is sent to the backend directly: no relay in front of it
PARAMETERS = {'mail-domains': [DOMAIN], 'bogofilter': {'enable': True},
              'inbound-relay': {'enable': False}}


@pytest.fixture(scope='module')
def backend(slapos):
    slapos.supply(MAIL_SERVER)
    slapos.wait_software()
    slapos.request(MAIL_SERVER, 'browser-backend', 'default', PARAMETERS)
    slapos.wait_instance(max_retry=2)
    published = slapos.connection_parameters(MAIL_SERVER, 'browser-backend')
    assert 'webmail-url' in published, (
        'no webmail published: the software release was built without the '
        'Snappymail archive (scripts/setup.sh takes it from '
        '../shared/snappymail/ or SNAPPYMAIL_ARCHIVE)', published)
    for address in PASSWORDS:
        slapos.request(MAIL_SERVER, 'browser-' + address.split('@')[0],
                       'default', {'address': address}, shared=True)
    slapos.wait_instance(max_retry=2)
    for address, password in PASSWORDS.items():
        set_password(slapos, 'browser-' + address.split('@')[0], password,
                     published['password-url'])
    published['slapos'] = slapos
    published['partition'] = slapos.partition_of_address(
        published['imap-smtp-ipv6'])
    return published


@pytest.fixture
def webmail(backend, tmp_path, request):
    """A fresh browser on the webmail; when the test fails, the page and
    the inbox are left as screenshots in its tmp_path."""
    failed_before = request.session.testsfailed
    with chromium(str(tmp_path / 'chromedriver.log')) as browser:
        page = Snappymail(browser, backend['webmail-url'])
        yield page
        # a fixture does not see the test's exception; the session counted
        # the failure before this teardown
        if request.session.testsfailed > failed_before:
            screenshots(page, tmp_path)


def screenshots(page, directory):
    saved = []
    with contextlib.suppress(Exception):
        page.browser.save_screenshot(str(directory / 'failure.png'))
        saved.append(str(directory / 'failure.png'))
        with open(directory / 'failure.html', 'w') as f:
            f.write(page.browser.page_source)
        page.folder('Inbox')
        page.browser.save_screenshot(str(directory / 'inbox.png'))
        saved.append(str(directory / 'inbox.png'))
    print('screenshots: %s' % (' '.join(saved) or 'none (%s)' % directory),
          file=sys.stderr)


def imap(backend, address, password, subject, folder='INBOX', timeout=60):
    """The message ``subject`` in ``folder``, read over IMAPS; waits for
    it."""
    deadline = time.time() + timeout
    while True:
        with imaplib.IMAP4_SSL(backend['imap-smtp-ipv6'],
                               int(backend['imaps-port']),
                               ssl_context=insecure_tls()) as connection:
            connection.login(address, password)
            connection.select(folder, readonly=True)
            found = connection.search(None, 'SUBJECT', '"%s"' % subject)[1]
            if found[0]:
                data = connection.fetch(found[0].split()[-1],
                                        '(BODY.PEEK[])')[1]
                return data[0][1].decode()
        assert time.time() < deadline, 'no message %r in %s of %s' % (
            subject, folder, address)
        time.sleep(1)


def test_alice_reads_writes_changes_her_password_and_logs_out(backend,
                                                              webmail):
    subject = 'for alice %s' % uuid.uuid4()
    send(backend['imap-smtp-ipv6'], backend['smtp-port'], OUTSIDE, [ALICE],
         subject, body='Dear Alice,\nthe garden party is on Sunday.\n')
    webmail.login(ALICE, PASSWORDS[ALICE])
    # at her first login, nothing asks her name: her identity has it
    assert not webmail.identity_popup(3)
    # the message sent to her is in her inbox, and opens
    webmail.wait_for_message(subject)
    assert 'the garden party is on Sunday' in webmail.open_message(subject)
    # she writes to bob through authenticated submission: bob gets it, and
    # its copy is in her Sent folder
    reply = 'for bob %s' % uuid.uuid4()
    webmail.compose(BOB, reply, 'Bob, are you coming on Sunday?')
    received = imap(backend, BOB, PASSWORDS[BOB], reply)
    assert 'are you coming on Sunday?' in received
    assert re.search(r'^From: "?alice"? <%s>' % re.escape(ALICE), received,
                     re.M), received[:500]
    imap(backend, ALICE, PASSWORDS[ALICE], reply, folder='Sent')
    webmail.folder('Sent')
    webmail.wait_for_message(reply)
    # she changes her password: the new one works over IMAPS at once
    new = 'queen-of-hearts-%s' % uuid.uuid4().hex[:6]
    assert webmail.change_password(PASSWORDS[ALICE], new) == (
        'The password was changed.')
    host, port = backend['imap-smtp-ipv6'], backend['imaps-port']
    assert imaps_login_works(host, port, ALICE, new)
    assert not imaps_login_works(host, port, ALICE, PASSWORDS[ALICE])
    PASSWORDS[ALICE] = new
    # her session goes on with it
    webmail.back_to_mail()
    webmail.wait_for_message(subject)
    webmail.logout()
    webmail.login(ALICE, new)


def test_a_wrong_password_changes_nothing(backend, webmail):
    webmail.login(BOB, PASSWORDS[BOB])
    status = webmail.change_password('not-the-password', 'whatever-else-1')
    assert 'current password is wrong' in status, status
    status = webmail.change_password(PASSWORDS[BOB], 'short')
    assert 'at least %d characters' % MIN_PASSWORD_LENGTH in status, status
    assert imaps_login_works(backend['imap-smtp-ipv6'],
                             backend['imaps-port'], BOB, PASSWORDS[BOB])


def test_a_wrong_password_shows_an_error(webmail):
    webmail.submit_login(ALICE, 'not-her-password')
    assert 'Authentication failed' in webmail.login_error(timeout=30)
    webmail.visible('input[name=Password]')


def test_a_suspended_account_cannot_log_in(backend, webmail, slapos):
    webmail.login(CAROL, PASSWORDS[CAROL])
    webmail.logout()
    slapos.request(MAIL_SERVER, 'browser-carol', 'default',
                   {'address': CAROL, 'suspended': True}, shared=True)
    try:
        slapos.wait_instance(max_retry=2)
        webmail.submit_login(CAROL, PASSWORDS[CAROL])
        assert 'Authentication failed' in webmail.login_error(timeout=30)
    finally:
        slapos.request(MAIL_SERVER, 'browser-carol', 'default',
                       {'address': CAROL}, shared=True)
        slapos.wait_instance(max_retry=2)


def word_list(backend, address):
    return deployment.word_list(backend['slapos'], backend['partition'],
                                address) or (0, 0)


def test_spam_goes_to_junk_and_teaches_the_filter(backend, webmail):
    """Snappymail's Spam folder is the Junk folder of the spam filter:
    marking a message as spam moves it there, and the user's word list
    learns it; "not spam" moves it back and unlearns it."""
    subject = 'cheap pills %s' % uuid.uuid4()
    send(backend['imap-smtp-ipv6'], backend['smtp-port'], OUTSIDE, [BOB],
         subject, body='Buy cheap pills now!\n')
    before = word_list(backend, BOB)
    webmail.login(BOB, PASSWORDS[BOB])
    webmail.wait_for_message(subject)
    webmail.mark_as_spam(subject)
    imap(backend, BOB, PASSWORDS[BOB], subject, folder='Junk')
    webmail.wait(lambda b: word_list(backend, BOB)[0] == before[0] + 1, 10,
                 'the spam was not learnt')
    webmail.folder('Spam')
    webmail.wait_for_message(subject)
    webmail.mark_as_not_spam(subject)
    imap(backend, BOB, PASSWORDS[BOB], subject)
    webmail.wait(lambda b: word_list(backend, BOB)[1] == before[1] + 1, 10,
                 'the ham was not learnt')


def test_the_admin_panel_with_the_published_password(backend, webmail):
    webmail.browser.get(backend['webmail-admin-url'])
    webmail.admin_login('admin', backend['webmail-admin-password'])
    assert DOMAIN in webmail.admin_domains()


def test_the_admin_panel_refuses_another_password(backend, webmail):
    webmail.browser.get(backend['webmail-admin-url'])
    webmail.admin_login('admin', PASSWORDS[ALICE], expect_error=True)
    assert 'Authentication failed' in webmail.login_error(timeout=30)


def test_a_redirect_set_in_the_webmail_filters_reaches_its_destination(
        backend, webmail):
    """Carol forwards her mail to Bob with Snappymail's filter editor: a
    Sieve redirect, which Dovecot submits through the partition's Postfix,
    from Carol's address."""
    webmail.login(CAROL, PASSWORDS[CAROL])
    webmail.redirect_all_mail(BOB)
    subject = 'for carol, then bob %s' % uuid.uuid4()
    send(backend['imap-smtp-ipv6'], backend['smtp-port'], OUTSIDE, [CAROL],
         subject)
    received = imap(backend, BOB, PASSWORDS[BOB], subject)
    parsed = email.message_from_string(received)
    assert parsed['Return-Path'] == '<%s>' % CAROL
    assert parsed['From'] == OUTSIDE
