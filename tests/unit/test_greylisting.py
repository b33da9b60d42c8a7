"""recipes.decisions.greylisting: client network, triplet, whitelists."""
import pytest

from recipes.decisions.greylisting import (client_network, triplet,
                                           whitelisted_client,
                                           whitelisted_recipient)
from recipes.programs import relay_policy


# -- client_network and triplet -----------------------------------------------
@pytest.mark.parametrize('address, network', [
    ('192.0.2.7', '192.0.2.0/24'),
    ('192.0.2.255', '192.0.2.0/24'),
    ('2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'),
    ('2001:DB8:1:2::FFFF', '2001:db8:1:2::/64'),
    # Postfix may report an IPv4 client in its IPv6 form
    ('::ffff:192.0.2.7', '192.0.2.0/24'),
    ('::ffff:c000:207', '192.0.2.0/24'),
    # what is not an address counts as itself, case aside
    ('Unknown', 'unknown'),
])
def test_client_network(address, network):
    assert client_network(address) == network


def test_one_farm_is_one_sender_another_network_is_another():
    assert triplet('192.0.2.7', 'a@x.example', 'b@y.example') == \
        triplet('192.0.2.200', 'a@x.example', 'b@y.example') == \
        triplet('::ffff:192.0.2.9', 'a@x.example', 'b@y.example')
    assert triplet('192.0.2.7', 'a@x.example', 'b@y.example') != \
        triplet('192.0.3.7', 'a@x.example', 'b@y.example')
    assert triplet('2001:db8:0:1::1', 'a@x.example', 'b@y.example') == \
        triplet('2001:db8:0:1:ffff::2', 'a@x.example', 'b@y.example')
    assert triplet('2001:db8:0:1::1', 'a@x.example', 'b@y.example') != \
        triplet('2001:db8:0:2::1', 'a@x.example', 'b@y.example')


def test_the_triplet_ignores_case_and_counts_a_bounce_as_empty():
    assert triplet('192.0.2.7', 'A@X.example', 'B@Y.Example') == \
        '192.0.2.0/24/a@x.example/b@y.example'
    assert triplet('192.0.2.7', '', 'b@y.example') == \
        triplet('192.0.2.7', None, 'b@y.example') == \
        '192.0.2.0/24//b@y.example'
    assert triplet('192.0.2.7', 'a@x.example', 'b@y.example') != \
        triplet('192.0.2.7', 'a@x.example', 'c@y.example')


# -- whitelisted_client -------------------------------------------------------
def test_an_ipv4_network_and_an_address_in_any_of_its_forms():
    entries = ['198.51.100.0/24', '2001:DB8::7', '::ffff:203.0.113.5']
    assert whitelisted_client(entries, '198.51.100.254')
    assert whitelisted_client(entries, '::ffff:198.51.100.1')
    assert not whitelisted_client(entries, '198.51.101.1')
    assert whitelisted_client(entries, '2001:db8:0:0:0:0:0:7')
    assert whitelisted_client(entries, '203.0.113.5')
    assert not whitelisted_client(entries, '2001:db8::8')


def test_a_network_given_with_host_bits_still_counts():
    assert whitelisted_client(['192.0.2.77/24'], '192.0.2.1')


def test_a_network_of_the_other_family_never_matches():
    assert not whitelisted_client(['0.0.0.0/0'], '2001:db8::1')
    assert not whitelisted_client(['::/0'], '192.0.2.1')
    assert whitelisted_client(['::/0'], '2001:db8::1')


def test_a_broken_entry_is_skipped_and_the_next_ones_still_count():
    entries = ['300.1.2.0/24', 'not/a/network', '', '   ', '192.0.2.0/24']
    assert whitelisted_client(entries, '192.0.2.9')
    assert not whitelisted_client(entries[:4], '192.0.2.9', 'mx.example')


def test_a_host_name_entry_matches_the_verified_name_only():
    entries = [' Friend.Example. ']
    assert whitelisted_client(entries, '203.0.113.5', 'MX.friend.example')
    assert whitelisted_client(entries, '203.0.113.5', 'friend.example')
    assert not whitelisted_client(entries, '203.0.113.5', 'evilfriend.example')
    assert not whitelisted_client(entries, '203.0.113.5',
                                  'friend.example.evil')
    # no verified name (Postfix says "unknown"): names never match
    assert not whitelisted_client(entries, '203.0.113.5', '')
    assert not whitelisted_client(entries, '203.0.113.5')
    assert not whitelisted_client(['unknown'], '203.0.113.5', 'unknown')
    # an address is no name: a name entry does not match it
    assert not whitelisted_client(['203.0.113.5.example'], '203.0.113.5')


def test_the_policy_whitelists_by_verified_name_never_by_helo(tmp_path):
    # the HELO name is the client's own say: it must not open the whitelist
    checks = relay_policy.InboundChecks({
        'greylisting': {'enable': True, 'greylisting-delay': 60,
                        'whitelist-clients': ['friend.example'],
                        'whitelist-recipients': []},
        'spf': {'enable': False},
        'database': str(tmp_path / 'grey.sqlite')})
    policy = relay_policy.Inbound(lambda: checks)
    request = {'client_address': '203.0.113.5', 'sender': 'a@friend.example',
               'recipient': 'b@in.example', 'instance': '1',
               'helo_name': 'mx.friend.example', 'client_name': 'unknown'}
    assert policy(request).startswith('DEFER_IF_PERMIT 4.7.1 Greylisted')
    assert policy(dict(request, instance='2',
                       client_name='mx.friend.example')) == 'DUNNO'


# -- whitelisted_recipient ----------------------------------------------------
def test_an_address_entry_is_that_address_only():
    entries = ['postmaster@in.example']
    assert whitelisted_recipient(entries, 'POSTMASTER@IN.EXAMPLE')
    assert not whitelisted_recipient(entries, 'postmaster@other.example')
    assert not whitelisted_recipient(entries, 'abuse@in.example')


def test_a_domain_entry_is_every_address_of_that_domain_only():
    entries = [' @Open.Example ', '', 'other.example']
    assert whitelisted_recipient(entries, 'anyone@open.example')
    assert whitelisted_recipient(entries, 'x@OTHER.example')
    assert not whitelisted_recipient(entries, 'x@notopen.example')
    assert not whitelisted_recipient(entries, 'x@open.example.evil')
    assert not whitelisted_recipient(entries, '')
    assert not whitelisted_recipient(entries, None)
    assert not whitelisted_recipient([], 'x@open.example')
