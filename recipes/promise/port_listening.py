"""Promise: something accepts TCP connections on ``host`` and ``port``."""
import socket

from zope.interface import implementer
from slapos.grid.promise import interface
from slapos.grid.promise.generic import GenericPromise


@implementer(interface.IPromise)
class RunPromise(GenericPromise):

    def __init__(self, config):
        super().__init__(config)
        self.setPeriodicity(minute=1)

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
