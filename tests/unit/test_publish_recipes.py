"""recipes.instance.publish: file_lines, publish and publish-shared."""
import json
import os
import stat

import pytest
from zc.buildout import UserError
from zc.buildout.buildout import Buildout, Options

from recipes.instance.publish import (Recipe, SharedRecipe, file_lines,
                                      shared_publications)
from tests.unit.fake_master import FakeMaster

SLAP_MASTER = {
    'server-url': 'http://master.invalid', 'key-file': '', 'cert-file': '',
    'computer-id': 'COMP-1', 'partition-id': 'slappart0'}


# -- file_lines ---------------------------------------------------------------
def test_file_lines():
    # as buildout gives a multi-line option: a first empty line, indentation
    assert file_lines('\n  admin-password /srv/etc/admin password\n\n'
                      'token\t/srv/etc/token\n') == {
        'admin-password': '/srv/etc/admin password',
        'token': '/srv/etc/token'}
    assert file_lines('') == {} and file_lines('\n  \n') == {}


# -- publish ------------------------------------------------------------------
PROFILE = '''
[buildout]
parts =

[webmail]
-publish = webmail-url
-files = webmail-admin-password ${buildout:directory}/etc/webmail-admin
webmail-url = https://[fd00::1]:8443/
listen = fd00::1 8443

[dkim]
-files =
  dkim-record ${buildout:directory}/etc/dkim.txt
selector = relay1
'''


@pytest.fixture
def buildout(tmp_path, monkeypatch):
    monkeypatch.setenv('BUILDOUT_HOME', str(tmp_path / 'home'))
    (tmp_path / 'etc').mkdir()
    (tmp_path / 'etc' / 'webmail-admin').write_text('webmail-s3cret\n')
    (tmp_path / 'etc' / 'dkim.txt').write_text('v=DKIM1; p=AAAA\n')
    (tmp_path / 'etc' / 'setup-token').write_text('tok-s3cret')
    cfg = tmp_path / 'instance.cfg'
    cfg.write_text(PROFILE)
    return Buildout(str(cfg), [('buildout', 'directory', str(tmp_path))],
                    use_user_defaults=False)


def publish_section(buildout, **more):
    """The section as buildout hands it to the recipe, ``recipe`` and the
    slap-master options included."""
    return Options(buildout, 'publish-connection-parameter', dict(
        SLAP_MASTER, recipe='slapos.mailbundle:publish', **more))


def test_options_extended_sections_and_files_are_published(
        buildout, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    options = publish_section(buildout, **{
        '-extends': 'webmail dkim', 'smtp-port': '10025',
        'relay-hosts': '["fd00::2"]', '_internal': 'x',
        '-files': 'setup-token ${buildout:directory}/etc/setup-token'})
    before = dict(options)
    assert Recipe(buildout, 'publish-connection-parameter',
                  options).install() == []
    assert master.connections == [('http://master.invalid', 'COMP-1',
                                   'slappart0')]
    assert master.publications() == [(None, {
        'smtp-port': '10025', 'relay-hosts': '["fd00::2"]',
        'webmail-url': 'https://[fd00::1]:8443/',
        # a file's content, without its final newline
        'webmail-admin-password': 'webmail-s3cret',
        # [dkim] has no -publish: all its options
        'selector': 'relay1', 'dkim-record': 'v=DKIM1; p=AAAA',
        'setup-token': 'tok-s3cret'})]
    # the secrets were read at install, never put into an option
    assert dict(options) == before
    assert 's3cret' not in json.dumps(dict(options))


def test_a_section_without_publish_publishes_all_its_options(
        buildout, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    options = publish_section(buildout, **{'-extends': 'dkim'})
    Recipe(buildout, 'publish-connection-parameter', options).install()
    assert master.publications() == [(None, {
        'selector': 'relay1', 'dkim-record': 'v=DKIM1; p=AAAA'})]


def test_a_file_changed_since_the_options_were_read_is_published_new(
        buildout, tmp_path, monkeypatch):
    # buildout computes every section before installing any part: the file
    # a part writes later in the same run is what gets published
    master = FakeMaster().install(monkeypatch)
    recipe = Recipe(buildout, 'publish-connection-parameter',
                    publish_section(buildout, **{'-extends': 'webmail'}))
    (tmp_path / 'etc' / 'webmail-admin').write_text('rotated\n')
    recipe.install()
    assert master.publications()[0][1]['webmail-admin-password'] == 'rotated'


SOFTWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'software')


def test_values_are_published_as_the_response_schema_types_them(
        buildout, monkeypatch):
    # what a script written for upstream reads: integers, lists
    master = FakeMaster().install(monkeypatch)
    options = publish_section(buildout, **{
        '-software-schema': os.path.join(SOFTWARE, 'mail-server-relay',
                                         'software.cfg.json'),
        '-software-type': 'cluster',
        'relay-hosts': '["fd00::2", "fd00::3"]',
        'backend-domains': 'a.example.com\nb.example.com',
        'errors': '[]'})
    Recipe(buildout, 'publish-connection-parameter', options).install()
    assert master.publications() == [(None, {
        'relay-hosts': ['fd00::2', 'fd00::3'],
        'backend-domains': 'a.example.com\nb.example.com', 'errors': []})]
    options = publish_section(buildout, **{
        '-software-schema': os.path.join(SOFTWARE, 'mail-server',
                                         'software.cfg.json'),
        '-software-type': 'default', 'smtp-port': 'x'})
    with pytest.raises(UserError) as error:
        Recipe(buildout, 'publish-connection-parameter', options).install()
    assert "smtp-port = 'x' is not a JSON integer" in str(error.value)
    assert 'instance-default-output-schema.json' in str(error.value)


# -- publish-shared -----------------------------------------------------------
INVALID = [{'reference': '_bad', 'parameters': {'address': 'x'},
            'errors': "$.address: 'x' does not match\n"}]


def shared(tmp_path, results, invalid=INVALID):
    results_file = tmp_path / 'published-accounts.json'
    results_file.write_text(json.dumps(results))
    options = dict(SLAP_MASTER, **{
        'results-file': str(results_file), 'invalid': json.dumps(invalid),
        'state-file': str(tmp_path / '.published-shared.json')})
    return SharedRecipe(None, 'publish-shared', options)


RESULTS = {'_alice': {'address': 'alice@example.com',
                      'setup-url': 'https://x/?token=alice-s3cret'},
           '_bob': {'address': 'bob@example.com', 'setup-url': ''}}


def test_every_shared_instance_is_published_then_only_what_changed(
        tmp_path, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    assert shared(tmp_path, RESULTS).install() == []
    assert dict(master.publications()) == {
        '_alice': RESULTS['_alice'], '_bob': RESULTS['_bob'],
        '_bad': {'error': "invalid parameters: $.address: 'x' does not "
                          "match"}}
    # the state holds what was published, tokens included: private
    state = tmp_path / '.published-shared.json'
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    shared(tmp_path, RESULTS).install()
    assert len(master.published) == 3
    changed = dict(RESULTS, _bob={'address': 'bob@example.com',
                                  'setup-url': 'https://x/?token=new'})
    shared(tmp_path, changed, []).install()
    # _bad is no longer invalid (gone): nothing to tell it
    assert master.publications()[3:] == [('_bob', changed['_bob'])]


def test_a_shared_instance_that_comes_back_is_published_again(
        tmp_path, monkeypatch):
    master = FakeMaster().install(monkeypatch)
    shared(tmp_path, RESULTS, []).install()
    shared(tmp_path, {'_bob': RESULTS['_bob']}, []).install()
    assert len(master.published) == 2
    shared(tmp_path, RESULTS, []).install()
    assert master.publications()[2:] == [('_alice', RESULTS['_alice'])]


class FailingMaster(FakeMaster):
    """A master that stops answering after ``answered`` publications."""

    def __init__(self, answered):
        super().__init__()
        self.answered = answered

    def setConnectionDict(self, connection_dict, slave_reference=None):
        if len(self.published) == self.answered:
            raise ConnectionError('master unreachable')
        super().setConnectionDict(connection_dict, slave_reference)


def test_what_the_master_did_not_get_is_published_at_the_next_run(
        tmp_path, monkeypatch):
    FailingMaster(1).install(monkeypatch)
    with pytest.raises(ConnectionError):
        shared(tmp_path, RESULTS, []).install()
    master = FakeMaster().install(monkeypatch)
    shared(tmp_path, RESULTS, []).install()
    assert sorted(r for r, _ in master.publications()) == ['_alice', '_bob']


def test_an_invalid_shared_instance_gets_its_error_only():
    # listed as invalid by the schema and still in the results: the error
    published = shared_publications(
        {'_bad': {'address': 'x'}, '_ok': {'address': 'ok@example.com'}},
        INVALID)
    assert published == {
        '_bad': {'error': "invalid parameters: $.address: 'x' does not "
                          "match"},
        '_ok': {'address': 'ok@example.com'}}
