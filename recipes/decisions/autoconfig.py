"""Mail client autoconfiguration for the domains of a backend: what
Thunderbird's ``config-v1.1.xml`` (autoconfig) and Outlook's
``autodiscover.xml`` answer say, and the DNS records that lead clients to
them (``recipes.programs.autoconfig`` serves the answers).

Only the TLS endpoints are offered: IMAPS, POP3S, SMTPS and submission with
STARTTLS, on the backend's published address and ports; the login is the
whole address. The DNS records (``dns_records``): ``autoconfig.<domain>``
and ``autodiscover.<domain>`` (the names clients try first),
``mail.<domain>`` (the host the SRV records name), and the SRV records of
RFC 6186 (``_imaps._tcp``, ``_submission._tcp``, ``_pop3s._tcp``) and of
Outlook (``_autodiscover._tcp``, which carries the HTTPS port).
"""
import xml.etree.ElementTree as ET

from .dns import record

THUNDERBIRD_PATHS = ('/mail/config-v1.1.xml',
                     '/.well-known/autoconfig/mail/config-v1.1.xml')
# where Outlook POSTs its request (any case: httpd.conf.in)
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
