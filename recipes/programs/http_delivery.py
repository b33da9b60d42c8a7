"""The delivery agent of a relay node for the domains whose mail goes to an
HTTPS API (``http-endpoint``): an LMTP server (RFC 2033) on a unix socket,
which Postfix's ``api`` transport (an ``lmtp`` client, listeners.cf.in)
hands each message to, and which POSTs it to the domain's API
(``recipes.decisions.http_endpoints`` says how, and what the answers mean):

  python -m recipes.programs.http_delivery CONFIG

One long-running process per node, run by the partition's supervisor: a
thread per LMTP connection (Postfix keeps its connections open for the
next messages), and per endpoint a pool of HTTPS connections kept alive,
at most ``http-concurrency`` requests at once, each given ``http-timeout``
seconds. An LMTP server rather than a ``pipe`` command: a pipe starts a
process, and a TLS handshake, per message; here both are paid once.

After an answer that defers, the endpoint is not asked again for
``PAUSE`` seconds (its mail is deferred at once, the reply naming its last
answer): a hanging API does not hold every delivery process of the node
for ``http-timeout`` each.

CONFIG.json (0600: it holds the tokens), read again when it changes:
``{"socket": path, "answers-file": path, "node": the node's name,
"probe-sender": the sender of Postfix's address verification probes,
"domains": {name: {http-endpoint, http-token, http-ca-certificate,
http-fingerprints, http-timeout, http-concurrency,
http-verify-recipients}}}``. The answers file keeps each domain's last
answer from its endpoint (``{domain: {endpoint, status, answer, kind,
at}}``, no secret), for the promise ``http-endpoint``.
"""
import collections
import hashlib
import http.client
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

from ..decisions import http_endpoints as decide
from ..stores.files import read_json, write_atomically

PAUSE = 5               # seconds an endpoint rests after an answer that defers
ANSWER_REFRESH = 30     # seconds between two writes of the same answer
MAX_LINE = 1 << 16


def public_url(url):
    """``url`` without its query, which may carry a key: what replies, logs
    and promises show."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts[:3] + ('', ''))


class FingerprintMismatch(ssl.SSLError):
    pass


class HTTPConnection(http.client.HTTPConnection):
    """Without Nagle's algorithm: http.client sends a body of 3 KB and more
    apart from the headers, whose last segment would otherwise wait for
    the server's delayed ACK (40 ms a message)."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection without Nagle's algorithm (``HTTPConnection``),
    whose server certificate must have one of ``fingerprints`` (SHA-256,
    upper-case hex without colons)."""

    def __init__(self, *args, fingerprints=(), **kw):
        super().__init__(*args, **kw)
        self.fingerprints = fingerprints

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.fingerprints:
            der = self.sock.getpeercert(binary_form=True)
            found = hashlib.sha256(der).hexdigest().upper()
            if found not in self.fingerprints:
                self.sock.close()
                raise FingerprintMismatch(
                    'certificate fingerprint %s is not one of '
                    'http-fingerprints' % found)


def tls_context(entry):
    """Verified TLS: the system's CAs; ``http-ca-certificate`` (PEM) alone
    when given; with ``http-fingerprints``, the certificate itself is
    pinned instead of a CA."""
    if entry.get('http-fingerprints'):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if entry.get('http-ca-certificate'):
        return ssl.create_default_context(
            cadata=entry['http-ca-certificate'])
    return ssl.create_default_context()


class Endpoint:
    """One domain's API: its connections, its concurrency and its last
    answer."""

    def __init__(self, domain, entry, answers):
        self.domain = domain
        self.entry = entry
        self.answers = answers
        self.url = entry['http-endpoint']
        self.shown = public_url(self.url)
        parts = urllib.parse.urlsplit(self.url)
        self.https = parts.scheme == 'https'
        self.host, self.port = parts.hostname, parts.port
        self.path = urllib.parse.urlunsplit(('', '', parts.path or '/',
                                             parts.query, ''))
        self.timeout = entry['http-timeout']
        self.slots = threading.BoundedSemaphore(entry['http-concurrency'])
        self.context = tls_context(entry) if self.https else None
        self.idle = collections.deque()
        self.resting_until = 0
        self.last = None

    def _connection(self):
        try:
            return self.idle.pop(), True
        except IndexError:
            pass
        if self.https:
            return PinnedHTTPSConnection(
                self.host, self.port, timeout=self.timeout,
                context=self.context,
                fingerprints=self.entry.get('http-fingerprints')), False
        return HTTPConnection(self.host, self.port,
                              timeout=self.timeout), False

    def close(self):
        while self.idle:
            self.idle.pop().close()

    def request(self, method, path, body, headers):
        """``(status, reason)`` of one request; ``(None, why)`` when there
        was no answer."""
        now = time.time()
        if now < self.resting_until and self.last:
            return None, 'not asked: its last answer, %.0f s ago, was %s' % (
                now - self.last[2], self.last[1])
        if not self.slots.acquire(timeout=self.timeout):
            return None, 'busy: %d requests under way for %ss' % (
                self.entry['http-concurrency'], self.timeout)
        try:
            for attempt in (1, 2):
                connection, reused = self._connection()
                try:
                    connection.request(method, path, body, headers)
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as e:
                    connection.close()
                    if reused and attempt == 1 and not isinstance(
                            e, (socket.timeout, TimeoutError)):
                        # a kept connection the server closed meanwhile:
                        # once more on a new one
                        continue
                    return self._answered(None, no_answer(e, self.timeout))
                if response.will_close:
                    connection.close()
                else:
                    self.idle.append(connection)
                return self._answered(response.status, response.reason)
        finally:
            self.slots.release()

    def _answered(self, status, reason):
        what = decide.describe(status, reason)
        if decide.answer_kind(status) == decide.DEFERRED:
            self.resting_until = time.time() + PAUSE
        else:
            self.resting_until = 0
        self.last = (status, what, time.time())
        self.answers.record(self.domain, self.shown, status, what)
        return status, reason

    def deliver(self, message, sender, recipient, key):
        headers = {'Authorization': 'Bearer %s' % self.entry['http-token'],
                   'Content-Type': 'message/rfc822',
                   'X-Envelope-From': raw(sender),
                   'X-Envelope-To': raw(recipient),
                   'Idempotency-Key': raw(key)}
        status, reason = self.request('POST', self.path, message, headers)
        return decide.delivery_reply(status, reason,
                                     'the API of %s' % self.domain)

    def verify(self, recipient):
        separator = '&' if '?' in self.path else '?'
        path = self.path + separator + urllib.parse.urlencode(
            {'recipient': recipient})
        status, reason = self.request(
            'GET', path, None,
            {'Authorization': 'Bearer %s' % self.entry['http-token']})
        return decide.verify_reply(status, reason,
                                   'the API of %s' % self.domain)


def raw(text):
    """A header value as its UTF-8 bytes (http.client sends Latin-1)."""
    return text.encode('utf-8', 'surrogateescape').decode('latin-1')


def no_answer(error, timeout):
    if isinstance(error, (socket.timeout, TimeoutError)):
        return 'no answer within %s s' % timeout
    if isinstance(error, ConnectionRefusedError):
        return 'connection refused'
    if isinstance(error, FingerprintMismatch):
        return 'TLS failed: %s' % error.args[0]
    if isinstance(error, ssl.SSLError):
        return 'TLS failed: %s' % (getattr(error, 'reason', None) or error)
    return '%s: %s' % (type(error).__name__, error)


class Answers:
    """The last answer of each domain's endpoint, kept in the answers file
    (written when it changes, and at most every ``ANSWER_REFRESH`` s
    otherwise)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.current = read_json(path, {})
        self.written = {}

    def record(self, domain, endpoint, status, answer):
        entry = {'endpoint': endpoint, 'status': status, 'answer': answer,
                 'kind': decide.answer_kind(status)}
        now = time.time()
        with self.lock:
            before = dict(self.current.get(domain) or {})
            before.pop('at', None)
            if before == entry and \
                    now - self.written.get(domain, 0) < ANSWER_REFRESH:
                return
            self.current[domain] = dict(entry, at=int(now))
            self.written[domain] = now
            write_atomically(self.path, json.dumps(self.current,
                                                   sort_keys=True))


class Agent:
    """The configuration and the endpoints, rebuilt when the file
    changes."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.stamp = None
        self.endpoints = {}
        self.config = {}
        self.answers = None
        self.load()

    def load(self):
        with self.lock:
            try:
                status = os.stat(self.path)
            except FileNotFoundError:
                return
            stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
            if stamp == self.stamp:
                return
            config = read_json(self.path, None)
            if config is None:
                return
            if self.answers is None:
                self.answers = Answers(config['answers-file'])
            endpoints = {}
            for domain, entry in config['domains'].items():
                old = self.endpoints.get(domain)
                if old is not None and old.entry == entry:
                    endpoints[domain] = old
                else:
                    endpoints[domain] = Endpoint(domain, entry, self.answers)
                    if old is not None:
                        old.close()
            for domain in set(self.endpoints) - set(endpoints):
                self.endpoints[domain].close()
            self.endpoints, self.config, self.stamp = endpoints, config, stamp

    def endpoint(self, recipient):
        self.load()
        return self.endpoints.get(recipient.rpartition('@')[2].lower())


def xtext_decode(text):
    """RFC 3461's xtext: ``+XX`` is the byte of hex XX."""
    out, i = bytearray(), 0
    raw = text.encode('utf-8', 'surrogateescape')
    while i < len(raw):
        if raw[i:i + 1] == b'+' and i + 3 <= len(raw):
            try:
                out.append(int(raw[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode('utf-8', 'replace')


def path_and_parameters(argument):
    """``('a@b', {'ORCPT': ...})`` of ``<a@b> ORCPT=rfc822;a@b``."""
    argument = argument.strip()
    if argument.startswith('<'):
        address, _, rest = argument[1:].partition('>')
    else:
        address, _, rest = argument.partition(' ')
    parameters = {}
    for word in rest.split():
        key, _, value = word.partition('=')
        parameters[key.upper()] = value
    return address, parameters


class Session(socketserver.StreamRequestHandler):
    """One LMTP connection from Postfix."""

    agent = None       # set by serve()

    def reply(self, *lines):
        self.wfile.write(''.join(line + '\r\n' for line in lines).encode(
            'utf-8', 'replace'))

    def reset(self):
        self.sender, self.recipients = None, []

    def handle(self):
        self.reset()
        self.ident = None
        node = self.agent.config.get('node', 'localhost')
        self.reply('220 %s LMTP delivery to HTTPS APIs' % node)
        while True:
            line = self.rfile.readline(MAX_LINE)
            if not line:
                return
            command = line.decode('utf-8', 'surrogateescape').rstrip('\r\n')
            verb, _, argument = command.partition(' ')
            verb = verb.upper()
            if verb == 'LHLO':
                self.reset()
                self.reply('250-%s' % node, '250-PIPELINING',
                           '250-ENHANCEDSTATUSCODES', '250-8BITMIME',
                           '250-DSN', '250 XFORWARD NAME ADDR PROTO HELO IDENT')
            elif verb == 'XFORWARD':
                for word in argument.split():
                    key, _, value = word.partition('=')
                    if key.upper() == 'IDENT':
                        self.ident = xtext_decode(value)
                self.reply('250 2.0.0 Ok')
            elif verb == 'MAIL':
                self.reset()
                self.sender = path_and_parameters(
                    argument.partition(':')[2])[0]
                self.reply('250 2.1.0 Ok')
            elif verb == 'RCPT':
                self.rcpt(argument.partition(':')[2])
            elif verb == 'DATA':
                if not self.recipients:
                    self.reply('503 5.5.1 no valid recipient')
                    continue
                self.reply('354 End data with <CR><LF>.<CR><LF>')
                message = self.read_data()
                if message is None:
                    return
                self.deliver(message)
                self.reset()
                self.ident = None
            elif verb == 'RSET':
                self.reset()
                self.reply('250 2.0.0 Ok')
            elif verb == 'NOOP':
                self.reply('250 2.0.0 Ok')
            elif verb == 'QUIT':
                self.reply('221 2.0.0 Bye')
                return
            else:
                self.reply('502 5.5.2 command not recognized')

    def rcpt(self, argument):
        address, parameters = path_and_parameters(argument)
        if self.sender is None:
            self.reply('503 5.5.1 MAIL first')
            return
        endpoint = self.agent.endpoint(address)
        if endpoint is None:
            # a domain being added or removed: the configuration follows
            self.reply('450 4.3.0 <%s>: no API for this domain here yet'
                       % address)
            return
        orcpt = parameters.get('ORCPT', '')
        original = xtext_decode(orcpt.partition(';')[2]) if orcpt else address
        # Postfix's address verification probes come from its
        # double-bounce address and stop before DATA; a delivery's
        # recipient was verified by them already
        if endpoint.entry.get('http-verify-recipients') and \
                self.sender == self.agent.config.get('probe-sender'):
            answer = endpoint.verify(original)
        else:
            answer = '250 2.1.5 Ok'
        if answer.startswith('2'):
            self.recipients.append((endpoint, original))
        self.reply(answer)

    def read_data(self):
        lines = []
        while True:
            line = self.rfile.readline()
            if not line:
                return None
            if line in (b'.\r\n', b'.\n'):
                return b''.join(lines)
            if line.startswith(b'.'):
                line = line[1:]
            lines.append(line)

    def deliver(self, message):
        node = self.agent.config.get('node', 'localhost')
        for endpoint, recipient in self.recipients:
            key = decide.idempotency_key(self.ident, node, recipient)
            self.reply(endpoint.deliver(message, self.sender or '',
                                        recipient, key))


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 64


def serve(config_path):
    agent = Agent(config_path)
    if not agent.config:
        raise SystemExit('http_delivery: no configuration in %s'
                         % config_path)
    Session.agent = agent
    path = agent.config['socket']
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    old = os.umask(0o077)     # the socket: the partition's user alone
    try:
        server = Server(path, Session)
    finally:
        os.umask(old)
    print('http_delivery: LMTP on %s for %s' % (
        path, ', '.join(sorted(agent.config['domains'])) or 'no domain yet'),
        flush=True)
    server.serve_forever()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit(__doc__)
    serve(argv[0])


if __name__ == '__main__':
    main()
