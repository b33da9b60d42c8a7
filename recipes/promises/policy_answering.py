"""Promise: the policy daemon answers a request on the unix socket
``socket`` (as a trusted client, so nothing is looked up nor recorded)."""
import socket

from recipes.promises import Promise

REQUEST = (b'request=smtpd_access_policy\nprotocol_state=RCPT\n'
           b'client_address=127.0.0.1\nsender=\nrecipient=\n\n')


def answer(path, timeout=10):
    """The first line of the policy's answer to ``REQUEST``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(REQUEST)
        received = b''
        while b'\n\n' not in received:
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.decode('utf-8', 'replace').partition('\n')[0]


class RunPromise(Promise):

    def sense(self):
        path = self.getConfig('socket')
        try:
            line = answer(path)
        except OSError as e:
            self.logger.error('the policy daemon does not answer on %s (%s): '
                              'Postfix defers the mail it should check; see '
                              'the relay-policy service', path, e)
            return
        if line.startswith('action='):
            self.logger.info('the policy on %s answers (%s)', path, line)
        else:
            self.logger.error('the policy on %s answers %r, not an action',
                              path, line)

    def anomaly(self):
        return self._test(result_count=3, failure_amount=3)
