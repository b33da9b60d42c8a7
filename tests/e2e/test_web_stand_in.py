"""The Snappymail path of the software release and the instance, exercised
without Snappymail: a stand-in archive (a few PHP files laid out like the
release) goes into the download cache under the release archive's name, so
that the software release unpacks it and the instance serves it through
PHP-FPM. It checks what the real archive cannot be checked for here: the
unpacking, the document root (index.php, include.php, the data directory
outside it), which files are served, the published webmail parameters, and
that PHP reaches IMAPS with the domain file's settings.

Skipped when the real archive is in the cache (tests/e2e/test_web.py then
exercises Snappymail itself). The stand-in is removed at the end and the
software release built again without it."""
import io
import json
import os
import tarfile
import urllib.parse

import pytest

from recipes.software.optional_archive import cache_name
from tests.deployment import MAIL_SERVER, http_request as request

DOMAIN = 'standin.example.com'
VERSION = '2.38.2'
MARKER = 'STAND-IN'
COMPONENT = os.path.join(os.path.dirname(MAIL_SERVER), '..', 'component',
                         'snappymail', 'buildout.cfg')

# What Snappymail's include.php does first: read the document root's
# include.php (the data directory). Then, instead of the webmail, tell what
# it sees, and open the IMAP connection a login would open.
INCLUDE = r'''<?php
if (is_file(APP_INDEX_ROOT_PATH . 'include.php')) {
	include_once APP_INDEX_ROOT_PATH . 'include.php';
}
$seen = ['version' => APP_VERSION, 'data' => APP_DATA_FOLDER_PATH];
if (isset($_GET['domain'])) {
	$domain = json_decode(file_get_contents(APP_DATA_FOLDER_PATH
		. '_data_/_default_/domains/' . basename($_GET['domain']) . '.json'), true);
	$imap = $domain['IMAP'];
	$stream = stream_socket_client('ssl://' . $imap['host'] . ':' . $imap['port'],
		$errno, $error, 10, STREAM_CLIENT_CONNECT,
		stream_context_create(['ssl' => $imap['ssl']]));
	$seen['imap-greeting'] = $stream ? fgets($stream) : "$errno $error";
}
header('Content-Type: application/json');
echo json_encode($seen);
'''


def url_of_component():
    with open(COMPONENT) as f:
        for line in f:
            if line.startswith('url = '):
                return line.split('=', 1)[1].strip()


def stand_in(path):
    files = {
        MARKER: b'a stand-in left by tests/e2e/test_web_stand_in.py\n',
        'index.php': b'<?php echo "the release index.php is not used";\n',
        'snappymail/v/%s/include.php' % VERSION: INCLUDE.encode(),
        'snappymail/v/%s/static/css/app.css' % VERSION: b'body{}\n',
        'snappymail/v/%s/app/libraries/secret.php' % VERSION: b'<?php\n',
    }
    with tarfile.open(path, 'w:gz') as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def is_stand_in(path):
    """A stand-in left by an interrupted run (not the real archive)."""
    try:
        with tarfile.open(path) as tar:
            return MARKER in tar.getnames()
    except tarfile.TarError:
        return False


@pytest.fixture(scope='module')
def deployment(slapos):
    cached = os.path.join(slapos.root, 'download-cache',
                          cache_name(url_of_component()))
    if os.path.exists(cached) and not is_stand_in(cached):
        pytest.skip('the Snappymail archive is in the download cache: '
                    'tests/e2e/test_web.py exercises it')
    stand_in(cached)
    try:
        slapos.supply(MAIL_SERVER)
        slapos.wait_software()
        slapos.request(MAIL_SERVER, 'stand-in', 'default',
                       {'mail-domains': [DOMAIN], 'test-account': True})
        slapos.wait_instance(max_retry=2)
        backend = slapos.connection_parameters(MAIL_SERVER, 'stand-in')
        yield {'backend': backend,
               'partition': slapos.partition_of_address(
                   backend['imap-smtp-ipv6'])}
    finally:
        os.unlink(cached)
        slapos.wait_software()


def test_the_webmail_is_published(deployment):
    backend = deployment['backend']
    url = 'https://[%s]:8081/' % backend['imap-smtp-ipv6']
    assert backend['webmail-url'] == url
    assert backend['webmail-admin-url'] == url + '?admin'
    with open(os.path.join(deployment['partition'], 'etc',
                           'webmail-admin-password')) as f:
        assert backend['webmail-admin-password'] == f.read().strip()
    assert len(backend['webmail-admin-password']) >= 20


def test_php_fpm_runs_it_with_the_data_outside_the_document_root(deployment):
    backend = deployment['backend']
    status, _, text = request(backend['webmail-url'] + '?domain=' + DOMAIN)
    assert status == 200, text
    seen = json.loads(text)
    assert seen['version'] == VERSION
    assert seen['data'] == os.path.join(deployment['partition'], 'srv',
                                        'webmail', '')
    # the domain file's host, port and TLS settings reach Dovecot
    assert seen['imap-greeting'].startswith('* OK'), seen


def test_only_the_static_files_of_the_release_are_served(deployment):
    url = deployment['backend']['webmail-url']
    base = url + 'snappymail/v/%s/' % VERSION
    assert request(base + 'static/css/app.css')[0] == 200
    for path in ('app/libraries/secret.php', 'include.php'):
        assert request(base + path)[0] == 403, path
    assert request(url + 'include.php')[0] == 403


def test_the_password_page_is_still_there(deployment):
    backend = deployment['backend']
    assert request(backend['password-url'])[0] == 200
    parts = urllib.parse.urlsplit(backend['password-url'])
    assert parts.path == '/password'
