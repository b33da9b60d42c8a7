import json

from recipes.decisions import outbound

ANSWER = {'domain': 'example.com', 'outbound-host': 'fd00::3',
          'outbound-smtp-port': '10587',
          'tls-fingerprints': json.dumps(['AA:BB', 'CC:DD']),
          'dns-records': json.dumps(['example.com. MX 10 relay.example.net.'])}
NO_ANSWER = {'domain': 'example.org', 'outbound-host': '',
             'outbound-smtp-port': '', 'tls-fingerprints': '',
             'dns-records': ''}


def test_disabled_delivers_directly():
    decision = outbound.route({'enable': False}, [ANSWER])
    assert decision['mode'] == 'direct' and decision['relayhost'] == ''
    assert decision['defer-transports'] == ''
    # the relay's records are published whatever the outbound route
    assert decision['dns-records'] == ['example.com. MX 10 relay.example.net.']


def test_smarthost_with_and_without_login():
    decision = outbound.route({'enable': True, 'host': 'smtp.example.net',
                               'port': 587, 'user': 'u', 'password': 'p'}, [])
    assert decision['mode'] == 'smarthost'
    assert decision['relayhost'] == '[smtp.example.net]:587'
    assert decision['tls-security-level'] == 'encrypt' and decision['sasl']
    decision = outbound.route({'enable': True, 'host': 'smtp.example.net',
                               'port': 25}, [])
    assert not decision['sasl']


def test_relay_answer_is_pinned_by_fingerprint():
    decision = outbound.route({'enable': True}, [NO_ANSWER, ANSWER])
    assert decision['mode'] == 'relay'
    assert decision['relayhost'] == '[fd00::3]:10587'
    assert decision['tls-security-level'] == 'fingerprint'
    assert decision['tls-fingerprints'] == ['AA:BB', 'CC:DD']


def test_every_node_of_the_relay_is_a_next_hop_in_turn():
    decision = outbound.route({'enable': True}, [dict(ANSWER, **{
        'outbound-hosts': json.dumps(['fd00::3', 'fd00::4'])})])
    assert decision['relayhost'] == '[fd00::3]:10587, [fd00::4]:10587'


def test_without_an_answer_mail_waits_in_the_queue():
    for answers in ([], [NO_ANSWER],
                    [dict(ANSWER, **{'tls-fingerprints': '[]'})]):
        decision = outbound.route({'enable': True}, answers)
        assert decision['mode'] == 'waiting'
        assert decision['defer-transports'] == 'smtp'
        assert decision['relayhost'] == ''


def test_dns_records_of_every_domain_once():
    other = dict(ANSWER, **{'dns-records': json.dumps(
        ['example.com. MX 10 relay.example.net.', 'example.org. MX 10 r.'])})
    assert outbound.route({'enable': True}, [ANSWER, other, NO_ANSWER])['dns-records'] == [
        'example.com. MX 10 relay.example.net.', 'example.org. MX 10 r.']


def test_the_relay_nodes_that_may_deliver_here_are_those_that_answered():
    other = dict(ANSWER, **{'tls-fingerprints': json.dumps(['CC:DD', 'EE:FF'])})
    assert outbound.relay_fingerprints([ANSWER, other, NO_ANSWER]) == [
        'AA:BB', 'CC:DD', 'EE:FF']
    # whatever the outbound route: mail still comes in through the relay
    assert outbound.relay_fingerprints([NO_ANSWER]) == []
