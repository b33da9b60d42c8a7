"""Both releases as an attacker on the same network tries them (issue 12,
and 13's AUTH on the SMTP port and plaintext logins): a relay cluster of
one node, two backends that order their domains from it (mail1, and mail2
which takes messages of 1 MiB at most), a backend that is its own domain's
MX (no relay: greylisting configured, SPF against a stand-in DNS server),
and a stand-in third-party smarthost. Each attacker connects from an
address of its own that is neither a relay node nor a backend.

- the backends' SMTP port takes unauthenticated mail from the relay's nodes
  alone; as its own MX, a backend applies the relay's inbound checks;
- nobody signs as another tenant: the From header is checked on the
  backends and on the relay, before OpenDKIM signs;
- no SMTP smuggling, no early talkers, no pipelining without ESMTP;
- TLS 1.2 or later, no anonymous suite, wherever a user logs in;
- guessing is slow on every door (issue 23): the password page, the
  webmail, IMAP and SMTP AUTH, 10 clients of one address for 60 s each get
  under 60 answers, each later one waiting longer, and the right password
  after the delay works; the relay's SASL never answers 454;
- DMARC of inbound mail: p=reject refused, p=quarantine filed into Junk,
  a signed message of a hosted domain passes, as Authentication-Results
  says;
- one address holds at most 20 connections to a backend's IMAPS (as to
  its IMAP, POP3, ManageSieve) and HTTPS ports;
- TLS towards the smarthosts verified: a certificate of another CA keeps
  the mail queued; the backends pinned by their fingerprints;
- too big for its backend: refused by the relay (552), nothing bounced;
  the postmaster reaches a real mailbox; VRFY is disabled;
- a client over the connection rate is turned away, the node itself not;
- plaintext logins are refused from the server's own address too.
"""
import base64
import email
import http.client
import warnings
import imaplib
import json
import os
import poplib
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import uuid

import pytest

from tests.deployment import (MAIL_SERVER, RELAY, SnappymailSession,
                              imaps_find, imaps_subjects, insecure_tls,
                              postfix_queue, set_password, wait_for)
from tests.dns_server import DNSServer
from tests.harness import partition_ipv6
from tests.smarthost import Smarthost

MAIL1, MAIL2, MX = 'mail1.example.com', 'mail2.example.com', 'mx.example.com'
MAIL3 = 'mail3.example.com'       # ordered by hand, its backend logs in
SMARTHOST = partition_ipv6(31)
DNS = partition_ipv6(29)
SPF_ALLOWED = partition_ipv6(28)   # what spf.example's SPF record allows
# the attackers, each from an address of its own (the relay counts
# connections per client address; postscreen knows each address apart)
STRANGER = partition_ipv6(10)
SPOOFER = partition_ipv6(11)
SMUGGLER = partition_ipv6(12)
EARLY_TALKER = partition_ipv6(13)
FLOODER = partition_ipv6(14)
PIPELINER = partition_ipv6(16)
OUTSIDER = partition_ipv6(15)      # a legitimate server of the Internet
# a guesser at each door (issue 23), and a smarthost that shows the
# certificate of another CA than the one the relay is told to trust
GUESSERS = {'password page': partition_ipv6(18),
            'webmail': partition_ipv6(19), 'IMAP': partition_ipv6(20),
            'SMTP AUTH': partition_ipv6(21)}
UNTRUSTED_SMARTHOST = partition_ipv6(27)
HOARDER = partition_ipv6(22)       # holds as many connections as it can
SMARTHOST_LOGIN = ('relay', 'smarthost secret')
PASSWORD = 'correct horse battery'
CONNECTIONS_PER_MINUTE = 10        # the relay node's rate limit here
GREYLISTING_DELAY = 2              # the MX backend's
ACCOUNTS = {   # reference -> (address, backend reference)
    'alice': ('alice@' + MAIL1, 'mail1'),
    'bob': ('bob@' + MAIL1, 'mail1'),
    'charlie': ('charlie@' + MAIL2, 'mail2'),
}
# an account whose password was never set: its setup token is guessed
UNSET = ('dave', 'dave@' + MAIL1, 'mail1')
ALIASES = {'team': ({'alias': 'team@' + MAIL1,
                     'destinations': ['alice@' + MAIL1, 'bob@' + MAIL1]},
                    'mail1'),
           'grey': ({'alias': 'grey@' + MX,
                     'destinations': ['testmail@' + MX]}, 'mx')}
OUTSIDE_SENDER = 'etienne@hotmail.example'


DMARC_RECORDS = {'reject.example': 'v=DMARC1; p=reject',
                 'quarantine.example': 'v=DMARC1; p=quarantine'}


@pytest.fixture(scope='module')
def outside(tmp_path_factory):
    records = {('spf.example', 'TXT'): ['v=spf1 ip6:%s -all' % SPF_ALLOWED]}
    records.update({('_dmarc.' + domain, 'TXT'): [record]
                    for domain, record in DMARC_RECORDS.items()})
    with Smarthost(SMARTHOST, str(tmp_path_factory.mktemp('smarthost')),
                   dict([SMARTHOST_LOGIN])) as smarthost, \
            Smarthost(UNTRUSTED_SMARTHOST,
                      str(tmp_path_factory.mktemp('untrusted')),
                      dict([SMARTHOST_LOGIN]), trusted=False) as untrusted, \
            DNSServer(DNS, records) as dns:
        yield {'smarthost': smarthost, 'untrusted': untrusted, 'dns': dns}


@pytest.fixture(scope='module')
def deployment(slapos, outside):
    slapos.supply(MAIL_SERVER)
    relay_url = slapos.supply(RELAY)
    slapos.wait_software()
    nameservers = [outside['dns'].address]
    spf = {'timeout': 3}
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node1': {'fqdn': 'relay1.example.net'}},
        'default-relay-config': {
            'proxy-map': {'smarthost': {
                'host': SMARTHOST, 'port': outside['smarthost'].starttls_port,
                'user': SMARTHOST_LOGIN[0], 'password': SMARTHOST_LOGIN[1],
                'domains': [MAIL1, MAIL2], 'tls': outside['smarthost'].tls},
                # told to trust the test CA, it shows another CA's
                'untrusted': {
                    'host': UNTRUSTED_SMARTHOST,
                    'port': outside['untrusted'].starttls_port,
                    'user': SMARTHOST_LOGIN[0],
                    'password': SMARTHOST_LOGIN[1], 'domains': [MAIL3],
                    'tls': outside['smarthost'].tls}},
            'greylisting': {'enable': False}, 'spf': spf,
            'nameservers': nameservers,
            'rate-limits': {'connections': CONNECTIONS_PER_MINUTE},
            'postmaster': 'postmaster@' + MAIL1}})
    inbound_relay = {'enable': True, 'relay-sr-url': relay_url}
    partitions = {}
    for reference, parameters in (
            ('mail1', {'mail-domains': [MAIL1],
                       'inbound-relay': inbound_relay}),
            ('mail2', {'mail-domains': [MAIL2], 'email-size-limit': 1,
                       'inbound-relay': inbound_relay}),
            ('mx', {'mail-domains': [MX], 'test-account': True,
                    'inbound-relay': {'enable': False},
                    'nameservers': nameservers,
                    'postmaster': 'testmail@' + MX,
                    'greylisting': {
                        'greylisting-delay': GREYLISTING_DELAY,
                        'whitelist-recipients': ['testmail@' + MX]},
                    'spf': spf})):
        partitions[reference] = slapos.request(
            MAIL_SERVER, reference, 'default', parameters).getId()
    for reference, (address, backend) in ACCOUNTS.items():
        slapos.request(MAIL_SERVER, reference, 'default',
                       {'address': address}, shared=True,
                       instance_guid=partitions[backend])
    slapos.request(MAIL_SERVER, UNSET[0], 'default', {'address': UNSET[1]},
                   shared=True, instance_guid=partitions[UNSET[2]])
    for reference, (parameters, backend) in ALIASES.items():
        slapos.request(MAIL_SERVER, reference, 'default', parameters,
                       shared=True, instance_guid=partitions[backend])
    slapos.wait_instance(max_retry=8, max_passes=8)
    backends = {reference: slapos.connection_parameters(MAIL_SERVER,
                                                        reference)
                for reference in partitions}
    # a domain whose backend (mail1's) logs in to send (authentication:
    # password), ordered by hand
    slapos.request(RELAY, 'domain-' + MAIL3, 'cluster', {
        'name': MAIL3, 'mail-server-host': backends['mail1']['imap-smtp-ipv6'],
        'authentication': 'password'}, shared=True)
    slapos.wait_instance(max_retry=8, max_passes=8)
    for reference, (address, backend) in ACCOUNTS.items():
        set_password(slapos, reference, PASSWORD,
                     backends[backend]['password-url'])
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    node = relay['relay-hosts'][0]
    # the Internet's DNS has what mail1 publishes: its DKIM key, its DMARC
    for record in backends['mail1']['dns-records']:
        if record['type'] == 'TXT':
            outside['dns'].add(record['name'], 'TXT', [record['value']])
    return {
        'slapos': slapos, 'node': node, 'backends': backends,
        'node-partition': slapos.partition_of_address(node),
        'partitions': {r: slapos.partition_of_address(b['imap-smtp-ipv6'])
                       for r, b in backends.items()},
        'mail3': slapos.connection_parameters(RELAY, 'domain-' + MAIL3,
                                              'cluster', shared=True)}


def host(deployment, backend):
    return deployment['backends'][backend]['imap-smtp-ipv6']


def port(deployment, backend, name):
    return int(deployment['backends'][backend][name + '-port'])


def certificate(deployment, reference):
    """A partition's own current certificate and key, as files."""
    directory = os.path.join(deployment['partitions'].get(
        reference, deployment['node-partition']), 'etc', 'ssl')
    return (os.path.join(directory, 'current.crt'),
            os.path.join(directory, 'current.key'))


def queue(deployment, partition):
    return postfix_queue(deployment['slapos'], partition)


def inbox(host_, imaps_port, user, password=PASSWORD):
    """``[(subject, message)]`` of a mailbox's INBOX, over IMAPS."""
    with imaplib.IMAP4_SSL(host_, imaps_port,
                           ssl_context=insecure_tls()) as imap:
        imap.login(user, password)
        imap.select('INBOX')
        _, found = imap.search(None, 'ALL')
        messages = []
        for number in found[0].split():
            _, data = imap.fetch(number, '(RFC822)')
            message = data[0][1].decode('utf-8', 'replace')
            messages.append((email.message_from_string(message)['Subject'],
                             message))
        return messages


class Session:
    """An SMTP client that waits for each reply, as a real one does, from
    ``source``; ``raw`` sends bytes as they are."""

    def __init__(self, host_, port_, source, greeting=True):
        self.socket = socket.create_connection((host_, port_), timeout=30,
                                               source_address=(source, 0))
        self.file = self.socket.makefile('rb')
        if greeting:
            self.greeting = self.reply()

    def reply(self):
        """The last line of the next reply (``b''`` once closed)."""
        while True:
            line = self.file.readline()
            if not line or line[3:4] != b'-':
                return line.rstrip()

    def command(self, line):
        self.socket.sendall(line + b'\r\n')
        return self.reply()

    def raw(self, data):
        self.socket.sendall(data)

    def close(self):
        self.socket.close()


def code(reply):
    return int(reply[:3]) if reply[:3].isdigit() else None


# -- 1. nothing delivers around the relay ---------------------------------------
def test_a_stranger_cannot_deliver_to_a_backend_around_its_relay(deployment):
    backend = host(deployment, 'mail1')
    smtp_port = port(deployment, 'mail1', 'smtp')
    other_backend = certificate(deployment, 'mail2')
    # in clear, after STARTTLS, with a certificate that is not a relay
    # node's, and from the backend's own address (any process of the
    # machine that does not choose its address connects from there)
    for source, tls, cert in ((STRANGER, False, None), (STRANGER, True, None),
                              (STRANGER, True, other_backend),
                              (backend, True, None)):
        with smtplib.SMTP(backend, smtp_port, timeout=30,
                          source_address=(source, 0)) as smtp:
            if tls:
                context = insecure_tls()
                if cert:
                    context.load_cert_chain(*cert)
                smtp.starttls(context=context)
            smtp.ehlo('stranger.example')
            assert smtp.mail(OUTSIDE_SENDER)[0] == 250
            reply_code, text = smtp.rcpt('alice@' + MAIL1)
            assert reply_code == 554, (source, tls, text)
            assert b'5.7.1' in text and b'from their relay only' in text
    assert not [m for m in queue(deployment, deployment['partitions']['mail1'])
                if m['sender'] == OUTSIDE_SENDER]


def test_the_internets_mail_comes_in_through_the_relay(deployment):
    subject = 'through the relay %s' % uuid.uuid4()
    with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                      source_address=(OUTSIDER, 0)) as smtp:
        smtp.sendmail(OUTSIDE_SENDER, ['alice@' + MAIL1],
                      'From: %s\r\nSubject: %s\r\n\r\nHello.\r\n'
                      % (OUTSIDE_SENDER, subject))
    imaps_find(host(deployment, 'mail1'), port(deployment, 'mail1', 'imaps'),
               'alice@' + MAIL1, PASSWORD, subject)


def test_a_user_submits_on_the_smtp_port_after_starttls(deployment):
    backend, smtp_port = host(deployment, 'mail1'), port(deployment, 'mail1',
                                                         'smtp')
    with smtplib.SMTP(backend, smtp_port, timeout=30,
                      source_address=(STRANGER, 0)) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn('auth')      # no password in clear
        smtp.starttls(context=insecure_tls())
        smtp.ehlo()
        assert 'PLAIN' in smtp.esmtp_features['auth']
    subject = 'on the smtp port %s' % uuid.uuid4()
    with smtplib.SMTP(backend, smtp_port, timeout=30,
                      source_address=(STRANGER, 0)) as smtp:
        smtp.starttls(context=insecure_tls())
        smtp.login('alice@' + MAIL1, PASSWORD)
        # as on the submission port: only her own sender address
        assert smtp.mail('bob@' + MAIL1)[0] == 250
        assert smtp.rcpt('charlie@' + MAIL2)[0] == 553
        smtp.rset()
        smtp.sendmail('alice@' + MAIL1, ['charlie@' + MAIL2],
                      'From: alice@%s\r\nSubject: %s\r\n\r\nHi.\r\n'
                      % (MAIL1, subject))
    imaps_find(host(deployment, 'mail2'), port(deployment, 'mail2', 'imaps'),
               'charlie@' + MAIL2, PASSWORD, subject)


def attempt(deployment, source, sender, recipient, subject=None):
    """One message to the MX backend's SMTP port from ``source``: the
    code of the first refusal, or 250 once accepted."""
    with smtplib.SMTP(host(deployment, 'mx'), port(deployment, 'mx', 'smtp'),
                      timeout=60, source_address=(source, 0)) as smtp:
        smtp.ehlo('mx.outside.example')
        for step in (lambda: smtp.mail(sender),
                     lambda: smtp.rcpt(recipient),
                     lambda: smtp.data('From: %s\r\nSubject: %s\r\n\r\nHi.\r\n'
                                       % (sender, subject or uuid.uuid4()))):
            reply_code, text = step()
            if reply_code >= 400:
                return reply_code, text.decode()
        return reply_code, text.decode()


def test_as_its_own_mx_a_backend_checks_as_the_relay_does(deployment):
    mx = 'testmail@' + MX
    # nobody outside sends as the hosted domain
    reply_code, text = attempt(deployment, OUTSIDER, mx, mx)
    assert reply_code == 554 and '5.7.1' in text, text
    # SPF fail is refused, a pass is let through
    reply_code, text = attempt(deployment, OUTSIDER, 'a@spf.example', mx)
    assert reply_code == 550 and '5.7.23' in text, text
    subject = 'spf pass %s' % uuid.uuid4()
    assert attempt(deployment, SPF_ALLOWED, 'a@spf.example', mx,
                   subject)[0] == 250
    message = imaps_find(host(deployment, 'mx'),
                         port(deployment, 'mx', 'imaps'), mx, 'password123',
                         subject)
    assert 'Received-SPF: Pass' in message
    # an unknown recipient is refused during the dialogue
    assert attempt(deployment, OUTSIDER, OUTSIDE_SENDER,
                   'nobody@' + MX)[0] == 550
    # greylisting, configured here: deferred, then accepted after the delay
    subject = 'greylisted %s' % uuid.uuid4()
    reply_code, text = attempt(deployment, OUTSIDER, OUTSIDE_SENDER,
                               'grey@' + MX, subject)
    assert reply_code == 450 and 'Greylisted' in text, text
    time.sleep(GREYLISTING_DELAY + 1)
    assert attempt(deployment, OUTSIDER, OUTSIDE_SENDER, 'grey@' + MX,
                   subject)[0] == 250
    imaps_find(host(deployment, 'mx'), port(deployment, 'mx', 'imaps'), mx,
               'password123', subject)



def myhostname(partition):
    with open(os.path.join(partition, 'etc', 'postfix', 'main.cf')) as f:
        return re.search(r'^myhostname = (\S+)$', f.read(), re.M).group(1)


def test_the_verification_address_leads_nowhere(deployment, outside):
    """RCPT TO:<double-bounce@$myhostname> passes every restriction (Postfix
    lets its own address verification's probes through): what a stranger
    sends there is discarded, neither delivered, relayed nor bounced."""
    for server, smtp_port, partition in (
            (deployment['node'], 10025, deployment['node-partition']),
            (host(deployment, 'mail1'), port(deployment, 'mail1', 'smtp'),
             deployment['partitions']['mail1'])):
        recipient = 'double-bounce@' + myhostname(partition)
        subject = 'to %s %s' % (recipient, uuid.uuid4())
        with smtplib.SMTP(server, smtp_port, timeout=60,
                          source_address=(STRANGER, 0)) as smtp:
            smtp.sendmail(OUTSIDE_SENDER, [recipient],
                          'From: %s\r\nSubject: %s\r\n\r\nHi.\r\n'
                          % (OUTSIDE_SENDER, subject))
        log = os.path.join(partition, 'var', 'log', 'postfix.log')
        wait_for(lambda: re.search(
            r'to=<%s>, relay=none, .*status=sent \(double-bounce\)'
            % re.escape(recipient), open(log).read()),
            'the message to %s discarded' % recipient, 60)
    assert_no_bounce(deployment, outside)
    assert not [m for m, _ in outside['smarthost'].messages()
                if 'double-bounce' in ' '.join(m['rcpt-tos'])]


def test_a_domains_backend_address_is_not_trusted_inbound(deployment,
                                                           slapos):
    """A domain's mail-server-host is whatever its orderer wrote: it does
    not make that address a client the relay trusts on its inbound port
    (no SPF, no postscreen, no rate limit), and an address that is not one
    is an error of that domain alone."""
    claimed = partition_ipv6(17)
    slapos.request(RELAY, 'domain-claimed', 'cluster', {
        'name': 'claimed.example', 'mail-server-host': claimed},
        shared=True)
    slapos.request(RELAY, 'domain-broken', 'cluster', {
        'name': 'broken.example', 'mail-server-host': '1.2.3'}, shared=True)
    slapos.wait_instance(max_retry=4)
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    assert 'claimed.example' in relay['backend-domains'].splitlines()
    broken = slapos.connection_parameters(RELAY, 'domain-broken', 'cluster',
                                          shared=True)
    assert "mail-server-host '1.2.3' is not an IP address" in \
        broken['error'], broken
    # the claimed address sends as spf.example, whose SPF allows another
    with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                      source_address=(claimed, 0)) as smtp:
        smtp.ehlo('claimed.example')
        assert smtp.mail('a@spf.example')[0] == 250
        reply_code, text = smtp.rcpt('alice@' + MAIL1)
    assert reply_code == 550 and b'5.7.23' in text, (reply_code, text)

# -- 2. nobody signs as another tenant -----------------------------------------
def test_a_header_from_of_another_tenant_is_refused_and_never_signed(
        deployment, outside):
    tag = uuid.uuid4().hex
    # on the backend, as alice, with her own envelope sender
    with smtplib.SMTP(host(deployment, 'mail1'),
                      port(deployment, 'mail1', 'submission'), timeout=30,
                      source_address=(SPOOFER, 0)) as smtp:
        smtp.starttls(context=insecure_tls())
        smtp.login('alice@' + MAIL1, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail('alice@' + MAIL1, ['david@gmail.example'],
                          'From: Charlie <charlie@%s>\r\nSubject: backend %s'
                          '\r\n\r\nPay this.\r\n' % (MAIL2, tag))
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b'5.7.1 <charlie@' +
                                               MAIL2.encode())
    # on the relay, as backend 1 itself (its address and its certificate,
    # what the relay knows it by), with its own envelope sender
    context = insecure_tls()
    context.load_cert_chain(*certificate(deployment, 'mail1'))
    with smtplib.SMTP(deployment['node'], 10587, timeout=30,
                      source_address=(host(deployment, 'mail1'), 0)) as smtp:
        smtp.starttls(context=context)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail('alice@' + MAIL1, ['david@gmail.example'],
                          'From: charlie@%s\r\nSubject: relay %s\r\n\r\n'
                          'Pay this.\r\n' % (MAIL2, tag))
        assert refused.value.smtp_code == 550
        assert b'5.7.1' in refused.value.smtp_error
        # its own domain is signed and sent
        smtp.sendmail('alice@' + MAIL1, ['david@gmail.example'],
                      'From: alice@%s\r\nSubject: own %s\r\n\r\nHi.\r\n'
                      % (MAIL1, tag))
    metadata, message = outside['smarthost'].wait_for(
        lambda m, data: ('own ' + tag).encode() in data)
    assert b'DKIM-Signature' in message and b'd=' + MAIL1.encode() in message
    # and nothing of the spoofs reached the smarthost, signed or not
    time.sleep(2)
    for _, data in outside['smarthost'].messages():
        assert not (tag.encode() in data and b'Pay this' in data)
        if b'd=' + MAIL2.encode() in data:
            headers = email.message_from_bytes(data)
            assert headers['From'].endswith(MAIL2), headers['From']


def test_within_a_tenant_a_user_shows_only_her_own_addresses(deployment):
    backend = host(deployment, 'mail1')
    subject = 'as bob %s' % uuid.uuid4()
    with smtplib.SMTP_SSL(backend, port(deployment, 'mail1', 'smtps'),
                          timeout=30, context=insecure_tls(),
                          source_address=(SPOOFER, 0)) as smtp:
        smtp.login('alice@' + MAIL1, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail('alice@' + MAIL1, ['charlie@' + MAIL2],
                          'From: Bob <bob@%s>\r\nSubject: %s\r\n\r\nHi.\r\n'
                          % (MAIL1, subject))
        assert refused.value.smtp_code == 550
        assert b'5.7.1 <bob@' + MAIL1.encode() in refused.value.smtp_error
        # an address in the display name counts too
        with pytest.raises(smtplib.SMTPDataError):
            smtp.sendmail('alice@' + MAIL1, ['charlie@' + MAIL2],
                          'From: "bob@%s" <alice@%s>\r\nSubject: %s\r\n\r\n'
                          'Hi.\r\n' % (MAIL1, MAIL1, subject))
        # an alias that delivers to her is hers
        smtp.sendmail('alice@' + MAIL1, ['charlie@' + MAIL2],
                      'From: The team <team@%s>\r\nSubject: team %s\r\n\r\n'
                      'Hi.\r\n' % (MAIL1, subject))
    imaps_find(host(deployment, 'mail2'), port(deployment, 'mail2', 'imaps'),
               'charlie@' + MAIL2, PASSWORD, 'team ' + subject)
    assert not [s for s, _ in inbox(host(deployment, 'mail2'),
                                    port(deployment, 'mail2', 'imaps'),
                                    'charlie@' + MAIL2)
                if s == subject]


# -- 3. no smuggling, no early talkers ------------------------------------------
SMUGGLING = {'LF.LF': b'\n.\n', 'CRLF.LF': b'\r\n.\n', 'LF.CRLF': b'\n.\r\n'}


@pytest.mark.parametrize('form', sorted(SMUGGLING))
@pytest.mark.parametrize('target', ['relay inbound', 'MX backend'])
def test_smuggling_never_splits_a_message(deployment, form, target):
    if target == 'relay inbound':
        server, recipient = (deployment['node'], 10025), 'alice@' + MAIL1
        mailbox = ('mail1', recipient, PASSWORD)
    else:
        server = (host(deployment, 'mx'), port(deployment, 'mx', 'smtp'))
        recipient = 'testmail@' + MX
        mailbox = ('mx', recipient, 'password123')
    tag = uuid.uuid4().hex
    smuggled = (b'MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<%s>\r\nDATA\r\n'
                b'From: ceo@bank.example\r\nSubject: smuggled %s\r\n\r\n'
                b'Wire the money.\r\n.\r\n' % (recipient.encode(),
                                              tag.encode()))
    session = Session(*server, SMUGGLER)
    try:
        assert session.command(b'EHLO outside.example').startswith(b'250')
        assert code(session.command(b'MAIL FROM:<%s>'
                                    % OUTSIDE_SENDER.encode())) == 250
        assert code(session.command(b'RCPT TO:<%s>' % recipient.encode())) \
            == 250
        assert code(session.command(b'DATA')) == 354
        session.raw(b'From: %s\r\nSubject: outer %s\r\n\r\nHello.'
                    % (OUTSIDE_SENDER.encode(), tag.encode())
                    + SMUGGLING[form] + smuggled)
        # one answer, for one message (a split would answer the smuggled
        # MAIL, RCPT and DATA too)
        replies = [session.reply()]
        replies.append(session.command(b'QUIT'))
    finally:
        session.close()
    assert code(replies[0]) == 250 and code(replies[1]) == 221, replies
    backend, user, password = mailbox
    imaps_find(host(deployment, backend), port(deployment, backend, 'imaps'),
               user, password, 'outer ' + tag)
    time.sleep(2)
    found = [(subject, message) for subject, message in inbox(
        host(deployment, backend), port(deployment, backend, 'imaps'), user,
        password) if tag in message]
    # exactly one message: the smuggled one is a part of its text
    assert [s for s, _ in found] == ['outer ' + tag]
    assert 'Subject: smuggled ' + tag in found[0][1]


@pytest.mark.parametrize('target', ['relay inbound', 'MX backend'])
def test_a_client_that_talks_before_the_greeting_is_refused(deployment,
                                                            target):
    if target == 'relay inbound':
        server, recipient = (deployment['node'], 10025), 'alice@' + MAIL1
    else:
        server = (host(deployment, 'mx'), port(deployment, 'mx', 'smtp'))
        recipient = 'testmail@' + MX
    tag = uuid.uuid4().hex
    session = Session(*server, EARLY_TALKER, greeting=False)
    try:
        session.raw(b'EHLO early.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n'
                    b'DATA\r\nSubject: early %s\r\n\r\nHi.\r\n.\r\nQUIT\r\n'
                    % (OUTSIDE_SENDER.encode(), recipient.encode(),
                       tag.encode()))
        said = session.file.read()
    finally:
        session.close()
    # postscreen's pregreet test: whatever else it says, the recipient is
    # refused and nothing is accepted
    assert b'550 5.5.1 Protocol error' in said, said
    assert b'queued as' not in said, said


@pytest.mark.parametrize('where', ['relay inbound', 'backend submission'])
def test_commands_sent_ahead_without_esmtp_are_refused(deployment, where):
    if where == 'relay inbound':
        server, recipient = (deployment['node'], 10025), 'alice@' + MAIL1
    else:
        server = (host(deployment, 'mail1'),
                  port(deployment, 'mail1', 'submission'))
        recipient = 'bob@' + MAIL1
    session = Session(*server, PIPELINER)
    try:
        # HELO, not EHLO: the client cannot know the server pipelines
        session.raw(b'HELO bulk.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n'
                    b'DATA\r\n' % (OUTSIDE_SENDER.encode(),
                                   recipient.encode()))
        said = session.file.read()
    finally:
        session.close()
    assert b'554 5.5.0 Error: SMTP protocol synchronization' in said, said
    assert b'354' not in said


# -- 4. TLS where users log in ------------------------------------------------------
def sieve_starttls(sock, context):
    f = sock.makefile('rb')
    while not f.readline().startswith(b'OK'):
        pass
    sock.sendall(b'STARTTLS\r\n')
    assert f.readline().startswith(b'OK')
    return context.wrap_socket(sock)


# the clients of the protocols that start TLS with a command
STARTTLS = {'imap': (imaplib.IMAP4,
                     lambda client, context: client.starttls(
                         ssl_context=context)),
            'pop3': (poplib.POP3,
                     lambda client, context: client.stls(context=context))}


def handshake(server, kind, context):
    """A TLS handshake with ``context``, as the port's protocol starts it;
    returns the negotiated version, raises ssl.SSLError when refused."""
    host_, port_ = server
    if kind == 'smtp':
        with smtplib.SMTP(host_, port_, timeout=30) as smtp:
            smtp.starttls(context=context)
            return smtp.sock.version()
    if kind in STARTTLS:
        connect, starttls = STARTTLS[kind]
        client = connect(host_, port_, timeout=30)
        try:
            starttls(client, context)
            return client.sock.version()
        finally:
            client.sock.close()
    with socket.create_connection(server, timeout=30) as sock:
        if kind == 'sieve':
            with sieve_starttls(sock, context) as tls:
                return tls.version()
        with context.wrap_socket(sock) as tls:     # implicit TLS
            return tls.version()


def client_context(version=None, ciphers='DEFAULT:@SECLEVEL=0'):
    """A client that offers only ``version`` and ``ciphers`` (with OpenSSL's
    security level 0, so that it may offer what is obsolete)."""
    context = insecure_tls()
    context.set_ciphers(ciphers)
    if version:
        with warnings.catch_warnings():     # what the attacker offers
            warnings.simplefilter('ignore', DeprecationWarning)
            context.minimum_version = context.maximum_version = version
    return context


OLD_TLS = {'TLS 1.0': ssl.TLSVersion.TLSv1, 'TLS 1.1': ssl.TLSVersion.TLSv1_1}
LOGIN_PORTS = [('mail-server', name, kind) for name, kind in (
    ('smtp', 'smtp'), ('submission', 'smtp'), ('smtps', 'implicit'),
    ('imap', 'imap'), ('imaps', 'implicit'), ('pop3', 'pop3'),
    ('pop3s', 'implicit'), ('sieve', 'sieve'), ('https', 'implicit'))] + [
    ('mail-server-relay', 'submission', 'smtp')]


def login_server(deployment, release, name):
    if release == 'mail-server-relay':
        return (deployment['node'], 10587)
    if name == 'https':      # the password page's (and webmail's) port
        return (host(deployment, 'mail1'), urllib.parse.urlsplit(
            deployment['backends']['mail1']['password-url']).port)
    return (host(deployment, 'mail1'), port(deployment, 'mail1', name))


@pytest.mark.parametrize('release,name,kind', LOGIN_PORTS,
                         ids=['%s %s' % (r, n) for r, n, _ in LOGIN_PORTS])
def test_old_tls_and_anonymous_suites_are_refused_where_users_log_in(
        deployment, release, name, kind):
    server = login_server(deployment, release, name)
    old = {label: client_context(version)
           for label, version in OLD_TLS.items()}
    old['anonymous'] = client_context(ssl.TLSVersion.TLSv1_2,
                                      'aNULL:@SECLEVEL=0')
    for label, context in old.items():
        with pytest.raises((ssl.SSLError, ConnectionError)):
            handshake(server, kind, context)
    assert handshake(server, kind, client_context()) in ('TLSv1.2', 'TLSv1.3')


def test_the_client_could_have_spoken_old_tls_an_mx_still_takes_it(
        deployment):
    """What makes the refusals above meaningful: the same client gets TLS
    1.0 and an anonymous suite from the relay's inbound port, an MX, which
    keeps the opportunistic TLS Postfix recommends for one."""
    context = client_context(OLD_TLS['TLS 1.0'])
    assert handshake((deployment['node'], 10025), 'smtp', context) == 'TLSv1'
    anonymous = client_context(ssl.TLSVersion.TLSv1_2, 'aNULL:@SECLEVEL=0')
    assert handshake((deployment['node'], 10025), 'smtp', anonymous) == \
        'TLSv1.2'


# -- 5. the relay's SASL ---------------------------------------------------------
def relay_login(deployment, user, password):
    """One login on the relay's submission port, from backend 1's address
    (whose domains log in): the reply code, and how long it took."""
    with smtplib.SMTP(deployment['node'], 10587, timeout=60,
                      source_address=(host(deployment, 'mail1'), 0)) as smtp:
        smtp.starttls(context=insecure_tls())
        smtp.ehlo()
        started = time.monotonic()
        token = base64.b64encode(b'\0%s\0%s' % (user.encode(),
                                                password.encode()))
        reply_code, _ = smtp.docmd('AUTH', 'PLAIN ' + token.decode())
        return reply_code, time.monotonic() - started


# (the relay's SASL under guessing: test_guessing_is_slow_on_every_door)


# -- 6. nothing accepted, then bounced ------------------------------------------
def test_a_message_too_big_for_its_backend_is_refused_by_the_relay(
        deployment, outside):
    limit = 1024 * 1024      # mail2's email-size-limit
    recipient = 'charlie@' + MAIL2
    with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                      source_address=(OUTSIDER, 0)) as smtp:
        smtp.ehlo('mx.outside.example')
        # announced: refused at RCPT, for mail2 only
        assert smtp.mail(OUTSIDE_SENDER, ['SIZE=%d' % (limit + 1)])[0] == 250
        reply_code, text = smtp.rcpt(recipient)
        assert reply_code == 552 and b'5.3.4' in text, text
        assert smtp.rcpt('alice@' + MAIL1)[0] == 250
        smtp.rset()
        # not announced: refused at the end of the data
        subject = 'too big %s' % uuid.uuid4()
        body = ('x' * 76 + '\r\n') * (limit // 78 + 100)
        assert smtp.mail(OUTSIDE_SENDER)[0] == 250
        assert smtp.rcpt(recipient)[0] == 250
        reply_code, text = smtp.data('From: %s\r\nSubject: %s\r\n\r\n%s'
                                     % (OUTSIDE_SENDER, subject, body))
        assert reply_code == 552 and b'5.3.4' in text, text
        smtp.rset()
        # under the limit, it is delivered
        fits = 'fits %s' % uuid.uuid4()
        smtp.sendmail(OUTSIDE_SENDER, [recipient],
                      'From: %s\r\nSubject: %s\r\n\r\n%s'
                      % (OUTSIDE_SENDER, fits, body[:limit // 2]))
    imaps_find(host(deployment, 'mail2'), port(deployment, 'mail2', 'imaps'),
               recipient, PASSWORD, fits)
    assert_no_bounce(deployment, outside)


def assert_no_bounce(deployment, outside):
    """No bounce (null sender) waits in any queue, none left through the
    smarthost, nothing is on its way back to the outside sender."""
    for partition in [deployment['node-partition']] + list(
            deployment['partitions'].values()):
        for message in queue(deployment, partition):
            assert message['sender'] != '', (partition, message)
            assert OUTSIDE_SENDER not in [
                r['address'] for r in message['recipients']], message
    assert not [m for m, _ in outside['smarthost'].messages()
                if OUTSIDE_SENDER in m['rcpt-tos'] or not m['mail-from']]


def test_the_postmaster_reaches_a_real_mailbox(deployment, slapos, outside):
    subjects = {}
    for recipient in ('postmaster', 'postmaster@' + MAIL1,
                      'Postmaster@' + MAIL1):
        subjects[recipient] = 'to %s %s' % (recipient, uuid.uuid4())
        with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                          source_address=(OUTSIDER, 0)) as smtp:
            smtp.sendmail(OUTSIDE_SENDER, [recipient],
                          'From: %s\r\nSubject: %s\r\n\r\nHello.\r\n'
                          % (OUTSIDE_SENDER, subjects[recipient]))
    # the MX backend's postmaster parameter names its test account
    mx_subject = 'to the MX postmaster %s' % uuid.uuid4()
    with smtplib.SMTP(host(deployment, 'mx'), port(deployment, 'mx', 'smtp'),
                      timeout=60, source_address=(OUTSIDER, 0)) as smtp:
        smtp.sendmail(OUTSIDE_SENDER, ['postmaster'],
                      'From: %s\r\nSubject: %s\r\n\r\nHello.\r\n'
                      % (OUTSIDE_SENDER, mx_subject))
    imaps_find(host(deployment, 'mx'), port(deployment, 'mx', 'imaps'),
               'testmail@' + MX, 'password123', mx_subject)
    # mail1's is the mailbox its backend keeps for it: the operator orders
    # the account postmaster@mail1 and reads it there
    slapos.request(MAIL_SERVER, 'postmaster', 'default',
                   {'address': 'postmaster@' + MAIL1}, shared=True,
                   instance_guid=os.path.basename(
                       deployment['partitions']['mail1']))
    slapos.wait_instance(max_retry=4)
    set_password(slapos, 'postmaster', PASSWORD,
                 deployment['backends']['mail1']['password-url'])
    for subject in subjects.values():
        imaps_find(host(deployment, 'mail1'),
                   port(deployment, 'mail1', 'imaps'), 'postmaster@' + MAIL1,
                   PASSWORD, subject)
    assert_no_bounce(deployment, outside)


def test_vrfy_tells_nobody_who_exists(deployment):
    for server in ((deployment['node'], 10025),
                   (host(deployment, 'mail1'), port(deployment, 'mail1',
                                                    'smtp')),
                   (host(deployment, 'mx'), port(deployment, 'mx', 'smtp'))):
        with smtplib.SMTP(*server, timeout=30,
                          source_address=(OUTSIDER, 0)) as smtp:
            assert smtp.verify('alice@' + MAIL1)[0] == 502, server
            # nor may a stranger ask for a queue run, nor send without
            # saying who it is
            assert smtp.docmd('ETRN', MAIL1)[0] >= 500, server
            assert smtp.docmd('MAIL FROM:<%s>' % OUTSIDE_SENDER)[0] == 503, \
                server


# -- 7. rate limits --------------------------------------------------------------
def test_a_client_over_the_connection_rate_is_turned_away_not_the_node(
        deployment):
    def connect(source):
        try:
            with smtplib.SMTP(deployment['node'], 10025, timeout=30,
                              source_address=(source, 0)) as smtp:
                return smtp.ehlo()[0]
        except smtplib.SMTPConnectError as e:
            return e.smtp_code
    codes = [connect(FLOODER) for _ in range(CONNECTIONS_PER_MINUTE + 3)]
    assert codes[:CONNECTIONS_PER_MINUTE] == [250] * CONNECTIONS_PER_MINUTE
    assert set(codes[CONNECTIONS_PER_MINUTE:]) == {421}, codes
    # the node's own address (the benchmark's generator) is exempt
    node = deployment['node']
    assert [connect(node) for _ in range(CONNECTIONS_PER_MINUTE + 3)] == \
        [250] * (CONNECTIONS_PER_MINUTE + 3)


# -- 13.6: no login in clear, from the server's own address either ---------------
def test_plaintext_logins_are_refused_from_the_servers_own_address(
        deployment):
    backend = host(deployment, 'mail1')
    user = 'alice@' + MAIL1
    # connecting without choosing an address: the backend's own
    imap = imaplib.IMAP4(backend, port(deployment, 'mail1', 'imap'),
                         timeout=30)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(user, PASSWORD)
    finally:
        imap.shutdown()
    pop = poplib.POP3(backend, port(deployment, 'mail1', 'pop3'), timeout=30)
    try:
        pop.user(user)
        with pytest.raises(poplib.error_proto):
            pop.pass_(PASSWORD)
    finally:
        pop.close()
    token = base64.b64encode(b'\0%s\0%s' % (user.encode(), PASSWORD.encode()))
    with socket.create_connection((backend, port(deployment, 'mail1',
                                                 'sieve')), timeout=30) as s:
        f = s.makefile('rb')
        while not f.readline().startswith(b'OK'):
            pass
        s.sendall(b'AUTHENTICATE "PLAIN" "%s"\r\n' % token)
        assert f.readline().startswith(b'NO')
    # after STARTTLS, from the same address, the same login works
    imap = imaplib.IMAP4(backend, port(deployment, 'mail1', 'imap'),
                         timeout=30)
    try:
        imap.starttls(ssl_context=insecure_tls())
        assert imap.login(user, PASSWORD)[0] == 'OK'
    finally:
        imap.shutdown()
    pop = poplib.POP3(backend, port(deployment, 'mail1', 'pop3'), timeout=30)
    try:
        pop.stls(context=insecure_tls())
        pop.user(user)
        assert pop.pass_(PASSWORD).startswith(b'+OK')
    finally:
        pop.close()
    with socket.create_connection((backend, port(deployment, 'mail1',
                                                 'sieve')), timeout=30) as s:
        with sieve_starttls(s, insecure_tls()) as tls:
            f = tls.makefile('rb')
            while not f.readline().startswith(b'OK'):
                pass
            tls.sendall(b'AUTHENTICATE "PLAIN" "%s"\r\n' % token)
            assert f.readline().startswith(b'OK')


# -- 23.1: guessing is slow on every door ------------------------------------------
GUESS_WINDOW = 60         # seconds of guessing (the measure)
GUESSING_CLIENTS = 10     # at once, from one address
WRONG, RIGHT, REFUSED = 'wrong', 'right', 'refused'   # a guess's answer


def guess_in_parallel(guess, results, deadline):
    """``GUESSING_CLIENTS`` threads calling ``guess()`` until ``deadline``
    (monotonic), and each until two of its guesses were judged (of 10
    tries at most): however slow a door, there are twice as many judged
    guesses as clients to compare. Each guess appends ``(sent, answered,
    answer)`` to ``results``: WRONG or RIGHT judge the password, REFUSED
    does not (a rate limit: the client pauses half a second), anything else
    is an error."""
    lock = threading.Lock()

    def client():
        judged = tries = 0
        while time.monotonic() < deadline or (judged < 2 and tries < 10):
            sent = time.monotonic()
            try:
                answer = guess()
            except Exception as e:        # noted, and failed on below
                answer = repr(e)
            tries += 1
            judged += answer in (WRONG, RIGHT)
            with lock:
                results.append((sent, time.monotonic(), answer))
            if answer == REFUSED:
                # as a client told to come back: without it, the refused
                # connections of an idle run (45,000 in the window) took
                # the CPU that the test modules beside this one need
                time.sleep(0.5)
    return [threading.Thread(target=client) for _ in range(GUESSING_CLIENTS)]


def wrong_token(deployment, source):
    """One guess of dave's token on the password page."""
    parts = urllib.parse.urlsplit(
        deployment['backends']['mail1']['password-url'])
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port, timeout=60, context=insecure_tls(),
        source_address=(source, 0))
    try:
        connection.request('POST', parts.path, urllib.parse.urlencode({
            'user': UNSET[1], 'token': uuid.uuid4().hex,
            'password': 'a guess of mine'}), {
            'Content-Type': 'application/x-www-form-urlencoded'})
        status = connection.getresponse().status
    finally:
        connection.close()
    return {403: WRONG, 200: RIGHT}.get(status, 'HTTP %d' % status)


def webmail_login(deployment, source, password):
    # its 4 PHP workers serve the guesses in turn, each held while Dovecot
    # makes it wait: a guess may wait minutes for its turn
    try:
        session = SnappymailSession(
            deployment['backends']['mail1']['webmail-url'], source,
            timeout=300)
        answer = session('Login', Email='alice@' + MAIL1, Password=password)
    except urllib.error.HTTPError as e:
        if e.code == 504:     # its turn did not come before Apache gave up
            return REFUSED
        raise
    return RIGHT if answer.get('Result') else (
        WRONG if answer.get('ErrorCode') or answer.get('code') else
        'webmail %r' % answer)


class IMAPFrom(imaplib.IMAP4_SSL):
    """IMAPS from the address ``source``."""

    def __init__(self, source, host_, port_):
        self.source = source
        super().__init__(host_, port_, ssl_context=insecure_tls(), timeout=60)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def imap_login(deployment, source, password):
    with IMAPFrom(source, host(deployment, 'mail2'),
                  port(deployment, 'mail2', 'imaps')) as imap:
        try:
            imap.login('charlie@' + MAIL2, password)
        except imaplib.IMAP4.error:
            return WRONG
        return RIGHT


def smtp_login(server, source, user, password):
    """``(answer, SMTP reply code)`` of one AUTH PLAIN after STARTTLS."""
    try:
        with smtplib.SMTP(*server, timeout=60,
                          source_address=(source, 0)) as smtp:
            smtp.starttls(context=insecure_tls())
            smtp.ehlo()
            token = base64.b64encode(b'\0%s\0%s' % (user.encode(),
                                                    password.encode()))
            reply_code, _ = smtp.docmd('AUTH', 'PLAIN ' + token.decode())
    except smtplib.SMTPConnectError as e:      # over the connection rate
        reply_code = e.smtp_code
    answer = {235: RIGHT, 535: WRONG}.get(reply_code)
    # refused without a judgement: a rate limit (421, 450), or the server
    # too busy to judge (454: Dovecot's answer or the milter's later than
    # Postfix waits, seen once under a CI run's load). The relay's
    # logins of a backend below must never get a 454.
    if answer is None and reply_code in (421, 450, 454):
        answer = REFUSED
    return answer or 'SMTP %d' % reply_code, reply_code


def mx_submission(deployment):
    return (host(deployment, 'mx'), port(deployment, 'mx', 'submission'))


def test_guessing_is_slow_on_every_door(deployment):
    """From one address each, 10 clients guess for 60 s at each door at
    once: the password page (dave's token, on mail1: its own count), the
    webmail (alice, on mail1), IMAP (charlie, on mail2) and SMTP AUTH
    (the MX backend's submission port): each Dovecot its own penalty. Each
    door gives under 60 answers, the 20th guess answered waits longer than
    the quickest of the first ones (a guess refused by a rate limit judged
    no password), and the right password (token) after the delay works.
    Meanwhile the relay's SASL takes 200 logins of a backend mixing right
    and wrong passwords: never a 454, a wrong one waiting past Postfix's old
    10 s answered 535, the right one after it 235."""
    doors = {
        'password page': lambda source: wrong_token(deployment, source),
        'webmail': lambda source: webmail_login(deployment, source,
                                                uuid.uuid4().hex),
        'IMAP': lambda source: imap_login(deployment, source,
                                          uuid.uuid4().hex),
        'SMTP AUTH': lambda source: smtp_login(
            mx_submission(deployment), source, 'testmail@' + MX,
            uuid.uuid4().hex)[0]}
    results = {door: [] for door in doors}
    deadline = time.monotonic() + GUESS_WINDOW
    threads = []
    for door, guess in doors.items():
        threads += guess_in_parallel(
            lambda guess=guess, source=GUESSERS[door]: guess(source),
            results[door], deadline)
    relay = []     # (password right, reply code, seconds)
    user = deployment['mail3']['outbound-user']
    right = deployment['mail3']['outbound-password']

    def relay_logins():
        # (Dovecot raises its penalty for a new wrong password only)
        for i, wrong in enumerate([False] * 97 + [True] * 5 + [False] * 98):
            started = time.monotonic()
            _, reply_code = smtp_login(
                (deployment['node'], 10587), host(deployment, 'mail1'), user,
                'not the password %d' % i if wrong else right)
            relay.append((not wrong, reply_code,
                          time.monotonic() - started))
    threads.append(threading.Thread(target=relay_logins))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = {}
    for door, found in results.items():
        found.sort()
        answers = [a for _, answered, a in found
                   if answered <= deadline and a in (WRONG, RIGHT)]
        # a refused guess (a rate limit's 421) judged no password: its
        # wait says nothing of the penalty
        waits = [round(answered - sent, 1) for sent, answered, a in found
                 if a in (WRONG, RIGHT)]
        summary[door] = {
            'answers in the window': len(answers), 'guesses': len(found),
            'refused': sum(a == REFUSED for _, _, a in found),
            'errors': sorted({a for _, _, a in found
                              if a not in (WRONG, RIGHT, REFUSED)}),
            'waits of the first 20': waits[:20]}
    print('guessing for %d s from %d clients at once:\n%s' % (
        GUESS_WINDOW, GUESSING_CLIENTS, json.dumps(summary, indent=1)))
    print('relay: %d logins in %.0f s, the wrong ones and the right one '
          'after them waited %s s; codes %s' % (
              len(relay), sum(r[2] for r in relay),
              [round(r[2], 1) for r in relay[97:103]],
              sorted(set(r[1] for r in relay))))
    for door, found in summary.items():
        assert not found['errors'], (door, found)
        assert RIGHT not in [a for _, _, a in results[door]], door
        assert found['answers in the window'] < 60, (door, found)
        # the first guesses leave at once, from every client: the
        # quickest of them against the 20th, which the penalty delays
        waits = found['waits of the first 20']
        assert len(waits) == 20, (door, found)
        assert waits[19] > min(waits[:GUESSING_CLIENTS]) + 5, (door, found)
    # the relay's SASL: never a temporary failure
    codes = [reply_code for _, reply_code, _ in relay]
    assert codes.count(454) == 0, codes
    assert [c for r, c, _ in relay if r] == [235] * 195, codes
    assert [c for r, c, _ in relay if not r] == [535] * 5, codes
    fifth_wrong, right_after = relay[101], relay[102]
    assert fifth_wrong[2] > 10 and right_after[2] > 10, relay[97:103]
    # the right password (token), after the delay, works at every door
    published = deployment['slapos'].connection_parameters(
        MAIL_SERVER, UNSET[0], shared=True)
    status, _, text = post_form_from(
        deployment['backends']['mail1']['password-url'],
        GUESSERS['password page'], user=UNSET[1], token=published['token'],
        password=PASSWORD)
    assert status == 200, text
    assert webmail_login(deployment, GUESSERS['webmail'], PASSWORD) == RIGHT
    assert imap_login(deployment, GUESSERS['IMAP'], PASSWORD) == RIGHT
    assert smtp_login(mx_submission(deployment), GUESSERS['SMTP AUTH'],
                      'testmail@' + MX, 'password123') == (RIGHT, 235)
    # Dovecot saw the browser's address, not the webmail's own
    log = os.path.join(deployment['partitions']['mail1'], 'var', 'log',
                       'dovecot.log')
    with open(log, errors='replace') as f:
        assert 'rip=%s' % GUESSERS['webmail'] in f.read()


def post_form_from(url, source, **fields):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port, timeout=60, context=insecure_tls(),
        source_address=(source, 0))
    try:
        connection.request('POST', parts.path, urllib.parse.urlencode(fields),
                           {'Content-Type':
                            'application/x-www-form-urlencoded'})
        response = connection.getresponse()
        return response.status, None, response.read().decode()
    finally:
        connection.close()


# -- 23.3: DMARC of inbound mail ----------------------------------------------------
def inbound(deployment, sender, recipient, message):
    """The code of the relay's answer to ``message`` from outside."""
    with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                      source_address=(OUTSIDER, 0)) as smtp:
        smtp.ehlo('mx.outside.example')
        assert smtp.mail(sender)[0] == 250
        assert smtp.rcpt(recipient)[0] == 250
        return smtp.data(message)


def test_dmarc_refuses_reject_and_files_quarantine_into_junk(deployment):
    tag = uuid.uuid4().hex
    # from a server that neither domain's SPF names, unsigned
    reply_code, text = inbound(
        deployment, 'bounce@nodmarc.example', 'alice@' + MAIL1,
        'From: CEO <ceo@reject.example>\r\nSubject: reject %s\r\n\r\n'
        'Pay this.\r\n' % tag)
    assert reply_code == 550 and b'5.7.1' in text and \
        b'reject.example' in text, text
    reply_code, _ = inbound(
        deployment, 'bounce@nodmarc.example', 'alice@' + MAIL1,
        'From: ceo@quarantine.example\r\nSubject: quarantine %s\r\n'
        'X-DMARC-Quarantine: forged, removed\r\n\r\nPay this.\r\n' % tag)
    assert reply_code == 250
    backend = (host(deployment, 'mail1'), port(deployment, 'mail1', 'imaps'))
    wait_for(lambda: 'quarantine ' + tag in imaps_subjects(
        *backend, 'alice@' + MAIL1, PASSWORD, 'Junk'),
        'the quarantined message in Junk')
    # the relay's mark is the relay's alone: a sender's own is removed
    reply_code, _ = inbound(
        deployment, OUTSIDE_SENDER, 'alice@' + MAIL1,
        'From: %s\r\nSubject: marked %s\r\nX-DMARC-Quarantine: forged\r\n'
        '\r\nHi.\r\n' % (OUTSIDE_SENDER, tag))
    assert reply_code == 250
    message = imaps_find(*backend, 'alice@' + MAIL1, PASSWORD, 'marked ' + tag)
    assert 'X-DMARC-Quarantine' not in message
    assert 'dmarc=none' in message and 'Authentication-Results' in message
    assert 'reject ' + tag not in imaps_subjects(
        *backend, 'alice@' + MAIL1, PASSWORD, 'Junk')
    assert not [s for s, _ in inbox(*backend, 'alice@' + MAIL1)
                if s in ('reject ' + tag, 'quarantine ' + tag)]


def test_a_signed_message_of_a_hosted_domain_passes_dkim_and_dmarc(
        deployment, outside):
    """alice's message, signed by the relay on its way out, comes back
    from the Internet (a mailing list resends it, with its own envelope
    sender): the relay verifies the signature with the key mail1
    publishes, and DMARC passes by it."""
    tag = uuid.uuid4().hex
    with smtplib.SMTP_SSL(host(deployment, 'mail1'),
                          port(deployment, 'mail1', 'smtps'), timeout=30,
                          context=insecure_tls()) as smtp:
        smtp.login('alice@' + MAIL1, PASSWORD)
        smtp.sendmail('alice@' + MAIL1, ['list@lists.example'],
                      'From: alice@%s\r\nSubject: signed %s\r\n\r\nHi.'
                      '\r\n' % (MAIL1, tag))
    _, signed = outside['smarthost'].wait_for(
        lambda m, data: tag.encode() in data)
    assert b'DKIM-Signature' in signed
    assert inbound(deployment, 'list-bounces@lists.example', 'bob@' + MAIL1,
                   signed)[0] == 250
    message = imaps_find(host(deployment, 'mail1'),
                         port(deployment, 'mail1', 'imaps'), 'bob@' + MAIL1,
                         PASSWORD, 'signed ' + tag)
    results = email.message_from_string(message)['Authentication-Results']
    assert 'dkim=pass header.d=%s' % MAIL1 in results, results
    assert 'dmarc=pass' in results and 'header.from=%s' % MAIL1 in results


# -- 23.4: verified TLS -------------------------------------------------------------
def test_a_smarthost_showing_another_cas_certificate_gets_nothing(
        deployment, outside):
    """mail3's smarthost shows a certificate of another CA than the one
    the relay is told to trust: the message stays queued; mail1's, whose
    certificate the test CA signed, got every message (the tests above)."""
    tag = uuid.uuid4().hex
    context = insecure_tls()
    with smtplib.SMTP(deployment['node'], 10587, timeout=30,
                      source_address=(host(deployment, 'mail1'), 0)) as smtp:
        smtp.starttls(context=context)
        smtp.login(deployment['mail3']['outbound-user'],
                   deployment['mail3']['outbound-password'])
        smtp.sendmail('news@' + MAIL3, ['david@gmail.example'],
                      'From: news@%s\r\nSubject: untrusted %s\r\n\r\n'
                      'Hi.\r\n' % (MAIL3, tag))

    def deferred():
        for message in queue(deployment, deployment['node-partition']):
            for recipient in message['recipients']:
                if 'certificate' in recipient.get('delay_reason', '') \
                        .lower() and message['sender'] == 'news@' + MAIL3:
                    return recipient['delay_reason']
    reason = wait_for(deferred, 'the message deferred', 60)
    assert not outside['untrusted'].messages(), reason
    # the relay's log: every delivery to a backend was to its pinned
    # certificate
    log = os.path.join(deployment['node-partition'], 'var', 'log',
                       'postfix.log')
    with open(log, errors='replace') as f:
        text = f.read()
    backend = host(deployment, 'mail1')
    assert re.search(r'Verified TLS connection (established|reused) to '
                     r'\S*\[%s\]' % re.escape(backend), text)
    assert not re.search(r'(Untrusted|Anonymous|Trusted) TLS connection '
                         r'(established|reused) to \S*\[%s\]'
                         % re.escape(backend), text)


# -- 23.1: connections per client address --------------------------------------------
def test_one_address_holds_at_most_its_share_of_connections(deployment):
    """rate-limits' concurrent-connections (20) from one address to each of
    a backend's IMAPS and HTTPS ports (its IMAP, POP3 and ManageSieve ports
    are behind the same limiter): the next one is closed at once, while
    another address still connects; closed ones are counted no more."""
    limit = 20
    imaps = (host(deployment, 'mail1'), port(deployment, 'mail1', 'imaps'))
    https = (host(deployment, 'mail1'), urllib.parse.urlsplit(
        deployment['backends']['mail1']['password-url']).port)

    def tls(server, source):
        sock = socket.create_connection(server, timeout=30,
                                        source_address=(source, 0))
        try:
            return insecure_tls().wrap_socket(sock)
        except BaseException:
            sock.close()
            raise
    held = []
    try:
        held += [IMAPFrom(HOARDER, *imaps) for _ in range(limit)]
        with pytest.raises((OSError, imaplib.IMAP4.abort, EOFError)):
            IMAPFrom(HOARDER, *imaps).logout()
        held += [tls(https, HOARDER) for _ in range(limit)]
        with pytest.raises(OSError):
            tls(https, HOARDER).close()
        with IMAPFrom(OUTSIDER, *imaps) as other:
            assert other.noop()[0] == 'OK'
        tls(https, OUTSIDER).close()
    finally:
        for connection in held:
            (connection.logout if isinstance(connection, imaplib.IMAP4)
             else connection.close)()
    with IMAPFrom(HOARDER, *imaps) as again:
        assert again.noop()[0] == 'OK'
