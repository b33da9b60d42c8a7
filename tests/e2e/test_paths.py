"""The reference topology (what scripts/demo.sh deploys, with the same
function): a relay cluster of one node, backends for mail1.example.com and
mail2.example.com requested with their domain alone, which order it from
the relay found as urn:slapos:mail-relay, a stand-in third-party smarthost
and DNS server, alice and bob on mail1 and charlie on mail2 with the
passwords set through their setup links, and a domain whose mail goes to
a stand-in application's HTTPS API. The four mail paths of
../shared/interface.md and the fifth (a stranger to the API, whose reply
leaves through the relay), each found at its destination with the headers
of the path it took, and the paths that must stay closed."""
import email
import os
import smtplib
import socket
import ssl
import uuid

import dkim
import psutil
import pytest

from recipes.decisions import srs
from tests.deployment import (API_DOMAIN, API_HOST, API_PORT, MAIL1, MAIL2,
                              OUTSIDE_RECIPIENT, OUTSIDE_SENDER, PATHS,
                              RELAY_FQDN, SMARTHOST_HOST,
                              deploy_reference_topology, insecure_tls,
                              move_mail, rcpt_code, reference_fixtures, send,
                              sieve_activate, spf_result, wait_for)
from tests.harness import partition_ipv6
from tests.http_api import HttpApi

SMARTHOST_LOGIN = ('relay', 'smarthost secret')
PASSWORDS = {PATHS[1][0]: 'alice password 1', PATHS[1][1]: 'bob password 1',
             PATHS[2][1]: 'charlie password 1'}
STRANGER = partition_ipv6(30)      # a client that is no backend
# an alias of mail1 that forwards outside (issue 20: mail that leaves again)
FORWARD = 'forward@' + MAIL1
ALIASES = {'forward': (FORWARD, [OUTSIDE_RECIPIENT], 'mail1')}
# the ports of each release that speak SMTP, by the name of their
# connection parameter
BACKEND_SMTP_PORTS = ('smtp-port', 'submission-port', 'smtps-port')
RELAY_SMTP_PORTS = (10025, 10587)    # inbound, submission


smarthost, dns = reference_fixtures(SMARTHOST_LOGIN)


@pytest.fixture(scope='module')
def api(tmp_path_factory):
    with HttpApi(API_HOST, str(tmp_path_factory.mktemp('api')),
                 'application token 1', port=API_PORT) as server:
        yield server


@pytest.fixture(scope='module')
def topology(slapos, smarthost, dns, api):
    return deploy_reference_topology(slapos, SMARTHOST_LOGIN, PASSWORDS,
                                     api=api, aliases=ALIASES,
                                     smarthost_tls=smarthost.tls)


def received(message):
    """The Received headers, the most recent hop first."""
    return [' '.join(h.split()) for h in
            email.message_from_string(message).get_all('Received', [])]


def hops(message):
    """Who received the message, in the order it travelled: the ``by``
    name of each Received header."""
    return [(' ' + h).split(' by ', 1)[1].split()[0]
            for h in reversed(received(message))]


def dkim_records(topology, backend):
    """The TXT records a backend publishes for its domain (from the relay's
    answer), as a resolver would give them."""
    records = topology['backends'][backend]['dns-records']
    return {r['name'] + '.': r['value'] for r in records if r['type'] == 'TXT'}


def verify_dkim(message, records):
    return dkim.verify(message.encode(), dnsfunc=lambda name, timeout=5:
                       records.get(name.decode() if isinstance(name, bytes)
                                   else name, '').encode())


# -- what the backends ordered ---------------------------------------------------
def test_each_backend_ordered_its_domain_from_the_relay(topology, dns):
    # requested with mail-domains alone: the relay found as
    # urn:slapos:mail-relay, as upstream's default
    assert sorted(topology['relay']['backend-domains'].splitlines()) == \
        sorted([MAIL1, MAIL2, API_DOMAIN])
    for reference, domain in (('mail1', MAIL1), ('mail2', MAIL2)):
        records = topology['backends'][reference]['dns-records']
        assert {'name': domain, 'type': 'MX',
                'value': '10 %s.' % RELAY_FQDN} in records, records
    # mail2 was verified by its MX; mail1, which the proxy-map lists, was
    # not looked up
    assert (MAIL2, 'MX') in dns.queries
    assert (MAIL1, 'MX') not in dns.queries


# -- the four paths -----------------------------------------------------------
def test_1_alice_to_bob_is_delivered_by_backend_1_alone(topology, smarthost):
    where, message, _ = move_mail(topology, PASSWORDS, smarthost, 1)
    assert where.startswith('INBOX of bob@%s' % MAIL1) and 'mail1' in where
    parsed = email.message_from_string(message)
    assert parsed['From'] == 'alice@' + MAIL1
    # submitted by alice (authenticated, TLS), then handed to Dovecot:
    # no hop through the relay
    chain = received(message)
    assert hops(message)[0] == MAIL1, chain
    assert 'with ESMTPSA' in chain[-1], chain
    assert not any(RELAY_FQDN in h or topology['node'] in h for h in chain), \
        chain
    assert 'DKIM-Signature' not in parsed


def test_2_alice_to_charlie_goes_through_the_relay_to_backend_2(
        topology, smarthost):
    where, message, _ = move_mail(topology, PASSWORDS, smarthost, 2)
    assert where.startswith('INBOX of charlie@%s' % MAIL2) and 'mail2' in where
    chain = received(message)
    assert hops(message)[:3] == [MAIL1, RELAY_FQDN, MAIL2], chain
    # the relay received it from backend 1, over TLS, and backend 2 from
    # the relay
    backend1 = topology['backends']['mail1']['imap-smtp-ipv6']
    from_backend1 = [h for h in chain if 'by %s' % RELAY_FQDN in h]
    assert from_backend1 and backend1 in from_backend1[0], chain
    assert 'ESMTPS' in from_backend1[0], chain
    to_backend2 = chain[:chain.index(from_backend1[0])]
    assert any(topology['node'] in h for h in to_backend2), chain
    assert verify_dkim(message, dkim_records(topology, 'mail1'))


def test_3_alice_to_david_leaves_through_the_smarthost_dkim_signed(
        topology, smarthost):
    where, message, _ = move_mail(topology, PASSWORDS, smarthost, 3)
    assert where.startswith('the smarthost')
    subject = email.message_from_string(message)['Subject']
    [metadata] = [m for m, data in smarthost.messages()
                  if subject.encode() in data]
    assert metadata['rcpt-tos'] == [OUTSIDE_RECIPIENT]
    assert metadata['mail-from'] == 'alice@' + MAIL1
    assert metadata['login'] == SMARTHOST_LOGIN[0]
    chain = received(message)
    assert hops(message) == [MAIL1, RELAY_FQDN], chain
    backend1 = topology['backends']['mail1']['imap-smtp-ipv6']
    assert backend1 in chain[0] and 'with ESMTPS' in chain[0], chain
    assert 'DKIM-Signature:' in message
    assert verify_dkim(message, dkim_records(topology, 'mail1'))


def test_4_etienne_to_alice_arrives_at_the_relay_routed_to_backend_1(
        topology, smarthost):
    where, message, _ = move_mail(topology, PASSWORDS, smarthost, 4)
    assert where.startswith('INBOX of alice@%s' % MAIL1) and 'mail1' in where
    parsed = email.message_from_string(message)
    assert parsed['From'] == OUTSIDE_SENDER
    chain = received(message)
    assert hops(message)[:2] == [RELAY_FQDN, MAIL1], chain
    # the oldest hop is the relay node's inbound port, then backend 1
    # took it from the relay
    relay_hops = [i for i, h in enumerate(chain) if 'by %s' % RELAY_FQDN in h]
    assert relay_hops, chain
    assert any(topology['node'] in h for h in chain[:relay_hops[-1]]), chain
    # not signed: the relay signs what backends send, not what it receives
    assert 'DKIM-Signature' not in parsed


def test_5_a_stranger_writes_to_the_api_whose_reply_leaves_through_the_relay(
        topology, smarthost, api):
    where, reply, _ = move_mail(topology, PASSWORDS, smarthost, 5, api=api)
    assert where.startswith("the API's store")
    subject = email.message_from_string(reply)['Subject'][len('Re: '):]
    [(headers, message)] = [(h, m) for h, m in api.messages()
                            if subject.encode() in m]
    assert headers['Authorization'] == 'Bearer application token 1'
    assert headers['X-Envelope-From'] == OUTSIDE_SENDER
    assert headers['X-Envelope-To'] == 'support@' + API_DOMAIN
    assert hops(message.decode()) == [RELAY_FQDN], received(message.decode())
    # the reply: from the application's login, out through the smarthost,
    # signed for its domain
    [metadata] = [m for m, data in smarthost.messages()
                  if ('Re: ' + subject).encode() in data]
    assert metadata['rcpt-tos'] == [OUTSIDE_SENDER]
    assert metadata['mail-from'] == 'support@' + API_DOMAIN
    records = {r['name'] + '.': r['value'] for r in
               topology['api-domain']['dns-records'] if r['type'] == 'TXT'}
    assert verify_dkim(reply, records)


# -- the paths that stay closed -----------------------------------------------
def smtp_session(host, port, implicit_tls):
    """An SMTP session from a stranger's address, after STARTTLS when the
    port offers it."""
    if implicit_tls:
        smtp = smtplib.SMTP_SSL(host, port, timeout=10,
                                source_address=(STRANGER, 0),
                                context=insecure_tls())
    else:
        smtp = smtplib.SMTP(host, port, timeout=10,
                            source_address=(STRANGER, 0))
    smtp.ehlo('stranger.example')
    if not implicit_tls and smtp.has_extn('starttls'):
        smtp.starttls(context=insecure_tls())
        smtp.ehlo('stranger.example')
    return smtp


def listening_ports(host):
    return sorted({c.laddr.port for c in psutil.net_connections('tcp')
                   if c.status == psutil.CONN_LISTEN and c.laddr.ip == host})


def speaks_smtp(host, port):
    """``'plain'`` or ``'tls'`` when the port greets as an SMTP server
    (in clear text or after implicit TLS), else None."""
    for tls in (False, True):
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                if tls:
                    s = insecure_tls().wrap_socket(s)
                if s.recv(512).startswith(b'220 '):
                    return 'tls' if tls else 'plain'
        except (OSError, ssl.SSLError):
            pass
    return None


def test_no_port_of_either_release_relays_for_a_stranger(topology):
    servers = [('relay node', topology['node'], RELAY_SMTP_PORTS)] + [
        (reference, b['imap-smtp-ipv6'],
         tuple(b[name] for name in BACKEND_SMTP_PORTS))
        for reference, b in topology['backends'].items()]
    tried = []
    for name, host, named_ports in servers:
        ports = listening_ports(host)
        assert set(named_ports) <= set(ports), (name, named_ports, ports)
        for port in ports:
            kind = speaks_smtp(host, port)
            if kind is None:
                continue   # IMAP, POP3, Sieve, HTTP: they relay nothing
            with smtp_session(host, port, kind == 'tls') as smtp:
                for sender in (OUTSIDE_SENDER, 'alice@' + MAIL1):
                    code = rcpt_code(smtp, sender, OUTSIDE_RECIPIENT)
                    assert code >= 400, (name, port, sender, code)
                    smtp.rset()
            tried.append((name, port))
    # every SMTP port of both releases was tried
    assert set(tried) >= {(name, p) for name, _, ports in servers
                          for p in ports}, tried


def test_a_backend_cannot_send_as_the_other_backends_domain(topology):
    """Backend 1, from its own address with its own certificate (what the
    relay knows it by), may send as mail1 but not as mail2."""
    partition = topology['partitions']['mail1']
    certificate = (os.path.join(partition, 'etc', 'ssl', 'current.crt'),
                   os.path.join(partition, 'etc', 'ssl', 'current.key'))
    context = insecure_tls()
    context.load_cert_chain(*certificate)
    backend1 = topology['backends']['mail1']['imap-smtp-ipv6']
    with smtplib.SMTP(topology['node'], 10587, timeout=30,
                      source_address=(backend1, 0)) as smtp:
        smtp.starttls(context=context)
        assert rcpt_code(smtp, 'bob@' + MAIL1, OUTSIDE_RECIPIENT) == 250
        smtp.rset()
        assert rcpt_code(smtp, 'charlie@' + MAIL2, OUTSIDE_RECIPIENT) == 554


# -- mail that leaves again: forwards, Sieve redirect, vacation -----------------
def stranger_sends(topology, recipient, subject, sender=OUTSIDE_SENDER,
                   headers=''):
    """A message from the Internet, through the relay's inbound port (path
    4)."""
    send(topology['node'], 10025, sender, [recipient], subject,
         headers=headers)


def arrived(smarthost, subject):
    """``(envelope, parsed message)`` of what the smarthost received with
    ``subject`` in it."""
    metadata, data = smarthost.wait_for(
        lambda metadata, data: subject.encode() in data)
    return metadata, email.message_from_bytes(data)


def spf_at_the_destination(topology, sender):
    """The SPF result of ``sender`` at the destination, which receives the
    message from the smarthost, with the records mail1 publishes (the
    relay's) and a record of the stranger's domain that allows only its
    own server."""
    records = {r['name']: r['value']
               for r in topology['backends']['mail1']['dns-records']
               if r['type'] == 'TXT' and r['value'].startswith('v=spf1')}
    assert MAIL1 in records, records
    records['hotmail.com'] = 'v=spf1 ip6:%s -all' % STRANGER
    return spf_result(records, SMARTHOST_HOST, sender)


def assert_forwarded_for(topology, metadata, original):
    """The envelope sender is an SRS address of mail1 standing for
    ``original``: it passes SPF for mail1 where ``original`` fails."""
    sender = metadata['mail-from']
    assert sender.lower().startswith('srs0=') and sender.endswith(
        '@' + MAIL1), metadata
    assert sender.lower().endswith('=%s@%s' % (
        '='.join(reversed(original.split('@'))), MAIL1)), metadata
    assert spf_at_the_destination(topology, sender) == 'pass'
    assert spf_at_the_destination(topology, original) == 'fail'


def test_a_strangers_mail_to_an_alias_forwarding_outside_passes_spf(
        topology, smarthost):
    subject = 'forwarded %s' % uuid.uuid4()
    stranger_sends(topology, FORWARD, subject)
    metadata, message = arrived(smarthost, subject)
    assert metadata['rcpt-tos'] == [OUTSIDE_RECIPIENT]
    assert metadata['login'] == SMARTHOST_LOGIN[0]
    # it shows its author, and leaves as mail1's mail
    assert message['From'] == OUTSIDE_SENDER
    assert_forwarded_for(topology, metadata, OUTSIDE_SENDER)
    # the relay, backend 1 (its SMTP port, then sendmail), the relay
    assert hops(message.as_string()) == [RELAY_FQDN, MAIL1, MAIL1,
                                         RELAY_FQDN], received(
                                             message.as_string())


def delivery(slapos, partition, queue_id, recipient):
    """The line of the partition's Postfix log that says where the message
    ``queue_id`` went for ``recipient``, once there is one."""
    log = os.path.join(partition, 'var', 'log', 'postfix.log')

    def found():
        text = slapos.run(partition, ['cat', log], capture_output=True,
                          text=True, check=True).stdout
        for line in text.splitlines():
            if ' %s: to=<%s>' % (queue_id, recipient) in line \
                    and 'status=deliverable' not in line:
                return line
        return None
    return wait_for(found, '%s for %s in %s' % (queue_id, recipient, log))


def queued_as(line):
    return line.rsplit('queued as ', 1)[1].rstrip(')').strip()


def test_the_bounce_of_a_forward_returns_to_the_original_sender(
        topology, smarthost, slapos):
    subject = 'bounced %s' % uuid.uuid4()
    stranger_sends(topology, FORWARD, subject)
    metadata, _ = arrived(smarthost, subject)
    srs_address = metadata['mail-from']
    # the destination refuses it later: its bounce, to the envelope sender,
    # comes to mail1's MX, the relay
    with smtplib.SMTP(topology['node'], 10025, timeout=60) as smtp:
        assert rcpt_code(smtp, '', srs_address) == 250
        code, text = smtp.data(
            'From: Mail Delivery Subsystem <MAILER-DAEMON@gmail.com>\r\n'
            'To: %s\r\nSubject: Undelivered: %s\r\n'
            'Auto-Submitted: auto-replied\r\n\r\n'
            'The message could not be delivered.\r\n' % (srs_address,
                                                          subject))
        assert code == 250, text
    relay_id = text.decode().rsplit(' ', 1)[1]
    node, backend1 = topology['node-partition'], topology['partitions']['mail1']
    # the relay hands it to backend 1, which sends it on to the original
    # sender, through the relay ...
    line = delivery(slapos, node, relay_id, srs_address)
    assert 'status=sent' in line, line
    line = delivery(slapos, backend1, queued_as(line), OUTSIDE_SENDER)
    assert 'orig_to=<%s>' % srs_address in line and 'status=sent' in line, \
        line
    # ... which sends it to the stranger's domain (no DNS here: it cannot
    # find its MX, and drops a bounce that cannot bounce)
    line = delivery(slapos, node, queued_as(line), OUTSIDE_SENDER)
    assert 'relay=none' in line and 'hotmail.com' in line, line
    # an SRS address we did not make is refused: no open relay
    forged = srs.forward(OUTSIDE_SENDER, MAIL1, b'not our secret')
    with smtplib.SMTP(topology['node'], 10025, timeout=60) as smtp:
        assert rcpt_code(smtp, '', forged) == 550


def test_a_sieve_redirect_with_editheader_leaves_from_its_user(
        topology, smarthost):
    """Set through ManageSieve by alice, with editheader (upstream's
    test_sieve_redirect): the spam filter's classification still runs
    before her script; the redirect leaves from her address, as upstream's
    (sieve_redirect_envelope_from = recipient), which passes SPF."""
    b = topology['backends']['mail1']
    alice = PATHS[1][0]
    script = ('require ["editheader"];\n'
              'if header :contains "subject" "redirect-me" {\n'
              '  addheader "X-Redirected-By" "alice";\n'
              '  redirect "%s";\n}\n' % OUTSIDE_RECIPIENT)
    answer = sieve_activate(b['imap-smtp-ipv6'], b['sieve-port'], alice,
                            PASSWORDS[alice], 'redirect', script)
    assert answer.startswith('OK'), answer
    try:
        subject = 'redirect-me %s' % uuid.uuid4()
        stranger_sends(topology, alice, subject)
        metadata, message = arrived(smarthost, subject)
    finally:
        sieve_activate(b['imap-smtp-ipv6'], b['sieve-port'], alice,
                       PASSWORDS[alice], 'redirect', None)
    assert metadata['rcpt-tos'] == [OUTSIDE_RECIPIENT]
    assert message['X-Redirected-By'] == 'alice'
    assert message['X-Bogosity'], message.keys()
    assert message['From'] == OUTSIDE_SENDER
    assert metadata['mail-from'] == alice
    assert spf_at_the_destination(topology, alice) == 'pass'


def test_a_vacation_reply_leaves_from_the_user_and_passes_spf(
        topology, smarthost):
    b = topology['backends']['mail1']
    bob = PATHS[1][1]
    script = ('require "vacation";\n'
              'vacation :days 1 :subject "Away %s" "Bob is away.";\n' % bob)
    assert sieve_activate(b['imap-smtp-ipv6'], b['sieve-port'], bob,
                          PASSWORDS[bob], 'vacation', script).startswith('OK')
    # a sender of its own: the reply goes once per sender and period
    sender = 'etienne-%s@hotmail.com' % uuid.uuid4().hex[:8]
    try:
        stranger_sends(topology, bob, 'holidays %s' % uuid.uuid4(),
                       sender=sender)
        metadata, message = arrived(smarthost, 'Away ' + bob)
    finally:
        sieve_activate(b['imap-smtp-ipv6'], b['sieve-port'], bob,
                       PASSWORDS[bob], 'vacation', None)
    assert metadata['rcpt-tos'] == [sender]
    assert metadata['mail-from'] == bob
    assert message['Auto-Submitted'].startswith('auto-replied')
    assert 'Bob is away.' in message.get_payload()
    assert spf_at_the_destination(topology, bob) == 'pass'
    # signed by the relay, as bob's own mail
    assert verify_dkim(message.as_string(), dkim_records(topology, 'mail1'))
