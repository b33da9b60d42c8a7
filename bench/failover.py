"""Failover, on a relay cluster of one node and a backend deployed in the
embedded SlapOS, which runs as a node does (the watchdog, the node's
periodic runs):

1. the backend goes down while 1,000 messages are sent to the relay; once
   it is back (no flush by hand: the relay's own retries), how many are
   delivered (target: all), how long the relay takes to drain its queue,
   how many bounced (target: none);
2. the relay's Postfix master is killed (SIGKILL) while a client sends a
   message every 0.2 s and tries a refused one again every second, as a
   sending MTA would: how long until SlapOS has started it again, and the
   delay it causes to the mail (from a message's first try to its
   delivery); every accepted message delivered exactly once.

Run as the runtime user (what scripts/as-runtime-user.sh does):
  bash scripts/as-runtime-user.sh python bench/failover.py [messages]
It deploys in the embedded SlapOS the tests use (started clean, stopped at
the end): do not run it beside the demo or the tests.
"""
import email
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.throughput import (RECIPIENT, SENDER, maildir_count,  # noqa: E402
                              smtp_source, start_bundle, wait_for)
from tests.deployment import MACHINE_CLIENTS, listening  # noqa: E402
from tests.harness import EmbeddedSlapOS  # noqa: E402

INBOUND = 10025


def queued(postfix, partition):
    """Messages in the partition's Postfix queue."""
    out = subprocess.run([os.path.join(postfix, 'sbin', 'postqueue'), '-c',
                          os.path.join(partition, 'etc', 'postfix'), '-j'],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def bounces(partition):
    with open(os.path.join(partition, 'var', 'log', 'postfix.log')) as f:
        return sum('status=bounced' in line for line in f)


def backend_down(slapos, deployment, messages):
    postfix, node = deployment['postfix'], deployment['node-ipv6']
    home = deployment['home']
    # the recipient is one the relay verified before, as a mailbox that
    # gets mail is (it remembers for a month): its mail is queued while the
    # backend is down; one never verified is deferred (450)
    before = maildir_count(home)
    smtp_source(postfix, (node, INBOUND), 1)
    wait_for(lambda: maildir_count(home), before + 1, 120)
    slapos.service(deployment['backend'], 'postfix', 'stop')
    smtp_source(postfix, (node, INBOUND), messages)
    held = queued(postfix, deployment['node'])
    slapos.service(deployment['backend'], 'postfix', 'start')
    drain = wait_for(lambda: maildir_count(home), before + 1 + messages, 900)
    return {'held': held, 'delivered': maildir_count(home) - before - 1,
            'drain': drain, 'bounced': bounces(deployment['node'])}


class Sender(threading.Thread):
    """A message every 0.2 s to the relay's inbound port; a refused one is
    tried again every second until it is accepted."""

    def __init__(self, host):
        super().__init__(daemon=True)
        self.host = host
        self.sent = []       # (subject, first try, accepted)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            subject = 'failover %s' % uuid.uuid4().hex
            first = time.time()
            while True:
                try:
                    with smtplib.SMTP(self.host, INBOUND, timeout=30) as smtp:
                        smtp.sendmail(SENDER, [RECIPIENT], (
                            'From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nx\r\n'
                            % (SENDER, RECIPIENT, subject)))
                    break
                except (OSError, smtplib.SMTPException):
                    time.sleep(1)
            self.sent.append((subject, first, time.time()))
            self.stopping.wait(0.2)


def delivered(home):
    """``{subject: [delivery times]}`` of the Maildir's messages (the time
    a file appeared: its change time)."""
    found = {}
    for sub in ('new', 'cur'):
        directory = os.path.join(home, 'Maildir', sub)
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            try:
                with open(path, 'rb') as f:
                    subject = email.message_from_binary_file(f)['Subject']
                found.setdefault(subject, []).append(os.stat(path).st_ctime)
            except FileNotFoundError:
                pass
    return found


def relay_master_killed(slapos, deployment):
    node, host = deployment['node'], deployment['node-ipv6']
    sender = Sender(host)
    sender.start()
    time.sleep(5)
    _, pid = slapos.services(node)['postfix']
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
    while True:
        state, new = slapos.services(node)['postfix']
        if state == 'RUNNING' and new != pid and listening(host, INBOUND):
            break
        if time.time() - killed > 600:
            raise SystemExit('the relay master is not back after 600 s')
        time.sleep(0.2)
    back = time.time() - killed
    time.sleep(5)
    sender.stopping.set()
    sender.join()
    subjects = {s for s, _, _ in sender.sent}
    deadline = time.time() + 300
    while not subjects <= set(delivered(deployment['home'])):
        if time.time() > deadline:
            raise SystemExit('%d accepted messages not delivered after 300 s'
                             % len(subjects - set(delivered(
                                 deployment['home']))))
        time.sleep(0.5)
    found = delivered(deployment['home'])
    delays = [max(found[s]) - first for s, first, _ in sender.sent]
    hit = [d for (s, first, _), d in zip(sender.sent, delays)
           if first >= killed - 1 and first <= killed + back]
    return {'back': back, 'accepted': len(sender.sent),
            'twice': sum(len(found[s]) > 1 for s in subjects),
            'hit': len(hit), 'max delay': max(hit or [0]),
            'median delay': statistics.median(hit or [0]),
            'usual delay': statistics.median(
                [d for d in delays if d not in hit] or [0])}


def main(argv):
    messages = int(argv[1]) if len(argv) > 1 else 1000
    slapos = EmbeddedSlapOS()
    slapos.start()
    try:
        # the load comes from the node's own address: greylisted as any
        # outside client's unless whitelisted
        deployment = start_bundle(slapos, relay_config={
            'greylisting': MACHINE_CLIENTS})
        down = backend_down(slapos, deployment, messages)
        killed = relay_master_killed(slapos, deployment)
    finally:
        slapos.stop()
    print('1. failover, %d messages sent while the backend was down:'
          % messages)
    print('  queued on the relay while down  %6d' % down['held'])
    print('  delivered once it was back      %6d (target: %d)'
          % (down['delivered'], messages))
    print('  time to drain the queue         %6.1f s (no flush by hand)'
          % down['drain'])
    print('  bounces                         %6d (target: 0)'
          % down['bounced'])
    print('2. the relay\'s Postfix master killed (SIGKILL), a message every '
          '0.2 s:')
    print('  back (started by SlapOS) after  %6.1f s' % killed['back'])
    print('  messages accepted               %6d, delivered twice: %d '
          '(target: 0)' % (killed['accepted'], killed['twice']))
    print('  first tried while it was down   %6d' % killed['hit'])
    print('  their delay, first try to mailbox: median %.1f s, max %.1f s '
          '(the others: median %.1f s)' % (
              killed['median delay'], killed['max delay'],
              killed['usual delay']))


if __name__ == '__main__':
    main(sys.argv)
