"""Messages per second into an HTTPS API (issue 24), 5 KB messages over 20
sessions from Postfix's smtp-source, into the same stand-in API
(tests/http_api.py: HTTPS, a bearer token, every message stored):

- baseline: the hand-patched setup the bundle replaces: a bare Postfix
            that takes the domain and hands each message to a ``pipe``
            transport running ``curl --fail --data-binary @-`` (a process
            and a TLS handshake per message; exit 75, deferred, on any
            answer but 2xx), which verifies the API's certificate against
            the system's CAs as it does by default (with the stand-in's
            CA added to them; ``single-ca``: against the stand-in's alone);
- bundle:   a relay cluster of one node deployed in an embedded SlapOS
            with its production defaults (postscreen, the inbound policy,
            recipient verification through the transport), the domain
            ordered with ``http-endpoint``: the node's delivery agent, an
            LMTP server that keeps its HTTPS connections alive.

Until the API has stored every message. The machine's speed drifts: the
baseline and the bundle alternate, each bundle round compared with the
mean of the baseline rounds around it; the median ratio is the result.
Each round also counts the CPU time its side's processes used (those
working in its directories, children included: curl under pipe), and the
stand-in API's (this process), per message: on a machine shared with other
work, a side with more processes gets more of the CPU, and the msgs/s
ratio moves with the load; the CPU per message does not.

Run as root, the embedded node's administrator (what scripts/run.sh does):
  bash scripts/run.sh python bench/http_api.py [messages [rounds [single-ca]]]
It deploys in the embedded SlapOS the tests use (started clean, stopped at
the end): do not run it beside the demo or the tests.
"""
import os
import shutil

import psutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.throughput import (BARE_RELAY, PORT, RELAY_FQDN,  # noqa: E402
                              SESSIONS, SIZE, bare_postfix, bench_dns, give,
                              owner, postfix_binaries, smtp_source, wait_for)
from tests.deployment import RELAY  # noqa: E402
from tests.harness import EmbeddedSlapOS, partition_ipv6  # noqa: E402
from tests.http_api import HttpApi  # noqa: E402

DOMAIN = 'api.bench.example.com'
RECIPIENT = 'inbox@' + DOMAIN
TOKEN = 'bench-token-5d41402abc4b2a76'
API = partition_ipv6(25)

# what the operators patched into their Postfix: the pipe and its script
PIPE_SERVICE = ('curlpipe unix - n n - - pipe flags=q user=%(user)s '
                'argv=%(script)s ${sender} ${recipient}\n')
PIPE_SCRIPT = '''#!/bin/sh
# POST the message on stdin to the API; anything but 2xx: deferred (75)
curl --silent --show-error --fail --max-time 30 --cacert %(ca)s \\
  -H 'Authorization: Bearer %(token)s' -H 'Content-Type: message/rfc822' \\
  -H "X-Envelope-From: $1" -H "X-Envelope-To: $2" \\
  --data-binary @- %(url)s >/dev/null || exit 75
'''


SYSTEM_CAS = '/etc/ssl/certs/ca-certificates.crt'


def start_baseline(postfix, api, user, single_ca=False):
    """The bare Postfix whose pipe runs curl, run by ``user`` (Postfix's
    unprivileged build runs as the user who starts it, never root)."""
    root = tempfile.mkdtemp(prefix='bare-api-', dir=os.path.join(
        os.environ.get('SLAPOS_MAIL_ROOT', '/srv/slapos-mail')))
    os.chmod(root, 0o755)
    who = owner(user)
    # (a copy the pipe's user reads)
    cas = shutil.copy(api.cert, os.path.join(root, 'api-ca.pem'))
    if not single_ca:
        # curl's default: the system's CAs; the stand-in's own added
        cas = os.path.join(root, 'cas.pem')
        with open(cas, 'w') as f, open(SYSTEM_CAS) as system:
            f.write(system.read() + api.ca_certificate)
    script = os.path.join(root, 'post-to-api')
    with open(script, 'w') as f:
        f.write(PIPE_SCRIPT % {'ca': cas, 'token': TOKEN, 'url': api.url})
    os.chmod(script, 0o700)
    relay = os.path.join(root, 'relay')
    os.makedirs(relay)
    with open(os.path.join(relay, 'transport'), 'w') as f:
        f.write('%s curlpipe:\n' % DOMAIN)
    give(root, who)
    process = bare_postfix(
        postfix, relay, 'relay', BARE_RELAY,
        'relay_domains = %s\ntransport_maps = texthash:%s/transport\n'
        'curlpipe_destination_recipient_limit = 1\n' % (DOMAIN, relay), who,
        services=PIPE_SERVICE % {'user': who['user'], 'script': script})
    time.sleep(2)
    return {'root': root, 'process': process}


def stop_baseline(bare):
    bare['process'].terminate()
    bare['process'].wait()
    shutil.rmtree(bare['root'], ignore_errors=True)


def start_bundle(slapos, api, dns):
    """The relay cluster of one node, the domain ordered with
    ``http-endpoint`` (``api``), its nameserver ``dns`` (a running
    ``bench_dns``); the node's address and partition."""
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node1': {'fqdn': RELAY_FQDN}},
        'default-relay-config': {'nameservers': [dns.address]}})
    slapos.request(RELAY, 'domain-' + DOMAIN, 'cluster', {
        'name': DOMAIN, 'http-endpoint': api.url, 'http-token': TOKEN,
        'http-ca-certificate': api.ca_certificate,
        'authentication': 'password'}, shared=True)
    slapos.wait_instance(max_retry=6)
    node = slapos.connection_parameters(RELAY, 'relay', 'cluster')[
        'relay-hosts'][0]
    return node, slapos.partition_of_address(node)


def cpu_times(directory):
    """``{pid: CPU seconds}`` of the processes working in ``directory``
    (their current directory, or their command line names it), with their
    children's that ended."""
    found = {}
    for process in psutil.process_iter(['cmdline']):
        try:
            if not (process.cwd().startswith(directory) or directory in
                    ' '.join(process.info['cmdline'] or ())):
                continue
            t = process.cpu_times()
            found[process.pid] = (t.user + t.system + t.children_user +
                                  t.children_system)
        except psutil.Error:
            pass
    return found


def rate(postfix, api, host, messages, directory):
    """``(msgs/s, CPU ms per message of the side in directory, of the
    API)``."""
    first = api.stored
    before, api_before = cpu_times(directory), time.process_time()
    start = time.time()
    smtp_source(postfix, (host, PORT if host == BARE_RELAY else 10025),
                messages, RECIPIENT)
    wait_for(lambda: api.stored - first, messages, 900)
    elapsed = time.time() - start
    after = cpu_times(directory)
    # a process that ended meanwhile is in its parent's children's time,
    # with what it had used before
    used = sum(after.values()) - sum(before.values())
    return (messages / elapsed, used * 1000 / messages,
            (time.process_time() - api_before) * 1000 / messages)


def main(argv):
    messages = int(argv[1]) if len(argv) > 1 else 1000
    rounds = int(argv[2]) if len(argv) > 2 else 3
    single_ca = argv[3:] == ['single-ca']
    slapos = EmbeddedSlapOS(node_loop=False)
    slapos.start()
    store = tempfile.mkdtemp(prefix='api-store-')
    try:
        with HttpApi(API, store, TOKEN) as api, bench_dns(DOMAIN) as dns:
            node, partition = start_bundle(slapos, api, dns)
            postfix = postfix_binaries(slapos)
            # the recipient verified once, as any recipient that gets mail
            rate(postfix, api, node, 1, partition)
            # a partition user the deployment does not use: the baseline's
            bare = start_baseline(postfix, api, slapos.partition_users[-1],
                                  single_ca)
            results, cpu = [], {'pipe': [], 'bundle': [], 'api': []}
            try:
                before = rate(postfix, api, BARE_RELAY, messages,
                              bare['root'])
                for i in range(rounds):
                    bundle = rate(postfix, api, node, messages, partition)
                    after = rate(postfix, api, BARE_RELAY, messages,
                                 bare['root'])
                    base = (before[0] + after[0]) / 2
                    results.append((bundle[0] / base, base, bundle[0]))
                    cpu['pipe'].append(after[1])
                    cpu['bundle'].append(bundle[1])
                    cpu['api'] += [bundle[2], after[2]]
                    print('round %d: pipe + curl %.1f and %.1f msgs/s, '
                          'bundle %.1f msgs/s, ratio %.2f; CPU per message: '
                          'pipe + curl %.2f ms, bundle %.2f ms, the API '
                          '%.2f ms (pipe) and %.2f ms (bundle)'
                          % (i + 1, before[0], after[0], bundle[0],
                             bundle[0] / base, after[1], bundle[1],
                             after[2], bundle[2]), flush=True)
                    before = after
            finally:
                stop_baseline(bare)
    finally:
        slapos.stop()
        shutil.rmtree(store, ignore_errors=True)
    ratio, base, bundle = sorted(results)[len(results) // 2]
    print('into an HTTPS API, %d messages of %d bytes over %d sessions, '
          'median of %d rounds:' % (messages, SIZE, SESSIONS, rounds))
    print('  baseline bare Postfix, pipe + curl        %8.1f msgs/s (curl '
          'verifying against %s)' % (base, 'the stand-in\'s CA alone'
                                     if single_ca else 'the system\'s CAs'))
    print('  bundle   relay node, its delivery agent   %8.1f msgs/s' % bundle)
    print('  bundle / baseline = %.2f (target: at least 3; rounds: %s)'
          % (ratio, ', '.join('%.2f' % r[0] for r in results)))
    median = {k: sorted(v)[len(v) // 2] for k, v in cpu.items()}
    print('  CPU per message (median): pipe + curl %.2f ms, bundle %.2f ms '
          '(%.1f times less); the stand-in API %.2f ms on either side'
          % (median['pipe'], median['bundle'],
             median['pipe'] / median['bundle'], median['api']))


if __name__ == '__main__':
    main(sys.argv)
