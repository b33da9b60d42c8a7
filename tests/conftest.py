"""Makes the checkout importable (``recipes``, ``tests.harness``), whatever
directory pytest runs from, and gives each module of tests that deploy
(tests/e2e, tests/render) an embedded SlapOS of its own."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

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
