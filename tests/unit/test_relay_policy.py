import io

from recipes.decisions import relay_policy as relay_policy_decisions
from recipes.decisions.relay_policy import outbound_action
from recipes.programs import relay_policy

DOMAINS = [
    {'name': 'ip.example', 'authentication': 'none',
     'mail-server-host': 'fd00::2'},
    {'name': 'login.example', 'authentication': 'password',
     'mail-server-host': 'fd00::3', 'outbound-user': 'login.example'},
    {'name': 'cert.example', 'authentication': 'fingerprint',
     'mail-server-host': 'fd00::4', 'fingerprints': ['AB:CD:EF']},
]


def action(**request):
    return outbound_action(request, DOMAINS)


def test_each_backend_is_recognised_as_its_domain_says():
    assert action(client_address='fd00:0::2', sender='a@ip.example') == 'OK'
    assert action(client_address='fd00::9', sasl_username='login.example',
                  sender='a@login.example') == 'OK'
    assert action(client_address='fd00::9', ccert_fingerprint='ab:cd:ef',
                  sender='a@cert.example') == 'OK'


def test_a_stranger_is_refused():
    assert action(client_address='fd00::9', sender='a@ip.example') \
        .startswith('REJECT 5.7.1 Relay access denied')
    # the right address is not enough for a domain that wants a login
    assert action(client_address='fd00::3', sender='a@login.example') \
        .startswith('REJECT')
    assert action(client_address='fd00::9', ccert_fingerprint='00:11',
                  sender='a@cert.example').startswith('REJECT')


def test_a_backend_cannot_send_as_another_backends_domain():
    answer = action(client_address='fd00::9', sasl_username='login.example',
                    sender='a@ip.example')
    assert answer.startswith('REJECT') and 'ip.example' in answer
    assert action(client_address='fd00::2', sender='') == 'OK'


def test_only_a_domain_a_smarthost_sends_goes_outside():
    # upstream's rule: a domain of the proxy-map anywhere (through its
    # smarthost), any other to the relay's own domains only
    def outside(sender, recipient, client='fd00::2'):
        return outbound_action(
            {'client_address': client, 'sender': sender,
             'recipient': recipient}, DOMAINS, sent_outside={'ip.example'})
    assert outside('a@ip.example', 'david@gmail.example') == 'OK'
    assert outside('a@ip.example', 'b@cert.example') == 'OK'
    refused = outbound_action(
        {'client_address': 'fd00::9', 'ccert_fingerprint': 'AB:CD:EF',
         'sender': 'a@cert.example', 'recipient': 'david@gmail.example'},
        DOMAINS, sent_outside={'ip.example'})
    assert refused.startswith('REJECT 5.7.1 <david@gmail.example>: Recipient '
                              'address rejected: the mail of cert.example '
                              "goes to this relay's own domains only"), refused
    assert outbound_action(
        {'client_address': 'fd00::9', 'ccert_fingerprint': 'AB:CD:EF',
         'sender': 'a@cert.example', 'recipient': 'b@ip.example'},
        DOMAINS, sent_outside={'ip.example'}) == 'OK'
    # a bounce goes back wherever its sender is
    assert outbound_action(
        {'client_address': 'fd00::9', 'ccert_fingerprint': 'AB:CD:EF',
         'sender': '', 'recipient': 'david@gmail.example'},
        DOMAINS, sent_outside=set()) == 'OK'


def test_the_policy_protocol():
    out = io.StringIO()
    relay_policy.serve(
        lambda r: 'OK' if r.get('sender') == 'a@b' else 'REJECT',
        io.StringIO('request=smtpd_access_policy\nsender=a@b\n\n'
                    'sender=x@y\n\n'), out)
    assert out.getvalue() == 'action=OK\n\naction=REJECT\n\n'


# -- inbound: greylisting --------------------------------------------------------
import multiprocessing
import os

import pytest

from recipes.decisions import greylisting
from recipes.stores import greylist
from recipes.stores.greylist import Greylist
from tests.dns_server import DNSServer


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_a_first_attempt_waits_the_delay_then_passes(tmp_path):
    clock = Clock()
    grey = Greylist(str(tmp_path / 'grey.sqlite'), 60, clock)
    assert grey.check('192.0.2.7', 'a@out.example', 'b@in.example') == 60
    clock.now += 20
    assert grey.check('192.0.2.7', 'a@out.example', 'b@in.example') == 40
    clock.now += 40
    assert grey.check('192.0.2.7', 'a@out.example', 'b@in.example') == 0
    # the same farm retrying from another address of its /24, later on
    clock.now += 3600
    assert grey.check('192.0.2.99', 'A@out.example', 'b@IN.example') == 0
    # another triplet starts over
    assert grey.check('192.0.2.7', 'a@out.example', 'c@in.example') == 60
    assert grey.check('198.51.100.7', 'a@out.example', 'b@in.example') == 60


def test_the_database_survives_the_process_and_is_private(tmp_path):
    path = str(tmp_path / 'var' / 'grey.sqlite')
    clock = Clock()
    Greylist(path, 5, clock).check('2001:db8::1', '', 'b@in.example')
    clock.now += 5
    # a new process (another smtpd's) sees the first attempt
    assert Greylist(path, 5, clock).check(
        '2001:db8::2', '', 'b@in.example') == 0
    assert os.stat(path).st_mode & 0o077 == 0


def test_expired_triplets_are_pruned(tmp_path):
    clock = Clock()
    grey = Greylist(str(tmp_path / 'grey.sqlite'), 1, clock)
    grey.check('192.0.2.1', 'a@x.example', 'never@retried.example')
    grey.check('192.0.2.2', 'a@x.example', 'old@friend.example')
    clock.now += 1
    grey.check('192.0.2.2', 'a@x.example', 'old@friend.example')   # passed
    clock.now += greylist.RETRY_WINDOW + 1
    assert grey.prune() == 1                  # the one never retried
    clock.now += greylist.MAX_AGE
    assert grey.prune() == 1                  # the friend, silent too long
    # a first attempt older than the retry window starts over
    grey.check('192.0.2.3', 'a@x.example', 'late@x.example')
    clock.now += greylist.RETRY_WINDOW + 10
    assert grey.check('192.0.2.3', 'a@x.example', 'late@x.example') == 1


def _hammer(path, n, queue):
    grey = Greylist(path, 3600)
    queue.put([grey.check('192.0.2.%d' % i, 'a@x.example', 'b@y.example')
               for i in range(n)])


def test_several_processes_at_once(tmp_path):
    path = str(tmp_path / 'grey.sqlite')
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_hammer, args=(path, 50, queue))
               for _ in range(4)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    # one triplet (one /24), every answer a wait, no error, one row
    assert all(all(r > 0 for r in rs) for rs in results)
    grey = Greylist(path, 3600)
    assert grey.db.execute('SELECT count(*) FROM triplet').fetchone()[0] == 1


def test_whitelisted_clients():
    entries = ['192.0.2.7', '2001:db8:1::/48', 'example.net', '.trusted.example']
    ok = greylisting.whitelisted_client
    assert ok(entries, '192.0.2.7')
    assert ok(entries, '::ffff:192.0.2.7')
    assert not ok(entries, '192.0.2.8')
    assert ok(entries, '2001:db8:1:2::9')
    assert not ok(entries, '2001:db8:2::9')
    assert ok(entries, '198.51.100.1', 'mx1.example.net')
    assert ok(entries, '198.51.100.1', 'example.net.')
    assert ok(entries, '198.51.100.1', 'a.trusted.example')
    assert not ok(entries, '198.51.100.1', 'notexample.net')
    assert not ok(entries, '198.51.100.1', 'unknown')


def test_whitelisted_recipients():
    entries = ['postmaster@in.example', 'open.example', '@Other.example']
    ok = greylisting.whitelisted_recipient
    assert ok(entries, 'Postmaster@in.example')
    assert not ok(entries, 'alice@in.example')
    assert ok(entries, 'alice@open.example')
    assert ok(entries, 'bob@other.example')
    assert not ok(entries, 'bob@sub.open.example')


# -- inbound: SPF, evaluated by pyspf over DNS answers given here ----------------
SPF_RECORDS = {
    ('strict.example', 'TXT'): ['v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all'],
    ('soft.example', 'TXT'): ['v=spf1 ip4:192.0.2.0/24 ~all'],
    ('broken.example', 'TXT'): ['v=spf1 ip4:192.0.2.0/24 bogus -all'],
    ('helo.example', 'TXT'): ['v=spf1 -all'],
}


@pytest.fixture(scope='module')
def dns_server():
    with DNSServer('127.0.0.1', SPF_RECORDS) as server:
        yield server


def spf_result(dns_server, client, sender, helo='mx.out.example'):
    from recipes.clients.resolver import SPFChecker as Checker
    return Checker([dns_server.address], 5, 'relay.test').check(
        client, sender, helo)


@pytest.mark.parametrize('client, sender, expected', [
    ('192.0.2.9', 'a@strict.example', 'pass'),
    ('2001:db8::9', 'a@strict.example', 'pass'),
    ('198.51.100.9', 'a@strict.example', 'fail'),
    ('198.51.100.9', 'a@soft.example', 'softfail'),
    ('198.51.100.9', 'a@broken.example', 'permerror'),
    ('198.51.100.9', 'a@nowhere.example', 'none'),
])
def test_spf_results(dns_server, client, sender, expected):
    result, _, header = spf_result(dns_server, client, sender)
    assert result == expected
    assert header.lower().startswith(expected) and 'relay.test' in header


def test_a_bounce_is_checked_against_the_helo_name(dns_server):
    assert spf_result(dns_server, '198.51.100.9', '', 'helo.example')[0] == 'fail'


def test_only_fail_refuses():
    from recipes.decisions.spf import spf_action
    refusal = spf_action('fail', 'SPF fail - not authorized', 'a@strict.example')
    assert refusal.startswith('550 5.7.23 SPF check failed for <a@strict.example>')
    for result in ('pass', 'softfail', 'neutral', 'none', 'permerror',
                   'temperror'):
        assert spf_action(result, 'whatever', 'a@x.example') is None


def test_no_dns_is_a_temperror_never_a_refusal(tmp_path):
    # a resolver where nothing answers (a closed port): the lookup times out
    from recipes.clients.resolver import SPFChecker as Checker
    result, explanation, _ = Checker(['127.0.0.1:9'], 2, 'relay.test').check(
        '198.51.100.9', 'a@strict.example', 'mx.out.example')
    assert result == 'temperror', explanation
    # the policy then lets the message through, with the header
    checks = relay_policy.InboundChecks({
        'greylisting': {'enable': False},
        'spf': {'enable': True, 'timeout': 2}, 'nameservers': ['127.0.0.1:9']})
    assert relay_policy.Inbound(lambda: checks).decide(checks, {
        'client_address': '198.51.100.9', 'sender': 'a@strict.example',
        'recipient': 'b@in.example', 'instance': '1'}).startswith(
            'PREPEND Received-SPF: TempError')


# -- inbound: the whole policy -----------------------------------------------------
def inbound_config(tmp_path, dns_server, **greylisting_config):
    grey = {'enable': True, 'greylisting-delay': 60}
    grey.update(greylisting_config)
    return {
        'greylisting': grey,
        'spf': {'enable': True, 'timeout': 5},
        'nameservers': [dns_server.address],
        'trusted-clients': ['fd00::1', '127.0.0.0/8', '::1'],
        'database': str(tmp_path / 'grey.sqlite'),
        'log-file': str(tmp_path / 'policy.log'), 'receiver': 'relay.test'}


def inbound(tmp_path, dns_server, **greylisting_config):
    """The inbound policy of one connection."""
    checks = relay_policy.InboundChecks(
        inbound_config(tmp_path, dns_server, **greylisting_config))
    return relay_policy.Inbound(lambda: checks)


def ask(policy, client='198.51.100.9', sender='a@soft.example',
        recipient='b@in.example', instance='1', **more):
    return policy(dict(client_address=client, sender=sender,
                       recipient=recipient, instance=instance,
                       helo_name='mx.out.example', **more))


def test_inbound_greylists_then_adds_the_spf_header(tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server, **{'greylisting-delay': 1})
    assert ask(policy) == 'DEFER_IF_PERMIT 4.7.1 Greylisted, retry in 1 seconds'
    import time
    time.sleep(1.1)
    answer = ask(policy, instance='2')
    assert answer.lower().startswith('prepend received-spf: softfail'), answer
    assert 'client-ip=198.51.100.9' in answer
    # one header per message, whatever its number of recipients
    assert ask(policy, instance='2') == 'DUNNO'
    with open(str(tmp_path / 'policy.log')) as f:
        assert 'greylisted, retry in 1 s' in f.read()


def test_inbound_refuses_an_spf_fail_before_greylisting(tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server)
    assert ask(policy, sender='a@strict.example').startswith('550 5.7.23')


def test_inbound_spf_pass_skips_greylisting(tmp_path, dns_server):
    # as upstream's relay (policyd-spf's Mail_From_pass_restriction): the
    # client the sender's domain names passes at once, with the header
    policy = inbound(tmp_path, dns_server)
    answer = ask(policy, client='192.0.2.7', sender='a@strict.example')
    assert answer.lower().startswith('prepend received-spf: pass'), answer
    # a softfail is greylisted
    assert ask(policy, client='198.51.100.9', sender='a@soft.example',
               instance='2') == ('DEFER_IF_PERMIT 4.7.1 Greylisted, retry in '
                                 '60 seconds')


def test_inbound_whitelists_and_trusted_clients(tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server, **{
        'whitelist-clients': ['198.51.100.0/24', 'friend.example'],
        'whitelist-recipients': ['open.example']})
    assert ask(policy).startswith('PREPEND Received-SPF')
    assert ask(policy, client='203.0.113.5', client_name='mx.friend.example',
               instance='2').startswith('PREPEND')
    assert ask(policy, client='203.0.113.5', recipient='x@open.example',
               instance='3').startswith('PREPEND')
    assert ask(policy, client='203.0.113.5', instance='4').startswith(
        'DEFER_IF_PERMIT')
    # the node itself and loopback: neither SPF nor greylisting
    assert ask(policy, client='fd00::1', sender='a@strict.example') == 'DUNNO'
    assert ask(policy, client='127.0.0.1', sender='a@strict.example') == 'DUNNO'


def test_trusted_clients_open_neither_the_resolver_nor_the_database(
        tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server)
    assert ask(policy, client='fd00::1') == 'DUNNO'
    assert ask(policy, client='127.0.0.1') == 'DUNNO'
    assert policy.checks().opened == {}
    assert not (tmp_path / 'grey.sqlite').exists()


def test_a_broken_policy_lets_mail_through(tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server)
    policy.checks().greylist.db.close()       # any error in a decision
    assert ask(policy, sender='a@nowhere.example') == 'DUNNO'


def test_spf_is_looked_up_once_per_message(tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server, enable=False)
    before = len(dns_server.queries)
    for recipient in ('a@in.example', 'b@in.example', 'c@in.example'):
        ask(policy, sender='x@soft.example', recipient=recipient,
            instance='many')
    assert len(dns_server.queries) - before == 1


def test_spf_answers_are_kept_for_their_ttl(tmp_path, dns_server):
    """Messages from one domain in a burst (other transactions, other
    clients) ask DNS once while its answer's TTL runs, as a caching resolver
    would; the records are evaluated for each message all the same."""
    from recipes.clients.resolver import SPFChecker as Checker
    checker = Checker([dns_server.address], 5, 'relay.test')
    before = len(dns_server.queries)
    assert [checker.check(client, 'a@strict.example', 'mx.out.example')[0]
            for client in ('192.0.2.9', '198.51.100.9', '192.0.2.10')] == [
                'pass', 'fail', 'pass']
    assert dns_server.queries[before:] == [('strict.example', 'TXT')]


# -- the daemon: a thread per connection, configuration read again -----------------
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


@pytest.fixture
def sockets():
    """A short directory for unix sockets (their paths are limited to 108
    bytes, which a pytest tmp_path may exceed)."""
    directory = tempfile.mkdtemp(prefix='policy-')
    yield directory
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


class Client:
    """A connection to a policy socket, as one smtpd process keeps it."""

    def __init__(self, path):
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.settimeout(30)
        self.socket.connect(path)
        self.file = self.socket.makefile('rw', encoding='utf-8', newline='\n')

    def ask(self, **request):
        self.file.write(''.join('%s=%s\n' % item for item in request.items())
                        + '\n')
        self.file.flush()
        answer = self.file.readline()
        assert self.file.readline() == '\n'
        assert answer.startswith('action='), answer
        return answer[len('action='):].rstrip('\n')

    def close(self):
        self.file.close()
        self.socket.close()


@pytest.fixture
def serving(sockets):
    """``serve(mode, config path)``: the path of a socket that a
    ``PolicyServer`` of the policy answers on (in this process, as the
    daemon's threads would)."""
    servers = []
    shared = relay_policy.Shared()   # one daemon's, shared

    def serve(mode, config_path):
        path = os.path.join(sockets, '%s-%d.sock' % (mode, len(servers)))
        make, handler = relay_policy.POLICIES[mode]
        server = relay_policy.PolicyServer(
            path, make(str(config_path), shared), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return path
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def write_json(path, value):
    """As buildout would: a new file in place of the old."""
    with open(str(path) + '.new', 'w') as f:
        json.dump(value, f)
    os.rename(str(path) + '.new', str(path))


def test_two_connections_at_once_each_with_its_own_message_state(
        tmp_path, dns_server, serving):
    config = tmp_path / 'inbound.json'
    write_json(config, inbound_config(tmp_path, dns_server, enable=False))
    path = serving('inbound', config)
    assert os.stat(path).st_mode & 0o777 == 0o600
    first, second = Client(path), Client(path)
    try:
        request = dict(client_address='198.51.100.9', sender='a@soft.example',
                       helo_name='mx.out.example', instance='same-id')
        # both connections stay open: the server answers each in turn
        assert first.ask(recipient='a@in.example', **request).startswith(
            'PREPEND Received-SPF: SoftFail')
        # the other smtpd's message (its queue id may be the same) gets
        # its own header: what a connection was given stays its own
        assert second.ask(recipient='a@in.example', **request).startswith(
            'PREPEND Received-SPF: SoftFail')
        assert first.ask(recipient='b@in.example', **request) == 'DUNNO'
        assert second.ask(recipient='b@in.example', **request) == 'DUNNO'
    finally:
        first.close()
        second.close()


def test_concurrent_connections_are_answered_in_parallel(tmp_path, serving,
                                                         monkeypatch):
    # each check takes a second (an unanswered DNS lookup, say): twenty
    # connections at once take about one second, not twenty
    config = tmp_path / 'outbound.json'
    write_json(config, {'domains': DOMAINS})
    path = serving('outbound', config)
    real = relay_policy.sender_action
    answers = []

    def slow(request, *args):
        time.sleep(1)
        return real(request, *args)

    def one():
        client = Client(path)
        try:
            answers.append(client.ask(client_address='fd00::2',
                                      sender='a@ip.example'))
        finally:
            client.close()
    monkeypatch.setattr(relay_policy, 'sender_action', slow)
    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    took = time.monotonic() - started
    assert answers == ['OK'] * 20
    assert took < 10, took


def test_a_new_configuration_is_read_at_the_next_request(tmp_path, serving):
    config = tmp_path / 'outbound.json'
    write_json(config, {'domains': DOMAINS})
    client = Client(serving('outbound', config))
    try:
        request = dict(client_address='fd00::7', sender='a@new.example')
        assert client.ask(**request).startswith('REJECT 5.7.1 Relay access')
        # a new backend's domain: on the same connection, at once
        write_json(config, {'domains': DOMAINS + [{
            'name': 'new.example', 'mail-server-host': 'fd00::7'}]})
        assert client.ask(**request) == 'OK'
        # a file being written (not JSON yet) leaves the previous one in force
        with open(str(config), 'w') as f:
            f.write('{"domains": [')
        assert client.ask(**request) == 'OK'
        write_json(config, {'domains': DOMAINS})
        assert client.ask(**request).startswith('REJECT 5.7.1 Relay access')
    finally:
        client.close()


def test_the_inbound_configuration_is_read_again_too(tmp_path, dns_server,
                                                       serving):
    config = tmp_path / 'inbound.json'
    settings = inbound_config(tmp_path, dns_server)
    write_json(config, settings)
    client = Client(serving('inbound', config))
    try:
        request = dict(client_address='203.0.113.5', sender='a@soft.example',
                       recipient='b@in.example', instance='1')
        assert client.ask(**request).startswith('DEFER_IF_PERMIT')
        # a new backend is trusted: neither SPF nor greylisting
        settings['trusted-clients'].append('203.0.113.5')
        write_json(config, settings)
        assert client.ask(**request) == 'DUNNO'
    finally:
        client.close()


def test_the_greylist_is_shared_by_threads(tmp_path):
    grey = Greylist(str(tmp_path / 'grey.sqlite'), 3600)
    results, errors = [], []

    def hammer():
        try:
            results.extend(grey.check('192.0.2.%d' % i, 'a@x.example',
                                      'b@y.example') for i in range(50))
        except Exception as e:
            errors.append(e)
    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 400
    assert all(r > 0 for r in results)
    assert grey.db.execute('SELECT count(*) FROM triplet').fetchone()[0] == 1


def wait_for_socket(path, process, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            Client(path).close()
            return
        except OSError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, 'nothing answers on ' + path
            time.sleep(0.05)


def test_the_daemon_serves_both_policies_over_a_stale_socket(
        tmp_path, dns_server, sockets):
    inbound_path = os.path.join(sockets, 'inbound.sock')
    outbound_path = os.path.join(sockets, 'outbound.sock')
    # a socket left behind by a daemon that was killed
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(inbound_path)
    stale.close()
    (tmp_path / 'inbound.json').write_text(json.dumps({
        'greylisting': {'enable': True, 'greylisting-delay': 30},
        'spf': {'enable': True, 'timeout': 5},
        'nameservers': [dns_server.address],
        'database': str(tmp_path / 'grey.sqlite')}))
    write_json(tmp_path / 'outbound.json', {'domains': DOMAINS})
    daemon = subprocess.Popen(
        [sys.executable, '-m', 'recipes.programs.relay_policy',
         'outbound', outbound_path, str(tmp_path / 'outbound.json'),
         'inbound', inbound_path, str(tmp_path / 'inbound.json')],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(inbound_path, daemon)
        wait_for_socket(outbound_path, daemon)
        for path in (inbound_path, outbound_path):
            assert os.stat(path).st_mode & 0o777 == 0o600
        client = Client(inbound_path)
        request = dict(request='smtpd_access_policy', protocol_state='RCPT',
                       client_address='198.51.100.9',
                       recipient='b@in.example')
        assert client.ask(sender='a@soft.example', instance='1', **request) \
            == 'DEFER_IF_PERMIT 4.7.1 Greylisted, retry in 30 seconds'
        assert client.ask(sender='a@strict.example', instance='2', **request) \
            .startswith('550 5.7.23 SPF check failed for <a@strict.example>')
        client.close()
        client = Client(outbound_path)
        assert client.ask(client_address='fd00::2', sender='a@ip.example') \
            == 'OK'
        # an unknown sender is still refused
        assert client.ask(client_address='fd00::2', sender='a@cert.example') \
            .startswith('REJECT 5.7.1 <a@cert.example>')
        assert client.ask(client_address='fd00::9', sender='a@ip.example') \
            .startswith('REJECT 5.7.1 Relay access denied')
        client.close()
    finally:
        daemon.terminate()
        _, stderr = daemon.communicate(timeout=30)
    assert 'policies on %s, %s' % (outbound_path, inbound_path) in stderr


def test_a_daemon_with_an_unreadable_configuration_does_not_start(
        tmp_path, sockets):
    out = subprocess.run(
        [sys.executable, '-m', 'recipes.programs.relay_policy', 'outbound',
         os.path.join(sockets, 'outbound.sock'), str(tmp_path / 'none.json')],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and 'none.json' in out.stderr


def test_the_promise_asks_each_policy_as_a_trusted_client(
        tmp_path, dns_server, serving, sockets):
    from recipes.promises.policy_answering import answer
    write_json(tmp_path / 'inbound.json',
               inbound_config(tmp_path, dns_server))
    write_json(tmp_path / 'outbound.json', {'domains': DOMAINS})
    assert answer(serving('inbound', tmp_path / 'inbound.json')) \
        == 'action=DUNNO'
    assert not (tmp_path / 'grey.sqlite').exists()    # nothing recorded
    assert answer(serving('outbound', tmp_path / 'outbound.json')) \
        .startswith('action=REJECT 5.7.1 Relay access denied')
    with pytest.raises(OSError):
        answer(os.path.join(sockets, 'nobody.sock'))


# -- inbound: the size of a message against its recipient's backend ------------
def test_a_message_too_big_for_its_backend_is_refused_during_the_dialogue(
        tmp_path, dns_server):
    config = inbound_config(tmp_path, dns_server, enable=False)
    config['size-limits'] = {'small.example': 1000, 'big.example': 5000}
    checks = relay_policy.InboundChecks(config)
    policy = relay_policy.Inbound(lambda: checks)

    def at(state, **request):
        return policy(dict(dict(client_address='fd00::1', sender='a@x.example',
                                instance='m1', protocol_state=state),
                           **request))
    # announced with MAIL FROM SIZE=: refused at RCPT, for that domain only
    assert at('RCPT', recipient='a@small.example', size='2000').startswith(
        '552 5.3.4 Message too big')
    assert at('RCPT', recipient='a@big.example', size='2000') == 'DUNNO'
    # not announced: the smallest limit among its recipients, at the end of
    # the data (a trusted client too: its backend would bounce it all the
    # same)
    assert at('RCPT', recipient='a@big.example', size='0',
              instance='m2') == 'DUNNO'
    assert at('RCPT', recipient='b@small.example', size='0',
              instance='m2') == 'DUNNO'
    assert at('END-OF-MESSAGE', size='1500', instance='m2').startswith(
        '552 5.3.4 Message too big')
    assert at('END-OF-MESSAGE', size='900', instance='m2') == 'DUNNO'
    # the next message starts afresh; a domain without a limit has none
    assert at('RCPT', recipient='a@big.example', size='0',
              instance='m3') == 'DUNNO'
    assert at('END-OF-MESSAGE', size='1500', instance='m3') == 'DUNNO'
    assert at('RCPT', recipient='a@other.example', size='0',
              instance='m4') == 'DUNNO'
    assert at('END-OF-MESSAGE', size='10000000', instance='m4') == 'DUNNO'


# -- the header checks (milters) -------------------------------------------------
from recipes.programs import milter


class MTA:
    """Postfix's side of the milter protocol, over one connection."""

    def __init__(self, path):
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.settimeout(30)
        self.socket.connect(path)
        self.stream = self.socket.makefile('rb')

    def send(self, command, data=b''):
        self.socket.sendall(milter.packet(command, data))

    def reply(self):
        return milter.read_packet(self.stream)

    def negotiate(self, offered=0x3fffff):
        import struct
        self.send(milter.NEGOTIATE, struct.pack('!III', 6, 0x1ff, offered))
        return struct.unpack('!III', self.reply()[1])

    def connect(self, address, port):
        import struct
        self.send(milter.CONNECT, b'client.example\0' + b'6'
                  + struct.pack('!H', port) + address.encode() + b'\0')
        return self.reply()

    def mail(self, sender, **macros):
        self.send(milter.MACRO, b'M' + b''.join(
            b'{%s}\0%s\0' % (k.encode(), v.encode())
            for k, v in macros.items()))
        self.send(milter.MAIL, b'<%s>\0' % sender.encode())
        return self.reply()

    def headers(self, *lines):
        """Each header line (no reply asked), then the end of the header."""
        for name, value in lines:
            self.send(milter.HEADER, b'%s\0%s\0' % (name.encode(),
                                                   value.encode()))
        self.send(milter.END_OF_HEADERS)
        return self.reply()

    def close(self):
        self.send(milter.QUIT)
        self.stream.close()
        self.socket.close()


def test_the_relay_refuses_a_from_header_of_another_backends_domain(
        tmp_path, serving):
    config = tmp_path / 'outbound.json'
    write_json(config, {'domains': DOMAINS})
    policy = Client(serving('outbound', config))
    mta = MTA(serving('outbound-header', config))
    try:
        # Postfix is told to skip what the check does not read
        version, actions, protocol = mta.negotiate()
        assert (version, actions) == (6, 0)
        assert protocol == milter.SKIPPED
        assert mta.connect('fd00::2', 4242) == (milter.CONTINUE, b'')
        # the outbound policy recognised the client at RCPT: ip.example
        assert policy.ask(client_address='fd00::2', client_port='4242',
                          sender='a@ip.example') == 'OK'
        assert mta.mail('a@ip.example') == (milter.CONTINUE, b'')
        command, text = mta.headers(('Subject', 'hi'),
                                    ('From', 'Boss <boss@login.example>'))
        assert command == milter.REPLY_CODE
        assert text.startswith(b'550 5.7.1 <boss@login.example>: the From '
                               b'header may only show addresses of your '
                               b'domains (ip.example)')
        # the next message of the session, From its own domain
        mta.send(milter.ABORT)
        assert mta.mail('a@ip.example') == (milter.CONTINUE, b'')
        assert mta.headers(('From', 'a@ip.example')) == (milter.CONTINUE, b'')
        mta.send(milter.END_OF_BODY)
        assert mta.reply() == (milter.ACCEPT, b'')
        # another client the policy never saw: try again later
        mta.send(milter.QUIT_NEW_CONNECTION)
        mta.negotiate()
        mta.connect('fd00::2', 5353)
        mta.mail('a@ip.example')
        command, text = mta.headers(('From', 'a@ip.example'))
        assert command == milter.REPLY_CODE and text.startswith(b'451 4.7.1')
    finally:
        mta.close()
        policy.close()


def test_a_backend_user_may_only_show_its_own_addresses(tmp_path, serving):
    senders = tmp_path / 'senders'
    senders.write_text('alice@mail1.example alice@mail1.example\n'
                       'team@mail1.example alice@mail1.example, '
                       'bob@mail1.example\n')
    mta = MTA(serving('submission-header', senders))
    try:
        mta.negotiate()
        mta.connect('fd00::9', 1234)
        # mail from the relay (no login): nothing to check in it
        assert mta.mail('x@outside.example') == (milter.ACCEPT, b'')
        assert mta.mail('alice@mail1.example',
                        auth_authen='alice@mail1.example') == (
                            milter.CONTINUE, b'')
        assert mta.headers(('From', 'team@mail1.example')) == (
            milter.CONTINUE, b'')
        mta.send(milter.END_OF_BODY)
        assert mta.reply() == (milter.ACCEPT, b'')
        mta.mail('alice@mail1.example', auth_authen='alice@mail1.example')
        command, text = mta.headers(('From', 'bob@mail1.example'))
        assert command == milter.REPLY_CODE and text.startswith(
            b'550 5.7.1 <bob@mail1.example>')
        # the account database changed: read again at the next message
        mta.send(milter.ABORT)
        write_json_text = 'bob@mail1.example alice@mail1.example\n'
        senders.with_name('senders.new').write_text(write_json_text)
        os.rename(str(senders.with_name('senders.new')), str(senders))
        mta.mail('alice@mail1.example', auth_authen='alice@mail1.example')
        assert mta.headers(('From', 'bob@mail1.example')) == (
            milter.CONTINUE, b'')
    finally:
        mta.close()


# -- the other way: the node pins a backend known by its certificate ---------------
def test_backend_pins_gather_each_backends_fingerprints():
    domains = [
        {'name': 'a.example', 'mail-server-host': 'fd00::3',
         'mail-server-port': 10025, 'authentication': 'fingerprint',
         'fingerprints': ['AA:01', 'BB:02']},
        # the same backend for a second domain: one next hop
        {'name': 'b.example', 'mail-server-host': 'fd00::3',
         'mail-server-port': 10025, 'authentication': 'fingerprint',
         'fingerprints': ['BB:02', 'CC:03']},
        {'name': 'c.example', 'mail-server-host': 'fd00::4',
         'mail-server-port': 10025, 'authentication': 'password'},
        {'name': 'd.example', 'mail-server-host': '192.0.2.5',
         'authentication': 'fingerprint', 'fingerprints': ['DD:04']},
    ]
    assert relay_policy_decisions.backend_pins(domains) == [
        ('[192.0.2.5]:25', ['DD:04']),
        ('[fd00::3]:10025', ['AA:01', 'BB:02', 'CC:03'])]
