"""The http server the embedded SlapOS gets its software releases from, as a
node gets them from a forge and a package index:

    python tests/software_server.py DIRECTORY PORT

serves DIRECTORY (the clean copy of the checkout, ``checkout/``, and this
bundle's sdist, ``index/``) on 127.0.0.1:PORT, and at ``/simple/`` a package
index (PEP 503): this bundle's sdist for ``slapos-mailbundle``, and for any
other project a redirection to PyPI's page. With it as buildout's
``index``, the node finds our sdist without scanning PyPI's whole index,
which setuptools does for a project PyPI does not know.
"""
import functools
import html
import http.server
import os
import re
import sys

OURS = 'slapos-mailbundle'
UPSTREAM = 'https://pypi.org/simple/'


def normalized(name):
    return re.sub(r'[-_.]+', '-', name).lower()


class Handler(http.server.SimpleHTTPRequestHandler):

    def do_GET(self):
        match = re.fullmatch(r'/simple/([^/]+)/?', self.path.split('?')[0])
        if not match:
            return super().do_GET()
        project = normalized(match.group(1))
        if project != OURS:
            self.send_response(302)
            self.send_header('Location', UPSTREAM + project + '/')
            self.end_headers()
            return
        index = os.path.join(self.directory, 'index')
        links = ''.join('<a href="/index/%s">%s</a>\n' % (
            html.escape(name), html.escape(name))
            for name in sorted(os.listdir(index)) if name.endswith('.tar.gz'))
        body = ('<!DOCTYPE html><html><body>\n%s</body></html>\n'
                % links).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/html')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(directory, port):
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', int(port)),
        functools.partial(Handler, directory=directory))
    server.serve_forever()


if __name__ == '__main__':
    main(*sys.argv[1:])
