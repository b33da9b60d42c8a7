"""The backend goes down while 1,000 messages are sent to the relay; once it
is back, how many are delivered (target: all), how long the relay takes to
drain its queue, and how many bounced (target: none).

Run as the runtime user (what scripts/as-runtime-user.sh does):
  bash scripts/as-runtime-user.sh python bench/failover.py [messages]
It deploys in the embedded SlapOS the tests use (started clean, stopped at
the end): do not run it beside the demo or the tests.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.throughput import (DOMAIN, maildir_count, postfix_binaries,  # noqa
                              smtp_source, wait_for)
from tests.deployment import MAIL_SERVER, RELAY  # noqa: E402
from tests.harness import EmbeddedSlapOS  # noqa: E402


def queued(postfix, partition):
    """Messages in the partition's Postfix queue."""
    out = subprocess.run([os.path.join(postfix, 'sbin', 'postqueue'), '-c',
                          os.path.join(partition, 'etc', 'postfix'), '-j'],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def bounces(partition):
    with open(os.path.join(partition, 'var', 'log', 'postfix.log')) as f:
        return sum('status=bounced' in line for line in f)


def main(argv):
    messages = int(argv[1]) if len(argv) > 1 else 1000
    slapos = EmbeddedSlapOS()
    slapos.start()
    try:
        slapos.supply(MAIL_SERVER)
        slapos.supply(RELAY)
        slapos.wait_software()
        postfix = postfix_binaries(slapos)
        slapos.request(RELAY, 'relay', 'cluster', {
            'topology': {'node1': {'fqdn': 'relay1.bench.example.net'}}})
        slapos.request(MAIL_SERVER, 'backend', 'default',
                       {'mail-domains': [DOMAIN], 'test-account': True})
        slapos.wait_instance(max_retry=3)
        backend = slapos.connection_parameters(MAIL_SERVER, 'backend')
        slapos.request(RELAY, 'domain', 'cluster', {
            'name': DOMAIN, 'mail-server-host': backend['imap-smtp-ipv6'],
            'mail-server-port': int(backend['smtp-port'])}, shared=True)
        slapos.wait_instance(max_retry=3)
        node = json.loads(slapos.connection_parameters(
            RELAY, 'relay', 'cluster')['relay-hosts'])[0]
        backend_partition = slapos.partition_of_address(
            backend['imap-smtp-ipv6'])
        node_partition = slapos.partition_of_address(node)
        home = os.path.join(backend_partition, 'srv', 'mail', DOMAIN,
                            'testmail')

        slapos.service(backend_partition, 'postfix', 'stop')
        smtp_source(postfix, (node, 10025), messages)
        held = queued(postfix, node_partition)
        slapos.service(backend_partition, 'postfix', 'start')
        time.sleep(1)
        subprocess.run([os.path.join(postfix, 'sbin', 'postqueue'), '-c',
                        os.path.join(node_partition, 'etc', 'postfix'), '-f'],
                       check=True)
        drain = wait_for(lambda: maildir_count(home), messages, 900)
        delivered = maildir_count(home)
        bounced = bounces(node_partition)
    finally:
        slapos.stop()
    print('failover, %d messages sent while the backend was down:' % messages)
    print('  queued on the relay while down  %6d' % held)
    print('  delivered once it was back      %6d (target: %d)'
          % (delivered, messages))
    print('  time to drain the queue         %6.1f s' % drain)
    print('  bounces                         %6d (target: 0)' % bounced)


if __name__ == '__main__':
    main(sys.argv)
