"""Promise: the certificate that SMTP serves after STARTTLS on ``host`` and
``port`` is the one in the file ``certificate`` (the current one): a daemon
that missed a rotation, or serves something else, shows here."""
import smtplib

from recipes.promises import Promise, unverified_tls

from recipes.stores.certificates import fingerprint, fingerprint_of_der


def served_fingerprint(host, port, timeout=10):
    """SHA-256 fingerprint of the certificate served after STARTTLS."""
    context = unverified_tls()
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        smtp.starttls(context=context)
        return fingerprint_of_der(smtp.sock.getpeercert(binary_form=True))


class RunPromise(Promise):

    periodicity = 5

    def sense(self):
        host, port = self.getConfig('host'), int(self.getConfig('port'))
        try:
            expected = fingerprint(self.getConfig('certificate'))
            served = served_fingerprint(host, port)
        except (OSError, smtplib.SMTPException, ValueError) as e:
            self.logger.error('no certificate read on [%s]:%s (STARTTLS): %s',
                              host, port, e)
            return
        if served != expected:
            self.logger.error(
                '[%s]:%s serves the certificate %s, not the current one %s '
                '(%s): reload the daemon', host, port, served, expected,
                self.getConfig('certificate'))
        else:
            self.logger.info('[%s]:%s serves the current certificate %s',
                             host, port, served)

    def anomaly(self):
        return self._test(result_count=2, failure_amount=2)
