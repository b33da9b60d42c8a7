"""The password page's throttling: the delays (``recipes.decisions.
throttling``), the failures database (``recipes.stores.login_failures``)
and the page waiting before it answers."""
import urllib.parse
from wsgiref.util import setup_testing_defaults

from recipes.decisions import throttling
from recipes.programs import password_page
from recipes.stores import accounts
from recipes.stores.login_failures import LoginFailures


def test_the_penalty_grows_as_dovecots_up_to_15_s():
    assert [throttling.penalty(n) for n in range(7)] == [0, 2, 4, 8, 15, 15,
                                                          15]
    assert throttling.penalty(10 ** 6) == 15


def test_failures_count_per_client_network_and_per_account():
    key = throttling.client_network
    # one customer's IPv6 /64 is one client; IPv4 addresses each their own
    assert key('2001:db8:1:2::5') == key('2001:db8:1:2:ffff::9') == \
        'client:2001:db8:1:2::/64'
    assert key('2001:db8:1:3::5') != key('2001:db8:1:2::5')
    assert key('192.0.2.7') == key('::ffff:192.0.2.7') == 'client:192.0.2.7/32'
    assert key('192.0.2.8') != key('192.0.2.7')
    assert throttling.account(' Alice@Example.COM') == \
        throttling.account('alice@example.com')


def test_the_database_counts_forgets_and_clears(tmp_path):
    clock = [1000.0]
    db = LoginFailures(str(tmp_path / 'f' / 'failures.sqlite'),
                       now=lambda: clock[0])
    client, alice, bob = 'client:192.0.2.7', 'account:alice', 'account:bob'
    assert db.count([client, alice]) == 0
    for _ in range(3):
        db.failed([client, alice])
    db.failed([client, bob])
    assert db.count([client]) == 4 and db.count([alice]) == 3
    # the larger of the keys counts: a new client guessing alice waits too
    assert db.count(['client:192.0.2.9', alice]) == 3
    # a success clears its keys only
    db.succeeded(['client:192.0.2.9', alice])
    assert db.count([alice]) == 0 and db.count([client]) == 4
    # an hour without failure: forgotten, and pruned at the next failure
    clock[0] += throttling.FORGET_AFTER + 1
    assert db.count([client]) == 0
    db.failed([bob])
    assert db.count([bob]) == 1
    assert db.db.execute('SELECT count(*) FROM failure').fetchone()[0] == 1
    assert (tmp_path / 'f').stat().st_mode & 0o777 == 0o700
    assert (tmp_path / 'f' / 'failures.sqlite').stat().st_mode & 0o077 == 0
    db.close()


def post(directory, failures, slept, remote, user, token, password='a long '
         'enough password'):
    environ = {}
    setup_testing_defaults(environ)
    body = urllib.parse.urlencode({'user': user, 'token': token,
                                   'password': password}).encode()
    environ.update(REQUEST_METHOD='POST', CONTENT_LENGTH=str(len(body)),
                   REMOTE_ADDR=remote)
    environ['wsgi.input'].write(body)
    environ['wsgi.input'].seek(0)
    return password_page.handle(environ, directory, failures,
                                sleep=slept.append)[0]


def test_the_page_waits_longer_with_each_wrong_token(tmp_path):
    directory = str(tmp_path / 'accounts')
    database = accounts.update(
        directory, str(tmp_path / 'mail'), ['example.com'],
        [{'reference': '_a', 'parameters': {'address': 'alice@example.com'}}],
        1024, False, 'https://h/password')
    token = database.published['_a']['token']
    failures = LoginFailures(str(tmp_path / 'failures.sqlite'))
    slept = []
    attacker = '2001:db8::66'
    for guess in range(5):
        assert post(directory, failures, slept, attacker, 'alice@example.com',
                    'guess %d' % guess) == 403
    # each attempt waits the penalty of the failures before it, then the
    # failure delay
    assert slept == [0, 2, 2, 2, 4, 2, 8, 2, 15, 2]
    # an unknown account is a failure as a wrong token is
    del slept[:]
    assert post(directory, failures, slept, attacker, 'nobody@example.com',
                'x') == 403
    assert slept == [15, 2]
    # a weak password with the right token is no failure
    del slept[:]
    assert post(directory, failures, slept, '192.0.2.1', 'alice@example.com',
                token, 'short') == 400
    assert slept == [15]    # alice's account has failed 5 times
    # the right token, after the delay, works and clears the counts
    del slept[:]
    assert post(directory, failures, slept, attacker, 'alice@example.com',
                token) == 200
    assert slept == [15]
    assert failures.count([throttling.client_network(attacker),
                           throttling.account('alice@example.com')]) == 0
