"""Makes the checkout importable (``recipes``, ``tests.harness``), whatever
directory pytest runs from, and gives each module of tests that deploy
(tests/e2e, tests/render) an embedded SlapOS of its own.

Test modules can run side by side (``pytest -n N --dist loadfile``, what
scripts/test.sh does): each worker but the first is a node of its own, its
embedded SlapOS in ``$SLAPOS_MAIL_ROOT/slapos-gwK`` with its own proxy port
(the first's + 10 K) and IPv6 prefix (the first's last group + K), set here
before anything reads them."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

WORKER = int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:])
if WORKER:
    _head, _last = os.environ.get('SLAPOS_MAIL_IPV6_PREFIX',
                                  'fd6d:6169:6c00').rsplit(':', 1)
    os.environ['SLAPOS_MAIL_IPV6_PREFIX'] = '%s:%x' % (
        _head, int(_last, 16) + WORKER)
    os.environ['SLAPOS_MAIL_PROXY_PORT'] = str(int(os.environ.get(
        'SLAPOS_MAIL_PROXY_PORT', 40000)) + 10 * WORKER)
    os.environ['SLAPOS_MAIL_NODE'] = 'slapos-gw%d' % WORKER

from tests.harness import EmbeddedSlapOS  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if 'e2e' in item.path.parts or 'render' in item.path.parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope='module')
def slapos():
    """A started EmbeddedSlapOS with no partition in use (software already
    built is kept), stopped at the end of the module: a shared instance
    goes to the first partition of its software type, so deployments of
    different modules must not meet."""
    embedded = EmbeddedSlapOS()
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()
