"""DKIM keys of a relay node: one RSA key per domain, generated the first
time the node sees the domain and kept across runs (0600, also after the
domain goes away, in case it comes back), and the TXT record that publishes
each public key under this node's selector.

  [dkim-keys]
  recipe = slapos.mailbundle:dkim-keys
  openssl = ${openssl:openssl}
  directory = ${directory:dkim}
  domains = mail1.example.com mail2.example.com
  fqdn = relay1.example.com

Exports ``selector`` (derived from the node's fqdn, so that every node of a
cluster signs with its own key) and ``records`` (JSON: domain -> [record]).
Key files are ``<directory>/<domain>.private``.
"""
import base64
import hashlib
import json
import os
import subprocess

from .domains import record

KEY_BITS = 2048


def selector(fqdn):
    """A DNS label naming this node's keys: its fqdn with dashes for dots
    (shortened with a digest past 63 characters)."""
    label = fqdn.lower().rstrip('.').replace('.', '-')
    if len(label) > 63:
        label = label[:54] + '-' + hashlib.sha256(label.encode()).hexdigest()[:8]
    return label


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


def txt_record(selector, domain, public):
    return record('%s._domainkey.%s' % (selector, domain), 'TXT',
                  'v=DKIM1; k=rsa; p=%s' % public)


class Recipe:

    def __init__(self, buildout, name, options):
        directory = options['directory']
        os.makedirs(directory, mode=0o700, exist_ok=True)
        options['selector'] = chosen = selector(options['fqdn'])
        records = {}
        for domain in options['domains'].split():
            path = key_path(directory, domain)
            ensure_key(options['openssl'], path)
            records[domain] = [txt_record(
                chosen, domain, public_key(options['openssl'], path))]
        options['records'] = json.dumps(records, sort_keys=True)

    def install(self):
        return []

    update = install
