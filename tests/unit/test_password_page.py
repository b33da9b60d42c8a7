"""The password page, driven as a WSGI application (wsgiref test requests)
and as a CGI program."""
import os
import subprocess
import sys
import urllib.parse
from wsgiref.util import setup_testing_defaults

import pytest

from recipes.decisions import passwords
from recipes.programs import password_page
from recipes.stores import accounts

PASSWORD = 'correct horse battery'


@pytest.fixture
def site(tmp_path, monkeypatch):
    directory = str(tmp_path / 'accounts')
    database = accounts.update(
        directory, str(tmp_path / 'mail'), ['example.com'],
        [{'reference': '_a', 'parameters': {'address': 'alice@example.com'}}],
        1024, False, 'https://h/password')
    monkeypatch.setenv(password_page.DIRECTORY_VARIABLE, directory)

    class Site:
        token = database.published['_a']['token']
        setup_url = database.published['_a']['setup-url']

        def request(self, method='GET', query='', form=None):
            environ = {}
            setup_testing_defaults(environ)
            body = urllib.parse.urlencode(form or {}).encode()
            environ.update(REQUEST_METHOD=method, QUERY_STRING=query,
                           CONTENT_LENGTH=str(len(body)),
                           CONTENT_TYPE='application/x-www-form-urlencoded')
            environ['wsgi.input'].write(body)
            environ['wsgi.input'].seek(0)
            answer = {}

            def start_response(status, headers):
                answer['status'], answer['headers'] = status, dict(headers)
            text = b''.join(password_page.application(environ, start_response))
            return (int(answer['status'].split()[0]), answer['headers'],
                    text.decode())

        def post(self, **form):
            return self.request('POST', form=form)
    site = Site()
    site.directory = directory
    return site


def test_get_shows_the_form_prefilled(site):
    query = urllib.parse.urlsplit(site.setup_url).query
    status, headers, text = site.request('GET', query)
    assert status == 200
    assert 'value="alice@example.com"' in text
    assert 'value="%s"' % site.token in text
    assert 'type="password"' in text
    assert headers['Cache-Control'] == 'no-store'
    assert headers['Referrer-Policy'] == 'no-referrer'
    assert headers['Content-Type'] == 'text/html; charset=utf-8'


def test_get_without_a_token_asks_for_it(site):
    status, _, text = site.request('GET')
    assert status == 200
    assert '<input name="token" type="password"' in text


def test_everything_is_escaped(site):
    status, _, text = site.request(
        'GET', urllib.parse.urlencode({'user': '"><script>x</script>',
                                       'token': "'<b>"}))
    assert status == 200
    assert '<script>' not in text and '<b>' not in text
    assert '&quot;&gt;&lt;script&gt;' in text
    status, _, text = site.post(user='<i>@example.com', token='t',
                                password=PASSWORD)
    assert status == 403 and '<i>' not in text


def test_post_sets_the_password_once(site):
    status, _, text = site.post(user='alice@example.com', token=site.token,
                                password=PASSWORD)
    assert status == 200
    # upstream's words, which its users' scripts look for
    assert 'Password updated successfully' in text
    assert 'alice@example.com' in text
    assert PASSWORD not in text
    line = open(os.path.join(site.directory, 'passwd')).read()
    assert passwords.verify_password(line.split(':')[1], PASSWORD)
    status, _, text = site.post(user='alice@example.com', token=site.token,
                                password='another password')
    assert status == 403
    assert 'already used' in text


def test_errors_and_their_statuses(site):
    assert site.post(user='alice@example.com', token='wrong token',
                     password=PASSWORD)[0] == 403
    # who has an account is nobody's business: the same answer
    wrong = site.post(user='alice@example.com', token='wrong token',
                      password=PASSWORD)
    unknown = site.post(user='nobody@example.com', token='wrong token',
                        password=PASSWORD)
    assert unknown[0] == wrong[0] == 403
    assert unknown[2].replace('nobody', 'alice') == wrong[2]
    status, _, text = site.post(user='alice@example.com', token=site.token,
                                password='seven77')
    assert status == 400
    assert 'at least 8 characters' in text
    # the token still works after a refused password, and the form is back
    assert 'value="%s"' % site.token in text
    status, _, text = site.post(user='alice@example.com', token=site.token)
    assert status == 400 and 'Missing: password' in text
    assert site.request('PUT')[0] == 405
    assert site.post(user='alice@example.com', token=site.token,
                     password='x' * 20000)[0] == 413
    assert site.post(user='alice@example.com', token=site.token,
                     password=PASSWORD)[0] == 200


def test_not_configured(site, monkeypatch):
    monkeypatch.delenv(password_page.DIRECTORY_VARIABLE)
    assert site.post(user='alice@example.com', token=site.token,
                     password=PASSWORD)[0] == 500


def test_cgi_program(site):
    body = urllib.parse.urlencode({'user': 'alice@example.com',
                                   'token': site.token, 'password': PASSWORD})
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    environ = dict(os.environ, REQUEST_METHOD='POST', QUERY_STRING='',
                   CONTENT_LENGTH=str(len(body)),
                   CONTENT_TYPE='application/x-www-form-urlencoded',
                   SERVER_NAME='localhost', SERVER_PORT='8081',
                   SERVER_PROTOCOL='HTTP/1.1', GATEWAY_INTERFACE='CGI/1.1',
                   PYTHONPATH=root)
    result = subprocess.run([sys.executable, '-m', 'recipes.programs.password_page'],
                            input=body.encode(), capture_output=True,
                            env=environ, cwd=root, timeout=60)
    out = result.stdout.decode()
    assert out.startswith('Status: 200 OK\r\n'), out + result.stderr.decode()
    assert 'Password updated successfully' in out
    assert result.stderr == b''
