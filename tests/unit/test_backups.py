"""Backups: the decisions (names, what is kept, when the backups are
late, which messages a mailbox lacks), the snapshot directory, the homes
(Maildir, Sieve, word list) copied and restored, the passwords given back
through the account database, and the command as the scheduler and an
operator run it; the relay's DKIM keys and certificates."""
import calendar
import json
import os
import shutil
import subprocess
import time

import pytest

from recipes.decisions import backups as decisions
from recipes.decisions.accounts import password_restores
from recipes.decisions.passwords import verify_password
from recipes.programs import backup
from recipes.promises import backup_age, log_directory
from recipes.stores import accounts, backups, certificates, dkim_keys, homes
from test_accounts import DOMAINS, URL, account

PASSWORD = 'correct horse battery'
NOW = calendar.timegm((2026, 12, 1, 3, 0, 0))
BOGOUTIL = shutil.which('bogoutil')
needs_bogofilter = pytest.mark.skipif(
    not BOGOUTIL, reason='bogofilter is not installed (scripts/setup.sh '
    'installs it)')


# --- decisions --------------------------------------------------------------

def test_snapshot_names_sort_as_time_does():
    assert decisions.snapshot_name(NOW) == '20261201T030000Z'
    assert decisions.snapshot_time('20261201T030000Z') == NOW
    assert decisions.is_snapshot_name('20261201T030000Z')
    assert not decisions.is_snapshot_name('.partial-20261201T030000Z')


def test_the_newest_snapshots_are_kept():
    names = ['20261203T030000Z', '20261201T030000Z', '20261202T030000Z',
             'not-a-snapshot']
    assert decisions.to_prune(names, 2) == ['20261201T030000Z']
    assert decisions.to_prune(names, 5) == []


def test_backups_are_late_past_their_period_and_grace():
    day = 86400
    assert decisions.overdue({}, NOW, day) is None    # no attempt yet
    ok = {'first-attempt': NOW - 3 * day, 'last-attempt': NOW - day,
          'last-success': NOW - day}
    assert decisions.overdue(ok, NOW, day) is None
    late = dict(ok, **{'last-success': NOW - day - decisions.GRACE - 60})
    assert 'the last successful backup is from' in decisions.overdue(
        late, NOW, day)
    failed = dict(ok, error='OSError: disk full', **{'last-attempt': NOW})
    assert decisions.overdue(failed, NOW, day) == (
        'the last backup, at 2026-12-01 03:00 UTC, failed: OSError: disk '
        'full')
    never = {'first-attempt': NOW - 2 * day, 'last-attempt': NOW - 2 * day}
    assert decisions.overdue(never, NOW, day).startswith(
        'no backup succeeded since')


def test_a_message_already_there_is_the_same_whatever_its_flags():
    assert decisions.missing_messages(
        ['1.M1.host:2,S', '2.M2.host:2,', '3.M3.host'],
        ['1.M1.host:2,RS', '3.M3.host:2,S']) == ['2.M2.host:2,']


def test_a_restore_gives_back_only_the_passwords_never_set_here():
    old = {'accounts': {
        'alice@example.com': {'reference': 'a', 'password': 'old-a',
                              'password-set': 1, 'reset-seen': ['r1']},
        'bob@example.com': {'reference': 'b', 'password': 'old-b'},
        'carol@example.com': {'reference': 'c', 'password': 'old-c'},
        'dave@example.com': {'reference': 'd', 'password': None},
        'testmail@example.com': {'reference': None, 'password': 'test'}}}
    new = {'accounts': {
        'alice@example.com': {'reference': 'a2', 'password': None,
                              'reset-seen': ['r2']},
        'bob@example.com': {'reference': 'b2', 'password': 'new-b'},
        'dave@example.com': {'reference': 'd2', 'password': None},
        'testmail@example.com': {'reference': None, 'password': 'test2'}}}
    restores, said = password_restores(new, old)
    assert restores == {'alice@example.com': {
        'password': 'old-a', 'password-set': 1, 'reset-seen': ['r1', 'r2']}}
    assert said == [
        'bob@example.com: kept the password set here since the snapshot',
        'carol@example.com: not restored: no account shared instance asks '
        'for it on this backend; request it, then restore again']


# --- the snapshot directory --------------------------------------------------

def test_a_snapshot_is_complete_or_absent(tmp_path):
    directory = str(tmp_path / 'backup')
    with backups.locked(directory):
        interrupted = backups.begin(directory, NOW - 10)
        partial = backups.begin(directory, NOW)
    assert not os.path.exists(interrupted)
    assert backups.names(directory) == []
    path = backups.commit(directory, partial, {'format': decisions.FORMAT})
    assert backups.names(directory) == ['20261201T030000Z']
    assert os.path.realpath(os.path.join(directory, 'latest')) == path
    assert backups.read_manifest(os.path.join(directory, 'latest')) == {
        'format': decisions.FORMAT}
    with pytest.raises(ValueError) as e:
        backups.read_manifest(str(tmp_path))
    assert str(tmp_path) in str(e.value)


def test_old_snapshots_are_pruned(tmp_path):
    directory = str(tmp_path)
    for i in range(4):
        backups.commit(directory, backups.begin(directory, NOW + i),
                       {'format': decisions.FORMAT})
    assert backups.prune(directory, 2) == ['20261201T030000Z',
                                           '20261201T030001Z']
    assert backups.names(directory) == ['20261201T030002Z',
                                        '20261201T030003Z']


def test_the_status_records_attempts(tmp_path):
    directory = str(tmp_path)
    backups.record_status(directory, NOW, error='OSError: full')
    backups.record_status(directory, NOW + 1, 'x')
    status = backups.read_status(directory)
    assert status == {'first-attempt': NOW, 'last-attempt': NOW + 1,
                      'last-success': NOW + 1, 'last-snapshot': 'x'}


# --- homes ----------------------------------------------------------------------

def deliver(folder, name, text, sub='cur'):
    for s in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(folder, s), exist_ok=True)
    with open(os.path.join(folder, sub, name), 'w') as f:
        f.write(text)


def make_home(home):
    deliver(os.path.join(home, 'Maildir'), '1.M1.h:2,S', 'Subject: one\n\n')
    deliver(os.path.join(home, 'Maildir'), '2.M2.h', 'Subject: two\n\n',
            'new')
    deliver(os.path.join(home, 'Maildir', '.Invoices'), '3.M3.h:2,',
            'Subject: [invoice]\n\n')
    deliver(os.path.join(home, 'Maildir'), 'partial', 'half a', 'tmp')
    for name in ('dovecot.index', 'dovecot-uidlist', 'maildirsize'):
        with open(os.path.join(home, 'Maildir', name), 'w') as f:
            f.write('cache')
    os.makedirs(os.path.join(home, 'sieve'))
    with open(os.path.join(home, 'sieve', 'invoices.sieve'), 'w') as f:
        f.write('require "fileinto";\nfileinto "Invoices";\n')
    with open(os.path.join(home, 'sieve', 'invoices.svbin'), 'w') as f:
        f.write('compiled')
    os.symlink('sieve/invoices.sieve', os.path.join(home, '.dovecot.sieve'))


def files_under(root):
    return sorted(os.path.relpath(os.path.join(r, n), root)
                  for r, _, names in os.walk(root) for n in names)


def test_a_home_is_copied_with_its_messages_linked(tmp_path):
    home, target = str(tmp_path / 'home'), str(tmp_path / 'snapshot')
    make_home(home)
    assert homes.copy_home(home, target, 'bogoutil') == 3
    assert files_under(target) == [
        '.dovecot.sieve', 'Maildir/.Invoices/cur/3.M3.h:2,',
        'Maildir/cur/1.M1.h:2,S', 'Maildir/new/2.M2.h',
        'sieve/invoices.sieve']
    assert os.readlink(os.path.join(target, '.dovecot.sieve')) == \
        'sieve/invoices.sieve'
    # the same file, not a copy
    assert os.stat(os.path.join(target, 'Maildir/cur/1.M1.h:2,S')).st_ino \
        == os.stat(os.path.join(home, 'Maildir/cur/1.M1.h:2,S')).st_ino


def test_a_message_renamed_during_the_copy_is_found_again(tmp_path):
    folder = str(tmp_path / 'Maildir')
    deliver(folder, '9.M9.h', 'Subject: read meanwhile\n\n', 'new')
    target = str(tmp_path / 'copy')
    for sub in ('cur', 'new'):
        os.makedirs(os.path.join(target, sub))
    original = os.link

    def link(source, destination):
        # Dovecot marks it read between the listing and the link
        if source.endswith('/new/9.M9.h'):
            os.rename(source, os.path.join(folder, 'cur', '9.M9.h:2,S'))
        return original(source, destination)
    os.link = link
    try:
        assert homes.link_messages(folder, 'new', target) == 1
    finally:
        os.link = original
    assert os.listdir(os.path.join(target, 'cur')) == ['9.M9.h:2,S']


def test_a_restore_adds_what_the_home_lacks_and_replaces_nothing(tmp_path):
    home, snapshot = str(tmp_path / 'home'), str(tmp_path / 'snapshot')
    make_home(home)
    homes.copy_home(home, snapshot, 'bogoutil')
    new = str(tmp_path / 'new-home')
    # arrived since, on the new instance: a message, and a script of its own
    deliver(os.path.join(new, 'Maildir'), '5.M5.h', 'Subject: new\n\n',
            'new')
    os.makedirs(os.path.join(new, 'sieve'))
    with open(os.path.join(new, 'sieve', 'invoices.sieve'), 'w') as f:
        f.write('# written since\n')
    with open(os.path.join(new, 'Maildir', 'maildirsize'), 'w') as f:
        f.write('stale')
    # and one message of the snapshot was read since (another flag)
    deliver(os.path.join(new, 'Maildir'), '1.M1.h:2,RS', 'Subject: one\n\n')
    restored = homes.restore_home(snapshot, new, 'bogoutil')
    assert (restored.messages, restored.kept) == (2, 1)
    assert sorted(os.listdir(os.path.join(new, 'Maildir', 'cur'))) == [
        '1.M1.h:2,RS']
    assert sorted(os.listdir(os.path.join(new, 'Maildir', 'new'))) == [
        '2.M2.h', '5.M5.h']
    assert os.listdir(os.path.join(new, 'Maildir', '.Invoices', 'cur')) == [
        '3.M3.h:2,']
    assert os.listdir(os.path.join(new, 'Maildir', 'tmp')) == []
    # the script written since is kept, and said; the active link restored
    with open(os.path.join(new, 'sieve', 'invoices.sieve')) as f:
        assert f.read() == '# written since\n'
    assert len(restored.conflicts) == 1
    assert 'invoices.sieve' in restored.conflicts[0]
    assert os.readlink(os.path.join(new, '.dovecot.sieve')) == \
        'sieve/invoices.sieve'
    # the quota is recounted
    assert not os.path.exists(os.path.join(new, 'Maildir', 'maildirsize'))
    # a second restore adds nothing
    again = homes.restore_home(snapshot, new, 'bogoutil')
    assert (again.messages, again.kept) == (0, 3)


@needs_bogofilter
def test_a_word_list_is_dumped_and_loaded_back(tmp_path):
    home = tmp_path / 'home'
    (home / 'Maildir').mkdir(parents=True)
    env = dict(os.environ, HOME=str(home))
    for verdict, text in (('-s', 'cheap pills now'), ('-n', 'lunch at noon')):
        subprocess.run(['bogofilter', verdict], input=(
            'Subject: x\n\n%s\n' % text).encode(), env=env, check=True)
    snapshot = str(tmp_path / 'snapshot')
    homes.copy_home(str(home), snapshot, BOGOUTIL)
    assert not os.path.exists(os.path.join(snapshot, '.bogofilter',
                                           'wordlist.db'))
    dump = os.path.join(snapshot, '.bogofilter', 'wordlist.txt')
    assert 'pills' in open(dump).read()
    assert stat_mode(dump) == 0o600
    new = tmp_path / 'new'
    restored = homes.restore_home(snapshot, str(new), BOGOUTIL)
    assert restored.files == 1
    verdict = subprocess.run(
        ['bogofilter', '-v'], input=b'Subject: x\n\ncheap pills now\n',
        env=dict(os.environ, HOME=str(new)), capture_output=True)
    assert verdict.returncode == 0, verdict.stdout     # 0: spam
    # trained since: kept, and said
    again = homes.restore_home(snapshot, str(new), BOGOUTIL)
    assert again.files == 0 and 'kept the word list' in again.conflicts[0]


# --- the command -----------------------------------------------------------------

@pytest.fixture
def backend(tmp_path):
    """A backend's files: the account database of alice and bob, their
    homes, its certificates; and its backup configuration."""
    base = tmp_path / 'partition'
    config = {
        'release': 'mail-server', 'directory': str(base / 'srv' / 'backup'),
        'keep': 2, 'domains': DOMAINS,
        'accounts': str(base / 'srv' / 'accounts'),
        'mail': str(base / 'srv' / 'mail'), 'bogoutil': BOGOUTIL or 'x',
        'certificates': str(base / 'etc' / 'ssl'), 'master': {}}
    return config


def deploy(config, users=('alice', 'bob'), suffix=''):
    """What a run of the instance does: the account shared instances
    (``_<user><suffix>``) decided, the certificates generated."""
    accounts.update(config['accounts'], config['mail'], DOMAINS, [
        account('_%s%s' % (user, suffix), '%s@example.com' % user)
        for user in users], 1024, False, URL)
    certificates.ensure('openssl', config['certificates'], 'example.com')


def test_backup_then_restore_into_a_new_instance(backend, tmp_path, capsys):
    deploy(backend)
    db = backend['accounts']
    state = accounts.read_state(db)
    for address in ('alice@example.com', 'bob@example.com'):
        token = state['accounts'][address]['setup-token']
        accounts.set_password(db, address, token, PASSWORD + address[0])
        make_home(os.path.join(backend['mail'], 'example.com',
                               address.split('@')[0]))
    served = certificates.fingerprint(os.path.join(backend['certificates'],
                                                   'current.crt'))
    path = backup.create(backend, NOW)
    assert os.path.basename(path) == '20261201T030000Z'
    assert backups.read_manifest(path)['parts'] == {
        'accounts': {'accounts': 2},
        'homes': {'homes': 2, 'messages': 6},
        'certificates': {'files': 4}}
    # the password hashes and the keys: for the partition's user alone
    assert stat_mode(path) == 0o700
    for name in ('accounts/state.json', 'certificates/current.key'):
        assert stat_mode(os.path.join(path, name)) == 0o600
    # pull it elsewhere (as rsync would), lose the partition, deploy anew:
    # the same shared instances, which get setup links
    pulled = str(tmp_path / 'pulled')
    shutil.copytree(path, pulled, symlinks=True)
    shutil.rmtree(os.path.dirname(backend['accounts']))
    shutil.rmtree(backend['certificates'])
    deploy(backend, suffix='2')
    published = json.loads(open(os.path.join(db, 'published.json')).read())
    assert 'setup-url' in published['_alice2']
    capsys.readouterr()
    backup.restore(backend, pulled, bang=False)
    said = capsys.readouterr().out
    assert 'accounts: the password of alice@example.com, bob@example.com ' \
        'restored' in said
    assert 'homes: 6 messages restored, 0 already there' in said
    assert 'certificates: replaced' in said
    passwd = {line.split(':')[0]: line.split(':')[1]
              for line in open(os.path.join(db, 'passwd'))}
    assert verify_password(passwd['alice@example.com'],
                           PASSWORD + 'a')
    published = json.loads(open(os.path.join(db, 'published.json')).read())
    assert published['_alice2'] == {'address': 'alice@example.com'}
    assert certificates.fingerprint(os.path.join(
        backend['certificates'], 'current.crt')) == served
    assert sorted(os.listdir(os.path.join(
        backend['mail'], 'example.com', 'bob', 'Maildir', 'new'))) == [
            '2.M2.h']
    # restored once more: nothing added, nothing replaced
    backup.restore(backend, pulled, bang=False)
    said = capsys.readouterr().out
    assert 'homes: 0 messages restored, 6 already there' in said
    assert 'replaced' not in said and 'the password of' not in said


def test_a_password_set_since_is_kept(backend, tmp_path, capsys):
    deploy(backend, ('alice',))
    db = backend['accounts']
    token = accounts.read_state(db)['accounts']['alice@example.com'][
        'setup-token']
    accounts.set_password(db, 'alice@example.com', token, PASSWORD)
    snapshot = backup.create(backend, NOW)
    accounts.change_password(db, 'alice@example.com', PASSWORD,
                             'another long password')
    backup.restore(backend, snapshot, bang=False)
    assert 'kept the password set here since the snapshot' in \
        capsys.readouterr().out
    assert verify_password(accounts.read_state(db)['accounts'][
        'alice@example.com']['password'], 'another long password')


def test_only_the_newest_snapshots_stay_and_a_failure_is_recorded(
        backend, capsys):
    deploy(backend)
    for i in range(3):
        backup.create(backend, NOW + i)
    assert len(backups.names(backend['directory'])) == 2
    # a word list that cannot be dumped
    home = os.path.join(backend['mail'], 'example.com', 'alice')
    os.makedirs(os.path.join(home, '.bogofilter'))
    open(os.path.join(home, '.bogofilter', 'wordlist.db'), 'w').close()
    with pytest.raises(subprocess.CalledProcessError):
        backup.create(dict(backend, bogoutil='false'), NOW + 10)
    status = backups.read_status(backend['directory'])
    assert status['error'].startswith('CalledProcessError')
    assert status['last-success'] == NOW + 2
    assert len(backups.names(backend['directory'])) == 2
    capsys.readouterr()
    backup.listing(backend)
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0].rsplit('/', 1)[1] for line in listed[:2]] == [
        '20261201T030001Z', '20261201T030002Z']
    assert 'accounts 2 accounts; certificates 4 files; homes 0 homes' in \
        listed[0]
    assert listed[2].startswith('the last attempt, at 2026-12-01 03:00 UTC, '
                                'failed: CalledProcessError')


def test_a_snapshot_of_another_release_is_refused(backend, tmp_path):
    deploy(backend)
    snapshot = backup.create(backend, NOW)
    relay = dict(backend, release='mail-server-relay')
    with pytest.raises(SystemExit) as e:
        backup.restore(relay, snapshot, bang=False)
    assert 'is a snapshot of mail-server' in str(e.value)


def test_a_relay_nodes_keys_come_back_in_place_of_new_ones(tmp_path, capsys):
    config = {'release': 'mail-server-relay', 'keep': 3,
              'directory': str(tmp_path / 'backup'),
              'domains': ['relay1.example.com'],
              'dkim': str(tmp_path / 'dkim'),
              'certificates': str(tmp_path / 'ssl'), 'master': {}}
    keys = dkim_keys.public_keys('openssl', config['dkim'], ['example.com'])
    certificates.ensure('openssl', config['certificates'], 'relay1')
    snapshot = backup.create(config, NOW)
    shutil.rmtree(config['dkim'])
    shutil.rmtree(config['certificates'])
    # the new node generates its own
    assert dkim_keys.public_keys('openssl', config['dkim'],
                                 ['example.com']) != keys
    certificates.ensure('openssl', config['certificates'], 'relay1')
    backup.restore(config, snapshot, bang=False)
    said = capsys.readouterr().out
    assert 'dkim: replaced the key of example.com' in said
    assert dkim_keys.public_keys('openssl', config['dkim'],
                                 ['example.com']) == keys
    assert stat_mode(dkim_keys.key_path(config['dkim'], 'example.com')) \
        == 0o600


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


# --- promises ---------------------------------------------------------------------

def test_the_log_directory_size_counts_every_file(tmp_path):
    (tmp_path / 'a.log').write_bytes(b'x' * 100)
    (tmp_path / 'old').mkdir()
    (tmp_path / 'old' / 'a.log.1.gz').write_bytes(b'x' * 50)
    total, (size, path) = log_directory.directory_size(str(tmp_path))
    assert (total, size, path) == (150, 100, str(tmp_path / 'a.log'))


class Logger:
    """What a promise logs, as (level, text)."""

    def __init__(self):
        self.lines = []

    def info(self, text, *args):
        self.lines.append(('info', text % args))

    def error(self, text, *args):
        self.lines.append(('error', text % args))


def sense(module, **config):
    """What the promise of ``module`` logs with ``config``."""
    promise = module.RunPromise.__new__(module.RunPromise)
    promise.logger = Logger()
    promise.getConfig = config.get
    promise.sense()
    return promise.logger.lines


def test_the_backup_promise_reads_the_status(tmp_path):
    def backup(parameter):
        return sense(backup_age, directory=str(tmp_path),
                     backup=json.dumps(parameter))

    parameter = {'enable': True, 'time': '03:00', 'keep': 7}
    assert backup(parameter)[0][0] == 'info'
    backups.record_status(str(tmp_path), time.time(), error='boom')
    (level, text), = backup(parameter)
    assert level == 'error' and 'failed: boom' in text
    assert backup(dict(parameter, enable=False))[0] == (
        'info', 'backups are disabled (backup parameter)')


def test_the_log_directory_promise_fails_past_its_bound(tmp_path):
    (tmp_path / 'postfix.log').write_bytes(b'x' * (2 * log_directory.MIB))
    for bound, level in ((3, 'info'), (1, 'error')):
        (found, text), = sense(log_directory, directory=str(tmp_path),
                               logs=json.dumps({'alarm-size': bound}))
        assert found == level, text
    assert 'the biggest is %s (2 MiB)' % (tmp_path / 'postfix.log') in text
