"""The password page (``password-url``): where the owner of an account sets
its password with a one-time token (the setup token of ``setup-url``, or a
``reset-token``). A WSGI application over ``recipes.stores.accounts``, standard
library only.

  GET  ?user=<address>&token=<token>     the form, pre-filled
  POST user, token, password              (form-encoded) sets the password:
       200 done (the page says ``Password updated successfully``, as
       upstream's), 400 password refused or field missing, 403 wrong, used
       or expired token, 404 unknown user; the reason is in the page

A POST waits before it is answered, longer with each failure of the
client's network or of the account (``recipes.decisions.throttling``, the
failures kept by ``recipes.stores.login_failures``): tokens cannot be
guessed at speed.

Configured by the environment: ``MAIL_ACCOUNTS_DIRECTORY``, the account
database directory, and ``MAIL_LOGIN_FAILURES``, the failures database.
``python -m recipes.programs.password_page`` runs it as a CGI program
(Apache's mod_cgid). Neither a password nor a token is ever logged.
"""
import html
import os
import sys
import time
import urllib.parse

from ..decisions import passwords, throttling
from ..stores import accounts
from ..stores.login_failures import LoginFailures

DIRECTORY_VARIABLE = 'MAIL_ACCOUNTS_DIRECTORY'
FAILURES_VARIABLE = 'MAIL_LOGIN_FAILURES'
MAX_BODY = 16 * 1024
STATUSES = {
    200: '200 OK', 400: '400 Bad Request', 403: '403 Forbidden',
    404: '404 Not Found', 405: '405 Method Not Allowed',
    413: '413 Payload Too Large', 500: '500 Internal Server Error',
}
ERROR_STATUSES = {accounts.WeakPassword: 400, accounts.InvalidToken: 403}
HEADERS = [
    ('Content-Type', 'text/html; charset=utf-8'),
    # the token is in the URL: keep it out of caches and Referer headers
    ('Cache-Control', 'no-store'),
    ('Referrer-Policy', 'no-referrer'),
    ('X-Frame-Options', 'DENY'),
    ('X-Content-Type-Options', 'nosniff'),
    ('Content-Security-Policy',
     "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
     "frame-ancestors 'none'"),
]

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:30em;margin:2em auto;padding:0 1em}}
label{{display:block;margin-top:1em}}input{{width:100%;padding:.4em}}
.error{{color:#a00}}</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""

FORM = """{message}<form method="post" action="">
<label>Address <input name="user" type="email" value="{user}" required autocomplete="username"></label>
{token_field}
<label>New password (at least {minimum} characters)
<input name="password" type="password" minlength="{minimum}" required autocomplete="new-password"></label>
<p><button type="submit">Set the password</button></p>
</form>
"""


def page(status, title, body):
    return status, PAGE.format(title=html.escape(title), body=body)


TOKEN_HIDDEN = '<input name="token" type="hidden" value="{}">'
# without a setup-url, the owner types the token (a reset-token) in
TOKEN_FIELD = ('<label>Token (the reset-token you were given) '
               '<input name="token" type="password" required '
               'autocomplete="off"></label>')


def form(user='', token='', message=''):
    token_field = (TOKEN_HIDDEN.format(html.escape(token, quote=True))
                   if token else TOKEN_FIELD)
    return FORM.format(user=html.escape(user, quote=True),
                       token_field=token_field,
                       minimum=passwords.MIN_PASSWORD_LENGTH,
                       message=message)


def error_message(text):
    return '<p class="error">%s</p>\n' % html.escape(text)


def handle(environ, directory, failures=None, sleep=time.sleep):
    """``(status code, HTML page)`` for one request; ``failures``, a
    ``LoginFailures``, throttles the attempts to set a password."""
    method = environ.get('REQUEST_METHOD', 'GET')
    if method in ('GET', 'HEAD'):
        query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
        return page(200, 'Set your mail password',
                    form(query.get('user', [''])[0],
                         query.get('token', [''])[0]))
    if method != 'POST':
        return page(405, 'Method not allowed',
                    error_message('Use GET to see the form, POST to send it.'))
    try:
        length = int(environ.get('CONTENT_LENGTH') or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return page(413, 'Request too large', error_message(
            'The form is larger than %d bytes.' % MAX_BODY))
    body = environ['wsgi.input'].read(length).decode('utf-8', 'replace')
    fields = urllib.parse.parse_qs(body, keep_blank_values=True)
    user, token, password = (fields.get(name, [''])[0]
                             for name in ('user', 'token', 'password'))
    missing = [name for name, value in
               (('user', user), ('token', token), ('password', password))
               if not value]
    if missing:
        return page(400, 'Password not set', error_message(
            'Missing: %s.' % ', '.join(missing)) + form(user, token))
    if not directory:
        return page(500, 'Password not set', error_message(
            'The page is not configured (%s is not set).'
            % DIRECTORY_VARIABLE))
    keys = [throttling.client_network(environ.get('REMOTE_ADDR')),
            throttling.account(user)]
    if failures is not None:
        sleep(throttling.penalty(failures.count(keys)))
    try:
        accounts.set_password(directory, user, token, password)
    except accounts.UnknownUser:
        # who has an account is nobody's business (as VRFY): an address
        # without one reads as a wrong token
        return failed(failures, keys, sleep, user, token,
                      accounts.InvalidToken(accounts.WRONG_TOKEN))
    except accounts.AccountError as e:
        return failed(failures, keys, sleep, user, token, e)
    if failures is not None:
        failures.succeeded(keys)
    # upstream's words, which its users' scripts look for
    return page(200, 'Password set', '<p>Password updated successfully: %s '
                'can now log in with the new password.</p>\n'
                % html.escape(user.strip().lower()))


def failed(failures, keys, sleep, user, token, e):
    """A wrong token counts as a failure and waits; a weak password (the
    token was right) does not count."""
    if failures is not None and isinstance(e, accounts.InvalidToken):
        failures.failed(keys)
        sleep(throttling.FAILURE_DELAY)
    return refused(user, token, e)


def refused(user, token, e):
    """The page of a refused change: its status, and the form again for a
    weak password, which can be tried again with the same token."""
    status = ERROR_STATUSES[type(e)]
    again = form(user, token) if status == 400 else ''
    return page(status, 'Password not set',
                error_message('Password not set for %s: %s.' % (user, e))
                + again)


def setting(environ, name):
    return os.environ.get(name) or environ.get(name)


def application(environ, start_response):
    failures_path = setting(environ, FAILURES_VARIABLE)
    failures = LoginFailures(failures_path) if failures_path else None
    try:
        status, text = handle(environ, setting(environ, DIRECTORY_VARIABLE),
                              failures)
    finally:
        if failures is not None:
            failures.close()
    body = text.encode('utf-8')
    start_response(STATUSES[status],
                   HEADERS + [('Content-Length', str(len(body)))])
    if environ.get('REQUEST_METHOD') == 'HEAD':
        return [b'']
    return [body]


def main():
    from wsgiref.handlers import CGIHandler
    CGIHandler().run(application)


if __name__ == '__main__':
    sys.exit(main())
