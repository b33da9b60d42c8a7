"""The web part of the mail-server profile, rendered by slapgrid with
non-default parameters: httpd and PHP-FPM accept their configurations
(`httpd -t -f`, `php-fpm -t -y`, as the partition user), which carry the
parameters, and Snappymail's configuration is what PHP reads."""
import configparser
import json
import os
import re

import pytest

from tests.deployment import MAIL_SERVER

DOMAINS = ['webrender1.example.com', 'webrender2.example.org']


@pytest.fixture(scope='module')
def rendered(slapos):
    slapos.supply(MAIL_SERVER)
    slapos.wait_software()
    slapos.request(MAIL_SERVER, 'web-render', 'default', {
        'mail-domains': DOMAINS, 'http-port': 9080, 'https-port': 9443,
        'imaps-port': 11993, 'smtps-port': 11465, 'email-size-limit': 20,
        # a backend alone (with a relay, it waits for the relay's answer)
        'inbound-relay': {'enable': False}})
    slapos.wait_instance(max_retry=2)
    backend = slapos.connection_parameters(MAIL_SERVER, 'web-render')
    partition = slapos.partition_of_address(backend['imap-smtp-ipv6'])
    components = configparser.ConfigParser(interpolation=None)
    with open(os.path.join(partition, 'instance-default.cfg')) as f:
        # the first profile it extends: the software release's components
        extends = re.search(r'(?m)^extends =\s*(\S+)', f.read()).group(1)
    components.read(extends)
    return {'slapos': slapos, 'partition': partition,
            'ipv6': backend['imap-smtp-ipv6'],
            'backend': backend, 'httpd': components['httpd'],
            'php-fpm': components['php-fpm']}


def run(rendered, *command, env=None):
    """A command as the partition's user, who runs its daemons."""
    result = rendered['slapos'].run(rendered['partition'], command,
                                    capture_output=True, text=True, env=env)
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result.stdout + result.stderr


def path(rendered, *parts):
    return os.path.join(rendered['partition'], *parts)


def test_httpd_accepts_its_configuration(rendered):
    conf = path(rendered, 'etc', 'httpd', 'httpd.conf')
    assert 'Syntax OK' in run(rendered, rendered['httpd']['httpd'], '-t', '-f', conf)
    with open(conf) as f:
        text = f.read()
    ipv6 = rendered['ipv6']
    # HTTPS behind the connection limiter (on 9443), 20000 ports above
    assert re.findall(r'(?m)^Listen (.*)$', text) == [
        '[%s]:29443 https' % ipv6, '[%s]:9080 http' % ipv6]
    assert 'RemoteIPProxyProtocol On' in text
    assert not re.search(r'(?m)^\s*(User|Group) ', text)
    # modules come from the component, never the compiled-in ones
    compiled_in = rendered['httpd']['compiled-in-modules'].split()
    loaded = re.findall(r'(?m)^LoadModule (\S+) (\S+)$', text)
    assert {name for name, _ in loaded} >= {
        'ssl_module', 'proxy_fcgi_module', 'cgid_module', 'alias_module'}
    for name, module in loaded:
        assert name not in compiled_in
        assert module.startswith(rendered['httpd']['modules-dir'] + '/')
        assert os.path.exists(module)
    # everything the server writes is in the partition
    for directive in ('PidFile', 'DefaultRuntimeDir', 'ErrorLog', 'ScriptSock'):
        value = re.search(r'(?m)^%s "([^"]+)"' % directive, text).group(1)
        assert value.startswith(rendered['partition'] + '/'), directive
    assert 'https://[%s]:9443/' % ipv6 in text


def test_php_fpm_accepts_its_configuration(rendered):
    php = rendered['php-fpm']
    conf = path(rendered, 'etc', 'php', 'php-fpm.conf')
    ini = path(rendered, 'etc', 'php', 'php.ini')
    env = dict(os.environ, PHP_INI_SCAN_DIR=php['ini-dir'])
    output = run(rendered, php['php-fpm'], '-t', '-y', conf, '-c', ini, env=env)
    assert 'test is successful' in output
    with open(conf) as f:
        text = f.read()
    assert not re.search(r'(?m)^\s*(user|group)\s*=', text)
    assert re.search(r'(?m)^listen.mode = 0600$', text)
    assert re.search(r'(?m)^systemd_interval = 0$', text)
    # our php.ini, with the extensions of Debian's conf.d
    output = run(rendered, php['php'], '-c', ini, '-r',
                 'echo ini_get("upload_max_filesize"), " ",'
                 ' ini_get("session.gc_probability"), " ",'
                 ' implode(",", get_loaded_extensions());', env=env)
    size, gc, extensions = output.split(' ', 2)
    assert (size, gc) == ('20M', '1')
    assert set(php['extensions'].split()) <= set(
        e.lower() for e in extensions.split(','))


def test_snappymail_gets_every_domain(rendered):
    data = path(rendered, 'srv', 'webmail', '_data_', '_default_')
    for domain in DOMAINS:
        with open(os.path.join(data, 'domains', domain + '.json')) as f:
            settings = json.load(f)
        assert settings['IMAP']['host'] == '[%s]' % rendered['ipv6']
        assert settings['IMAP']['port'] == 11993
        assert settings['SMTP']['port'] == 11465
        assert settings['Sieve']['port'] == 4190
    ini = os.path.join(data, 'configs', 'application.ini')
    output = run(rendered, rendered['php-fpm']['php'], '-n', '-r',
                 'echo json_encode(parse_ini_file($argv[1], true));', ini)
    config = json.loads(output)
    assert config['login']['default_domain'] == DOMAINS[0]
    assert config['security']['admin_password'].startswith('$2y$')


def test_password_url_is_published(rendered):
    assert rendered['backend']['password-url'] == (
        'https://[%s]:9443/password' % rendered['ipv6'])


def test_autoconfig_is_served_by_its_program(rendered):
    """Thunderbird's and Outlook's paths go to the autoconfiguration
    program, which runs recipes.programs.autoconfig with the rendered
    settings."""
    with open(path(rendered, 'etc', 'httpd', 'httpd.conf')) as f:
        text = f.read()
    program = path(rendered, 'srv', 'cgi-bin', 'autoconfig')
    for url in ('/mail/config-v1.1.xml',
                '/.well-known/autoconfig/mail/config-v1.1.xml'):
        assert 'ScriptAlias %s "%s"' % (url, program) in text
    assert ('ScriptAliasMatch "(?i)^/autodiscover/autodiscover\\.xml$" "%s"'
            % program) in text
    with open(program) as f:
        wrapper = f.read()
    settings_file = path(rendered, 'etc', 'autoconfig.json')
    assert 'MAIL_AUTOCONFIG_SETTINGS=%s' % settings_file in wrapper
    assert wrapper.rstrip().endswith("-m recipes.programs.autoconfig")
    with open(settings_file) as f:
        settings = json.load(f)
    assert settings['domains'] == DOMAINS
    assert settings['host'] == rendered['ipv6']
    assert settings['ports'] == {
        'imaps-port': 11993, 'pop3s-port': 10995, 'smtps-port': 11465,
        'submission-port': 10587, 'https-port': 9443}
    assert rendered['backend']['autoconfig-url'] == (
        'https://[%s]:9443/mail/config-v1.1.xml' % rendered['ipv6'])
    records = rendered['backend']['dns-records']
    assert {(r['name'], r['type']) for r in records} >= {
        ('_imaps._tcp.' + DOMAINS[1], 'SRV'),
        ('autoconfig.' + DOMAINS[0], 'AAAA')}
