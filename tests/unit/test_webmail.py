"""Snappymail on a backend (recipes.decisions.webmail, recipes.stores.webmail
and the recipe): what it is given to read, without Snappymail."""
import json
import os
import shutil
import stat
import subprocess

import pytest

from recipes.decisions import webmail as decisions
from recipes.instance.webmail import Recipe
from recipes.stores import webmail as store

PHP = shutil.which('php8.2') or shutil.which('php')


def test_domain_settings_point_at_the_backend():
    domain = decisions.domain_settings('fd00::2', '10993', 10465, 4190)
    assert domain['IMAP']['host'] == '[fd00::2]'
    assert (domain['IMAP']['port'], domain['IMAP']['type']) == (10993, 1)
    assert (domain['SMTP']['port'], domain['SMTP']['type']) == (10465, 1)
    assert domain['SMTP']['useAuth'] is True
    assert (domain['Sieve']['port'], domain['Sieve']['type']) == (4190, 2)
    assert domain['Sieve']['enabled'] is True
    # what Dovecot offers (auth_mechanisms = plain login)
    assert domain['IMAP']['sasl'] == ['PLAIN', 'LOGIN']
    # bogofilter's X-Bogosity is the spam verdict shown
    assert domain['IMAP']['spam_headers'] == 'bogofilter'
    assert domain['whiteList'] == ''
    # the login is the whole address (Dovecot's user names)
    assert domain['IMAP']['shortLogin'] is False
    # self-signed certificate on the partition's own address
    for server in ('IMAP', 'SMTP', 'Sieve'):
        assert domain[server]['ssl']['verify_peer'] is False
        assert domain[server]['ssl']['allow_self_signed'] is True
    assert decisions.domain_settings('mail.example.com', 1, 2, 3)['IMAP'][
        'host'] == 'mail.example.com'


def test_merge_ini_sets_our_keys_and_keeps_the_rest():
    text = ('; Snappymail\n[security]\nadmin_login = "x"\nother = On\n\n'
            '[login]\ndefault_domain = "a"\ndefault_domain = "b"\n')
    merged = decisions.merge_ini(text, {
        'security': {'admin_login': 'admin', 'admin_password': '$2y$10$a.b'},
        'login': {'default_domain': 'example.com'},
        'plugins': {'enable': True, 'enabled_list': 'p'}})
    assert merged == (
        '; Snappymail\n[security]\nadmin_login = "admin"\nother = On\n'
        'admin_password = "$2y$10$a.b"\n\n'
        '[login]\ndefault_domain = "example.com"\n\n'
        '[plugins]\nenable = On\nenabled_list = "p"\n')
    assert decisions.merge_ini(merged, {'login': {
        'default_domain': 'example.com'}}) == merged
    with pytest.raises(ValueError):
        decisions.ini_value('a"b')


@pytest.mark.skipif(not PHP, reason='PHP is not installed')
def test_php_reads_the_settings_and_checks_the_admin_hash(tmp_path):
    secret = str(tmp_path / 'admin-password')
    password, password_hash = store.admin_password(secret, PHP)
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert store.admin_password(secret, PHP) == (password, password_hash)
    path = store.write_application_ini(
        str(tmp_path), decisions.settings(['example.com'], password_hash,
                                        '/srv/log'))
    script = ('$c = parse_ini_file($argv[1], true);'
              'echo json_encode([$c, password_verify($argv[2],'
              ' $c["security"]["admin_password"])]);')
    result = subprocess.run([PHP, '-n', '-r', script, path, password],
                            capture_output=True, text=True, check=True)
    config, verified = json.loads(result.stdout)
    assert verified is True
    assert config['login']['default_domain'] == 'example.com'
    assert config['plugins'] == {'enable': '1',
                                 'enabled_list': decisions.PLUGIN}
    assert config['security']['admin_login'] == 'admin'
    assert config['admin_panel']['key'] == 'admin'
    assert config['logs']['path'] == '/srv/log/'
    assert config['logs']['hide_passwords'] == '1'


def test_domains_no_longer_hosted_are_removed(tmp_path):
    data = str(tmp_path)
    store.write_domains(data, ['a.com', 'b.com'], 'fd00::2', 1, 2, 3)
    directory = os.path.join(data, '_data_', '_default_', 'domains')
    # Snappymail's own files are not ours
    open(os.path.join(directory, 'gmail.com.json'), 'w').close()
    store.write_domains(data, ['b.com'], 'fd00::2', 1, 2, 3)
    assert sorted(f for f in os.listdir(directory) if f.endswith('.json')) == [
        'b.com.json', 'gmail.com.json']


def test_snappymail_set_up_adds_no_wildcard_domain(tmp_path):
    """Snappymail's setup.php copies its default.json (a wildcard domain on
    localhost:143) unless domains/disabled exists; the admin's list of
    disabled domains is kept."""
    data = str(tmp_path)
    store.write_domains(data, ['a.com'], 'fd00::2', 1, 2, 3)
    disabled = tmp_path / '_data_' / '_default_' / 'domains' / 'disabled'
    assert disabled.read_text() == ''
    disabled.write_text('gmail.com')
    store.write_domains(data, ['a.com'], 'fd00::2', 1, 2, 3)
    assert disabled.read_text() == 'gmail.com'


def fake_release(path, version='2.38.2'):
    include = path / 'snappymail' / 'v' / version / 'include.php'
    include.parent.mkdir(parents=True)
    include.write_text('<?php\n')
    return str(path)


def test_document_root_with_and_without_snappymail(tmp_path):
    root = str(tmp_path / 'www')
    release = fake_release(tmp_path / 'release')
    assert store.release_version(release) == '2.38.2'
    store.write_document_root(root, release, '/data', '2.38.2')
    assert sorted(os.listdir(root)) == ['include.php', 'index.php',
                                        'snappymail']
    assert os.readlink(os.path.join(root, 'snappymail')) == os.path.join(
        release, 'snappymail')
    with open(os.path.join(root, 'include.php')) as f:
        assert "define('APP_DATA_FOLDER_PATH', '/data/');" in f.read()
    if PHP:
        for name in ('include.php', 'index.php'):
            subprocess.run([PHP, '-n', '-l', os.path.join(root, name)],
                           check=True, capture_output=True)
    # the archive went away: a notice instead
    assert store.release_version(str(tmp_path / 'nothing')) is None
    store.write_document_root(root, release, '/data', None)
    assert os.listdir(root) == ['index.html']


def test_plugin_is_installed_with_its_command(tmp_path):
    source = tmp_path / 'plugin'
    source.mkdir()
    (source / 'index.php').write_text('<?php\n')
    store.install_plugin(str(tmp_path), str(source),
                           ['python', '-m', 'recipes.programs.passwords',
                            'change-password', '/db'])
    target = tmp_path / '_data_' / '_default_' / 'plugins' / decisions.PLUGIN
    assert (target / 'index.php').exists()
    assert json.loads((target / 'config.json').read_text())['command'][-1] \
        == '/db'


PLUGIN_SOURCE = os.path.join(os.path.dirname(__file__), '..', '..',
                             'instance-templates', 'mail-server', 'web',
                             'snappymail-plugin', 'index.php')


@pytest.mark.skipif(not PHP, reason='PHP is not installed')
def test_the_plugin_is_valid_php():
    subprocess.run([PHP, '-n', '-l', PLUGIN_SOURCE], check=True,
                   capture_output=True)


def recipe_options(tmp_path, release):
    return {
        'release': release, 'document-root': str(tmp_path / 'www'),
        'data-directory': str(tmp_path / 'data'), 'domains': 'example.com',
        'host': 'fd00::2', 'imaps-port': '10993', 'smtps-port': '10465',
        'sieve-port': '4190', 'php': PHP,
        'log-directory': str(tmp_path / 'log'),
        'admin-password-file': str(tmp_path / 'admin-password'),
        'plugin': os.path.dirname(PLUGIN_SOURCE),
        'change-password-command': 'python -m recipes.programs.passwords '
                                   'change-password /db',
        'url': 'https://[fd00::2]:8081/',
        'password-url': 'https://[fd00::2]:8081/password'}


@pytest.mark.skipif(not PHP, reason='PHP is not installed')
def test_recipe_publishes_the_webmail_only_with_snappymail(tmp_path):
    options = recipe_options(tmp_path, fake_release(tmp_path / 'release'))
    Recipe(None, 'webmail', options).install()
    assert options['-publish'].split() == [
        'password-url', 'webmail-url', 'webmail-admin-url']
    # the admin password is published from its file, never an option
    assert options['-files'] == 'webmail-admin-password %s' % options[
        'admin-password-file']
    with open(options['admin-password-file']) as f:
        assert f.read().strip() not in json.dumps(options)
    assert options['webmail-admin-url'] == 'https://[fd00::2]:8081/?admin'
    assert (tmp_path / 'www' / 'index.php').exists()
    # without the archive: the password page alone, no webmail published
    options = recipe_options(tmp_path, str(tmp_path / 'unavailable'))
    Recipe(None, 'webmail', options).install()
    assert options['-publish'] == 'password-url'
    assert 'webmail-url' not in options
    assert options['promise-url'] == 'https://[fd00::2]:8081/password'
    assert os.listdir(tmp_path / 'www') == ['index.html']
