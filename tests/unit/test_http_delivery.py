"""The delivery agent of the endpoint domains (recipes/programs/
http_delivery.py), spoken to over LMTP as Postfix's lmtp client does, in
front of the stand-in API (tests/http_api.py, a real HTTPS server on
loopback); and the decisions it applies (recipes/decisions/
http_endpoints.py)."""
import hashlib
import json
import os
import re
import smtplib
import ssl
import threading
import time

import pytest

from recipes.decisions import http_endpoints as decide
from recipes.programs import http_delivery
from tests.http_api import HttpApi

DOMAIN = 'in.example.com'
TOKEN = 'the right token 0123456789'
MESSAGE = (b'From: a@outside.example\r\nTo: bob@in.example.com\r\n'
           b'Subject: raw \xc3\xa9t\xc3\xa9\r\nMessage-ID: <1@x>\r\n\r\n'
           b'.a line that starts with a dot\r\ntrailing space \r\n'
           b'\xff\xfe binary-ish\r\nlast line without end')


# -- decisions ------------------------------------------------------------------
@pytest.mark.parametrize('url', [
    'https://api.example.com/v1/email', 'https://[2001:db8::1]:8443/x?q=1',
    'http://127.0.0.1:8080/v1/email', 'http://[::1]/x',
    'http://localhost:9000/'])
def test_an_endpoint_is_https_or_http_to_loopback(url):
    assert decide.endpoint_error(url) is None


@pytest.mark.parametrize('url, words', [
    ('http://api.example.com/v1/email', 'plain http'),
    ('http://10.0.0.1/v1/email', 'plain http'),
    ('ftp://api.example.com/', 'not an https URL'),
    ('https:///v1/email', 'not an https URL'),
    ('api.example.com/v1/email', 'not an https URL'),
    ('https://user:pass@api.example.com/', 'http-token'),
    ('https://api.example.com:99999/', 'not a URL'),
    ('https://api.example.com/#x', 'fragment')])
def test_other_endpoints_are_refused_with_the_reason(url, words):
    assert words in decide.endpoint_error(url)


def test_answers_become_lmtp_replies():
    api = 'the API of d'
    assert decide.delivery_reply(200, 'OK', api).startswith('250 2.0.0')
    assert decide.delivery_reply(202, 'Accepted', api).startswith('250 ')
    assert decide.delivery_reply(422, 'Unprocessable', api).startswith(
        '550 5.1.1')
    assert decide.delivery_reply(413, 'Too big', api).startswith('552 5.3.4')
    for status in (301, 400, 401, 404, 429, 500, 503):
        reply = decide.delivery_reply(status, 'Reason', api)
        assert reply.startswith('451 4.4.0') and '%d Reason' % status in reply
    reply = decide.delivery_reply(None, 'connection refused', api)
    assert reply.startswith('451 4.4.1') and 'connection refused' in reply
    assert decide.verify_reply(200, 'OK', api).startswith('250 ')
    assert decide.verify_reply(422, 'No', api).startswith('550 5.1.1')
    assert decide.verify_reply(503, 'Down', api).startswith('450 ')
    assert decide.verify_reply(None, 'timed out', api).startswith('450 ')


def test_the_agent_gets_the_endpoint_domains_alone():
    domains = [
        {'reference': 'b', 'name': 'backend.example', 'mail-server-host':
         'fd00::2'},
        {'reference': 'a', 'name': DOMAIN, 'http-endpoint': 'https://a/x',
         'http-token': TOKEN, 'http-timeout': 30, 'http-concurrency': 10,
         'http-fingerprints': ['ab:' * 31 + 'cd'], 'authentication':
         'password', 'outbound-user': DOMAIN}]
    assert decide.agent_domains(domains) == {DOMAIN: {
        'http-endpoint': 'https://a/x', 'http-token': TOKEN,
        'http-timeout': 30, 'http-concurrency': 10,
        'http-fingerprints': ['AB' * 31 + 'CD']}}


# -- the agent over LMTP ----------------------------------------------------------
@pytest.fixture
def api(tmp_path):
    with HttpApi('::1', str(tmp_path / 'api'), TOKEN, port=0) as server:
        yield server


@pytest.fixture
def agent(tmp_path, api):
    config = {'socket': str(tmp_path / 'lmtp.sock'),
              'answers-file': str(tmp_path / 'answers.json'),
              'node': 'relay1.example.net',
              'probe-sender': 'double-bounce@relay1.example.net',
              'domains': {DOMAIN: {
                  'http-endpoint': api.url, 'http-token': TOKEN,
                  'http-ca-certificate': api.ca_certificate,
                  'http-timeout': 2, 'http-concurrency': 4}}}
    path = tmp_path / 'config.json'

    def configure(**entry):
        config['domains'][DOMAIN].update(entry)
        for key in [k for k, v in entry.items() if v is None]:
            del config['domains'][DOMAIN][key]
        path.write_text(json.dumps(config))
        os.utime(path, (time.time() + 1, time.time() + configure.count))
        configure.count += 1
    configure.count = 2
    configure()
    http_delivery.Session.agent = None
    agent = http_delivery.Agent(str(path))
    http_delivery.Session.agent = agent
    server = http_delivery.Server(config['socket'], http_delivery.Session)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    agent.configure = configure
    agent.answers_path = config['answers-file']
    agent.socket = config['socket']
    try:
        yield agent
    finally:
        server.shutdown()
        server.server_close()
        for endpoint in agent.endpoints.values():
            endpoint.close()


def lmtp(agent, recipients, message=MESSAGE, sender='a@outside.example',
         rcpt_options=()):
    """``{recipient: (code, text)}`` of one LMTP transaction, as Postfix's
    lmtp client runs it (LHLO, XFORWARD, MAIL, RCPT, DATA)."""
    client = smtplib.LMTP(agent.socket)
    try:
        client.ehlo_or_helo_if_needed()
        assert client.has_extn('pipelining') and client.has_extn('dsn')
        client.docmd('XFORWARD', 'IDENT=4ABC12 ADDR=2001:db8::9')
        assert client.mail(sender)[0] == 250
        refused = {}
        accepted = []
        for recipient in recipients:
            code, text = client.rcpt(recipient, rcpt_options)
            if code == 250:
                accepted.append(recipient)
            else:
                refused[recipient] = (code, text.decode())
        if not accepted:
            return refused
        code, _ = client.putcmd('data') or client.getreply()
        assert code == 354
        client.send(re.sub(br'(?m)^\.', b'..', message) + b'\r\n.\r\n')
        for recipient in accepted:
            code, text = client.getreply()
            refused[recipient] = (code, text.decode())
        client.quit()
        return refused
    finally:
        client.close()


def test_a_message_reaches_the_api_raw_with_token_and_envelope(agent, api):
    replies = lmtp(agent, ['bob@' + DOMAIN, 'carol@' + DOMAIN],
                   rcpt_options=['ORCPT=rfc822;Bob+2BTag@' + DOMAIN])
    assert [code for code, _ in replies.values()] == [250, 250]
    stored = api.messages()
    assert len(stored) == 2     # once per recipient
    for headers, body in stored:
        assert body == MESSAGE + b'\r\n'
        assert headers['Authorization'] == 'Bearer ' + TOKEN
        assert headers['Content-Type'] == 'message/rfc822'
        assert headers['X-Envelope-From'] == 'a@outside.example'
        assert headers['Idempotency-Key'].startswith('4ABC12@relay1.example.net/')
    # the original recipient (ORCPT), xtext decoded
    assert {h['X-Envelope-To'] for h, _ in stored} == {'Bob+Tag@' + DOMAIN}
    answers = json.load(open(agent.answers_path))
    assert answers[DOMAIN]['status'] == 200
    assert answers[DOMAIN]['endpoint'] == api.url
    # the connection was kept for the second recipient
    assert len(agent.endpoints[DOMAIN].idle) == 1


def test_anything_but_2xx_defers_and_names_the_answer(agent, api):
    api.token = 'another token'
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 451 and '401 Unauthorized' in text, text
    answers = json.load(open(agent.answers_path))
    assert answers[DOMAIN]['answer'] == '401 Unauthorized'
    assert answers[DOMAIN]['kind'] == 'deferred'
    # the endpoint rests: the next message is deferred at once, with the
    # last answer
    api.token = TOKEN
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 451 and 'not asked' in text and '401 Unauthorized' in text
    agent.endpoints[DOMAIN].resting_until = 0
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 250, text


@pytest.mark.parametrize('mode, words', [
    ('503', '503 Service Unavailable'), ('hang', 'no answer within 2 s'),
    ('down', 'connection refused')])
def test_an_api_down_defers(agent, api, mode, words):
    assert lmtp(agent, ['bob@' + DOMAIN])['bob@' + DOMAIN][0] == 250
    api.set_mode(mode)
    start = time.time()
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 451 and words in text, text
    assert time.time() - start < 4
    api.set_mode('ok')
    agent.endpoints[DOMAIN].resting_until = 0
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 250, text
    assert len(api.messages()) == 2       # nothing stored twice


def test_422_refuses_for_good(agent, api, monkeypatch):
    monkeypatch.setattr(http_delivery.Endpoint, 'request',
                        lambda self, *a: (422, 'Unprocessable Entity'))
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 550 and text.startswith('5.1.1'), text


def test_recipients_verified_at_rcpt(agent, api):
    """Postfix's probes (from its double-bounce address) are answered as
    the API says; a delivery's recipient, verified by them, is not asked
    again."""
    agent.configure(**{'http-verify-recipients': True})
    probe = 'double-bounce@relay1.example.net'
    replies = lmtp(agent, ['unknown@' + DOMAIN, 'bob@' + DOMAIN],
                   sender=probe)
    assert replies['unknown@' + DOMAIN][0] == 550
    assert replies['bob@' + DOMAIN][0] == 250
    assert lmtp(agent, ['unknown@' + DOMAIN])['unknown@' + DOMAIN][0] == 250
    api.set_mode('down')
    (code, text), = lmtp(agent, ['carol@' + DOMAIN], sender=probe).values()
    assert code == 450 and 'connection refused' in text


def test_a_domain_it_does_not_serve_is_deferred(agent):
    (code, text), = lmtp(agent, ['bob@other.example']).values()
    assert code == 450


def test_tls_is_verified(agent, api, tmp_path):
    # the system's CAs do not know the stand-in's certificate
    agent.configure(**{'http-ca-certificate': None})
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 451 and 'TLS failed' in text and \
        'CERTIFICATE_VERIFY_FAILED' in text, text
    # pinned by its fingerprint instead
    der = ssl.PEM_cert_to_DER_cert(api.ca_certificate)
    right = hashlib.sha256(der).hexdigest().upper()
    agent.configure(**{'http-fingerprints': ['00' * 32]})
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 451 and 'fingerprint' in text, text
    agent.configure(**{'http-fingerprints': [right]})
    (code, text), = lmtp(agent, ['bob@' + DOMAIN]).values()
    assert code == 250, text


def test_the_token_is_in_no_answer_nor_file_but_the_config(agent, api):
    api.token = 'other'
    lmtp(agent, ['bob@' + DOMAIN])
    text = open(agent.answers_path).read()
    assert TOKEN not in text
    assert os.stat(agent.answers_path).st_mode & 0o077 == 0
