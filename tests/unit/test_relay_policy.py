import io

from recipes import relay_policy

DOMAINS = [
    {'name': 'ip.example', 'authentication': 'none',
     'mail-server-host': 'fd00::2'},
    {'name': 'login.example', 'authentication': 'password',
     'mail-server-host': 'fd00::3', 'outbound-user': 'login.example'},
    {'name': 'cert.example', 'authentication': 'fingerprint',
     'mail-server-host': 'fd00::4', 'fingerprints': ['AB:CD:EF']},
]


def action(**request):
    return relay_policy.outbound_action(request, DOMAINS)


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

from recipes import greylisting
from tests.dns_server import DNSServer


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_a_first_attempt_waits_the_delay_then_passes(tmp_path):
    clock = Clock()
    grey = greylisting.Greylist(str(tmp_path / 'grey.sqlite'), 60, clock)
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
    greylisting.Greylist(path, 5, clock).check('2001:db8::1', '', 'b@in.example')
    clock.now += 5
    # a new process (another smtpd's) sees the first attempt
    assert greylisting.Greylist(path, 5, clock).check(
        '2001:db8::2', '', 'b@in.example') == 0
    assert os.stat(path).st_mode & 0o077 == 0


def test_expired_triplets_are_pruned(tmp_path):
    clock = Clock()
    grey = greylisting.Greylist(str(tmp_path / 'grey.sqlite'), 1, clock)
    grey.check('192.0.2.1', 'a@x.example', 'never@retried.example')
    grey.check('192.0.2.2', 'a@x.example', 'old@friend.example')
    clock.now += 1
    grey.check('192.0.2.2', 'a@x.example', 'old@friend.example')   # passed
    clock.now += greylisting.RETRY_WINDOW + 1
    assert grey.prune() == 1                  # the one never retried
    clock.now += greylisting.MAX_AGE
    assert grey.prune() == 1                  # the friend, silent too long
    # a first attempt older than the retry window starts over
    grey.check('192.0.2.3', 'a@x.example', 'late@x.example')
    clock.now += greylisting.RETRY_WINDOW + 10
    assert grey.check('192.0.2.3', 'a@x.example', 'late@x.example') == 1


def _hammer(path, n, queue):
    grey = greylisting.Greylist(path, 3600)
    queue.put([grey.check('192.0.2.%d' % i, 'a@x.example', 'b@y.example')
               for i in range(n)])


def test_several_processes_at_once(tmp_path):
    path = str(tmp_path / 'grey.sqlite')
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_hammer, args=(path, 50, queue))
               for _ in range(4)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    # one triplet (one /24), every answer a wait, no error, one row
    assert all(all(r > 0 for r in rs) for rs in results)
    grey = greylisting.Greylist(path, 3600)
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
    from recipes.spf_check import Checker
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
    from recipes.spf_check import spf_action
    refusal = spf_action('fail', 'SPF fail - not authorized', 'a@strict.example')
    assert refusal.startswith('550 5.7.23 SPF check failed for <a@strict.example>')
    for result in ('pass', 'softfail', 'neutral', 'none', 'permerror',
                   'temperror'):
        assert spf_action(result, 'whatever', 'a@x.example') is None


def test_no_dns_is_a_temperror_never_a_refusal(tmp_path):
    # a resolver where nothing answers (a closed port): the lookup times out
    from recipes.spf_check import Checker
    result, explanation, _ = Checker(['127.0.0.1:9'], 2, 'relay.test').check(
        '198.51.100.9', 'a@strict.example', 'mx.out.example')
    assert result == 'temperror', explanation
    # the policy then lets the message through, with the header
    policy = relay_policy.Inbound({
        'greylisting': {'enable': False},
        'spf': {'enable': True, 'nameservers': ['127.0.0.1:9'], 'timeout': 2}})
    assert relay_policy.Inbound.decide(policy, {
        'client_address': '198.51.100.9', 'sender': 'a@strict.example',
        'recipient': 'b@in.example', 'instance': '1'}).startswith(
            'PREPEND Received-SPF: TempError')


# -- inbound: the whole policy -----------------------------------------------------
def inbound(tmp_path, dns_server, **greylisting_config):
    grey = {'enable': True, 'greylisting-delay': 60}
    grey.update(greylisting_config)
    return relay_policy.Inbound({
        'greylisting': grey,
        'spf': {'enable': True, 'nameservers': [dns_server.address],
                'timeout': 5},
        'trusted-clients': ['fd00::1', '127.0.0.0/8', '::1'],
        'database': str(tmp_path / 'grey.sqlite'),
        'log-file': str(tmp_path / 'policy.log'), 'receiver': 'relay.test'})


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


def test_a_broken_policy_lets_mail_through(tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server)
    policy.greylist.db.close()       # any error in a decision
    assert ask(policy, sender='a@nowhere.example') == 'DUNNO'


def test_the_inbound_policy_process(tmp_path, dns_server):
    import json
    import subprocess
    import sys
    config = tmp_path / 'inbound.json'
    config.write_text(json.dumps({
        'greylisting': {'enable': True, 'greylisting-delay': 30},
        'spf': {'enable': True, 'nameservers': [dns_server.address],
                'timeout': 5},
        'database': str(tmp_path / 'grey.sqlite')}))
    request = ('request=smtpd_access_policy\nprotocol_state=RCPT\n'
               'client_address=198.51.100.9\nsender=a@%s\n'
               'recipient=b@in.example\ninstance=%s\n\n')
    out = subprocess.run(
        [sys.executable, '-m', 'recipes.relay_policy', 'inbound', str(config)],
        input=request % ('soft.example', 1) + request % ('strict.example', 2),
        capture_output=True, text=True, timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr
    answers = out.stdout.split('\n\n')
    assert answers[0] == ('action=DEFER_IF_PERMIT 4.7.1 Greylisted, retry in '
                          '30 seconds')
    assert answers[1].startswith('action=550 5.7.23 SPF check failed for '
                              '<a@strict.example>')


def test_spf_is_looked_up_once_per_message(tmp_path, dns_server):
    policy = inbound(tmp_path, dns_server, enable=False)
    before = len(dns_server.queries)
    for recipient in ('a@in.example', 'b@in.example', 'c@in.example'):
        ask(policy, sender='x@soft.example', recipient=recipient,
            instance='many')
    assert len(dns_server.queries) - before == 1
