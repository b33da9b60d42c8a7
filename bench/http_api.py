"""Messages per second into an HTTPS API (issue 24), 5 KB messages over 20
sessions from Postfix's smtp-source, into the same stand-in API
(tests/http_api.py: HTTPS, a bearer token, every message stored):

- baseline: the hand-patched setup the bundle replaces: a bare Postfix
            that takes the domain and hands each message to a ``pipe``
            transport running ``curl --fail --data-binary @-`` (a process
            and a TLS handshake per message; exit 75, deferred, on any
            answer but 2xx);
- bundle:   a relay cluster of one node deployed in an embedded SlapOS
            with its production defaults (postscreen, the inbound policy,
            recipient verification through the transport), the domain
            ordered with ``http-endpoint``: the node's delivery agent, an
            LMTP server that keeps its HTTPS connections alive.

Until the API has stored every message. The machine's speed drifts: the
baseline and the bundle alternate, each bundle round compared with the
mean of the baseline rounds around it; the median ratio is the result.

Run as the runtime user (what scripts/as-runtime-user.sh does):
  bash scripts/as-runtime-user.sh python bench/http_api.py [messages [rounds]]
It deploys in the embedded SlapOS the tests use (started clean, stopped at
the end): do not run it beside the demo or the tests.
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.throughput import (BARE_RELAY, PORT, SESSIONS, SIZE,  # noqa: E402
                              bare_postfix, postfix_binaries, smtp_source,
                              wait_for)
from tests.deployment import RELAY, mx_dns  # noqa: E402
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


def start_baseline(postfix, api):
    import pwd
    root = tempfile.mkdtemp(prefix='bare-api-', dir=os.path.join(
        os.environ.get('SLAPOS_MAIL_ROOT', '/srv/slapos-mail')))
    script = os.path.join(root, 'post-to-api')
    with open(script, 'w') as f:
        f.write(PIPE_SCRIPT % {'ca': api.cert, 'token': TOKEN, 'url': api.url})
    os.chmod(script, 0o700)
    relay = os.path.join(root, 'relay')
    os.makedirs(relay)
    with open(os.path.join(relay, 'transport'), 'w') as f:
        f.write('%s curlpipe:\n' % DOMAIN)
    user = pwd.getpwuid(os.getuid()).pw_name
    process = bare_postfix(
        postfix, relay, 'relay', BARE_RELAY,
        'relay_domains = %s\ntransport_maps = texthash:%s/transport\n'
        'curlpipe_destination_recipient_limit = 1\n' % (DOMAIN, relay),
        services=PIPE_SERVICE % {'user': user, 'script': script})
    time.sleep(2)
    return {'root': root, 'process': process}


def stop_baseline(bare):
    bare['process'].terminate()
    bare['process'].wait()
    shutil.rmtree(bare['root'], ignore_errors=True)


def start_bundle(slapos, api):
    slapos.supply(RELAY)
    slapos.wait_software()
    with mx_dns({DOMAIN: 'relay1.bench.example.net'}) as dns:
        slapos.request(RELAY, 'relay', 'cluster', {
            'topology': {'node1': {'fqdn': 'relay1.bench.example.net'}},
            'default-relay-config': {'nameservers': [dns.address]}})
        slapos.request(RELAY, 'domain-' + DOMAIN, 'cluster', {
            'name': DOMAIN, 'http-endpoint': api.url, 'http-token': TOKEN,
            'http-ca-certificate': api.ca_certificate,
            'authentication': 'password'}, shared=True)
        slapos.wait_instance(max_retry=6)
    return slapos.connection_parameters(RELAY, 'relay', 'cluster')[
        'relay-hosts'][0]


def rate(postfix, api, host, messages):
    first = api.stored
    start = time.time()
    smtp_source(postfix, (host, PORT if host == BARE_RELAY else 10025),
                messages, RECIPIENT)
    wait_for(lambda: api.stored - first, messages, 900)
    return messages / (time.time() - start)


def main(argv):
    messages = int(argv[1]) if len(argv) > 1 else 1000
    rounds = int(argv[2]) if len(argv) > 2 else 3
    slapos = EmbeddedSlapOS(node_loop=False)
    slapos.start()
    store = tempfile.mkdtemp(prefix='api-store-')
    try:
        with HttpApi(API, store, TOKEN) as api:
            node = start_bundle(slapos, api)
            postfix = postfix_binaries(slapos)
            # the recipient verified once, as any recipient that gets mail
            rate(postfix, api, node, 1)
            bare = start_baseline(postfix, api)
            results = []
            try:
                before = rate(postfix, api, BARE_RELAY, messages)
                for i in range(rounds):
                    bundle = rate(postfix, api, node, messages)
                    after = rate(postfix, api, BARE_RELAY, messages)
                    base = (before + after) / 2
                    results.append((bundle / base, base, bundle))
                    print('round %d: pipe + curl %.1f and %.1f msgs/s, '
                          'bundle %.1f msgs/s, ratio %.2f'
                          % (i + 1, before, after, bundle, bundle / base),
                          flush=True)
                    before = after
            finally:
                stop_baseline(bare)
    finally:
        slapos.stop()
        shutil.rmtree(store, ignore_errors=True)
    ratio, base, bundle = sorted(results)[len(results) // 2]
    print('into an HTTPS API, %d messages of %d bytes over %d sessions, '
          'median of %d rounds:' % (messages, SIZE, SESSIONS, rounds))
    print('  baseline bare Postfix, pipe + curl        %8.1f msgs/s' % base)
    print('  bundle   relay node, its delivery agent   %8.1f msgs/s' % bundle)
    print('  bundle / baseline = %.2f (target: at least 3; rounds: %s)'
          % (ratio, ', '.join('%.2f' % r[0] for r in results)))


if __name__ == '__main__':
    main(sys.argv)
