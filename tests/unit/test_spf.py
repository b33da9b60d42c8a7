"""recipes.decisions.dns: the resolvers a relay asks; recipes.decisions.spf:
the refusal of a fail."""
import pytest

from recipes.decisions.dns import nameserver_error, parse_nameserver
from recipes.decisions.spf import SPF_FAIL_CODE, spf_action


@pytest.mark.parametrize('text, expected', [
    ('192.0.2.53', ('192.0.2.53', 53)),
    ('192.0.2.53:5353', ('192.0.2.53', 5353)),
    ('2001:db8::53', ('2001:db8::53', 53)),
    ('[2001:db8::53]:5353', ('2001:db8::53', 5353)),
    ('[2001:db8::53]', ('2001:db8::53', 53)),
    ('[192.0.2.53]:5353', ('192.0.2.53', 5353)),
    ('::1', ('::1', 53)),
    ('  127.0.0.1:10053\n', ('127.0.0.1', 10053)),
])
def test_the_nameserver_forms(text, expected):
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize('text', [
    '', 'dns.example', 'dns.example:53', '192.0.2', '192.0.2.53:domain',
    '[2001:db8::53]:x', '2001:db8::53:5353:', '[dns.example]:53',
])
def test_what_is_not_an_address_is_refused(text):
    with pytest.raises(ValueError):
        parse_nameserver(text)
    # the message that names the parameter says what to give instead
    assert 'give an IP address, or [address]:port' in nameserver_error(text)


@pytest.mark.parametrize('text', ['1.2.3', '192.0.2.53:0',
                                  '[2001:db8::53]:65536', '192.0.2.53:99999'])
def test_a_truncated_address_or_a_port_out_of_range_is_refused(text):
    assert nameserver_error(text)
    assert nameserver_error('[2001:db8::53]:5353') is None


def test_an_ipv6_address_is_never_read_as_address_and_port():
    # without brackets, the last group of an IPv6 address is no port
    assert parse_nameserver('2001:db8::5353') == ('2001:db8::5353', 53)


def test_a_fail_is_refused_with_the_sender_and_the_explanation():
    answer = spf_action('fail', 'SPF fail - not authorized', 'a@x.example')
    assert answer == ('550 5.7.23 SPF check failed for <a@x.example>: '
                      'SPF fail - not authorized')
    assert answer.startswith(SPF_FAIL_CODE + ' ')
    # a bounce (null sender), checked against the HELO name
    assert spf_action('fail', 'why', '') == \
        '550 5.7.23 SPF check failed for <>: why'
