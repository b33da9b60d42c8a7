"""The files of the account database (``accounts.update``, ``write``), the
passwords and tokens (``set_password``, ``change_password``), the lock, and
the command line; Dovecot's own checker when it is installed."""
import io
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import time

import pytest

from recipes.decisions import passwords
from recipes.decisions.accounts import decide
from recipes.instance.accounts import Recipe
from recipes.programs.passwords import main
from recipes.stores import accounts
from test_accounts import DOMAINS, URL, account, alias

PASSWORD = 'correct horse battery'


@pytest.fixture
def db(tmp_path):
    class Db:
        directory = str(tmp_path / 'accounts')
        mail = str(tmp_path / 'mail')

        def update(self, shared, test_account=False, now=None, **kw):
            return accounts.update(self.directory, self.mail,
                                   kw.get('domains', DOMAINS), shared, 1024,
                                   test_account, URL, now)

        def read(self, name):
            with open(os.path.join(self.directory, name)) as f:
                return f.read()

        def lines(self, name):
            return self.read(name).splitlines()

        def passwd(self):
            return {line.split(':')[0]: line.split(':')
                    for line in self.lines('passwd')}

        def published(self):
            return json.loads(self.read('published.json'))

        def identities(self):
            return {n: os.stat(os.path.join(self.directory, n)).st_ino
                    for n in os.listdir(self.directory)}
    return Db()


def test_files_and_their_format(db):
    database = db.update([
        account('_a', 'alice@example.com', quota=50),
        account('_b', 'bob@example.org', suspended=True),
        alias('_t', 'team@example.com', 'alice@example.com', 'x@gmail.com'),
        alias('_c', '@example.org', 'bob@example.org')])
    assert database.errors == {}
    passwd = db.lines('passwd')
    assert passwd == [
        'alice@example.com:{SHA512-CRYPT}!::::%s/example.com/alice::'
        'userdb_quota_rule=*:storage=50M' % db.mail,
        'bob@example.org:{SHA512-CRYPT}!::::%s/example.org/bob::'
        'userdb_quota_rule=*:storage=1024M allow_nets=::/128 nologin=y '
        'reason=Account-suspended' % db.mail]
    assert db.lines('mailboxes') == [
        'alice@example.com %s/example.com/alice/Maildir/' % db.mail,
        'bob@example.org %s/example.org/bob/Maildir/' % db.mail]
    assert db.lines('aliases') == [
        '@example.org bob@example.org',
        'bob@example.org bob@example.org',
        'team@example.com alice@example.com, x@gmail.com']
    assert db.lines('senders') == [
        'alice@example.com alice@example.com',
        'bob@example.org bob@example.org',
        'team@example.com alice@example.com']
    assert db.lines('suspended') == [
        'bob@example.org 450 4.2.1 Mailbox temporarily suspended']
    # through the catch-all, bob's mail waits in the queue (retry transport)
    assert db.lines('suspended-transports') == [
        'bob@example.org retry:4.2.1 Mailbox temporarily suspended']
    assert db.lines('domains') == DOMAINS
    assert json.loads(db.read('published.json')) == database.published
    assert json.loads(db.read('state.json')) == database.state
    for name in os.listdir(db.directory):
        mode = stat.S_IMODE(os.stat(os.path.join(db.directory, name)).st_mode)
        assert mode == 0o600, name
    assert stat.S_IMODE(os.stat(db.directory).st_mode) == 0o700
    # no temporary file left behind
    assert sorted(os.listdir(db.directory)) == sorted(
        ['.lock', 'state.json', 'decided.json']
        + [f for f in accounts.FILES.values()])


def test_rerun_changes_nothing(db):
    shared = [account('_a', 'alice@example.com'),
              alias('_t', 'team@example.com', 'alice@example.com')]
    db.update(shared, test_account=True)
    files = {n: db.read(n) for n in os.listdir(db.directory) if n != '.lock'}
    # the same inputs, state and files: nothing to decide
    assert db.update(shared, test_account=True) is None
    assert {n: db.read(n) for n in files} == files
    # decided again, the same files
    os.unlink(os.path.join(db.directory, 'decided.json'))
    assert db.update(shared, test_account=True) is not None
    assert {n: db.read(n) for n in files} == files


def test_a_run_that_changes_nothing_writes_nothing(db):
    """The daemons that read the files (Postfix's maps, Dovecot's
    passwd-file) see no change, and a big database costs no write."""
    shared = [account('_a', 'alice@example.com'),
              alias('_t', 'team@example.com', 'alice@example.com')]
    db.update(shared)
    written = db.identities()
    db.update(shared)
    assert db.identities() == written
    # decided again: what did not change is not written either
    os.unlink(os.path.join(db.directory, 'decided.json'))
    db.update(shared)
    del written['decided.json']
    assert {n: i for n, i in db.identities().items()
            if n != 'decided.json'} == written
    db.update(shared + [account('_b', 'bob@example.com')])
    assert os.stat(os.path.join(db.directory, 'passwd')).st_ino \
        != written['passwd']
    assert os.stat(os.path.join(db.directory, 'domains')).st_ino \
        == written['domains']


@pytest.mark.skipif(not shutil.which('doveadm'), reason='no doveadm')
def test_dovecot_verifies_the_hashes_and_no_password_matches_none(db):
    db.update([account('_a', 'alice@example.com')], test_account=True)
    passwd = db.passwd()

    def verifies(stored, password):
        return subprocess.run(
            ['doveadm', 'pw', '-t', stored, '-p', password],
            capture_output=True).returncode == 0
    assert verifies(passwd['testmail@example.com'][1], 'password123')
    assert not verifies(passwd['testmail@example.com'][1], 'password124')
    for attempt in ('', '!', 'password123'):
        assert not verifies(passwd['alice@example.com'][1], attempt)


def test_setup_token_sets_the_password_once(db):
    database = db.update([account('_a', 'alice@example.com')])
    token = database.published['_a']['token']
    with pytest.raises(accounts.InvalidToken):
        accounts.set_password(db.directory, 'alice@example.com', 'x' * 43,
                              PASSWORD)
    accounts.set_password(db.directory, 'Alice@example.com', token, PASSWORD)
    stored = db.passwd()['alice@example.com'][1]
    assert passwords.verify_password(stored, PASSWORD)
    assert PASSWORD not in db.read('state.json') + db.read('passwd')
    assert token not in db.read('state.json')
    assert token not in db.read('published.json')
    with pytest.raises(accounts.InvalidToken, match='already used'):
        accounts.set_password(db.directory, 'alice@example.com', token,
                              'another password')
    # the password survives every later run; the token is not published
    again = db.update([account('_a', 'alice@example.com')])
    assert again.published['_a'] == {'address': 'alice@example.com'}
    assert db.passwd()['alice@example.com'][1] == stored


def test_token_expires(db):
    now = time.time()
    database = db.update([account('_a', 'alice@example.com')], now=now)
    token = database.published['_a']['token']
    with pytest.raises(accounts.InvalidToken, match='expired'):
        accounts.set_password(db.directory, 'alice@example.com', token,
                              PASSWORD, now=now + passwords.TOKEN_LIFETIME)


def test_weak_password_does_not_use_the_token(db):
    database = db.update([account('_a', 'alice@example.com')])
    token = database.published['_a']['token']
    for weak, reason in (('seven77', 'at least 8'),
                         ('alice@example.com', 'not be the address'),
                         ('ALICE@EXAMPLE.COM', 'not be the address'),
                         ('x' * 257, 'at most'),
                         ('line\nbreak pw', 'line break')):
        with pytest.raises(accounts.WeakPassword, match=reason):
            accounts.set_password(db.directory, 'alice@example.com', token,
                                  weak)
    accounts.set_password(db.directory, 'alice@example.com', token, PASSWORD)


def test_unknown_user(db):
    db.update([])
    with pytest.raises(accounts.UnknownUser):
        accounts.set_password(db.directory, 'nobody@example.com', 'x', PASSWORD)


def test_reset_token_once_and_never_again(db):
    shared = [account('_a', 'alice@example.com')]
    database = db.update(shared)
    accounts.set_password(db.directory, 'alice@example.com',
                          database.published['_a']['token'], PASSWORD)
    with pytest.raises(accounts.InvalidToken):
        accounts.set_password(db.directory, 'alice@example.com',
                              'reset-0123456', 'new password 1')
    shared[0]['parameters']['reset-token'] = 'reset-0123456'
    db.update(shared)
    accounts.set_password(db.directory, 'alice@example.com', 'reset-0123456',
                          'new password 1')
    assert passwords.verify_password(db.passwd()['alice@example.com'][1],
                                    'new password 1')
    # the same value stays in the parameters: it never works again
    db.update(shared)
    with pytest.raises(accounts.InvalidToken):
        accounts.set_password(db.directory, 'alice@example.com',
                              'reset-0123456', 'new password 2')
    assert 'reset-0123456' not in db.read('state.json')


def test_change_password(db):
    database = db.update([account('_a', 'alice@example.com')])
    with pytest.raises(accounts.InvalidToken):
        # no password yet: nothing matches
        accounts.change_password(db.directory, 'alice@example.com', '',
                                 PASSWORD)
    accounts.set_password(db.directory, 'alice@example.com',
                          database.published['_a']['token'], PASSWORD)
    with pytest.raises(accounts.InvalidToken):
        accounts.change_password(db.directory, 'alice@example.com',
                                 'wrong one!!', 'new password 1')
    with pytest.raises(accounts.WeakPassword):
        accounts.change_password(db.directory, 'alice@example.com', PASSWORD,
                                 'short')
    accounts.change_password(db.directory, 'alice@example.com', PASSWORD,
                             'new password 1')
    assert passwords.verify_password(db.passwd()['alice@example.com'][1],
                                    'new password 1')


def test_command_line_reads_secrets_from_stdin(db, capsys):
    database = db.update([account('_a', 'alice@example.com')])
    token = database.published['_a']['token']
    run = main
    assert run(['set-password', db.directory, 'alice@example.com'],
               io.StringIO('%s\nshort\n' % token)) == 5
    assert run(['set-password', db.directory, 'alice@example.com'],
               io.StringIO('%s\n%s\n' % (token, PASSWORD))) == 0
    assert run(['change-password', db.directory, 'alice@example.com'],
               io.StringIO('wrong password\nnew password 1\n')) == 4
    assert run(['change-password', db.directory, 'bob@example.com'],
               io.StringIO('%s\nnew password 1\n' % PASSWORD)) == 3
    assert run(['change-password', db.directory, 'alice@example.com'],
               io.StringIO('%s\nnew password 1\n' % PASSWORD)) == 0
    assert run(['set-password', db.directory], io.StringIO('')) == 2
    err = capsys.readouterr().err
    assert PASSWORD not in err and token not in err
    assert 'at least 8 characters' in err


def test_destroy_moves_the_mail_aside_and_reclaim_starts_empty(db):
    first = db.update([account('_a', 'alice@example.com')], now=1_800_000_000)
    accounts.set_password(db.directory, 'alice@example.com',
                          first.published['_a']['token'], PASSWORD,
                          now=1_800_000_000)
    home = os.path.join(db.mail, 'example.com', 'alice')
    os.makedirs(os.path.join(home, 'Maildir', 'new'))
    with open(os.path.join(home, 'Maildir', 'new', '1.msg'), 'w') as f:
        f.write('private')
    db.update([], now=1_800_000_000)
    # login and delivery stop at once
    for name in ('passwd', 'mailboxes', 'senders'):
        assert 'alice@example.com' not in db.read(name)
    assert not os.path.exists(home)
    aside = os.path.join(db.mail, '.removed',
                         'alice@example.com-20270115T080000Z')
    assert open(os.path.join(aside, 'Maildir', 'new', '1.msg')).read() == (
        'private')
    second = db.update([account('_b', 'alice@example.com')])
    assert not os.path.exists(home)
    assert db.passwd()['alice@example.com'][1] == passwords.NO_PASSWORD
    assert second.published['_b']['token']
    with pytest.raises(accounts.InvalidToken):
        accounts.set_password(db.directory, 'alice@example.com',
                              first.published['_a']['token'], PASSWORD)


def test_destroy_and_reclaim_in_one_run(db):
    db.update([account('_a', 'alice@example.com'),
               account('_b', 'alice@example.com')])
    home = os.path.join(db.mail, 'example.com', 'alice')
    os.makedirs(home)
    database = db.update([account('_b', 'alice@example.com')])
    assert database.accounts['alice@example.com']['reference'] == '_b'
    assert not os.path.exists(home)
    assert len(os.listdir(os.path.join(db.mail, '.removed'))) == 1


def test_write_is_atomic(db, monkeypatch):
    db.update([account('_a', 'alice@example.com')])
    before = db.read('passwd')
    database = decide(DOMAINS, [], accounts.read_state(db.directory),
                               1024, False, time.time(), URL)

    def fail(*args):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'fsync', fail)
    with pytest.raises(OSError):
        accounts.write(db.directory, db.mail, database)
    assert db.read('passwd') == before
    assert not [n for n in os.listdir(db.directory) if n.startswith('.p')]


def test_write_syncs_before_renaming(db, monkeypatch):
    events = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, 'fsync',
                        lambda fd: events.append('fsync') or real_fsync(fd))
    monkeypatch.setattr(os, 'rename', lambda a, b: events.append(
        'rename ' + os.path.basename(b)) or real_rename(a, b))
    db.update([account('_a', 'alice@example.com')])
    assert events[:2] == ['fsync', 'rename passwd']
    assert events[-3:] == ['rename state.json', 'fsync',
                           'rename decided.json']


def test_what_makes_a_run_decide_again(db):
    """A run given what the last one was, with the state and the files as
    it left them, decides nothing (None) and writes nothing; any of these
    changed, it decides and writes again."""
    now = 1_800_000_000
    shared = [account('_a', 'alice@example.com')]
    first = db.update(shared, now=now)
    token = first.published['_a']['token']
    written = db.identities()
    assert db.update(shared, now=now + 60) is None
    assert db.identities() == written
    # another input
    assert db.update(shared, now=now + 60, domains=DOMAINS[:1]) is not None
    assert db.update(shared, now=now + 60) is not None
    assert db.update(shared, now=now + 60) is None
    assert db.published()['_a']['token'] == token
    # a file removed or changed by hand is written again
    os.unlink(os.path.join(db.directory, 'passwd'))
    assert db.update(shared, now=now + 60) is not None
    assert 'alice@example.com' in db.passwd()
    with open(os.path.join(db.directory, 'aliases'), 'a') as f:
        f.write('x@example.com alice@example.com\n')
    assert db.update(shared, now=now + 60) is not None
    assert 'x@example.com' not in db.read('aliases')
    # a damaged record of the last run: decided again
    for damaged in ('{', '[]'):
        with open(os.path.join(db.directory, 'decided.json'), 'w') as f:
            f.write(damaged)
        assert db.update(shared, now=now + 60) is not None
    # the setup token expires: a new one is drawn and published
    later = now + passwords.TOKEN_LIFETIME
    assert db.update(shared, now=later - 1) is None
    again = db.update(shared, now=later)
    assert again.published['_a']['token'] != token
    assert db.published()['_a']['token'] == again.published['_a']['token']
    # a password set between two runs (the state changed)
    accounts.set_password(db.directory, 'alice@example.com',
                          again.published['_a']['token'], PASSWORD, now=later)
    assert db.update(shared, now=later) is not None
    assert db.update(shared, now=later + passwords.TOKEN_LIFETIME) is None


def test_a_new_version_of_the_code_decides_again(db, monkeypatch):
    shared = [account('_a', 'alice@example.com')]
    db.update(shared)
    assert db.update(shared) is None
    monkeypatch.setattr(accounts, '_code_digest', lambda: 'another version')
    assert db.update(shared) is not None


def test_damaged_state_fails_loudly(db):
    db.update([])
    with open(os.path.join(db.directory, 'state.json'), 'w') as f:
        f.write('{')
    with pytest.raises(ValueError, match='state.json is damaged'):
        db.update([])


def _set_password_in_child(directory, token, go, queue):
    go.wait(30)
    accounts.set_password(directory, 'alice@example.com', token, PASSWORD)
    queue.put('done')


def _update_in_child(directory, mail, shared, count):
    for _ in range(count):
        accounts.update(directory, mail, DOMAINS, shared, 1024, False, URL)


def test_set_password_waits_for_the_lock(db):
    database = db.update([account('_a', 'alice@example.com')])
    context = multiprocessing.get_context('spawn')
    queue, go = context.Queue(), context.Event()
    # a new process (not a fork of this one, which may hold locks)
    child = context.Process(target=_set_password_in_child, args=(
        db.directory, database.published['_a']['token'], go, queue),
        daemon=True)
    child.start()
    with accounts.locked(db.directory):
        go.set()
        time.sleep(0.5)
        assert queue.empty()
        # a buildout run holding the lock decides and writes
        state = accounts.read_state(db.directory)
        accounts._write_locked(db.directory, db.mail, decide(
            DOMAINS, [account('_a', 'alice@example.com')], state, 1024, False,
            time.time(), URL), time.time())
    child.join(30)
    assert queue.get(timeout=5) == 'done'
    assert passwords.verify_password(db.passwd()['alice@example.com'][1],
                                    PASSWORD)


def test_concurrent_updates_never_lose_a_password(db):
    shared = [account('_a', 'alice@example.com')] + [
        account('_%d' % i, 'user%d@example.org' % i) for i in range(200)]
    database = db.update(shared)
    context = multiprocessing.get_context('spawn')
    updater = context.Process(target=_update_in_child, args=(
        db.directory, db.mail, shared, 15), daemon=True)
    updater.start()
    time.sleep(0.05)
    accounts.set_password(db.directory, 'alice@example.com',
                          database.published['_a']['token'], PASSWORD)
    updater.join(60)
    assert updater.exitcode == 0
    assert passwords.verify_password(db.passwd()['alice@example.com'][1],
                                    PASSWORD)
    db.update(shared)
    assert 'token' not in db.published()['_a']


def test_recipe(db, tmp_path):
    # the shared instances, reset tokens included, come from the
    # partition's parameters file, not from an option
    parameters = tmp_path / 'parameters.json'
    parameters.write_text(json.dumps({'valid-shared-instance-list': [
        account('_a', 'alice@example.com'),
        account('_b', 'alice@example.com')]}))
    buildout = {'slap-configuration': {'parameters-file': str(parameters)}}
    options = {
        'directory': db.directory, 'mail-directory': db.mail,
        'domains': 'example.com example.org', 'default-quota': '100',
        'test-account': 'true', 'password-url': URL,
    }
    recipe = Recipe(buildout, 'accounts', options)
    # computing the options writes nothing
    assert not os.path.exists(db.directory)
    assert options['passwd-file'] == os.path.join(db.directory, 'passwd')
    assert recipe.install() == []
    with open(options['published-file']) as f:
        published = json.load(f)
    assert published['_a']['token']
    assert published['_b']['error'].startswith('address_already_used')
    assert published['_a']['token'] not in json.dumps(options)
    for option in ('mailboxes-map', 'aliases-map', 'senders-map',
                   'suspended-map', 'suspended-transport-map',
                   'domains-file', 'published-file'):
        assert os.path.exists(options[option]), option
    # a password set between two runs is kept
    accounts.set_password(db.directory, 'alice@example.com',
                          published['_a']['token'], PASSWORD)
    assert recipe.update() == []
    assert passwords.verify_password(db.passwd()['alice@example.com'][1],
                                    PASSWORD)
    assert 'storage=100M' in db.read('passwd')
    # the postmaster: by default the first domain's, a mailbox nobody logs
    # in to, and postmaster@ the other domains reaches it
    assert db.passwd()['postmaster@example.com'][1] == passwords.NO_PASSWORD
    assert 'postmaster@example.org postmaster@example.com' in \
        db.lines('aliases')
    # a postmaster that is no address names the parameter
    from zc.buildout import UserError
    with pytest.raises(UserError) as refused:
        Recipe(buildout, 'accounts', dict(options, postmaster='admin'))
    assert str(refused.value).startswith("postmaster 'admin' is not an "
                                         "address")


def test_the_senders_map_reads_back(db):
    db.update([account('_a', 'alice@example.com'),
               account('_b', 'bob@example.com'),
               alias('_t', 'team@example.com', 'alice@example.com',
                     'bob@example.com')])
    path = os.path.join(db.directory, 'senders')
    assert accounts.read_senders(path) == {
        'alice@example.com': ['alice@example.com'],
        'bob@example.com': ['bob@example.com'],
        'team@example.com': ['alice@example.com', 'bob@example.com']}
    assert accounts.read_senders(path + '.none') == {}

