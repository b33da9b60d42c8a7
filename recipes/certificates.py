"""The partition's self-signed TLS certificates: the current one, which the
daemons serve, and the next one, generated in advance so that peers can
trust its fingerprint before it is used.

Files in the certificate directory (0700; keys 0600):
  current.key current.crt next.key next.crt
"""
import hashlib
import json
import os
import ssl
import subprocess

SLOTS = ('current', 'next')


def fingerprint(cert_path):
    """SHA-256 fingerprint of a PEM certificate, as AA:BB:..."""
    with open(cert_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    digest = hashlib.sha256(der).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate(openssl, key_path, cert_path, common_name, days=3650):
    """A new self-signed key and certificate (ECDSA P-256)."""
    old_umask = os.umask(0o077)
    try:
        subprocess.run(
            [openssl, 'req', '-x509', '-newkey', 'ec',
             '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
             '-days', str(days), '-subj', '/CN=%s' % common_name,
             '-addext', 'subjectAltName=DNS:%s' % common_name,
             '-addext', 'basicConstraints=critical,CA:FALSE',
             '-keyout', key_path, '-out', cert_path],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finally:
        os.umask(old_umask)


def ensure(openssl, directory, common_name):
    """Create what is missing of the current and next certificates; return
    ``{slot: {'key', 'cert', 'fingerprint'}}``."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    pairs = {}
    for slot in SLOTS:
        key = os.path.join(directory, slot + '.key')
        cert = os.path.join(directory, slot + '.crt')
        if not (os.path.exists(key) and os.path.exists(cert)):
            generate(openssl, key, cert, common_name)
        pairs[slot] = {'key': key, 'cert': cert,
                       'fingerprint': fingerprint(cert)}
    return pairs


class Recipe:
    """Recipe: the partition's current and next self-signed certificates.

      [certificate]
      recipe = slapos.mailbundle:certificate
      openssl = ${openssl:openssl}
      directory = ${directory:certificates}
      common-name = mail.example.com

    Exports ``key`` and ``cert`` (the current pair), ``fingerprint``,
    ``next-fingerprint`` and ``fingerprints`` (JSON list: current, next).
    The files are created once and kept across runs."""

    def __init__(self, buildout, name, options):
        pairs = ensure(options['openssl'], options['directory'],
                       options['common-name'])
        options['key'] = pairs['current']['key']
        options['cert'] = pairs['current']['cert']
        options['fingerprint'] = pairs['current']['fingerprint']
        options['next-fingerprint'] = pairs['next']['fingerprint']
        options['fingerprints'] = json.dumps(
            [pairs[slot]['fingerprint'] for slot in SLOTS])

    def install(self):
        return []

    update = install
