"""Promise: a smarthost of the relay's ``proxy-map`` answers, speaks TLS
as the relay will (implicit TLS on a port ending in 465, STARTTLS
elsewhere: ``recipes.decisions.smarthosts.transport``) and accepts the relay's
login. An alarm (``AlarmPromise``): the smarthost is a third party's, which
the partition cannot fix, so a smarthost that does not answer never keeps
the deployment from settling.

Config: ``entry`` (the proxy-map entry's name), ``host``, ``port``, ``user``,
``password-map`` and ``lookup`` (the Postfix SASL password map and the key
of this smarthost in it: the password is read from that 0600 file, never
from the promise's own configuration). The password never appears in a
message."""
import smtplib
import socket
import ssl

from recipes.decisions.smarthosts import transport as smarthost_transport
from recipes.promises import AlarmPromise, unverified_tls


def password_from_map(path, lookup):
    """The password of ``lookup`` (``@domain``) in a ``key user:password``
    map, or None."""
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition(' ')
            if key == lookup and ':' in value:
                return value.strip().partition(':')[2]
    return None


def check_login(host, port, user=None, password=None, timeout=20):
    """Connect, TLS, AUTH as the relay will; raise ``SmarthostError`` with
    what went wrong (without the password)."""
    where = '[%s]:%s' % (host, port) if ':' in host else '%s:%s' % (host, port)
    smtp = connect(host, port, where, timeout)
    try:
        if user:
            log_in(smtp, where, user, password)
        return where
    except (OSError, ssl.SSLError, smtplib.SMTPException) as e:
        if isinstance(e, SmarthostError):
            raise
        message = str(e)
        if password:
            message = message.replace(password, '***')
        raise SmarthostError('%s: %s' % (where, message))
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException, socket.error):
            smtp.close()


def connect(host, port, where, timeout):
    """An SMTP session in TLS, as the relay's transport for this port
    opens it (implicit TLS or STARTTLS)."""
    implicit = smarthost_transport(port) == 'smarthost-tls'
    try:
        if implicit:
            smtp = smtplib.SMTP_SSL(host, int(port), timeout=timeout,
                                    context=unverified_tls())
        else:
            smtp = smtplib.SMTP(host, int(port), timeout=timeout)
    except (OSError, smtplib.SMTPException) as e:
        raise SmarthostError('%s does not answer%s: %s' % (
            where, ' (implicit TLS)' if implicit else '', e))
    try:
        smtp.ehlo()
        if not implicit:
            if not smtp.has_extn('starttls'):
                raise SmarthostError('%s does not offer STARTTLS, which the '
                                     'relay requires' % where)
            smtp.starttls(context=unverified_tls())
            smtp.ehlo()
    except (OSError, smtplib.SMTPException) as e:
        smtp.close()
        if isinstance(e, SmarthostError):
            raise
        raise SmarthostError('%s: %s' % (where, e))
    return smtp


def log_in(smtp, where, user, password):
    """AUTH with one mechanism, as the relay's Postfix does (smtplib's
    login() would try the next one after a refusal)."""
    if password is None:
        raise SmarthostError('no password for %s in the relay\'s password '
                             'map' % user)
    offered = smtp.esmtp_features.get('auth', '').upper().split()
    mechanism = next((m for m in ('PLAIN', 'LOGIN') if m in offered), None)
    if mechanism is None:
        raise SmarthostError('%s offers no PLAIN or LOGIN AUTH to log in as '
                             '%s' % (where, user))
    smtp.user, smtp.password = user, password
    try:
        smtp.auth(mechanism, getattr(smtp, 'auth_' + mechanism.lower()))
    except smtplib.SMTPAuthenticationError as e:
        text = e.smtp_error.decode(errors='replace') \
            if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        raise SmarthostError('%s refuses the login of %s (%s %s): check its '
                             'user and password' % (
                                 where, user, e.smtp_code,
                                 text.replace(password, '***')))


class SmarthostError(smtplib.SMTPException):
    pass


class RunPromise(AlarmPromise):

    periodicity = 10

    def sense(self):
        name = self.getConfig('entry')
        user = self.getConfig('user') or None
        password = None
        try:
            if user:
                password = password_from_map(self.getConfig('password-map'),
                                             self.getConfig('lookup'))
            where = check_login(self.getConfig('host'),
                                self.getConfig('port'), user, password)
        except (SmarthostError, OSError) as e:
            self.logger.error('smarthost %s of proxy-map: %s', name, e)
        else:
            self.logger.info('smarthost %s of proxy-map (%s) accepts %s', name,
                             where, 'the login of %s' % user if user
                             else 'connections (no login configured)')

    def anomaly(self):
        return self._test(result_count=2, failure_amount=2)
