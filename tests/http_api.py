"""A stand-in for an application that receives its domain's mail over HTTPS
(docs/http-api.md): a real HTTPS server (HTTP/1.1, connections kept alive,
a thread per connection) that checks the bearer token, and stores each
message it accepts raw as ``<n>.eml`` with ``<n>.json`` (the request's
headers) in a directory::

    with HttpApi(host, directory, token) as api:
        ... api.url ... api.messages() ... api.mode = '503' ...

Its ``mode`` says how it answers: ``ok`` (200), ``503``, ``hang`` (reads
the request, never answers, stores nothing), ``down`` (its port closed:
connections refused). ``token`` may be changed while it runs (a wrong token
gets 401). A GET with ``?recipient=`` verifies a recipient: 422 for the
local parts of ``unknown``, 200 otherwise. The demo runs it as a process
of its own (``scripts/demo.py api``).
"""
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

from tests.smarthost import StoredMessages

PORT = 8443
PATH = '/v1/email'


def make_certificate(directory, host):
    """A self-signed certificate for ``host`` (an IP address: its subject
    alternative name), which is its own CA: ``(key, cert)`` paths."""
    key = os.path.join(directory, 'api.key')
    cert = os.path.join(directory, 'api.crt')
    if not os.path.exists(cert):
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
             'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30',
             '-subj', '/CN=api.test', '-addext',
             'subjectAltName=IP:%s' % host, '-keyout', key, '-out', cert],
            check=True, capture_output=True)
    return key, cert


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    api = None      # the HttpApi, set per server

    def log_message(self, *args):
        pass

    def setup(self):
        # TLS in the connection's own thread, not the accepting one; no
        # Nagle's algorithm, as web servers do (a response is written in
        # two parts)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(30)
        self.request = self.api.context.wrap_socket(self.request,
                                                    server_side=True)
        self.request.settimeout(None)
        self.api.opened(self.request)
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            self.api.closed(self.request)

    def answer(self, status, text=''):
        body = (text + '\n').encode()
        self.send_response(status)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorised(self):
        if self.headers.get('Authorization') != 'Bearer %s' % self.api.token:
            self.answer(401, 'wrong token')
            return False
        return True

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if not self.authorised():
            return
        recipient = (query.get('recipient') or [''])[0]
        if recipient.partition('@')[0] in self.api.unknown:
            self.answer(422, 'no such recipient')
        else:
            self.answer(200, 'known')

    def do_POST(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length)
        mode = self.api.mode
        self.api.count(mode)
        if mode == 'down':
            # going down: the request dies with its connection
            self.close_connection = True
            return
        if mode == 'hang':
            # holds the connection until the client leaves or the API is
            # told otherwise; what it read is dropped
            while self.api.mode == 'hang' and not self.api.stopping:
                time.sleep(0.2)
            self.close_connection = True
            return
        if mode == '503':
            self.answer(503, 'down for maintenance')
            return
        if not self.authorised():
            return
        self.api.store(body, dict(self.headers.items()))
        self.answer(200, 'stored')


class HttpApi(StoredMessages):
    """``messages()``: ``[(request headers, message bytes)]`` stored so
    far; ``wait_for(predicate(headers, message))``."""

    what = 'the API'

    def __init__(self, host, directory, token, port=PORT, unknown=('unknown',)):
        self.host, self.port = host, port
        self.directory = directory
        self.token = token
        self.unknown = set(unknown)
        self.mode = 'ok'
        self.stopping = False
        self.counts = {}
        self.connections = set()
        self.lock = threading.Lock()
        self.stored = 0
        self.server = None
        self.thread = None
        os.makedirs(directory, exist_ok=True)
        self.key, self.cert = make_certificate(directory, host)
        self.stored = len([n for n in os.listdir(directory)
                           if n.endswith('.eml')])

    @property
    def url(self):
        return 'https://[%s]:%d%s' % (self.host, self.port, PATH)

    @property
    def ca_certificate(self):
        with open(self.cert) as f:
            return f.read()

    def count(self, mode):
        with self.lock:
            self.counts[mode] = self.counts.get(mode, 0) + 1

    def store(self, body, headers):
        with self.lock:
            self.stored += 1
            name = os.path.join(self.directory, '%06d' % self.stored)
        with open(name + '.eml', 'wb') as f:
            f.write(body)
        with open(name + '.json', 'w') as f:
            json.dump(headers, f)

    # -- running --------------------------------------------------------------
    def opened(self, connection):
        with self.lock:
            self.connections.add(connection)

    def closed(self, connection):
        with self.lock:
            self.connections.discard(connection)

    def start(self):
        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6
            daemon_threads = True
            request_queue_size = 128
        handler = type('BoundHandler', (Handler,), {'api': self})
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.cert, self.key)
        self.server = Server((self.host, self.port), handler)
        self.port = self.server.server_address[1]    # when 0 was asked
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Closes the port and every connection open to it."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def set_mode(self, mode):
        """``ok``, ``503``, ``hang`` or ``down`` (and back up from it)."""
        if mode == 'down':
            self.mode = mode
            self.stop()
            return
        if self.server is None:
            self.start()
        self.mode = mode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stopping = True
        self.stop()

