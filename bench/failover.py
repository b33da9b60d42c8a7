"""The backend goes down while 1,000 messages are sent to the relay; once it
is back, how many are delivered (target: all), how long the relay takes to
drain its queue, and how many bounced (target: none).

Run as the runtime user (what scripts/as-runtime-user.sh does):
  bash scripts/as-runtime-user.sh python bench/failover.py [messages]
It deploys in the embedded SlapOS the tests use (started clean, stopped at
the end): do not run it beside the demo or the tests.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.throughput import (maildir_count, smtp_source,  # noqa: E402
                              start_bundle, wait_for)
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
        deployment = start_bundle(slapos)
        postfix, node = deployment['postfix'], deployment['node-ipv6']
        backend_partition = deployment['backend']
        node_partition = deployment['node']
        home = deployment['home']

        # the recipient is one the relay verified before, as a mailbox
        # that gets mail is (it remembers for a month): its mail is queued
        # while the backend is down; one never verified is deferred (450)
        smtp_source(postfix, (node, 10025), 1)
        wait_for(lambda: maildir_count(home), 1, 120)
        slapos.service(backend_partition, 'postfix', 'stop')
        smtp_source(postfix, (node, 10025), messages)
        held = queued(postfix, node_partition)
        slapos.service(backend_partition, 'postfix', 'start')
        time.sleep(1)
        subprocess.run([os.path.join(postfix, 'sbin', 'postqueue'), '-c',
                        os.path.join(node_partition, 'etc', 'postfix'), '-f'],
                       check=True)
        drain = wait_for(lambda: maildir_count(home), messages + 1, 900)
        delivered = maildir_count(home) - 1
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
