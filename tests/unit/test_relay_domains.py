import json

from recipes.decisions import relay_domains as domains
from recipes.decisions import smarthosts
from recipes.decisions.passwords import hash_password, verify_password


def shared(reference, name, host='fd00::2', **more):
    """A domain shared instance as the schema gives it, defaults applied
    (tests/unit/test_schemas.py shows them)."""
    return {'reference': reference,
            'parameters': dict({'name': name, 'mail-server-host': host,
                                'mail-server-port': 10025,
                                'authentication': 'none'}, **more)}


def test_first_claim_wins_and_second_claimant_gets_an_error():
    accepted, errors, _ = domains.accept([
        shared('first', 'example.com', 'fd00::2'),
        shared('second', 'Example.COM', 'fd00::3'),
        shared('other', 'example.org', 'fd00::4'),
    ])
    assert [(d['reference'], d['name'], d['mail-server-host'])
            for d in accepted] == [('first', 'example.com', 'fd00::2'),
                                   ('other', 'example.org', 'fd00::4')]
    assert list(errors) == ['second']
    assert 'example.com' in errors['second']
    assert 'already claimed' in errors['second']


def test_nothing_claimed():
    assert domains.accept([]) == ([], {}, {})


def test_the_first_claim_stays_first_whatever_the_order_listed():
    _, _, claims = domains.accept([shared('first', 'example.com')])
    accepted, errors, claims = domains.accept(
        [shared('second', 'example.com'), shared('first', 'example.com')],
        claims)
    assert [d['reference'] for d in accepted] == ['first']
    assert list(errors) == ['second']
    # the owner is destroyed: the next claimant gets the domain
    accepted, errors, claims = domains.accept(
        [shared('second', 'example.com')], claims)
    assert [d['reference'] for d in accepted] == ['second'] and not errors
    assert claims == {'example.com': 'second'}


def test_invalid_name_and_missing_host_are_errors_of_that_instance_only():
    accepted, errors, _ = domains.accept([
        shared('bad', 'not a domain'), shared('nohost', 'example.net', ''),
        shared('good', 'example.com')])
    assert [d['name'] for d in accepted] == ['example.com']
    assert 'not a domain name' in errors['bad']
    assert 'mail-server-host' in errors['nohost']


def test_a_domain_under_two_smarthosts_is_refused_naming_the_parameter():
    configs = smarthosts.relay_configs({
        'topology': {'n1': {'fqdn': 'r1.example.com'}},
        'default-relay-config': {'proxy-map': {
            'a': {'host': 'smtp.a.example', 'domains': ['example.com']},
            'b': {'host': 'smtp.b.example', 'domains': ['example.com']}}}})
    conflicts = smarthosts.conflicts(configs)
    accepted, errors, _ = domains.accept(
        [shared('first', 'example.com'), shared('other', 'example.org')],
        conflicts=conflicts)
    assert [d['name'] for d in accepted] == ['example.org']
    assert 'default-relay-config.proxy-map' in errors['first']
    assert 'a and b' in errors['first']


def test_node_config_overrides_the_default_proxy_map():
    configs = smarthosts.relay_configs({
        'topology': {'n1': {'fqdn': 'r1.example.com', 'config': {
            'proxy-map': {'x': {'host': 'h', 'domains': ['d.example']}}}},
                     'n2': {'fqdn': 'r2.example.com'}},
        'default-relay-config': {}})
    assert configs == {
        'topology.n1.config': {'proxy-map': {
            'x': {'host': 'h', 'domains': ['d.example']}}},
        'default-relay-config': {}}


def test_outbound_password_is_generated_once_and_nodes_get_its_hash():
    accepted, _, _ = domains.accept([
        shared('p', 'example.com', authentication='password'),
        shared('n', 'example.org')])
    creds = domains.credentials(accepted, {}, hash_password, verify_password)
    assert list(creds) == ['p']
    assert creds['p']['user'] == 'example.com'
    assert verify_password(creds['p']['hash'], creds['p']['password'])
    again = domains.credentials(accepted, json.loads(json.dumps(creds)),
                                hash_password, verify_password)
    assert again == creds
    nodes = domains.node_domains(accepted, creds)
    assert nodes[0]['outbound-password-hash'] == creds['p']['hash']
    assert 'password' not in json.dumps(nodes).replace('password-hash', '') \
        .replace('"authentication": "password"', '')
    assert 'outbound-user' not in nodes[1]


def test_publications_carry_outbound_host_fingerprints_and_dns_records():
    accepted, errors, _ = domains.accept([
        shared('p', 'example.com', authentication='password'),
        shared('dup', 'example.com')])
    creds = domains.credentials(accepted, {}, hash_password, verify_password)
    dkim = {'name': 'r1-example-net._domainkey.example.com', 'type': 'TXT',
            'value': 'v=DKIM1; k=rsa; p=AAAA'}
    nodes = [{'name': 'n1', 'fqdn': 'r1.example.net', 'smtp-ipv6': 'fd00::9',
              'submission-port': '10587', 'tls-fingerprints': ['AA', 'BB'],
              'dns-entries': {'example.com': [dkim]}}]
    configs = {'default-relay-config': {'proxy-map': {'s': {
        'host': 'smtp.provider.example', 'domains': ['example.com']}}}}
    results = domains.publications(accepted, errors, creds, nodes, configs)
    assert results['dup'] == {'error': errors['dup']}
    p = results['p']
    assert p['outbound-host'] == 'fd00::9'
    assert p['outbound-smtp-port'] == '10587'
    assert json.loads(p['tls-fingerprints']) == ['AA', 'BB']
    assert p['outbound-user'] == 'example.com'
    assert p['outbound-password'] == creds['p']['password']
    records = json.loads(p['dns-entries'])
    assert {'name': 'example.com', 'type': 'MX',
            'value': '10 r1.example.net.'} in records
    assert {'name': 'example.com', 'type': 'TXT', 'value':
            'v=spf1 ip6:fd00::9 include:smtp.provider.example ~all'} in records
    assert dkim in records
    assert any(r['name'] == '_dmarc.example.com' for r in records)
    assert domains.missing_keys(accepted, nodes) == []
    assert domains.missing_keys(accepted, [dict(nodes[0], **{
        'dns-entries': {}})]) == [('n1', 'example.com')]
    with_relay_domain = domains.publications(accepted, errors, creds, nodes,
                                             configs, 'relay.example.net')
    assert with_relay_domain['p']['outbound-host'] == 'relay.example.net'


# -- check-mx and the node's IPv4 ---------------------------------------------------
import pytest

from recipes.decisions.dns import LookupFailed, mx_check
from recipes.decisions.network import inbound_ipv4


def test_mx_check():
    nodes = ['relay1.example.net', 'relay2.example.net']
    assert mx_check('a.example', nodes, lambda d: ['Relay1.example.net.']) \
        == 'ok: the MX of a.example points at relay1.example.net'
    warning = mx_check('a.example', nodes, lambda d: ['mx.elsewhere.example.'])
    assert warning.startswith('warning: the MX of a.example points at '
                              'mx.elsewhere.example, not at this cluster')
    assert mx_check('a.example', nodes, lambda d: []).startswith(
        'warning: a.example has no MX record')

    def no_dns(domain):
        raise LookupFailed('DNS did not answer (timeout)')
    assert mx_check('a.example', nodes, no_dns) == \
        'could not be checked: DNS did not answer (timeout)'


def test_mx_lookup_without_dns_fails_once_then_at_once():
    from recipes.clients.resolver import mx_lookup
    import dns.resolver
    lookup = mx_lookup(timeout=1)
    original = dns.resolver.Resolver.__init__

    def no_configuration(self, *a, **kw):
        raise dns.resolver.NoResolverConfiguration('no nameservers')
    dns.resolver.Resolver.__init__ = no_configuration
    try:
        for domain in ('a.example', 'b.example'):
            with pytest.raises(LookupFailed):
                lookup(domain)
    finally:
        dns.resolver.Resolver.__init__ = original


def test_inbound_listens_on_the_nodes_own_ipv4_only():
    assert inbound_ipv4('192.0.2.10') == '192.0.2.10'
    assert inbound_ipv4('10.0.0.5') == '10.0.0.5'
    for shared in ('127.0.0.1', '127.0.1.1', '0.0.0.0', '169.254.1.1', '',
                   'fd00::1', 'not-an-address'):
        assert inbound_ipv4(shared) == ''
