"""The reference topology in an embedded SlapOS (run by scripts/demo.sh).

A relay cluster of one node, a backend for mail1.example.com and one for
mail2.example.com (each ordering its domain from the relay found as
urn:slapos:mail-relay), a stand-in third-party smarthost and a stand-in DNS
server (the relay verifies mail2 by its MX), the accounts alice and bob
on mail1 and charlie on mail2, whose passwords are set through their setup
links, and in.example.com, whose mail goes to a stand-in application's
HTTPS API; then the four mail paths of ../shared/interface.md and the fifth
(a stranger writes to the application, whose reply leaves through the
relay), each found at its destination. The deployment keeps running until
`demo.sh stop`; the next run keeps it instead of deploying again: while it
answers, the next run only moves mail and prints (what it deployed is
recorded); when it was stopped, it is started again, and the passwords,
set once, are not set again.

    python scripts/demo.py          deploy (or keep), move mail, print
    python scripts/demo.py fresh    the same, deploying again from scratch
    python scripts/demo.py stop     stop everything the demo started
"""
import concurrent.futures
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.deployment import (ACCOUNTS, API_DOMAIN,  # noqa: E402
                              API_HOST, API_PORT, BACKENDS, DNS_HOST,
                              DNS_PORT, MAIL_SERVER, PATHS, REFERENCE_MX,
                              RELAY, RELAY_FQDN, RELAY_INBOUND_PORT,
                              SMARTHOST_HOST,
                              SMARTHOST_PORT, deploy_reference_topology,
                              listening, move_mail, mx_dns)
from tests.harness import EmbeddedSlapOS  # noqa: E402
from recipes.decisions.autoconfig import AUTODISCOVER_PATH  # noqa: E402
from recipes.stores.files import read_json, write_atomically  # noqa: E402

# scripts/demo.sh sets it before scripts/setup.sh runs
STARTED = float(os.environ.get('DEMO_STARTED') or time.time())


@contextlib.contextmanager
def step(what):
    print('==> [%4.0f s] %s' % (time.time() - STARTED, what), flush=True)
    start = time.time()
    yield
    print('    done in %.1f s' % (time.time() - start), flush=True)


class InstanceProgress(threading.Thread):
    """While it runs, a line each time slapgrid starts on a partition: which
    instance, of which software type."""

    def __init__(self, slapos):
        super().__init__(daemon=True)
        self.slapos = slapos
        self.log = os.path.join(slapos.base_directory, 'var', 'log',
                                'slapos-node-instance.log')
        self.offset = os.path.getsize(self.log) \
            if os.path.exists(self.log) else 0
        self.done = threading.Event()

    def instance(self, partition):
        for p in self.slapos.standalone.computer.getComputerPartitionList():
            if p.getId() == partition:
                d = p.getInstanceParameterDict()
                return '%s (%s)' % (d.get('instance_title'),
                                    d.get('slap_software_type'))
        return '?'

    def run(self):
        marker = 'Processing Computer Partition '
        while not self.done.wait(0.5):
            if not os.path.exists(self.log):
                continue
            with open(self.log, 'rb') as f:
                f.seek(self.offset)
                data = f.read()
            complete = data[:data.rfind(b'\n') + 1]   # whole lines only
            self.offset += len(complete)
            for line in complete.decode('utf-8', 'replace').splitlines():
                if marker in line:
                    partition = line.split(marker)[1].strip().rstrip('.')
                    print('    [%4.0f s] instance %s on %s'
                          % (time.time() - STARTED, self.instance(partition),
                             partition), flush=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join()


def demo_secrets(root):
    """The accounts' passwords and the smarthost's login, the same in every
    run: chosen at the first one, kept in a 0600 file under the root."""
    directory = os.path.join(root, 'demo')
    path = os.path.join(directory, 'secrets.json')
    os.makedirs(directory, mode=0o700, exist_ok=True)
    found = read_json(path, None)
    if found is None:
        found = {'passwords': {address: secrets.token_urlsafe(12)
                               for address, _ in ACCOUNTS.values()},
                 'smarthost': ['relay', secrets.token_urlsafe(18)]}
    if 'api-token' not in found:       # (a file of an earlier release)
        found['api-token'] = secrets.token_urlsafe(24)
        write_atomically(path, json.dumps(found, indent=2) + '\n', mode=0o600)
    return path, found


def answering(host, port):
    """Whether the DNS server at ``[host]:port`` answers a query."""
    import dns.exception
    import dns.message
    import dns.query
    try:
        dns.query.udp(dns.message.make_query(BACKENDS['mail2'], 'MX'), host,
                      port=port, timeout=2)
        return True
    except (dns.exception.DNSException, OSError):
        return False


def launch_stand_in(slapos, name, running):
    """The stand-in ``name`` (``smarthost``, ``dns``: ``demo.py <name>``)
    started as a process of its own, unless ``running()``; it runs in the
    record directory, so that `demo.sh stop` (and a clean start) stops it
    with the embedded SlapOS. Returns a function that waits until it
    answers and returns that directory (the smarthost's store)."""
    directory = os.path.join(slapos.record_directory, name)
    if not running():
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(os.path.join(directory, name + '.log'), 'ab') as log:
            subprocess.Popen([sys.executable, os.path.abspath(__file__),
                              name], cwd=directory, stdout=log,
                             stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)

    def answering():
        deadline = time.time() + 30
        while not running():
            if time.time() > deadline:
                raise RuntimeError('the %s did not start: see %s' % (
                    name, os.path.join(directory, name + '.log')))
            time.sleep(0.1)
        return directory
    return answering


def serve_until_terminated(server):
    """Serve with ``server`` (a context manager) until SIGTERM or SIGINT."""
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)   # the server's threads too
    with server:
        signal.sigwait(stop)
    return 0


def run_smarthost(root):
    """`demo.py smarthost`: serve until terminated, from the current
    directory (its store)."""
    from tests import smarthost
    _, found = demo_secrets(root)
    user, password = found['smarthost']
    # number the messages after those of earlier runs
    smarthost.Recorder.count = sum(name.endswith('.json')
                                   for name in os.listdir('.'))
    return serve_until_terminated(smarthost.Smarthost(
        SMARTHOST_HOST, os.getcwd(), {user: password},
        starttls_port=SMARTHOST_PORT))


def run_api(root):
    """`demo.py api`: the stand-in application's HTTPS API, serving until
    terminated, from the current directory (its store)."""
    from tests.http_api import HttpApi
    _, found = demo_secrets(root)
    return serve_until_terminated(HttpApi(API_HOST, os.getcwd(),
                                          found['api-token'], port=API_PORT))


def smarthost_tls(store):
    """What the relay verifies the stand-in smarthost's certificate with:
    its test CA (kept in its store)."""
    from tests.smarthost import Smarthost
    return Smarthost(SMARTHOST_HOST, store, {}).tls


def mail_paths(topology, passwords, store, api):
    from tests.smarthost import Smarthost
    smarthost = Smarthost(SMARTHOST_HOST, store, {})   # its store, read
    with step('the five mail paths, at once'), \
            concurrent.futures.ThreadPoolExecutor(len(PATHS)) as pool:
        moved = {path: pool.submit(move_mail, topology, passwords, smarthost,
                                   path, api=api) for path in PATHS}
        for path, (sender, recipient, how) in sorted(PATHS.items()):
            where, _, seconds = moved[path].result()
            print('    %d. %s -> %s (%s): found in %s after %.2f s'
                  % (path, sender, recipient, how, where, seconds),
                  flush=True)


def endpoints(slapos, topology, urls, passwords, secrets_path, store, api):
    print('==> [%4.0f s] ready; to use it by hand (self-signed '
          'certificates):' % (time.time() - STARTED))
    print('    relay node (%s), inbound SMTP: [%s]:%s'
          % (RELAY_FQDN, topology['node'], RELAY_INBOUND_PORT))
    for reference, domain in BACKENDS.items():
        b = topology['backends'][reference]
        host = b['imap-smtp-ipv6']
        print('    %s (%s), on %s:' % (reference, domain, host))
        print('        IMAP [%s]:%s (STARTTLS), IMAPS [%s]:%s'
              % (host, b['imap-port'], host, b['imaps-port']))
        print('        submission [%s]:%s (STARTTLS), SMTPS [%s]:%s'
              % (host, b['submission-port'], host, b['smtps-port']))
        if b.get('webmail-url'):
            print('        webmail %s: log in with an address and password '
                  'below' % b['webmail-url'])
            print('        webmail admin panel %s: login admin, password %s'
                  % (b['webmail-admin-url'], b['webmail-admin-password']))
        else:
            print('        webmail: none (no Snappymail archive in the '
                  'download cache, see docs/building.md); password page: %s'
                  % b['password-url'])
        print('        mail clients configure themselves from %s '
              '(Thunderbird) and %s (Outlook)' % (
                  b['autoconfig-url'], urllib.parse.urljoin(
                      b['autoconfig-url'], AUTODISCOVER_PATH)))
        for address, backend in ACCOUNTS.values():
            if backend == reference:
                print('        account %s, password %s'
                      % (address, passwords[address]))
    print('    %s: its mail is POSTed to the stand-in application\'s API %s '
          '(store: %s); the application sends as %s through the relay\'s '
          'submission port [%s]:%s, password %s' % (
              API_DOMAIN, api.url, api.directory,
              topology['api-domain']['outbound-user'], topology['node'],
              topology['api-domain']['outbound-smtp-port'],
              topology['api-domain']['outbound-password']))
    print('    passwords kept in %s (0600), the same in every run'
          % secrets_path)
    print('    the smarthost\'s store (what left for the Internet): %s'
          % store)
    print('    to order from it with %s/bin/slapos (README, "Ordering from a '
          'SlapOS master"), in a shell with these variables:'
          % slapos.base_directory)
    print('        SLAPOS_MAIL_ROOT=%s MAIL_SERVER_URL=%s RELAY_URL=%s' % (
        slapos.root, urls['mail-server'], urls['relay']))
    print('        MAIL1_PARTITION=%s MAIL1_PASSWORD_URL=%s' % (
        os.path.basename(topology['partitions']['mail1']),
        topology['backends']['mail1']['password-url']))
    print('    stop it with: bash scripts/demo.sh stop', flush=True)


def up(kept):
    """Whether the deployment recorded by the last run answers (each
    backend's and the relay node's ports)."""
    return bool(kept and kept.get('topology') and all(
        listening(host, port) for host, port in kept['endpoints']))


def deploy(slapos, kept, found, passwords):
    """Deploys the reference topology, or starts again the one the last
    run left (``kept``, its record), which was stopped. Returns the
    smarthost's store and the deployment's record: the topology, the
    software URLs, the endpoints that answer when it runs."""
    keep = kept is not None
    with step('starting the embedded SlapOS in %s (%s)' % (
            slapos.base_directory, 'starting again the deployment of the '
            'last run' if keep else 'deploying from scratch')):
        slapos.start(keep=keep)
    store, api = start_stand_ins(slapos, found)
    with InstanceProgress(slapos):
        topology = deploy_reference_topology(
            slapos, found['smarthost'], passwords, step,
            rebuild=not keep, restart=keep, api=api,
            smarthost_tls=smarthost_tls(store),
            passwords_set=bool(keep and kept.get('passwords-set')))
    return store, api, {'topology': topology, 'passwords-set': True,
            'urls': {'mail-server': slapos.software_url(MAIL_SERVER),
                     'relay': slapos.software_url(RELAY)},
            'endpoints': [(topology['node'], RELAY_INBOUND_PORT),
                          (API_HOST, API_PORT)] + [
                (b['imap-smtp-ipv6'], int(b[name]))
                for b in topology['backends'].values()
                for name in ('smtp-port', 'submission-port', 'imaps-port')]}


def start_stand_ins(slapos, found):
    """The stand-in smarthost, DNS server and application API, unless they
    run; returns the smarthost's store and the API (its store and
    certificate, read: the process serves)."""
    with step('starting the stand-in smarthost on [%s]:%s, DNS server on '
              '[%s]:%s and application API on [%s]:%s' % (
                  SMARTHOST_HOST, SMARTHOST_PORT, DNS_HOST, DNS_PORT,
                  API_HOST, API_PORT)):
        # at once: each takes seconds to import what it serves with
        dns = launch_stand_in(slapos, 'dns',
                              lambda: answering(DNS_HOST, DNS_PORT))
        smarthost = launch_stand_in(slapos, 'smarthost', lambda: listening(
            SMARTHOST_HOST, SMARTHOST_PORT))
        api = launch_stand_in(slapos, 'api',
                              lambda: listening(API_HOST, API_PORT))
        dns()
        from tests.http_api import HttpApi
        return smarthost(), HttpApi(API_HOST, api(), found['api-token'],
                                    port=API_PORT)


def main(argv):
    slapos = EmbeddedSlapOS()
    if argv[1:] == ['stop']:
        slapos.stop()
        print('==> stopped; `bash scripts/demo.sh` starts it again')
        return 0
    if argv[1:] == ['smarthost']:
        return run_smarthost(slapos.root)
    if argv[1:] == ['dns']:
        return serve_until_terminated(mx_dns(REFERENCE_MX, DNS_PORT))
    if argv[1:] == ['api']:
        return run_api(slapos.root)
    if argv[1:] not in ([], ['fresh']):
        print(__doc__)
        return 2
    secrets_path, found = demo_secrets(slapos.root)
    passwords = found['passwords']
    record = os.path.join(slapos.record_directory, 'demo.json')
    kept = read_json(record, None) if argv[1:] != ['fresh'] else None
    try:
        if up(kept):
            # nothing to deploy, build, instantiate nor set again
            print('==> [%4.0f s] the deployment of the last run answers '
                  '(`demo.sh fresh` deploys again)'
                  % (time.time() - STARTED), flush=True)
            store, api = start_stand_ins(slapos, found)
        else:
            store, api, kept = deploy(slapos, kept, found, passwords)
            # 0600: the topology holds the webmail's admin password
            write_atomically(record, json.dumps(kept) + '\n', mode=0o600)
        mail_paths(kept['topology'], passwords, store, api)
    except BaseException:
        # the next run deploys again from scratch
        if os.path.exists(record):
            os.unlink(record)
        print('==> failed: stopping the embedded SlapOS (its logs are in %s)'
              % os.path.join(slapos.base_directory, 'var', 'log'),
              flush=True)
        slapos.stop()
        raise
    endpoints(slapos, kept['topology'], kept['urls'], passwords,
              secrets_path, store, api)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
