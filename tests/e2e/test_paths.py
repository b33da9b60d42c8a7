"""The reference topology (what scripts/demo.sh deploys, with the same
function): a relay cluster of one node, backends for mail1.example.com and
mail2.example.com requested with their domain alone, which order it from
the relay found as urn:slapos:mail-relay, a stand-in third-party smarthost
and DNS server, alice and bob on mail1 and charlie on mail2 with the
passwords set through their setup links. The four mail paths of
../shared/interface.md, each found at its destination with the headers of
the path it took, and the paths that must stay closed."""
import email
import os
import smtplib
import socket
import ssl

import dkim
import psutil
import pytest

from tests.deployment import (DNS_PORT, MAIL1, MAIL2, OUTSIDE_RECIPIENT,
                              OUTSIDE_SENDER, PATHS, REFERENCE_MX, RELAY_FQDN,
                              deploy_reference_topology, insecure_tls,
                              move_mail, mx_dns, rcpt_code,
                              reference_smarthost)
from tests.harness import partition_ipv6

SMARTHOST_LOGIN = ('relay', 'smarthost secret')
PASSWORDS = {PATHS[1][0]: 'alice password 1', PATHS[1][1]: 'bob password 1',
             PATHS[2][1]: 'charlie password 1'}
STRANGER = partition_ipv6(30)      # a client that is no backend
# the ports of each release that speak SMTP, by the name of their
# connection parameter
BACKEND_SMTP_PORTS = ('smtp-port', 'submission-port', 'smtps-port')
RELAY_SMTP_PORTS = (10025, 10587)    # inbound, submission


@pytest.fixture(scope='module')
def smarthost(tmp_path_factory):
    with reference_smarthost(str(tmp_path_factory.mktemp('smarthost')),
                             SMARTHOST_LOGIN) as server:
        yield server


@pytest.fixture(scope='module')
def dns():
    with mx_dns(REFERENCE_MX, DNS_PORT) as server:
        yield server


@pytest.fixture(scope='module')
def topology(slapos, smarthost, dns):
    return deploy_reference_topology(slapos, SMARTHOST_LOGIN, PASSWORDS,
                                     smarthost_tls=smarthost.tls)


def received(message):
    """The Received headers, the most recent hop first."""
    return [' '.join(h.split()) for h in
            email.message_from_string(message).get_all('Received', [])]


def hops(message):
    """Who received the message, in the order it travelled: the ``by``
    name of each Received header."""
    return [h.split(' by ', 1)[1].split()[0]
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
    assert topology['relay']['backend-domains'].splitlines() == [MAIL1, MAIL2]
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
