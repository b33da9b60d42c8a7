"""What the end-to-end tests, the render tests and the demo share: where the
software releases are, and small clients that talk to the deployed daemons
as a user would."""
import http.client
import imaplib
import os
import pathlib
import smtplib
import time
import urllib.parse

from recipes.promise import unverified_tls

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAIL_SERVER = str(ROOT / 'software' / 'mail-server' / 'software.cfg')
RELAY = str(ROOT / 'software' / 'mail-server-relay' / 'software.cfg')


# TLS that accepts the partitions' self-signed certificates
insecure_tls = unverified_tls


def send(host, port, sender, recipients, subject, body='Hello.\n',
         starttls=False):
    message = ('From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n%s'
               % (sender, ', '.join(recipients), subject, body))
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        if starttls:
            smtp.starttls(context=insecure_tls())
        smtp.sendmail(sender, recipients, message)


def imaps_find(host, port, user, password, subject, timeout=60):
    """The message whose Subject is ``subject`` in the INBOX, read over IMAPS;
    waits up to ``timeout`` seconds for it to arrive."""
    deadline = time.time() + timeout
    while True:
        with imaplib.IMAP4_SSL(host, int(port),
                               ssl_context=insecure_tls()) as imap:
            imap.login(user, password)
            imap.select('INBOX')
            _, found = imap.search(None, 'SUBJECT', '"%s"' % subject)
            if found[0]:
                _, data = imap.fetch(found[0].split()[-1], '(RFC822)')
                return data[0][1].decode()
        if time.time() > deadline:
            raise AssertionError('no message %r for %s after %ss'
                                 % (subject, user, timeout))
        time.sleep(1)


def http_request(url, method='GET', body=None, headers=None):
    """``(status, headers, text)`` of one HTTP(S) request, as a browser
    would send it; HTTPS accepts the self-signed certificates; redirects are
    not followed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == 'https':
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=30, context=insecure_tls())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                                timeout=30)
    path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (response.status, dict(response.getheaders()),
                response.read().decode('utf-8', 'replace'))
    finally:
        connection.close()


def post_form(url, **fields):
    """A form-encoded POST, as an HTML form sends it."""
    return http_request(url, 'POST', urllib.parse.urlencode(fields),
                        {'Content-Type': 'application/x-www-form-urlencoded'})


def smtp_submit(host, port, user, password, sender, recipients, subject,
                body='Hello.\n', implicit_tls=False, headers=''):
    """Send as a logged-in user: submission (STARTTLS) or, with
    ``implicit_tls``, SMTPS."""
    message = ('From: %s\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s'
               % (sender, ', '.join(recipients), subject, headers, body))
    if implicit_tls:
        smtp = smtplib.SMTP_SSL(host, int(port), timeout=30,
                                context=insecure_tls())
    else:
        smtp = smtplib.SMTP(host, int(port), timeout=30)
    with smtp:
        if not implicit_tls:
            smtp.starttls(context=insecure_tls())
        smtp.login(user, password)
        smtp.sendmail(sender, recipients, message)


def software_binary(slapos, *path):
    """A file of a built software release: ``software_binary(slapos,
    'postfix', 'sbin', 'postqueue')``."""
    software = os.path.join(slapos.base_directory, 'soft')
    for name in os.listdir(software):
        candidate = os.path.join(software, name, 'parts', *path)
        if os.path.exists(candidate):
            return candidate
    raise AssertionError('%s not built' % os.path.join(*path))
