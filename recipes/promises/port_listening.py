"""Promise: something accepts TCP connections on ``host`` and ``port``."""
import socket

from recipes.promises import Promise


class RunPromise(Promise):

    def sense(self):
        host, port = self.getConfig('host'), int(self.getConfig('port'))
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as e:
            self.logger.error('nothing accepts connections on [%s]:%s: %s',
                              host, port, e)
        else:
            self.logger.info('[%s]:%s accepts connections', host, port)

    def anomaly(self):
        return self._test(result_count=3, failure_amount=3)
