import os
import shutil
import ssl
import stat

import pytest

from recipes.stores import certificates

OPENSSL = shutil.which('openssl')


@pytest.mark.skipif(not OPENSSL, reason='openssl is not installed')
def test_current_and_next_are_created_once(tmp_path):
    directory = str(tmp_path / 'ssl')
    pairs = certificates.ensure(OPENSSL, directory, 'mail.example.com')
    assert pairs['current']['fingerprint'] != pairs['next']['fingerprint']
    assert len(pairs['current']['fingerprint'].split(':')) == 32
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(pairs['current']['key']).st_mode) == 0o600
    # the certificate and the key go together: TLS can serve them
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        pairs['current']['cert'], pairs['current']['key'])
    assert certificates.ensure(OPENSSL, directory, 'mail.example.com') == pairs


@pytest.mark.skipif(not OPENSSL, reason='openssl is not installed')
def test_rotation_promotes_next_and_generates_a_new_next(tmp_path):
    directory = str(tmp_path / 'ssl')
    pairs = certificates.ensure(OPENSSL, directory, 'mail.example.com')
    # not due: a ten-year certificate, renewed 30 days before its end
    assert certificates.ensure(OPENSSL, directory, 'mail.example.com',
                               renew_before_days=30) == pairs
    # a current certificate about to expire: replaced by the next one
    certificates.generate(OPENSSL, pairs['current']['key'],
                          pairs['current']['cert'], 'mail.example.com', days=1)
    rotated = certificates.ensure(OPENSSL, directory, 'mail.example.com',
                                  renew_before_days=30)
    assert rotated['current']['fingerprint'] == pairs['next']['fingerprint']
    assert rotated['next']['fingerprint'] not in (
        pairs['current']['fingerprint'], pairs['next']['fingerprint'])
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        rotated['current']['cert'], rotated['current']['key'])


def test_rotation_due():
    day = certificates.DAY
    now = 1000 * day
    assert not certificates.rotation_due(now - day, now + 100 * day, now, 30)
    assert certificates.rotation_due(now - day, now + 29 * day, now, 30)
    assert certificates.rotation_due(now - 91 * day, now + 900 * day, now, 30,
                                     max_age_days=90)
    assert not certificates.rotation_due(now - 89 * day, now + 900 * day, now,
                                         30, max_age_days=90)
