import os
import shutil
import ssl
import stat

import pytest

from recipes import certificates

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
