"""recipes.programs.greylist_peers and Greylist.learn: two relay nodes'
greylisting, each with its own database, told of each other's first
attempts over real sockets on loopback."""
import socket
import threading
import time

import pytest

from recipes.clients.resolver import lookup_with, resolver
from recipes.programs import greylist_peers
from recipes.stores.greylist import Greylist
from tests.dns_server import DNSServer

DELAY = 300
CLIENT, SENDER, RECIPIENT = '192.0.2.7', 'a@x.example', 'b@y.example'


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def node(tmp_path, name, clock, address, peer, port):
    """A node on ``address`` whose Greylist's first attempts go to its
    ``peer`` (an address, on ``port``), with its peer server on
    ``port``: each node hears its peer alone, known by its address."""
    notices = greylist_peers.Notices(lambda: [peer], port, source=address)
    grey = Greylist(str(tmp_path / name / 'greylist.sqlite'), DELAY,
                    now=clock, on_first=notices.send)
    server = greylist_peers.PeerServer(address, port, lambda: [peer],
                                       grey.learn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return grey, server


def wait_until(predicate, timeout=10):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline
        time.sleep(0.05)


def test_a_retry_through_another_node_passes_after_the_delay(tmp_path,
                                                            clock):
    port = free_port()
    # two addresses of the machine, as two nodes: each other's peer (the
    # notices leave from the node's own address, which its peer knows)
    a, server_a = node(tmp_path, 'a', clock, '127.0.0.2', '127.0.0.3', port)
    b, server_b = node(tmp_path, 'b', clock, '127.0.0.3', '127.0.0.2', port)
    try:
        assert a.check(CLIENT, SENDER, RECIPIENT) == DELAY
        key = '192.0.2.0/24/a@x.example/b@y.example'
        wait_until(lambda: b.db.execute(
            'SELECT first FROM triplet WHERE key = ?', (key,)).fetchone())
        # too early through b as through a
        clock.now += DELAY - 10
        assert b.check(CLIENT, SENDER, RECIPIENT) == 10
        clock.now += 10
        assert b.check(CLIENT, SENDER, RECIPIENT) == 0
    finally:
        server_a.shutdown()
        server_b.shutdown()


def test_a_stranger_is_not_heard(tmp_path, clock):
    port = free_port()
    grey = Greylist(str(tmp_path / 'greylist.sqlite'), DELAY, now=clock)
    # the only peer is an address this test does not connect from
    server = greylist_peers.PeerServer('127.0.0.1', port,
                                       lambda: ['192.0.2.1'], grey.learn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(('127.0.0.1', port), 2) as s:
            s.sendall(greylist_peers.notice('k', clock.now - DELAY))
            # closed without a word
            assert s.recv(10) == b''
        assert grey.check(CLIENT, SENDER, RECIPIENT) == DELAY
        assert grey.db.execute('SELECT count(*) FROM triplet').fetchone()[0] == 1
    finally:
        server.shutdown()


def test_what_is_learnt_never_shortens_what_was_seen_nor_comes_from_the_future(
        tmp_path, clock):
    grey = Greylist(str(tmp_path / 'greylist.sqlite'), DELAY, now=clock)
    key = '192.0.2.0/24/a@x.example/b@y.example'
    grey.learn(key, clock.now + 3600)          # a peer's clock ahead: ignored
    assert grey.check(CLIENT, SENDER, RECIPIENT) == DELAY
    grey.learn(key, clock.now + 10)            # later than ours: ours kept
    clock.now += DELAY
    assert grey.check(CLIENT, SENDER, RECIPIENT) == 0
    # an earlier first attempt seen elsewhere counts, for a new triplet too
    other = '192.0.2.0/24/c@x.example/b@y.example'
    grey.learn(other, clock.now - DELAY)
    assert grey.check(CLIENT, 'c@x.example', RECIPIENT) == 0


def test_a_dead_peer_costs_one_timeout_then_rests(tmp_path, clock):
    dead = free_port()      # nothing listens there
    notices = greylist_peers.Notices(lambda: ['127.0.0.1'], dead)
    start = time.time()
    for n in range(50):
        notices.send('key %d' % n, clock.now)
    wait_until(lambda: notices.pending.empty())
    assert time.time() - start < greylist_peers.TIMEOUT + 1
    assert notices.resting['127.0.0.1'] > time.monotonic()


def test_a_notice_line_round_trips():
    line = greylist_peers.notice('192.0.2.0/24/a@x/b@y', 1234.5)
    assert greylist_peers.parse(line) == ('192.0.2.0/24/a@x/b@y', 1234.5)
    assert greylist_peers.parse(b'garbage\n') is None


def test_the_peers_are_the_addresses_of_the_other_nodes_names():
    """Asked of the relay configuration's nameservers (here the stand-in DNS
    server), kept for REFRESH seconds, kept when DNS fails."""
    records = {('relay2.example.com', 'AAAA'): ['2001:db8::2'],
               ('relay2.example.com', 'A'): ['192.0.2.2'],
               ('relay3.example.com', 'AAAA'): ['2001:db8::3']}
    clock = Clock()
    with DNSServer('127.0.0.1', records) as dns:
        peers = greylist_peers.PeerAddresses(
            ['relay2.example.com', 'relay3.example.com', '2001:db8::4',
             'missing.example.com'],
            lookup_with(resolver([dns.address], 2)), now=clock)
        assert peers() == ['192.0.2.2', '2001:db8::2', '2001:db8::3',
                           '2001:db8::4']
        dns.records[('relay3.example.com', 'AAAA')] = ['2001:db8::33']
        assert '2001:db8::3' in peers()          # kept until REFRESH
        clock.now += greylist_peers.REFRESH
        assert '2001:db8::33' in peers()
    # DNS gone: what was found is kept
    clock.now += greylist_peers.REFRESH
    assert '2001:db8::33' in peers()


def test_a_name_without_address_is_asked_again_soon():
    """A node whose record is published after the daemon first asked (the
    daemon answers its promise before the cluster's records exist) is a
    peer within MISSING seconds, not REFRESH."""
    records = {}
    clock = Clock()
    with DNSServer('127.0.0.1', records) as dns:
        peers = greylist_peers.PeerAddresses(
            ['relay2.example.com'], lookup_with(resolver([dns.address], 2)),
            now=clock)
        assert peers() == []
        dns.records[('relay2.example.com', 'AAAA')] = ['2001:db8::2']
        assert peers() == []
        clock.now += greylist_peers.MISSING
        assert peers() == ['2001:db8::2']
        assert greylist_peers.MISSING < greylist_peers.REFRESH


def test_the_inbound_checks_open_their_greylist_with_peers(tmp_path):
    # the greylist of a node with peers opens the peers' addresses too: at
    # the first client that is not trusted, within the SMTP dialogue (it
    # once waited for itself there, and every session hung at RCPT)
    from recipes.programs.relay_policy import InboundChecks
    checks = InboundChecks({
        'greylisting': {'enable': True, 'greylisting-delay': 60},
        'spf': {'enable': False, 'timeout': 1}, 'nameservers': [],
        'database': str(tmp_path / 'triplets.sqlite'),
        'greylisting-peers': {'port': 10026, 'names': ['fd00::9']}})
    opened = []
    thread = threading.Thread(target=lambda: opened.append(checks.greylist),
                              daemon=True)
    thread.start()
    thread.join(5)
    assert opened and opened[0] is not None
    assert checks.peer_addresses() == ['fd00::9']
