"""Benchmark of the account and alias database (issue 3).

  python bench/accounts.py [--accounts 100000] [--aliases 20000]
                           [--shared-instances 500]

Prints:
  1. the time to compute the database (``recipes.decisions.accounts.decide``) from 100,000
     account and 20,000 alias shared instances: first run (every account new,
     so a setup token is drawn and hashed for each) and next run (from the
     state), then the time to write the files (``recipes.stores.accounts.write``) and of a
     whole locked ``accounts.update`` that adds an account (it decides and
     writes; with its CPU time), and of one given what the last one was
     (nothing to decide). Target: the whole update under 2 s at 100,000
     accounts and 20,000 aliases.
     Baseline, measured in the same run: a JSON round trip of the shared
     instance list (what reading it from slapconfiguration already costs).
  2. the time of one instance run in the embedded SlapOS with 500 account
     shared instances (``instance_run``): the run that creates them and the
     next one; baseline, the same partition's run without any. Needs the
     runtime user and its embedded SlapOS (scripts/run.sh),
     which it starts afresh.
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recipes.decisions.accounts import decide  # noqa: E402
from recipes.stores import accounts  # noqa: E402

TARGET = 2.0
# an instance run where nothing changed, against the same backend's without
# any shared instance
RUN_TARGET = 1.1


def shared_instances(n_accounts, n_aliases, domains, seed=0):
    """A realistic list: accounts spread over the domains, some with a quota,
    a reset-token or suspended; aliases to local accounts, to external
    addresses, to other aliases, and one catch-all per domain."""
    rng = random.Random(seed)
    shared, addresses = [], []
    for i in range(n_accounts):
        address = 'user%d@%s' % (i, domains[i % len(domains)])
        parameters = {'address': address}
        if i % 10 == 0:
            parameters['quota'] = 2048
        if i % 50 == 0:
            parameters['reset-token'] = 'reset-token-%d' % i
        if i % 100 == 0:
            parameters['suspended'] = True
        shared.append({'reference': 'account-%d' % i,
                       'parameters': parameters})
        addresses.append(address)
    aliases = []
    for i in range(n_aliases):
        domain = domains[i % len(domains)]
        if i < len(domains):
            alias = '@' + domain
            destinations = [addresses[i]]
        else:
            alias = 'alias%d@%s' % (i, domain)
            kind = i % 4
            if kind == 0:
                destinations = ['someone%d@gmail.com' % i]
            elif kind == 3 and aliases:
                destinations = [rng.choice(aliases), rng.choice(addresses)]
            else:
                destinations = rng.sample(addresses, 1 + i % 3)
            aliases.append(alias)
        shared.append({'reference': 'alias-%d' % i, 'parameters': {
            'alias': alias, 'destinations': destinations}})
    return shared


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def timed_cpu(function, *args):
    """``(seconds, CPU seconds of this process)`` of one call: on a
    machine shared with other work, the CPU time says what the call costs
    when the wall time also counts the others'."""
    start, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - start, time.process_time() - cpu


def best_of(count, function, *args):
    return min(timed(function, *args)[0] for _ in range(count))


def database_figures(n_accounts, n_aliases):
    domains = ['domain%d.example.com' % i for i in range(10)]
    shared = shared_instances(n_accounts, n_aliases, domains)
    now = time.time()
    url = 'https://[fd00::2]:8081/password'

    baseline = best_of(3, lambda: json.loads(json.dumps(shared)))
    first, database = timed(decide, domains, shared, {}, 1024, False,
                            now, url)
    assert not database.errors, list(database.errors.items())[:3]
    assert len(database.accounts) == n_accounts
    assert len(database.aliases) == n_aliases
    state = json.loads(json.dumps(database.state))
    following = best_of(3, decide, domains, shared, state, 1024,
                        False, now, url)
    directory = tempfile.mkdtemp(prefix='bench-accounts-')
    try:
        db_directory = os.path.join(directory, 'accounts')
        mail = os.path.join(directory, 'mail')
        write = best_of(3, accounts.write, db_directory, mail, database)

        def run_update(shared):
            return accounts.update(db_directory, mail, domains, shared, 1024,
                                   False, url)
        # each run one more account: every run decides and writes
        added = [shared + [{'reference': 'added-%d' % i, 'parameters': {
            'address': 'added%d@%s' % (i, domains[0])}} for i in range(n)]
            for n in range(1, 4)]
        run_update(shared)
        runs = [timed_cpu(run_update, more) for more in added]
        assert run_update(added[-1]) is None
        unchanged = best_of(3, run_update, added[-1])
    finally:
        shutil.rmtree(directory)
    update, update_cpu = min(r[0] for r in runs), min(r[1] for r in runs)

    print('1. account database: %d accounts, %d aliases (%d domains)'
          % (n_accounts, n_aliases, len(domains)))
    print('   baseline, JSON round trip of the list  %7.3f s' % baseline)
    print('   decide, first run (all new, tokens)    %7.3f s  (%.1fx baseline)'
          % (first, first / baseline))
    print('   decide, next run (from the state)      %7.3f s  (%.1fx baseline)'
          % (following, following / baseline))
    print('   write (%d files + state, fsync)         %7.3f s'
          % (len(accounts.FILES), write))
    print('   update, one account added (lock, read, decide, write)'
          '  %7.3f s  (CPU %.3f s)' % (update, update_cpu))
    print('   update, nothing changed (nothing to decide)          '
          '  %7.3f s' % unchanged)
    verdict = 'met' if update < TARGET else 'MISSED'
    print('   target: the whole update under %.1f s: %s' % (TARGET, verdict))
    return update


def instance_run(count):
    """One ``slapos node instance`` of a mail-server partition with ``count``
    account shared instances, in the embedded SlapOS (tests/harness.py):
    the run that creates them, then a run where nothing changed (forced, as
    slapgrid's periodic run is), which is what every later run costs (best
    of 2). Baseline, in the same SlapOS: the forced run of the same
    partition with no shared instance (best of 2: the first run after the
    services started also waits for them in its promises)."""
    from tests.deployment import MAIL_SERVER
    from tests.harness import EmbeddedSlapOS

    def forced_run(slapos):
        slapos.standalone._force_slapos_node_instance_all = True
        try:
            return timed(slapos.standalone.waitForInstance, 2)[0]
        finally:
            slapos.standalone._force_slapos_node_instance_all = False

    # no node loop: its runs would be timed with the partition's
    with EmbeddedSlapOS(node_loop=False) as slapos:
        slapos.supply(MAIL_SERVER)
        slapos.wait_software()
        slapos.request(MAIL_SERVER, 'backend', 'default', {
            'mail-domains': ['bench.example.com', 'bench.example.org'],
            # a backend alone: no relay to wait for
            'inbound-relay': {'enable': False},
            'outbound-relay': {'enable': False}})
        slapos.wait_instance(max_retry=2)
        baseline = best_of(2, forced_run, slapos)
        for i in range(count):
            slapos.request(MAIL_SERVER, 'account-%d' % i, 'default', {
                'address': 'user%d@bench.example.%s' % (
                    i, ('com', 'org')[i % 2])}, shared=True)
        first = timed(slapos.wait_instance, 2)[0]
        following = best_of(2, forced_run, slapos)
        published = slapos.connection_parameters(
            MAIL_SERVER, 'account-%d' % (count - 1), shared=True)
        assert 'setup-url' in published, published
    print('2. one instance run in the embedded SlapOS, %d account shared '
          'instances' % count)
    print('   baseline, forced run, no shared instance %7.1f s' % baseline)
    print('   run that creates them                    %7.1f s' % first)
    print('   next run, nothing changed (forced)       %7.1f s  (%.2fx '
          'baseline; target: at most %.1fx)' % (
              following, following / baseline, RUN_TARGET))
    return following


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--accounts', type=int, default=100000)
    parser.add_argument('--aliases', type=int, default=20000)
    parser.add_argument('--shared-instances', type=int, default=500,
                        help='account shared instances of figure 2 '
                        '(0: skip it)')
    args = parser.parse_args()
    compute = database_figures(args.accounts, args.aliases)
    if args.shared_instances:
        instance_run(args.shared_instances)
    return 0 if compute < TARGET else 1


if __name__ == '__main__':
    sys.exit(main())
