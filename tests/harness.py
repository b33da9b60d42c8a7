"""The embedded SlapOS harness, shared by the tests and the demo.

A thin wrapper around ``slapos.slap.standalone.StandaloneSlapOS``: a real
SlapOS master (slapproxy), slapgrid and supervisord under
``$SLAPOS_MAIL_ROOT/slapos``, with one IPv6 address per partition out of
``fd6d:6169:6c00::/112`` (partition *i* has ``fd6d:6169:6c00::<i+2>``)::

    with EmbeddedSlapOS() as slapos:
        slapos.supply('/path/to/software.cfg')
        slapos.wait_software()
        slapos.request('/path/to/software.cfg', 'main', parameters={...})
        slapos.wait_instance()
        slapos.connection_parameters('/path/to/software.cfg', 'main')

It is laid out and run as a SlapOS node is: root runs slapproxy, slapgrid
and supervisord; ``slapos node format`` makes the software user
(``SOFTWARE_USER``), who builds the software releases, and one user per
partition (a member of the software user's group, with umask 027 as
slapgrid sets it), who runs the partition's buildout and services; the
shared parts are built once per root, in ``$SLAPOS_MAIL_ROOT/shared-parts``.
A file a partition's user cannot read fails here as on a node. Run as root:
use ``scripts/test.sh`` or ``scripts/run.sh``, which run
``scripts/setup.sh`` first. Commands on a partition's files run as its
user (``run``, ``run_promise``). Several nodes share a machine, each with
its own root directory name, proxy port and IPv6 prefix (the test
workers': tests/conftest.py).

It builds the way a SlapOS node does: slapgrid and buildout run from the
node's environment (``$SLAPOS_MAIL_ROOT/node``: slapos.core and zc.buildout,
not this bundle), and a software release of the checkout is supplied by its
http URL, served on loopback out of a clean copy of the checkout, with this
bundle's sdist on an index beside it (``serve_checkout``); the eggs come from
there and the registries this machine reaches. ``supply(path,
served=False)`` supplies the local path instead, as a development VM does.

Like a SlapOS master, its slapproxy knows Software Products
(``SOFTWARE_PRODUCTS``): a request for ``urn:slapos:mail-relay`` (the
default ``relay-sr-url`` of a backend, as upstream's) gets this checkout's
relay release.

It behaves like a SlapOS node: the node's periodic runs (``slapos node
software`` and ``instance`` every minute, ``report`` every hour, as a
node's cron does) go on in the background, and the watchdog bangs a
partition whose service dies, which the next instance run starts again.
``wait_software``, ``wait_instance`` and ``wait_report`` run their command
after the run of the same kind in progress, if any (slapgrid lets one of
each kind run at a time).
"""
import contextlib
import fnmatch
import glob
import hashlib
import ipaddress
import json
import os
import pwd
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

import psutil

IPV4 = '127.0.0.1'
# One embedded SlapOS a (root, proxy port, IPv6 prefix): set
# SLAPOS_MAIL_ROOT, SLAPOS_MAIL_PROXY_PORT and SLAPOS_MAIL_IPV6_PREFIX to run
# a second one beside it (scripts/setup.sh adds the addresses of the prefix).
IPV6_RANGE = '%s::/112' % os.environ.get('SLAPOS_MAIL_IPV6_PREFIX',
                                         'fd6d:6169:6c00')
DEFAULT_ROOT = '/srv/slapos-mail'
CHECKOUT = pathlib.Path(__file__).resolve().parents[1]
# Software Product -> its release, as slapproxy's software_product_list
# gives it (recipes.clients.master.software_release_url asks for it)
SOFTWARE_PRODUCTS = {'mail-relay': str(CHECKOUT / 'software' /
                                       'mail-server-relay' / 'software.cfg')}
# (each given by the URL it is served at: EmbeddedSlapOS.served_url)


# the software user of every embedded node of the machine: the nodes share
# what they build once (the shared parts: Postfix)
SOFTWARE_USER = 'smsoft'


def node_users(prefix, partition_count):
    """The users of the node of an IPv6 prefix, as ``slapos node format``
    makes them: the software user, who builds the software releases, and
    one user per partition, who runs its buildout and its services (a
    member of the software user's group, which reads the software). The
    partitions' users are named after the prefix's last group
    (``fd6d:6169:6c00``: ``sm6c00-user0``...), so that several nodes share
    a machine."""
    tag = 'sm' + prefix.rstrip(':').split(':')[-1]
    return SOFTWARE_USER, ['%s-user%d' % (tag, i)
                           for i in range(partition_count)]


@contextlib.contextmanager
def node_configuration(products, software_user, partition_users,
                       proxy=True):
    """While it lasts, StandaloneSlapOS configures its node as a SlapOS
    node is (it has no argument for either): slapproxy knows the Software
    Products (``software_product_list``, one ``<product> <release URL>`` a
    line), and ``slapos node format`` creates the software user and one
    user per partition (``alter_user``), owner of its directory. Without
    ``proxy``, the node runs no slapproxy: a further computer of a SlapOS
    whose master runs elsewhere."""
    from slapos.slap import standalone
    originals = (standalone.SlapOSConfigWriter,
                 standalone.SlapformatDefinitionWriter,
                 standalone.SupervisorConfigWriter)

    class SupervisorWriter(originals[2]):
        def _getSupervisorConfigParts(self):
            for part in super()._getSupervisorConfigParts():
                if not proxy and '[program:slapos-proxy]' in part:
                    head, _, tail = part.partition('[program:slapos-proxy]')
                    part = head + tail[tail.index('\n['):].lstrip('\n')
                yield part

    class ConfigWriter(originals[0]):
        def writeConfig(self, path):
            super().writeConfig(path)
            with open(path) as f:
                text = f.read()
            listed = ''.join('\n  %s %s' % item
                             for item in sorted(products.items()))
            text = text.replace(
                '[slapproxy]\n', '[slapproxy]\nsoftware_product_list =%s\n'
                % listed, 1)
            text = text.replace('alter_user = false', 'alter_user = true', 1)
            with open(path, 'w') as f:
                f.write(text)

    class DefinitionWriter(originals[1]):
        def writeConfig(self, path):
            super().writeConfig(path)
            with open(path) as f:
                text = f.read()
            text = text.replace('[computer]\n', '[computer]\nsoftware_user = %s\n'
                                % software_user, 1)
            me = 'user = %s\n' % pwd.getpwuid(os.getuid()).pw_name
            for user in partition_users:
                text = text.replace(me, 'user = %s\n' % user, 1)
            assert me not in text, text
            with open(path, 'w') as f:
                f.write(text)

    (standalone.SlapOSConfigWriter, standalone.SlapformatDefinitionWriter,
     standalone.SupervisorConfigWriter) = (ConfigWriter, DefinitionWriter,
                                           SupervisorWriter)
    try:
        yield
    finally:
        (standalone.SlapOSConfigWriter, standalone.SlapformatDefinitionWriter,
         standalone.SupervisorConfigWriter) = originals


class PollingClock(object):
    """The ``time`` of slapos.slap.standalone, whose ``waitFor...`` poll
    their command with a delay that grows by a fifth up to 300 s: a build
    of 6 minutes was seen finished 67 s before it returned. Here it polls
    every second at most."""

    @staticmethod
    def sleep(delay):
        time.sleep(min(delay, 1.0))

    def __getattr__(self, name):
        return getattr(time, name)


# where slapgrid runs its watchdog from (WATCHDOG_PATH of
# slapos/grid/slapgrid.py): scripts/setup.sh provides it
WATCHDOG = '/opt/slapos/bin/slapos-watchdog'


def log(message):
    print('[harness %s] %s' % (time.strftime('%H:%M:%S'), message),
          file=sys.stderr, flush=True)


def partition_ipv6(i, ipv6_range=IPV6_RANGE):
    """The IPv6 address of partition ``i`` (``fd6d:6169:6c00::<i+2>``)."""
    network = ipaddress.IPv6Network(ipv6_range)
    return str(network.network_address + i + 2)


# -- a clean copy of the checkout and its sdist -------------------------------
# What git tracks; outside a git checkout (the runtime user's copy of it),
# every file but these caches and build products.
NOT_IN_CHECKOUT = ('.git', '__pycache__', '.pytest_cache', 'bin', 'parts',
                   'eggs', 'develop-eggs', '.installed.cfg', 'build', 'dist')
DIGEST_FILE = 'sdist.digest'
MAILBUNDLE_DIST = 'slapos?mailbundle-*'   # our sdist's file names


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def checkout_root(path):
    """The checkout a file belongs to: the directory with setup.py above
    it."""
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(os.path.join(directory, 'setup.py')):
        parent = os.path.dirname(directory)
        if parent == directory:
            raise RuntimeError('%s is in no checkout of the bundle' % path)
        directory = parent
    return directory


def checkout_files(checkout):
    """The files of the checkout, relative to it."""
    try:
        listed = subprocess.run(['git', '-C', checkout, 'ls-files', '-z'],
                                capture_output=True, check=True).stdout
        return sorted(p for p in listed.decode().split('\0') if p and
                      os.path.isfile(os.path.join(checkout, p)))
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for directory, dirs, files in os.walk(checkout):
        dirs[:] = [d for d in dirs if d not in NOT_IN_CHECKOUT
                   and not d.endswith('.egg-info')]
        found += [os.path.relpath(os.path.join(directory, f), checkout)
                  for f in files if f not in NOT_IN_CHECKOUT
                  and not f.endswith('.pyc')]
    return sorted(found)


def clean_copy(checkout, destination):
    """Makes ``destination`` hold the checkout's files and nothing else."""
    files = checkout_files(checkout)
    wanted = set(files)
    for directory, dirs, names in os.walk(destination, topdown=False):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.relpath(path, destination) not in wanted:
                os.unlink(path)
        if directory != destination and not os.listdir(directory):
            os.rmdir(directory)
    for path in files:
        source, target = (os.path.join(checkout, path),
                          os.path.join(destination, path))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target) or open(source, 'rb').read() != \
                open(target, 'rb').read():
            shutil.copy2(source, target)


def build_sdist(checkout, index):
    """Our sdist, in ``index`` (a directory served as buildout's
    find-links), rebuilt when the package changed; ``index/sdist.digest``
    names its content."""
    h = hashlib.sha256()
    for path in checkout_files(checkout):
        if path.startswith('recipes/') or path in ('setup.py', 'README.md'):
            h.update(path.encode() + b'\0')
            with open(os.path.join(checkout, path), 'rb') as f:
                h.update(f.read() + b'\0')
    digest = h.hexdigest()
    if read(os.path.join(index, DIGEST_FILE)) == digest:
        return
    log('building the sdist of slapos.mailbundle')
    shutil.rmtree(index, ignore_errors=True)
    os.makedirs(index)
    with tempfile.TemporaryDirectory() as build:
        source = os.path.join(build, 'source')
        clean_copy(checkout, source)
        subprocess.run([sys.executable, 'setup.py', '-q', 'sdist', '-d', index],
                       cwd=source, check=True, capture_output=True)
    with open(os.path.join(index, DIGEST_FILE), 'w') as f:
        f.write(digest)


def command_line(process):
    """The first 80 characters of a process's command line, or what it is
    when it has none to give (ended, a zombie)."""
    try:
        return ' '.join(process.cmdline())[:80]
    except psutil.ZombieProcess:
        return 'a zombie'
    except psutil.Error as e:
        return type(e).__name__


def kill(processes, why):
    """Ends ``processes`` (psutil's): TERM, then KILL after 10 s."""
    if not processes:
        return
    log('killing processes %s: %s' % (why, ', '.join(
        '%s (%s)' % (p.pid, command_line(p)) for p in processes)))
    for p in processes:
        # a parent may have taken its children with it (php-fpm)
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(processes, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    _, alive = psutil.wait_procs(alive, timeout=5)
    if alive:
        raise RuntimeError('could not stop %r' % alive)


class SlapOSCommandFailed(RuntimeError):
    """slapos node software, instance or report failed: the message ends
    with the tail of its output."""


class EmbeddedSlapOS(object):

    def __init__(self, root=None, port=None, partition_count=10,
                 node_loop=True, prefix=None, name=None, master=None,
                 computer_id='local'):
        if os.geteuid() != 0:
            raise RuntimeError(
                'the embedded SlapOS runs as a SlapOS node does, as root '
                '(slapgrid builds the software as the software user and runs '
                'each partition as its own user): run the tests with '
                'scripts/test.sh, as root')
        # a further computer of a SlapOS (``add_computer``) uses the
        # master's slapproxy and software
        self.master = master
        self.computer_id = computer_id
        self.computers = []
        self.root = root or os.environ.get('SLAPOS_MAIL_ROOT', DEFAULT_ROOT)
        # a further node of the same root (a test worker's) is named apart
        self.base_directory = os.path.join(
            self.root, name or os.environ.get('SLAPOS_MAIL_NODE', 'slapos'))
        self.ipv6_range = '%s::/112' % prefix if prefix else IPV6_RANGE
        self.port = int(port or os.environ.get('SLAPOS_MAIL_PROXY_PORT', 40000))
        self.partition_count = partition_count
        self.software_user, self.partition_users = node_users(
            self.ipv6_range.split('/')[0], partition_count)
        # the node's periodic runs; a benchmark that measures one run, or
        # CPU, goes without them
        self.node_loop = node_loop
        # The node's slapos and supervisord, whatever PATH says: both
        # StandaloneSlapOS and the supervisord it starts look them up in PATH.
        self.bin_directory = os.path.join(self.root, 'node', 'bin')
        self.slapos_bin = os.path.join(self.bin_directory, 'slapos')
        if not os.access(self.slapos_bin, os.X_OK):
            raise RuntimeError('%s not found: scripts/setup.sh makes the '
                               "node's environment" % self.slapos_bin)
        path = os.environ.get('PATH', '').split(os.pathsep)
        if path[:1] != [self.bin_directory]:
            os.environ['PATH'] = os.pathsep.join([self.bin_directory] + path)
        self.standalone = None
        self.software_list = []
        self._urls = {}  # local path of a software.cfg -> the URL supplied
        self._requests = {}  # (reference, shared) -> request arguments
        # what a caller records about its deployment (the demo): removed
        # with the deployment by a clean start
        self.record_directory = os.path.join(self.base_directory, 'var',
                                             'deployment')

    # -- life cycle -----------------------------------------------------------
    def start(self, clean=True, keep=False):
        """Starts slapproxy and formats the partitions. With ``clean``, the
        partitions, the master's database, the logs and the record of an
        earlier run (``record_directory``) are removed first (built software
        releases are kept). With ``keep``, what an earlier run left, running
        or stopped, is kept as it is and started again."""
        from slapos.slap import standalone
        from slapos.slap.standalone import StandaloneSlapOS
        from slapos.util import getPartitionIpv6Addr, rmtree
        standalone.time = PollingClock()
        # pip (which buildout builds eggs from sdists with) keeps the
        # wheels it built in one cache for the node, not in each software's
        # $HOME: the second release installs the first's
        os.environ.setdefault('PIP_CACHE_DIR', os.path.join(
            self.root, 'download-cache', 'pip'))
        self._check_addresses()
        if not keep:
            kill(self.processes(), 'left over by an earlier run')
        os.makedirs(self.base_directory, exist_ok=True)
        if clean and not keep:
            log_directory = os.path.join(self.base_directory, 'var', 'log')
            for path in ['inst', os.path.join('var', 'proxy.db'),
                         self.record_directory] + [
                    os.path.join(log_directory, name) for name in
                    (os.listdir(log_directory) if os.path.isdir(log_directory) else ())]:
                path = os.path.join(self.base_directory, path)
                if os.path.isdir(path):
                    rmtree(path)
                elif os.path.exists(path):
                    os.unlink(path)
        log('starting SlapOS in %s (slapproxy on %s:%s, computer %s)'
            % (self.base_directory, IPV4, self.port, self.computer_id))
        further = {} if self.master is None else dict(
            computer_id=self.computer_id, instance_only=True,
            software_root=self.master.standalone.software_directory)
        with node_configuration({product: self.served_url(path) for
                                 product, path in SOFTWARE_PRODUCTS.items()},
                                self.software_user, self.partition_users,
                                proxy=self.master is None):
            self.standalone = StandaloneSlapOS(
                self.base_directory, IPV4, self.port,
                shared_part_root=self.shared_part_root,
                slapos_bin=self.slapos_bin, **further)
            self.standalone.format(self.partition_count, IPV4,
                                   self.ipv6_range)
        address, prefixlen = self.ipv6_range.split('/')
        for i in range(self.partition_count):
            given = getPartitionIpv6Addr(
                {'addr': address, 'prefixlen': int(prefixlen)}, i)['addr']
            assert given == self.partition_ipv6(i), (i, given)
        self._give_to_software_user(self.shared_part_root)
        # the software user's buildouts write the pip cache
        os.makedirs(os.environ['PIP_CACHE_DIR'], exist_ok=True)
        self._give_to_software_user(os.environ['PIP_CACHE_DIR'])
        log('%d partitions formatted' % self.partition_count)
        if self.master is None:
            self._start_software_server()
        if self.node_loop:
            self._start_node_loop()
        return self

    # -- what makes it a node -----------------------------------------------
    # StandaloneSlapOS's node loop: what a node's cron runs (software and
    # instance every minute, report every hour), each command through the
    # standalone supervisor's program of the same name
    NODE_LOOP = 'slapos-node-auto'
    # the standalone supervisor's programs of each kind of slapgrid command:
    # one pidfile per kind, a second command of a kind exits with BUSY
    NODE_COMMANDS = {
        'slapos-node-software': 'software', 'slapos-node-software-all': 'software',
        'slapos-node-instance': 'instance', 'slapos-node-instance-all': 'instance',
        'slapos-node-report': 'report'}
    BUSY = 10

    def _start_node_loop(self):
        """Starts the node's periodic runs; a partition's service that dies
        is started again by the instance run that its bang causes (the
        watchdog is checked: without it, nothing bangs)."""
        if not os.access(WATCHDOG, os.X_OK):
            raise RuntimeError(
                '%s is missing: a partition whose service dies would never '
                'be banged; run scripts/setup.sh as root' % WATCHDOG)
        with self.standalone.system_supervisor_rpc as supervisor:
            if supervisor.getProcessInfo(self.NODE_LOOP)['statename'] \
                    not in ('STARTING', 'RUNNING'):
                supervisor.startProcess(self.NODE_LOOP, False)
        log('node loop started (slapos node software and instance every '
            'minute, report every hour)')

    @contextlib.contextmanager
    def node_loop_paused(self):
        """While it lasts, the node's periodic runs are stopped (after the
        run in progress): a test that counts the node's runs makes them
        all."""
        with self.standalone.system_supervisor_rpc as supervisor:
            if supervisor.getProcessInfo(self.NODE_LOOP)['statename'] in (
                    'STARTING', 'RUNNING'):
                supervisor.stopProcess(self.NODE_LOOP)
        for program in ('slapos-node-software', 'slapos-node-instance'):
            self._wait_idle(program)
        try:
            yield
        finally:
            if self.node_loop:
                self._start_node_loop()

    def _wait_idle(self, program, timeout=3600):
        """Waits until no slapgrid command of the kind of ``program`` runs
        (a run of the node loop)."""
        kind = self.NODE_COMMANDS[program]
        busy = [p for p, k in self.NODE_COMMANDS.items() if k == kind]
        deadline = time.time() + timeout
        with self.standalone.system_supervisor_rpc as supervisor:
            while any(supervisor.getProcessInfo(p)['statename'] in
                      ('STARTING', 'RUNNING', 'STOPPING') for p in busy):
                if time.time() > deadline:
                    raise RuntimeError('slapos node %s still runs after %d s'
                                       % (kind, timeout))
                time.sleep(0.5)

    def _node_command(self, method, program, max_retry, error_lines):
        """``method`` (a StandaloneSlapOS ``waitFor...`` that runs
        ``program``), after the command of the same kind that the node loop
        may be running: it is tried again when the loop's command started
        in between (already started, or exited with BUSY)."""
        from slapos.slap.standalone import SlapOSNodeCommandError
        while True:
            self._wait_idle(program)
            try:
                return method(max_retry=max_retry, error_lines=error_lines)
            except xmlrpc.client.Fault as e:
                if 'ALREADY_STARTED' not in e.faultString:
                    raise
            except SlapOSNodeCommandError as e:
                if not e.args or e.args[0].get('exitstatus') != self.BUSY:
                    raise
            log('slapos node %s of the node loop runs: waiting for it'
                % self.NODE_COMMANDS[program])

    def partition_ipv6(self, i):
        return partition_ipv6(i, self.ipv6_range)

    def _missing_addresses(self):
        missing = []
        for i in range(self.partition_count):
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                try:
                    s.bind((self.partition_ipv6(i), 0))
                except OSError:
                    missing.append(self.partition_ipv6(i))
        return missing

    def _check_addresses(self):
        """The partitions' addresses are local (scripts/addresses.sh makes
        them so, run here for a node whose prefix setup.sh did not do)."""
        if self._missing_addresses():
            subprocess.run(['bash', os.path.join(CHECKOUT, 'scripts',
                                                 'addresses.sh'),
                            self.ipv6_range.split('::/')[0]], check=True,
                           stdout=subprocess.DEVNULL)
        missing = self._missing_addresses()
        if missing:
            raise RuntimeError(
                'the partitions\' IPv6 addresses are not on this machine '
                '(%s): scripts/addresses.sh did not add them'
                % ', '.join(missing))

    def add_computer(self, computer_id, prefix=None, partition_count=10):
        """Starts a further computer of this SlapOS, as another machine
        would be: a node with its own partitions, users, IPv6 prefix,
        supervisord, watchdog and instance runs, attached to this one's
        slapproxy (no proxy of its own) and using the software this one
        built (as if each machine had built the same). Requests reach it
        with ``sla: {'computer_guid': computer_id}`` (``request``'s
        ``computer_guid``); ``wait_instance`` here runs it too; stopped
        with this one. The n-th further computer's prefix is this one's
        with 0x400 + 0x100 (n - 1) added to its last group (so that test
        workers' computers never meet)."""
        if prefix is None:
            head, last = self.ipv6_range.split('::/')[0].rsplit(':', 1)
            prefix = '%s:%x' % (head, int(last, 16) + 0x400
                                + 0x100 * len(self.computers))
        computer = EmbeddedSlapOS(
            root=self.root, port=self.port, partition_count=partition_count,
            node_loop=self.node_loop, prefix=prefix,
            name='%s-%s' % (os.path.basename(self.base_directory),
                            computer_id),
            master=self, computer_id=computer_id)
        computer.start()
        self.computers.append(computer)
        return computer

    def crash(self, partitions=()):
        """What happens to the computer when its machine dies: its node
        runs stop, its instance supervisord and the processes of
        ``partitions`` are killed at once (kill -9); the master (slapproxy,
        which on the first computer stands for a SlapOS master elsewhere)
        goes on."""
        with self.standalone.system_supervisor_rpc as supervisor:
            if supervisor.getProcessInfo(self.NODE_LOOP)['statename'] in (
                    'STARTING', 'RUNNING'):
                supervisor.stopProcess(self.NODE_LOOP)
        configuration = os.path.join(self.base_directory, 'inst', 'etc',
                                     'supervisord.conf')
        victims = []
        for p in psutil.process_iter(['cmdline', 'cwd']):
            text = ' '.join(p.info['cmdline'] or ()) + ' '
            if configuration + ' ' in text or any(
                    partition + os.sep in text
                    or ((p.info['cwd'] or '') + os.sep).startswith(
                        partition + os.sep)
                    for partition in partitions):
                victims.append(p)
        for p in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(victims, timeout=10)
        log('crashed %s: %d processes killed' % (self.computer_id,
                                                 len(victims)))

    def boot(self, max_retry=4):
        """What the computer does when its machine starts again (``slapos
        node boot``): its instance supervisord starts, every partition is
        processed (which starts their services), its node runs go on."""
        with self.standalone.system_supervisor_rpc as supervisor:
            if supervisor.getProcessInfo('slapos-instance-supervisord')[
                    'statename'] not in ('STARTING', 'RUNNING'):
                supervisor.startProcess('slapos-instance-supervisord')
        self._instance_pass(True, max_retry, 100)
        if self.node_loop:
            self._start_node_loop()

    def stop(self):
        """Stops slapproxy, slapgrid, the instance supervisord and every
        partition service (of the further computers first), then checks
        that none of our processes is left."""
        while self.computers:
            self.computers.pop().stop()
        if self.standalone is not None:
            log('stopping SlapOS')
            self.standalone.stop()
            self.standalone = None
        kill(self.processes(), 'still running')
        log('stopped, no process left')

    def processes(self):
        """The node's processes (root's: slapproxy, supervisord, slapgrid;
        its users': the partitions' services) that run from or in the
        SlapOS directory."""
        me = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
        base = self.base_directory + os.sep
        uids = {0}
        for user in [self.software_user] + self.partition_users:
            with contextlib.suppress(KeyError):
                uids.add(pwd.getpwnam(user).pw_uid)
        found = []
        for p in psutil.process_iter(['pid', 'uids', 'cmdline', 'cwd']):
            info = p.info
            if info['pid'] in me or not info['uids'] \
                    or info['uids'].real not in uids:
                continue
            if base in ' '.join(info['cmdline'] or ()) + ' ' \
                    or (info['cwd'] or '').startswith(base):
                found.append(p)
        return found

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- software -------------------------------------------------------------
    def supply(self, software_cfg_path, state='available', served=True):
        """Supplies a software release of the checkout: by the http URL it
        is served at (a node's way), or with ``served=False`` by its local
        path (a development VM's); a URL is supplied as it is. Returns the
        URL supplied, which ``request`` and the other methods use for that
        path."""
        if '://' in software_cfg_path:
            url = software_cfg_path
        else:
            path = os.path.abspath(software_cfg_path)
            url = self._serve(path) if served else self._develop(path)
            self._urls[path] = url
        log('supplying %s%s' % (url, '' if state == 'available' else
                                ' (%s)' % state))
        if state == 'available':
            self._write_node_buildout(url)
            if url not in self.software_list:
                self.software_list.append(url)
        elif url in self.software_list:
            self.software_list.remove(url)
        self.standalone.supply(url, state=state)
        return url

    def software_url(self, software_release):
        """The URL a software release was supplied by (``supply``)."""
        if '://' in software_release:
            return software_release
        path = os.path.abspath(software_release)
        return self._urls.get(path, path)

    # -- the software releases, as a node gets them ---------------------------
    # A node is handed a software URL and builds it with its own buildout:
    # the checkout is served on loopback (a clean copy: what git tracks, not
    # the working tree's caches), with this bundle's sdist on an index, and
    # the node's buildout gets the lab's own settings.

    @property
    def served_directory(self):
        return os.path.join(self.base_directory, 'served')

    @property
    def server_port(self):
        return self.port + 1

    def _start_software_server(self):
        """Starts the http server of the served directory
        (tests/software_server.py, as its own process: it outlives a demo
        run, and the ``slapos`` client fetches a release's schemas from
        it); stopped with the other processes."""
        os.makedirs(self.served_directory, exist_ok=True)
        with socket.socket() as s:
            if s.connect_ex((IPV4, self.server_port)) == 0:
                return
        log_file = os.path.join(self.base_directory, 'var', 'log',
                                'software-server.log')
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        with open(log_file, 'ab') as out:
            subprocess.Popen(
                [sys.executable, os.path.join(os.path.dirname(
                    os.path.abspath(__file__)), 'software_server.py'),
                 self.served_directory, str(self.server_port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex((IPV4, self.server_port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError('the software server did not start: see %s'
                           % log_file)

    def served_url(self, path):
        """The URL ``path`` (a file of the checkout) is served at."""
        return 'http://%s:%s/checkout/%s' % (
            IPV4, self.server_port,
            os.path.relpath(path, checkout_root(path)))

    def _serve(self, path):
        """The URL of ``path`` (a file of the checkout) in a fresh clean
        copy of the checkout, and our sdist on the index beside it."""
        copy = os.path.join(self.served_directory, 'checkout')
        if not getattr(self, '_served_fresh', False):
            clean_copy(checkout_root(path), copy)
            build_sdist(copy, os.path.join(self.served_directory, 'index'))
            self._served_fresh = True
        return self.served_url(path)

    @property
    def shared_part_root(self):
        """Where the nodes of this root build their shared parts once (the
        SlapOS way: ``shared = true`` parts, the node's
        ``shared-part-list``)."""
        return os.path.join(self.root, 'shared-parts')

    @property
    def develop_checkout(self):
        return os.path.join(self.base_directory, 'checkout')

    def _develop(self, path):
        """The path of ``path`` (a file of the checkout) in the software
        user's own copy of the checkout, as in a development VM, where the
        checkout is the user's who builds the software (the build installs
        the bundle from it in develop mode, writing its egg-info there)."""
        clean_copy(checkout_root(path), self.develop_checkout)
        self._give_to_software_user(self.develop_checkout)
        return os.path.join(self.develop_checkout,
                            os.path.relpath(path, checkout_root(path)))

    @property
    def software_directory(self):
        """Where the node builds its software releases (StandaloneSlapOS's
        ``soft``), known before it starts."""
        return os.path.join(self.base_directory, 'soft')

    def _software_path(self, url):
        return os.path.join(self.software_directory,
                            hashlib.md5(url.encode()).hexdigest())

    def _write_node_buildout(self, url):
        """The software directory's buildout.cfg, which slapgrid writes (and
        keeps) with the first lines only: the lab's node adds a download
        cache holding what it cannot download (the archives scripts/setup.sh
        puts in $SLAPOS_MAIL_ROOT/download-cache, and the eggs once
        downloaded) and the package index of our sdist, which sends the
        node to PyPI for everything else."""
        software = self._software_path(url)
        os.makedirs(software, exist_ok=True)
        self._give_to_software_user(software)
        shared = self.shared_part_root
        with open(os.path.join(software, 'buildout.cfg'), 'w') as f:
            f.write('[buildout]\nextends = %s\nshared-part-list = %s\n'
                    'build-time-part-list =\n'
                    '# the embedded SlapOS node\'s settings (tests/harness.py)\n'
                    'download-cache = %s\nindex = http://%s:%s/simple/\n'
                    % (url, shared, os.path.join(software, 'download-cache'),
                       IPV4, self.server_port))

    def _give_to_software_user(self, path):
        """Makes the software user own ``path`` and what is in it (what the
        harness made as root), as ``slapos node format`` does the software root;
        nothing to do on a node run by an unprivileged user (slapos.testing's)."""
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam(self.software_user)
        for directory, _, names in os.walk(path):
            for name in ['.'] + names:
                name = os.path.join(directory, name)
                if os.lstat(name).st_uid != user.pw_uid:
                    os.lchown(name, user.pw_uid, user.pw_gid)

    def _forget_changed_content(self, url):
        """A node takes a software URL, and an egg version, for immutable;
        here the checkout changes under the same ones. So before each build
        the node forgets its copies of them: the cached profiles, the cached
        downloads of files next to them, and our egg and sdist when the
        sdist changed. The archives and dists of the shared download cache
        are kept, for all the root's nodes."""
        software = self._software_path(url)
        shutil.rmtree(os.path.join(software, 'extends-cache'),
                      ignore_errors=True)
        cache = os.path.join(software, 'download-cache')
        if os.path.islink(cache):
            os.unlink(cache)
        os.makedirs(cache, exist_ok=True)
        shared = os.path.join(self.root, 'download-cache')
        os.makedirs(os.path.join(shared, 'dist'), exist_ok=True)
        index = os.path.join(self.served_directory, 'index')
        stamp = os.path.join(software, '.slapos.mailbundle-sdist')
        sdist = read(os.path.join(index, DIGEST_FILE))
        changed = read(stamp) != sdist
        for name in os.listdir(cache):
            path = os.path.join(cache, name)
            if not os.path.islink(path):
                (shutil.rmtree if os.path.isdir(path) else os.unlink)(path)
            elif not os.path.exists(path):
                os.unlink(path)  # an archive removed from the shared cache
        # the dists: the node's own directory, which its releases share (a
        # release builds after another in one run, and finds what the
        # other downloaded), linked from each release's download cache
        dist, node_dist = (os.path.join(cache, 'dist'),
                           os.path.join(self.base_directory, 'dist'))
        self._share_dists(node_dist, os.path.join(shared, 'dist'), changed)
        if os.path.islink(dist) and os.readlink(dist) != node_dist:
            os.unlink(dist)     # (the root's, of an earlier harness)
        if not os.path.lexists(dist):
            os.symlink(node_dist, dist)
        # the software user's buildout writes what it downloads there
        self._give_to_software_user(cache)
        self._give_to_software_user(node_dist)
        for name in os.listdir(shared):
            link = os.path.join(cache, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(shared, name), link)
        if changed:
            # (a build from a local path links the checkout again:
            # [mailbundle-develop] of software/stack/mail.cfg; but an egg
            # of the index's sdist may be in its eggs too: seen)
            for pattern in (('eggs', 'slapos.mailbundle-*'),
                            ('develop-eggs', 'slapos.mailbundle.egg-link')):
                for path in glob.glob(os.path.join(software, *pattern)):
                    (shutil.rmtree if os.path.isdir(path) else os.unlink)(path)
            with open(stamp, 'w') as f:
                f.write(sdist or '')

    @staticmethod
    def _share_dists(own, shared, changed):
        """The dists buildout downloaded into the node's ``own`` directory
        go to the ``shared`` one, linked from every node's, all but our
        sdist: its content changes under the same name, and another node
        of the root (an xdist worker's) may be installing its own at the
        time; it is forgotten when ``changed``."""
        os.makedirs(own, exist_ok=True)
        for name in os.listdir(own):
            path = os.path.join(own, name)
            if fnmatch.fnmatch(name, MAILBUNDLE_DIST):
                if changed:
                    os.unlink(path)
            elif os.path.islink(path):
                if not os.path.exists(path):
                    os.unlink(path)
            else:
                # (a rename: the others see the whole file or none)
                os.replace(path, os.path.join(shared, name))
                os.symlink(os.path.join(shared, name), path)
        for name in os.listdir(shared):
            if fnmatch.fnmatch(name, MAILBUNDLE_DIST):
                continue     # (left by the harness's older versions)
            link = os.path.join(own, name)
            if not os.path.lexists(link):
                os.symlink(os.path.join(shared, name), link)

    def wait_software(self, max_retry=0, error_lines=100, force=True):
        """Builds the supplied software releases. With ``force``, buildout
        runs again on those already built (quick when nothing changed), so
        that changes of the profiles are taken."""
        start = time.time()
        log('building the software releases')
        for url in self.software_list:
            # without force, a release built already is not built again:
            # its copies (our egg) must stay
            if force or not os.path.exists(os.path.join(
                    self._software_path(url), '.completed')):
                self._forget_changed_content(url)
        self._run(lambda **kw: self.standalone.waitForSoftware(
                      install_all=force, **kw),
                  'slapos-node-software', max_retry, error_lines)
        log('software releases built in %.1f s' % (time.time() - start))

    # -- instances ------------------------------------------------------------
    def request(self, software_release, reference, software_type='default',
                parameters=None, shared=False, state='started',
                instance_guid=None, computer_guid=None):
        """Requests an instance; a shared one goes to the first partition
        of its software release and type, or to the partition
        ``instance_guid`` (``slappartN``) when given. On the computer
        ``computer_guid`` (``add_computer``) when given, as ``sla`` would
        place it."""
        kw = dict(software_release=self.software_url(software_release),
                  partition_reference=reference, software_type=software_type,
                  shared=shared, state=state,
                  partition_parameter_kw={'_': json.dumps(parameters or {})})
        filter_kw = {}
        if computer_guid:
            filter_kw['computer_guid'] = computer_guid
        if instance_guid:
            filter_kw['instance_guid'] = instance_guid
        if filter_kw:
            kw['filter_kw'] = filter_kw
        self._requests[reference, shared] = kw
        log('requesting %s%s (%s, %s)' % (
            'shared ' if shared else '', reference, software_type, state))
        return self._request(**kw)

    def _request(self, filter_kw=None, **kw):
        if filter_kw:
            # StandaloneSlapOS.request refuses any filter, slapproxy takes
            # instance_guid
            return self.standalone._slap.registerOpenOrder().request(
                filter_kw=filter_kw, **kw)
        return self.standalone.request(**kw)

    def wait_instance(self, max_retry=0, error_lines=100, max_passes=6,
                      force=False):
        """Runs slapos node instance until a pass has no partition left to
        process: slapgrid chooses the partitions of a pass when it starts,
        so what one partition requests from another (a cluster from its
        nodes) is processed by the next pass, as on a real node. With
        ``force``, the first pass processes every partition (``--force``),
        as a node does after a reboot: it starts the stopped services of
        partitions whose parameters did not change."""
        start = time.time()
        log('instantiating the partitions')
        if not self.computers:
            for done in range(1, max_passes + 1):
                if not self._instance_pass(force and done == 1, max_retry,
                                           error_lines):
                    break
        else:
            # each computer in turn, as each machine's node runs on its own:
            # a partition that waits for another computer's (a cluster for
            # its node) fails its run until that computer's run, so a
            # failure is final only when the last pass still has it
            for done in range(1, max_passes + max_retry + 1):
                processed, failures = [], []
                for computer in [self] + self.computers:
                    try:
                        processed.append(computer._instance_pass(
                            force and done == 1, 0, error_lines))
                    except SlapOSCommandFailed as failed:
                        failures.append(failed)
                if not failures and not any(processed):
                    break
            if failures:
                raise failures[0]
        log('partitions instantiated in %.1f s (%d passes)'
            % (time.time() - start, done))

    def _instance_pass(self, force, max_retry, error_lines):
        """One ``slapos node instance`` of this computer; whether it
        processed a partition."""
        instance_log = os.path.join(self.base_directory, 'var', 'log',
                                    'slapos-node-instance.log')
        offset = os.path.getsize(instance_log) if os.path.exists(
            instance_log) else 0
        self.standalone._force_slapos_node_instance_all = force
        self._run(self.standalone.waitForInstance, 'slapos-node-instance',
                  max_retry, error_lines)
        with open(instance_log, 'rb') as f:
            f.seek(offset)
            return b'Processing Computer Partition' in f.read()

    def wait_report(self, max_retry=0, error_lines=100):
        """Runs slapos node report, which destroys what was requested so,
        on each computer."""
        for computer in [self] + self.computers:
            computer._run(computer.standalone.waitForReport,
                          'slapos-node-report', max_retry, error_lines)

    def connection_parameters(self, software_release, reference,
                              software_type='default', shared=False):
        """The decoded connection parameters of an instance requested before
        (it is requested again with the same parameters, as SlapOS does)."""
        kw = dict(self._requests.get((reference, shared)) or dict(
            partition_reference=reference, shared=shared, state='started',
            partition_parameter_kw={'_': '{}'}))
        kw.update(software_release=self.software_url(software_release),
                  software_type=software_type)
        params = self._request(**kw).getConnectionParameterDict()
        if '_' in params:
            params = json.loads(params['_'])
        return params

    def destroy(self, software_release, reference, software_type='default',
                shared=False, wait=True):
        """Requests the instance destroyed, and by default runs slapgrid
        until it is."""
        kw = self._requests.get((reference, shared), {})
        self.request(software_release, reference, software_type,
                     json.loads(kw.get('partition_parameter_kw', {}).get('_', '{}')),
                     shared=shared, state='destroyed', instance_guid=kw.get(
                         'filter_kw', {}).get('instance_guid'),
                     computer_guid=kw.get('filter_kw', {}).get(
                         'computer_guid'))
        if wait:
            # slapos node report destroys; node instance would run the
            # profile of a partition that may be the broken one
            self.wait_report()

    def partition_path(self, i):
        return os.path.join(self.base_directory, 'inst', 'slappart%d' % i)

    @staticmethod
    def partition_user(partition):
        """The user of a partition (``slapos node format`` made it the
        owner of its directory), who runs its services."""
        return pwd.getpwuid(os.stat(partition).st_uid).pw_name

    def run(self, partition, argv, **kw):
        """``subprocess.run(argv, **kw)`` as the user that owns the
        partition directory ``partition``, as an operator runs a partition's
        command (``bin/backup``, ``postqueue -c ...``) on a node; tests use
        it for every command that reads or writes a partition's files."""
        owner = self.partition_user(partition)
        if owner != pwd.getpwuid(os.geteuid()).pw_name:
            argv = ['runuser', '-u', owner, '--'] + list(argv)
            # in the partition, as the operator is: the test's own directory
            # may be one the partition's user cannot enter
            kw.setdefault('cwd', partition)
        return subprocess.run(argv, **kw)

    # slapgrid's promise launcher, as it runs a partition's promises
    PROMISE_RUNNER = """
import logging, sys
from slapos.grid.promise import PromiseError, PromiseLauncher
partition, name, anomaly = sys.argv[1], sys.argv[2], sys.argv[3] == 'anomaly'
try:
    PromiseLauncher(config={
        'partition-folder': partition,
        'promise-folder': partition + '/etc/plugin',
        'log-folder': partition + '/.slapgrid/promise/log',
        'force': True, 'check-anomaly': anomaly, 'promise-timeout': 60,
        'run-only-promise-list': [name + '.py']},
        logger=logging.getLogger('promise')).run()
except PromiseError:
    pass
"""

    def run_promise(self, partition, name, anomaly=False):
        """Runs one promise of the partition now, as slapgrid does: its
        promise launcher, with the node's Python, as the partition's user,
        in a fresh interpreter as slapgrid's is (the plugin reloads slapos'
        modules), with slapgrid's log folder, where a promise finds its
        earlier results; returns its result ``{'failed', 'message'}``."""
        self.run(partition, [os.path.join(self.bin_directory, 'python3'),
                             '-c', self.PROMISE_RUNNER, partition, name,
                             'anomaly' if anomaly else 'test'],
                 check=True, capture_output=True, timeout=120)
        with open(os.path.join(partition, '.slapgrid', 'promise', 'result',
                               name + '.status.json')) as f:
            return json.load(f)['result']

    def _supervisorctl(self, partition):
        """supervisorctl of the instance supervisor of the partition's
        computer."""
        return [os.path.join(self.bin_directory, 'supervisorctl'), '-c',
                os.path.join(self.computer_of(partition).base_directory,
                             'inst', 'etc', 'supervisord.conf')]

    def service(self, partition, name, action):
        """``action`` (stop, start) a service of a partition through the
        instance supervisor, as an operator would, e.g.
        ``service(path, 'postfix', 'stop')``; returns supervisorctl's
        output."""
        command = self._supervisorctl(partition)
        prefix = '%s:%s-' % (os.path.basename(partition), name)
        status = subprocess.run(command + ['status'], capture_output=True,
                                text=True).stdout.split('\n')
        programs = [line.split()[0] for line in status
                    if line.startswith(prefix)]
        if not programs:
            raise RuntimeError('no service %s in %s' % (name, partition))
        return subprocess.run(command + [action] + programs,
                              capture_output=True, text=True).stdout

    def services(self, partition):
        """``{service: (state, pid)}`` of a partition's services, as the
        instance supervisor shows them (``RUNNING``, ``EXITED``...; pid 0
        when not running), named as in ``etc/service`` (``postfix``,
        ``spam-filter``: without the hash of ``hash-existing-files``)."""
        command = self._supervisorctl(partition) + ['status']
        prefix = os.path.basename(partition) + ':'
        found = {}
        for line in subprocess.run(command, capture_output=True,
                                   text=True).stdout.splitlines():
            fields = line.split()
            if not fields or not fields[0].startswith(prefix):
                continue
            name = fields[0][len(prefix):]
            if name.endswith('-on-watch'):
                name = name[:-len('-on-watch')]
            base, _, suffix = name.rpartition('-')
            if base and len(suffix) == 32 and all(
                    c in '0123456789abcdef' for c in suffix):
                name = base
            pid = int(fields[3].rstrip(',')) if len(fields) > 3 \
                and fields[2] == 'pid' else 0
            found[name] = (fields[1], pid)
        return found

    def partition_of_address(self, ipv6):
        """The directory of the partition that has this IPv6 address, on
        this computer or a further one."""
        address = ipaddress.IPv6Address(ipv6)
        for computer in [self] + self.computers:
            network = ipaddress.IPv6Network(computer.ipv6_range)
            if address in network:
                return computer.partition_path(
                    int(address) - int(network.network_address) - 2)
        raise ValueError('%s is no partition\'s address' % ipv6)

    def computer_of(self, partition):
        """The computer (this one or a further one) of a partition
        directory."""
        for computer in [self] + self.computers:
            if partition.startswith(computer.base_directory + os.sep):
                return computer
        raise ValueError('%s is no partition of this SlapOS' % partition)

    def _run(self, method, program, max_retry, error_lines):
        try:
            self._node_command(method, program, max_retry, error_lines)
        except Exception as e:
            raise SlapOSCommandFailed('%s failed (full log: %s.log):\n%s' % (
                program, os.path.join(self.base_directory, 'var', 'log',
                                      program), e)) from None


def build():
    """Builds both software releases on the first node of the root and
    stops it (scripts/test.sh, before the test workers start: their nodes
    then find the shared parts built, and the first one the software)."""
    from tests.deployment import MAIL_SERVER, RELAY
    with EmbeddedSlapOS(node_loop=False) as slapos:
        slapos.supply(MAIL_SERVER)
        slapos.supply(RELAY)
        slapos.wait_software()


if __name__ == '__main__':
    if sys.argv[1:] != ['build']:
        sys.exit('usage: python -m tests.harness build')
    build()
