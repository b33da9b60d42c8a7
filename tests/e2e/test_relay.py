"""A relay cluster, two mail backends and a stand-in third-party smarthost
in the embedded SlapOS: the Internet's mail reaches the right backend and
nothing else gets in; the backends' mail goes out through the smarthost of
its domain, DKIM-signed, only from the backend that owns the domain."""
import contextlib
import os
import smtplib
import socket
import ssl
import threading
import time
import uuid

import dkim
import psutil
import pytest

from tests.deployment import (MAIL_SERVER, RELAY,
                              assert_no_secret_in_records, imaps_find,
                              insecure_tls, mx_dns, postfix, postfix_queue,
                              rcpt_code, send)
from tests.harness import partition_ipv6
from tests.smarthost import Smarthost

MAIL1, MAIL2, MAIL3 = 'mail1.example.com', 'mail2.example.com', 'mail3.example.com'
SMARTHOST = partition_ipv6(31)     # an address of the prefix no partition uses
STRANGER = partition_ipv6(30)      # a client that is no backend
LOGINS = {'relay-mail1': 'secret-1', 'relay-mail2': 'secret-2'}


@pytest.fixture(scope='module')
def smarthost(tmp_path_factory):
    with Smarthost(SMARTHOST, str(tmp_path_factory.mktemp('smarthost')),
                   LOGINS) as server:
        yield server


@pytest.fixture(scope='module')
def dns():
    # mail1 and mail2 are exempt from verification (the proxy-map lists
    # them); mail3 is verified by its MX
    with mx_dns({MAIL3: 'relay1.example.net'}) as server:
        yield server


@pytest.fixture(scope='module')
def deployment(slapos, smarthost, dns):
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    # the domains are ordered by hand below (no inbound-relay)
    for name, domain in (('backend1', MAIL1), ('backend2', MAIL2)):
        slapos.request(MAIL_SERVER, name, 'default',
                       {'mail-domains': [domain], 'test-account': True,
                        'inbound-relay': {'enable': False}})
    slapos.wait_instance(max_retry=2)
    backend1 = slapos.connection_parameters(MAIL_SERVER, 'backend1')
    backend2 = slapos.connection_parameters(MAIL_SERVER, 'backend2')
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node1': {'fqdn': 'relay1.example.net'}},
        'default-relay-config': {'nameservers': [dns.address], 'proxy-map': {
            # STARTTLS for mail1, implicit TLS for mail2; mail1's as
            # upstream's requests give it: a private address and no tls
            # (encrypted, not verified, a warning); mail2's verified
            'provider': {'host': SMARTHOST, 'port': smarthost.starttls_port,
                         'user': 'relay-mail1', 'password': 'secret-1',
                         'domains': [MAIL1]},
            'provider-tls': {'host': SMARTHOST,
                             'port': smarthost.implicit_tls_port,
                             'user': 'relay-mail2', 'password': 'secret-2',
                             'domains': [MAIL2], 'tls': smarthost.tls}},
            'greylisting': {'enable': False}}})
    domains = {
        MAIL1: {'name': MAIL1, 'mail-server-host': backend1['imap-smtp-ipv6'],
                'mail-server-port': backend1['smtp-port']},
        MAIL2: {'name': MAIL2, 'mail-server-host': backend2['imap-smtp-ipv6'],
                'mail-server-port': backend2['smtp-port'],
                'authentication': 'fingerprint',
                'fingerprints': backend2['tls-fingerprints']},
        MAIL3: {'name': MAIL3, 'mail-server-host': backend1['imap-smtp-ipv6'],
                'authentication': 'password'},
    }
    for name, parameters in domains.items():
        slapos.request(RELAY, 'domain-' + name, 'cluster', parameters,
                       shared=True)
    slapos.wait_instance(max_retry=8)
    # a later claim of mail1, by backend 2
    slapos.request(RELAY, 'domain-again-' + MAIL1, 'cluster',
                   {'name': MAIL1, 'mail-server-host': backend2['imap-smtp-ipv6']},
                   shared=True)
    slapos.wait_instance(max_retry=8)
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    shared = {ref: slapos.connection_parameters(RELAY, ref, 'cluster',
                                                shared=True)
              for ref in ['domain-' + n for n in domains]
              + ['domain-again-' + MAIL1]}
    node = relay['relay-hosts'][0]
    return {'backend1': backend1, 'backend2': backend2, 'relay': relay,
            'shared': shared, 'node': node,
            'node-partition': slapos.partition_of_address(node),
            'backend1-partition': slapos.partition_of_address(
                backend1['imap-smtp-ipv6']),
            'backend2-partition': slapos.partition_of_address(
                backend2['imap-smtp-ipv6'])}


def message(sender, recipient, subject):
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n'
            'Date: %s\r\n\r\nHello from the relay test.\r\n' % (
                sender, recipient, subject, uuid.uuid4(),
                time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())))


def submission(deployment, source=None, cert=None):
    """An SMTP session with the node's submission port, after STARTTLS,
    from ``source`` (an address) with a client certificate ``cert``
    (``(cert, key)`` files)."""
    context = insecure_tls()
    if cert:
        context.load_cert_chain(*cert)
    smtp = smtplib.SMTP(deployment['node'], 10587, timeout=30,
                        source_address=(source, 0) if source else None)
    smtp.starttls(context=context)
    return smtp


def backend_cert(deployment, which):
    ssl_dir = os.path.join(deployment[which + '-partition'], 'etc', 'ssl')
    return (os.path.join(ssl_dir, 'current.crt'),
            os.path.join(ssl_dir, 'current.key'))


def dkim_valid(received, published):
    """Whether the DKIM signature of ``received`` (bytes) verifies with the
    TXT records published to the domain's shared instance ``published``."""
    records = {r['name'] + '.': r['value'] for r in published['dns-records']
               if r['type'] == 'TXT'}
    return dkim.verify(received, dnsfunc=lambda name, timeout=5: records.get(
        name.decode() if isinstance(name, bytes) else name, '').encode())


# -- the cluster and its shared instances -------------------------------------
def test_cluster_publishes_nodes_domains_and_errors(deployment):
    relay = deployment['relay']
    # upstream's shapes: one domain a line, a list of the configuration's
    # errors (a duplicate claim is the shared instance's own error)
    assert sorted(relay['backend-domains'].splitlines()) == [MAIL1, MAIL2,
                                                              MAIL3]
    assert relay['errors'] == []
    # ours: the smarthost whose certificate is not verified, by name
    assert relay['warnings'] == [
        "proxy-map entry 'provider' is reached by the private address %s "
        "without tls: its certificate is not verified (TLS is required); "
        "give it tls.ca or tls.fingerprints to verify it" % SMARTHOST]


def test_accepted_domains_get_where_to_send_and_their_dns_records(deployment):
    shared = deployment['shared']['domain-' + MAIL1]
    assert shared['outbound-host'] == deployment['node']
    assert shared['outbound-smtp-port'] == '10587'
    assert shared['outbound-has-proxy'] is True
    assert len(shared['tls-fingerprints']) == 2
    assert shared['dns-entries'] == '%s. MX 10 relay1.example.net.' % MAIL1
    records = shared['dns-records']
    types = {(r['name'], r['type']) for r in records}
    assert (MAIL1, 'MX') in types and ('_dmarc.' + MAIL1, 'TXT') in types
    assert ('relay1-example-net._domainkey.' + MAIL1, 'TXT') in types
    spf = [r['value'] for r in records if r['value'].startswith('v=spf1')]
    assert spf == ['v=spf1 ip6:%s ip6:%s ~all' % (deployment['node'],
                                                   SMARTHOST)]
    assert 'outbound-password' not in shared
    password = deployment['shared']['domain-' + MAIL3]
    assert password['outbound-has-proxy'] is False
    assert password['outbound-user'] == MAIL3
    assert len(password['outbound-password']) >= 20


def test_a_duplicate_claim_gets_its_error(deployment):
    # upstream's words, which its users match on
    assert deployment['shared']['domain-again-' + MAIL1] == {
        'domain': MAIL1, 'error': 'this domain has already been claimed'}


# -- inbound -------------------------------------------------------------------
def test_inbound_mail_goes_to_the_right_backend(deployment):
    subjects = {}
    for domain in (MAIL1, MAIL2):
        subjects[domain] = 'inbound %s %s' % (domain, uuid.uuid4())
        send(deployment['node'], 10025, 'etienne@hotmail.com',
             ['testmail@' + domain], subjects[domain])
    for which, domain, other in (('backend1', MAIL1, MAIL2),
                                 ('backend2', MAIL2, MAIL1)):
        backend = deployment[which]
        found = imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
                           'testmail@' + domain, 'password123',
                           subjects[domain])
        assert 'etienne@hotmail.com' in found
        with pytest.raises(AssertionError):
            imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
                       'testmail@' + domain, 'password123', subjects[other],
                       timeout=0)
    # the duplicate claimant (backend 2) did not take mail1's mail: it went
    # to backend 1 (checked above)


def test_an_unknown_recipient_is_refused_at_rcpt(deployment):
    with smtplib.SMTP(deployment['node'], 10025, timeout=30) as smtp:
        smtp.ehlo('outside.example')
        code = rcpt_code(smtp, 'etienne@hotmail.com', 'nobody@' + MAIL1)
    assert code == 550


def test_mail_for_a_domain_nobody_claimed_is_refused(deployment):
    with smtplib.SMTP(deployment['node'], 10025, timeout=30) as smtp:
        smtp.ehlo('outside.example')
        code = rcpt_code(smtp, 'etienne@hotmail.com', 'someone@unclaimed.example')
    assert code == 554


def test_an_outside_sender_using_a_hosted_domain_is_refused(deployment):
    with smtplib.SMTP(deployment['node'], 10025, timeout=30) as smtp:
        smtp.ehlo('outside.example')
        code = rcpt_code(smtp, 'alice@' + MAIL2, 'testmail@' + MAIL1)
    assert code == 554


# -- outbound ------------------------------------------------------------------
def send_out(deployment, smarthost, domain, source=None, cert=None):
    """Submit a message from ``domain`` to the node as its backend would;
    return what the smarthost received, after checking its DKIM signature
    against the DNS records published to the domain's shared instance."""
    subject = 'outbound %s' % uuid.uuid4()
    with submission(deployment, source, cert) as s:
        s.sendmail('testmail@' + domain, ['david@gmail.com'],
                   message('testmail@' + domain, 'david@gmail.com', subject))
    metadata, received = smarthost.wait_for(
        lambda m, data: subject.encode() in data)
    assert metadata['rcpt-tos'] == ['david@gmail.com']
    assert b'DKIM-Signature:' in received
    assert dkim_valid(received, deployment['shared']['domain-' + domain])
    return metadata


def test_outbound_by_ip_through_the_smarthost_dkim_signed(deployment, smarthost):
    # through 'provider', whose certificate is taken unverified (the stand-in
    # logs in only over TLS)
    metadata = send_out(deployment, smarthost, MAIL1,
                        source=deployment['backend1']['imap-smtp-ipv6'])
    assert metadata['login'] == 'relay-mail1'
    assert metadata['port'] == smarthost.starttls_port


def test_outbound_by_fingerprint_through_implicit_tls(deployment, smarthost):
    metadata = send_out(deployment, smarthost, MAIL2, source=STRANGER,
                        cert=backend_cert(deployment, 'backend2'))
    assert metadata['login'] == 'relay-mail2'
    assert metadata['port'] == smarthost.implicit_tls_port


def sent_with_password(deployment, shared, domain):
    """A message from ``domain`` submitted to the node with the login its
    shared instance got (``shared``), to testmail of backend 2: as that
    backend received it."""
    subject = 'outbound password %s' % uuid.uuid4()
    with submission(deployment, STRANGER) as s:
        s.login(shared['outbound-user'], shared['outbound-password'])
        s.sendmail('alice@' + domain, ['testmail@' + MAIL2],
                   message('alice@' + domain, 'testmail@' + MAIL2, subject))
    backend = deployment['backend2']
    return imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
                      'testmail@' + MAIL2, 'password123', subject)


def test_outbound_by_password_to_another_backend(deployment):
    found = sent_with_password(
        deployment, deployment['shared']['domain-' + MAIL3], MAIL3)
    assert 'DKIM-Signature:' in found


def test_each_authentication_is_refused_when_wrong(deployment):
    # IP: the right sender from another address
    with submission(deployment, STRANGER) as s:
        assert rcpt_code(s, 'testmail@' + MAIL1, 'david@gmail.com') == 554
    # fingerprint: backend 1's certificate is not backend 2's
    with submission(deployment, STRANGER,
                    backend_cert(deployment, 'backend1')) as s:
        assert rcpt_code(s, 'testmail@' + MAIL2, 'david@gmail.com') == 554
    # password: a wrong one
    with submission(deployment, STRANGER) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login(MAIL3, 'not-the-password')


def test_a_domain_no_smarthost_sends_goes_to_the_relays_domains_only(
        deployment):
    # upstream's rule: mail3 has no smarthost in the proxy-map
    shared = deployment['shared']['domain-' + MAIL3]
    with submission(deployment, STRANGER) as s:
        s.login(shared['outbound-user'], shared['outbound-password'])
        s.mail('alice@' + MAIL3)
        code, text = s.rcpt('david@gmail.com')
        assert code == 554 and (
            b"the mail of %s goes to this relay's own domains only"
            % MAIL3.encode()) in text, (code, text)
        assert s.rcpt('testmail@' + MAIL2)[0] == 250


def test_a_backend_cannot_send_as_another_backends_domain(deployment):
    with submission(deployment, deployment['backend1']['imap-smtp-ipv6']) as s:
        assert rcpt_code(s, 'testmail@' + MAIL2, 'david@gmail.com') == 554
    with submission(deployment, STRANGER,
                    backend_cert(deployment, 'backend2')) as s:
        assert rcpt_code(s, 'testmail@' + MAIL1, 'david@gmail.com') == 554
    shared = deployment['shared']['domain-' + MAIL3]
    with submission(deployment, STRANGER) as s:
        s.login(shared['outbound-user'], shared['outbound-password'])
        assert rcpt_code(s, 'testmail@' + MAIL1, 'david@gmail.com') == 554


def test_no_port_relays_for_a_stranger(deployment):
    node = deployment['node']
    ports = sorted({c.laddr.port for c in psutil.net_connections('tcp')
                    if c.status == psutil.CONN_LISTEN and c.laddr.ip == node})
    assert {10025, 10587} <= set(ports), ports
    for port in ports:
        for tls in (False, True):
            try:
                with smtplib.SMTP(node, port, timeout=10,
                                  source_address=(STRANGER, 0)) as smtp:
                    smtp.ehlo('stranger.example')
                    if tls:
                        if not smtp.has_extn('starttls'):
                            continue
                        smtp.starttls(context=insecure_tls())
                        smtp.ehlo('stranger.example')
                    code = rcpt_code(smtp, 'spammer@stranger.example',
                                     'victim@gmail.com')
            except (smtplib.SMTPException, OSError, ssl.SSLError):
                continue    # not SMTP, or it hung up: no relay either
            assert code >= 400, (port, tls, code)


def test_with_the_policy_daemon_down_mail_waits_and_nothing_gets_through(
        deployment, slapos):
    """Postfix answers 4xx while its policy daemon is down (the sender's
    server tries again later): at STARTTLS already, as the daemon's header
    check (a milter) cannot be reached, or else at RCPT; the daemon started
    again over the socket it left behind answers at once."""
    partition = deployment['node-partition']
    backend1 = deployment['backend1']['imap-smtp-ipv6']
    slapos.service(partition, 'relay-policy', 'stop')
    try:
        for source, sender in ((backend1, 'testmail@' + MAIL1),
                               (backend1, 'testmail@' + MAIL2),
                               (STRANGER, 'testmail@' + MAIL1)):
            try:
                with submission(deployment, source) as s:
                    code = rcpt_code(s, sender, 'david@gmail.com')
            except smtplib.SMTPResponseException as e:
                code = e.smtp_code
            assert 400 <= code < 500, (source, sender, code)
    finally:
        slapos.service(partition, 'relay-policy', 'start')
    deadline = time.time() + 30
    while True:
        try:
            with submission(deployment, backend1) as s:
                code = rcpt_code(s, 'testmail@' + MAIL1, 'david@gmail.com')
        except smtplib.SMTPResponseException as e:    # still starting
            code = e.smtp_code
        if code == 250:
            break
        assert time.time() < deadline, code
        time.sleep(0.5)
    with submission(deployment, backend1) as s:
        assert rcpt_code(s, 'testmail@' + MAIL2, 'david@gmail.com') == 554


# -- queue and retry -------------------------------------------------------------
def test_backend_down_mail_queued_then_all_delivered(deployment, slapos):
    """A recipient the node verified before (it remembers for a month) gets
    its mail queued while its backend is down; one never verified would be
    deferred (450): its sender keeps it, nothing is bounced later."""
    backend = deployment['backend1']
    send(deployment['node'], 10025, 'etienne@hotmail.com',
         ['testmail@' + MAIL1], 'verified first %s' % uuid.uuid4())
    partition = os.path.basename(deployment['backend1-partition'])
    with slapos.standalone.instance_supervisor_rpc as supervisor:
        names = ['%s:%s' % (p['group'], p['name'])
                 for p in supervisor.getAllProcessInfo()
                 if p['group'] == partition and p['name'].startswith('postfix')]
        assert len(names) == 1, names
        supervisor.stopProcess(names[0])
    batch = 'queued %s' % uuid.uuid4()
    try:
        with smtplib.SMTP(deployment['node'], 10025, timeout=60) as smtp:
            for i in range(100):
                smtp.sendmail('etienne@hotmail.com', ['testmail@' + MAIL1],
                              message('etienne@hotmail.com',
                                      'testmail@' + MAIL1, '%s #%d' % (batch, i)))
        assert len(postfix_queue(slapos, deployment['node-partition'])) >= 100
    finally:
        with slapos.standalone.instance_supervisor_rpc as supervisor:
            supervisor.startProcess(names[0])
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection((backend['imap-smtp-ipv6'],
                                      int(backend['smtp-port'])), 5).close()
            break
        except OSError:
            assert time.time() < deadline
            time.sleep(0.5)
    postfix(slapos, deployment['node-partition'], 'postqueue', '-f')
    import imaplib
    deadline = time.time() + 120
    while True:
        with imaplib.IMAP4_SSL(backend['imap-smtp-ipv6'],
                               int(backend['imaps-port']),
                               ssl_context=insecure_tls()) as imap:
            imap.login('testmail@' + MAIL1, 'password123')
            imap.select('INBOX')
            _, found = imap.search(None, 'SUBJECT', '"%s"' % batch)
            count = len(found[0].split())
        if count == 100:
            break
        assert time.time() < deadline, '%d of 100 delivered' % count
        time.sleep(1)


# -- the generated configuration ------------------------------------------------
def test_postfix_check_accepts_the_relay_configuration(deployment, slapos):
    result = postfix(slapos, deployment['node-partition'], 'postfix', 'check',
                     check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == '', result.stderr


def test_backends_are_reached_over_tls_only(deployment, slapos):
    def postconf(*args):
        return postfix(slapos, deployment['node-partition'], 'postconf',
                       *args).stdout
    # transport backend (see the transport map) requires TLS and shows the
    # node's certificate, which the backends know it by; only direct
    # delivery to the Internet is opportunistic
    assert postconf('-h', 'smtp_tls_security_level').strip() == 'encrypt'
    assert postconf('-h', 'default_transport').strip() == 'direct'
    assert 'smtp_tls_security_level=may' in postconf('-M', 'direct/unix')
    assert 'smtp_tls_cert_file=' in postconf('-M', 'backend/unix')
    with open(os.path.join(deployment['node-partition'], 'etc', 'postfix',
                           'transport')) as f:
        routes = [l.split()[1] for l in f if l.strip() and l[0] != '#']
    assert routes and all(r.startswith('backend:[') for r in routes)


def test_the_node_daemons_run_as_the_partitions_user(deployment, slapos):
    me = slapos.partition_user(deployment['node-partition'])
    assert me not in ('root', slapos.software_user)
    partition = deployment['node-partition'] + os.sep
    daemons = {}
    for process in psutil.process_iter(['cmdline', 'username']):
        cmdline = ' '.join(process.info['cmdline'] or [])
        if partition not in cmdline:
            continue
        for name in ('postfix/master', 'dovecot', 'opendkim',
                     'recipes.programs.relay_policy'):
            if name in cmdline and 'supervisord' not in cmdline:
                daemons.setdefault(name, []).append(process)
    assert sorted(daemons) == ['dovecot', 'opendkim', 'postfix/master',
                               'recipes.programs.relay_policy']
    for processes in daemons.values():
        for master in processes:
            # a short-lived command of the node (doveadm reload) may be gone
            with contextlib.suppress(psutil.NoSuchProcess):
                tree = [master] + master.children(recursive=True)
                assert {p.username() for p in tree} == {me}, master.cmdline()


def test_no_secret_sits_in_buildout_records(deployment, slapos):
    # the smarthosts' passwords (proxy-map) and the generated outbound
    # password of a domain: through files, never options
    generated = deployment['shared']['domain-' + MAIL3]['outbound-password']
    assert_no_secret_in_records(
        slapos, list(LOGINS.values()) + [generated], expected=MAIL3)



# -- a new tenant, under traffic ------------------------------------------------
MAIL4 = 'mail4.example.com'      # no such domain in the DNS: verified


class Sender(threading.Thread):
    """Sends to a hosted domain through the node's inbound port without
    pause until stopped: one SMTP session that sends message after message
    (``reuse``), or a new connection for each message; keeps what was
    accepted, refused and dropped."""

    def __init__(self, deployment, reuse):
        super().__init__(daemon=True)
        self.deployment, self.reuse = deployment, reuse
        self.stopped = threading.Event()
        self.accepted, self.refused, self.dropped = 0, [], []

    def connect(self):
        node = self.deployment['node']
        # from the node's own address: exempt from the rate limits
        smtp = smtplib.SMTP(node, 10025, timeout=30,
                            source_address=(node, 0))
        smtp.ehlo()
        return smtp

    def send(self, smtp):
        recipient = 'testmail@' + MAIL1
        try:
            smtp.sendmail('etienne@hotmail.com', [recipient], message(
                'etienne@hotmail.com', recipient, 'under traffic'))
            self.accepted += 1
        except smtplib.SMTPResponseException as refused:
            self.refused.append((refused.smtp_code, refused.smtp_error))
        except smtplib.SMTPRecipientsRefused as refused:
            self.refused.append(refused.recipients)

    def run(self):
        try:
            if self.reuse:
                with self.connect() as smtp:
                    while not self.stopped.is_set():
                        self.send(smtp)
            else:
                while not self.stopped.is_set():
                    with self.connect() as smtp:
                        self.send(smtp)
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            self.dropped.append(repr(e))

    def stop(self):
        self.stopped.set()
        self.join(60)


def test_a_new_domain_is_taken_by_reloads_refusing_nothing(
        deployment, slapos):
    """A domain with password login ordered while clients send without
    pause: no message refused, no session dropped, no service of the node
    started again (same processes); the new domain's login and its DKIM
    key work at once (the reloads took them)."""
    node = deployment['node-partition']
    before = slapos.services(node)
    assert before and all(state == 'RUNNING' for state, _ in
                          before.values()), before
    senders = [Sender(deployment, reuse=True), Sender(deployment, reuse=False)]
    for sender in senders:
        sender.start()
    try:
        slapos.request(RELAY, 'domain-' + MAIL4, 'cluster', {
            'name': MAIL4,
            'mail-server-host': deployment['backend1']['imap-smtp-ipv6'],
            'authentication': 'password'}, shared=True)
        slapos.wait_instance(max_retry=8)
        time.sleep(3)       # and a little more traffic after the reloads
    finally:
        for sender in senders:
            sender.stop()
    for sender in senders:
        assert sender.accepted > 10 and not sender.refused \
            and not sender.dropped, (sender.reuse, sender.accepted,
                                     sender.refused[:3], sender.dropped)
    assert slapos.services(node) == before
    shared = slapos.connection_parameters(RELAY, 'domain-' + MAIL4,
                                          'cluster', shared=True)
    assert 'error' not in shared, shared
    found = sent_with_password(deployment, shared, MAIL4)
    assert dkim_valid(found.encode(), shared)
