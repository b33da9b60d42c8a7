import json
import os

from recipes import smarthost_passwords

PROXY_MAP = {
    'provider': {'host': 'smtp.example.net', 'port': 587, 'user': 'u1',
                 'password': 'p$1 x', 'domains': ['a.example', 'b.example']},
    'open': {'host': 'mx.example.org', 'domains': ['c.example']},
}


def test_one_line_per_domain_of_a_smarthost_with_a_login():
    assert smarthost_passwords.password_map(PROXY_MAP).splitlines()[1:] == [
        '@a.example u1:p$1 x', '@b.example u1:p$1 x']


def test_the_recipe_reads_the_parameters_not_its_options(tmp_path):
    output = str(tmp_path / 'smarthost-passwords')
    buildout = {'slap-configuration': {'configuration': json.dumps(
        {'fqdn': 'relay.example.net', 'proxy-map': PROXY_MAP})}}
    options = {'output': output}
    smarthost_passwords.Recipe(buildout, 'map', options).install()
    assert options == {'output': output}          # nothing secret recorded
    assert os.stat(output).st_mode & 0o777 == 0o600
    assert '@a.example u1:p$1 x' in open(output).read()
