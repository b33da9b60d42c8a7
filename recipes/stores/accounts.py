"""The account and alias database of a mail backend: plain text files, the
single source for Postfix and Dovecot, read and written by this module only
(the buildout recipe, the password page and the webmail's password change
all go through it).

``update`` locks the directory, reads the state, decides
(``recipes.decisions.accounts.decide``) and writes: that is what buildout
runs. ``set_password`` and ``change_password`` take the same lock, so a
password set while buildout runs is never lost.

# Format

Files in the database directory (all 0600, written atomically under the
exclusive lock ``.lock``):

  state.json   the source of truth (below); every other file derives from it
  passwd       Dovecot passwd-file, its passdb and userdb (``dovecot.conf``),
               one account a line, fields separated by ``:``:
                 user:{SCHEME}hash::::HOME::EXTRA FIELDS
               1 the full address (auth_username_format keeps the domain);
               2 ``{SHA512-CRYPT}$6$...``, or ``{SHA512-CRYPT}!`` for an
                 account without a password yet, which no password matches;
               3 uid, 4 gid, 5 gecos: empty (every mailbox belongs to the
                 partition's user: mail_uid/mail_gid apply);
               6 the home, ``<mail directory>/<domain>/<local part>``;
               7 shell: empty;
               8 space-separated extra fields:
                 ``userdb_quota_rule=*:storage=<N>M``, the quota in MiB;
                 ``allow_nets=::/128 nologin=y reason=Account-suspended`` for
                 a suspended account: allow_nets=::/128 (the unspecified
                 address, never a client's) makes the auth server itself
                 fail every authentication, whatever the protocol (IMAP,
                 POP3, ManageSieve, and Postfix's SMTP AUTH, whose Dovecot
                 SASL client ignores nologin); nologin and reason are a
                 second barrier for the login processes. The userdb ignores
                 these passdb fields, so LMTP still delivers to a suspended
                 account: Postfix defers its mail (``suspended`` below).
                 alice@example.com:{SHA512-CRYPT}$6$...::::/srv/mail/example.com/alice::userdb_quota_rule=*:storage=1024M
  mailboxes    Postfix virtual_mailbox_maps (texthash): address -> Maildir
                 alice@example.com /srv/mail/example.com/alice/Maildir/
  aliases      Postfix virtual_alias_maps (texthash):
                 team@example.com alice@example.com, bob@example.org
                 @example.com postmaster@example.com
               in a domain with a catch-all, each account also maps to
               itself, so that the catch-all does not swallow its mail
  senders      Postfix smtpd_sender_login_maps (texthash): who may send as
               an address: an account itself, an alias the accounts it
               delivers to (catch-alls give no sending right)
                 team@example.com alice@example.com
  suspended    Postfix check_recipient_access (texthash):
                 bob@example.com 450 4.2.1 Mailbox temporarily suspended
  suspended-transports   Postfix transport_maps (texthash), for the mail
               that reaches a suspended account through an alias or a
               catch-all (accepted at RCPT for the alias): it waits in the
               deferred queue
                 bob@example.com retry:4.2.1 Mailbox temporarily suspended
  domains      the hosted domains, one a line
  published.json   what each shared instance gets published (holds the
               setup tokens): ``recipes.instance.publish`` reads it
  decided.json what the last ``update`` was given (a digest), when its
               first token expires, and the identity of each file above
               as it left them: a run given the same, before then, with
               the files untouched, has nothing to decide (``unchanged``)

state.json:

  {"version": 1,
   "claims": {"alice@example.com": "<reference>",
              "@example.com": "<reference>",
              "testmail@example.com": null},     (null: the test account)
   "accounts": {"alice@example.com": {
       "reference": "<reference>", "created": <unix time>,
       "password": "{SHA512-CRYPT}$6$..." or null,
       "password-set": <unix time> or null,
       "setup-token": "<clear token>",     (only while it is valid and no
                                            password is set: re-published)
       "tokens": [{"kind": "setup" or "reset", "hash": "<sha256 hex>",
                   "expires": <unix time>}],
       "reset-seen": ["<sha256 hex>", ...]}}}

When a claim is released, the account's home is moved aside to
``<mail-directory>/.removed/<address>-<UTC time>`` (kept, not deleted).

# Writing

Every file but state.json is rendered from the decided database
(``render``); the passwd line has one formatter (``passwd_text``) and one
parser (``parse_passwd_line``), so that a password set between two runs
rewrites the same format.
"""
import contextlib
import dataclasses
import fcntl
import functools
import gc
import glob
import hashlib
import hmac
import json
import marshal
import os
import time

from ..decisions import passwords
from ..decisions.accounts import decide, home_of, password_restores
from ..decisions.names import domain_of
from ..decisions.passwords import (AccountError, InvalidToken, UnknownUser,
                                   WeakPassword)
from .files import read_json, write_atomically

__all__ = ['AccountError', 'InvalidToken', 'UnknownUser', 'WeakPassword',
           'WRONG_TOKEN',
           'FILES', 'update', 'write', 'set_password', 'change_password',
           'read_state', 'read_senders', 'locked', 'render', 'snapshot',
           'read_snapshot', 'restore_passwords']

SUSPENSION = 'allow_nets=::/128 nologin=y reason=Account-suspended'
SUSPENDED_REPLY = '450 4.2.1 Mailbox temporarily suspended'
# Postfix's retry transport defers with the status and text of its next hop
SUSPENDED_TRANSPORT = 'retry:' + SUSPENDED_REPLY.split(' ', 1)[1]
QUOTA_FIELD = 'userdb_quota_rule=*:storage='
SUSPENDED_FIELD = ' ' + SUSPENSION

FILES = {
    'passwd-file': 'passwd',
    'mailboxes-map': 'mailboxes',
    'aliases-map': 'aliases',
    'senders-map': 'senders',
    'suspended-map': 'suspended',
    'suspended-transport-map': 'suspended-transports',
    'domains-file': 'domains',
    'published-file': 'published.json',
}
STATE_FILE = 'state.json'
DECIDED_FILE = 'decided.json'
LOCK_FILE = '.lock'
REMOVED_DIRECTORY = '.removed'


# --- the passwd line ----------------------------------------------------------

@dataclasses.dataclass
class PasswdEntry:
    address: str
    password: str       # with its scheme prefix; NO_PASSWORD when none
    home: str           # absolute
    quota: int          # MiB
    suspended: bool


def passwd_line(entry):
    """``user:password:uid:gid:gecos:home:shell:extra fields`` (# Format)."""
    return passwd_text(entry.address, entry.password, entry.home,
                       entry.quota, entry.suspended)


def passwd_text(address, password, home, quota, suspended):
    """``passwd_line`` of the fields: what ``render`` writes 100,000 times
    without making an entry of each."""
    return '%s:%s::::%s::%s%dM%s' % (address, password, home, QUOTA_FIELD,
                                     quota, SUSPENDED_FIELD if suspended
                                     else '')


def parse_passwd_line(line):
    """The ``PasswdEntry`` of a line ``passwd_line`` wrote."""
    address, password, _, _, _, home, _, extra = line.split(':', 7)
    quota, _, rest = extra.partition(' ')
    return PasswdEntry(address, password, home,
                       int(quota[len(QUOTA_FIELD):-1]), rest == SUSPENSION)


# --- rendering ------------------------------------------------------------------

def render(mail_directory, database):
    """``{file name: text}`` of every file the database is made of, but
    ``state.json``."""
    accounts, aliases = database.accounts, dict(database.aliases)
    ordered = sorted(accounts)
    suspended = [a for a in ordered if accounts[a]['suspended']]
    catch_all_domains = {key[1:] for key in aliases if key.startswith('@')}
    if catch_all_domains:
        for address in ordered:
            if domain_of(address) in catch_all_domains:
                aliases.setdefault(address, [address])
    prefix = os.path.join(mail_directory, '')
    homes = [prefix + accounts[a]['home'] for a in ordered]

    def lines(items):
        items = list(items)
        return '\n'.join(items) + '\n' if items else ''

    return {
        'passwd': lines(passwd_text(
            a, account.get('password') or passwords.NO_PASSWORD, home,
            account['quota'], account['suspended'])
            for a, account, home in zip(ordered, map(accounts.get, ordered),
                                        homes)),
        'mailboxes': lines('%s %s/Maildir/' % item
                           for item in zip(ordered, homes)),
        'aliases': lines('%s %s' % (key, ', '.join(aliases[key]))
                         for key in sorted(aliases)),
        'senders': lines('%s %s' % (key, ', '.join(database.senders[key]))
                         for key in sorted(database.senders)),
        'suspended': lines('%s %s' % (a, SUSPENDED_REPLY)
                           for a in suspended),
        'suspended-transports': lines('%s %s' % (a, SUSPENDED_TRANSPORT)
                                      for a in suspended),
        'domains': lines(database.domains),
        'published.json': dump(database.published),
    }


def dump(value):
    # without indent: the json module's C encoder (ten times as fast for
    # the state of 100,000 accounts); the keys in the order the decision
    # made them, the same from one run to the next (sorting them took 40%
    # of the time); no check for cycles, which a decision has none of (a
    # fifth of the rest)
    return json.dumps(value, separators=(',', ':'),
                      check_circular=False) + '\n'


def read_senders(path):
    """The ``senders`` map ``render`` wrote, as ``{address: [logins]}``
    (``{}`` before the first write): for the check of the From header
    (``recipes.programs.relay_policy``)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    senders = {}
    for line in text.splitlines():
        address, _, logins = line.partition(' ')
        senders[address] = [login.strip() for login in logins.split(',')]
    return senders


# --- the directory, locked ---------------------------------------------------

@contextlib.contextmanager
def locked(directory):
    """Exclusive lock over the database directory (``directory/.lock``)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, LOCK_FILE),
                 os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_state(directory):
    """The state, ``{}`` when there is none yet. A damaged state fails
    loudly: guessing would hand addresses to the wrong shared instances."""
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ValueError('%s is damaged (%s): restore it from a backup; '
                         'it holds who owns each address' % (path, e))


def move_aside(mail_directory, address, now):
    """Move an account's home to ``.removed/<address>-<UTC time>``; return
    the new path (None when there was no home)."""
    source = os.path.join(mail_directory, home_of(address))
    if not os.path.exists(source):
        return None
    aside = os.path.join(mail_directory, REMOVED_DIRECTORY)
    os.makedirs(aside, mode=0o700, exist_ok=True)
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))
    target = os.path.join(aside, '%s-%s' % (address, stamp))
    suffix = 0
    while os.path.exists(target):
        suffix += 1
        target = os.path.join(aside, '%s-%s.%d' % (address, stamp, suffix))
    os.rename(source, target)
    return target


def _write_locked(directory, mail_directory, database, now, state=None):
    # the files first (login and delivery of removed accounts stop), then
    # the homes, then the state: after a crash, the next run finds the old
    # claims and moves the homes aside again. What did not change is not
    # written again (``state``: the state read before deciding): a run
    # that changed nothing rewrites nothing, and the daemons that read
    # these files see no change.
    for name, text in render(mail_directory, database).items():
        write_if_changed(os.path.join(directory, name), text)
    for removed in database.removed:
        move_aside(mail_directory, removed['address'], now)
    if database.state != state:
        write_atomically(os.path.join(directory, STATE_FILE),
                         dump(database.state))


def write_if_changed(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    write_atomically(path, text)


def write(directory, mail_directory, database, now=None):
    """Write ``database`` under the lock. The database must have been
    decided from the current state: use ``update``, which decides under the
    same lock, unless nothing else can write (a password set between the
    decision and this write would be lost)."""
    with locked(directory):
        _write_locked(directory, mail_directory, database,
                      time.time() if now is None else now)


def update(directory, mail_directory, domains, shared_instances,
           default_quota, test_account, password_url, now=None,
           postmaster=None):
    """Lock, read the state, decide, write; return the Database, or None
    when there was nothing to decide (``unchanged``)."""
    now = time.time() if now is None else now
    inputs = inputs_digest(mail_directory, domains, shared_instances,
                           default_quota, test_account, password_url,
                           postmaster)
    with locked(directory), without_garbage_collection():
        if unchanged(directory, inputs, now):
            return None
        state = read_state(directory)
        database = decide(domains, shared_instances, state, default_quota,
                          test_account, now, password_url, postmaster)
        _write_locked(directory, mail_directory, database, now, state)
        write_atomically(os.path.join(directory, DECIDED_FILE), dump({
            'inputs': inputs, 'valid-until': database.valid_until,
            'files': file_identities(directory)}))
    return database


# --- nothing to decide -------------------------------------------------------------

def inputs_digest(*inputs):
    """A digest of what ``decide`` is given but the state and the time, and
    of the code that decides and renders: a new version of it decides
    again. None when an input is not plain data (then every run decides).
    marshal's version 2 writes equal values the same way, however they
    were made (its later versions refer back to objects met before);
    reading the parameters file already cost more than this."""
    try:
        data = marshal.dumps((_code_digest(),) + inputs, 2)
    except ValueError:
        return None
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=None)
def _code_digest():
    digest = hashlib.sha256()
    decisions = os.path.dirname(passwords.__file__)
    for path in sorted(glob.glob(os.path.join(decisions, '*.py'))) + [
            __file__, write_atomically.__code__.co_filename]:
        with open(path, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()


def file_identities(directory):
    """``{file name: [inode, size, mtime in ns]}`` of the state and of the
    files rendered from it: every write of them is a rename, so that a
    password set, a restore or a hand's edit shows as another identity."""
    identities = {}
    for name in [STATE_FILE] + list(FILES.values()):
        try:
            info = os.stat(os.path.join(directory, name))
        except FileNotFoundError:
            continue
        identities[name] = [info.st_ino, info.st_size, info.st_mtime_ns]
    return identities


def unchanged(directory, inputs, now):
    """Whether the last update was given the same ``inputs``
    (``inputs_digest``), no token has expired since and the state and
    the files are as it left them: then deciding again would write the
    same files. At 100,000 accounts, what every periodic run of the
    instance costs here falls from over 2 s to 0.04 s."""
    decided = read_json(os.path.join(directory, DECIDED_FILE), {})
    if not isinstance(decided, dict):
        return False
    until = decided.get('valid-until')
    return (inputs is not None and decided.get('inputs') == inputs
            and (until is None or now < until)
            and decided.get('files') == file_identities(directory))


@contextlib.contextmanager
def without_garbage_collection():
    """Python's cycle collector off: deciding 100,000 accounts makes
    millions of dicts and lists, none in a cycle, and the collector, run
    again and again as they pile up, took a third of the time. What is
    left of them when it is on again goes to its permanent generation
    (``gc.freeze``): its first collection would go through all of them
    at once (a sixth of a second); reference counting frees them as
    ever."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


# --- passwords ------------------------------------------------------------------

def _set_hash(directory, address, state, password, now):
    """Store a new password hash of ``address``."""
    _take_hashes(directory, state, {address: {
        'password': passwords.hash_password(password),
        'password-set': int(now)}})


def _take_hashes(directory, state, hashes):
    """Give the accounts of ``hashes`` (address -> {password,
    password-set, reset-seen}) their password: the state first (the
    source), then the passwd line of each active account, then their
    publication without the used setup link."""
    for address, fields in hashes.items():
        entry = state['accounts'][address]
        entry.update(fields)
        # a password set voids every outstanding token
        entry['tokens'] = []
        entry.pop('setup-token', None)
    write_atomically(os.path.join(directory, STATE_FILE), dump(state))
    path = os.path.join(directory, 'passwd')
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return
    for i, line in enumerate(lines):
        passwd = parse_passwd_line(line)
        if passwd.address in hashes:
            passwd.password = state['accounts'][passwd.address]['password']
            lines[i] = passwd_line(passwd)
    write_atomically(path, ''.join(line + '\n' for line in lines))
    published_path = os.path.join(directory, FILES['published-file'])
    if not os.path.exists(published_path):
        return
    with open(published_path) as f:
        published = json.load(f)
    changed = False
    for address in hashes:
        reference = state['accounts'][address]['reference']
        if reference is not None and reference in published:
            published[reference] = {'address': address}
            changed = True
    if changed:
        write_atomically(published_path, dump(published))


WRONG_TOKEN = 'this token is wrong or was already used'


def _account(state, address):
    entry = state.get('accounts', {}).get(address)
    if entry is None:
        raise UnknownUser('there is no account %s' % address)
    return entry


def set_password(directory, address, token, password, now=None):
    """Set the password of ``address`` with a valid one-time token (setup or
    reset). Raises UnknownUser, InvalidToken (wrong, used or expired) or
    WeakPassword; the token is used only when the password is set."""
    now = time.time() if now is None else now
    address = address.strip().lower()
    with locked(directory):
        state = read_state(directory)
        entry = _account(state, address)
        digest = passwords.token_hash(address, token)
        match = next((t for t in entry.get('tokens', [])
                      if hmac.compare_digest(t['hash'], digest)), None)
        if match is None:
            raise InvalidToken(WRONG_TOKEN)
        if match['expires'] <= now:
            raise InvalidToken('this token has expired; ask for a new one')
        passwords.check_password(address, password)
        _set_hash(directory, address, state, password, now)


def change_password(directory, address, old_password, new_password, now=None):
    """Change the password of ``address`` given its current password (the
    webmail). Raises UnknownUser, InvalidToken (wrong current password) or
    WeakPassword."""
    now = time.time() if now is None else now
    address = address.strip().lower()
    with locked(directory):
        state = read_state(directory)
        entry = _account(state, address)
        if not passwords.verify_password(entry.get('password'), old_password):
            raise InvalidToken('the current password is wrong')
        passwords.check_password(address, new_password)
        _set_hash(directory, address, state, new_password, now)


# --- backups ----------------------------------------------------------------------

def snapshot(directory, target):
    """Copy the database's source of truth (``state.json``: who owns each
    address, the password hashes) into the directory ``target``, under the
    lock: a password set meanwhile is in the copy or after it, never half.
    The other files derive from it."""
    os.makedirs(target, mode=0o700, exist_ok=True)
    with locked(directory):
        state = read_state(directory)
    write_atomically(os.path.join(target, STATE_FILE), dump(state))
    return state


def read_snapshot(target):
    """The state a ``snapshot`` copied into ``target``."""
    return read_state(target)


def restore_passwords(directory, snapshot_state):
    """Give the accounts that have no password yet the password they had in
    ``snapshot_state`` (a fresh instance of the same domains: the same
    shared instances ask for the same addresses); never replace a password
    set here. Returns what was restored and what was not, and why
    (``recipes.decisions.accounts.password_restores``)."""
    with locked(directory):
        state = read_state(directory)
        restores, said = password_restores(state, snapshot_state)
        if restores:
            _take_hashes(directory, state, restores)
    return sorted(restores), said
