"""Who gets which address on a mail backend, and what each account and
alias shared instance is told: ``decide`` turns the shared instances and the
previous state into a ``Database``. Pure: no I/O (tokens are drawn at
random); ``recipes.stores.accounts`` reads the state and writes the files.

The steps of ``decide``, in order:

1. ``read_requests``: what each shared instance asks for (an account, an
   alias or a catch-all), its address normalised, or its error;
2. ``settle_claims``: the first claim of an address wins
   (``recipes.decisions.claims``); a later claimant, or an alias outside
   the hosted domains, gets an error; an account outside them is created
   as upstream's releases do (it logs in and sends) with a ``warning``:
   no mail reaches it;
3. ``open_accounts``: the accounts, with their state (password hash,
   one-time tokens) kept from one run to the next; released ones are moved
   aside;
4. ``settle_aliases``: the aliases whose destinations are valid, reach a
   mailbox and do not loop;
5. ``publish``: what each shared instance gets; ``senders``: who may send
   as what.

The postmaster (RFC 5321: ``postmaster`` bare and at every hosted domain
must reach someone): ``postmaster_address`` says where its mail goes.
When that address is in a hosted domain and no shared instance claims it,
the backend keeps a mailbox there itself (an account without a password
and without a shared instance, like the test account); the first account
shared instance that claims the address takes that mailbox over, its mail
included: that is how the operator reads it. ``postmaster@<domain>`` of
every hosted domain whose address nobody claims is an alias to it.
"""
import dataclasses
import re
import urllib.parse

from . import passwords
from .claims import first_claims
from .loops import find_loops
from .names import (domain_of, normalise_address, normalise_catch_all)

TEST_LOCAL_PART = 'testmail'
TEST_PASSWORD = 'password123'
STATE_VERSION = 1


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
    # the store moves their homes aside
    removed: list
    # when the same shared instances and state would be decided otherwise:
    # the first token to expire (a Unix time), None when no token is out
    valid_until: int = None


@dataclasses.dataclass
class Request:
    reference: str      # None for the test account
    key: str            # the address, or @domain for a catch-all
    kind: str           # 'account' or 'alias'
    parameters: dict


def home_of(address):
    """The home, relative to the mail directory: ``<domain>/<local part>``."""
    local, _, domain = address.rpartition('@')
    return '%s/%s' % (domain, local)


def decide(domains, shared_instances, state, default_quota, test_account,
           now, password_url='', postmaster=None):
    """The database for the shared instances (``[{reference, parameters}]``
    in the master's order) given the previous ``state`` (``{}`` the first
    time). ``now`` is a Unix time; ``postmaster``: where the postmaster's
    mail goes (``postmaster_address``), or None for no postmaster."""
    now = int(now)
    domains = [d.lower() for d in domains]
    hosted = set(domains)
    errors, warnings = {}, {}
    requests = read_requests(domains, shared_instances, test_account, errors)
    claims, kinds, owned = settle_claims(
        requests, state.get('claims', {}), hosted, errors, warnings)
    kept = {postmaster} if postmaster and domain_of(postmaster) in hosted \
        and postmaster not in claims else set()
    accounts, accounts_state, removed = open_accounts(
        owned, state.get('accounts', {}), claims, kinds, default_quota, now,
        kept)
    aliases = settle_aliases(owned, hosted, accounts, kinds, errors)
    aliases.update(postmaster_aliases(postmaster, domains, claims, accounts,
                                      aliases))
    return Database(
        domains=domains,
        accounts=accounts,
        aliases={key: destinations
                 for key, (_, destinations) in aliases.items()},
        senders=senders(accounts, aliases),
        errors=errors,
        published=publish(accounts, accounts_state, aliases, errors,
                          shared_instances, password_url, warnings),
        state={'version': STATE_VERSION, 'claims': claims,
               'accounts': accounts_state},
        removed=removed,
        valid_until=first_expiry(accounts_state))


# --- 1. what each shared instance asks for --------------------------------------

def read_requests(domains, shared_instances, test_account, errors):
    """The ``Request`` of each shared instance (and of the test account of
    each domain), in the master's order; ``errors`` gets the others'."""
    requests = []
    if test_account:
        requests += [Request(None, '%s@%s' % (TEST_LOCAL_PART, domain),
                             'account', {}) for domain in domains]
    for shared in shared_instances:
        reference, parameters = shared['reference'], shared['parameters']
        key, kind, why = requested_key(parameters)
        if why:
            errors[reference] = why
        else:
            requests.append(Request(reference, key, kind, parameters))
    return requests


def requested_key(parameters):
    """``(key, kind, None)`` or ``(None, None, error)`` for the parameters of
    one shared instance."""
    if 'alias' in parameters:
        raw = parameters['alias']
        if raw.strip().startswith('@'):
            key, why = normalise_catch_all(raw)
            what = 'the catch-all'
        else:
            key, why = normalise_address(raw)
            what = 'the alias'
        if why:
            return None, None, 'invalid_address: %s %s is invalid: %s' % (
                what, raw, why)
        return key, 'alias', None
    if 'address' in parameters:
        key, why = normalise_address(parameters['address'])
        if why:
            return None, None, 'invalid_address: the address %s is invalid: ' \
                '%s' % (parameters['address'], why)
        return key, 'account', None
    return None, None, ('invalid_parameters: give either address (an '
                        'account) or alias and destinations')


# --- 2. who owns each address ----------------------------------------------------

def settle_claims(requests, old_claims, hosted, errors, warnings):
    """``(claims, kinds, owned)``: ``{key: reference}`` of every claim kept,
    the kind of each key's owner, and the requests that own their key: in
    a hosted domain, or an account outside them (``warnings`` gets why no
    mail reaches it). An alias claimed before its domain was removed keeps
    its claim, inactive."""
    accounts = {r.key for r in requests if r.kind == 'account'}
    claims = first_claims(((r.reference, r.key) for r in requests),
                          old_claims,
                          lambda key: domain_of(key) in hosted or key in accounts)
    kinds = {r.key: r.kind for r in requests
             if r.key in claims and claims[r.key] == r.reference}
    listed = ', '.join(sorted(hosted))
    outside = ('address_outside_domains: %%s is not in a domain of this '
               'server (%s); use one of them' % listed)
    unreachable = ('%%s is not in a domain of this server (%s): the account '
                   'logs in and sends, but no mail reaches it, from outside '
                   'or from this server; use an address of these domains to '
                   'receive mail' % listed)
    owned = []
    for r in requests:
        if claims.get(r.key, r.reference) != r.reference:
            if r.reference is not None:   # the test account gives way
                errors[r.reference] = claimed_error(r, kinds.get(r.key))
        elif domain_of(r.key) in hosted:
            owned.append(r)
        elif r.kind == 'account':
            owned.append(r)
            warnings[r.reference] = unreachable % r.key
        else:
            errors[r.reference] = outside % r.key
    return claims, kinds, owned


def claimed_error(request, owner_kind):
    if request.kind == 'alias' and owner_kind == 'account':
        return ('alias_shadows_account: the alias %s would shadow the '
                'account %s; choose another alias' % (request.key, request.key))
    return ('address_already_used: %s is already used by another %s on this '
            'server; choose another address' % (
                request.key, 'account' if owner_kind == 'account' else 'alias'))


# --- 3. the accounts ---------------------------------------------------------------

def open_accounts(owned, old_accounts, claims, kinds, default_quota, now,
                  kept=()):
    """``(accounts, accounts state, removed)``: each owned account with its
    state carried over, and the mailboxes the backend keeps itself
    (``kept``: the postmaster's, while nobody claims it); the accounts whose
    claim went, to move aside."""
    accounts_state, removed = carry_over(old_accounts, claims, kinds, kept)
    for address in kept:
        accounts_state.setdefault(address, {
            'reference': None, 'kept': True, 'created': now,
            'password': None, 'password-set': None, 'tokens': [],
            'reset-seen': []})
    accounts = {address: {'reference': None, 'quota': default_quota,
                          'suspended': False, 'home': home_of(address),
                          'password': None} for address in kept}
    for r in owned:
        if r.kind != 'account':
            continue
        entry = dict(accounts_state.get(r.key) or {
            'reference': r.reference, 'created': now, 'password': None,
            'password-set': None, 'tokens': [], 'reset-seen': []})
        if r.reference is None and not entry['password']:
            entry['password'] = passwords.hash_password(TEST_PASSWORD)
        refresh_tokens(entry, r.key, r.parameters.get('reset-token'), now,
                       r.reference is not None)
        accounts_state[r.key] = entry
        accounts[r.key] = {
            'reference': r.reference,
            'quota': int(r.parameters.get('quota') or default_quota),
            'suspended': bool(r.parameters.get('suspended', False)),
            'home': home_of(r.key),
            'password': entry['password'],
        }
    return accounts, accounts_state, removed


def carry_over(old_accounts, claims, kinds, kept):
    """``(accounts state, removed)``: the state of each account whose owner
    still claims it as an account, and of each kept mailbox; the others'
    homes, to move aside. A kept mailbox that an account claims is handed
    over to it, mail included."""
    accounts_state, removed = {}, []
    for address, entry in old_accounts.items():
        owner = claims.get(address, False)
        if entry.get('kept') and address in kept:
            accounts_state[address] = entry
        elif entry.get('kept') and owner and kinds.get(address) == 'account':
            accounts_state[address] = {
                key: value for key, value in entry.items() if key != 'kept'}
            accounts_state[address]['reference'] = owner
        elif (not entry.get('kept') and owner == entry['reference']
                and kinds.get(address) == 'account'):
            accounts_state[address] = entry
        else:
            removed.append({'address': address, 'home': home_of(address)})
    return accounts_state, removed


def refresh_tokens(entry, address, reset_token, now, needs_setup):
    """Drop expired tokens; give an account without a password a setup token
    (a new one when the previous one expired unused); turn a reset-token
    value never seen for this account into a valid one-time token."""
    tokens = entry.get('tokens', [])
    # loops rather than any(): at 100,000 accounts, a third of a second
    for t in tokens:
        if t['expires'] <= now:
            tokens = [t for t in tokens if t['expires'] > now]
            break
    for t in tokens:
        if t['kind'] == 'setup':
            break
    else:
        entry.pop('setup-token', None)
        if needs_setup and not entry['password']:
            token = passwords.new_token()
            entry['setup-token'] = token
            tokens = tokens + [{'kind': 'setup',
                                'hash': passwords.token_hash(address, token),
                                'expires': now + passwords.TOKEN_LIFETIME}]
    if reset_token:
        digest = passwords.token_hash(address, reset_token)
        if digest not in entry.get('reset-seen', []):
            entry['reset-seen'] = entry.get('reset-seen', []) + [digest]
            tokens = tokens + [{'kind': 'reset', 'hash': digest,
                                'expires': now + passwords.TOKEN_LIFETIME}]
    entry['tokens'] = tokens


def first_expiry(accounts_state):
    """The first expiry of the accounts' tokens, None when they have
    none: until then, time changes nothing that ``decide`` decides."""
    return min((t['expires'] for entry in accounts_state.values()
                for t in entry.get('tokens', ())), default=None)


# --- 4. the aliases ------------------------------------------------------------------

def settle_aliases(owned, hosted, accounts, kinds, errors):
    """``{key: (reference, [destinations])}`` of the aliases that work: valid
    destinations, no loop, every local destination an account or a working
    alias; ``errors`` gets the others'."""
    aliases = {}
    for r in owned:
        if r.kind == 'alias':
            destinations, why = alias_destinations(r)
            if why:
                errors[r.reference] = why
            else:
                aliases[r.key] = (r.reference, destinations)
    drop_loops(aliases, errors)
    drop_unknown_destinations(aliases, hosted, accounts, kinds, errors)
    return aliases


def alias_destinations(request):
    """``(destinations, None)``, normalised without repeats, or ``(None,
    error)``."""
    destinations, problems = [], []
    for raw in request.parameters.get('destinations') or []:
        destination, why = normalise_address(raw)
        if why:
            problems.append('%s (%s)' % (raw, why))
        elif destination not in destinations:
            destinations.append(destination)
    if problems:
        return None, 'invalid_destination: %s: %s' % (request.key,
                                                      '; '.join(problems))
    if not destinations:
        return None, ('empty_destinations: the alias %s has no destination; '
                      'give at least one' % request.key)
    return destinations, None


def drop_loops(aliases, errors):
    """Remove the aliases that loop through each other, with their error."""
    graph = {key: [d for d in destinations if d in aliases]
             for key, (_, destinations) in aliases.items()}
    for loop in find_loops(graph):
        for key in set(loop):
            errors[aliases[key][0]] = (
                'alias_loop: %s loops (%s); change one of these '
                'destinations' % (key, ' -> '.join(loop)))
        for key in set(loop):
            del aliases[key]


def drop_unknown_destinations(aliases, hosted, accounts, kinds, errors):
    """Remove, until none is left, the aliases with a local destination that
    is neither an account nor a working alias."""
    changed = True
    while changed:
        changed = False
        for key, (reference, destinations) in list(aliases.items()):
            unknown = next((d for d in destinations
                            if domain_of(d) in hosted and d not in accounts
                            and d not in aliases), None)
            if unknown:
                why = ('is an alias that has an error itself'
                       if kinds.get(unknown) == 'alias' else
                       'is neither an account nor an alias of this server')
                errors[reference] = ('unknown_destination: %s: the '
                                     'destination %s %s' % (key, unknown, why))
                del aliases[key]
                changed = True


def postmaster_address(parameter, domains):
    """Where the postmaster's mail goes: the ``postmaster`` parameter
    (normalised), by default ``postmaster@`` the first hosted domain.
    Raises ValueError when the parameter is not an address."""
    if not parameter:
        return 'postmaster@%s' % domains[0].lower()
    address, why = normalise_address(parameter)
    if why:
        raise ValueError('postmaster %r is not an address (%s): give the '
                         'address that receives the postmaster\'s mail'
                         % (parameter, why))
    return address


def postmaster_aliases(postmaster, domains, claims, accounts, aliases):
    """``{postmaster@<domain>: (None, [postmaster])}`` for each hosted
    domain whose postmaster address nobody claims, when the postmaster's
    address reaches a mailbox (an account, a working alias, or an address
    elsewhere)."""
    if not postmaster or (domain_of(postmaster) in domains
                          and postmaster not in accounts
                          and postmaster not in aliases):
        return {}
    return {'postmaster@' + domain: (None, [postmaster])
            for domain in domains
            if 'postmaster@' + domain not in claims
            and 'postmaster@' + domain != postmaster}


# --- 5. what is published, who sends as what ----------------------------------

def publish(accounts, accounts_state, aliases, errors, shared_instances,
            password_url, warnings=None):
    """``{reference: connection parameters}``: an account's address and,
    while it has one, its one-time token and the setup link with it (the
    ``reset-token`` given, until it is used; else the setup token), and its
    ``warning`` if any (``warnings``: reference -> text); an alias and its
    destinations; or the error with the address asked for."""
    published = {}
    asked = {s['reference']: s['parameters'] for s in shared_instances}
    warnings = warnings or {}
    for address, account in accounts.items():
        reference = account['reference']
        if reference is None:
            continue
        published[reference] = parameters = {'address': address}
        if reference in warnings:
            parameters['warning'] = warnings[reference]
        entry = accounts_state[address]
        reset_token = asked.get(reference, {}).get('reset-token')
        token = (reset_token and usable_reset_token(address, entry,
                                                    reset_token)) \
            or entry.get('setup-token')
        if token:
            parameters['token'] = token
            parameters['setup-url'] = setup_url(password_url, address, token)
    for key, (reference, destinations) in aliases.items():
        if reference is None:       # the postmaster's, nobody's to see
            continue
        published[reference] = {'alias': key, 'destinations': destinations}
    for reference, message in errors.items():
        published[reference] = {'error': message}
        for name in ('address', 'alias'):
            if name in asked.get(reference, {}):
                published[reference][name] = asked[reference][name]
    return published


def setup_url(password_url, address, token):
    """The password page with ``user`` and ``token`` in its query, as
    ``urllib.parse.urlencode`` writes them."""
    return '%s?user=%s&token=%s' % (password_url, query_value(address),
                                    query_value(token))


# what urllib.parse.quote_plus leaves as it is, and '@'
_PLAIN_QUERY_VALUE = re.compile(r'[A-Za-z0-9_.~@-]*\Z')


def query_value(text):
    """``urllib.parse.quote_plus(text)``, at once for the usual address or
    token (a setup link per account: 100,000 at a run)."""
    if _PLAIN_QUERY_VALUE.match(text):
        return text.replace('@', '%40')
    return urllib.parse.quote_plus(text)


def usable_reset_token(address, entry, reset_token):
    """``reset_token`` when it is one of the account's valid tokens (its
    owner gave it and has not used it yet), else None."""
    if not reset_token:
        return None
    digest = passwords.token_hash(address, reset_token)
    if any(t['kind'] == 'reset' and t['hash'] == digest
           for t in entry.get('tokens', [])):
        return reset_token
    return None


def senders(accounts, aliases):
    """``{address: [logins that may send as it]}``: each account itself, an
    alias the accounts it delivers to (catch-alls give no sending right)."""
    found = {address: [address] for address in accounts}
    resolved = local_accounts(aliases, accounts)
    for key in aliases:
        if not key.startswith('@') and resolved[key]:
            found[key] = resolved[key]
    return found


def local_accounts(aliases, accounts):
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


# --- a restore ----------------------------------------------------------------------

def password_restores(state, snapshot_state):
    """What a restore gives back: ``({address: {password, password-set,
    reset-seen}}, [what is said])``. An account of ``state`` (this
    backend's) that has no password yet takes the one it had in
    ``snapshot_state``; a password set here since is kept; an address no
    shared instance asks for here is not restored (its mail neither: an
    unclaimed home is moved aside). The reset tokens seen before stay seen,
    so that a reset-token still in the request is not valid again."""
    restores, said = {}, []
    accounts = state.get('accounts', {})
    for address, old in sorted(snapshot_state.get('accounts', {}).items()):
        if old.get('reference') is None or not old.get('password'):
            continue      # the test account, or never set
        entry = accounts.get(address)
        if entry is None:
            said.append('%s: not restored: no account shared instance asks '
                        'for it on this backend; request it, then restore '
                        'again' % address)
        elif entry.get('password') == old['password']:
            continue
        elif entry.get('password'):
            said.append('%s: kept the password set here since the snapshot'
                        % address)
        else:
            restores[address] = {
                'password': old['password'],
                'password-set': old.get('password-set'),
                'reset-seen': sorted(set(entry.get('reset-seen', []))
                                     | set(old.get('reset-seen', [])))}
    return restores, said
