"""A stand-in third-party smarthost for the relay tests: a real SMTP server
(aiosmtpd) that requires TLS and a SASL login (PLAIN or LOGIN), on one port
with STARTTLS and on another with implicit TLS, and records every message it
accepts as ``<n>.eml`` plus ``<n>.json`` (envelope, login, port) in a
directory::

    with Smarthost(host, directory, {'user': 'password'}) as smarthost:
        ... smarthost.messages() ...
"""
import json
import os
import ssl
import subprocess
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


class Smarthost:

    def __init__(self, host, directory, logins, starttls_port=10587,
                 implicit_tls_port=10465):
        self.host = host
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

    def _tls(self):
        key = os.path.join(self.directory, 'smarthost.key')
        cert = os.path.join(self.directory, 'smarthost.crt')
        if not os.path.exists(cert):
            subprocess.run(
                ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
                 '-subj', '/CN=smarthost.test', '-keyout', key, '-out', cert],
                check=True, capture_output=True)
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
            time.sleep(0.2)
        raise AssertionError('the smarthost received no such message in %ss'
                             % timeout)
