"""The DKIM keys of a relay node, kept by this module alone: one RSA key per
domain, generated the first time the node sees the domain and kept across
runs (0600, also after the domain goes away, in case it comes back), as
``<directory>/<domain>.private``."""
import base64
import os
import subprocess

from .files import write_atomically

KEY_BITS = 2048


def key_path(directory, domain):
    return os.path.join(directory, domain + '.private')


def ensure_key(openssl, path):
    if os.path.exists(path):
        return
    old_umask = os.umask(0o077)
    try:
        tmp = path + '.new'
        subprocess.run([openssl, 'genpkey', '-algorithm', 'RSA', '-pkeyopt',
                        'rsa_keygen_bits:%d' % KEY_BITS, '-out', tmp],
                       check=True, capture_output=True)
        os.rename(tmp, path)
    finally:
        os.umask(old_umask)


def public_key(openssl, path):
    """The base64 DER SubjectPublicKeyInfo of a private key (``p=``)."""
    der = subprocess.run([openssl, 'pkey', '-in', path, '-pubout',
                          '-outform', 'DER'], check=True,
                         capture_output=True).stdout
    return base64.b64encode(der).decode()


def public_keys(openssl, directory, domains):
    """``{domain: public key}``, each key generated when it is missing."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    keys = {}
    for domain in domains:
        path = key_path(directory, domain)
        ensure_key(openssl, path)
        keys[domain] = public_key(openssl, path)
    return keys


def key_files(directory):
    """``{domain: path}`` of every key kept (what a backup keeps)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}
    return {name[:-len('.private')]: os.path.join(directory, name)
            for name in sorted(names) if name.endswith('.private')}


def install_key(directory, domain, text):
    """Put a domain's key from a backup in place (0600), replacing the one
    generated here: the DKIM record published with it is valid again."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    write_atomically(key_path(directory, domain), text, 0o600)
