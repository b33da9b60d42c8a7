"""recipes.decisions.domain_verification over recipes.clients.resolver's
lookups, asked of a real DNS server (tests/dns_server.py) as the cluster
asks its nameservers."""
import socket
import time

import pytest

from recipes.clients.resolver import domain_lookup
from recipes.decisions.domain_verification import verified, verify
from tests.dns_server import DNSServer

NODES = ['relay1.example.net', 'relay2.example.net']
RECORDS = {
    ('ours.example', 'MX'): ['10 Relay2.example.net.'],
    ('both.example', 'MX'): ['10 mx.elsewhere.example.',
                             '20 relay1.example.net.'],
    ('elsewhere.example', 'MX'): ['10 mx.elsewhere.example.'],
    ('web-only.example', 'AAAA'): ['2001:db8::80'],
    ('web-only-v4.example', 'A'): ['192.0.2.80'],
    # the name exists (a TXT record), with neither MX nor address
    ('bare.example', 'TXT'): ['v=spf1 -all'],
}


@pytest.fixture(scope='module')
def dns_server():
    with DNSServer('127.0.0.1', RECORDS) as server:
        yield server


@pytest.mark.parametrize('domain, expected, why', [
    ('ours.example', True, 'the MX of ours.example points at '
                           'relay2.example.net'),
    ('both.example', True, 'the MX of both.example points at '
                           'relay1.example.net'),
    ('unknown.example', True, 'unknown.example does not exist yet'),
    ('bare.example', True, 'bare.example has neither an MX nor an address '
                           'yet'),
    ('elsewhere.example', False, 'the MX of elsewhere.example points at '
                                 'mx.elsewhere.example, not at this cluster '
                                 '(relay1.example.net, relay2.example.net)'),
    ('web-only.example', False, 'web-only.example has an address and no MX'),
    ('web-only-v4.example', False, 'web-only-v4.example has an address'),
])
def test_verified_as_upstream_verifies(dns_server, domain, expected, why):
    ok, reason = verify(domain, NODES, domain_lookup([dns_server.address]))
    assert ok is expected
    assert reason.startswith(why), reason


def test_dns_that_does_not_answer_leaves_it_unverified_with_the_reason():
    # a port where nothing answers: the lookup times out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(('127.0.0.1', 0))
        silent = '127.0.0.1:%d' % s.getsockname()[1]
        lookup = domain_lookup([silent], timeout=1)
        start = time.time()
        found, why_not = verified(['a.example', 'b.example', 'a.example'],
                                  NODES, set(), lookup)
    assert found == set()
    assert why_not['a.example'].startswith(
        'a.example could not be looked up: DNS did not answer')
    assert why_not['a.example'].endswith('tried again at the next run')
    # one timeout for the run, not one per domain
    assert time.time() - start < 2.5
    assert sorted(why_not) == ['a.example', 'b.example']


def test_a_proxied_domain_is_exempt_without_a_lookup():
    def no_lookup(domain):
        raise AssertionError('looked up %s' % domain)
    assert verified(['mail1.example.com'], NODES, {'mail1.example.com'},
                    no_lookup) == ({'mail1.example.com'}, {})
