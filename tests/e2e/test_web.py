"""The web part of a mail backend in the embedded SlapOS: the password page
over HTTPS (set a password with the one-time link, then log in over IMAPS),
plain HTTP redirecting to it, the daemons' privileges, graceful reloads;
Snappymail through the JSON API its page uses (login with its CSRF token,
Sieve filters through ManageSieve), its data directory never served; the
mail client autoconfiguration (Thunderbird, Outlook) and the DNS records
published for it; the monitor an operator opens from the SlapOS panel
(the password, the promises and their history, the logs).
tests/e2e/test_web_browser.py drives Snappymail in a real browser."""
import hashlib
import imaplib
import json
import os
import poplib
import re
import smtplib
import socket
import stat
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import psutil
import pytest

from tests import monitor
from tests.deployment import (MAIL_SERVER, SnappymailSession,
                              assert_no_secret_in_records,
                              http_request as request, imaps_find,
                              insecure_tls, post_form, send, wait_for)

DOMAIN = 'web.example.com'
ACCOUNT = 'alice@' + DOMAIN
TEST_ACCOUNT = ('testmail@' + DOMAIN, 'password123')
# mail is sent to the backend directly: no relay in front of it
PARAMETERS = {'mail-domains': [DOMAIN], 'test-account': True,
              'inbound-relay': {'enable': False}}


@pytest.fixture(scope='module')
def deployment(slapos):
    slapos.supply(MAIL_SERVER)
    slapos.wait_software()
    slapos.request(MAIL_SERVER, 'web-backend', 'default', PARAMETERS)
    slapos.wait_instance(max_retry=2)
    backend = slapos.connection_parameters(MAIL_SERVER, 'web-backend')
    slapos.request(MAIL_SERVER, 'web-account-alice', 'default',
                   {'address': ACCOUNT}, shared=True)
    slapos.wait_instance(max_retry=2)
    account = slapos.connection_parameters(
        MAIL_SERVER, 'web-account-alice', shared=True)
    return {'backend': backend, 'account': account,
            'partition': slapos.partition_of_address(
                backend['imap-smtp-ipv6'])}


def setup_link(deployment):
    account = deployment['account']
    assert 'setup-url' in account, account
    return account['setup-url']


def snappymail(deployment):
    """The backend's parameters; Snappymail must be there (scripts/setup.sh
    puts its archive into the download cache)."""
    backend = deployment['backend']
    assert 'webmail-url' in backend, (
        'no webmail published: the software release was built without the '
        'Snappymail archive (scripts/setup.sh takes it from '
        '../shared/snappymail/ or SNAPPYMAIL_ARCHIVE)', backend)
    return backend


# --- the password page ---------------------------------------------------------

def test_password_page_is_served_over_https(deployment):
    backend = deployment['backend']
    url = backend['password-url']
    assert url == 'https://[%s]:8081/password' % backend['imap-smtp-ipv6']
    status, headers, text = request(url)
    assert status == 200, text
    assert '<form' in text and 'name="password"' in text
    # with the partition's current certificate
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as raw, \
            insecure_tls().wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ':'.join(digest[i:i + 2] for i in range(0, 64, 2))
    assert fingerprint == backend['tls-fingerprints'][0]


def test_http_port_redirects_to_https(deployment):
    ipv6 = deployment['backend']['imap-smtp-ipv6']
    status, headers, _ = request('http://[%s]:8080/password?user=x' % ipv6)
    assert status == 301
    assert headers['Location'] == 'https://[%s]:8081/password?user=x' % ipv6


def test_setup_url_shows_a_prefilled_form(deployment):
    url = setup_link(deployment)
    assert url.startswith(deployment['backend']['password-url'] + '?')
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query['user'] == [ACCOUNT]
    status, _, text = request(url)
    assert status == 200, text
    assert 'value="%s"' % ACCOUNT in text
    assert 'value="%s"' % query['token'][0] in text


def test_the_setup_link_sets_the_password_once(deployment):
    url = setup_link(deployment)
    backend = deployment['backend']
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)['token'][0]
    password = 'web-%s' % uuid.uuid4().hex[:12]
    status, _, text = post_form(url, user=ACCOUNT, token=token,
                                password=password)
    assert status == 200, text
    # the new password works: a message to the account is read over IMAPS
    subject = 'web %s' % uuid.uuid4()
    send(backend['imap-smtp-ipv6'], backend['smtp-port'],
         'etienne@hotmail.com', [ACCOUNT], subject)
    assert subject in imaps_find(backend['imap-smtp-ipv6'],
                                 backend['imaps-port'], ACCOUNT, password,
                                 subject)
    # the token worked once
    status, _, text = post_form(url, user=ACCOUNT, token=token,
                                password=password + '-again')
    assert status == 403, text


def test_the_token_is_not_logged(deployment):
    log = os.path.join(deployment['partition'], 'var', 'log',
                       'apache-access.log')
    with open(log) as f:
        lines = f.read()
    assert 'GET /password ' in lines
    assert 'token=' not in lines and '?' not in lines


# --- how it runs ----------------------------------------------------------------

def web_masters(partition):
    """The httpd and PHP-FPM master processes of the partition: those whose
    parent is not one of them."""
    configurations = {
        'httpd': os.path.join(partition, 'etc', 'httpd', 'httpd.conf'),
        'php-fpm': os.path.join(partition, 'etc', 'php', 'php-fpm.conf')}
    found = {}
    for process in psutil.process_iter(['cmdline']):
        cmdline = ' '.join(process.info['cmdline'] or [])
        for name, configuration in configurations.items():
            if configuration in cmdline:
                parent = process.parent()
                if parent is None or configuration not in ' '.join(
                        parent.cmdline()):
                    assert name not in found, (found, process)
                    found[name] = process
    return found


def test_web_daemons_run_as_the_partition_user(deployment, slapos):
    masters = web_masters(deployment['partition'])
    assert set(masters) == {'httpd', 'php-fpm'}, masters
    me = slapos.partition_user(deployment['partition'])
    assert me not in ('root', slapos.software_user)
    for master in masters.values():
        # under the partition's supervisor (not a daemon of its own)
        assert 'supervisord' in ' '.join(master.parent().cmdline())
        tree = [master] + master.children(recursive=True)
        assert len(tree) > 1
        assert {p.username() for p in tree} == {me}, master.cmdline()


def test_php_fpm_listens_on_a_private_socket(deployment):
    socket_path = os.path.join(deployment['partition'], 'var', 'run',
                               'php-fpm', 'php-fpm.sock')
    mode = os.stat(socket_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    listening = {c.laddr for c in psutil.net_connections('inet6')
                 if c.status == psutil.CONN_LISTEN}
    ipv6 = deployment['backend']['imap-smtp-ipv6']
    assert {(ipv6, 8080), (ipv6, 8081)} <= {(a.ip, a.port) for a in listening}


def test_a_new_configuration_is_taken_without_a_restart(deployment, slapos):
    """A changed parameter reaches httpd (a new port) and PHP-FPM (upload
    size) through graceful reloads: same master processes."""
    before = {name: p.pid for name, p in
              web_masters(deployment['partition']).items()}
    slapos.request(MAIL_SERVER, 'web-backend', 'default',
                   dict(PARAMETERS, **{'http-port': 8090,
                                       'email-size-limit': 30}))
    try:
        slapos.wait_instance(max_retry=2)
        ipv6 = deployment['backend']['imap-smtp-ipv6']
        deadline = time.time() + 30
        while True:
            try:
                status, headers, _ = request('http://[%s]:8090/' % ipv6)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        assert status == 301
        with open(os.path.join(deployment['partition'], 'etc', 'php',
                               'php.ini')) as f:
            assert re.search(r'(?m)^upload_max_filesize = 30M$', f.read())
        after = {name: p.pid for name, p in
                 web_masters(deployment['partition']).items()}
        assert after == before
        # and the page is still served
        assert request(deployment['backend']['password-url'])[0] == 200
    finally:
        slapos.request(MAIL_SERVER, 'web-backend', 'default', PARAMETERS)
        slapos.wait_instance(max_retry=2)


# --- Snappymail -----------------------------------------------------------------

def test_snappymail_configuration_is_written(deployment):
    """What Snappymail reads: a domain file per hosted domain (and no
    wildcard domain), our keys of application.ini, the password plugin."""
    backend = deployment['backend']
    data = os.path.join(deployment['partition'], 'srv', 'webmail', '_data_',
                        '_default_')
    request(backend['webmail-url'])  # Snappymail's set-up at first request
    with open(os.path.join(data, 'domains', DOMAIN + '.json')) as f:
        domain = json.load(f)
    host = '[%s]' % backend['imap-smtp-ipv6']
    assert (domain['IMAP']['host'], domain['IMAP']['port'],
            domain['IMAP']['type']) == (host, 10993, 1)
    assert (domain['SMTP']['host'], domain['SMTP']['port'],
            domain['SMTP']['useAuth']) == (host, 10465, True)
    assert (domain['Sieve']['port'], domain['Sieve']['type'],
            domain['Sieve']['enabled']) == (
        int(backend['sieve-port']), 2, True)
    assert domain['IMAP']['ssl']['verify_peer'] is False
    # Snappymail's set-up added neither its wildcard default.json (any
    # domain on localhost:143) nor a domain for the machine's name
    assert sorted(os.listdir(os.path.join(data, 'domains'))) == [
        '.mail-bundle-domains', 'disabled', DOMAIN + '.json']
    secret = os.path.join(deployment['partition'], 'etc',
                          'webmail-admin-password')
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    with open(os.path.join(data, 'configs', 'application.ini')) as f:
        ini = f.read()
    assert 'enabled_list = "mailbundle-change-password"' in ini
    assert '[admin_panel]' in ini and 'admin_panel_key' not in ini
    with open(os.path.join(data, 'plugins', 'mailbundle-change-password',
                           'config.json')) as f:
        command = json.load(f)['command']
    assert command[1:4] == ['-m', 'recipes.programs.passwords', 'change-password']
    # its log in the partition's, without secrets
    log = os.path.join(deployment['partition'], 'var', 'log',
                       'snappymail.log')
    if os.path.exists(log):
        with open(log) as f:
            assert backend['webmail-admin-password'] not in f.read()


def test_snappymail_is_served_with_its_admin_page(deployment):
    backend = snappymail(deployment)
    assert backend['webmail-url'] == 'https://[%s]:8081/' % backend[
        'imap-smtp-ipv6']
    assert backend['webmail-admin-url'] == backend['webmail-url'] + '?admin'
    with open(os.path.join(deployment['partition'], 'etc',
                           'webmail-admin-password')) as f:
        assert f.read().strip() == backend['webmail-admin-password']
    status, _, text = request(backend['webmail-url'])
    assert status == 200 and 'snappymail' in text.lower(), text[:500]
    status, _, text = request(backend['webmail-admin-url'])
    assert status == 200, text[:500]
    # the sources and the data are not served
    version = re.search(r'snappymail/v/([^/]+)/', text)
    if version:
        status = request(backend['webmail-url'] + 'snappymail/v/%s/include.php'
                         % version.group(1))[0]
        assert status == 403
    assert request(backend['webmail-url'] + 'include.php')[0] == 403



def test_snappymail_static_files_are_served(deployment):
    backend = snappymail(deployment)
    status, _, text = request(backend['webmail-url'])
    version = re.search(r'snappymail/v/([^/]+)/static/', text).group(1)
    status, headers, _ = request(backend['webmail-url'] + 'snappymail/v/%s/'
                                 'static/js/min/app.min.js' % version)
    assert status == 200, headers


def test_snappymail_data_is_never_served(deployment):
    """Snappymail's data (configuration with the admin hash, its salt,
    sessions, logs) lives outside the document root: no URL reaches it,
    nor the release's own data/ directory or its PHP sources."""
    backend = snappymail(deployment)
    url = backend['webmail-url']
    request(url)  # Snappymail's set-up runs at the first request
    data = os.path.join(deployment['partition'], 'srv', 'webmail')
    for name in ('INSTALLED', 'SALT.php',
                 '_data_/_default_/configs/application.ini'):
        assert os.path.isfile(os.path.join(data, name)), name
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    with open(os.path.join(data, 'SALT.php')) as f:
        salt = f.read().strip()
    version = re.search(r'snappymail/v/([^/]+)/', request(url)[2]).group(1)
    for path in ('data/', 'data/VERSION', 'data/SALT.php',
                 'data/_data_/_default_/configs/application.ini',
                 '_data_/_default_/configs/application.ini', 'SALT.php',
                 'INSTALLED', 'srv/webmail/SALT.php', '../webmail/SALT.php',
                 '%2e%2e/webmail/SALT.php',
                 'snappymail/../../webmail/SALT.php',
                 'include.php', 'snappymail/v/%s/include.php' % version,
                 'snappymail/v/%s/app/domains/default.json' % version,
                 'snappymail/v/%s/app/libraries/RainLoop/Service.php'
                 % version):
        status, _, text = request(url + path)
        assert status in (400, 403, 404), (path, status, text[:200])
        assert salt not in text and '$2y$' not in text, path


# --- Snappymail's JSON API, as its page uses it ------------------------------

def test_snappymail_login_lists_the_inbox_over_imaps(deployment):
    """The login with the page's cookie and token (a client without them
    gets InvalidToken), then the INBOX listed from Dovecot."""
    backend = snappymail(deployment)
    subject = 'webmail %s' % uuid.uuid4()
    send(backend['imap-smtp-ipv6'], backend['smtp-port'],
         'etienne@hotmail.com', [TEST_ACCOUNT[0]], subject)
    imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
               *TEST_ACCOUNT, subject)
    session = SnappymailSession(backend['webmail-url'])
    session.token = 'forged'
    refused = session('Login', Email=TEST_ACCOUNT[0], Password=TEST_ACCOUNT[1])
    assert (refused['Result'], refused['code']) == (False, 101), refused
    assert refused['messageAdditional'] == 'HTTP Token mismatch', refused
    # the address's local part alone: the backend's first domain is added
    session = SnappymailSession(backend['webmail-url'])
    session.login(TEST_ACCOUNT[0].split('@')[0], TEST_ACCOUNT[1])
    listed = session('MessageList', folder='INBOX', offset=0, limit=50,
                     uidNext=0, sort='')
    subjects = [m['subject'] for m in listed['Result']['@Collection']]
    assert subject in subjects, listed
    # the spam filter's folder is Snappymail's spam folder
    folders = session('Folders')['Result']['@Collection']
    assert {f['name']: f['role'] for f in folders}['Junk'] == 'junk'


def test_sieve_filters_through_managesieve(deployment):
    """A filter saved from Snappymail is a ManageSieve script that Dovecot
    runs at delivery."""
    backend = snappymail(deployment)
    session = SnappymailSession(backend['webmail-url'])
    session.login(*TEST_ACCOUNT)
    script = ('require ["fileinto", "mailbox"];\r\n'
              'if header :contains "subject" "invoice" {\r\n'
              '  fileinto :create "Invoices";\r\n}\r\n')
    assert session('FiltersScriptSave', name='invoices', active=1,
                   body=script)['Result'] is True
    assert session('FiltersScriptActivate', name='invoices')['Result']
    scripts = session('Filters')['Result']['Scripts']
    assert scripts['invoices']['active'] is True, scripts
    subject = 'invoice %s' % uuid.uuid4()
    send(backend['imap-smtp-ipv6'], backend['smtp-port'],
         'etienne@hotmail.com', [TEST_ACCOUNT[0]], subject)
    deadline = time.time() + 30
    with imaplib.IMAP4_SSL(backend['imap-smtp-ipv6'],
                           int(backend['imaps-port']),
                           ssl_context=insecure_tls()) as imap:
        imap.login(*TEST_ACCOUNT)
        while True:
            if imap.select('Invoices')[0] == 'OK':
                found = imap.search(None, 'SUBJECT', '"%s"' % subject)[1]
                if found[0]:
                    break
            assert time.time() < deadline, 'no %r in Invoices' % subject
            time.sleep(1)
        imap.select('INBOX')
        assert not imap.search(None, 'SUBJECT', '"%s"' % subject)[1][0]
    session('FiltersScriptActivate', name='')


# --- mail client autoconfiguration -------------------------------------------

def tls_login(protocol, host, port, security, user, password):
    """Log in as a mail client configured with these settings would; only
    TLS (implicit, or STARTTLS) is accepted."""
    assert security in ('SSL', 'STARTTLS'), security
    context = insecure_tls()
    if protocol == 'imap':
        assert security == 'SSL'
        with imaplib.IMAP4_SSL(host, port, ssl_context=context) as imap:
            imap.login(user, password)
    elif protocol == 'pop3':
        assert security == 'SSL'
        pop = poplib.POP3_SSL(host, port, context=context, timeout=30)
        try:
            pop.user(user)
            pop.pass_(password)
        finally:
            pop.quit()
    else:
        if security == 'SSL':
            smtp = smtplib.SMTP_SSL(host, port, context=context, timeout=30)
        else:
            smtp = smtplib.SMTP(host, port, timeout=30)
        with smtp:
            if security == 'STARTTLS':
                smtp.starttls(context=context)
            smtp.login(user, password)


def thunderbird_servers(text, address):
    """What Thunderbird reads in config-v1.1.xml: ``(domains, [(type, host,
    port, socketType, username)])``."""
    provider = ET.fromstring(text).find('emailProvider')
    servers = [(s.get('type'), s.findtext('hostname'),
                int(s.findtext('port')), s.findtext('socketType'),
                s.findtext('username').replace('%EMAILADDRESS%', address))
               for s in provider
               if s.tag in ('incomingServer', 'outgoingServer')]
    return [d.text for d in provider.findall('domain')], servers


def test_thunderbird_autoconfig_lists_the_tls_endpoints(deployment):
    backend = deployment['backend']
    host = backend['imap-smtp-ipv6']
    base = 'https://[%s]:8081/' % host
    assert backend['autoconfig-url'] == base + 'mail/config-v1.1.xml'
    address = TEST_ACCOUNT[0]
    for path in ('mail/config-v1.1.xml',
                 '.well-known/autoconfig/mail/config-v1.1.xml'):
        status, headers, text = request(
            base + path + '?emailaddress=' + urllib.parse.quote(address))
        assert status == 200, (path, status, text)
        assert headers['Content-Type'].startswith('application/xml')
        domains, servers = thunderbird_servers(text, address)
        assert domains == [DOMAIN]
        assert [(kind, port, socket_type) for kind, _, port, socket_type, _
                in servers] == [
            ('imap', int(backend['imaps-port']), 'SSL'),
            ('pop3', int(backend['pop3s-port']), 'SSL'),
            ('smtp', int(backend['smtps-port']), 'SSL'),
            ('smtp', int(backend['submission-port']), 'STARTTLS')]
        for kind, server_host, port, socket_type, user in servers:
            assert (server_host, user) == (host, address)
    for kind, server_host, port, socket_type, user in servers:
        tls_login(kind, server_host, port, socket_type, user, TEST_ACCOUNT[1])
    # another domain is not ours
    assert request(backend['autoconfig-url']
                   + '?emailaddress=someone%40example.org')[0] == 404


SCHEMAS = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/'
AUTODISCOVER_REQUEST = '''<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="%(schemas)srequestschema/2006">
  <Request>
    <EMailAddress>%%s</EMailAddress>
    <AcceptableResponseSchema>%(schemas)sresponseschema/2006a\
</AcceptableResponseSchema>
  </Request>
</Autodiscover>
''' % {'schemas': SCHEMAS}
OUTLOOK = '{%sresponseschema/2006a}' % SCHEMAS


def outlook_protocols(text):
    """What Outlook reads in the autodiscover answer: ``[(type, server,
    port, security, login)]``, security SSL (implicit TLS) or STARTTLS."""
    protocols = []
    for entry in ET.fromstring(text).iter(OUTLOOK + 'Protocol'):
        value = lambda tag: entry.findtext(OUTLOOK + tag)
        encryption = value('Encryption') or (
            'SSL' if value('SSL') == 'on' else 'None')
        protocols.append((value('Type'), value('Server'), int(value('Port')),
                          {'SSL': 'SSL', 'TLS': 'STARTTLS'}.get(
                              encryption, encryption), value('LoginName')))
    return protocols


def test_outlook_autodiscover_answers_post_and_get(deployment):
    backend = deployment['backend']
    host = backend['imap-smtp-ipv6']
    address = TEST_ACCOUNT[0]
    # Outlook capitalises the path
    for path in ('autodiscover/autodiscover.xml',
                 'Autodiscover/Autodiscover.xml'):
        status, headers, text = request(
            'https://[%s]:8081/%s' % (host, path), 'POST',
            AUTODISCOVER_REQUEST % address,
            {'Content-Type': 'text/xml; charset=utf-8'})
        assert status == 200, (path, status, text)
        protocols = outlook_protocols(text)
        assert [(kind, port, security) for kind, _, port, security, _
                in protocols] == [
            ('IMAP', int(backend['imaps-port']), 'SSL'),
            ('POP3', int(backend['pop3s-port']), 'SSL'),
            ('SMTP', int(backend['smtps-port']), 'SSL'),
            ('SMTP', int(backend['submission-port']), 'STARTTLS')]
        assert {(server, login) for _, server, _, _, login in protocols} == {
            (host, address)}
    for kind, server, port, security, login in protocols:
        tls_login(kind.lower(), server, port, security, login,
                  TEST_ACCOUNT[1])
    # GET gives the same settings, without a login name
    status, _, text = request(
        'https://[%s]:8081/autodiscover/autodiscover.xml' % host)
    assert status == 200, text
    assert [p[:4] for p in outlook_protocols(text)] == [
        p[:4] for p in protocols]
    # another domain is not ours
    status, _, _ = request(
        'https://[%s]:8081/autodiscover/autodiscover.xml' % host, 'POST',
        AUTODISCOVER_REQUEST % 'someone@example.org',
        {'Content-Type': 'text/xml'})
    assert status == 404


def test_dns_records_lead_clients_to_the_settings(deployment):
    backend = deployment['backend']
    host = backend['imap-smtp-ipv6']
    records = backend['dns-records']
    assert 'dns-entries' not in backend
    published = {(r['name'], r['type']): r['value'] for r in records}
    target = 'mail.%s.' % DOMAIN
    assert published[(target[:-1], 'AAAA')] == host
    for name in ('autoconfig', 'autodiscover'):
        assert published[('%s.%s' % (name, DOMAIN), 'AAAA')] == host
    for service, port in (('_imaps._tcp', 'imaps-port'),
                          ('_submission._tcp', 'submission-port'),
                          ('_pop3s._tcp', 'pop3s-port')):
        priority, weight, srv_port, srv_target = published[
            ('%s.%s' % (service, DOMAIN), 'SRV')].split()
        assert (int(srv_port), srv_target) == (int(backend[port]), target)
    assert published[('_autodiscover._tcp.' + DOMAIN, 'SRV')] == (
        '0 1 8081 autodiscover.%s.' % DOMAIN)


# --- the monitor (what the SlapOS panel links to) -------------------------------

def test_the_monitor_answers_with_its_password_only(deployment, slapos):
    backend = deployment['backend']
    base = backend['monitor-base-url']
    assert base == 'https://[%s]:8196' % backend['imap-smtp-ipv6']
    user, password = monitor.credentials(backend)
    assert backend['monitor-setup-url'] == (
        'https://monitor.app.officejs.com/#page=ojsm_landing&url=%s/public/'
        'feeds&username=%s&password=%s' % (base, user, password))
    assert user == 'admin' and len(password) >= 32
    for url in (base, base + '/private/log/', base + '/share/private/'):
        assert monitor.get(url)[0] == 401, url
        assert monitor.get(url, (user, password + 'x'))[0] == 401, url
    assert monitor.get(base, (user, password))[0] == 200
    # the web app lists the folders over WebDAV, read only
    status, _, text = monitor.get(base + '/share/private/', (user, password),
                                  'PROPFIND', {'Depth': '1'})
    assert status == 207 and 'monitor.global.json' in text, (status, text)
    assert monitor.get(base + '/share/private/log/x', (user, password),
                       'PUT')[0] == 403
    # the web app reads it from its own origin, no other site does
    app = 'https://monitor.app.officejs.com'
    _, headers, _ = monitor.get(base + '/public/feeds',
                                headers={'Origin': app})
    assert headers.get('Access-Control-Allow-Origin') == app
    assert headers.get('Access-Control-Allow-Credentials') == 'true'
    _, headers, _ = monitor.get(base + '/public/feeds',
                                headers={'Origin': 'https://evil.example'})
    assert 'Access-Control-Allow-Origin' not in headers
    # the password is published, never recorded
    assert_no_secret_in_records(slapos, [password], expected=base)


def test_the_monitor_runs_as_the_partition_user(deployment, slapos):
    partition = deployment['partition']
    configuration = os.path.join(partition, 'etc', 'monitor')
    users = {}
    for process in psutil.process_iter(['cmdline', 'username']):
        cmdline = ' '.join(process.info['cmdline'] or [])
        if configuration + os.sep in cmdline:
            name = 'httpd' if 'httpd.conf' in cmdline else 'monitor'
            users.setdefault(name, set()).add(process.info['username'])
    assert users == {name: {slapos.partition_user(partition)}
                     for name in ('httpd', 'monitor')}, users


def test_the_monitor_lists_the_partition_logs(deployment):
    backend = deployment['backend']
    base, auth = backend['monitor-base-url'], monitor.credentials(backend)
    status, _, listing = monitor.get(base + '/private/log/', auth)
    assert status == 200, listing[:300]
    for name in ('postfix.log', 'dovecot.log', 'apache-error.log',
                 'monitor/'):
        assert 'href="%s"' % name in listing, (name, listing)
    status, _, text = monitor.get(base + '/private/log/postfix.log', auth)
    assert status == 200 and 'postfix' in text
    # the promises' own logs, as slapgrid writes them
    status, _, listing = monitor.get(base + '/private/log/monitor/promise/',
                                     auth)
    assert status == 200 and 'smtp-port-listening.log' in listing, listing


def test_the_monitor_shows_the_promises_and_their_history(deployment,
                                                         slapos):
    """The feed the web app reads (public/feeds lists it) gives each
    promise's state; a failing promise shows as ERROR with its message,
    in the feed, in its history, in the monitor's global state, and OK
    again once fixed."""
    backend, partition = deployment['backend'], deployment['partition']
    base = backend['monitor-base-url']
    assert monitor.feeds(base) == [base + '/public/feed']
    promise = 'spam-filter-answering'
    items = monitor.feed_shows(base, promise, 'OK')
    for name in ('smtp-port-listening', 'imaps-port-listening',
                 'password-page-answering', 'monitor-httpd-listening-on-tcp'):
        assert items[name][0] == 'OK', (name, items)
    slapos.service(partition, 'spam-filter', 'stop')
    try:
        for _ in range(3):   # an alarm: three failures in a row
            result = slapos.run_promise(partition, promise, anomaly=True)
        assert result['failed'], result
        state, message = monitor.feed_shows(base, promise, 'ERROR')[promise]
        assert 'spam filter does not answer' in message
        status, _, text = monitor.get(base + '/public/monitor.global.json')
        assert json.loads(text)['status'] == 'ERROR'
        status, _, text = monitor.get(
            '%s/public/promise/%s.status.json' % (base, promise))
        assert json.loads(text)['result']['failed'] is True
    finally:
        slapos.service(partition, 'spam-filter', 'start')
    wait_for(lambda: not slapos.run_promise(partition, promise,
                                            anomaly=True)['failed'],
             'the spam filter answering again', timeout=30)
    monitor.feed_shows(base, promise, 'OK')
    states = [entry['status'] for entry in monitor.history(base, promise)]
    assert states[-2:] == ['ERROR', 'OK'] and 'OK' in states[:-2], states
