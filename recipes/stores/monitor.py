"""The monitor's credentials in a partition, kept by this module alone
(``<directory>`` is the monitor's ``etc``, 0700):

  password      the password, 0600: generated once (or the one the
                partition is given: a relay node gets its cluster's), read
                to publish the setup URL
  htpasswd      ``user:hash`` for Apache's ``AuthUserFile``, 0600; rewritten
                only when the password changes (Apache reads it at each
                request: nothing to reload)
  setup-url     the published ``monitor-setup-url`` (it holds the
                password), 0600, which the publication reads

The password is 24 random bytes: a fast hash (SHA512-CRYPT with crypt's
default 5000 rounds, which Apache checks through the system's crypt) is
enough, and costs Apache little at each request of the web app.
"""
import os
import secrets

from passlib.hash import sha512_crypt

from .files import write_atomically


def paths(directory):
    return {name: os.path.join(directory, name)
            for name in ('password', 'htpasswd', 'setup-url')}


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def password(directory, given=None):
    """The monitor's password: ``given`` when there is one, else the one
    generated at the first call and kept."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = paths(directory)['password']
    kept = read(path)
    wanted = given or kept or secrets.token_urlsafe(24)
    if wanted != kept:
        write_atomically(path, wanted + '\n')
    return wanted


def write_htpasswd(directory, username, password):
    """The ``AuthUserFile`` of ``username``, unless it already says this
    password."""
    path = paths(directory)['htpasswd']
    line = read(path)
    if line and line.startswith(username + ':') and sha512_crypt.verify(
            password, line.split(':', 1)[1]):
        return
    write_atomically(path, '%s:%s\n' % (
        username, sha512_crypt.using(rounds=5000).hash(password)))


def write_setup_url(directory, url):
    path = paths(directory)['setup-url']
    if read(path) != url:
        write_atomically(path, url + '\n')
