import json
import os

from recipes.decisions import smarthosts
from recipes.instance import smarthost_passwords

PROXY_MAP = {
    'provider': {'host': 'smtp.example.net', 'port': 587, 'user': 'u1',
                 'password': 'p$1 x', 'domains': ['a.example', 'b.example']},
    'open': {'host': 'mx.example.org', 'port': 25, 'domains': ['c.example']},
}


def test_one_line_per_domain_of_a_smarthost_with_a_login():
    assert smarthosts.relay_password_map(PROXY_MAP).splitlines()[1:] == [
        '@a.example u1:p$1 x', '@b.example u1:p$1 x']


def test_a_domain_under_two_smarthosts_gets_one_line_of_each_map():
    # a duplicate key would make Postfix refuse the whole map (texthash):
    # every other domain's mail would wait; the first smarthost keeps it
    proxy_map = dict(PROXY_MAP, z={'host': 'smtp.z.example', 'port': 465,
                                   'user': 'uz', 'password': 'pz',
                                   'domains': ['A.example', 'd.example']})
    assert smarthosts.relay_password_map(proxy_map).splitlines()[1:] == [
        '@a.example u1:p$1 x',
        '@b.example u1:p$1 x', '@d.example uz:pz']
    assert smarthosts.sender_transports(proxy_map) == [
        ('c.example', 'smarthost:[mx.example.org]:25'),
        ('a.example', 'smarthost:[smtp.example.net]:587'),
        ('b.example', 'smarthost:[smtp.example.net]:587'),
        ('d.example', 'smarthost-tls:[smtp.z.example]:465')]


def test_a_backend_has_one_line_for_its_smarthost_login():
    outbound = {'enable': True, 'host': 'smtp.example.net', 'port': 587,
                'user': 'u', 'password': 'p w'}
    assert smarthosts.backend_password_map(outbound).splitlines() == [
        '[smtp.example.net]:587 u:p w']
    for without in ({'enable': True}, dict(outbound, enable=False),
                    {'enable': True, 'host': 'h', 'port': 25}):
        assert smarthosts.backend_password_map(without) == ''


def test_the_recipe_reads_the_parameters_file_not_its_options(tmp_path):
    output = str(tmp_path / 'smarthost-passwords')
    parameters_file = tmp_path / 'parameters.json'
    parameters_file.write_text(json.dumps({'configuration': {
        'fqdn': 'relay.example.net', 'proxy-map': PROXY_MAP}}))
    buildout = {'slap-configuration': {
        'parameters-file': str(parameters_file)}}
    options = {'parameter': 'proxy-map', 'output': output}
    smarthost_passwords.Recipe(buildout, 'map', options).install()
    # nothing secret recorded
    assert options == {'parameter': 'proxy-map', 'output': output}
    assert os.stat(output).st_mode & 0o777 == 0o600
    assert '@a.example u1:p$1 x' in open(output).read()
