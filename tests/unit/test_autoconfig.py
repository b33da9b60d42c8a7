"""Mail client autoconfiguration (recipes.decisions.autoconfig, served by
recipes.programs.autoconfig): what clients are told, parsed as they parse
it, and the DNS records that lead them there."""
import io
import json
import xml.etree.ElementTree as ET

from recipes.decisions import autoconfig as decisions
from recipes.instance.autoconfig import Recipe
from recipes.programs import autoconfig as program

PORTS = {'imaps-port': 10993, 'pop3s-port': 10995, 'smtps-port': 10465,
         'submission-port': 10587, 'https-port': 8081}
CONFIG = decisions.settings(['example.com', 'example.org'], 'fd00::2',
                             PORTS)
OUTLOOK = '{%s}' % decisions.OUTLOOK_SCHEMA


def call(method, path, query='', body=b''):
    return program.handle({
        'REQUEST_METHOD': method, 'SCRIPT_NAME': path, 'QUERY_STRING': query,
        'CONTENT_LENGTH': str(len(body)),
        'wsgi.input': io.BytesIO(body)}, CONFIG)


def test_thunderbird_gets_only_tls_endpoints_for_every_domain():
    for path in decisions.THUNDERBIRD_PATHS:
        status, content_type, text = call(
            'GET', path, 'emailaddress=alice%40example.org')
        assert (status, content_type) == (200, 'application/xml')
        provider = ET.fromstring(text).find('emailProvider')
        assert provider.get('id') == 'example.org'
        assert [d.text for d in provider.findall('domain')] == [
            'example.com', 'example.org']
        servers = [(s.tag, s.get('type'), s.findtext('hostname'),
                    s.findtext('port'), s.findtext('socketType'),
                    s.findtext('username'), s.findtext('authentication'))
                   for s in provider
                   if s.tag.endswith('Server')]
        assert servers == [
            ('incomingServer', 'imap', 'fd00::2', '10993', 'SSL',
             '%EMAILADDRESS%', 'password-cleartext'),
            ('incomingServer', 'pop3', 'fd00::2', '10995', 'SSL',
             '%EMAILADDRESS%', 'password-cleartext'),
            ('outgoingServer', 'smtp', 'fd00::2', '10465', 'SSL',
             '%EMAILADDRESS%', 'password-cleartext'),
            ('outgoingServer', 'smtp', 'fd00::2', '10587', 'STARTTLS',
             '%EMAILADDRESS%', 'password-cleartext')]


def test_thunderbird_without_an_address_and_for_another_domain():
    status, _, text = call('GET', decisions.THUNDERBIRD_PATHS[0])
    assert status == 200
    assert ET.fromstring(text).find('emailProvider').get('id') == \
        'example.com'
    assert call('GET', decisions.THUNDERBIRD_PATHS[0],
                'emailaddress=bob%40gmail.com')[0] == 404
    assert call('POST', decisions.THUNDERBIRD_PATHS[0])[0] == 405


REQUEST = ('<Autodiscover xmlns="%s"><Request><EMailAddress>%s</EMailAddress>'
           '<AcceptableResponseSchema>%s</AcceptableResponseSchema>'
           '</Request></Autodiscover>')


def protocols(text):
    return [tuple(p.findtext(OUTLOOK + tag) for tag in (
        'Type', 'Server', 'Port', 'SSL', 'Encryption', 'LoginName'))
        for p in ET.fromstring(text).iter(OUTLOOK + 'Protocol')]


def test_outlook_autodiscover_post_and_get():
    body = REQUEST % (decisions.REQUEST_SCHEMA, 'Alice@Example.com',
                      decisions.OUTLOOK_SCHEMA)
    # Outlook writes the path with capitals
    status, _, text = call('POST', '/Autodiscover/Autodiscover.xml',
                           body=body.encode())
    assert status == 200
    root = ET.fromstring(text)
    assert root.tag == '{%s}Autodiscover' % decisions.RESPONSE_SCHEMA
    assert protocols(text) == [
        ('IMAP', 'fd00::2', '10993', 'on', 'SSL', 'Alice@Example.com'),
        ('POP3', 'fd00::2', '10995', 'on', 'SSL', 'Alice@Example.com'),
        ('SMTP', 'fd00::2', '10465', 'on', 'SSL', 'Alice@Example.com'),
        ('SMTP', 'fd00::2', '10587', 'on', 'TLS', 'Alice@Example.com')]
    status, _, text = call('GET', '/autodiscover/autodiscover.xml')
    assert status == 200
    assert [p[:5] + (None,) for p in protocols(text)] == protocols(text)


def test_outlook_autodiscover_refusals():
    path = '/autodiscover/autodiscover.xml'
    foreign = REQUEST % (decisions.REQUEST_SCHEMA, 'bob@gmail.com',
                         decisions.OUTLOOK_SCHEMA)
    assert call('POST', path, body=foreign.encode())[0] == 404
    assert call('POST', path, body=b'<not xml')[0] == 400
    # ActiveSync's schema is not served: Outlook's error 600
    mobile = REQUEST % (decisions.REQUEST_SCHEMA, 'alice@example.com',
                        'http://schemas.microsoft.com/exchange/autodiscover/'
                        'mobilesync/responseschema/2006')
    status, _, text = call('POST', path, body=mobile.encode())
    assert status == 200 and '<ErrorCode>600</ErrorCode>' in text
    too_large = b' ' * (program.MAX_BODY + 1)
    assert call('POST', path, body=too_large)[0] == 413
    assert call('DELETE', path)[0] == 405
    assert call('GET', '/other')[0] == 404


def test_dns_records_of_each_domain():
    records = decisions.dns_records(['example.com'], 'fd00::2', PORTS)
    assert records == [
        {'name': 'mail.example.com', 'type': 'AAAA', 'value': 'fd00::2'},
        {'name': 'autoconfig.example.com', 'type': 'AAAA',
         'value': 'fd00::2'},
        {'name': 'autodiscover.example.com', 'type': 'AAAA',
         'value': 'fd00::2'},
        {'name': '_imaps._tcp.example.com', 'type': 'SRV',
         'value': '0 1 10993 mail.example.com.'},
        {'name': '_submission._tcp.example.com', 'type': 'SRV',
         'value': '0 1 10587 mail.example.com.'},
        {'name': '_pop3s._tcp.example.com', 'type': 'SRV',
         'value': '10 1 10995 mail.example.com.'},
        {'name': '_autodiscover._tcp.example.com', 'type': 'SRV',
         'value': '0 1 8081 autodiscover.example.com.'}]
    assert decisions.dns_records(['example.com'], '192.0.2.1', PORTS)[0][
        'type'] == 'A'


def test_recipe_publishes_the_relay_records_then_its_own(tmp_path):
    relay = [{'name': 'example.com', 'type': 'MX',
              'value': '10 relay.example.net.'}]
    options = dict({key: str(value) for key, value in PORTS.items()},
                   domains='example.com', host='fd00::2',
                   url='https://[fd00::2]:8081/',
                   **{'settings-file': str(tmp_path / 'autoconfig.json'),
                      'other-records': json.dumps(relay)})
    recipe = Recipe(None, 'autoconfig', options)
    assert options['autoconfig-url'] == (
        'https://[fd00::2]:8081/mail/config-v1.1.xml')
    records = json.loads(options['dns-records'])
    assert records[0] == relay[0] and len(records) == 8
    assert not (tmp_path / 'autoconfig.json').exists()
    recipe.install()
    settings = json.loads((tmp_path / 'autoconfig.json').read_text())
    assert settings == json.loads(json.dumps(decisions.settings(
        ['example.com'], 'fd00::2', PORTS)))
    # the relay has not answered yet
    options['other-records'] = ''
    Recipe(None, 'autoconfig', options)
    assert len(json.loads(options['dns-records'])) == 7


def test_the_cgi_program_reads_its_settings(tmp_path, monkeypatch):
    path = tmp_path / 'autoconfig.json'
    path.write_text(json.dumps(CONFIG))
    monkeypatch.setenv(program.SETTINGS_VARIABLE, str(path))
    answers = []
    body = program.application({
        'REQUEST_METHOD': 'GET', 'SCRIPT_NAME': '/mail/config-v1.1.xml',
        'QUERY_STRING': ''}, lambda status, headers: answers.append(
            (status, dict(headers))))
    assert answers[0][0] == '200 OK'
    assert answers[0][1]['Content-Type'] == 'application/xml; charset=utf-8'
    assert b'<clientConfig' in b''.join(body)
    monkeypatch.setenv(program.SETTINGS_VARIABLE, str(tmp_path / 'none'))
    answers.clear()
    body = program.application({'REQUEST_METHOD': 'GET'},
                                  lambda s, h: answers.append(s))
    assert answers == ['500 Internal Server Error']
    assert program.SETTINGS_VARIABLE.encode() in b''.join(body)
