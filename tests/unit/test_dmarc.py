"""DMARC of a relay node's inbound mail: the decision
(``recipes.decisions.dmarc``), and the milter that applies it
(``relay_policy.AuthenticationCheck``) on real signed messages, their keys
and records served by the stand-in DNS server."""
import struct

import dkim
import pytest

from recipes.decisions import dmarc
from recipes.programs import milter, relay_policy
from tests.dns_server import DNSServer

RECORDS = {
    'reject.example': 'v=DMARC1; p=reject',
    'quarantine.example': 'v=DMARC1; p=quarantine; adkim=s',
    'example.com': 'v=DMARC1; p=none; sp=reject; aspf=s',
    'monitored.example': 'v=DMARC1; p=reject; pct=0',
    'testing.example': 'v=DMARC1; p=reject; t=y',
    'broken.example': 'v=DMARC1; p=maybe',
}


def lookup(name):
    if name == 'down.example':
        raise LookupError('DNS timeout')
    return RECORDS.get(name)


def verdict(domain, spf=('none', None), dkim_domains=(), sample=lambda: 0.5):
    v = dmarc.evaluate(domain, lookup, spf, list(dkim_domains), sample)
    return v.result, v.disposition, v.policy


def test_the_author_domains_are_those_of_the_from_addresses():
    assert dmarc.author_domains(['"ceo@bank.example" <x@Evil.Example>']) == \
        ['evil.example']
    assert dmarc.author_domains(['a@one.example, b@two.example',
                                 'c@one.example']) == ['one.example',
                                                       'two.example']
    assert dmarc.author_domains(['undisclosed-recipients:;']) == []
    assert dmarc.domain_of_sender('<a@Lists.Example>') == 'lists.example'
    assert dmarc.domain_of_sender('') is None


def test_an_unauthenticated_message_gets_what_its_domain_asks():
    assert verdict('reject.example') == ('fail', 'reject', 'reject')
    assert verdict('quarantine.example') == ('fail', 'quarantine',
                                             'quarantine')
    assert verdict('nodmarc.example') == ('none', 'none', '')
    # a subdomain without a record of its own: its organizational
    # domain's sp
    assert verdict('news.example.com') == ('fail', 'reject', 'none')
    assert verdict('example.com') == ('fail', 'none', 'none')


def test_an_aligned_spf_pass_or_dkim_pass_speaks_for_the_domain():
    # relaxed: a subdomain's SPF or signature counts for its parent
    assert verdict('reject.example', spf=('pass', 'bounces.reject.example')
                   )[0] == 'pass'
    assert verdict('reject.example', dkim_domains=['reject.example'])[0] == \
        'pass'
    # not aligned: another domain's pass, a softfail, a failed signature
    assert verdict('reject.example', spf=('pass', 'lists.example'),
                   dkim_domains=['lists.example'])[:2] == ('fail', 'reject')
    assert verdict('reject.example', spf=('softfail', 'reject.example')
                   )[0] == 'fail'
    # strict: the exact domain only
    assert verdict('quarantine.example',
                   dkim_domains=['mail.quarantine.example'])[0] == 'fail'
    assert verdict('news.example.com', spf=('pass', 'example.com'))[0] == \
        'fail'
    assert verdict('example.com', spf=('pass', 'example.com'))[0] == 'pass'


def test_pct_and_test_mode_soften_the_policy_and_failures_never_refuse():
    assert verdict('monitored.example')[1] == 'quarantine'
    assert verdict('testing.example')[1] == 'quarantine'
    assert verdict('down.example') == ('temperror', 'none', '')
    assert verdict('broken.example')[:2] == ('permerror', 'none')


def test_the_strictest_verdict_decides_and_says_why():
    verdicts = [dmarc.evaluate(d, lookup, ('none', None), [])
                for d in ('nodmarc.example', 'reject.example',
                          'quarantine.example')]
    worst = dmarc.strictest(verdicts)
    assert worst.domain == 'reject.example'
    assert dmarc.refusal(worst).startswith('550 5.7.1 ')
    assert dmarc.refusal(verdicts[2]) is None
    header = dmarc.authentication_results(
        'relay1.example.net', ('pass', 'lists.example'),
        [('fail', 'reject.example', 'sel')], worst)
    assert header == (
        'relay1.example.net; spf=pass smtp.mailfrom=lists.example; '
        'dkim=fail header.d=reject.example header.s=sel; '
        'dmarc=fail (p=reject dis=reject) header.from=reject.example')
    assert dmarc.authserv_id_of(' Relay1.example.net; dkim=pass') == \
        'relay1.example.net'


# -- the milter, on real messages ------------------------------------------------
SELECTOR = 'mail'


@pytest.fixture(scope='module')
def signer():
    """A 2048-bit RSA key of mail1.example (what the relay signs with) and
    its DNS record."""
    import base64
    import subprocess
    private = subprocess.run(['openssl', 'genrsa', '2048'], check=True,
                             capture_output=True).stdout
    public = subprocess.run(['openssl', 'rsa', '-pubout', '-outform', 'DER'],
                            input=private, check=True,
                            capture_output=True).stdout
    return private, 'v=DKIM1; k=rsa; p=' + base64.b64encode(public).decode()


@pytest.fixture
def dns_records(signer):
    records = {('_dmarc.' + name, 'TXT'): [value]
               for name, value in RECORDS.items()}
    records[('_dmarc.mail1.example', 'TXT')] = ['v=DMARC1; p=reject']
    records[('%s._domainkey.mail1.example' % SELECTOR, 'TXT')] = [signer[1]]
    with DNSServer('127.0.0.1', records) as server:
        yield server


def signed(private, message):
    signature = dkim.sign(message, SELECTOR.encode(), b'mail1.example',
                          private, include_headers=[b'from', b'subject'])
    return signature + message


def run_milter(dns_server, message, client=('198.51.100.9', 4242),
               sender='a@lists.example', spf=None, enable=True,
               receiver='relay1.example.net'):
    """The replies of an ``AuthenticationCheck`` session to ``message``,
    sent as Postfix sends it (header values with their leading space,
    folded lines with LF, the body in CRLF)."""
    config = {'spf': {'enable': True, 'timeout': 5}, 'greylisting': {},
              'nameservers': [dns_server.address],
              'trusted-clients': ['fd00::1'], 'receiver': receiver,
              'dmarc': {'enable': enable}}
    checks = relay_policy.InboundChecks(config)
    results = relay_policy.Identities()
    if spf:
        results.record({'client_address': client[0],
                        'client_port': str(client[1])}, spf)
    session = milter.Session(
        lambda: relay_policy.AuthenticationCheck(lambda: checks, results))
    reply = session.answer(milter.NEGOTIATE,
                           struct.pack('!III', 6, 0x1ff, 0x1fffff))
    _, actions, steps = struct.unpack('!III', reply[5:])
    assert actions == milter.ADD_HEADERS | milter.CHANGE_HEADERS
    assert steps & milter.HEADER_LEADING_SPACE and not steps & milter.NO_BODY
    host = client[0].encode()
    first = session.answer(milter.CONNECT, b'h\x00' + (b'6' if b':' in host
                           else b'4') + struct.pack('!H', client[1]) + host
                           + b'\0')
    if first == milter.packet(milter.ACCEPT):
        return 'accepted at connect'
    session.answer(milter.MACRO, b'M{mail_addr}\0%s\0' % sender.encode())
    session.answer(milter.MAIL, b'<%s>\0' % sender.encode())
    head, _, body = message.partition(b'\r\n\r\n')
    lines = []
    for line in head.split(b'\r\n'):
        if line[:1] in (b' ', b'\t'):
            lines[-1] += b'\n' + line
        else:
            lines.append(line)
    for line in lines:
        name, _, value = line.partition(b':')
        session.answer(milter.HEADER, name + b'\0' + value + b'\0')
    session.answer(milter.END_OF_HEADERS, b'')
    session.answer(milter.BODY, body)
    return session.answer(milter.END_OF_BODY, b'')


def replies(data):
    found = []
    while data:
        (length,) = struct.unpack('!I', data[:4])
        found.append((data[4:5], data[5:4 + length]))
        data = data[4 + length:]
    return found


MESSAGE = (b'From: Alice <alice@mail1.example>\r\nSubject: a long subject,\r\n'
           b' folded\r\nAuthentication-Results: relay1.example.net; dmarc=pass'
           b'\r\nAuthentication-Results: elsewhere.example; dkim=pass\r\n'
           b'X-DMARC-Quarantine: no\r\n\r\nHello.\r\n')


def test_a_signed_message_passes_and_says_so(dns_records, signer):
    got = replies(run_milter(dns_records, signed(signer[0], MESSAGE),
                             spf=('none', 'a@lists.example')))
    assert got[-1] == (milter.ACCEPT, b'')
    changes = got[:-1]
    # the header this node alone writes is removed, not another's
    assert (milter.CHANGE_HEADER, struct.pack('!I', 1) +
            b'Authentication-Results\0\0') in changes
    assert (milter.CHANGE_HEADER, struct.pack('!I', 1) +
            b'X-DMARC-Quarantine\0\0') in changes
    assert not [c for c in changes if c[0] == milter.CHANGE_HEADER
                and c[1][:4] == struct.pack('!I', 2)]
    added = [c[1] for c in changes if c[0] == milter.INSERT_HEADER]
    assert added == [struct.pack('!I', 0) + b'Authentication-Results\0'
                     b' relay1.example.net; spf=none smtp.mailfrom='
                     b'lists.example; dkim=pass header.d=mail1.example '
                     b'header.s=mail; dmarc=pass (p=reject dis=none) '
                     b'header.from=mail1.example\0']


def test_a_changed_or_unsigned_message_of_a_reject_domain_is_refused(
        dns_records, signer):
    tampered = signed(signer[0], MESSAGE).replace(b'a long subject',
                                                  b'a new subject')
    for message in (tampered, MESSAGE):
        got = replies(run_milter(dns_records, message))
        assert got == [(milter.REPLY_CODE, got[0][1])]
        assert got[0][1].startswith(b'550 5.7.1 Unauthenticated mail from '
                                    b'mail1.example')
    # unless DMARC is disabled: the header then says SPF and DKIM only
    got = replies(run_milter(dns_records, tampered, enable=False))
    assert got[-1] == (milter.ACCEPT, b'')
    assert b'dkim=fail header.d=mail1.example' in got[-2][1]
    assert b'dmarc' not in got[-2][1]


def test_quarantine_marks_the_message_and_trusted_clients_are_skipped(
        dns_records):
    message = MESSAGE.replace(b'alice@mail1.example', b'ceo@quarantine.example')
    got = replies(run_milter(dns_records, message))
    assert got[-1] == (milter.ACCEPT, b'')
    assert (milter.INSERT_HEADER, struct.pack('!I', 0) +
            b'X-DMARC-Quarantine\0 quarantine.example (p=quarantine)\0') in got
    assert run_milter(dns_records, message, client=('fd00::1', 25)) == \
        'accepted at connect'
    # an SPF pass of the envelope domain, aligned: delivered unmarked
    got = replies(run_milter(dns_records, message, sender='b@quarantine.example',
                             spf=('pass', 'b@quarantine.example')))
    assert not [c for c in got if b'X-DMARC-Quarantine\0quarantine' in c[1]]
    assert b'dmarc=pass' in got[-2][1]


def test_a_check_that_breaks_lets_the_mail_through(dns_records, monkeypatch):
    def broken(*args, **kw):
        raise RuntimeError('a bug')
    monkeypatch.setattr(dmarc, 'evaluate', broken)
    got = replies(run_milter(dns_records, MESSAGE))
    assert got == [(milter.ACCEPT, b'')]
