"""Which certificate a relay node accepts from its backends and smarthosts
(``recipes.decisions.tls_policy``)."""
from recipes.decisions import tls_policy

CURRENT = 'ab' * 32
NEXT = ':'.join(['CD'] * 32)
CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'


def test_backends_are_pinned_by_their_published_fingerprints():
    domains = [
        {'name': 'a.example', 'mail-server-host': 'fd00::3',
         'mail-server-port': 10025, 'fingerprints': [CURRENT, NEXT]},
        # a second domain of the same backend: one line
        {'name': 'b.example', 'mail-server-host': 'fd00::3',
         'mail-server-port': 10025, 'fingerprints': [CURRENT]},
        # ordered without fingerprints: the transport's encrypt
        {'name': 'c.example', 'mail-server-host': 'fd00::4',
         'mail-server-port': 10025, 'authentication': 'password'}]
    assert tls_policy.backend_policies(domains) == {
        '[fd00::3]:10025': 'fingerprint match=%s|%s' % (
            ':'.join(['AB'] * 32), NEXT)}


def test_smarthosts_are_verified_against_the_system_a_ca_or_fingerprints():
    host = {'host': 'smtp.provider.example', 'port': 587}
    assert tls_policy.smarthost_policy(host) == \
        'secure match=smtp.provider.example'
    assert tls_policy.smarthost_policy(
        dict(host, tls={'ca': CA, 'name': 'mx.provider.example'}),
        '/p/ca.pem') == 'secure match=mx.provider.example tafile=/p/ca.pem'
    assert tls_policy.smarthost_policy(
        dict(host, tls={'fingerprints': [NEXT]})) == \
        'fingerprint match=' + NEXT
    text = tls_policy.relay_policy_map(
        [], {'b': dict(host, tls={'ca': CA}), 'a': {'host': 'fd00::9',
                                                    'port': 10465}},
        '/etc/smarthost-%s-ca.pem')
    assert text.splitlines()[1:] == [
        '[fd00::9]:10465 secure match=fd00::9',
        '[smtp.provider.example]:587 secure match=smtp.provider.example '
        'tafile=/etc/smarthost-b-ca.pem']
