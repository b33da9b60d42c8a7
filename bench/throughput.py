"""Messages per second, end to end, 5 KB messages over 20 sessions, from
Postfix's smtp-source:

- limit:    smtp-source into smtp-sink (SMTP alone);
- baseline: smtp-source into a bare relay Postfix that routes by domain to
            a bare backend Postfix delivering over LMTP into Dovecot's
            Maildir: two hand-written configurations, nothing else;
- bundle:   the same path through the mail bundle deployed in an embedded
            SlapOS with its production defaults (the backend ordering its
            domain from the relay, TLS between relay and backend with the
            node's client certificate, spam filter on, greylisting and SPF
            on, the generator exempt as the node's own address from them,
            from postscreen and from the rate limits; the size policy and
            the header check in the path), until every message sits in
            the backend's Maildir.

The bare baseline and the bundle alternate over rounds (default 5), each
bundle round compared with the mean of the baseline rounds before and after
it; both are started once and kept, each mailbox emptied between rounds.

Run as root, the embedded node's administrator (what scripts/run.sh does):
  bash scripts/run.sh python bench/throughput.py [messages [rounds]]
It deploys in the embedded SlapOS the tests use (started clean, stopped at
the end): do not run it beside the demo or the tests.
"""
import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.deployment import (MACHINE_CLIENTS, MAIL_SERVER, RELAY,  # noqa: E402
                              mx_dns, software_binary)
from tests.harness import (IPV6_RANGE, EmbeddedSlapOS,  # noqa: E402
                           partition_ipv6)

SESSIONS = 20
SIZE = 5 * 1024
DOMAIN = 'bench.example.com'
RECIPIENT = 'testmail@' + DOMAIN
RELAY_FQDN = 'relay1.bench.example.net'
SENDER = 'load@generator.example.net'
# addresses of the IPv6 prefix that no partition of a 10-partition
# embedded SlapOS uses (scripts/setup.sh makes ::2 to ::21 local)
SINK, BARE_RELAY, BARE_BACKEND = (partition_ipv6(i) for i in (26, 27, 28))
PORT = 2525


def postfix_binaries(slapos):
    """The Postfix the software releases built (smtp-source, master...)."""
    try:
        return software_binary(slapos, 'postfix')
    except AssertionError as missing:
        raise SystemExit(str(missing))


def smtp_source(postfix, host, messages, recipient=RECIPIENT):
    """Run smtp-source against [host]:port; return its duration."""
    start = time.time()
    subprocess.run([os.path.join(postfix, 'bin', 'smtp-source'),
                    '-s', str(SESSIONS), '-l', str(SIZE), '-m', str(messages),
                    '-f', SENDER, '-t', recipient, '-M', 'generator.example.net',
                    'inet:[%s]:%s' % host], check=True)
    return time.time() - start


def wait_for(count_files, messages, timeout):
    """Seconds until ``count_files()`` reaches ``messages``."""
    start = time.time()
    while count_files() < messages:
        if time.time() - start > timeout:
            raise SystemExit('only %d of %d messages delivered after %ds'
                             % (count_files(), messages, timeout))
        time.sleep(0.05)
    return time.time() - start


def maildir_count(home):
    return sum(len(os.listdir(os.path.join(home, 'Maildir', d)))
               for d in ('new', 'cur')
               if os.path.isdir(os.path.join(home, 'Maildir', d)))


def limit(postfix, messages, user):
    """smtp-source into smtp-sink, which runs as ``user`` (it refuses root
    without -u)."""
    sink = subprocess.Popen([os.path.join(postfix, 'bin', 'smtp-sink'),
                             '-c', '[%s]:%s' % (SINK, PORT), '256'],
                            stdout=subprocess.DEVNULL, **owner(user)['popen'])
    try:
        time.sleep(0.5)
        return messages / smtp_source(postfix, (SINK, PORT), messages)
    finally:
        sink.terminate()
        sink.wait()


# --- the bare baseline -----------------------------------------------------
MASTER_CF = '''[%(address)s]:%(port)s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
'''

MAIN_CF = '''compatibility_level = 3.6
mail_owner = %(user)s
setgid_group = %(group)s
default_privs = %(user)s
queue_directory = %(directory)s/queue
data_directory = %(directory)s/data
maillog_file = %(directory)s/postfix.log
maillog_file_prefixes = %(directory)s
inet_protocols = ipv6
inet_interfaces = %(address)s
smtp_bind_address6 = %(address)s
myhostname = %(name)s.bench.example.net
mydestination =
mynetworks =
local_transport = error:no local delivery
alias_maps =
alias_database =
'''

DOVECOT_CONF = '''protocols = lmtp
base_dir = %(directory)s/run
state_dir = %(directory)s/state
instance_name = bench-dovecot
log_path = %(directory)s/dovecot.log
default_internal_user = %(user)s
default_login_user = %(user)s
default_internal_group = %(group)s
mail_uid = %(user)s
mail_gid = %(group)s
first_valid_uid = 0
mail_location = maildir:~/Maildir
ssl = no
passdb {
  driver = passwd-file
  args = %(directory)s/passwd
}
userdb {
  driver = passwd-file
  args = %(directory)s/passwd
}
service lmtp {
  unix_listener %(directory)s/lmtp {
    mode = 0600
  }
}
service anvil {
  chroot =
}
service ipc {
  chroot =
}
service old-stats {
  chroot =
}
service aggregator {
  chroot =
}
service director {
  chroot =
}
'''


def owner(user):
    """What runs a bare daemon as ``user`` (its name, its group's): the
    keyword arguments of subprocess, and the values of the templates. With
    the user's other groups, as a login gives them: a partition user reads
    the node's shared parts (Postfix's binaries) through the software
    user's group."""
    entry = pwd.getpwnam(user)
    group = grp.getgrgid(entry.pw_gid).gr_name
    return {'user': user, 'group': group,
            'popen': dict(user=entry.pw_uid, group=entry.pw_gid,
                          extra_groups=os.getgrouplist(user, entry.pw_gid),
                          env=dict(
                              os.environ, HOME=entry.pw_dir, USER=user))}


def give(path, who):
    """``path`` and what is in it made ``who``'s."""
    subprocess.run(['chown', '-R', '%s:%s' % (who['user'], who['group']),
                    path], check=True)


def bare_postfix(postfix, directory, name, address, extra, who, services=''):
    os.makedirs(os.path.join(directory, 'queue'))
    os.makedirs(os.path.join(directory, 'data'))
    values = dict(user=who['user'], group=who['group'],
                  directory=directory, name=name, address=address, port=PORT)
    with open(os.path.join(directory, 'main.cf'), 'w') as f:
        f.write(MAIN_CF % values + extra)
    with open(os.path.join(directory, 'master.cf'), 'w') as f:
        f.write(MASTER_CF % values + services)
    give(directory, who)
    subprocess.run([os.path.join(postfix, 'sbin', 'postfix'), '-c',
                    directory, 'check'], check=True, **who['popen'])
    return subprocess.Popen([os.path.join(postfix, 'libexec', 'postfix',
                                          'master'), '-c', directory, '-d'],
                            **who['popen'])


def start_baseline(postfix, user):
    """The bare relay, backend and Dovecot, run by ``user`` (Postfix's
    unprivileged build runs as the user who starts it, never root), started
    once and kept across
    rounds as the bundle is: both then run in directories with a history
    (this machine's ext4, without a journal, makes a new file skip the
    inodes deleted in the last minutes, a cost fresh directories would not
    pay). Returns what ``baseline`` and ``stop_baseline`` need."""
    root = tempfile.mkdtemp(prefix='bare-', dir=os.path.join(
        os.environ.get('SLAPOS_MAIL_ROOT', '/srv/slapos-mail')))
    who = owner(user)
    os.chmod(root, 0o755)
    bare = {'root': root, 'processes': [], 'owner': who,
            'home': os.path.join(root, 'mail', 'testmail'),
            'dovecot': os.path.join(root, 'dovecot', 'dovecot.conf')}
    try:
        dovecot = os.path.dirname(bare['dovecot'])
        os.makedirs(os.path.join(dovecot, 'run'))
        os.makedirs(os.path.join(dovecot, 'state'))
        values = dict(user=who['user'], group=who['group'],
                      directory=dovecot)
        with open(bare['dovecot'], 'w') as f:
            f.write(DOVECOT_CONF % values)
        with open(os.path.join(dovecot, 'passwd'), 'w') as f:
            f.write('%s:{PLAIN}unused::::%s::\n' % (RECIPIENT, bare['home']))
        os.makedirs(os.path.dirname(bare['home']))
        give(root, who)
        bare['processes'].append(subprocess.Popen(
            ['/usr/sbin/dovecot', '-F', '-c', bare['dovecot']],
            **who['popen']))
        backend = os.path.join(root, 'backend')
        os.makedirs(backend)
        with open(os.path.join(backend, 'mailboxes'), 'w') as f:
            f.write('%s ok\n' % RECIPIENT)
        bare['processes'].append(bare_postfix(
            postfix, backend, 'backend', BARE_BACKEND, (
                'virtual_mailbox_domains = %s\n'
                'virtual_mailbox_maps = texthash:%s/mailboxes\n'
                'virtual_transport = lmtp:unix:%s/lmtp\n'
                % (DOMAIN, backend, dovecot)), who))
        relay = os.path.join(root, 'relay')
        os.makedirs(relay)
        with open(os.path.join(relay, 'transport'), 'w') as f:
            f.write('%s smtp:[%s]:%s\n' % (DOMAIN, BARE_BACKEND, PORT))
        bare['processes'].append(bare_postfix(
            postfix, relay, 'relay', BARE_RELAY, (
                'relay_domains = %s\ntransport_maps = texthash:%s/transport\n'
                % (DOMAIN, relay)), who))
        time.sleep(2)
    except BaseException:
        stop_baseline(bare)
        raise
    return bare


def stop_baseline(bare):
    for p in bare['processes']:
        p.terminate()
    for p in bare['processes']:
        p.wait()
    shutil.rmtree(bare['root'], ignore_errors=True)


def baseline(postfix, bare, messages):
    if os.path.isdir(bare['home']):
        empty_mailbox(bare['dovecot'], lambda argv: subprocess.run(
            argv, check=True, **bare['owner']['popen']))
    start = time.time()
    smtp_source(postfix, (BARE_RELAY, PORT), messages)
    wait_for(lambda: maildir_count(bare['home']), messages, 600)
    return messages / (time.time() - start)


# --- the bundle -------------------------------------------------------------
def bench_dns(domain=DOMAIN):
    """The stand-in for the Internet's DNS that the relay asks (its
    ``nameservers``): the MX of ``domain`` at the relay's node, and the
    sender's domain as a domain that sends mail publishes it: an SPF
    record that lets the generator's addresses send (the node's own, the
    partitions') and a DMARC record (``p=none``); no other name. It must
    answer as long as the deployment runs: the policy checks SPF and the
    milter DMARC on every message, and a name server that does not answer
    holds each one for the resolver's timeouts (10 s). A context
    manager."""
    server = mx_dns({domain: RELAY_FQDN})
    sender_domain = SENDER.split('@')[1]
    server.add(sender_domain, 'TXT', ['v=spf1 ip6:%s -all' % IPV6_RANGE])
    server.add('_dmarc.' + sender_domain, 'TXT', ['v=DMARC1; p=none'])
    return server


def start_bundle(slapos, dns, relay_config=None, backend_parameters=None):
    """Supply both releases and deploy a relay cluster of one node and a
    backend for DOMAIN (its test account), which orders its domain from
    the relay (found as urn:slapos:mail-relay; the relay verifies it by its
    MX, asking ``dns``, a running ``bench_dns``; inbound-relay: the relay's
    node alone delivers to it, known by its certificate). Returns the
    Postfix build, the backend's and the node's partitions, the node's
    address and testmail's home."""
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node1': {'fqdn': RELAY_FQDN}},
        'default-relay-config': dict(relay_config or {},
                                     nameservers=[dns.address])})
    slapos.request(MAIL_SERVER, 'backend', 'default', dict(
        {'mail-domains': [DOMAIN], 'test-account': True},
        **(backend_parameters or {})))
    slapos.wait_instance(max_retry=6)
    backend = slapos.connection_parameters(MAIL_SERVER, 'backend')
    node = slapos.connection_parameters(RELAY, 'relay', 'cluster')[
        'relay-hosts'][0]
    backend_partition = slapos.partition_of_address(backend['imap-smtp-ipv6'])
    return {'postfix': postfix_binaries(slapos),
            'backend': backend_partition,
            'node': slapos.partition_of_address(node), 'node-ipv6': node,
            'home': os.path.join(backend_partition, 'srv', 'mail', DOMAIN,
                                 'testmail')}


def train_spam_filter(home, run, messages=50):
    """Give the recipient a word list, as a user who has moved some spam
    into Junk and some mail out of it: bogofilter then classifies every
    message with it (a user without one gets no verdict, at less cost).
    ``run(argv, input=...)`` runs a command as the mailbox's owner."""
    word_list = os.path.join(home, '.bogofilter')
    run(['mkdir', '-p', word_list])
    words = ['%s%d' % (w, i) for i in range(200)
             for w in ('offer', 'meeting', 'pills', 'report', 'casino')]
    for i in range(messages):
        spam = i % 2
        body = ' '.join(words[(i * 7 + j * (3 if spam else 5)) % len(words)]
                        for j in range(300))
        run(['env', 'BOGOFILTER_DIR=' + word_list, 'bogofilter',
             '-s' if spam else '-n'],
            input=('Subject: training %d\n\n%s\n' % (i, body)).encode())


def empty_mailbox(configuration, run):
    """Back to an empty mailbox between rounds, as its user would (Dovecot
    expunges and keeps its indexes right), so that every round starts as
    the first one: the bundle's and the baseline's alike. ``run(argv)``
    runs a command as the mailbox's owner."""
    run([shutil.which('doveadm') or '/usr/bin/doveadm', '-c', configuration,
         'expunge', '-u', RECIPIENT, 'mailbox', '*', 'all'])


def not_classified(home):
    """Messages of the Maildir the spam filter gave no verdict: under load
    as well, every message is classified."""
    count = 0
    for folder in ('new', 'cur'):
        directory = os.path.join(home, 'Maildir', folder)
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), 'rb') as f:
                header = f.read(16384).split(b'\n\n', 1)[0]
            count += b'not classified' in header
    return count


def bundle(slapos, deployment, messages):
    empty_mailbox(os.path.join(deployment['backend'], 'etc', 'dovecot',
                               'dovecot.conf'),
                  lambda argv: slapos.run(deployment['backend'], argv,
                                          check=True))
    start = time.time()
    smtp_source(deployment['postfix'], (deployment['node-ipv6'], 10025),
                messages)
    wait_for(lambda: maildir_count(deployment['home']), messages, 900)
    return messages / (time.time() - start)


def main(argv):
    messages = int(argv[1]) if len(argv) > 1 else 2000
    rounds = int(argv[2]) if len(argv) > 2 else 5
    # no node loop: its periodic runs would take CPU from the rounds
    slapos = EmbeddedSlapOS(node_loop=False)
    slapos.start()
    try:
        with bench_dns() as dns:
            # production defaults (greylisting and SPF on, the spam filter
            # on). smtp-source runs on the node and connects from the
            # node's own address, which the relay treats as any outside
            # client's (SPF is checked for every message); greylisting
            # whitelists it, and the inbound policy service is still asked
            # about every recipient.
            deployment = start_bundle(slapos, dns, relay_config={
                'greylisting': MACHINE_CLIENTS})
            postfix = deployment['postfix']
            train_spam_filter(deployment['home'],
                              lambda argv, **kw: slapos.run(
                                  deployment['backend'], argv, check=True,
                                  **kw))
            # a partition user the deployment does not use: the baseline's
            # and the sink's
            user = slapos.partition_users[-1]
            limit_rate = limit(postfix, messages, user)
            # the machine's speed drifts by 20% and more within a minute:
            # baselines and bundles alternate, each bundle round between two
            # baselines, and is compared with their mean (a drift in between
            # cancels out); the median of the rounds' ratios is the result
            results = []
            bare = start_baseline(postfix, user)
            try:
                before = baseline(postfix, bare, messages)
                for i in range(rounds):
                    rate = bundle(slapos, deployment, messages)
                    unclassified = not_classified(deployment['home'])
                    after = baseline(postfix, bare, messages)
                    base = (before + after) / 2
                    results.append((rate / base, base, rate))
                    print('round %d: baseline %.1f and %.1f msgs/s, bundle '
                          '%.1f msgs/s, ratio %.2f, not classified by the '
                          'spam filter: %d' % (i + 1, before, after, rate,
                                               rate / base, unclassified),
                          flush=True)
                    before = after
            finally:
                stop_baseline(bare)
    finally:
        slapos.stop()
    ratio, base, rate = sorted(results)[len(results) // 2]
    print('throughput, %d messages of %d bytes over %d sessions, median of '
          '%d rounds (bundle against the mean of the baselines around it):'
          % (messages, SIZE, SESSIONS, rounds))
    print('  limit    smtp-source -> smtp-sink          %8.1f msgs/s'
          % limit_rate)
    print('  baseline bare relay + backend + Dovecot    %8.1f msgs/s' % base)
    print('  bundle   relay node -> backend (defaults)  %8.1f msgs/s' % rate)
    print('  bundle / baseline = %.2f (target: at least 1.0; rounds: %s)'
          % (ratio, ', '.join('%.2f' % r[0] for r in results)))


if __name__ == '__main__':
    main(sys.argv)
