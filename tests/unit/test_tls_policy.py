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
        [], {'b': dict(host, tls={'ca': CA}), 'a': {'host': '2001:db9::9',
                                                    'port': 10465}},
        '/etc/smarthost-%s-ca.pem')
    assert text.splitlines()[1:] == [
        '[2001:db9::9]:10465 secure match=2001:db9::9',
        '[smtp.provider.example]:587 secure match=smtp.provider.example '
        'tafile=/etc/smarthost-b-ca.pem']


def test_a_smarthost_at_a_private_address_without_tls_is_encrypted_only():
    # upstream's requests name their smarthosts by address and give no CA:
    # TLS required, not verified, and a warning that names the entry
    for host in ('fd46:8ad8:b3d4::7', '10.0.3.2', '127.0.0.1', '::1',
                 'fe80::1'):
        smarthost = {'host': host, 'port': 10025}
        assert tls_policy.smarthost_policy(smarthost) == 'encrypt'
        assert tls_policy.warnings({'lab': smarthost}) == [
            "proxy-map entry 'lab' is reached by the private address %s "
            "without tls: its certificate is not verified (TLS is "
            "required); give it tls.ca or tls.fingerprints to verify it"
            % host]
    # given tls, a private address is verified as it says
    assert tls_policy.smarthost_policy(
        {'host': '10.0.3.2', 'port': 25, 'tls': {'ca': CA}},
        '/ca.pem') == 'secure match=10.0.3.2 tafile=/ca.pem'
    # a public address or a name: verified against the system's CAs
    for host in ('2001:4860:4860::8888', '8.8.8.8', 'mail.example.net'):
        smarthost = {'host': host, 'port': 587}
        assert tls_policy.smarthost_policy(smarthost) == \
            'secure match=%s' % host
        assert tls_policy.warnings({'provider': smarthost}) == []
