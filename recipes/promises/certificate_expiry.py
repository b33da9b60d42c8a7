"""Promise: a certificate given by the requester (``custom-inbound-
certificate``) is in use and does not expire soon.

Config: ``certificate`` (the PEM file served), ``parameter`` (its parameter,
named in messages), ``days`` (fail when fewer days are left, default 15),
``error`` (set when the given certificate was refused: the instance serves
its self-signed one meanwhile, and the promise says why). An alarm, not a
deployment failure: the node keeps receiving mail either way."""
import datetime
import ssl

from recipes.promises import AlarmPromise

DEFAULT_DAYS = 15


def not_after(cert_path):
    """The expiry date of the first certificate of a PEM file (UTC)."""
    decoded = ssl._ssl._test_decode_cert(cert_path)
    return datetime.datetime.fromtimestamp(
        ssl.cert_time_to_seconds(decoded['notAfter']), datetime.timezone.utc)


def expiry_problem(expires, now, days):
    """A message when ``expires`` (datetime) is within ``days`` of ``now``."""
    left = expires - now
    if left.total_seconds() <= 0:
        return 'expired on %s' % expires.strftime('%Y-%m-%d %H:%M UTC')
    if left < datetime.timedelta(days=days):
        return 'expires on %s, in %d days (less than %d): renew it' % (
            expires.strftime('%Y-%m-%d %H:%M UTC'), left.days, days)
    return None


class RunPromise(AlarmPromise):

    periodicity = 60

    def sense(self):
        parameter = self.getConfig('parameter') or 'the certificate'
        error = self.getConfig('error')
        if error:
            self.logger.error('%s', error)
            return
        path = self.getConfig('certificate')
        days = int(self.getConfig('days') or DEFAULT_DAYS)
        try:
            expires = not_after(path)
        except (OSError, ValueError, IndexError) as e:
            self.logger.error('%s: cannot read %s: %s', parameter, path, e)
            return
        problem = expiry_problem(
            expires, datetime.datetime.now(datetime.timezone.utc), days)
        if problem:
            self.logger.error('%s %s', parameter, problem)
        else:
            self.logger.info('%s expires on %s', parameter,
                             expires.strftime('%Y-%m-%d'))

    def anomaly(self):
        return self._test(result_count=1, failure_amount=1)
