"""Snappymail's data directory and document root on a mail backend, kept by
this module alone (what to write there is ``recipes.decisions.webmail``).
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
import shutil
import subprocess

from ..decisions.webmail import PLUGIN, domain_settings, merge_ini
from .files import secret, write_atomically

MANAGED_DOMAINS = '.mail-bundle-domains'


def admin_password(path, php):
    """The admin password, generated once (file 0600), and its hash made by
    PHP's password_hash(), which Snappymail checks (kept in PATH.hash)."""
    password = secret(path, 18)
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
// Written by the mail bundle (recipes/stores/webmail.py).
define('APP_VERSION', '%(version)s');
define('APP_INDEX_ROOT_PATH', __DIR__ . DIRECTORY_SEPARATOR);
include APP_INDEX_ROOT_PATH . 'snappymail/v/' . APP_VERSION . '/include.php';
'''

# Read by Snappymail's include.php from APP_INDEX_ROOT_PATH: its data
# directory, outside the document root.
INCLUDE = '''<?php
// Written by the mail bundle (recipes/stores/webmail.py).
define('APP_DATA_FOLDER_PATH', '%(data)s');
'''
