"""The autoconfiguration answers of a backend, over HTTPS by its Apache (a
CGI program, ``python -m recipes.programs.autoconfig``, configured by the
settings file named by ``MAIL_AUTOCONFIG_SETTINGS``; what the answers say is
``recipes.decisions.autoconfig``):

  GET       /mail/config-v1.1.xml[?emailaddress=ADDRESS]       Thunderbird
  GET       /.well-known/autoconfig/mail/config-v1.1.xml[?...]  Thunderbird
  GET/POST  /autodiscover/autodiscover.xml                      Outlook (POX)

An address outside the hosted domains gets 404.
"""
import json
import os
import sys
import urllib.parse

from ..decisions.autoconfig import (OUTLOOK_SCHEMA, THUNDERBIRD_PATHS,
                                    autodiscover, autodiscover_address,
                                    autodiscover_error, hosted_domain,
                                    thunderbird)

SETTINGS_VARIABLE = 'MAIL_AUTOCONFIG_SETTINGS'
MAX_BODY = 16 * 1024
AUTODISCOVER_PATH = '/autodiscover/autodiscover.xml'


def handle(environ, config):
    """``(status, content type, body)`` of one request."""
    method = environ.get('REQUEST_METHOD', 'GET')
    path = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
    query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
    address = query.get('emailaddress', [''])[0].strip()
    if path in THUNDERBIRD_PATHS:
        if method not in ('GET', 'HEAD'):
            return 405, 'text/plain', 'use GET\n'
        domain = hosted_domain(config, address)
        if domain is None:
            return 404, 'text/plain', 'no mail is hosted here for %s\n' % (
                address.rpartition('@')[2])
        return 200, 'application/xml', thunderbird(config, domain)
    if path.lower() != AUTODISCOVER_PATH:
        return 404, 'text/plain', 'not found\n'
    if method == 'POST':
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return 413, 'text/plain', 'request larger than %d bytes\n' % (
                MAX_BODY)
        try:
            address, schema = autodiscover_address(
                environ['wsgi.input'].read(length))
        except ValueError:
            return 400, 'application/xml', autodiscover_error(
                600, 'Invalid Request')
        if schema and schema != OUTLOOK_SCHEMA:
            # e.g. ActiveSync's mobilesync schema: not served here
            return 200, 'application/xml', autodiscover_error(
                600, 'Invalid Request')
    elif method not in ('GET', 'HEAD'):
        return 405, 'text/plain', 'use POST or GET\n'
    if hosted_domain(config, address) is None:
        return 404, 'text/plain', 'no mail is hosted here for %s\n' % (
            address.rpartition('@')[2])
    return 200, 'application/xml', autodiscover(config, address)


STATUSES = {200: '200 OK', 400: '400 Bad Request', 404: '404 Not Found',
            405: '405 Method Not Allowed', 413: '413 Payload Too Large',
            500: '500 Internal Server Error'}


def application(environ, start_response):
    path = os.environ.get(SETTINGS_VARIABLE) or environ.get(SETTINGS_VARIABLE)
    try:
        with open(path) as f:
            config = json.load(f)
    except (TypeError, OSError, ValueError) as e:
        status, content_type, text = 500, 'text/plain', (
            'autoconfiguration is not configured (%s: %s)\n'
            % (SETTINGS_VARIABLE, e))
    else:
        status, content_type, text = handle(environ, config)
    body = text.encode('utf-8')
    start_response(STATUSES[status], [
        ('Content-Type', content_type + '; charset=utf-8'),
        ('Content-Length', str(len(body))),
        ('Cache-Control', 'no-cache')])
    return [b''] if environ.get('REQUEST_METHOD') == 'HEAD' else [body]


def main():
    from wsgiref.handlers import CGIHandler
    CGIHandler().run(application)


if __name__ == '__main__':
    sys.exit(main())
