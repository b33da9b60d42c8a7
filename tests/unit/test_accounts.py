"""The decisions of the account and alias database (``accounts.decide``):
no file, no buildout."""
import json
import urllib.parse

import pytest

from recipes.decisions import accounts, loops, names, passwords
from recipes.stores.accounts import render

DOMAINS = ['example.com', 'example.org']
NOW = 1_800_000_000
URL = 'https://[fd00::2]:8081/password'


def account(reference, address, **parameters):
    return {'reference': reference,
            'parameters': dict(parameters, address=address)}


def alias(reference, address, *destinations):
    return {'reference': reference,
            'parameters': {'alias': address,
                           'destinations': list(destinations)}}


def decide(shared, state=None, test_account=False, now=NOW, domains=DOMAINS):
    return accounts.decide(domains, shared, state or {}, 1024, test_account,
                           now, URL)


def code(database, reference):
    return database.errors[reference].split(':')[0]


def test_account_gets_home_quota_and_a_setup_url():
    db = decide([account('_a', 'Alice@Example.com', quota=50),
                 account('_b', 'bob@example.org', suspended=True)])
    assert db.errors == {}
    assert db.accounts['alice@example.com'] == {
        'reference': '_a', 'quota': 50, 'suspended': False,
        'home': 'example.com/alice', 'password': None}
    assert db.accounts['bob@example.org']['quota'] == 1024
    assert db.accounts['bob@example.org']['suspended'] is True
    published = db.published['_a']
    assert published['address'] == 'alice@example.com'
    assert len(published['token']) >= 40
    url = urllib.parse.urlsplit(published['setup-url'])
    assert published['setup-url'].startswith(URL + '?')
    assert urllib.parse.parse_qs(url.query) == {
        'user': ['alice@example.com'], 'token': [published['token']]}
    # only the token's hash is in the state, with the clear setup token
    # kept (0600) so that it is published again
    entry = db.state['accounts']['alice@example.com']
    assert entry['tokens'][0]['hash'] == passwords.token_hash(
        'alice@example.com', published['token'])
    assert entry['tokens'][0]['expires'] == NOW + passwords.TOKEN_LIFETIME
    json.dumps(db.state)


def test_published_token_is_stable_across_runs_until_it_expires():
    shared = [account('_a', 'alice@example.com')]
    first = decide(shared)
    second = decide(shared, first.state, now=NOW + 3600)
    assert second.published == first.published
    expired = decide(shared, second.state,
                     now=NOW + passwords.TOKEN_LIFETIME + 1)
    # an account still without password gets a new token
    assert expired.published['_a']['token'] != first.published['_a']['token']
    assert len(expired.state['accounts']['alice@example.com']['tokens']) == 1


def test_first_claimant_keeps_the_address_when_the_list_is_reordered():
    first = decide([account('_a', 'alice@example.com'),
                    account('_b', 'alice@example.com')])
    assert first.accounts['alice@example.com']['reference'] == '_a'
    assert code(first, '_b') == 'address_already_used'
    assert 'alice@example.com' in first.errors['_b']
    assert first.published['_b'] == {'address': 'alice@example.com',
                                     'error': first.errors['_b']}
    reordered = decide([account('_b', 'alice@example.com'),
                        account('_a', 'alice@example.com')], first.state)
    assert reordered.accounts['alice@example.com']['reference'] == '_a'
    assert code(reordered, '_b') == 'address_already_used'
    assert reordered.published['_a'] == first.published['_a']


def test_case_does_not_make_another_address():
    db = decide([account('_a', 'alice@example.com'),
                 account('_b', 'ALICE@example.COM')])
    assert code(db, '_b') == 'address_already_used'


def test_destroyed_owner_releases_the_address_to_a_fresh_account():
    first = decide([account('_a', 'alice@example.com'),
                    account('_b', 'alice@example.com')])
    entry = first.state['accounts']['alice@example.com']
    entry['password'] = passwords.NO_PASSWORD[:-1] + 'x'  # as if set
    second = decide([account('_b', 'alice@example.com')], first.state)
    assert second.errors == {}
    assert second.accounts['alice@example.com']['reference'] == '_b'
    assert second.accounts['alice@example.com']['password'] is None
    assert second.removed == [{'address': 'alice@example.com',
                               'home': 'example.com/alice'}]
    assert second.published['_b']['token'] != first.published['_a']['token']


def test_destroyed_account_disappears():
    first = decide([account('_a', 'alice@example.com')])
    second = decide([], first.state)
    assert second.accounts == {} and second.state['claims'] == {}
    assert second.removed == [{'address': 'alice@example.com',
                               'home': 'example.com/alice'}]
    assert decide([], second.state).removed == []


def test_changed_address_releases_the_old_one():
    first = decide([account('_a', 'alice@example.com')])
    second = decide([account('_a', 'alicia@example.com')], first.state)
    assert list(second.accounts) == ['alicia@example.com']
    assert second.removed[0]['address'] == 'alice@example.com'


def test_account_outside_the_domains_is_created_with_a_warning():
    # as upstream's releases: it logs in and sends; no mail reaches it
    db = decide([account('_a', 'alice@example.net')])
    assert db.errors == {}
    assert db.accounts['alice@example.net']['home'] == 'example.net/alice'
    assert db.senders['alice@example.net'] == ['alice@example.net']
    published = db.published['_a']
    assert published['address'] == 'alice@example.net'
    assert published['token'] and published['setup-url']
    assert published['warning'].startswith(
        'alice@example.net is not in a domain of this server (example.com, '
        'example.org): the account logs in and sends, but no mail reaches it')
    # the accounts of the domains get no warning
    assert 'warning' not in decide([account(
        '_b', 'bob@example.com')]).published['_b']


def test_account_outside_the_domains_is_claimed_once():
    db = decide([account('_a', 'a1@mail.lan'), account('_b', 'a1@mail.lan')])
    assert list(db.accounts) == ['a1@mail.lan']
    assert code(db, '_b') == 'address_already_used'
    # its owner gone, the next claimant starts afresh
    second = decide([account('_b', 'a1@mail.lan')], db.state)
    assert second.removed == [{'address': 'a1@mail.lan',
                               'home': 'mail.lan/a1'}]
    assert second.published['_b']['token'] != db.published['_a']['token']


def test_alias_outside_the_domains_is_refused():
    db = decide([alias('_a', 'alice@example.net', 'bob@example.com')])
    assert code(db, '_a') == 'address_outside_domains'
    assert 'alice@example.net' in db.errors['_a']
    assert 'example.com, example.org' in db.errors['_a']
    assert db.aliases == {} and db.state['claims'] == {}


def test_removed_domain_keeps_the_account_and_the_mail():
    first = decide([account('_a', 'alice@example.org')])
    second = decide([account('_a', 'alice@example.org')], first.state,
                    domains=['example.com'])
    assert 'not in a domain of this server' in second.published['_a'][
        'warning']
    assert list(second.accounts) == ['alice@example.org']
    assert second.removed == []
    third = decide([account('_a', 'alice@example.org')], second.state)
    assert third.errors == {} and 'warning' not in third.published['_a']
    assert (third.state['accounts']['alice@example.org']
            == first.state['accounts']['alice@example.org'])


@pytest.mark.parametrize('address', [
    'a..b@example.com', '.a@example.com', 'a.@example.com',
    'a b@example.com', 'a"b@example.com', 'a/b@example.com',
    'a%b@example.com', '#a@example.com', 'a@b@example.com',
    'x' * 65 + '@example.com', 'a@-example.com', 'a@example',
    'a@example.123', 'a@exa_mple.com', '@example.com', 'a@',
    'a@' + 'b' * 64 + '.com', 'é@example.com',
])
def test_invalid_addresses(address):
    db = decide([account('_a', address)])
    assert code(db, '_a') == 'invalid_address'
    assert address in db.errors['_a']
    assert db.published['_a']['address'] == address


@pytest.mark.parametrize('address', [
    "o'hara@example.com", 'a+tag@example.com', 'first.last@example.com',
    "!#$&'*+-=?^_`{|}~@example.com", 'x' * 64 + '@example.com',
])
def test_valid_addresses(address):
    assert decide([account('_a', address)]).errors == {}


def test_address_length_limit():
    local = 'a' * 64
    domain = '.'.join(['b' * 60] * 3) + '.example.com'
    assert len(local + '@' + domain) > 254
    assert (names.normalise_address(local + '@' + domain)[1]
            == 'it is longer than 254 characters')


def test_other_shared_instances_keep_working_next_to_errors():
    db = decide([account('_a', 'alice@example.com'),
                 account('_bad', 'x@@nowhere.net'),
                 account('_b', 'bob@example.org')])
    assert sorted(db.accounts) == ['alice@example.com', 'bob@example.org']
    assert list(db.errors) == ['_bad']


def test_alias_to_local_accounts_aliases_and_external_addresses():
    db = decide([account('_a', 'alice@example.com'),
                 account('_b', 'bob@example.org'),
                 alias('_t', 'team@example.com', 'alice@example.com',
                       'Bob@example.org', 'alice@example.com'),
                 alias('_all', 'all@example.com', 'team@example.com',
                       'david@gmail.com')])
    assert db.errors == {}
    assert db.aliases == {
        'team@example.com': ['alice@example.com', 'bob@example.org'],
        'all@example.com': ['team@example.com', 'david@gmail.com']}
    assert db.published['_t'] == {
        'alias': 'team@example.com',
        'destinations': ['alice@example.com', 'bob@example.org']}
    # who may send as an alias: the accounts it delivers to
    assert db.senders['all@example.com'] == ['alice@example.com',
                                             'bob@example.org']
    assert db.senders['alice@example.com'] == ['alice@example.com']


def test_alias_that_shadows_an_account():
    db = decide([account('_a', 'alice@example.com'),
                 alias('_x', 'alice@example.com', 'bob@gmail.com')])
    assert code(db, '_x') == 'alias_shadows_account'
    assert db.published['_x']['alias'] == 'alice@example.com'
    # also when the account's claim is older and the alias comes first
    db2 = decide([alias('_x', 'alice@example.com', 'bob@gmail.com'),
                  account('_a', 'alice@example.com')], db.state)
    assert code(db2, '_x') == 'alias_shadows_account'
    assert 'alice@example.com' in db2.accounts


def test_account_after_an_alias_of_the_same_address():
    db = decide([alias('_x', 'info@example.com', 'bob@gmail.com'),
                 account('_a', 'info@example.com')])
    assert code(db, '_a') == 'address_already_used'
    assert 'info@example.com' in db.aliases


def test_two_catch_alls_of_one_domain():
    db = decide([alias('_1', '@example.com', 'bob@gmail.com'),
                 alias('_2', '@example.com', 'carol@gmail.com')])
    assert code(db, '_2') == 'address_already_used'


def test_alias_loops():
    db = decide([alias('_1', 'a@example.com', 'b@example.com'),
                 alias('_2', 'b@example.com', 'c@example.org', 'x@gmail.com'),
                 alias('_3', 'c@example.org', 'a@example.com'),
                 alias('_self', 'me@example.com', 'me@example.com'),
                 alias('_in', 'in@example.com', 'a@example.com'),
                 alias('_ok', 'ok@example.com', 'x@gmail.com')])
    for reference in '_1', '_2', '_3', '_self':
        assert code(db, reference) == 'alias_loop', reference
    assert ('a@example.com -> b@example.com -> c@example.org -> '
            'a@example.com') in db.errors['_2']
    # pointing into a loop is an error too, naming the destination
    assert code(db, '_in') == 'unknown_destination'
    assert 'a@example.com' in db.errors['_in']
    assert db.aliases == {'ok@example.com': ['x@gmail.com']}


def test_local_destination_must_exist():
    db = decide([alias('_1', 'a@example.com', 'nobody@example.com')])
    assert code(db, '_1') == 'unknown_destination'
    assert 'nobody@example.com' in db.errors['_1']


def test_empty_and_invalid_destinations():
    db = decide([alias('_1', 'a@example.com'),
                 alias('_2', 'b@example.com', 'not an address')])
    assert code(db, '_1') == 'empty_destinations'
    assert code(db, '_2') == 'invalid_destination'
    assert 'not an address' in db.errors['_2']


def test_alias_outside_the_domains_and_catch_all_of_another_domain():
    db = decide([alias('_1', 'a@example.net', 'x@gmail.com'),
                 alias('_2', '@example.net', 'x@gmail.com'),
                 alias('_3', '@not_a_domain', 'x@gmail.com')])
    assert code(db, '_1') == 'address_outside_domains'
    assert code(db, '_2') == 'address_outside_domains'
    assert '@example.net' in db.errors['_2']
    assert code(db, '_3') == 'invalid_address'


def test_catch_all_does_not_swallow_accounts_nor_aliases():
    db = decide([account('_a', 'alice@example.com'),
                 account('_b', 'bob@example.org'),
                 alias('_t', 'team@example.com', 'bob@example.org'),
                 alias('_c', '@example.com', 'alice@example.com')])
    assert db.errors == {}
    aliases = render('/mail', db)['aliases'].splitlines()
    # exact account, then exact alias, then the catch-all
    assert aliases == ['@example.com alice@example.com',
                       'alice@example.com alice@example.com',
                       'team@example.com bob@example.org']
    # a catch-all gives nobody the right to send as any address
    assert '@example.com' not in db.senders


def test_test_account_in_every_domain():
    db = decide([account('_t', 'testmail@example.com')], test_account=True)
    assert sorted(db.accounts) == ['testmail@example.com',
                                   'testmail@example.org']
    entry = db.accounts['testmail@example.com']
    assert entry['reference'] is None
    assert passwords.verify_password(entry['password'], 'password123')
    assert code(db, '_t') == 'address_already_used'
    assert None not in db.published
    # kept, not re-hashed, on the next run; removed when disabled
    again = decide([], db.state, test_account=True)
    assert again.accounts['testmail@example.com']['password'] == (
        entry['password'])
    off = decide([], again.state)
    assert off.accounts == {}
    assert sorted(r['address'] for r in off.removed) == [
        'testmail@example.com', 'testmail@example.org']


def test_test_account_enabled_later_leaves_an_owned_address_alone():
    first = decide([account('_t', 'testmail@example.com')])
    db = decide([account('_t', 'testmail@example.com')], first.state,
                test_account=True)
    assert db.errors == {}
    assert db.accounts['testmail@example.com']['reference'] == '_t'
    assert db.accounts['testmail@example.org']['reference'] is None


def test_reset_token_works_for_a_new_value_only():
    shared = [account('_a', 'alice@example.com', **{'reset-token': 'r' * 12})]
    db = decide(shared)
    kinds = [t['kind'] for t in db.state['accounts']['alice@example.com']
             ['tokens']]
    assert kinds == ['setup', 'reset']
    # the same value, seen before, does not come back once used or expired
    state = db.state
    state['accounts']['alice@example.com']['tokens'] = []
    again = decide(shared, state)
    assert [t['kind'] for t in again.state['accounts']['alice@example.com']
            ['tokens']] == ['setup']
    shared[0]['parameters']['reset-token'] = 's' * 12
    new = decide(shared, again.state)
    assert [t['kind'] for t in new.state['accounts']['alice@example.com']
            ['tokens']] == ['setup', 'reset']


def with_password_set():
    """The state of alice's account once its password was set (the setup
    token used)."""
    db = decide([account('_a', 'alice@example.com')])
    entry = db.state['accounts']['alice@example.com']
    entry.update(password=passwords.hash_password('long enough pw'),
                 tokens=[], **{'password-set': NOW})
    del entry['setup-token']
    return db.state


@pytest.mark.parametrize('address, token', [
    ('alice@example.com', 'Ab_9-x'), ("o'brien+tag@example.com", 'a b/c?d=e&f'),
    ('x~y.z@example.com', 'caf\u00e9 %20'), ('a@b.example', '')])
def test_a_setup_link_carries_the_address_and_token_as_urlencode_does(
        address, token):
    assert accounts.setup_url(URL, address, token) == '%s?%s' % (
        URL, urllib.parse.urlencode({'user': address, 'token': token}))


def test_a_reset_token_is_published_back_until_it_is_used():
    reset = [account('_a', 'alice@example.com', **{'reset-token': 'r' * 12})]
    db = decide(reset, with_password_set())
    published = db.published['_a']
    # as upstream: the token is the reset-token, and the link carries it
    assert published['token'] == 'r' * 12
    assert published['setup-url'] == (
        URL + '?user=alice%40example.com&token='
        + 'r' * 12)
    # once used (the password page empties the tokens), neither comes back
    db.state['accounts']['alice@example.com']['tokens'] = []
    assert decide(reset, db.state).published['_a'] == {
        'address': 'alice@example.com'}
    # a reset-token given while the setup token is still valid wins
    fresh = decide([account('_b', 'bob@example.com',
                            **{'reset-token': 's' * 12})])
    assert fresh.published['_b']['token'] == 's' * 12


def test_account_with_a_password_publishes_no_token():
    again = decide([account('_a', 'alice@example.com')], with_password_set())
    assert again.published['_a'] == {'address': 'alice@example.com'}


def test_decide_does_not_change_the_given_state():
    db = decide([account('_a', 'alice@example.com')])
    before = json.dumps(db.state, sort_keys=True)
    decide([account('_b', 'bob@example.com')], db.state)
    assert json.dumps(db.state, sort_keys=True) == before


def test_find_loops_on_a_long_chain_without_recursion():
    chain = {'a%d' % i: ['a%d' % (i + 1)] for i in range(5000)}
    chain['a5000'] = ['a0']
    (loop,) = loops.find_loops(chain)
    assert len(loop) == 5002 and loop[0] == loop[-1] == 'a0'


# --- the postmaster ----------------------------------------------------------------

def with_postmaster(shared, state=None, postmaster='postmaster@example.com'):
    return accounts.decide(DOMAINS, shared, state or {}, 1024, False, NOW,
                           URL, postmaster)


def test_the_postmaster_address_is_the_parameter_or_the_first_domains():
    assert accounts.postmaster_address('', ['Example.com', 'example.org']) \
        == 'postmaster@example.com'
    assert accounts.postmaster_address(' Admin@Example.org ', DOMAINS) == \
        'admin@example.org'
    with pytest.raises(ValueError) as refused:
        accounts.postmaster_address('not an address', DOMAINS)
    assert str(refused.value).startswith("postmaster 'not an address' is not "
                                         "an address")


def test_the_backend_keeps_the_postmasters_mailbox_until_someone_claims_it():
    db = with_postmaster([account('_a', 'alice@example.com')])
    # a mailbox of its own, that nobody can log in to, published to nobody
    assert db.accounts['postmaster@example.com'] == {
        'reference': None, 'quota': 1024, 'suspended': False,
        'home': 'example.com/postmaster', 'password': None}
    assert db.state['accounts']['postmaster@example.com']['kept'] is True
    assert 'postmaster@example.com' not in db.state['claims']
    assert None not in db.published
    # postmaster@ every hosted domain reaches it
    assert db.aliases['postmaster@example.org'] == ['postmaster@example.com']
    assert 'postmaster@example.com' not in db.aliases
    # the next run keeps it, with nothing moved aside
    again = with_postmaster([account('_a', 'alice@example.com')], db.state)
    assert again.removed == [] and 'postmaster@example.com' in again.accounts
    # the operator orders the account: it takes the mailbox over (the
    # same home, its mail kept) and gets its setup link
    claimed = with_postmaster([account('_a', 'alice@example.com'),
                               account('_p', 'postmaster@example.com')],
                              again.state)
    assert claimed.removed == []
    assert claimed.accounts['postmaster@example.com']['reference'] == '_p'
    assert claimed.accounts['postmaster@example.com']['home'] == \
        'example.com/postmaster'
    assert 'kept' not in claimed.state['accounts']['postmaster@example.com']
    assert claimed.published['_p']['setup-url'].startswith(URL)
    assert claimed.aliases['postmaster@example.org'] == [
        'postmaster@example.com']


def test_an_account_or_an_alias_may_receive_the_postmasters_mail():
    # the parameter names an account: no mailbox of the backend's own
    db = with_postmaster([account('_a', 'alice@example.com')],
                         postmaster='alice@example.com')
    assert set(db.accounts) == {'alice@example.com'}
    assert db.aliases == {'postmaster@example.com': ['alice@example.com'],
                          'postmaster@example.org': ['alice@example.com']}
    # an address elsewhere: forwarded there
    db = with_postmaster([], postmaster='ops@elsewhere.example')
    assert db.aliases['postmaster@example.com'] == ['ops@elsewhere.example']
    # a domain's own postmaster account or alias wins over the parameter
    db = with_postmaster([account('_p', 'postmaster@example.org'),
                          alias('_t', 'team@example.com',
                                'postmaster@example.org')],
                         postmaster='team@example.com')
    assert db.aliases['postmaster@example.com'] == ['team@example.com']
    assert 'postmaster@example.org' not in db.aliases
    # a name that reaches no mailbox (an alias in error) gives no alias
    db = with_postmaster([alias('_t', 'team@example.com',
                                'nobody@example.com')],
                         postmaster='team@example.com')
    assert not any(key.startswith('postmaster@') for key in db.aliases)
    # a kept mailbox whose address is no longer the postmaster's is moved
    # aside (kept on disk), as a destroyed account's
    first = with_postmaster([])
    later = with_postmaster([], first.state, postmaster='ops@elsewhere.example')
    assert later.removed == [{'address': 'postmaster@example.com',
                              'home': 'example.com/postmaster'}]
