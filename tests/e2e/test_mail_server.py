"""A mail backend in the embedded SlapOS, used as its users would: accounts
and aliases ordered as shared instances, passwords set from the one-time
link, IMAP(S), POP3(S), submission (STARTTLS) and SMTPS, Sieve, quotas,
suspension, and outbound mail through a smarthost (a stand-in SMTP server
that requires TLS and a SASL login)."""
import imaplib
import json
import os
import poplib
import socket
import smtplib
import sys
import time
import uuid

import pytest

from recipes.stores import certificates
from recipes.promises import smtp_certificate
from tests.deployment import (MAIL_SERVER, assert_no_secret_in_records,
                              imaps_find, imaps_subjects, insecure_tls,
                              post_form, postfix, postfix_queue, send,
                              set_password, sieve_file_into, smtp_submit,
                              software_binary, wait_for)
from tests.harness import partition_ipv6
from tests.smarthost import Smarthost

DOMAIN = 'mail.example.com'
OTHER = 'other.example.com'
PASSWORD = 'correct horse battery'
SMARTHOST_PORT = 12587
SMARTHOST_LOGIN = ('backend', 'smarthost secret')
# account reference -> parameters
ACCOUNTS = {
    'alice': {'address': 'alice@' + DOMAIN},
    'bob': {'address': 'bob@' + DOMAIN},
    'quota': {'address': 'small@' + DOMAIN, 'quota': 1},
    'carol': {'address': 'carol@' + DOMAIN},
    'dave': {'address': 'dave@' + OTHER},
    'eve': {'address': 'eve@' + DOMAIN},
}
ALIASES = {
    'team': {'alias': 'team@' + DOMAIN,
             'destinations': ['alice@' + DOMAIN, 'bob@' + DOMAIN]},
    'sales': {'alias': 'sales@' + OTHER, 'destinations': ['alice@' + DOMAIN]},
    'catch-all': {'alias': '@' + OTHER, 'destinations': ['bob@' + DOMAIN]},
    'external': {'alias': 'ext@' + DOMAIN,
                 'destinations': ['someone@external.example.net']},
    'carols-team': {'alias': 'carols-team@' + DOMAIN,
                    'destinations': ['alice@' + DOMAIN, 'carol@' + DOMAIN]},
}
# each gets its own error, the others keep working
REFUSED = {
    'alice-again': {'address': 'alice@' + DOMAIN},
    'invalid': {'address': 'not..valid@' + DOMAIN},
    'outside': {'alias': 'frank@elsewhere.example.org',
                'destinations': ['alice@' + DOMAIN]},
    # an account outside mail-domains is created as upstream's releases
    # create it, with its warning (test_an_account_outside_the_domains...)
    'outside-account': {'address': 'grace@elsewhere.example.org'},
    'shadow': {'alias': 'alice@' + DOMAIN,
               'destinations': ['someone@external.example.net']},
    'loop-1': {'alias': 'loop-1@' + DOMAIN,
               'destinations': ['loop-2@' + DOMAIN]},
    'loop-2': {'alias': 'loop-2@' + DOMAIN,
               'destinations': ['loop-1@' + DOMAIN]},
}


def address(reference):
    return ACCOUNTS[reference]['address']


# --- clients, as a user's mail program ------------------------------------------

def pop3s_messages(host, port, user, password):
    pop = poplib.POP3_SSL(host, int(port), context=insecure_tls(), timeout=30)
    try:
        pop.user(user)
        pop.pass_(password)
        count, _ = pop.stat()
        return [b'\r\n'.join(pop.retr(i + 1)[1]).decode()
                for i in range(count)]
    finally:
        pop.quit()


def pop3s_find(host, port, user, password, subject, timeout=60):
    deadline = time.time() + timeout
    while True:
        for message in pop3s_messages(host, port, user, password):
            if 'Subject: %s' % subject in message:
                return message
        if time.time() > deadline:
            raise AssertionError('no message %r for %s over POP3S' % (
                subject, user))
        time.sleep(1)


def activate_sieve_script(backend, user, folder, subject_tag):
    """Over ManageSieve, as ``user``: upload and activate a script that
    files mail whose subject contains ``subject_tag`` into ``folder``."""
    sieve_file_into(backend.host, backend.port('sieve'), user, PASSWORD,
                    folder, subject_tag)


# --- the deployment ---------------------------------------------------------------

@pytest.fixture(scope='module')
def smarthost(tmp_path_factory):
    host = partition_ipv6(9)
    with Smarthost(host, str(tmp_path_factory.mktemp('smarthost')),
                   dict([SMARTHOST_LOGIN]), starttls_port=SMARTHOST_PORT,
                   implicit_tls_port=SMARTHOST_PORT + 1) as server:
        yield server


class Backend:
    """The deployed backend, as its users and its operator see it."""

    def __init__(self, slapos, parameters):
        self.slapos = slapos
        self.parameters = parameters
        self.published = slapos.connection_parameters(MAIL_SERVER, 'backend')
        self.host = self.published['imap-smtp-ipv6']
        self.partition = slapos.partition_of_address(self.host)
        self.passwords = {}

    def port(self, name):
        return self.published[name + '-port']

    def request_shared(self, reference, parameters):
        self.slapos.request(MAIL_SERVER, reference, 'default', parameters,
                            shared=True)

    def shared(self, reference):
        return self.slapos.connection_parameters(MAIL_SERVER, reference,
                                                 shared=True)

    def set_password(self, reference, password=PASSWORD):
        """As the owner would: the password page, with the token of the
        setup link."""
        address = set_password(self.slapos, reference, password,
                               self.published['password-url'])
        self.passwords[address] = password

    def queue(self):
        return postfix_queue(self.slapos, self.partition)

    def flush(self):
        postfix(self.slapos, self.partition, 'postqueue', '-f')


@pytest.fixture(scope='module')
def backend(slapos, smarthost):
    slapos.supply(MAIL_SERVER)
    slapos.wait_software()
    # no relay (inbound-relay's default orders one), no spam filter (on by
    # default: tests/e2e/test_mail_server_spam.py)
    parameters = {
        'mail-domains': [DOMAIN, OTHER], 'test-account': True,
        'inbound-relay': {'enable': False}, 'bogofilter': {'enable': False},
        'outbound-relay': {'host': smarthost.host, 'port': SMARTHOST_PORT,
                           'user': SMARTHOST_LOGIN[0],
                           'password': SMARTHOST_LOGIN[1]}}
    slapos.request(MAIL_SERVER, 'backend', 'default', parameters)
    slapos.wait_instance(max_retry=2)
    b = Backend(slapos, parameters)
    for reference, p in list(ACCOUNTS.items()) + list(ALIASES.items()):
        b.request_shared(reference, p)
    slapos.wait_instance(max_retry=2)
    # claimed after the first ones: the first claimant keeps the address
    for reference, p in REFUSED.items():
        b.request_shared(reference, p)
    slapos.wait_instance(max_retry=2)
    for reference in ACCOUNTS:
        b.set_password(reference)
    return b


# --- what only the backend needs (test account) ----------------------------

def test_backend_publishes_every_endpoint(backend, slapos):
    # as a script written for upstream reads them: one JSON object in "_",
    # ports as integers, lists as lists
    raw = slapos._request(**slapos._requests['backend', False]) \
        .getConnectionParameterDict()
    published = json.loads(raw['_'])
    assert published == backend.published
    for name, default in (('smtp', 10025), ('submission', 10587),
                          ('smtps', 10465), ('imap', 10143), ('imaps', 10993),
                          ('pop3', 10110), ('pop3s', 10995),
                          ('sieve', 4190)):
        assert published[name + '-port'] == default
        socket.create_connection((backend.host, default), timeout=5).close()
    assert published['password-url'] == 'https://[%s]:8081/password' % (
        backend.host)
    assert len(published['tls-fingerprints']) == 2
    # no relay: only the records of the mail clients (autoconfig, SRV)
    assert not [r for r in published['dns-records'] if r['type'] == 'MX']


def test_test_account_logs_in_over_imaps_and_pop3s(backend):
    user = 'testmail@' + DOMAIN
    subject = 'test account %s' % uuid.uuid4()
    send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
         [user], subject)
    message = imaps_find(backend.host, backend.port('imaps'), user,
                         'password123', subject)
    # the bogofilter parameter turned off: no spam verdict
    assert 'X-Bogosity' not in message
    pop3s_find(backend.host, backend.port('pop3s'), user, 'password123',
               subject)


def test_unknown_recipient_and_foreign_domain_refused_on_smtp(backend):
    with smtplib.SMTP(backend.host, backend.port('smtp'), timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail('etienne@hotmail.example')
        code, text = smtp.rcpt('nobody@' + DOMAIN)
        assert code == 550, text
        # no relaying for a stranger
        code, text = smtp.rcpt('david@gmail.example')
        assert code == 554, text
        # no authentication on the port for the relay
        assert not smtp.has_extn('auth')


def test_email_size_limit_is_announced_and_enforced(backend):
    limit = 50 * 1024 * 1024  # email-size-limit, default 50 MiB
    with smtplib.SMTP(backend.host, backend.port('smtp'), timeout=30) as smtp:
        smtp.ehlo()
        assert int(smtp.esmtp_features['size']) == limit
        # a bigger message is refused before it is sent
        code, text = smtp.mail('etienne@hotmail.example',
                               ['SIZE=%d' % (limit + 1)])
        assert code == 552, text


# --- accounts ordered as shared instances -----------------------------------

def test_accounts_get_their_setup_link(backend):
    published = backend.shared('alice')
    assert published['address'] == address('alice')
    assert published['setup-url'].startswith(backend.published['password-url'])
    assert 'error' not in published


def test_submission_starttls_delivers_to_another_account(backend):
    subject = 'submission %s' % uuid.uuid4()
    smtp_submit(backend.host, backend.port('submission'), address('alice'),
                PASSWORD, address('alice'), [address('bob')], subject)
    message = imaps_find(backend.host, backend.port('imaps'), address('bob'),
                         PASSWORD, subject)
    assert 'From: %s' % address('alice') in message


def test_smtps_delivers_and_pop3s_reads(backend):
    subject = 'smtps %s' % uuid.uuid4()
    smtp_submit(backend.host, backend.port('smtps'), address('bob'),
                PASSWORD, address('bob'), [address('alice')], subject,
                implicit_tls=True)
    message = pop3s_find(backend.host, backend.port('pop3s'),
                         address('alice'), PASSWORD, subject)
    assert 'From: %s' % address('bob') in message


def test_wrong_password_is_refused_everywhere(backend):
    with pytest.raises(imaplib.IMAP4.error):
        with imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                               ssl_context=insecure_tls()) as imap:
            imap.login(address('alice'), 'not the password')
    with pytest.raises(poplib.error_proto):
        pop = poplib.POP3_SSL(backend.host, backend.port('pop3s'),
                              context=insecure_tls(), timeout=30)
        pop.user(address('alice'))
        pop.pass_('not the password')
    for port in ('submission', 'smtps'):
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp_submit(backend.host, backend.port(port), address('alice'),
                        'not the password', address('alice'),
                        [address('bob')], 'never sent',
                        implicit_tls=port == 'smtps')


def test_login_without_tls_is_refused(backend):
    """From another address than the server's own (which Dovecot trusts
    as local), a plaintext login is refused before STARTTLS."""
    source = ('::1', 0)
    # imaplib cannot bind its socket: talk IMAP on a bound one
    with socket.create_connection((backend.host, backend.port('imap')),
                                  timeout=30, source_address=source) as s:
        f = s.makefile('rb')
        assert b'LOGINDISABLED' in f.readline()
        s.sendall(b'a LOGIN "%s" "%s"\r\n' % (address('alice').encode(),
                                             PASSWORD.encode()))
        reply = f.readline()
        while reply.startswith(b'*'):
            reply = f.readline()
        assert reply.startswith(b'a NO') or reply.startswith(b'a BAD'), reply
        assert b'TLS' in reply or b'plaintext' in reply.lower(), reply
    with socket.create_connection((backend.host, backend.port('pop3')),
                                  timeout=30, source_address=source) as s:
        f = s.makefile('rb')
        assert f.readline().startswith(b'+OK')
        s.sendall(b'USER %s\r\n' % address('alice').encode())
        assert f.readline().startswith(b'-ERR'), 'POP3 USER before STARTTLS'
    with smtplib.SMTP(backend.host, backend.port('submission'), timeout=30,
                      source_address=source) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn('auth')
        code, text = smtp.mail(address('alice'))
        assert code == 530, text  # must issue STARTTLS first


def test_sending_as_another_users_address_is_refused(backend):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp_submit(backend.host, backend.port('submission'),
                    address('alice'), PASSWORD, address('bob'),
                    [address('eve')], 'forged')
    code, text = refused.value.recipients[address('eve')]
    assert code == 553 and b'not owned by user' in text
    # an alias that delivers to alice is hers to send as
    subject = 'as the team %s' % uuid.uuid4()
    smtp_submit(backend.host, backend.port('submission'), address('alice'),
                PASSWORD, 'team@' + DOMAIN, [address('eve')], subject)
    imaps_find(backend.host, backend.port('imaps'), address('eve'), PASSWORD,
               subject)


def test_an_unauthenticated_client_cannot_submit(backend):
    with smtplib.SMTP(backend.host, backend.port('submission'),
                      timeout=30) as smtp:
        smtp.starttls(context=insecure_tls())
        smtp.ehlo()
        assert smtp.has_extn('auth')
        smtp.mail(address('alice'))
        code, _ = smtp.rcpt(address('bob'))
        assert code >= 500


# --- quota, suspension, Sieve ------------------------------------------------

def test_over_quota_mail_is_deferred_then_delivered(backend, slapos):
    small = address('quota')
    subject = 'too big %s' % uuid.uuid4()
    body = ('x' * 76 + '\r\n') * (2 * 1024 * 1024 // 78)  # 2 MiB > 1 MiB
    send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
         [small], subject, body)
    deferred = wait_for(lambda: [m for m in backend.queue()
                                 if m['queue_name'] == 'deferred'
                                 and any(r['address'] == small
                                         for r in m['recipients'])],
                        'the big message in the deferred queue')
    reason = deferred[0]['recipients'][0]['delay_reason']
    assert 'quota' in reason.lower(), reason
    assert subject not in imaps_subjects(backend.host, backend.port('imaps'),
                                         small, PASSWORD)
    # the operator raises the quota: the message comes in
    backend.request_shared('quota', dict(ACCOUNTS['quota'], quota=10))
    slapos.wait_instance(max_retry=2)
    # no flush by hand: the instance run tries deferred mail again
    imaps_find(backend.host, backend.port('imaps'), small, PASSWORD, subject)
    assert not [m for m in backend.queue() if m['queue_name'] == 'deferred'
                and any(r['address'] == small for r in m['recipients'])]


def test_suspended_account_cannot_log_in_and_its_mail_waits(backend, slapos):
    carol = address('carol')
    backend.request_shared('carol', dict(ACCOUNTS['carol'], suspended=True))
    slapos.wait_instance(max_retry=2)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            with imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                                   ssl_context=insecure_tls()) as imap:
                imap.login(carol, PASSWORD)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp_submit(backend.host, backend.port('submission'), carol,
                        PASSWORD, carol, [address('alice')], 'never sent')
        # the relay (or a local sender) is told to try again later
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
                 [carol], 'wait')
        code, _ = refused.value.recipients[carol]
        assert 400 <= code < 500
    finally:
        backend.request_shared('carol', ACCOUNTS['carol'])
        slapos.wait_instance(max_retry=2)
    subject = 'back %s' % uuid.uuid4()
    send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
         [carol], subject)
    imaps_find(backend.host, backend.port('imaps'), carol, PASSWORD, subject)


def test_mail_to_a_suspended_account_through_an_alias_waits(backend,
                                                           slapos):
    """Accepted for the alias (its other destinations are not suspended),
    then carol's copy waits in the deferred queue, as her direct mail waits
    at the sender's: not delivered, not bounced, delivered once she is
    back."""
    carol = address('carol')
    backend.request_shared('carol', dict(ACCOUNTS['carol'], suspended=True))
    slapos.wait_instance(max_retry=2)
    subject = 'to the team while carol is away %s' % uuid.uuid4()
    try:
        send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
             ['carols-team@' + DOMAIN], subject)
        imaps_find(backend.host, backend.port('imaps'), address('alice'),
                   PASSWORD, subject)
        waiting = wait_for(lambda: [
            r for m in backend.queue() if m['queue_name'] == 'deferred'
            for r in m['recipients'] if r['address'] == carol],
            'carol\'s copy in the deferred queue')
        assert 'temporarily suspended' in waiting[0]['delay_reason'], waiting
        backend.flush()
        time.sleep(2)
        assert [m for m in backend.queue() if m['queue_name'] == 'deferred'
                and any(r['address'] == carol for r in m['recipients'])]
    finally:
        backend.request_shared('carol', ACCOUNTS['carol'])
        slapos.wait_instance(max_retry=2)
    # the suspension lifted, the instance run tries deferred mail again
    imaps_find(backend.host, backend.port('imaps'), carol, PASSWORD, subject)
    assert not [m for m in backend.queue() if m['queue_name'] == 'deferred']


def test_sieve_script_files_mail_into_a_folder(backend):
    user = address('dave')
    activate_sieve_script(backend, user, 'Invoices', '[invoice]')
    subject = '[invoice] %s' % uuid.uuid4()
    send(backend.host, backend.port('smtp'), 'shop@seller.example', [user],
         subject)
    wait_for(lambda: subject in imaps_subjects(
        backend.host, backend.port('imaps'), user, PASSWORD, 'Invoices'),
        'the message filed into Invoices')
    assert subject not in imaps_subjects(backend.host, backend.port('imaps'),
                                         user, PASSWORD)


# --- aliases and outbound mail ------------------------------------------------

def test_alias_delivers_to_two_accounts(backend):
    subject = 'team %s' % uuid.uuid4()
    send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
         ['team@' + DOMAIN], subject)
    for reference in ('alice', 'bob'):
        imaps_find(backend.host, backend.port('imaps'), address(reference),
                   PASSWORD, subject)


def test_account_wins_over_alias_which_wins_over_catch_all(backend):
    subjects = {to: '%s %s' % (to, uuid.uuid4())
                for to in ('dave', 'sales', 'anyone')}
    for to, subject in subjects.items():
        send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
             ['%s@%s' % (to, OTHER)], subject)
    imaps_find(backend.host, backend.port('imaps'), address('dave'), PASSWORD,
               subjects['dave'])
    imaps_find(backend.host, backend.port('imaps'), address('alice'),
               PASSWORD, subjects['sales'])
    imaps_find(backend.host, backend.port('imaps'), address('bob'), PASSWORD,
               subjects['anyone'])
    # each only where it belongs
    bob = imaps_subjects(backend.host, backend.port('imaps'), address('bob'),
                         PASSWORD)
    assert subjects['dave'] not in bob and subjects['sales'] not in bob


def test_external_alias_and_outbound_mail_leave_through_the_smarthost(
        backend, smarthost):
    forwarded = 'forwarded %s' % uuid.uuid4()
    send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
         ['ext@' + DOMAIN], forwarded)
    metadata, _ = smarthost.wait_for(lambda m, msg: forwarded.encode() in msg)
    assert metadata['rcpt-tos'] == ['someone@external.example.net']
    # a forward: it leaves as this domain's mail (SRS), not as hotmail's
    assert metadata['mail-from'].lower().startswith('srs0=')
    assert metadata['mail-from'].endswith(
        '=hotmail.example=etienne@' + DOMAIN), metadata
    assert metadata['login'] == SMARTHOST_LOGIN[0]
    sent = 'outbound %s' % uuid.uuid4()
    smtp_submit(backend.host, backend.port('submission'), address('alice'),
                PASSWORD, address('alice'), ['david@gmail.example'], sent)
    metadata, _ = smarthost.wait_for(lambda m, msg: sent.encode() in msg)
    assert metadata['mail-from'] == address('alice')
    assert metadata['rcpt-tos'] == ['david@gmail.example']


def test_duplicate_invalid_and_foreign_addresses_get_their_error(backend):
    assert 'address_already_used' in backend.shared('alice-again')['error']
    assert 'error' in backend.shared('invalid')
    assert 'address_outside_domains' in backend.shared('outside')['error']
    # an alias may not shadow an account, nor loop
    assert 'alias_shadows_account' in backend.shared('shadow')['error']
    for reference in ('loop-1', 'loop-2'):
        assert 'alias_loop' in backend.shared(reference)['error'], reference
    with smtplib.SMTP(backend.host, backend.port('smtp'), timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail('etienne@hotmail.example')
        code, text = smtp.rcpt('loop-1@' + DOMAIN)
        assert code == 550, text
    # a valid alias gets its address and destinations (a list) published
    assert backend.shared('team') == {
        'alias': 'team@' + DOMAIN,
        'destinations': ALIASES['team']['destinations']}
    # the first claimant keeps its account
    assert 'error' not in backend.shared('alice')
    subject = 'still alice %s' % uuid.uuid4()
    send(backend.host, backend.port('smtp'), 'etienne@hotmail.example',
         [address('alice')], subject)
    imaps_find(backend.host, backend.port('imaps'), address('alice'),
               PASSWORD, subject)


def test_an_account_outside_the_domains_logs_in_and_sends(backend):
    # as upstream's releases create it (its tests use one); its warning
    # says that no mail reaches it
    published = backend.shared('outside-account')
    grace = 'grace@elsewhere.example.org'
    assert published['address'] == grace and 'error' not in published
    assert published['warning'].startswith(
        '%s is not in a domain of this server' % grace)
    backend.set_password('outside-account')
    subject = 'from grace %s' % uuid.uuid4()
    smtp_submit(backend.host, backend.port('submission'), grace, PASSWORD,
                grace, [address('alice')], subject)
    imaps_find(backend.host, backend.port('imaps'), address('alice'),
               PASSWORD, subject)
    with smtplib.SMTP(backend.host, backend.port('smtp'), timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail('etienne@hotmail.example')
        code, _ = smtp.rcpt(grace)
        assert code >= 500


def test_a_reclaimed_address_starts_with_an_empty_mailbox(backend, slapos):
    eve = address('eve')
    subject = 'for the first eve %s' % uuid.uuid4()
    send(backend.host, backend.port('smtp'), 'etienne@hotmail.example', [eve],
         subject)
    imaps_find(backend.host, backend.port('imaps'), eve, PASSWORD, subject)
    slapos.destroy(MAIL_SERVER, 'eve', shared=True, wait=False)
    slapos.wait_instance(max_retry=2)
    with pytest.raises(imaplib.IMAP4.error):
        with imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                               ssl_context=insecure_tls()) as imap:
            imap.login(eve, PASSWORD)
    backend.request_shared('eve-again', {'address': eve})
    slapos.wait_instance(max_retry=2)
    backend.set_password('eve-again', 'another good password')
    assert imaps_subjects(backend.host, backend.port('imaps'), eve,
                          'another good password') == []


# --- certificates -----------------------------------------------------------------

def test_certificate_rotation_keeps_connections(backend, slapos):
    ssl_directory = os.path.join(backend.partition, 'etc', 'ssl')
    before = backend.published['tls-fingerprints']
    imap = imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                             ssl_context=insecure_tls())
    imap.login('testmail@' + DOMAIN, 'password123')
    # the current certificate is about to expire (made so by the
    # partition's user, whose files these are)
    slapos.run(backend.partition, [
        sys.executable, '-c', 'import sys\n'
        'from recipes.stores import certificates\n'
        'certificates.generate("openssl", *sys.argv[1:4], days=1)',
        os.path.join(ssl_directory, 'current.key'),
        os.path.join(ssl_directory, 'current.crt'), DOMAIN], check=True)
    # slapgrid runs each partition again at least daily; here, at once
    slapos.standalone._force_slapos_node_instance_all = True
    try:
        slapos.standalone.waitForInstance(max_retry=2)
    finally:
        slapos.standalone._force_slapos_node_instance_all = False
    after = slapos.connection_parameters(
        MAIL_SERVER, 'backend')['tls-fingerprints']
    assert after[0] == before[1] and after[1] not in before
    # served by every daemon; the IMAP session opened before goes on
    with smtplib.SMTP(backend.host, backend.port('smtp'), timeout=30) as smtp:
        smtp.starttls(context=insecure_tls())
        assert certificates.fingerprint_of_der(
            smtp.sock.getpeercert(binary_form=True)) == after[0]
    with imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                           ssl_context=insecure_tls()) as fresh:
        assert certificates.fingerprint_of_der(
            fresh.sock.getpeercert(binary_form=True)) == after[0]
    assert imap.noop()[0] == 'OK'
    imap.logout()


# --- promises -------------------------------------------------------------------

def test_promises_watch_ports_certificate_and_queue(backend):
    plugins = os.listdir(os.path.join(backend.partition, 'etc', 'plugin'))
    for port in ('smtp', 'submission', 'smtps', 'imap', 'imaps', 'pop3',
                 'pop3s', 'sieve'):
        assert '%s-port-listening.py' % port in plugins
    assert 'smtp-certificate.py' in plugins and 'deferred-queue.py' in plugins
    # what they measure, on the running daemons
    current = certificates.fingerprint(
        os.path.join(backend.partition, 'etc', 'ssl', 'current.crt'))
    assert smtp_certificate.served_fingerprint(
        backend.host, backend.port('smtp')) == current
    counted = backend.slapos.run(backend.partition, [
        sys.executable, '-c', 'import sys\n'
        'from recipes.promises.deferred_queue import deferred_count\n'
        'print(deferred_count(*sys.argv[1:]))',
        software_binary(backend.slapos, 'postfix', 'sbin', 'postqueue'),
        os.path.join(backend.partition, 'etc', 'postfix')],
        capture_output=True, text=True, check=True).stdout
    assert int(counted) == len(
        [m for m in backend.queue() if m['queue_name'] == 'deferred'])


# --- reset token (last: dave gets another password) ---------------------------

def test_a_reset_token_sets_a_new_password_once(backend, slapos):
    dave = address('dave')
    token = 'reset-%s' % uuid.uuid4()
    backend.request_shared('dave', dict(ACCOUNTS['dave'], **{
        'reset-token': token}))
    slapos.wait_instance(max_retry=2)
    # as upstream: the reset-token comes back as the token, with its link
    published = backend.shared('dave')
    assert published['token'] == token
    assert published['setup-url'].startswith(backend.published['password-url'])
    assert 'token=' + token in published['setup-url']
    status, _, text = post_form(backend.published['password-url'], user=dave,
                                token=token, password='a brand new password')
    assert status == 200, text
    assert 'Password updated successfully' in text
    with imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                           ssl_context=insecure_tls()) as imap:
        imap.login(dave, 'a brand new password')
    with pytest.raises(imaplib.IMAP4.error):
        with imaplib.IMAP4_SSL(backend.host, backend.port('imaps'),
                               ssl_context=insecure_tls()) as imap:
            imap.login(dave, PASSWORD)
    # once only, and no longer published once used
    status, _, text = post_form(backend.published['password-url'], user=dave,
                                token=token, password='yet another password')
    assert status >= 400, text
    slapos.wait_instance(max_retry=2, force=True)
    assert backend.shared('dave') == {'address': dave}


def test_no_secret_sits_in_buildout_records(backend, slapos):
    # a live setup token, a live reset token, the smarthost's password and
    # the users' password: through files, never options
    backend.request_shared('frank', {'address': 'frank@' + DOMAIN})
    reset = 'reset-%s' % uuid.uuid4()
    backend.request_shared('carol', dict(ACCOUNTS['carol'], **{
        'reset-token': reset}))
    slapos.wait_instance(max_retry=2)
    setup_token = backend.shared('frank')['token']
    assert backend.shared('carol')['address'] == 'carol@' + DOMAIN
    # the SRS secret (mail that leaves again), private to the partition,
    # in no record and no log (the external alias forwarded with it)
    srs_secret = os.path.join(backend.partition, 'etc', 'postfix',
                              'srs-secret')
    assert os.stat(srs_secret).st_mode & 0o777 == 0o600
    srs_secret = slapos.run(backend.partition, ['cat', srs_secret],
                            capture_output=True, text=True,
                            check=True).stdout.strip()
    assert_no_secret_in_records(
        slapos, [setup_token, reset, SMARTHOST_LOGIN[1], PASSWORD,
                 srs_secret], expected='frank@' + DOMAIN)
    logs = os.path.join(backend.partition, 'var', 'log')
    for name in os.listdir(logs):
        path = os.path.join(logs, name)
        if os.path.isfile(path) and not name.endswith('.gz'):
            text = slapos.run(backend.partition, ['cat', path],
                              capture_output=True, check=True).stdout
            assert srs_secret.encode() not in text, name

