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

It runs as the unprivileged runtime user (slapgrid refuses to run partitions
as root): use ``scripts/test.sh``, which runs ``scripts/setup.sh`` first.

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
import hashlib
import ipaddress
import json
import os
import pathlib
import socket
import subprocess
import sys
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


@contextlib.contextmanager
def software_products(products):
    """While it lasts, StandaloneSlapOS writes slapproxy's configuration with
    ``software_product_list`` (one ``<product> <release URL>`` a line),
    which it has no argument for: slapproxy reads it when it starts."""
    from slapos.slap import standalone
    original = standalone.SlapOSConfigWriter

    class Writer(original):
        def writeConfig(self, path):
            super().writeConfig(path)
            with open(path) as f:
                text = f.read()
            listed = ''.join('\n  %s %s' % item
                             for item in sorted(products.items()))
            with open(path, 'w') as f:
                f.write(text.replace(
                    '[slapproxy]\n', '[slapproxy]\nsoftware_product_list =%s\n'
                    % listed, 1))
    standalone.SlapOSConfigWriter = Writer
    try:
        yield
    finally:
        standalone.SlapOSConfigWriter = original


# where slapgrid runs its watchdog from (WATCHDOG_PATH of
# slapos/grid/slapgrid.py): scripts/setup.sh provides it
WATCHDOG = '/opt/slapos/bin/slapos-watchdog'


def log(message):
    print('[harness %s] %s' % (time.strftime('%H:%M:%S'), message),
          file=sys.stderr, flush=True)


def partition_ipv6(i):
    """The IPv6 address of partition ``i`` (``fd6d:6169:6c00::<i+2>``)."""
    network = ipaddress.IPv6Network(IPV6_RANGE)
    return str(network.network_address + i + 2)


class SlapOSCommandFailed(RuntimeError):
    """slapos node software, instance or report failed: the message ends
    with the tail of its output."""


class EmbeddedSlapOS(object):

    def __init__(self, root=None, port=None, partition_count=10,
                 node_loop=True):
        if os.geteuid() == 0:
            raise RuntimeError(
                'the embedded SlapOS cannot run as root (slapgrid refuses to '
                'run partitions as root): run the tests with scripts/test.sh, '
                'which runs them as the runtime user')
        self.root = root or os.environ.get('SLAPOS_MAIL_ROOT', DEFAULT_ROOT)
        self.base_directory = os.path.join(self.root, 'slapos')
        self.port = int(port or os.environ.get('SLAPOS_MAIL_PROXY_PORT', 40000))
        self.partition_count = partition_count
        # the node's periodic runs; a benchmark that measures one run, or
        # CPU, goes without them
        self.node_loop = node_loop
        # The venv's slapos and supervisord, whatever PATH says: both
        # StandaloneSlapOS and the supervisord it starts look them up in PATH.
        self.bin_directory = os.path.join(sys.prefix, 'bin')
        self.slapos_bin = os.path.join(self.bin_directory, 'slapos')
        if not os.access(self.slapos_bin, os.X_OK):
            raise RuntimeError('%s not found: run the tests with the virtual '
                               'environment of scripts/setup.sh' % self.slapos_bin)
        path = os.environ.get('PATH', '').split(os.pathsep)
        if path[:1] != [self.bin_directory]:
            os.environ['PATH'] = os.pathsep.join([self.bin_directory] + path)
        self.standalone = None
        self.software_list = []
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
        from slapos.slap.standalone import StandaloneSlapOS
        from slapos.util import getPartitionIpv6Addr, rmtree
        self._check_addresses()
        if not keep:
            self._kill(self.processes(), 'left over by an earlier run')
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
        log('starting SlapOS in %s (slapproxy on %s:%s)'
            % (self.base_directory, IPV4, self.port))
        with software_products(SOFTWARE_PRODUCTS):
            self.standalone = StandaloneSlapOS(
                self.base_directory, IPV4, self.port,
                slapos_bin=self.slapos_bin)
            self.standalone.format(self.partition_count, IPV4, IPV6_RANGE)
        address, prefixlen = IPV6_RANGE.split('/')
        for i in range(self.partition_count):
            given = getPartitionIpv6Addr(
                {'addr': address, 'prefixlen': int(prefixlen)}, i)['addr']
            assert given == partition_ipv6(i), (i, given)
        log('%d partitions formatted' % self.partition_count)
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

    def _check_addresses(self):
        missing = []
        for i in range(self.partition_count):
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                try:
                    s.bind((partition_ipv6(i), 0))
                except OSError:
                    missing.append(partition_ipv6(i))
        if missing:
            raise RuntimeError(
                'the partitions\' IPv6 addresses are not on this machine (%s): '
                'run scripts/setup.sh as root' % ', '.join(missing))

    def stop(self):
        """Stops slapproxy, slapgrid, the instance supervisord and every
        partition service, then checks that none of our processes is left."""
        if self.standalone is not None:
            log('stopping SlapOS')
            self.standalone.stop()
            self.standalone = None
        self._kill(self.processes(), 'still running')
        log('stopped, no process left')

    def _kill(self, processes, why):
        if not processes:
            return
        log('killing processes %s: %s' % (why, ', '.join(
            '%s (%s)' % (p.pid, ' '.join(p.cmdline())[:80]) for p in processes)))
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

    def processes(self):
        """Our processes that run from or in the SlapOS directory."""
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- software -------------------------------------------------------------
    def supply(self, software_cfg_path, state='available'):
        url = os.path.abspath(software_cfg_path)
        log('supplying %s' % url)
        self._provide_download_cache(url)
        self.standalone.supply(url, state=state)
        if url not in self.software_list:
            self.software_list.append(url)
        return url

    def _provide_download_cache(self, url):
        """What the node cannot download (no network here): the software
        releases take their archives from ``${buildout:directory}/
        download-cache``, which is linked to ``$SLAPOS_MAIL_ROOT/
        download-cache`` that scripts/setup.sh fills."""
        software = os.path.join(self.standalone.software_directory,
                                hashlib.md5(url.encode()).hexdigest())
        os.makedirs(software, exist_ok=True)
        link = os.path.join(software, 'download-cache')
        if not os.path.lexists(link):
            os.symlink(os.path.join(self.root, 'download-cache'), link)

    def wait_software(self, max_retry=0, error_lines=100, force=True):
        """Builds the supplied software releases. With ``force``, buildout
        runs again on those already built (quick when nothing changed), so
        that changes of the profiles are taken."""
        start = time.time()
        log('building the software releases')
        self._run(lambda **kw: self.standalone.waitForSoftware(
                      install_all=force, **kw),
                  'slapos-node-software', max_retry, error_lines)
        log('software releases built in %.1f s' % (time.time() - start))

    # -- instances ------------------------------------------------------------
    def request(self, software_release, reference, software_type='default',
                parameters=None, shared=False, state='started',
                instance_guid=None):
        """Requests an instance; a shared one goes to the first partition
        of its software release and type, or to the partition
        ``instance_guid`` (``slappartN``) when given."""
        kw = dict(software_release=os.path.abspath(software_release),
                  partition_reference=reference, software_type=software_type,
                  shared=shared, state=state,
                  partition_parameter_kw={'_': json.dumps(parameters or {})})
        if instance_guid:
            kw['filter_kw'] = {'instance_guid': instance_guid}
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
        instance_log = os.path.join(self.base_directory, 'var', 'log',
                                    'slapos-node-instance.log')
        for done in range(1, max_passes + 1):
            offset = os.path.getsize(instance_log) if os.path.exists(
                instance_log) else 0
            self.standalone._force_slapos_node_instance_all = \
                force and done == 1
            self._run(self.standalone.waitForInstance, 'slapos-node-instance',
                      max_retry, error_lines)
            with open(instance_log, 'rb') as f:
                f.seek(offset)
                if b'Processing Computer Partition' not in f.read():
                    break
        log('partitions instantiated in %.1f s (%d passes)'
            % (time.time() - start, done))

    def wait_report(self, max_retry=0, error_lines=100):
        """Runs slapos node report, which destroys what was requested so."""
        self._run(self.standalone.waitForReport, 'slapos-node-report',
                  max_retry, error_lines)

    def connection_parameters(self, software_release, reference,
                              software_type='default', shared=False):
        """The decoded connection parameters of an instance requested before
        (it is requested again with the same parameters, as SlapOS does)."""
        kw = dict(self._requests.get((reference, shared)) or dict(
            partition_reference=reference, shared=shared, state='started',
            partition_parameter_kw={'_': '{}'}))
        kw.update(software_release=os.path.abspath(software_release),
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
                         'filter_kw', {}).get('instance_guid'))
        if wait:
            # slapos node report destroys; node instance would run the
            # profile of a partition that may be the broken one
            self.wait_report()

    def partition_path(self, i):
        return os.path.join(self.base_directory, 'inst', 'slappart%d' % i)

    def service(self, partition, name, action):
        """``action`` (stop, start) a service of a partition through the
        instance supervisor, as an operator would, e.g.
        ``service(path, 'postfix', 'stop')``; returns supervisorctl's
        output."""
        command = [os.path.join(self.bin_directory, 'supervisorctl'), '-c',
                   os.path.join(self.base_directory, 'inst', 'etc',
                                'supervisord.conf')]
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
        command = [os.path.join(self.bin_directory, 'supervisorctl'), '-c',
                   os.path.join(self.base_directory, 'inst', 'etc',
                                'supervisord.conf'), 'status']
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
        """The directory of the partition that has this IPv6 address."""
        network = ipaddress.IPv6Network(IPV6_RANGE)
        return self.partition_path(
            int(ipaddress.IPv6Address(ipv6)) - int(network.network_address) - 2)

    def _run(self, method, program, max_retry, error_lines):
        try:
            self._node_command(method, program, max_retry, error_lines)
        except Exception as e:
            raise SlapOSCommandFailed('%s failed (full log: %s.log):\n%s' % (
                program, os.path.join(self.base_directory, 'var', 'log',
                                      program), e)) from None
