"""The account and alias database of a mail backend: plain text files, the
single source for Postfix and Dovecot, read and written by this module only
(the buildout recipe, the password page and the webmail's password change
all go through it).

``decide`` turns the shared instances into a ``Database`` (pure, no I/O);
``update`` locks the directory, reads the state, decides and writes: that is
what buildout runs. ``set_password`` and ``change_password`` take the same
lock, so a password set while buildout runs is never lost.

Files in the database directory (all 0600, written atomically under the
exclusive lock ``.lock``):

  state.json   the source of truth (below); every other file derives from it
  passwd       Dovecot passwd-file, passdb and userdb (format: header of
               ``dovecot.conf.in``):
                 alice@example.com:{SHA512-CRYPT}$6$...::::/srv/mail/example.com/alice::userdb_quota_rule=*:storage=1024M
               an account without a password yet has the hash ``!``, which
               no password matches (``{SHA512-CRYPT}!``); a suspended one
               gets ``allow_nets=::/128 nologin=y reason=Account-suspended``
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
               setup tokens)

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

An address (or ``@domain``) belongs to the shared instance that claimed it
first, for as long as that shared instance exists and asks for it; the
claims are kept in the state so that re-ordering the list moves nothing.
When a claim is released, the account's home is moved aside to
``<mail-directory>/.removed/<address>-<UTC time>`` (kept, not deleted).
"""
import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
import urllib.parse

from passlib.hash import sha512_crypt

from .files import write_atomically

TEST_LOCAL_PART = 'testmail'
TEST_PASSWORD = 'password123'
HASH_PREFIX = '{SHA512-CRYPT}'
# no password matches it: Dovecot's crypt of any password never gives '!'
NO_PASSWORD = HASH_PREFIX + '!'
TOKEN_LIFETIME = 7 * 24 * 3600
MIN_PASSWORD_LENGTH = 10
# sha512-crypt costs rounds x length: bound it
MAX_PASSWORD_LENGTH = 256
SUSPENSION = 'allow_nets=::/128 nologin=y reason=Account-suspended'
SUSPENDED_REPLY = '450 4.2.1 Mailbox temporarily suspended'
# Postfix's retry transport defers with the status and text of its next hop
SUSPENDED_TRANSPORT = 'retry:' + SUSPENDED_REPLY.split(' ', 1)[1]
STATE_VERSION = 1

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
LOCK_FILE = '.lock'
REMOVED_DIRECTORY = '.removed'


class AccountError(Exception):
    """A refused password operation; the message is safe to show (it never
    contains a password or a token)."""


class UnknownUser(AccountError):
    pass


class InvalidToken(AccountError):
    """Wrong, used or expired token (or wrong current password)."""


class WeakPassword(AccountError):
    pass


# --- passwords and tokens ---------------------------------------------------

def hash_password(password):
    """A hash Dovecot verifies (SHA512-CRYPT), with its scheme prefix."""
    return HASH_PREFIX + sha512_crypt.hash(password)


def verify_password(stored, password):
    if not stored or not stored.startswith(HASH_PREFIX) or stored == NO_PASSWORD:
        return False
    try:
        return sha512_crypt.verify(password, stored[len(HASH_PREFIX):])
    except ValueError:
        return False


def new_token():
    """32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(address, token):
    """A fast hash is enough for a random token; the address salts it, so
    that a reset token reused for another account hashes differently."""
    return hashlib.sha256(
        ('%s\0%s' % (address, token)).encode('utf-8')).hexdigest()


def check_password(address, password):
    """Raise WeakPassword with the reason, or return None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword('the password must have at least %d characters'
                           % MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword('the password must have at most %d characters'
                           % MAX_PASSWORD_LENGTH)
    if any(c in password for c in '\0\r\n'):
        raise WeakPassword('the password must not contain a line break '
                           'or a NUL character')
    lowered = password.lower()
    if lowered in (address.lower(), address.lower().split('@')[0]):
        raise WeakPassword('the password must not be the address')


# --- addresses ----------------------------------------------------------------

# RFC 5321 atext less '/' and '%': the local part is a directory name of the
# mail store, and Dovecot would read '%' as a variable.
_ATOM = r"[a-z0-9!#$&'*+=?^_`{|}~-]+"
_LOCAL_PART = re.compile(r'%s(\.%s)*\Z' % (_ATOM, _ATOM))
_LABEL = re.compile(r'[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z')


def domain_error(domain):
    """Why ``domain`` (lowercase) is not a domain name, or None."""
    labels = domain.split('.')
    if len(domain) > 253 or len(labels) < 2:
        return 'its domain must be a fully qualified domain name'
    for label in labels:
        if not _LABEL.match(label):
            return ('its domain has an invalid label %r (letters, digits and '
                    'inner hyphens, at most 63)' % label)
    if labels[-1].isdigit():
        return 'its domain must not end with a numeric label'
    return None


def normalise_address(text):
    """``(address in lowercase, None)`` or ``(None, why it is invalid)``:
    RFC 5321 dot-atom local part (at most 64 characters) and domain name,
    at most 254 characters in all."""
    address = text.strip().lower()
    local, at, domain = address.rpartition('@')
    if not at or not local:
        return None, 'it must be local-part@domain'
    if len(address) > 254:
        return None, 'it is longer than 254 characters'
    if len(local) > 64:
        return None, 'its local part is longer than 64 characters'
    if not _LOCAL_PART.match(local):
        return None, ("its local part must be letters, digits and "
                      "!#$&'*+=?^_`{|}~- in dot-separated atoms (no / nor %, "
                      "no leading, trailing or double dot)")
    if local.startswith('#'):
        return None, 'its local part must not start with #'
    why = domain_error(domain)
    if why:
        return None, why
    return address, None


def domain_of(address):
    return address.rpartition('@')[2]


def home_of(address):
    """The home, relative to the mail directory: ``<domain>/<local part>``."""
    local, _, domain = address.rpartition('@')
    return '%s/%s' % (domain, local)


# --- decisions -------------------------------------------------------------------

@dataclasses.dataclass
class Database:
    domains: list
    # address -> {reference, quota, suspended, home, password}
    accounts: dict
    # alias or @domain -> [destinations]
    aliases: dict
    # address -> [logins that may send as it]
    senders: dict
    # reference -> message
    errors: dict
    # reference -> connection parameters
    published: dict
    # the new state (JSON-serialisable)
    state: dict
    # [{address, home}] of the accounts whose claim was released this time:
    # ``write`` moves their homes aside
    removed: list


def _find_loops(graph):
    """The cycles of ``graph`` (node -> [nodes]), each as a list of nodes
    ``[a, b, ..., a]``: one per strongly connected component that loops
    (Tarjan, iterative)."""
    index, low, on_stack, stack, loops = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        loops.append(_cycle_through(graph, set(component)))
    return loops


def _cycle_through(graph, component):
    """One cycle within ``component``, starting at its smallest node."""
    start = min(component)
    path, seen, node = [start], {start}, start
    while True:
        following = sorted(n for n in graph[node] if n in component)
        if start in following:
            return path + [start]
        node = next((n for n in following if n not in seen), following[0])
        if node in seen:
            return path[path.index(node):] + [node]
        path.append(node)
        seen.add(node)


def decide(domains, shared_instances, state, default_quota, test_account,
           now, password_url=''):
    """The database for the shared instances (``[{reference, parameters}]``
    in the master's order) given the previous ``state`` (``{}`` the first
    time). ``now`` is a Unix time. No I/O; tokens are drawn at random."""
    now = int(now)
    domains = [d.lower() for d in domains]
    hosted = set(domains)
    old_claims = dict(state.get('claims', {}))
    old_accounts = state.get('accounts', {})
    errors = {}

    # 1. what each claimant asks for: (reference, key, kind, parameters)
    requests = []
    if test_account:
        for domain in domains:
            requests.append((None, '%s@%s' % (TEST_LOCAL_PART, domain),
                             'account', {}))
    for shared in shared_instances:
        reference, parameters = shared['reference'], shared['parameters']
        if 'alias' in parameters:
            raw = parameters['alias']
            if raw.startswith('@'):
                key = raw.strip().lower()
                why = domain_error(key[1:])
                if why:
                    errors[reference] = ('invalid_address: the catch-all %s '
                                         'is invalid: %s' % (raw, why))
                    continue
            else:
                key, why = normalise_address(raw)
                if why:
                    errors[reference] = ('invalid_address: the alias %s is '
                                         'invalid: %s' % (raw, why))
                    continue
            requests.append((reference, key, 'alias', parameters))
        elif 'address' in parameters:
            key, why = normalise_address(parameters['address'])
            if why:
                errors[reference] = ('invalid_address: the address %s is '
                                     'invalid: %s'
                                     % (parameters['address'], why))
                continue
            requests.append((reference, key, 'account', parameters))
        else:
            errors[reference] = ('invalid_parameters: give either address '
                                 '(an account) or alias and destinations')

    # 2. claims: kept while the claimant exists and asks for the same key;
    # new keys go to the first claimant in the list
    asked = {(reference, key) for reference, key, _, _ in requests}
    claims = {key: reference for key, reference in old_claims.items()
              if (reference, key) in asked}
    # the kind (account or alias) of each key's owner
    kinds = {key: kind for reference, key, kind, _ in requests
             if key in claims and claims[key] == reference}
    outside = ('address_outside_domains: %%s is not in a domain of this '
               'server (%s); use one of them' % ', '.join(domains))
    owned = []
    for reference, key, kind, parameters in requests:
        if key not in claims:
            if domain_of(key) not in hosted:
                errors[reference] = outside % key
                continue
            claims[key] = reference
            kinds[key] = kind
        if claims[key] != reference:
            if reference is None:
                # a shared instance already owns testmail@<domain>
                continue
            if kind == 'alias' and kinds.get(key) == 'account':
                errors[reference] = (
                    'alias_shadows_account: the alias %s would shadow the '
                    'account %s; choose another alias' % (key, key))
            else:
                errors[reference] = (
                    'address_already_used: %s is already used by another '
                    '%s on this server; choose another address'
                    % (key, 'account' if kinds.get(key) == 'account'
                       else 'alias'))
            continue
        if domain_of(key) not in hosted:
            # claimed before its domain was removed: kept, but inactive
            errors[reference] = outside % key
            continue
        owned.append((reference, key, kind, parameters))

    # 3. accounts, with their state (password, tokens)
    accounts_state, accounts, published, removed = {}, {}, {}, []
    for address, entry in old_accounts.items():
        if (claims.get(address, False) == entry['reference']
                and kinds.get(address) == 'account'):
            accounts_state[address] = entry
        else:
            removed.append({'address': address, 'home': home_of(address)})
    for reference, key, kind, parameters in owned:
        if kind != 'account':
            continue
        entry = accounts_state.get(key)
        entry = dict(entry) if entry else {
            'reference': reference, 'created': now, 'password': None,
            'password-set': None, 'tokens': [], 'reset-seen': []}
        if reference is None and not entry['password']:
            entry['password'] = hash_password(TEST_PASSWORD)
        _refresh_tokens(entry, key, parameters.get('reset-token'), now,
                        reference is not None)
        accounts_state[key] = entry
        accounts[key] = {
            'reference': reference,
            'quota': int(parameters.get('quota') or default_quota),
            'suspended': bool(parameters.get('suspended', False)),
            'home': home_of(key),
            'password': entry['password'],
        }
        if reference is not None:
            published[reference] = {'address': key}
            if entry.get('setup-token'):
                token = entry['setup-token']
                published[reference]['token'] = token
                published[reference]['setup-url'] = '%s?%s' % (
                    password_url,
                    urllib.parse.urlencode({'user': key, 'token': token}))

    # 4. aliases
    aliases = {}
    for reference, key, kind, parameters in owned:
        if kind != 'alias':
            continue
        destinations, problems = [], []
        for raw in parameters.get('destinations') or []:
            destination, why = normalise_address(raw)
            if why:
                problems.append('%s (%s)' % (raw, why))
            elif destination not in destinations:
                destinations.append(destination)
        if problems:
            errors[reference] = ('invalid_destination: %s: %s'
                                 % (key, '; '.join(problems)))
        elif not destinations:
            errors[reference] = ('empty_destinations: the alias %s has no '
                                 'destination; give at least one' % key)
        else:
            aliases[key] = (reference, destinations)
    graph = {key: [d for d in destinations if d in aliases]
             for key, (_, destinations) in aliases.items()}
    for loop in _find_loops(graph):
        for key in set(loop):
            errors[aliases[key][0]] = (
                'alias_loop: %s loops (%s); change one of these '
                'destinations' % (key, ' -> '.join(loop)))
        for key in set(loop):
            del aliases[key]
    # an alias to a local address must reach an account or a working alias
    changed = True
    while changed:
        changed = False
        for key, (reference, destinations) in list(aliases.items()):
            for destination in destinations:
                if (domain_of(destination) in hosted
                        and destination not in accounts
                        and destination not in aliases):
                    why = ('is an alias that has an error itself'
                           if kinds.get(destination) == 'alias' else
                           'is neither an account nor an alias of this server')
                    errors[reference] = (
                        'unknown_destination: %s: the destination %s %s'
                        % (key, destination, why))
                    del aliases[key]
                    changed = True
                    break
    for key, (reference, destinations) in aliases.items():
        published[reference] = {'alias': key,
                                'destinations': json.dumps(destinations)}
    parameters_of = {s['reference']: s['parameters']
                     for s in shared_instances}
    for reference, message in errors.items():
        published[reference] = {'error': message}
        parameters = parameters_of.get(reference, {})
        for name in ('address', 'alias'):
            if name in parameters:
                published[reference][name] = parameters[name]

    # 5. who may send as what
    senders = {address: [address] for address in accounts}
    resolved = _local_accounts(aliases, accounts)
    for key in aliases:
        if not key.startswith('@') and resolved[key]:
            senders[key] = resolved[key]

    return Database(
        domains=domains,
        accounts=accounts,
        aliases={key: destinations
                 for key, (_, destinations) in aliases.items()},
        senders=senders,
        errors=errors,
        published=published,
        state={'version': STATE_VERSION, 'claims': claims,
               'accounts': accounts_state},
        removed=removed)


def _local_accounts(aliases, accounts):
    """``{alias: [the local accounts it delivers to]}`` through alias chains
    (which no longer loop), depth first without recursion."""
    resolved = {}
    for root in aliases:
        stack = [root]
        while stack:
            key = stack[-1]
            if key in resolved:
                stack.pop()
                continue
            pending = [d for d in aliases[key][1]
                       if d in aliases and d not in resolved]
            if pending:
                stack.extend(pending)
                continue
            found = []
            for destination in aliases[key][1]:
                for login in ([destination] if destination in accounts else
                              resolved.get(destination, [])):
                    if login not in found:
                        found.append(login)
            resolved[key] = found
            stack.pop()
    return resolved


def _refresh_tokens(entry, address, reset_token, now, needs_setup):
    """Drop expired tokens; give an account without a password a setup token
    (a new one when the previous one expired unused); turn a reset-token
    value never seen for this account into a valid one-time token."""
    tokens = [t for t in entry.get('tokens', []) if t['expires'] > now]
    kinds = {t['kind'] for t in tokens}
    if 'setup' not in kinds:
        entry.pop('setup-token', None)
        if needs_setup and not entry['password']:
            token = new_token()
            entry['setup-token'] = token
            tokens.append({'kind': 'setup', 'hash': token_hash(address, token),
                           'expires': now + TOKEN_LIFETIME})
    if reset_token:
        digest = token_hash(address, reset_token)
        if digest not in entry.get('reset-seen', []):
            entry['reset-seen'] = entry.get('reset-seen', []) + [digest]
            tokens.append({'kind': 'reset', 'hash': digest,
                           'expires': now + TOKEN_LIFETIME})
    entry['tokens'] = tokens


# --- files -------------------------------------------------------------------------

def passwd_line(address, account, mail_directory):
    """``user:password:uid:gid:gecos:home:shell:extra fields``; uid and gid
    are left empty: every mailbox belongs to the partition's user."""
    extra = ['userdb_quota_rule=*:storage=%dM' % account['quota']]
    if account['suspended']:
        extra.append(SUSPENSION)
    return '%s:%s::::%s::%s' % (
        address, account.get('password') or NO_PASSWORD,
        os.path.join(mail_directory, account['home']), ' '.join(extra))


def render(mail_directory, database):
    """``{file name: text}`` of every file the database is made of, but
    ``state.json``."""
    accounts, aliases = database.accounts, dict(database.aliases)
    suspended = [a for a in sorted(accounts) if accounts[a]['suspended']]
    catch_all_domains = {key[1:] for key in aliases if key.startswith('@')}
    for address in accounts:
        if domain_of(address) in catch_all_domains:
            aliases.setdefault(address, [address])

    def lines(items):
        return ''.join(line + '\n' for line in items)

    return {
        'passwd': lines(passwd_line(a, accounts[a], mail_directory)
                        for a in sorted(accounts)),
        'mailboxes': lines('%s %s/Maildir/' % (
            a, os.path.join(mail_directory, accounts[a]['home']))
            for a in sorted(accounts)),
        'aliases': lines('%s %s' % (key, ', '.join(aliases[key]))
                         for key in sorted(aliases)),
        'senders': lines('%s %s' % (key, ', '.join(database.senders[key]))
                         for key in sorted(database.senders)),
        'suspended': lines('%s %s' % (a, SUSPENDED_REPLY)
                           for a in suspended),
        'suspended-transports': lines('%s %s' % (a, SUSPENDED_TRANSPORT)
                                      for a in suspended),
        'domains': lines(database.domains),
        'published.json': json.dumps(database.published, sort_keys=True,
                                     indent=1),
    }


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


def _write_locked(directory, mail_directory, database, now):
    # the files first (login and delivery of removed accounts stop), then
    # the homes, then the state: after a crash, the next run finds the old
    # claims and moves the homes aside again
    for name, text in render(mail_directory, database).items():
        write_atomically(os.path.join(directory, name), text)
    for removed in database.removed:
        move_aside(mail_directory, removed['address'], now)
    write_atomically(os.path.join(directory, STATE_FILE),
                     json.dumps(database.state, sort_keys=True, indent=1))


def write(directory, mail_directory, database, now=None):
    """Write ``database`` under the lock. The database must have been
    decided from the current state: use ``update``, which decides under the
    same lock, unless nothing else can write (a password set between the
    decision and this write would be lost)."""
    with locked(directory):
        _write_locked(directory, mail_directory, database,
                      time.time() if now is None else now)


def update(directory, mail_directory, domains, shared_instances,
           default_quota, test_account, password_url, now=None):
    """Lock, read the state, decide, write; return the Database."""
    now = time.time() if now is None else now
    with locked(directory):
        database = decide(domains, shared_instances, read_state(directory),
                          default_quota, test_account, now, password_url)
        _write_locked(directory, mail_directory, database, now)
    return database


def _set_hash(directory, address, entry, state, password, now):
    """Store a new password hash: the state first (the source), then the
    passwd line of the account when it is active."""
    entry['password'] = hash_password(password)
    entry['password-set'] = int(now)
    # a password set voids every outstanding token
    entry['tokens'] = []
    entry.pop('setup-token', None)
    write_atomically(os.path.join(directory, STATE_FILE),
                     json.dumps(state, sort_keys=True, indent=1))
    path = os.path.join(directory, 'passwd')
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return
    prefix = address + ':'
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            fields = line.split(':', 2)
            lines[i] = ':'.join([fields[0], entry['password'], fields[2]])
            write_atomically(path, ''.join(line + '\n' for line in lines))
            break
    # the published parameters no longer carry the used setup token
    published_path = os.path.join(directory, 'published.json')
    if entry['reference'] is not None and os.path.exists(published_path):
        with open(published_path) as f:
            published = json.load(f)
        if entry['reference'] in published:
            published[entry['reference']] = {'address': address}
            write_atomically(published_path,
                             json.dumps(published, sort_keys=True, indent=1))


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
        digest = token_hash(address, token)
        match = next((t for t in entry.get('tokens', [])
                      if hmac.compare_digest(t['hash'], digest)), None)
        if match is None:
            raise InvalidToken('this token is wrong or was already used')
        if match['expires'] <= now:
            raise InvalidToken('this token has expired; ask for a new one')
        check_password(address, password)
        _set_hash(directory, address, entry, state, password, now)


def change_password(directory, address, old_password, new_password, now=None):
    """Change the password of ``address`` given its current password (the
    webmail). Raises UnknownUser, InvalidToken (wrong current password) or
    WeakPassword."""
    now = time.time() if now is None else now
    address = address.strip().lower()
    with locked(directory):
        state = read_state(directory)
        entry = _account(state, address)
        if not verify_password(entry.get('password'), old_password):
            raise InvalidToken('the current password is wrong')
        check_password(address, new_password)
        _set_hash(directory, address, entry, state, new_password, now)


# --- command line (the webmail's password change) ------------------------------

EXIT_CODES = {UnknownUser: 3, InvalidToken: 4, WeakPassword: 5}
USAGE = """\
usage: python -m recipes.accounts set-password DIRECTORY ADDRESS
       python -m recipes.accounts change-password DIRECTORY ADDRESS
The secrets come on standard input, one a line, never in the arguments:
set-password: the token, then the new password; change-password: the current
password, then the new one. Exit 0 on success, 3 unknown user, 4 wrong token
or current password, 5 password refused (the reason on standard error).
"""


def main(argv=None, stdin=None):
    argv = sys.argv[1:] if argv is None else argv
    stdin = sys.stdin if stdin is None else stdin
    if len(argv) != 3 or argv[0] not in ('set-password', 'change-password'):
        sys.stderr.write(USAGE)
        return 2
    command, directory, address = argv
    first = stdin.readline().rstrip('\r\n')
    second = stdin.readline().rstrip('\r\n')
    function = set_password if command == 'set-password' else change_password
    try:
        function(directory, address, first, second)
    except AccountError as e:
        sys.stderr.write('%s: %s\n' % (address, e))
        return EXIT_CODES[type(e)]
    return 0


# --- buildout -------------------------------------------------------------------

class Recipe:
    """Recipe: the backend's account and alias database.

      [accounts]
      recipe = slapos.mailbundle:accounts
      directory = ${directory:accounts}          the database (0700)
      mail-directory = ${directory:mail}         homes: <domain>/<local part>
      domains = example.com example.org
      shared-instances = ${slap-configuration:valid-shared-instance-list}
      default-quota = 1024                       (MiB)
      test-account = false
      password-url = https://[...]:8081/password

    Exports the paths ``passwd-file``, ``mailboxes-map``, ``aliases-map``,
    ``senders-map``, ``suspended-map``, ``suspended-transport-map``,
    ``domains-file``, ``published-file``
    and ``published`` (JSON, reference -> connection parameters, errors
    included, for ``slapos.mailbundle:publish-shared``).

    The database is updated when the recipe is initialised, so that
    ``published`` is there for the sections that read it, and again on
    install and update (same result, unless a password was set in between:
    the update reads it under the lock)."""

    def __init__(self, buildout, name, options):
        self.options = options
        for option, filename in FILES.items():
            options[option] = os.path.join(options['directory'], filename)
        options['published'] = json.dumps(self.update_database().published,
                                          sort_keys=True)

    def update_database(self):
        o = self.options
        return update(
            o['directory'], o['mail-directory'], o['domains'].split(),
            json.loads(o.get('shared-instances') or '[]'),
            int(o['default-quota']), o.get('test-account') == 'true',
            o.get('password-url', ''))

    def install(self):
        self.update_database()
        return []

    update = install


if __name__ == '__main__':
    sys.exit(main())
