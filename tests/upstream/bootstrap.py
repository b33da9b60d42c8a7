"""Runs one of upstream's test modules with slapos.testing, in a process of
its own, from the directory that holds it (a scratch copy: see
``tests/upstream/runner.py``), and records the outcome of every test.

  python tests/upstream/bootstrap.py MODE RESULTS.json MODULE[.Class[.test]]...

Nothing of upstream's tests changes, only their environment:

- MODE ``url`` (slapos.testing's default): the releases are built from the
  http URL they are served at (``SLAPOS_TEST_SOFTWARE_ROOT_URL`` and
  ``_DIR``, set by the runner); ``path``: from their local path
  (``serve_software_release_from_url=False``), as a development VM does;
- the SBOM that slapos.testing writes after the build (``nxdbom``) is
  reported when it fails instead of failing the whole module: it is not
  one of the 53 tests, and the runner prints it apart.

RESULTS.json: ``{test id: [outcome, detail]}`` for every test the names
select, outcome ``passed``, ``failed``, ``error``, ``skipped`` or
``not run`` (its class's or module's set-up failed: the detail says why),
and ``"sbom"``: the SBOM's failure, if any.
"""
import functools
import json
import os
import sys
import traceback
import unittest

import slapos.testing.testcase as testcase

SBOM = {}


def environment(mode):
    if mode == 'path':
        testcase.makeModuleSetUpAndTestCaseClass = functools.partial(
            testcase.makeModuleSetUpAndTestCaseClass,
            serve_software_release_from_url=False)
    generate = testcase.generate_sbom

    def generate_sbom(*args, **kw):
        try:
            return generate(*args, **kw)
        except Exception as e:
            SBOM['error'] = repr(e)
            print('[upstream suites] the SBOM (nxdbom) failed: %r' % e,
                  file=sys.stderr, flush=True)
    testcase.generate_sbom = generate_sbom


def tests_of(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from tests_of(test)
        else:
            yield test


class Recording(unittest.TextTestResult):
    """unittest's verbose result, also keeping each test's outcome; an
    error of a class's or a module's set-up is kept for the tests it
    kept from running."""

    outcomes = {}
    setup_errors = []

    def _keep(self, test, outcome, err=None):
        detail = ''
        if err is not None:
            detail = ''.join(traceback.format_exception_only(*err[:2])).strip()
        if isinstance(test, unittest.TestCase):
            self.outcomes[test.id()] = [outcome, detail]
        else:  # _ErrorHolder: setUpClass (module.Class), setUpModule (module)
            self.setup_errors.append([test.description, detail])

    def addSuccess(self, test):
        super().addSuccess(test)
        self._keep(test, 'passed')

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._keep(test, 'failed', err)

    def addError(self, test, err):
        super().addError(test, err)
        self._keep(test, 'error', err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = ['skipped', reason]

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._keep(test, 'failed', err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._keep(test, 'passed')


def main():
    mode, results_path, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    environment(mode)
    # upstream's modules (test.py, test_e2e.py) import as top-level modules
    # from their directory, as unittest's discovery does
    sys.path.insert(0, os.getcwd())
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    selected = [test.id() for test in tests_of(suite)]
    unittest.TextTestRunner(verbosity=2, resultclass=Recording).run(suite)
    outcomes = {}
    for test_id in selected:
        outcomes[test_id] = Recording.outcomes.get(test_id) or [
            'not run', '; '.join(
                '%s: %s' % (where, why) for where, why in Recording.setup_errors
                if test_id.startswith(where.split('(')[-1].rstrip(')') + '.'))
            or 'never started']
    with open(results_path, 'w') as f:
        json.dump({'tests': outcomes, 'sbom': SBOM.get('error')}, f,
                  indent=1, sort_keys=True)


if __name__ == '__main__':
    main()
