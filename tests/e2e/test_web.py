"""The web part of a mail backend in the embedded SlapOS: the password page
over HTTPS (set a password with the one-time link, then log in over IMAPS),
plain HTTP redirecting to it, the daemons' privileges, graceful reloads,
and Snappymail when its archive is in the download cache."""
import hashlib
import json
import os
import pwd
import re
import socket
import stat
import time
import urllib.parse
import uuid

import psutil
import pytest

from tests.deployment import (MAIL_SERVER, http_request as request,
                              imaps_find, insecure_tls, post_form, send)

DOMAIN = 'web.example.com'
ACCOUNT = 'alice@' + DOMAIN
NO_SNAPPYMAIL = ('no Snappymail archive in the download cache '
                 '(set SNAPPYMAIL_ARCHIVE)')
PARAMETERS = {'mail-domains': [DOMAIN], 'test-account': True}


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
    if 'setup-url' not in account:
        pytest.skip('the account shared instance got no setup-url (%s): the '
                    'mail-server profile does not order accounts as shared '
                    'instances yet' % (account.get('error') or account))
    return account['setup-url']


def snappymail(deployment):
    if 'webmail-url' not in deployment['backend']:
        pytest.skip(NO_SNAPPYMAIL)
    return deployment['backend']


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


def test_web_daemons_run_as_the_partition_user(deployment):
    masters = web_masters(deployment['partition'])
    assert set(masters) == {'httpd', 'php-fpm'}, masters
    me = pwd.getpwuid(os.getuid()).pw_name
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
    """Written with or without the archive (what Snappymail would read)."""
    backend = deployment['backend']
    data = os.path.join(deployment['partition'], 'srv', 'webmail', '_data_',
                        '_default_')
    with open(os.path.join(data, 'domains', DOMAIN + '.json')) as f:
        domain = json.load(f)
    host = '[%s]' % backend['imap-smtp-ipv6']
    assert (domain['IMAP']['host'], domain['IMAP']['port'],
            domain['IMAP']['type']) == (host, 10993, 1)
    assert (domain['SMTP']['host'], domain['SMTP']['port'],
            domain['SMTP']['useAuth']) == (host, 10465, True)
    assert domain['IMAP']['ssl']['verify_peer'] is False
    secret = os.path.join(deployment['partition'], 'etc',
                          'webmail-admin-password')
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    with open(os.path.join(data, 'configs', 'application.ini')) as f:
        ini = f.read()
    assert 'enabled_list = "mailbundle-change-password"' in ini
    with open(os.path.join(data, 'plugins', 'mailbundle-change-password',
                           'config.json')) as f:
        command = json.load(f)['command']
    assert command[1:4] == ['-m', 'recipes.programs.passwords', 'change-password']


def test_without_snappymail_no_webmail_is_published(deployment):
    backend = deployment['backend']
    if 'webmail-url' in backend:
        pytest.skip('Snappymail is installed')
    assert not {'webmail-admin-url', 'webmail-admin-password'} & set(backend)
    status, _, text = request('https://[%s]:8081/' % backend['imap-smtp-ipv6'])
    assert status == 200 and 'not installed' in text


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


def test_snappymail_login_reads_a_message(deployment):
    """Snappymail's JSON API, as its browser client uses it: log in as the
    test account, list the INBOX."""
    backend = snappymail(deployment)
    url = backend['webmail-url']
    subject = 'webmail %s' % uuid.uuid4()
    send(backend['imap-smtp-ipv6'], backend['smtp-port'],
         'etienne@hotmail.com', ['testmail@' + DOMAIN], subject)
    imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
               'testmail@' + DOMAIN, 'password123', subject)
    status, headers, _ = request(url)
    cookies = '; '.join(c.split(';', 1)[0] for c in re.split(
        r',\s*(?=[^;,]+=)', headers.get('Set-Cookie', '')) if c)
    token = re.search(r'smtoken=([^;]+)', cookies)
    common = {'Cookie': cookies, 'Content-Type': 'application/json',
              'X-SM-Token': token.group(1) if token else ''}
    status, headers, text = request(url + '?/Json/&q[]=/0/', 'POST', json.dumps(
        {'Action': 'Login', 'Email': 'testmail@' + DOMAIN,
         'Password': 'password123'}), common)
    assert status == 200 and json.loads(text).get('Result'), text[:500]
    common['Cookie'] = '; '.join([cookies] + [
        c.split(';', 1)[0] for c in re.split(
            r',\s*(?=[^;,]+=)', headers.get('Set-Cookie', '')) if c])
    status, _, text = request(url + '?/Json/&q[]=/0/', 'POST', json.dumps(
        {'Action': 'MessageList', 'folder': 'INBOX', 'offset': 0,
         'limit': 50, 'uidNext': 0, 'sort': ''}), common)
    assert status == 200 and subject in text, text[:500]
