import json

from recipes.promises import deferred_queue


def test_a_queue_that_keeps_growing():
    assert deferred_queue.keeps_growing([0, 1, 2, 3, 4], 4)
    assert not deferred_queue.keeps_growing([1, 2, 3, 4], 4)  # too few runs
    assert not deferred_queue.keeps_growing([0, 1, 1, 3, 4], 4)
    assert not deferred_queue.keeps_growing([5, 5, 5, 5, 5], 4)
    assert deferred_queue.keeps_growing([9, 0, 1, 2, 3, 4], 4)


def test_counts_are_kept_across_runs(tmp_path):
    state = str(tmp_path / 'promise' / 'deferred.json')
    for count in range(7):
        counts = deferred_queue.record(state, count, 5)
    assert counts == [2, 3, 4, 5, 6]


# -- the relay's promises -------------------------------------------------------
import datetime
import socket

import pytest

from recipes.promises import certificate_expiry, smarthost_login


def test_expiry_warns_within_the_days_and_gives_the_date():
    now = datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc)
    problem = certificate_expiry.expiry_problem(
        now + datetime.timedelta(days=10, hours=1), now, 15)
    assert problem == ('expires on 2026-12-01 01:00 UTC, in 10 days (less '
                       'than 15): renew it')
    assert certificate_expiry.expiry_problem(
        now - datetime.timedelta(days=1), now, 15).startswith('expired on 2026-11-20')
    assert certificate_expiry.expiry_problem(
        now + datetime.timedelta(days=30), now, 15) is None


def test_expiry_reads_the_first_certificate_of_a_chain(tmp_path):
    import subprocess
    for name, days in (('leaf', 3), ('ca', 300)):
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:prime256v1', '-nodes', '-days',
                        str(days), '-subj', '/CN=%s' % name, '-keyout',
                        str(tmp_path / (name + '.key')), '-out',
                        str(tmp_path / (name + '.crt'))],
                       check=True, capture_output=True)
    chain = tmp_path / 'chain.crt'
    chain.write_text((tmp_path / 'leaf.crt').read_text()
                     + (tmp_path / 'ca.crt').read_text())
    left = certificate_expiry.not_after(str(chain)) - datetime.datetime.now(
        datetime.timezone.utc)
    assert datetime.timedelta(days=2) < left <= datetime.timedelta(days=3)


def test_the_smarthost_password_comes_from_the_map(tmp_path):
    path = tmp_path / 'smarthost-passwords'
    path.write_text('# @sender domain -> user:password\n'
                    '@a.example user-a:pa:ss\n@b.example user-b:x\n')
    assert smarthost_login.password_from_map(str(path), '@a.example') == 'pa:ss'
    assert smarthost_login.password_from_map(str(path), '@c.example') is None


@pytest.fixture(scope='module')
def smarthost(tmp_path_factory):
    from tests.smarthost import Smarthost
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        starttls = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        implicit = s.getsockname()[1]
    # the implicit TLS port must end in 465 for the relay to use it so
    implicit = 20465 if implicit != 20465 else 21465
    with Smarthost('127.0.0.1', str(tmp_path_factory.mktemp('sh')),
                   {'relay': 'the-secret'}, starttls_port=starttls,
                   implicit_tls_port=implicit) as server:
        yield server


def test_the_smarthost_login_over_starttls_and_implicit_tls(smarthost):
    for port in (smarthost.starttls_port, smarthost.implicit_tls_port):
        smarthost_login.check_login('127.0.0.1', port, 'relay', 'the-secret')


def test_a_wrong_smarthost_password_is_named_but_not_shown(smarthost):
    with pytest.raises(smarthost_login.SmarthostError) as e:
        smarthost_login.check_login('127.0.0.1', smarthost.starttls_port,
                                    'relay', 'wrong-secret')
    assert 'refuses the login of relay' in str(e.value)
    assert 'wrong-secret' not in str(e.value)


def test_a_smarthost_that_does_not_answer(smarthost):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        closed = s.getsockname()[1]
    with pytest.raises(smarthost_login.SmarthostError) as e:
        smarthost_login.check_login('127.0.0.1', closed, 'relay', 'x', timeout=5)
    assert 'does not answer' in str(e.value)


# -- how slapgrid loads a plugin ------------------------------------------------
import os
import subprocess
import sys

PLUGIN = '''
import sys
sys.path[0:0] = %r
# what slapos.cookbook:promise.plugin writes before importing the promise
for module in list(sys.modules):
  if 'slapos' in module or 'pkg_resources' in module:
    del sys.modules[module]
%s
'''


def test_a_promise_imports_slapos_grid_beside_an_egg_that_declares_slapos(
        tmp_path):
    """A node whose slapos.core pip installed (``slapos`` a namespace of
    site-packages) and an egg built by zc.buildout < 5 (slapos.cookbook's,
    whose ``slapos/__init__.py`` makes ``slapos`` a pkg_resources namespace
    of the eggs declaring it, first in the plugin's path): slapos.grid is
    not found there, a promise of ours still loads."""
    egg = tmp_path / 'slapos.cookbook-1.0.514-py3.11.egg'
    (egg / 'slapos' / 'recipe').mkdir(parents=True)
    # the namespace as pkg_resources.declare_namespace leaves it: a list of
    # the declaring eggs' directories
    (egg / 'slapos' / '__init__.py').write_text(
        '__path__ = [__path__[0]]\n')
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    paths = [str(egg), repo]

    def load(statement):
        return subprocess.run([sys.executable, '-c', PLUGIN % (
            paths, statement)], capture_output=True, text=True, cwd=tmp_path)

    bare = load('import slapos.grid.promise.generic')
    assert "No module named 'slapos.grid'" in bare.stderr, bare.stderr
    ours = load('from recipes.promises.port_listening import RunPromise\n'
                'from recipes.promises.policy_answering import RunPromise')
    assert ours.returncode == 0, ours.stderr


def test_the_http_endpoint_promise_names_the_last_answer(tmp_path,
                                                         monkeypatch):
    from recipes.promises import http_endpoint
    answers = tmp_path / 'answers.json'
    queue = {'count': 0}
    monkeypatch.setattr(http_endpoint, 'deferred_count',
                        lambda postqueue, directory, domain: queue['count'])
    errors, infos = [], []

    class Logger:
        def error(self, text, *args):
            errors.append(text % args)

        def info(self, text, *args):
            infos.append(text % args)
    promise = http_endpoint.RunPromise.__new__(http_endpoint.RunPromise)
    promise.logger = Logger()
    config = {'domain': 'in.example.com', 'answers-file': str(answers),
              'postqueue': 'postqueue', 'config-directory': '.',
              'state-file': str(tmp_path / 'state' / 'counts.json')}
    promise.getConfig = lambda key, default=None: config.get(key, default)
    promise.sense()
    assert errors == [] and 'no message delivered yet' in infos[-1]
    answers.write_text(json.dumps({'in.example.com': {
        'endpoint': 'https://api.example.com/v1/email', 'status': 401,
        'answer': '401 Unauthorized', 'kind': 'deferred', 'at': 0}}))
    queue['count'] = 1
    promise.sense()
    assert errors[-1] == (
        'the API of in.example.com refuses its mail: https://api.example.com'
        '/v1/email answered 401 Unauthorized at 1970-01-01 00:00:00 UTC; 1 '
        'messages deferred')
    answers.write_text(json.dumps({'in.example.com': {
        'endpoint': 'https://api.example.com/v1/email', 'status': 200,
        'answer': '200 OK', 'kind': 'delivered', 'at': 0}}))
    for count in (2, 3, 4, 5):
        queue['count'] = count
        promise.sense()
    assert 'keeps growing (1 -> 2 -> 3 -> 4 -> 5' in errors[-1]
    assert 'answered 200 OK' in errors[-1]
