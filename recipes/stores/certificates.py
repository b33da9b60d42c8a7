"""The partition's TLS certificates, kept in one directory by this module
alone: the self-signed ones, and one given by the requester.

The self-signed certificates: the current one, which the
daemons serve, and the next one, generated in advance so that peers can
trust its fingerprint before it is used.

Files in the certificate directory (0700; keys 0600):
  current.key current.crt next.key next.crt

Rotation: when the current certificate expires within ``renew-before-days``
(or is older than ``max-age-days``, when given), or when an operator asks
for it (below), the next one becomes current and a new next one is
generated. Peers already trust the promoted certificate (its fingerprint
was published as the next one); the daemons take it by a reload, which
does not drop connections.

Upstream's files, for what upstream's operators and tests read and run
(``fingerprint_files``), beside a prefix such as
``etc/postfix/ssl/postfix-backend``:
  <prefix>.fingerprint       the current certificate's, as openssl prints
                             it (``sha256 Fingerprint=AA:BB:...``)
  <prefix>.next.fingerprint  the next one's
  <prefix>.bundle.pem        the current key then certificate (0600): what
                             the partition shows as client certificate
Removing ``<prefix>.fingerprint`` (``request_rotation``: the partition's
``bin/postfix-certificate-rotate``) asks for a rotation at the next run, as
upstream's releases do.
"""
import hashlib
import os
import re
import ssl
import subprocess
import time

from .files import write_atomically


SLOTS = ('current', 'next')
DAY = 24 * 3600
# a self-signed certificate lives ten years and gives way to the next one a
# month before its end: what a peer pins stays valid, and the next one was
# published long before
VALIDITY_DAYS = 3650
RENEW_BEFORE_DAYS = 30


def fingerprint_of_der(der):
    """SHA-256 fingerprint of a DER certificate, as AA:BB:..."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


def fingerprint(cert_path):
    """SHA-256 fingerprint of a PEM certificate (the first of a chain), as
    AA:BB:..."""
    with open(cert_path) as f:
        text = f.read()
    first = (pem_blocks(text, 'CERTIFICATE') or [text])[0]
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(first))


def validity(openssl, cert_path):
    """``(not before, not after)`` of a PEM certificate, as Unix times."""
    out = subprocess.run(
        [openssl, 'x509', '-in', cert_path, '-noout', '-startdate',
         '-enddate'], check=True, capture_output=True, text=True).stdout
    dates = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    return (ssl.cert_time_to_seconds(dates['notBefore']),
            ssl.cert_time_to_seconds(dates['notAfter']))


def rotation_due(not_before, not_after, now, renew_before_days,
                 max_age_days=None):
    """Whether the current certificate must give way to the next one."""
    if not_after - now <= renew_before_days * DAY:
        return True
    return bool(max_age_days) and now - not_before >= max_age_days * DAY


def rotate(directory):
    """The next pair becomes the current one (each file replaced atomically,
    the key first); the caller generates a new next pair."""
    for extension in ('key', 'crt'):
        os.replace(os.path.join(directory, 'next.' + extension),
                   os.path.join(directory, 'current.' + extension))


def generate(openssl, key_path, cert_path, common_name,
             days=VALIDITY_DAYS):
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


def ensure(openssl, directory, common_name,
           renew_before_days=RENEW_BEFORE_DAYS, max_age_days=None,
           days=VALIDITY_DAYS, now=None, rotate_now=False):
    """Create what is missing of the current and next certificates, rotate
    them when due (or at once with ``rotate_now``); return ``{slot: {'key',
    'cert', 'fingerprint'}}``."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    current = os.path.join(directory, 'current.crt')
    if (os.path.exists(current) and os.path.exists(
            os.path.join(directory, 'next.crt')) and (rotate_now or rotation_due(
                *validity(openssl, current),
                time.time() if now is None else now,
                renew_before_days, max_age_days))):
        rotate(directory)
    pairs = {}
    for slot in SLOTS:
        key = os.path.join(directory, slot + '.key')
        cert = os.path.join(directory, slot + '.crt')
        if not (os.path.exists(key) and os.path.exists(cert)):
            generate(openssl, key, cert, common_name, days)
        pairs[slot] = {'key': key, 'cert': cert,
                       'fingerprint': fingerprint(cert)}
    return pairs


# -- upstream's files -----------------------------------------------------------
FINGERPRINT_LINE = 'sha256 Fingerprint=%s\n'


def fingerprint_files(prefix):
    """``(current, next, bundle)``: the paths of upstream's files."""
    return (prefix + '.fingerprint', prefix + '.next.fingerprint',
            prefix + '.bundle.pem')


def rotation_requested(prefix):
    """Whether an operator asked for a rotation: the current fingerprint
    file removed, the next one still there (neither is there before the
    first run that writes them)."""
    current, next_, _ = fingerprint_files(prefix)
    return os.path.exists(next_) and not os.path.exists(current)


def request_rotation(prefix):
    """Ask for a rotation at the next run; False when one is already
    asked for."""
    try:
        os.unlink(fingerprint_files(prefix)[0])
        return True
    except FileNotFoundError:
        return False


def write_fingerprint_files(prefix, pairs):
    """Upstream's files for the pairs of ``ensure`` (each written when it
    changed)."""
    os.makedirs(os.path.dirname(prefix), mode=0o700, exist_ok=True)
    current, next_, bundle = fingerprint_files(prefix)
    wanted = {current: (FINGERPRINT_LINE % pairs['current']['fingerprint'],
                        0o644),
              next_: (FINGERPRINT_LINE % pairs['next']['fingerprint'], 0o644)}
    with open(pairs['current']['key']) as key, \
            open(pairs['current']['cert']) as cert:
        wanted[bundle] = (key.read() + cert.read(), 0o600)
    for path, (text, mode) in wanted.items():
        try:
            with open(path) as f:
                if f.read() == text:
                    continue
        except FileNotFoundError:
            pass
        write_atomically(path, text, mode)


def pair_files(directory):
    """``{file name: path}`` of the self-signed pairs that exist (what a
    backup keeps)."""
    found = {}
    for slot in SLOTS:
        for extension in ('key', 'crt'):
            name = '%s.%s' % (slot, extension)
            if os.path.exists(os.path.join(directory, name)):
                found[name] = os.path.join(directory, name)
    return found


def install_pairs(directory, contents):
    """Put the pairs of a backup (``{file name: bytes}``, names of
    ``pair_files``) in place of the current ones, keys first, each
    atomically; the daemons take them at their next reload."""
    unknown = set(contents) - {'%s.%s' % (slot, extension) for slot in SLOTS
                               for extension in ('key', 'crt')}
    if unknown:
        raise ValueError('not a certificate file of %s: %s' % (
            directory, ', '.join(sorted(unknown))))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for name in sorted(contents, key=lambda n: not n.endswith('.key')):
        write_atomically(os.path.join(directory, name),
                         contents[name].decode('ascii'),
                         0o600 if name.endswith('.key') else 0o644)


# -- a certificate given by the requester ------------------------------------
PEM_BLOCK = '-----BEGIN %s-----.*?-----END %s-----'
KEY_LABELS = ('PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY')


def pem_blocks(text, label):
    """The PEM blocks of ``label`` in ``text``, in order."""
    pattern = PEM_BLOCK % (re.escape(label), re.escape(label))
    return re.findall(pattern, text, re.S)


def _public_key(openssl, args, pem, what):
    result = subprocess.run([openssl] + args, input=pem,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError('the %s cannot be read (%s)' % (
            what, (result.stderr.strip().splitlines() or ['openssl failed'])[0]))
    return result.stdout


def check_custom(openssl, pem):
    """``(key, chain)`` of a PEM private key then certificate chain, checked
    (through openssl's standard input: nothing is written). Raise ValueError
    saying what is wrong (never quoting the key)."""
    if 'ENCRYPTED PRIVATE KEY' in pem:
        raise ValueError('the private key is encrypted: give it without a '
                         'passphrase')
    keys = [k for label in KEY_LABELS for k in pem_blocks(pem, label)]
    if len(keys) != 1:
        raise ValueError('%s private key found: give one PEM private key '
                         '(-----BEGIN PRIVATE KEY-----), then the '
                         'certificate chain' % ('no' if not keys else 'more than one'))
    chain = pem_blocks(pem, 'CERTIFICATE')
    if not chain:
        raise ValueError('no certificate found: give the PEM private key, '
                         'then the certificate chain (-----BEGIN '
                         'CERTIFICATE-----), the server\'s first')
    key_public = _public_key(openssl, ['pkey', '-pubout'], keys[0] + '\n',
                             'private key')
    for i, block in enumerate(chain, 1):
        public = _public_key(openssl, ['x509', '-noout', '-pubkey'],
                             block + '\n', 'certificate %d of the chain' % i
                             if i > 1 else 'certificate')
        if i == 1 and public != key_public:
            raise ValueError('the private key does not match the first '
                             'certificate (the server\'s must come first)')
    return keys[0], chain


def custom_paths(directory, name='custom'):
    return (os.path.join(directory, name + '.key'),
            os.path.join(directory, name + '.crt'))


def install_custom(directory, key, chain, name='custom'):
    """Keep a checked key (0600) and chain as ``<name>.key`` and
    ``<name>.crt`` in ``directory``; return their paths."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key_path, cert_path = custom_paths(directory, name)
    write_atomically(key_path, key + '\n')
    write_atomically(cert_path, '\n'.join(chain) + '\n', mode=0o644)
    return key_path, cert_path
