"""What the end-to-end tests, the render tests and the demo share: where the
software releases are, and small clients that talk to the deployed daemons
as a user would."""
import imaplib
import pathlib
import smtplib
import ssl
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAIL_SERVER = str(ROOT / 'software' / 'mail-server' / 'software.cfg')
RELAY = str(ROOT / 'software' / 'mail-server-relay' / 'software.cfg')


def insecure_tls():
    """TLS that accepts the partitions' self-signed certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


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
