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


def every_domain_verified(names):
    return set(names), {}


def accept(shared_instances, claims=None, conflicts=None,
           verify=every_domain_verified):
    return domains.accept(shared_instances, claims or {}, conflicts or {},
                          verify)


def test_first_claim_wins_and_second_claimant_gets_an_error():
    accepted, errors, unverified, _ = accept([
        shared('first', 'example.com', 'fd00::2'),
        shared('second', 'Example.COM', 'fd00::3'),
        shared('other', 'example.org', 'fd00::4'),
    ])
    assert [(d['reference'], d['name'], d['mail-server-host'])
            for d in accepted] == [('first', 'example.com', 'fd00::2'),
                                   ('other', 'example.org', 'fd00::4')]
    # upstream's words, which its users match on
    assert errors == {'second': {'domain': 'example.com',
                                 'error': 'this domain has already been '
                                          'claimed'}}
    assert unverified == {}


def test_nothing_claimed():
    assert accept([]) == ([], {}, {}, {})


def test_the_first_claim_stays_first_whatever_the_order_listed():
    _, _, _, claims = accept([shared('first', 'example.com')])
    accepted, errors, _, claims = accept(
        [shared('second', 'example.com'), shared('first', 'example.com')],
        claims)
    assert [d['reference'] for d in accepted] == ['first']
    assert list(errors) == ['second']
    # the owner is destroyed: the next claimant gets the domain
    accepted, errors, _, claims = accept(
        [shared('second', 'example.com')], claims)
    assert [d['reference'] for d in accepted] == ['second'] and not errors
    assert claims == {'example.com': 'second'}


def test_invalid_name_and_missing_host_are_errors_of_that_instance_only():
    accepted, errors, _, _ = accept([
        shared('bad', 'under_score.example.com'),
        shared('nohost', 'example.net', ''), shared('good', 'Example.COM')])
    assert [d['name'] for d in accepted] == ['example.com']
    assert errors['bad']['domain'] == 'under_score.example.com'
    assert "name 'under_score.example.com' is not a domain name" in \
        errors['bad']['error']
    assert 'mail-server-host' in errors['nohost']['error']


def test_a_host_that_is_not_an_address_is_an_error_of_that_instance_only():
    # the schema's pattern lets '1.2.3' through; the node's profile would
    # fail on it for every domain
    accepted, errors, _, _ = accept([
        shared('bad', 'bad.example.net', '1.2.3'),
        shared('good', 'good.example.net', '192.0.2.25')])
    assert [d['name'] for d in accepted] == ['good.example.net']
    assert errors['bad'] == {'domain': 'bad.example.net', 'error': (
        "mail-server-host '1.2.3' is not an IP address: give the IPv6 or "
        "IPv4 address of the backend that hosts bad.example.net (or "
        "http-endpoint, the HTTPS API that receives its mail)")}


def test_only_a_verified_domain_is_claimed_and_it_stays_claimed():
    asked = []

    def verify(names):
        asked.extend(names)
        return {n for n in names if n != 'elsewhere.example'}, {
            'elsewhere.example': 'the MX of elsewhere.example points at '
                                 'mx.elsewhere.example'}
    accepted, errors, unverified, claims = accept(
        [shared('mine', 'example.com'), shared('usurper', 'elsewhere.example'),
         shared('late', 'example.com')], verify=verify)
    assert [d['reference'] for d in accepted] == ['mine']
    assert unverified == {'usurper': {
        'domain': 'elsewhere.example',
        'why': 'the MX of elsewhere.example points at mx.elsewhere.example'}}
    # an unverified claim holds nothing: the owner of the domain may come
    assert claims == {'example.com': 'mine'}
    assert errors['late']['error'] == 'this domain has already been claimed'
    # the next run does not look a claimed domain up again: it stays
    # verified, whatever DNS says now
    asked.clear()
    accepted, _, _, _ = accept([shared('mine', 'example.com')], claims,
                               verify=lambda names: (set(), {
                                   n: 'DNS did not answer' for n in names}))
    assert [d['reference'] for d in accepted] == ['mine']


def test_a_domain_under_two_smarthosts_is_refused_in_upstreams_words():
    configs = smarthosts.relay_configs({
        'topology': {'n1': {'fqdn': 'r1.example.com'}},
        'default-relay-config': {'proxy-map': {
            'a': {'host': 'smtp.a.example', 'domains': ['example.com']},
            'b': {'host': 'smtp.b.example', 'domains': ['Example.com']},
            'c': {'host': 'smtp.c.example', 'domains': ['example.com']}}}})
    conflicts = smarthosts.conflicts(configs)
    assert conflicts == [
        ('example.com', "Domain 'example.com' appears in multiple proxies: "
                        "'a' and 'b'. Each domain must appear in only one "
                        "proxy's domains list."),
        ('example.com', "Domain 'example.com' appears in multiple proxies: "
                        "'a' and 'c'. Each domain must appear in only one "
                        "proxy's domains list.")]
    accepted, errors, _, _ = accept(
        [shared('first', 'example.com'), shared('other', 'example.org')],
        conflicts={'example.com': conflicts[0][1]})
    assert [d['name'] for d in accepted] == ['example.org']
    assert errors['first'] == {'domain': 'example.com',
                               'error': conflicts[0][1]}
    assert smarthosts.proxied_domains(configs) == {'example.com'}


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
    accepted, _, _, _ = accept([
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


DKIM = {'name': 'r1-example-net._domainkey.example.com', 'type': 'TXT',
        'value': 'v=DKIM1; k=rsa; p=AAAA'}
NODES = [{'name': 'n1', 'fqdn': 'r1.example.net', 'smtp-ipv6': 'fd00::9',
          'submission-port': '10587', 'tls-fingerprints': ['AA', 'BB'],
          'dns-records': [DKIM, dict(DKIM, name=DKIM['name'].replace(
              'example.com', 'other.example'))]}]


def test_publications_carry_upstreams_keys_as_json_values():
    accepted, errors, _, _ = accept([
        shared('p', 'example.com', authentication='password'),
        shared('dup', 'example.com'), shared('n', 'example.org')])
    creds = domains.credentials(accepted, {}, hash_password, verify_password)
    configs = {'default-relay-config': {'proxy-map': {'s': {
        'host': 'smtp.provider.example', 'domains': ['example.com']}}}}
    results = domains.publications(accepted, errors, {}, creds, NODES,
                                   configs)
    assert results['dup'] == {'domain': 'example.com',
                              'error': 'this domain has already been claimed'}
    p = results['p']
    assert p['outbound-host'] == 'fd00::9'
    assert p['outbound-hosts'] == ['fd00::9']
    assert p['outbound-smtp-port'] == '10587'
    assert p['outbound-has-proxy'] is True
    assert results['n']['outbound-has-proxy'] is False
    assert p['tls-fingerprints'] == ['AA', 'BB']
    assert p['outbound-user'] == 'example.com'
    assert p['outbound-password'] == creds['p']['password']
    # upstream's zone text: one MX line per node
    assert p['dns-entries'] == 'example.com. MX 10 r1.example.net.'
    records = p['dns-records']
    assert {'name': 'example.com', 'type': 'MX',
            'value': '10 r1.example.net.'} in records
    assert {'name': 'example.com', 'type': 'TXT', 'value':
            'v=spf1 ip6:fd00::9 include:smtp.provider.example ~all'} in records
    # this domain's DKIM key, not another domain's
    assert [r for r in records if '_domainkey' in r['name']] == [DKIM]
    assert any(r['name'] == '_dmarc.example.com' for r in records)
    assert domains.missing_keys(accepted, NODES) == [('n1', 'example.org')]
    assert domains.missing_keys(accepted, [dict(NODES[0], **{
        'dns-records': []})]) == [('n1', 'example.com'), ('n1', 'example.org')]
    with_relay_domain = domains.publications(accepted, errors, {}, creds,
                                             NODES, configs,
                                             'relay.example.net')
    assert with_relay_domain['p']['outbound-host'] == 'relay.example.net'
    assert with_relay_domain['p']['outbound-hosts'] == ['relay.example.net']
    two = domains.publications(accepted, errors, {}, creds, NODES + [dict(
        NODES[0], name='n2', fqdn='r2.example.net', **{'smtp-ipv6': 'fd00::a',
        'tls-fingerprints': ['CC', 'DD']})], configs)
    assert two['p']['outbound-hosts'] == ['fd00::9', 'fd00::a']
    assert two['p']['tls-fingerprints'] == ['AA', 'BB', 'CC', 'DD']


def test_an_unverified_domain_gets_upstreams_error_and_its_mx_records():
    nodes = NODES + [dict(NODES[0], name='n2', fqdn='r2.example.net')]
    results = domains.publications([], {}, {'u': {
        'domain': 'usurped.example', 'why': 'its MX points elsewhere'}}, {},
        nodes, {})
    assert results == {'u': {
        'domain': 'usurped.example',
        'error': 'Your domain has not yet passed our domain verification:\n'
                 'please set MX records pointing to this mail relay cluster',
        'verification': 'its MX points elsewhere',
        'dns-entries': 'usurped.example. MX 10 r1.example.net.\n'
                       'usurped.example. MX 10 r2.example.net.',
        'dns-records': [
            {'name': 'usurped.example', 'type': 'MX',
             'value': '10 r1.example.net.'},
            {'name': 'usurped.example', 'type': 'MX',
             'value': '10 r2.example.net.'}]}}


# -- check-mx and the node's IPv4 ---------------------------------------------------
import pytest

from recipes.decisions.dns import LookupFailed, mx_check
from recipes.decisions.network import inbound_ipv4


def mx(*targets):
    return lambda domain: {'exists': True, 'mx': list(targets),
                           'address': False}


def test_mx_check():
    nodes = ['relay1.example.net', 'relay2.example.net']
    assert mx_check('a.example', nodes, mx('Relay1.example.net.')) \
        == 'ok: the MX of a.example points at relay1.example.net'
    warning = mx_check('a.example', nodes, mx('mx.elsewhere.example.'))
    assert warning.startswith('warning: the MX of a.example points at '
                              'mx.elsewhere.example, not at this cluster')
    assert mx_check('a.example', nodes, mx()).startswith(
        'warning: a.example has no MX record')

    def no_dns(domain):
        raise LookupFailed('DNS did not answer (timeout)')
    assert mx_check('a.example', nodes, no_dns) == \
        'could not be checked: DNS did not answer (timeout)'


def test_a_lookup_without_dns_fails_once_then_at_once():
    from recipes.clients.resolver import domain_lookup
    import dns.resolver
    lookup = domain_lookup(timeout=1)
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


def test_every_publication_is_what_the_response_schema_says():
    from tests.unit.test_schemas import errors, schema
    accepted, errs, _, _ = accept([
        shared('p', 'example.com', authentication='password'),
        shared('dup', 'example.com')])
    creds = domains.credentials(accepted, {}, hash_password, verify_password)
    results = domains.publications(
        accepted, errs, {'u': {'domain': 'u.example', 'why': 'no'}}, creds,
        NODES, {})
    response = schema('mail-server-relay',
                      'instance-cluster-slave-output-schema.json')
    for reference, published in results.items():
        assert errors(response, published) == [], reference
        assert set(published) <= set(response['properties']), reference


def test_zone_text_quotes_and_splits_long_txt_values():
    from recipes.decisions.dns import record, zone_text
    key = 'v=DKIM1; k=rsa; p=' + 'A' * 300
    text = zone_text([record('a.example', 'MX', '10 r.example.net.'),
                      record('s._domainkey.a.example.', 'TXT', key),
                      record('a.example', 'TXT', 'say "hi"')])
    mx, dkim, quoted = text.split('\n')
    assert mx == 'a.example. MX 10 r.example.net.'
    # a TXT string is at most 255 bytes: the key is two strings
    assert dkim == 's._domainkey.a.example. TXT "%s" "%s"' % (key[:255],
                                                              key[255:])
    assert quoted == 'a.example. TXT "say \\"hi\\""'


# -- a domain whose mail goes to an HTTPS API ----------------------------------
def api_shared(reference, name, endpoint='https://api.example.com/v1/email',
               **more):
    return {'reference': reference, 'parameters': dict({
        'name': name, 'http-endpoint': endpoint, 'http-token': 'tok',
        'mail-server-port': 10025, 'authentication': 'password',
        'http-timeout': 30, 'http-concurrency': 10,
        'http-verify-recipients': False}, **more)}


def test_a_domain_names_a_backend_or_an_https_api():
    accepted, errors, _, _ = accept([
        api_shared('api', 'in.example.com'),
        api_shared('plain', 'plain.example.com', 'http://api.example.com/x'),
        api_shared('local', 'local.example.com', 'http://127.0.0.1:8080/x'),
        api_shared('both', 'both.example.com', **{'mail-server-host':
                                                   'fd00::2'}),
        shared('neither', 'neither.example.com', host=None),
    ])
    assert [d['name'] for d in accepted] == ['in.example.com',
                                             'local.example.com']
    assert 'http-endpoint' in errors['plain']['error'] and \
        'plain http' in errors['plain']['error']
    assert errors['both']['error'] == (
        'give mail-server-host (a backend) or http-endpoint (an HTTPS API) '
        'for both.example.com, not both')
    assert 'mail-server-host is missing' in errors['neither']['error'] and \
        'or http-endpoint' in errors['neither']['error']


def test_a_node_gets_the_endpoint_of_an_api_domain():
    accepted, _, _, _ = accept([api_shared('api', 'in.example.com'),
                                shared('backend', 'mail.example.com')])
    creds = domains.credentials(accepted, {}, hash_password, verify_password)
    api, backend = domains.node_domains(accepted, creds)
    assert api['http-endpoint'] == 'https://api.example.com/v1/email'
    assert api['http-token'] == 'tok'     # replaced by the request recipe
    assert 'mail-server-host' not in api and 'mail-server-port' not in api
    assert api['outbound-user'] == 'in.example.com'
    assert 'http-endpoint' not in backend and 'http-timeout' not in backend
    # published as any domain: outbound credentials, DNS records
    nodes = [{'name': 'node1', 'fqdn': 'relay1.example.net',
              'smtp-ipv6': 'fd00::9', 'submission-port': '10587',
              'tls-fingerprints': [], 'dns-records': []}]
    published = domains.publications(accepted, {}, {}, creds, nodes, {})
    assert published['api']['outbound-user'] == 'in.example.com'
    assert published['api']['outbound-password'] == \
        creds['api']['password']
    assert published['api']['dns-entries'] == \
        'in.example.com. MX 10 relay1.example.net.'


def test_node_fqdns_leave_out_a_node_without_one():
    assert domains.node_fqdns({
        'b': {'fqdn': 'relay.b.example'}, 'test': {'state': 'started'},
        'a': {'fqdn': 'relay.a.example'}}) == ['relay.a.example',
                                               'relay.b.example']
