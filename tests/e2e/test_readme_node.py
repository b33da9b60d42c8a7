"""The README's "Installing on a SlapOS node", run as it is written, from a
clean root: a plain SlapOS node (slapos.core from the package index, its
own slapproxy, `slapos node format` making the software user and one user
per partition, its own IPv6 /64 on lo), both releases supplied by http URL
(the checkout served as tests/harness.py serves it) and built by that
node, a relay cluster, a backend and an account requested as the README
says; then a message goes through the relay into the account's mailbox.

Only the README's first block, the values of its variables, is this
test's own: paths under $SLAPOS_MAIL_ROOT/plainnode, ports
$SLAPOS_MAIL_PROXY_PORT + 5 to + 7 (the embedded SlapOS of the same
worker has + 0 and + 1, the next worker's + 10), addresses and user names from
$SLAPOS_MAIL_IPV6_PREFIX (``fd6d:6169:6c70``: the node's address
``fd6d:6169:6c70:1::1/64``, users ``sn6c70-soft``, ``sn6c70-user0``...).
This machine has no systemd (a container): a ``systemctl`` that disables
the units it is given, which must exist, stands in for it.

It takes what the embedded node's software build takes, and the
installation of slapos.core and of the index (see the README's figures).
"""
import ast
import contextlib
import fcntl
import hashlib
import imaplib
import ipaddress
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

import psutil
import pytest

from tests import harness
from tests.deployment import RELAY_INBOUND_PORT, send_retrying

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'docs', 'install-node.md')
SECTION = '## Installing on a SlapOS node'
PREFIX = os.environ.get('SLAPOS_MAIL_IPV6_PREFIX', 'fd6d:6169:6c00')
TAG = PREFIX.rstrip(':').split(':')[-1]
NODE_NETWORK = ipaddress.IPv6Network('%s:1::/64' % PREFIX)
IPV4_NETWORK = ipaddress.IPv4Network('127.%d.%d.0/24' % (
    int(TAG.zfill(4)[:2], 16), int(TAG.zfill(4)[2:], 16)))
SOFTWARE_USER = 'sn%s-soft' % TAG
USER_BASE_NAME = 'sn%s-user' % TAG
PARTITIONS = 4  # the README's partition_amount
ROOT = os.path.join(os.environ.get('SLAPOS_MAIL_ROOT', harness.DEFAULT_ROOT),
                    'plainnode')
PORT = int(os.environ.get('SLAPOS_MAIL_PROXY_PORT', 40000)) + 5
# a root shell's PATH on Debian: the node is not set up from the tests'
# virtual environment
PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# two set-ups at once take turns: setup.sh's apt-get, and this node's
# format (which takes the largest IPv6 network of lo for the node's)
APT_LOCK = '/var/lock/slapos-mail-apt.lock'
FORMAT_LOCK = '/var/lock/slapos-mail-plainnode.lock'
ACCOUNT, PASSWORD = 'alice@mail1.example.com', 'alice chose this'

SYSTEMCTL = '''#!/bin/sh
# systemctl, on a machine without systemd: what `disable --now` does to
# units that are not running (their processes were never started here)
[ -d /run/systemd/system ] && exec /usr/bin/systemctl "$@"
for unit in "$@"; do
  case $unit in
    -*|disable) ;;
    *) [ -e "/lib/systemd/system/$unit.service" ] \\
         || { echo "Unit file $unit.service does not exist." >&2; exit 1; } ;;
  esac
done
[ "$1" = disable ] || { echo "systemctl stand-in: $* is not done here" >&2; exit 1; }
shift
for unit in "$@"; do [ "$unit" = --now ] || /usr/bin/systemctl disable "$unit"; done
'''


def readme_blocks():
    with open(README) as f:
        text = f.read()
    section = text[text.index(SECTION):]
    end = section.find('\n## ', 1)      # the next section, if any
    section = section if end < 0 else section[:end]
    return re.findall(r'```sh\n(.*?)```', section, re.S)


def node_users():
    return [SOFTWARE_USER] + ['%s%d' % (USER_BASE_NAME, i)
                              for i in range(PARTITIONS)]


def variables(archives):
    """The values of the README's first block, for this machine."""
    slapos = os.path.join(ROOT, 'opt', 'slapos')
    configuration = os.path.join(ROOT, 'etc', 'opt', 'slapos', 'slapos.cfg')
    served = 'http://127.0.0.1:%d/checkout/software/' % (PORT + 2)
    return dict(
        SLAPOS=slapos, SLAPOS_CONFIGURATION=configuration,
        SLAPOS_CLIENT_CONFIGURATION=configuration,
        SOFTWARE_ROOT=os.path.join(ROOT, 'opt', 'slapgrid'),
        INSTANCE_ROOT=os.path.join(ROOT, 'srv', 'slapgrid'),
        SOFTWARE_USER=SOFTWARE_USER, USER_BASE_NAME=USER_BASE_NAME,
        NODE_INTERFACE='lo',
        NODE_IPV6='%s/64' % (NODE_NETWORK.network_address + 1),
        NODE_IPV4_NETWORK=str(IPV4_NETWORK),
        MASTER_PORT=str(PORT), INDEX_PORT=str(PORT + 1),
        SLAPOS_CRON=os.path.join(ROOT, 'etc', 'cron.d', 'slapos-node'),
        CHECKOUT=os.path.join(ROOT, 'served', 'checkout'),
        MAIL_SERVER_URL=served + 'mail-server/software.cfg',
        RELAY_URL=served + 'mail-server-relay/software.cfg',
        **archives)


def run(block, env, timeout=3600):
    """Runs a README block with bash as root, in ROOT/work (where the
    parameter files go); fails with its output, else returns it."""
    started = time.time()
    result = subprocess.run(
        ['bash', '-euo', 'pipefail', '-c', block], cwd=os.path.join(ROOT, 'work'),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout)
    harness.log('README block %r...: %.0f s' % (block.strip().splitlines()[0][:60],
                                                 time.time() - started))
    assert result.returncode == 0, '%s\nfailed (exit %d):\n%s' % (
        block, result.returncode, result.stdout[-12000:])
    return result.stdout


def connection_parameters(output):
    """The connection parameters the client printed, in order (what
    ``slapos request`` logs after 'Connection parameters of instance
    are:')."""
    found = []
    for chunk in output.split('Connection parameters of instance are:\n')[1:]:
        chunk = re.sub(r'(?m)^\S+ \S+ slapos\[\d+\] INFO ', '', chunk)
        found.append(ast.literal_eval(chunk[:chunk.index(
            'You can rerun the command')].strip()))
    return found


def node_processes():
    """What the node runs: its users' processes, and root's from ROOT
    (the node's supervisord, slapproxy, the index, slapgrid)."""
    uids = set()
    for user in node_users():
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(user).pw_uid)
    me = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    found = []
    for p in psutil.process_iter(['pid', 'uids', 'cmdline']):
        if p.info['pid'] in me or not p.info['uids']:
            continue
        if p.info['uids'].real in uids or (
                p.info['uids'].real == 0
                and ROOT + os.sep in ' '.join(p.info['cmdline'] or ())):
            found.append(p)
    return found


def take_down():
    """Stops what the node runs and gives back what it took: its
    processes, its addresses on lo, its users. ROOT is kept (for a look
    after a failure) until the next run."""
    slapos = os.path.join(ROOT, 'opt', 'slapos', 'bin', 'slapos')
    configuration = os.path.join(ROOT, 'etc', 'opt', 'slapos', 'slapos.cfg')
    if os.path.exists(slapos) and os.path.exists(configuration):
        for command in (['stop', 'all'], ['shutdown']):
            subprocess.run([slapos, 'node', 'supervisorctl', '--cfg',
                            configuration] + command, capture_output=True,
                           timeout=120)
    harness.kill(node_processes(), 'of the README\'s node')
    for family, network in (('-6', NODE_NETWORK), ('-4', IPV4_NETWORK)):
        shown = subprocess.run(['ip', family, '-o', 'addr', 'show', 'dev', 'lo'],
                               capture_output=True, text=True).stdout
        for address in re.findall(r'inet6? (\S+)', shown):
            if ipaddress.ip_interface(address).ip in network:
                subprocess.run(['ip', family, 'addr', 'del', address, 'dev',
                                'lo'], check=True)
    for user in node_users():
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        subprocess.run(['userdel', user], check=True, capture_output=True)
        subprocess.run(['groupdel', user], capture_output=True)


@contextlib.contextmanager
def locked(path):
    with open(path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope='module')
def node():
    """The README's node, set up from a clean root; what the README's
    blocks printed, and the values they were run with."""
    if os.geteuid() != 0:
        pytest.fail('the README\'s node is set up as root: scripts/test.sh')
    take_down()
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(os.path.join(ROOT, 'work'))
    # what the node is given: the checkout, served, and (it cannot
    # download them) the archives of scripts/setup.sh's download cache
    served = os.path.join(ROOT, 'served')
    harness.clean_copy(harness.CHECKOUT, os.path.join(served, 'checkout'))
    archives = {}
    for name, component in (('POSTFIX_ARCHIVE', 'postfix'),
                            ('SNAPPYMAIL_ARCHIVE', 'snappymail')):
        with open(os.path.join(harness.CHECKOUT, 'software', 'component',
                               component, 'buildout.cfg')) as f:
            url = re.search(r'(?m)^url = (\S+)', f.read()).group(1)
        archives[name] = os.path.join(os.path.dirname(ROOT), 'download-cache',
                                      hashlib.md5(url.encode()).hexdigest())
        assert os.path.isfile(archives[name]), (
            '%s: scripts/setup.sh puts it there' % archives[name])
    server = subprocess.Popen(
        [sys.executable, os.path.join(harness.CHECKOUT, 'tests',
                                      'software_server.py'), served, str(PORT + 2)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outputs = {}
    try:
        given = variables(archives)
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(
                    ('127.0.0.1', PORT + 2), timeout=1):
                break
            time.sleep(0.1)
        served_release = subprocess.run(['curl', '--silent', '--fail',
                                         given['MAIL_SERVER_URL']],
                                        capture_output=True, text=True).stdout
        with open(os.path.join(served, 'checkout', 'software', 'mail-server',
                               'software.cfg')) as f:
            assert served_release == f.read(), 'port %d serves something else' % (
                PORT + 2)
        stand_in = os.path.join(ROOT, 'stand-in')
        os.makedirs(stand_in)
        with open(os.path.join(stand_in, 'systemctl'), 'w') as f:
            f.write(SYSTEMCTL)
        os.chmod(os.path.join(stand_in, 'systemctl'), 0o755)
        # what a machine has: /etc/cron.d
        os.makedirs(os.path.dirname(given['SLAPOS_CRON']))
        env = {k: v for k, v in os.environ.items()
               if k not in ('VIRTUAL_ENV', 'PYTHONPATH', 'PYTHONHOME')}
        env.update(given, PATH=PATH)
        blocks = readme_blocks()
        (values, packages, slapos_core, node_setup, index, download_cache,
         releases, requests, account) = blocks
        assert set(re.findall(r'(?m)^(?:export )?(\w+)=', values)) | set(
            re.findall(r' (\w+)=', values)) <= set(given), values
        with locked(APT_LOCK):
            run(packages, dict(env, PATH=stand_in + ':' + PATH))
        run(slapos_core, env)
        with locked(FORMAT_LOCK):
            run(node_setup, env)
        run(index, env)
        run(download_cache, env)
        started = time.time()
        outputs['releases'] = run(releases, env)
        outputs['build time'] = time.time() - started
        outputs['requests'] = run(requests, env)
        relay, backend = connection_parameters(outputs['requests'])[-2:]
        outputs['account'] = run(account, dict(
            env, PASSWORD_URL=backend['password-url']))
        yield dict(outputs, relay=relay, backend=backend, env=env)
    finally:
        take_down()
        server.terminate()
        server.wait(10)


def imap_subjects(backend, password):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL(backend['imap-smtp-ipv6'], int(backend['imaps-port']),
                           ssl_context=context) as imap:
        imap.login(ACCOUNT, password)
        imap.select('INBOX')
        _, (numbers,) = imap.search(None, 'ALL')
        subjects = []
        for number in numbers.split():
            _, data = imap.fetch(number, '(BODY[HEADER.FIELDS (SUBJECT)])')
            subjects.append(data[0][1].decode().strip())
        return subjects


def test_the_readme_node_moves_mail_from_the_relay_to_the_mailbox(node):
    relay, backend = node['relay'], node['backend']
    assert relay['backend-domains'] == 'mail1.example.com', relay
    assert backend['webmail-url'], backend  # Snappymail from the cache
    subject = 'Subject: through the README node %d' % time.time()
    # from the machine's address, which the relay greylists as any
    # stranger's: the retry after the delay, as a sender's MTA makes it
    send_retrying(relay['relay-hosts'][0], RELAY_INBOUND_PORT,
                  'someone@outside.example.net', [ACCOUNT],
                  '%s\r\nFrom: someone@outside.example.net\r\nTo: %s\r\n'
                  '\r\nhello\r\n' % (subject, ACCOUNT),
                  helo='outside.example.net')
    deadline = time.time() + 120
    while subject not in imap_subjects(backend, PASSWORD):
        assert time.time() < deadline, 'not delivered into %s' % ACCOUNT
        time.sleep(2)


def test_the_software_user_builds_and_each_partition_has_its_user(node):
    env = node['env']
    software = [os.path.join(env['SOFTWARE_ROOT'], name)
                for name in os.listdir(env['SOFTWARE_ROOT'])]
    assert len(software) == 2
    for directory in software:
        assert pwd.getpwuid(os.stat(os.path.join(
            directory, 'instance.cfg')).st_uid).pw_name == SOFTWARE_USER
    owners = {pwd.getpwuid(os.stat(os.path.join(
        env['INSTANCE_ROOT'], 'slappart%d' % i)).st_uid).pw_name
        for i in range(PARTITIONS)}
    assert owners == set(node_users()[1:])
    # the node's buildout is the one `pip install slapos.core` brings, which
    # the build checked ([instance-buildout-check])
    assert 'loads this release\'s eggs offline under zc.buildout 6' in \
        node['releases']
