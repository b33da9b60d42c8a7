import os
import stat

from recipes.decisions import dns
from recipes.stores import dkim_keys


def test_selector_is_a_dns_label_per_node():
    assert dns.dkim_selector('relay1.example.com') == 'relay1-example-com'
    long = dns.dkim_selector('a' * 60 + '.example.com')
    assert len(long) == 63


def test_key_is_generated_once_private_and_published(tmp_path):
    path = str(tmp_path / 'example.com.private')
    dkim_keys.ensure_key('/usr/bin/openssl', path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    before = open(path).read()
    dkim_keys.ensure_key('/usr/bin/openssl', path)
    assert open(path).read() == before
    record = dns.dkim_record('sel', 'example.com',
                             dkim_keys.public_key('/usr/bin/openssl', path))
    assert record['name'] == 'sel._domainkey.example.com'
    assert record['value'].startswith('v=DKIM1; k=rsa; p=MIIB')
