"""SlapOS promise plugins of the mail bundle (``slapos.cookbook:promise.plugin``
with ``module = recipes.promises.<name>``): each module's ``RunPromise``
subclasses ``Promise`` and implements ``sense``."""
import ssl

from zope.interface import implementer
from slapos.grid.promise import interface
from slapos.grid.promise.generic import GenericPromise


def unverified_tls():
    """TLS that accepts the partitions' self-signed certificates (a promise
    checks what is served, it does not authenticate it)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@implementer(interface.IPromise)
class Promise(GenericPromise):
    """A promise run every ``periodicity`` minutes."""

    periodicity = 1

    def __init__(self, config):
        super().__init__(config)
        self.setPeriodicity(minute=self.periodicity)


class AlarmPromise(Promise):
    """A promise that watches the running service: it raises an alarm, and
    never makes the deployment fail (``setTestLess``)."""

    def __init__(self, config):
        super().__init__(config)
        self.setTestLess()
