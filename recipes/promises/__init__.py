"""SlapOS promise plugins of the mail bundle (``slapos.cookbook:promise.plugin``
with ``module = recipes.promises.<name>``): each module's ``RunPromise``
subclasses ``Promise`` and implements ``sense``."""
import pkgutil
import ssl

import slapos
from zope.interface import implementer

# slapgrid loads a plugin in its own process, after the plugin has put this
# release's eggs first in sys.path and forgotten every `slapos` module. An
# egg built by zc.buildout < 5 (slapos.cookbook's) then makes `slapos` a
# pkg_resources namespace that only sees the eggs declaring it, not the
# `slapos` directory of a node whose slapos.core pip installed: slapos.grid
# is not found. The namespace is given every `slapos` directory of sys.path
# (a namespace of Python's own, PEP 420, already has them).
slapos.__path__ = pkgutil.extend_path(slapos.__path__, slapos.__name__)

from slapos.grid.promise import interface  # noqa: E402
from slapos.grid.promise.generic import GenericPromise  # noqa: E402


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
