"""custom-inbound-certificate: a PEM key then certificate chain, checked
with the real openssl before it is served."""
import json
import os
import subprocess

import pytest

from recipes.instance.certificates import CustomRecipe
from recipes.stores import certificates


def make(tmp_path, name, days=30):
    key, cert = tmp_path / (name + '.key'), tmp_path / (name + '.crt')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:prime256v1', '-nodes', '-days', str(days),
                    '-subj', '/CN=%s' % name, '-keyout', str(key), '-out',
                    str(cert)], check=True, capture_output=True)
    return key.read_text(), cert.read_text()


def test_a_valid_key_and_chain_is_installed(tmp_path):
    key, cert = make(tmp_path, 'leaf')
    _, ca = make(tmp_path, 'ca')
    checked = certificates.check_custom('openssl', key + cert + ca)
    assert not os.path.exists(str(tmp_path / 'ssl'))  # checking writes nothing
    key_path, cert_path = certificates.install_custom(
        str(tmp_path / 'ssl'), *checked)
    assert os.stat(key_path).st_mode & 0o077 == 0
    assert open(cert_path).read().count('BEGIN CERTIFICATE') == 2
    assert certificates.fingerprint(cert_path) == \
        certificates.fingerprint(str(tmp_path / 'leaf.crt'))


@pytest.mark.parametrize('case, message', [
    ('mismatch', 'the private key does not match the first certificate'),
    ('no-key', 'no private key found'),
    ('no-cert', 'no certificate found'),
    ('garbage-cert', 'the certificate cannot be read'),
    ('encrypted', 'the private key is encrypted'),
])
def test_a_bad_one_is_refused_with_the_reason(tmp_path, case, message):
    key, cert = make(tmp_path, 'leaf')
    other_key, _ = make(tmp_path, 'other')
    pem = {'mismatch': other_key + cert, 'no-key': cert, 'no-cert': key,
           'garbage-cert': key + '-----BEGIN CERTIFICATE-----\nAAAA\n'
                                 '-----END CERTIFICATE-----\n',
           'encrypted': '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n'
                        '-----END ENCRYPTED PRIVATE KEY-----\n' + cert}[case]
    with pytest.raises(ValueError) as e:
        certificates.check_custom('openssl', pem)
    assert message in str(e.value)
    key_material = key.splitlines()[1]
    assert key_material not in str(e.value)
    assert not os.path.exists(str(tmp_path / 'ssl' / 'custom.crt'))


def recipe(tmp_path, pem):
    key, cert = make(tmp_path, 'self-signed')
    (tmp_path / 'self.key').write_text(key)
    (tmp_path / 'self.crt').write_text(cert)
    # the key is read from the partition's parameters file, never an option
    parameters = tmp_path / 'parameters.json'
    parameters.write_text(json.dumps({'configuration': {
        'fqdn': 'relay.example.net', 'custom-inbound-certificate': pem}}))
    buildout = {'slap-configuration': {'parameters-file': str(parameters)}}
    options = {'parameter': 'custom-inbound-certificate', 'openssl': 'openssl',
               'directory': str(tmp_path / 'inbound'),
               'key': str(tmp_path / 'self.key'),
               'cert': str(tmp_path / 'self.crt')}
    recipe = CustomRecipe(buildout, 'inbound-certificate', options)
    for line in pem.splitlines():
        if line and not line.startswith('-----'):
            assert line not in json.dumps(options)
    # computing the options wrote nothing; installing writes the files
    assert not os.path.exists(str(tmp_path / 'inbound'))
    recipe.install()
    assert os.path.exists(options['cert'])
    return options


def test_the_recipe_serves_the_given_certificate(tmp_path):
    key, cert = make(tmp_path, 'given')
    options = recipe(tmp_path, key + cert)
    assert options['custom'] == 'yes' and options['error'] == ''
    assert options['cert'] == str(tmp_path / 'inbound' / 'custom.crt')
    assert options['fingerprint'] == certificates.fingerprint(
        str(tmp_path / 'given.crt'))


def test_the_recipe_keeps_the_self_signed_one_when_refused(tmp_path):
    _, cert = make(tmp_path, 'given')
    options = recipe(tmp_path, cert)
    assert options['custom'] == 'no'
    assert options['cert'] == str(tmp_path / 'self.crt')
    assert options['error'].startswith('custom-inbound-certificate refused: '
                                       'no private key found')
    assert 'self-signed certificate is served meanwhile' in options['error']
