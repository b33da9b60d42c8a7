"""The monitor: its URLs as upstream's publish them
(recipes.decisions.monitor), its credentials (recipes.stores.monitor), when
its daemon builds the state (recipes.programs.monitor)."""
import os
import re
import stat
import threading
import urllib.parse

import pytest
from passlib.hash import sha512_crypt

from recipes.decisions import monitor
from recipes.programs.monitor import Schedule, link, modification, run
from recipes.stores import monitor as store

BASE = 'https://[fd00::3]:8196'


# -- the URLs ---------------------------------------------------------------------
def test_the_base_url_is_the_partition_address_and_port():
    assert monitor.base_url('fd00::3') == BASE
    assert monitor.base_url('fd00::3', 9000) == 'https://[fd00::3]:9000'


def test_the_setup_url_reads_as_upstream_tests_read_it():
    url = monitor.setup_url(monitor.INTERFACE_URL, BASE, 'admin', 'pw-1_x')
    assert url == ('https://monitor.app.officejs.com/#page=ojsm_landing'
                   '&url=https://[fd00::3]:8196/public/feeds'
                   '&username=admin&password=pw-1_x')
    # upstream's tests (kvm, powerdns): the third "https" starts the feeds
    # URL, whose path holds the credentials as a query
    auth = urllib.parse.parse_qs(urllib.parse.urlparse(
        'https' + url.split('https')[2]).path)
    assert auth == {'username': ['admin'], 'password': ['pw-1_x']}


@pytest.mark.parametrize('password', ['a&b', 'a#b', 'a b', 'a\nb'])
def test_a_value_that_would_break_the_setup_url_is_refused(password):
    with pytest.raises(ValueError, match='password'):
        monitor.setup_url(monitor.INTERFACE_URL, BASE, 'admin', password)


def test_the_web_app_origin_and_its_subdomains_are_allowed():
    pattern = re.compile(monitor.cors_origin(monitor.INTERFACE_URL))
    for origin in ('https://monitor.app.officejs.com',
                   'http://monitor.app.officejs.com',
                   'https://x.monitor.app.officejs.com'):
        assert pattern.match(origin), origin
    for origin in ('https://monitorXapp.officejs.com',
                   'https://monitor.app.officejs.com.evil.example',
                   'https://evilmonitor.app.officejs.com'):
        assert not pattern.match(origin), origin
    with pytest.raises(ValueError):
        monitor.cors_origin('#page=x')


# -- the credentials --------------------------------------------------------------
def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_password_is_generated_once_and_kept_private(tmp_path):
    directory = str(tmp_path / 'monitor')
    first = store.password(directory)
    assert len(first) >= 32 and not re.search('[&#\\s]', first)
    assert store.password(directory) == first
    assert mode(directory) == 0o700
    assert mode(store.paths(directory)['password']) == 0o600


def test_a_given_password_replaces_the_generated_one(tmp_path):
    directory = str(tmp_path)
    store.password(directory)
    assert store.password(directory, 'from-the-cluster') == 'from-the-cluster'
    assert store.read(store.paths(directory)['password']) == 'from-the-cluster'


def test_the_htpasswd_file_holds_a_hash_rewritten_only_on_change(tmp_path):
    directory = str(tmp_path)
    path = store.paths(directory)['htpasswd']
    store.write_htpasswd(directory, 'admin', 'first-password')
    user, hashed = store.read(path).split(':', 1)
    assert user == 'admin' and hashed.startswith('$6$')
    assert 'first-password' not in store.read(path)
    assert sha512_crypt.verify('first-password', hashed)
    assert mode(path) == 0o600
    inode = os.stat(path).st_ino
    store.write_htpasswd(directory, 'admin', 'first-password')
    assert os.stat(path).st_ino == inode
    store.write_htpasswd(directory, 'admin', 'second-password')
    assert sha512_crypt.verify('second-password',
                               store.read(path).split(':', 1)[1])


def test_the_setup_url_is_kept_in_a_private_file(tmp_path):
    store.write_setup_url(str(tmp_path), 'https://x#a&password=p')
    path = store.paths(str(tmp_path))['setup-url']
    assert store.read(path) == 'https://x#a&password=p'
    assert mode(path) == 0o600


# -- when the daemon works ---------------------------------------------------------
def test_the_state_is_built_at_start_then_once_results_settle():
    schedule = Schedule(quiet=2, refresh=120)
    assert schedule.tick(0, 'm1') == (True, True)
    schedule.bootstrap_done(0, True)
    schedule.build_done(0)
    assert schedule.tick(1, 'm1') == (False, False)
    # slapgrid writes results: built once they stay unchanged 2 s
    assert schedule.tick(10, 'm2') == (False, False)
    assert schedule.tick(11, 'm3') == (False, False)
    assert schedule.tick(12, 'm3') == (False, False)
    assert schedule.tick(13, 'm3') == (False, True)
    schedule.build_done(13)
    assert schedule.tick(14, 'm3') == (False, False)


def started(bootstrapped):
    """A schedule whose first bootstrap and build were at 0."""
    schedule = Schedule(quiet=2, refresh=120)
    schedule.tick(0, 'm')
    schedule.bootstrap_done(0, bootstrapped)
    schedule.build_done(0)
    return schedule


def test_the_state_is_built_at_least_every_refresh():
    schedule = started(True)
    assert schedule.tick(119, 'm') == (False, False)
    assert schedule.tick(120, 'm') == (False, True)


def test_a_failed_bootstrap_is_tried_again_after_refresh():
    schedule = started(False)
    assert schedule.tick(60, 'm') == (False, False)
    assert schedule.tick(120, 'm')[0]
    schedule.bootstrap_done(120, True)
    assert not schedule.tick(400, 'm')[0]


class FakeMonitor:

    def __init__(self, results, fail=False):
        self.results = results
        self.fail = fail
        self.calls = []

    def prepare(self):
        self.calls.append('prepare')

    def bootstrap(self):
        self.calls.append('bootstrap')
        return True

    def build(self):
        self.calls.append('build')
        if self.fail:
            raise ValueError('a damaged result')


def test_a_failing_build_never_stops_the_monitor(tmp_path, capsys):
    fake = FakeMonitor(str(tmp_path), fail=True)
    stop = threading.Event()
    times = iter(range(0, 1000, 200))

    def clock():
        value = next(times)
        if value >= 600:
            stop.set()
        return value

    run(fake, stop, Schedule(quiet=2, refresh=120), clock)
    assert fake.calls[:3] == ['prepare', 'bootstrap', 'build']
    assert fake.calls.count('build') >= 2
    assert 'a damaged result' in capsys.readouterr().err


def test_links_point_where_slapgrid_writes(tmp_path):
    target, other = str(tmp_path / 'result'), str(tmp_path / 'other')
    name = str(tmp_path / 'promise')
    link(target, name)
    assert os.readlink(name) == target
    link(target, name)
    link(other, name)
    assert os.readlink(name) == other
    assert modification(str(tmp_path / 'absent')) is None
    os.mkdir(target)
    assert modification(target) is not None


def test_the_folders_are_where_slapgrid_writes():
    from slapos.grid.promise import PROMISE_RESULT_FOLDER_NAME
    from slapos.grid.promise.generic import PROMISE_LOG_FOLDER_NAME
    from recipes.programs import monitor as program
    assert program.RESULT_FOLDER == PROMISE_RESULT_FOLDER_NAME
    assert program.LOG_FOLDER == PROMISE_LOG_FOLDER_NAME
