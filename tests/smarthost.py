"""A stand-in third-party smarthost for the relay tests: a real SMTP server
(aiosmtpd) that requires TLS and a SASL login (PLAIN or LOGIN), on one port
with STARTTLS and on another with implicit TLS, and records every message it
accepts as ``<n>.eml`` plus ``<n>.json`` (envelope, login, port) in a
directory::

    with Smarthost(host, directory, {'user': 'password'}) as smarthost:
        ... smarthost.messages() ...

Its certificate, for the name ``SMARTHOST_NAME``, is signed by a test CA
made once in its directory (``test_ca``): a relay verifies it with the
proxy-map entry's ``tls`` = ``smarthost.tls``. ``trusted=False`` gives it a
self-signed certificate of the same name instead: one of another CA.
"""
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:

    def __init__(self, directory, port):
        self.directory = directory
        self.port = port

    async def handle_DATA(self, server, session, envelope):
        with Recorder.lock:
            Recorder.count += 1
            name = os.path.join(self.directory, '%06d' % Recorder.count)
        with open(name + '.eml', 'wb') as f:
            f.write(envelope.original_content)
        with open(name + '.json', 'w') as f:
            json.dump({'mail-from': envelope.mail_from,
                       'rcpt-tos': envelope.rcpt_tos,
                       'login': session.auth_data.login.decode()
                       if isinstance(session.auth_data, LoginPassword) else None,
                       'port': self.port}, f)
        return '250 2.0.0 recorded'


Recorder.lock = threading.Lock()
Recorder.count = 0


SMARTHOST_NAME = 'smarthost.test'
EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
          '-nodes']


def openssl(*argv):
    subprocess.run(('openssl',) + argv, check=True, capture_output=True)


def test_ca(directory):
    """``(certificate, key)`` files of the test CA kept in ``directory``,
    made the first time (atomically: the demo's smarthost and the demo
    itself may ask at once)."""
    cert = os.path.join(directory, 'test-ca.crt')
    key = os.path.join(directory, 'test-ca.key')
    if not os.path.exists(cert):
        os.makedirs(directory, exist_ok=True)
        work = tempfile.mkdtemp(dir=directory)
        openssl('req', '-x509', *EC_KEY, '-days', '3650',
                '-subj', '/CN=Mail bundle test CA',
                '-addext', 'basicConstraints=critical,CA:TRUE',
                '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
                '-keyout', os.path.join(work, 'key'),
                '-out', os.path.join(work, 'crt'))
        os.rename(os.path.join(work, 'key'), key)
        os.rename(os.path.join(work, 'crt'), cert)
        os.rmdir(work)
    return cert, key


class StoredMessages:
    """What a stand-in keeps in ``self.directory``: each message as
    ``<n>.eml`` with ``<n>.json`` (what it knew of it), read back."""

    what = 'the stand-in'

    def messages(self):
        """``[(metadata, message bytes)]`` received so far."""
        found = []
        for name in sorted(os.listdir(self.directory)):
            if name.endswith('.json'):
                base = os.path.join(self.directory, name[:-5])
                with open(base + '.json') as f, open(base + '.eml', 'rb') as m:
                    found.append((json.load(f), m.read()))
        return found

    def wait_for(self, predicate, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for metadata, message in self.messages():
                if predicate(metadata, message):
                    return metadata, message
            time.sleep(0.5)
        raise AssertionError('%s received no such message in %ss'
                             % (self.what, timeout))


class Smarthost(StoredMessages):

    what = 'the smarthost'

    def __init__(self, host, directory, logins, starttls_port=10587,
                 implicit_tls_port=10465, trusted=True):
        self.host = host
        self.trusted = trusted
        self.directory = directory
        self.logins = {u.encode(): p.encode() for u, p in logins.items()}
        self.starttls_port = starttls_port
        self.implicit_tls_port = implicit_tls_port
        self.controllers = []

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            self.logins.get(auth_data.login) == auth_data.password
        # handled=False: aiosmtpd answers a refusal with 535 itself
        return AuthResult(success=ok, handled=False,
                          auth_data=auth_data if ok else None)

    @property
    def tls(self):
        """The ``tls`` of a proxy-map entry that trusts this smarthost's
        certificate: the test CA, for its name."""
        with open(test_ca(self.directory)[0]) as f:
            return {'ca': f.read(), 'name': SMARTHOST_NAME}

    def _tls(self):
        base = os.path.join(self.directory, 'smarthost-%s' % (
            'test-ca' if self.trusted else 'self-signed'))
        key, cert = base + '.key', base + '.crt'
        name = ['-subj', '/CN=' + SMARTHOST_NAME,
                '-addext', 'subjectAltName=DNS:' + SMARTHOST_NAME]
        if not self.trusted:        # its own CA: the attacker's
            openssl('req', '-x509', *EC_KEY, '-days', '2', *name,
                    '-keyout', key, '-out', cert)
        elif not os.path.exists(cert):
            ca_cert, ca_key = test_ca(self.directory)
            request = cert + '.csr'
            openssl('req', '-new', *EC_KEY, *name, '-keyout', key,
                    '-out', request)
            openssl('x509', '-req', '-in', request, '-CA', ca_cert,
                    '-CAkey', ca_key, '-CAcreateserial', '-days', '3650',
                    '-copy_extensions', 'copy', '-out', cert)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def start(self):
        os.makedirs(self.directory, exist_ok=True)
        context = self._tls()
        common = dict(hostname=self.host, authenticator=self.authenticate,
                      auth_required=True)
        self.controllers = [
            Controller(Recorder(self.directory, self.starttls_port),
                       port=self.starttls_port, tls_context=context,
                       require_starttls=True, auth_require_tls=True, **common),
            Controller(Recorder(self.directory, self.implicit_tls_port),
                       port=self.implicit_tls_port, ssl_context=context,
                       # the whole session is TLS, which aiosmtpd does not
                       # count as such for AUTH
                       auth_require_tls=False, **common),
        ]
        for controller in self.controllers:
            controller.start()
        return self

    def stop(self):
        for controller in self.controllers:
            controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

