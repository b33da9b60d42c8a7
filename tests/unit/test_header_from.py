"""Whose address a From header shows (``recipes.decisions.header_from``):
what a reader or a DKIM signer would take for the sender."""
from recipes.decisions import header_from
from recipes.decisions.header_from import (relay_refusal, shown_addresses,
                                           submission_refusal)

SENDERS = {'alice@mail1.example': ['alice@mail1.example'],
           'team@mail1.example': ['alice@mail1.example', 'bob@mail1.example'],
           'bob@mail1.example': ['bob@mail1.example']}


def test_the_addresses_a_header_shows():
    assert shown_addresses('Alice <Alice@Mail1.Example>') == [
        'alice@mail1.example']
    assert shown_addresses('a@x.example, "B" <b@y.example>') == [
        'a@x.example', 'b@y.example']
    # an address in a display name, a comment, an encoded word counts
    assert shown_addresses('"ceo@bank.example" <a@x.example>') == [
        'a@x.example', 'ceo@bank.example']
    assert shown_addresses('a@x.example (ceo@bank.example)') == [
        'a@x.example', 'ceo@bank.example']
    assert 'ceo@bank.example' in shown_addresses(
        '=?utf-8?q?ceo=40bank=2Eexample?= <a@x.example>')
    # a header the parser reads in pieces (CVE-2023-27043) shows no
    # address one can trust: refused as such
    assert shown_addresses('alice@x.example)<bob@y.example>') is None
    # nothing that is an address
    assert shown_addresses('undisclosed-recipients:;') is None
    assert shown_addresses('') is None


def test_a_backend_may_only_show_its_own_domains_on_the_relay():
    mine = {'mail1.example', 'other.example'}
    assert relay_refusal(['Alice <alice@mail1.example>'], mine) is None
    assert relay_refusal(['x@other.example'], mine) is None
    assert relay_refusal([], mine) is None       # no From: nothing claimed
    refusal = relay_refusal(['charlie@mail2.example'], mine)
    assert refusal.startswith('550 5.7.1 <charlie@mail2.example>')
    assert 'mail1.example, other.example' in refusal
    assert relay_refusal(['a@mail1.example, c@mail2.example'], mine) \
        .startswith('550 5.7.1 <c@mail2.example>')
    assert relay_refusal(['a@mail1.example', 'c@mail1.example'], mine) == \
        '550 5.7.1 More than one From header: give one'
    assert relay_refusal(['nobody'], mine) == \
        '550 5.7.1 The From header shows no valid address'
    # a trailing dot or upper case changes nothing
    assert relay_refusal(['a@MAIL1.example.'], mine) is None


def test_a_user_may_only_show_addresses_its_login_sends_as():
    assert submission_refusal(['alice@mail1.example'], 'Alice@Mail1.example',
                              SENDERS) is None
    # an alias that delivers to her
    assert submission_refusal(['The team <team@mail1.example>'],
                              'alice@mail1.example', SENDERS) is None
    refusal = submission_refusal(['bob@mail1.example'],
                                 'alice@mail1.example', SENDERS)
    assert refusal == ('550 5.7.1 <bob@mail1.example>: the From header may '
                       'only show addresses that alice@mail1.example may '
                       'send as')
    assert submission_refusal(['someone@elsewhere.example'],
                              'alice@mail1.example', SENDERS).startswith('550')


def test_every_refusal_is_a_permanent_policy_refusal():
    for refusal in (header_from.refusal(['a@x', 'b@x'], bool, 'any'),
                    header_from.refusal(['x'], bool, 'any'),
                    header_from.refusal(['a@x.example'], lambda a: False,
                                        'any')):
        assert refusal.startswith('550 5.7.1 '), refusal
