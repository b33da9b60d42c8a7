"""Snappymail's configuration for a mail backend: its IMAP, submission and
Sieve server for each hosted domain, its admin password, and the plugin that
changes an account's password through ``recipes.stores.accounts``. Every key is
one Snappymail 2.38 reads (the PHP file that reads it is named where it is
written).

What Snappymail reads (its data directory, outside the document root):
  _data_/_default_/configs/application.ini    the settings; only the keys of
                                              ``settings()`` are ours, the
                                              others are left to the admin
                                              (Snappymail rewrites the file)
  _data_/_default_/domains/<domain>.json      one file per hosted domain
  _data_/_default_/domains/disabled           written once, so that its
                                              set-up adds no wildcard domain
  _data_/_default_/plugins/<PLUGIN>/          the password plugin, with the
                                              command it runs (config.json)
Snappymail writes the rest there itself (INSTALLED, SALT.php, sessions,
cache) at its first request; its log goes to the partition's log directory.
The document root gets ``index.php``, ``include.php`` (where the data
directory is) and a link to the release's ``snappymail/`` directory when the
software release has Snappymail; otherwise only ``index.html`` saying so.
"""
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess

from ..stores.files import write_atomically

PLUGIN = 'mailbundle-change-password'
ADMIN_LOGIN = 'admin'
MANAGED_DOMAINS = '.mail-bundle-domains'
# Snappymail's MailSo/Net/Enumerations/ConnectionSecurityType.php
NONE, SSL, STARTTLS = 0, 1, 2
# The backend's certificate is self-signed, and Snappymail connects to the
# partition's own address: nothing to verify it against. The keys are those
# of MailSo/Net/SSLContext.php (each one is set as a property).
UNVERIFIED_TLS = {
    'verify_peer': False,
    'verify_peer_name': False,
    'allow_self_signed': True,
    'SNI_enabled': False,
    'disable_compression': True,
    'security_level': 1,
}
# what Dovecot offers (auth_mechanisms), for IMAP, submission and Sieve
SASL = ['PLAIN', 'LOGIN']
# Snappymail's own default (app/domains/default.json)
DISABLED_IMAP_CAPABILITIES = ['METADATA', 'OBJECTID', 'PREVIEW', 'STATUS=SIZE']


def bracketed(host):
    """An IPv6 address as PHP's stream_socket_client() needs it."""
    return '[%s]' % host if ':' in host and not host.startswith('[') else host


def server(host, port, security, timeout):
    """The keys of fromArray() in MailSo/Net/ConnectSettings.php."""
    return {
        'host': bracketed(host),
        'port': int(port),
        'type': security,
        'timeout': timeout,
        'shortLogin': False,
        'lowerLogin': True,
        'sasl': SASL,
        'ssl': dict(UNVERIFIED_TLS),
    }


def domain_settings(host, imaps_port, smtps_port, sieve_port):
    """The content of ``domains/<domain>.json``, as fromArray() of
    RainLoop/Model/Domain.php reads it: IMAPS and SMTPS (implicit TLS,
    login = the full address) and ManageSieve (STARTTLS), all on the
    backend's address."""
    imap = server(host, imaps_port, SSL, 300)
    # fromArray() of MailSo/Imap/Settings.php
    imap.update({
        'disabled_capabilities': DISABLED_IMAP_CAPABILITIES,
        'expunge_all_on_delete': False,
        'fast_simple_search': True,
        'force_select': False,
        'message_all_headers': False,
        'message_list_limit': 10000,
        'search_filter': '',
        # the spam filter's verdict header (X-Bogosity)
        'spam_headers': 'bogofilter',
    })
    smtp = server(host, smtps_port, SSL, 60)
    # fromArray() of MailSo/Smtp/Settings.php; the sender is the login's
    # address
    smtp.update({'useAuth': True, 'setSender': False, 'usePhpMail': False,
                 'authPlainLine': False})
    sieve = server(host, sieve_port, STARTTLS, 10)
    sieve.update({'enabled': True, 'authLiteral': True})
    return {'IMAP': imap, 'SMTP': smtp, 'Sieve': sieve, 'whiteList': ''}


def settings(domains, admin_password_hash, log_directory):
    """The keys of application.ini that the instance owns (each one is in
    defaultValues() of RainLoop/Config/Application.php)."""
    return {
        'security': {
            'allow_admin_panel': True,
            'admin_login': ADMIN_LOGIN,
            'admin_password': admin_password_hash,
        },
        # the admin panel's URL: ?admin
        'admin_panel': {'key': ADMIN_LOGIN, 'allow_update': False},
        'login': {
            # "alice" alone logs in as alice@<first domain>
            'default_domain': domains[0],
            'determine_user_domain': False,
        },
        'plugins': {
            'enable': True,
            'enabled_list': PLUGIN,
        },
        # warnings and errors in the partition's log directory; passwords
        # hidden (hide_passwords is Snappymail's default, kept On)
        'logs': {
            'enable': True,
            'path': os.path.join(log_directory, ''),
            'filename': 'snappymail.log',
            'level': 4,
            'hide_passwords': True,
        },
    }


def ini_value(value):
    if isinstance(value, bool):
        return 'On' if value else 'Off'
    if isinstance(value, int):
        return str(value)
    if '"' in value or '\n' in value:
        raise ValueError('cannot write %r in application.ini' % value)
    return '"%s"' % value


KEY = re.compile(r'\s*([^;#=\s\[][^=]*?)\s*=')
HEADER = re.compile(r'\s*\[([^\]]+)\]\s*$')


def merge_ini(text, wanted):
    """``text`` (an INI file) with the keys of ``wanted`` ({section: {key:
    value}}) set, everything else (other keys, comments) kept."""
    blocks = [[None, []]]
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            blocks.append([header.group(1).strip(), [line]])
        else:
            blocks[-1][1].append(line)
    present = {name for name, _ in blocks}
    blocks += [[name, ['', '[%s]' % name]] for name in wanted
               if name not in present]
    out = []
    for name, lines in blocks:
        keys = wanted.get(name, {})
        done = set()
        kept = []
        for line in lines:
            match = KEY.match(line)
            if match and match.group(1) in keys:
                key = match.group(1)
                if key not in done:  # a key written twice: PHP takes the last
                    kept.append('%s = %s' % (key, ini_value(keys[key])))
                    done.add(key)
                continue
            kept.append(line)
        end = len(kept)
        while end > 1 and not kept[end - 1].strip():
            end -= 1
        kept[end:end] = ['%s = %s' % (key, ini_value(value))
                         for key, value in keys.items() if key not in done]
        out.extend(kept)
    return '\n'.join(out).strip('\n') + '\n'


def admin_password(path, php):
    """The admin password, generated once (file 0600), and its hash made by
    PHP's password_hash(), which Snappymail checks (kept in PATH.hash)."""
    if not os.path.exists(path):
        write_atomically(path, secrets.token_urlsafe(18) + '\n')
    with open(path) as f:
        password = f.read().strip()
    hash_path = path + '.hash'
    try:
        with open(hash_path) as f:
            stored = json.load(f)
    except (FileNotFoundError, ValueError):
        stored = {}
    if stored.get('for') != hashlib.sha256(password.encode()).hexdigest():
        result = subprocess.run(
            [php, '-n', '-r',
             'echo password_hash(rtrim(fgets(STDIN), "\\n"), PASSWORD_DEFAULT);'],
            input=password + '\n', capture_output=True, text=True, check=True)
        stored = {'for': hashlib.sha256(password.encode()).hexdigest(), 'hash': result.stdout}
        write_atomically(hash_path, json.dumps(stored))
    return password, stored['hash']


def release_version(release):
    """The Snappymail version in ``release``, or None when it is not there."""
    found = glob.glob(os.path.join(release, 'snappymail', 'v', '*',
                                   'include.php'))
    return os.path.basename(os.path.dirname(found[0])) if found else None


def private_directory(data_directory):
    return os.path.join(data_directory, '_data_', '_default_')


def write_domains(data_directory, domains, host, imaps_port, smtps_port,
                  sieve_port):
    """One file per hosted domain; those of domains no longer hosted go."""
    directory = os.path.join(private_directory(data_directory), 'domains')
    os.makedirs(directory, mode=0o700, exist_ok=True)
    managed = os.path.join(directory, MANAGED_DOMAINS)
    try:
        with open(managed) as f:
            before = set(f.read().split())
    except FileNotFoundError:
        before = set()
    for domain in before - set(domains):
        try:
            os.unlink(os.path.join(directory, domain + '.json'))
        except FileNotFoundError:
            pass
    content = json.dumps(domain_settings(host, imaps_port, smtps_port,
                                         sieve_port), indent=4) + '\n'
    for domain in domains:
        write_atomically(os.path.join(directory, domain + '.json'), content)
    write_atomically(managed, '\n'.join(sorted(domains)) + '\n')
    # Without it, Snappymail's set-up (setup.php, at the first request and at
    # each new version) adds its default.json, a wildcard domain on
    # localhost:143, and one for the machine's host name.
    disabled = os.path.join(directory, 'disabled')
    if not os.path.exists(disabled):
        write_atomically(disabled, '')


def write_application_ini(data_directory, wanted):
    directory = os.path.join(private_directory(data_directory), 'configs')
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, 'application.ini')
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ''
    merged = merge_ini(text, wanted)
    if merged != text:
        write_atomically(path, merged)
    return path


def install_plugin(data_directory, source, command):
    """The password plugin; it runs ``command`` + the address, with the
    current then the new password on standard input."""
    target = os.path.join(private_directory(data_directory), 'plugins', PLUGIN)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    write_atomically(os.path.join(target, 'config.json'), json.dumps(
        {'command': command}, indent=2) + '\n')


def write_document_root(document_root, release, data_directory, version):
    """Snappymail's entry points in the document root, or a notice."""
    os.makedirs(document_root, mode=0o700, exist_ok=True)
    entries = ('index.php', 'include.php', 'snappymail', 'index.html')
    for name in entries:
        path = os.path.join(document_root, name)
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
    if version is None:
        write_atomically(os.path.join(document_root, 'index.html'),
                         NOTICE, mode=0o644)
        return
    os.symlink(os.path.join(release, 'snappymail'),
               os.path.join(document_root, 'snappymail'))
    write_atomically(os.path.join(document_root, 'include.php'), INCLUDE % {
        'data': os.path.join(data_directory, '')}, mode=0o644)
    write_atomically(os.path.join(document_root, 'index.php'), INDEX % {
        'version': version}, mode=0o644)


NOTICE = '''<!DOCTYPE html>
<title>Webmail not installed</title>
<p>This mail server's software release was built without the Snappymail
archive: the webmail is not installed. The password page is at
<a href="/password">/password</a>.</p>
'''

# Snappymail's own index.php, with this partition's document root: the
# release stays read-only in the software release.
INDEX = '''<?php
// Written by the mail bundle (recipes/instance/webmail.py).
define('APP_VERSION', '%(version)s');
define('APP_INDEX_ROOT_PATH', __DIR__ . DIRECTORY_SEPARATOR);
include APP_INDEX_ROOT_PATH . 'snappymail/v/' . APP_VERSION . '/include.php';
'''

# Read by Snappymail's include.php from APP_INDEX_ROOT_PATH: its data
# directory, outside the document root.
INCLUDE = '''<?php
// Written by the mail bundle (recipes/instance/webmail.py).
define('APP_DATA_FOLDER_PATH', '%(data)s');
'''


class Recipe:
    """Recipe: Snappymail's configuration, document root and connection
    parameters.

      [webmail]
      recipe = slapos.mailbundle:webmail
      release = <software>/parts/snappymail     ([snappymail:location])
      document-root = ...    data-directory = ...
      domains = example.com example.org
      host = <the backend's IPv6>
      imaps-port = 10993     smtps-port = 10465     sieve-port = 14190
      php = ${php-fpm:php}
      log-directory = ${directory:log}
      admin-password-file = ${directory:etc}/webmail-admin-password
      plugin = ${profile:templates}/web/snappymail-plugin
      change-password-command = <python> -m recipes.programs.passwords change-password
                                ${accounts:directory}
      url = https://[...]:8081/
      password-url = https://[...]:8081/password

    Exports ``available`` (true/false), ``password-url`` and, when the
    software release has Snappymail, ``webmail-url`` and
    ``webmail-admin-url``; ``-publish`` lists these connection parameters,
    and ``-files`` the admin password's file (generated on install), for a
    ``slapos.mailbundle:publish`` section's ``-extends``; ``promise-url``:
    the webmail URL, or the password page without it."""

    def __init__(self, buildout, name, options):
        self.options = options
        self.version = release_version(options['release'])
        options['available'] = 'true' if self.version else 'false'
        published = ['password-url']
        options['promise-url'] = options['password-url']
        if self.version:
            options['webmail-url'] = options['url']
            options['webmail-admin-url'] = options['url'] + '?' + ADMIN_LOGIN
            options['promise-url'] = options['url']
            published += ['webmail-url', 'webmail-admin-url']
            options['-files'] = 'webmail-admin-password %s' % options[
                'admin-password-file']
        options['-publish'] = ' '.join(published)

    def install(self):
        o = self.options
        domains = o['domains'].split()
        data = o['data-directory']
        os.makedirs(data, mode=0o700, exist_ok=True)
        _, password_hash = admin_password(o['admin-password-file'], o['php'])
        write_application_ini(data, settings(domains, password_hash,
                                             o['log-directory']))
        write_domains(data, domains, o['host'], o['imaps-port'],
                      o['smtps-port'], o['sieve-port'])
        install_plugin(data, o['plugin'], o['change-password-command'].split())
        write_document_root(o['document-root'], o['release'], data,
                            self.version)
        return []

    update = install
