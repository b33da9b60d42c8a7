"""Runs upstream SlapOS's own test suites of ``mail-server`` and
``mail-server-relay`` against this bundle's releases, in an embedded SlapOS
of their own, and prints what passed and failed, suite by suite.

  python -m tests.upstream.runner CHECKOUT [SUITE [unittest names...]]

Run as the unprivileged user of the suites (slapos.testing starts its own
StandaloneSlapOS as the user who runs it, and slapgrid refuses partitions
owned by root) from ``$SLAPOS_MAIL_ROOT/src`` (the copy of the checkout
that ``scripts/setup.sh`` makes), through ``scripts/upstream-suites.sh``,
which prepares the machine as root (the embedded SlapOS's root, its
addresses, the user, the stand-in DNS). ``CHECKOUT`` is a checkout
of the SlapOS/slapos repository (a directory with
``software/mail-server/test/test.py``); ``SUITE`` is ``mail-server``,
``relay``, ``relay-e2e`` or ``all`` (the default); unittest names select
tests within one suite (``test.PostfixTestCase.test_slaves``).

For each suite:

1. A scratch directory (``$SLAPOS_MAIL_ROOT/scratch``) gets a clean copy
   of this checkout with upstream's test directory put where upstream has
   it (``software/<release>/test/``), so that upstream's
   ``os.path.join(os.path.dirname(__file__), '..', 'software.cfg')`` is our
   release. Upstream's tests are read from their checkout at each run and
   never copied into the project.
2. The node is fresh: what an earlier suite left running under
   ``$SLAPOS_MAIL_ROOT/slapos`` is stopped, its partitions and the
   master's database removed (the software built is kept). A suite whose
   set-up failed cannot destroy its instances, and slapos.testing then
   refuses to format busy partitions.
3. The node gets the settings of the project's own embedded SlapOS
   (``tests.harness``, as ``SuitesNode`` has them for a node of one
   unprivileged user): the download cache (the Postfix source, the
   Snappymail archive), the index with this bundle's sdist, and, in
   ``url`` mode, the scratch copy served over http as slapos-sr-testing's
   software server serves a checkout (``SLAPOS_TEST_SOFTWARE_ROOT_URL``).
4. ``tests/upstream/bootstrap.py`` runs the suite with slapos.testing
   (``SLAPOS_TEST_*`` variables below) and records every test's outcome.

``relay-e2e`` runs in ``path`` mode: upstream's ``test_e2e.py`` gives its
backends the relay's local path as ``relay-sr-url`` while slapos.testing
rewrites to the served URL only what it supplies and requests itself, so
with the URL the backends would order their domains from a release that
nobody supplied.

Logs and results: ``$SLAPOS_MAIL_ROOT/upstream-results/<suite>.log`` and
``.json``; slapos.testing's snapshots in ``.../<suite>-snapshots``.
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from tests import harness

# suite -> (release directory, upstream's module, how the releases are
# given to the node)
SUITES = {
    'mail-server': ('mail-server', 'test', 'url'),
    'relay': ('mail-server-relay', 'test', 'url'),
    'relay-e2e': ('mail-server-relay', 'test_e2e', 'path'),
}
RELEASES = ('mail-server', 'mail-server-relay')
# a suite that hangs is stopped after this long
SUITE_TIMEOUT = int(os.environ.get('UPSTREAM_SUITES_TIMEOUT', 5400))


def log(message):
    print('[upstream suites %s] %s' % (time.strftime('%H:%M:%S'), message),
          flush=True)


def upstream_commit(checkout):
    """The commit of the checkout (a git work tree or an archive of one with
    its commit in ``.git-commit``), or ``unknown``."""
    try:
        return subprocess.run(['git', '-C', checkout, 'rev-parse', 'HEAD'],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return (harness.read(os.path.join(checkout, '.git-commit'))
                or 'unknown').strip()


def prepare_scratch(project, checkout, scratch):
    """``scratch``: a clean copy of ``project`` with upstream's test
    directories at ``software/<release>/test``."""
    harness.clean_copy(project, scratch)
    for release in RELEASES:
        source = os.path.join(checkout, 'software', release, 'test')
        if not os.path.isdir(source):
            raise SystemExit('%s has no software/%s/test: give a checkout of '
                             'the SlapOS/slapos repository' % (checkout, release))
        target = os.path.join(scratch, 'software', release, 'test')
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)


class SuitesNode(harness.EmbeddedSlapOS):
    """The node of the suites as slapos.testing runs it: one unprivileged
    user (the runner's) owns it, builds the software and runs the
    partitions, as every embedded SlapOS of the project did before the
    harness ran its nodes as root with a software user and a user per
    partition. slapos.testing starts it (its own StandaloneSlapOS); this
    gives it the harness's settings (the served checkout, the index of the
    sdist, the software's buildout.cfg, the download cache) and ends what
    it leaves running. Never started: ``start`` and what needs root stay
    the harness's."""

    def __init__(self, root):
        # what the harness's settings use, without its check that root runs
        # it (the node's users are slapos.testing's: the runner's own)
        self.root = root
        self.base_directory = os.path.join(root, 'slapos')
        self.port = int(os.environ.get('SLAPOS_MAIL_PROXY_PORT', 40000))
        self.bin_directory = os.path.join(root, 'node', 'bin')

    @property
    def shared_part_root(self):
        """slapos.testing's node builds its shared parts in its own
        ``shared`` (StandaloneSlapOS's default), not in the harness's
        ``$SLAPOS_MAIL_ROOT/shared-parts`` (root's nodes')."""
        return os.path.join(self.base_directory, 'shared')

    def processes(self):
        """The runner's user's processes that run from or in the node's
        directory (slapproxy, supervisord, slapgrid, the partitions'
        services), but the runner and its parents."""
        import psutil
        me = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
        base = self.base_directory + os.sep
        found = []
        for p in psutil.process_iter(['pid', 'uids', 'cmdline', 'cwd']):
            info = p.info
            if info['pid'] in me or not info['uids'] \
                    or info['uids'].real != os.getuid():
                continue
            if base in ' '.join(info['cmdline'] or ()) + ' ' \
                    or (info['cwd'] or '').startswith(base):
                found.append(p)
        return found

    def stop_all(self, why):
        """Ends what runs from or in the node's directory."""
        harness.kill(self.processes(), why)


def fresh_node(node):
    """Stops what runs under the node's directory, removes its partitions
    and the master's database; the software built is kept."""
    from slapos.util import rmtree
    node.stop_all('left over by an earlier suite')
    for name in ('inst', os.path.join('var', 'proxy.db')):
        path = os.path.join(node.base_directory, name)
        if os.path.isdir(path):
            rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)
    os.makedirs(os.path.join(node.base_directory, 'var', 'log'),
                exist_ok=True)


def node_settings(node, scratch, mode):
    """Gives the node the project's settings for both releases of
    ``scratch``; returns the environment slapos.testing reads to serve them
    (``url`` mode)."""
    node._start_software_server()    # the index of the sdist, in both modes
    environment = {}
    for release in RELEASES:
        path = os.path.join(scratch, 'software', release, 'software.cfg')
        served = node._serve(path)   # the served copy and the sdist, fresh
        url = served if mode == 'url' else path
        node._write_node_buildout(url)
        node._forget_changed_content(url)
    if mode == 'url':
        environment['SLAPOS_TEST_SOFTWARE_ROOT_URL'] = node.served_url(
            os.path.join(scratch, 'setup.py'))[:-len('/setup.py')]
        environment['SLAPOS_TEST_SOFTWARE_ROOT_DIR'] = scratch
    return environment


def run_suite(node, scratch, results_directory, suite, names):
    release, module, mode = SUITES[suite]
    fresh_node(node)
    environment = dict(os.environ, **node_settings(node, scratch, mode))
    snapshots = os.path.join(results_directory, suite + '-snapshots')
    shutil.rmtree(snapshots, ignore_errors=True)
    os.makedirs(snapshots)
    environment.update({
        'SLAPOS_TEST_IPV4': harness.IPV4,
        # one address per partition out of the prefix, as the project's
        # harness formats them (partition i has <prefix><i+2>)
        'SLAPOS_TEST_IPV6': harness.IPV6_RANGE,
        'SLAPOS_TEST_WORKING_DIR': node.base_directory,
        'SLAPOS_TEST_LOG_DIRECTORY': snapshots,
        # the check that the software links no library from outside it
        # (ldd) cannot pass by design: Dovecot, Apache, PHP... are the
        # host's Debian packages (docs/building.md)
        'SLAPOS_TEST_SKIP_SOFTWARE_CHECK': '1',
        # the node's slapos and supervisord, as tests.harness has them
        'PATH': os.pathsep.join([node.bin_directory,
                                 environment.get('PATH', '')]),
    })
    results = os.path.join(results_directory, suite + '.json')
    log_path = os.path.join(results_directory, suite + '.log')
    with contextlib.suppress(FileNotFoundError):
        os.unlink(results)
    command = [sys.executable, os.path.join(os.path.dirname(
        os.path.abspath(__file__)), 'bootstrap.py'), mode, results] + (
        names or [module])
    log('%s: upstream software/%s/test/%s.py (releases by %s), log %s'
        % (suite, release, module, mode, log_path))
    start = time.time()
    with open(log_path, 'w') as out:
        process = subprocess.Popen(
            command, cwd=os.path.join(scratch, 'software', release, 'test'),
            env=environment, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            process.wait(SUITE_TIMEOUT)
        except subprocess.TimeoutExpired:
            log('%s: still running after %d s: stopped' % (suite, SUITE_TIMEOUT))
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
    fresh_node(node)
    elapsed = time.time() - start
    if not os.path.exists(results):
        return {'suite': suite, 'elapsed': elapsed, 'tests': {},
                'sbom': None, 'broken': 'no results: see %s' % log_path}
    with open(results) as f:
        found = json.load(f)
    found.update(suite=suite, elapsed=elapsed)
    return found


def summary(result):
    tests = result['tests']
    passed = sorted(t for t, (outcome, _) in tests.items()
                    if outcome == 'passed')
    lines = ['%s: %d passed, %d failed of %d (%d min %02d s)' % (
        result['suite'], len(passed), len(tests) - len(passed), len(tests),
        result['elapsed'] // 60, result['elapsed'] % 60)]
    for test_id, (outcome, detail) in sorted(tests.items()):
        if outcome != 'passed':
            lines.append('  %-8s %s: %s' % (outcome, test_id,
                                             detail.splitlines()[-1][:200]
                                             if detail else ''))
    if result.get('sbom'):
        lines.append('  (not a test) the SBOM failed: %s' % result['sbom'])
    if result.get('broken'):
        lines.append('  the suite did not run: %s' % result['broken'])
    return lines


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    checkout = os.path.abspath(argv[0])
    suite = argv[1] if len(argv) > 1 else 'all'
    names = argv[2:]
    if suite not in SUITES and suite != 'all':
        raise SystemExit('unknown suite %r: %s or all'
                         % (suite, ', '.join(SUITES)))
    if names and suite == 'all':
        raise SystemExit('unittest names select tests of one suite')
    root = os.environ['SLAPOS_MAIL_ROOT']
    node = SuitesNode(root)
    scratch = os.path.join(root, 'scratch')
    results_directory = os.path.join(root, 'upstream-results')
    os.makedirs(results_directory, exist_ok=True)
    project = harness.checkout_root(os.path.join(harness.CHECKOUT,
                                                 'setup.py'))
    prepare_scratch(project, checkout, scratch)
    commit = upstream_commit(checkout)
    log('upstream checkout %s (commit %s), scratch %s'
        % (checkout, commit, scratch))
    lines = ['upstream commit %s' % commit]
    passed = total = 0
    for name in (SUITES if suite == 'all' else [suite]):
        result = run_suite(node, scratch, results_directory, name, names)
        lines += summary(result)
        passed += sum(o == 'passed' for o, _ in result['tests'].values())
        total += len(result['tests'])
        print('\n'.join(summary(result)), flush=True)
    lines.append('total: %d passed of %d' % (passed, total))
    with open(os.path.join(results_directory, 'summary.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(['', '== upstream suites against this bundle'] + lines))
    return 0 if passed == total else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
