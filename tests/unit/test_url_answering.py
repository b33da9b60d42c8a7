"""recipes.promises.url_answering: the status a URL answers with."""
import http.server
import threading

import pytest

from recipes.promises.url_answering import status_of


class Handler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):
        if self.path == '/moved':
            self.send_response(301)
            self.send_header('Location', '/')
        else:
            self.send_response(200 if self.path == '/' else 404)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % httpd.server_port
    httpd.shutdown()
    httpd.server_close()


def test_status_is_reported_and_redirects_are_not_followed(server):
    assert status_of(server + '/') == 200
    assert status_of(server + '/missing') == 404
    assert status_of(server + '/moved') == 301


def test_nothing_listening_raises():
    with pytest.raises(OSError):
        status_of('http://127.0.0.1:1/', timeout=2)
