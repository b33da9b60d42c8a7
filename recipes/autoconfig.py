"""Mail client autoconfiguration for the domains of a backend: Thunderbird's
``config-v1.1.xml`` (autoconfig), Outlook's ``autodiscover.xml`` answer, and
the DNS records that lead clients to them.

Only the TLS endpoints are offered: IMAPS, POP3S, SMTPS and submission with
STARTTLS, on the backend's published address and ports; the login is the
whole address. Served over HTTPS by the backend's Apache (a CGI program,
``python -m recipes.autoconfig``, configured by the settings file named by
``MAIL_AUTOCONFIG_SETTINGS``):

  GET       /mail/config-v1.1.xml[?emailaddress=ADDRESS]       Thunderbird
  GET       /.well-known/autoconfig/mail/config-v1.1.xml[?...]  Thunderbird
  GET/POST  /autodiscover/autodiscover.xml                      Outlook (POX)

An address outside the hosted domains gets 404. The DNS records
(``dns_records``): ``autoconfig.<domain>`` and ``autodiscover.<domain>``
(the names clients try first), ``mail.<domain>`` (the host the SRV records
name), and the SRV records of RFC 6186 (``_imaps._tcp``,
``_submission._tcp``, ``_pop3s._tcp``) and of Outlook
(``_autodiscover._tcp``, which carries the HTTPS port).
"""
import json
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

SETTINGS_VARIABLE = 'MAIL_AUTOCONFIG_SETTINGS'
MAX_BODY = 16 * 1024
THUNDERBIRD_PATHS = ('/mail/config-v1.1.xml',
                     '/.well-known/autoconfig/mail/config-v1.1.xml')
AUTODISCOVER_PATH = '/autodiscover/autodiscover.xml'
REQUEST_SCHEMA = ('http://schemas.microsoft.com/exchange/autodiscover/'
                  'outlook/requestschema/2006')
RESPONSE_SCHEMA = ('http://schemas.microsoft.com/exchange/autodiscover/'
                   'responseschema/2006')
OUTLOOK_SCHEMA = ('http://schemas.microsoft.com/exchange/autodiscover/'
                  'outlook/responseschema/2006a')

# (protocol, port key, security): the order is the clients' preference.
# "SSL" is implicit TLS, "STARTTLS" the upgrade on a plain port.
ENDPOINTS = (
    ('imap', 'imaps-port', 'SSL'),
    ('pop3', 'pop3s-port', 'SSL'),
    ('smtp', 'smtps-port', 'SSL'),
    ('smtp', 'submission-port', 'STARTTLS'),
)
# RFC 6186 service names, with IMAP preferred to POP3 (lower priority first)
SRV = (('_imaps._tcp', 'imaps-port', 0), ('_submission._tcp',
        'submission-port', 0), ('_pop3s._tcp', 'pop3s-port', 10))
HOST_LABEL = 'mail'


def settings(domains, host, ports):
    """The settings the CGI program reads: ``ports`` maps each port key of
    ``ENDPOINTS`` (and ``https-port``) to its number."""
    return {'domains': list(domains), 'host': host,
            'ports': {key: int(value) for key, value in ports.items()}}


def endpoints(config):
    """``[(protocol, host, port, security)]`` offered to clients."""
    return [(protocol, config['host'], config['ports'][key], security)
            for protocol, key, security in ENDPOINTS]


def hosted_domain(config, address):
    """The domain of ``address`` when it is hosted here, else None; no
    address at all gives the first domain."""
    if not address:
        return config['domains'][0]
    domain = address.rpartition('@')[2].strip().lower()
    return domain if domain in config['domains'] else None


def _text(parent, tag, text):
    element = ET.SubElement(parent, tag)
    element.text = str(text)
    return element


def _document(root):
    ET.indent(root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding='unicode') + '\n')


def thunderbird(config, domain):
    """Thunderbird's config-v1.1.xml, for every hosted domain (``domain``
    names the provider)."""
    root = ET.Element('clientConfig', version='1.1')
    provider = ET.SubElement(root, 'emailProvider', id=domain)
    for name in config['domains']:
        _text(provider, 'domain', name)
    _text(provider, 'displayName', 'Mail of %s' % domain)
    _text(provider, 'displayShortName', domain)
    for protocol, host, port, security in endpoints(config):
        server = ET.SubElement(
            provider,
            'outgoingServer' if protocol == 'smtp' else 'incomingServer',
            type=protocol)
        _text(server, 'hostname', host)
        _text(server, 'port', port)
        _text(server, 'socketType', security)
        _text(server, 'authentication', 'password-cleartext')
        _text(server, 'username', '%EMAILADDRESS%')
    return _document(root)


def autodiscover_address(body):
    """``(address, schema)`` of an autodiscover request body (either may be
    empty); ValueError when it is not XML."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise ValueError('the request is not XML: %s' % e)
    values = {}
    for element in root.iter():
        tag = element.tag.rpartition('}')[2]
        if tag in ('EMailAddress', 'AcceptableResponseSchema'):
            values[tag] = (element.text or '').strip()
    return values.get('EMailAddress', ''), values.get(
        'AcceptableResponseSchema', '')


def autodiscover(config, address):
    """Outlook's answer (POX, response schema 2006a)."""
    root = ET.Element('Autodiscover', xmlns=RESPONSE_SCHEMA)
    response = ET.SubElement(root, 'Response', xmlns=OUTLOOK_SCHEMA)
    account = ET.SubElement(response, 'Account')
    _text(account, 'AccountType', 'email')
    _text(account, 'Action', 'settings')
    for protocol, host, port, security in endpoints(config):
        entry = ET.SubElement(account, 'Protocol')
        _text(entry, 'Type', protocol.upper())
        _text(entry, 'Server', host)
        _text(entry, 'Port', port)
        _text(entry, 'DomainRequired', 'off')
        if address:
            _text(entry, 'LoginName', address)
        _text(entry, 'SPA', 'off')
        # Outlook: SSL on = implicit TLS; Encryption TLS = STARTTLS
        _text(entry, 'SSL', 'on')
        _text(entry, 'Encryption', 'SSL' if security == 'SSL' else 'TLS')
        _text(entry, 'AuthRequired', 'on')
    return _document(root)


def autodiscover_error(code, message):
    root = ET.Element('Autodiscover', xmlns=RESPONSE_SCHEMA)
    response = ET.SubElement(root, 'Response')
    error = ET.SubElement(response, 'Error')
    _text(error, 'ErrorCode', code)
    _text(error, 'Message', message)
    return _document(root)


def handle(environ, config):
    """``(status, content type, body)`` of one request."""
    method = environ.get('REQUEST_METHOD', 'GET')
    path = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
    query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
    address = query.get('emailaddress', [''])[0].strip()
    if path in THUNDERBIRD_PATHS:
        if method not in ('GET', 'HEAD'):
            return 405, 'text/plain', 'use GET\n'
        domain = hosted_domain(config, address)
        if domain is None:
            return 404, 'text/plain', 'no mail is hosted here for %s\n' % (
                address.rpartition('@')[2])
        return 200, 'application/xml', thunderbird(config, domain)
    if path.lower() != AUTODISCOVER_PATH:
        return 404, 'text/plain', 'not found\n'
    if method == 'POST':
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return 413, 'text/plain', 'request larger than %d bytes\n' % (
                MAX_BODY)
        try:
            address, schema = autodiscover_address(
                environ['wsgi.input'].read(length))
        except ValueError:
            return 400, 'application/xml', autodiscover_error(
                600, 'Invalid Request')
        if schema and schema != OUTLOOK_SCHEMA:
            # e.g. ActiveSync's mobilesync schema: not served here
            return 200, 'application/xml', autodiscover_error(
                600, 'Invalid Request')
    elif method not in ('GET', 'HEAD'):
        return 405, 'text/plain', 'use POST or GET\n'
    if hosted_domain(config, address) is None:
        return 404, 'text/plain', 'no mail is hosted here for %s\n' % (
            address.rpartition('@')[2])
    return 200, 'application/xml', autodiscover(config, address)


STATUSES = {200: '200 OK', 400: '400 Bad Request', 404: '404 Not Found',
            405: '405 Method Not Allowed', 413: '413 Payload Too Large',
            500: '500 Internal Server Error'}


def application(environ, start_response):
    path = os.environ.get(SETTINGS_VARIABLE) or environ.get(SETTINGS_VARIABLE)
    try:
        with open(path) as f:
            config = json.load(f)
    except (TypeError, OSError, ValueError) as e:
        status, content_type, text = 500, 'text/plain', (
            'autoconfiguration is not configured (%s: %s)\n'
            % (SETTINGS_VARIABLE, e))
    else:
        status, content_type, text = handle(environ, config)
    body = text.encode('utf-8')
    start_response(STATUSES[status], [
        ('Content-Type', content_type + '; charset=utf-8'),
        ('Content-Length', str(len(body))),
        ('Cache-Control', 'no-cache')])
    return [b''] if environ.get('REQUEST_METHOD') == 'HEAD' else [body]


def record(name, type_, value):
    return {'name': name, 'type': type_, 'value': value}


def dns_records(domains, host, ports):
    """The records each domain needs for clients to find its settings."""
    records = []
    for domain in domains:
        target = '%s.%s' % (HOST_LABEL, domain)
        kind = 'AAAA' if ':' in host else 'A'
        for name in (target, 'autoconfig.' + domain, 'autodiscover.' + domain):
            records.append(record(name, kind, host))
        for service, key, priority in SRV:
            records.append(record('%s.%s' % (service, domain), 'SRV',
                                  '%d 1 %d %s.' % (priority, int(ports[key]),
                                                   target)))
        records.append(record('_autodiscover._tcp.' + domain, 'SRV',
                              '0 1 %d autodiscover.%s.' % (
                                  int(ports['https-port']), domain)))
    return records


def merged(*lists):
    """The records of every list, each once, in order."""
    result = []
    for records in lists:
        for entry in records:
            if entry not in result:
                result.append(entry)
    return result


class Recipe:
    """Recipe: the settings of the autoconfiguration program, and the DNS
    records a backend publishes.

      [autoconfig]
      recipe = slapos.mailbundle:autoconfig
      domains = example.com example.org
      host = <the backend's IPv6>
      imaps-port = 10993   pop3s-port = 10995   smtps-port = 10465
      submission-port = 10587   https-port = 8081
      settings-file = ${directory:etc}/autoconfig.json
      url = https://[...]:8081/
      other-records = ${outbound:dns-entries}     (JSON list, e.g. the relay's)

    Exports ``autoconfig-url`` (Thunderbird's file) and ``dns-records``
    (JSON list: ``other-records`` then this module's)."""

    PORTS = ('imaps-port', 'pop3s-port', 'smtps-port', 'submission-port',
             'https-port')

    def __init__(self, buildout, name, options):
        self.options = options
        domains = options['domains'].split()
        ports = {key: options[key] for key in self.PORTS}
        self.settings = settings(domains, options['host'], ports)
        try:
            others = json.loads(options.get('other-records') or '[]')
        except ValueError:
            others = []
        options['autoconfig-url'] = (options['url'].rstrip('/')
                                     + THUNDERBIRD_PATHS[0])
        options['dns-records'] = json.dumps(merged(
            others if isinstance(others, list) else [],
            dns_records(domains, options['host'], ports)))

    def install(self):
        from .files import write_atomically
        write_atomically(self.options['settings-file'],
                         json.dumps(self.settings, indent=1) + '\n',
                         mode=0o644)
        return []

    update = install


def main():
    from wsgiref.handlers import CGIHandler
    CGIHandler().run(application)


if __name__ == '__main__':
    sys.exit(main())
