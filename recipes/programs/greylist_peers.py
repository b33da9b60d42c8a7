"""The greylisting of a relay cluster's nodes, as one: each node tells the
others of each first attempt it greylists, so that the sender's retry
through another node (another MX of the same domain) passes once the delay
is over, instead of being greylisted again there.

The peers are the other nodes of the cluster, found by their names (each
node's ``fqdn``, whose AAAA and A records the cluster publishes in every
domain's ``dns-records``, as an MX's names must resolve anyway), asked of
the relay configuration's ``nameservers`` and asked again every
``REFRESH`` seconds: a node whose name does not resolve yet is no peer
until it does (its retries are greylisted once more, as without the
cluster). A name that is an address is that address.

Protocol: TCP, on the node's address and ``greylisting-peer-port``; one
line a first attempt, ``<its time, seconds since the epoch> <triplet
key>`` (``recipes.decisions.greylisting.triplet``), from the node's own
address (the one its name resolves to) to each peer. A node takes lines
from its peers' addresses alone, and closes any
other client at once. Best effort: a notice that cannot be sent within
``TIMEOUT`` is dropped, and a peer that does not answer is left alone for
``REST`` seconds (its notices dropped meanwhile): a retry through it is
then greylisted once more, as without the cluster. Nothing waits for a
peer in the SMTP dialogue: notices leave from a thread of their own.

Part of the policy daemon (``recipes.programs.relay_policy``, mode
``greylist-peers``), which owns the greylisting database.
"""
import queue
import socket
import socketserver
import threading
import time

from ..decisions.network import ip_address

TIMEOUT = 2          # seconds to connect to a peer, or to send it a notice
REFRESH = 300        # seconds the peers' addresses are kept
MISSING = 10         # seconds before a name without address is asked again
REST = 10            # seconds a peer that failed is left alone
PENDING = 10000      # notices waiting to leave, at most (then dropped)
LINE = 4096          # the longest notice line taken


def notice(key, first):
    return ('%.3f %s\n' % (first, key)).encode('utf-8', 'surrogateescape')


def parse(line):
    """``(key, first)`` of a notice line, or None."""
    try:
        first, key = line.decode('utf-8', 'surrogateescape').rstrip(
            '\r\n').split(' ', 1)
        return key, float(first)
    except ValueError:
        return None


class PeerAddresses:
    """``()`` gives the addresses of the peers ``names``, looked up with
    ``lookup(name, qtype)`` (``recipes.clients.resolver.lookup_with``) at
    most every ``REFRESH`` seconds, or ``MISSING`` seconds for a name that
    had no address yet (a node whose record is published after the daemon
    first asked); a failed lookup keeps what was found before."""

    def __init__(self, names, lookup, now=time.monotonic):
        self.names = list(names)
        self.lookup = lookup
        self.now = now
        self.found = {}
        self.checked = {}
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            now = self.now()
            for name in self.names:
                wait = REFRESH if self.found.get(name) else MISSING
                if name not in self.checked or \
                        now - self.checked[name] >= wait:
                    self.checked[name] = now
                    self.found[name] = self._addresses(name)
            return sorted({a for found in self.found.values() for a in found})

    def _addresses(self, name):
        if ip_address(name) is not None:
            return [name]
        found = []
        for qtype in ('AAAA', 'A'):
            try:
                found += [value for _, value in self.lookup(name, qtype)]
            except Exception:
                return self.found.get(name, [])
        return found


class Notices:
    """Tells each of ``peers()`` (their addresses, on ``port``) of the
    first attempts ``send`` is given, from a thread of its own."""

    def __init__(self, peers, port, log=lambda text: None, source=None):
        self.peers = peers
        self.port = port
        self.log = log
        # the node's own address, which its peers know it by (else the
        # system chooses: another address of the machine)
        self.source = (source, 0) if source else None
        self.pending = queue.Queue(PENDING)
        self.connections = {}
        self.resting = {}          # peer -> until when it is left alone
        threading.Thread(target=self._run, daemon=True).start()

    def send(self, key, first):
        try:
            self.pending.put_nowait(notice(key, first))
        except queue.Full:
            pass

    def _run(self):
        while True:
            line = self.pending.get()
            for peer in self.peers():
                self._deliver(peer, line)

    def _deliver(self, peer, line):
        if self.resting.get(peer, 0) > time.monotonic():
            return
        try:
            connection = self.connections.get(peer)
            if connection is None:
                connection = socket.create_connection(
                    (peer, self.port), TIMEOUT, source_address=self.source)
                self.connections[peer] = connection
            connection.sendall(line)
        except OSError as e:
            connection = self.connections.pop(peer, None)
            if connection is not None:
                connection.close()
            self.resting[peer] = time.monotonic() + REST
            self.log('greylisting peer [%s]:%s: %s (left alone %d s)'
                     % (peer, self.port, e, REST))


class PeerConnection(socketserver.StreamRequestHandler):
    """A peer's notices, each given to ``server.learn(key, first)``."""

    def handle(self):
        try:
            while True:
                line = self.rfile.readline(LINE)
                if not line:
                    return
                found = parse(line)
                if found is not None:
                    self.server.learn(*found)
        except OSError:
            pass


class PeerServer(socketserver.ThreadingTCPServer):
    """Listens on ``(address, port)``; takes notices from the addresses
    ``peers()`` gives (read at each connection, so that a cluster that
    changes is followed) and gives them to ``learn``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, port, peers, learn):
        self.peers = peers
        self.learn = learn
        self.address_family = (socket.AF_INET6 if ':' in address
                               else socket.AF_INET)
        super().__init__((address, port), PeerConnection)

    def verify_request(self, request, client_address):
        client = ip_address(client_address[0])
        return client is not None and any(
            ip_address(peer) == client for peer in self.peers())
