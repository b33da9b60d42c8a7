"""recipes.instance.switch_softwaretype on a real zc.buildout."""
import pytest
from zc.buildout import UserError
from zc.buildout.buildout import Buildout, Options

from recipes.instance.switch_softwaretype import Recipe, SubBuildout

ROOT = '''
[buildout]
parts =
offline = true
newest = false

[slap-connection]
computer-id = COMP-1
partition-id = slappart3

[slap-configuration]
{slap_configuration}

[switch-softwaretype]
default = instance-default:output
relay = instance-relay:output

[instance-default]
output = ${{buildout:directory}}/profiles/default.cfg
[instance-relay]
output = ${{buildout:directory}}/profiles/relay.cfg
'''

# What a type's profile does: write what it received to a file named after
# the type, in the buildout directory.
TYPE_PROFILE = '''
[buildout]
parts = chosen
[chosen]
recipe = slapos.recipe.template:jinja2
inline = {type} {{{{ slap['configuration.fqdn'] }}}}
  {{{{- ' ' ~ connection['computer-id'] ~ ' ' ~ slap['odd'] }}}}
context =
  section slap slap-configuration
  section connection slap-connection
output = ${{buildout:directory}}/{type}-ran
'''


@pytest.fixture(autouse=True)
def no_user_defaults(tmp_path, monkeypatch):
    # the sub-buildout reads ~/.buildout/default.cfg: keep the tests' own
    monkeypatch.setenv('BUILDOUT_HOME', str(tmp_path / 'home'))


def root_buildout(tmp_path, software_type='relay', root=ROOT):
    profiles = tmp_path / 'profiles'
    profiles.mkdir(exist_ok=True)
    for name in ('default', 'relay'):
        (profiles / ('%s.cfg' % name)).write_text(TYPE_PROFILE.format(
            type=name))
    sc = ('slap-software-type = %s' % software_type
          if software_type is not None else '')
    cfg = tmp_path / 'instance.cfg'
    cfg.write_text(root.format(slap_configuration=sc))
    buildout = Buildout(str(cfg), [('buildout', 'directory', str(tmp_path))],
                        use_user_defaults=False)
    if software_type is not None:
        # as the slapconfiguration recipe sets them: data, never syntax
        buildout['slap-configuration']['configuration.fqdn'] = 'r.example'
        buildout['slap-configuration']['odd'] = '${not:a-reference} $${x}'
    return buildout


def switch(buildout):
    return Recipe(buildout, 'switch-softwaretype',
                  buildout['switch-softwaretype'])


@pytest.mark.parametrize('software_type', ['default', 'relay'])
def test_the_profile_of_the_software_type_runs(tmp_path, software_type):
    recipe = switch(root_buildout(tmp_path, software_type))
    assert recipe.profile == str(tmp_path / 'profiles' /
                                 ('%s.cfg' % software_type))
    assert recipe.install() == []
    # in the root's directory, not the profile's, with the root's
    # slap-connection and the slap-configuration values verbatim
    assert (tmp_path / ('%s-ran' % software_type)).read_text() == \
        '%s r.example COMP-1 ${not:a-reference} $${x}' % software_type
    other = {'default': 'relay', 'relay': 'default'}[software_type]
    assert not (tmp_path / ('%s-ran' % other)).exists()
    # its parts are recorded apart from the root's
    installed = (tmp_path / '.installed-switch-softwaretype.cfg').read_text()
    assert 'parts = chosen' in installed
    # a second run (slapgrid runs every partition again) updates in place
    switch(root_buildout(tmp_path, software_type)).update()


def test_the_other_types_sections_are_never_initialised(tmp_path):
    # the default type's section would fail if it were computed
    root = ROOT.replace(
        'output = ${{buildout:directory}}/profiles/default.cfg',
        'output = ${{nowhere:at-all}}')
    recipe = switch(root_buildout(tmp_path, 'relay', root))
    recipe.install()
    assert (tmp_path / 'relay-ran').exists()


def test_the_sub_buildout_does_not_run_the_parameters_recipe_again(tmp_path):
    # [slap-configuration] of the root has a recipe (the one that asks the
    # master): the sub-buildout gets its values, not its recipe
    root = ROOT.replace('[slap-configuration]\n', '''[slap-configuration]
recipe = slapos.recipe.template:jinja2
inline = asked the master
output = ${{buildout:directory}}/master-asked
''')
    buildout = root_buildout(tmp_path, 'relay', root)
    sub = SubBuildout(buildout, str(tmp_path / 'profiles' / 'relay.cfg'),
                      '.installed-sub.cfg')
    assert 'recipe' not in sub['slap-configuration']
    assert sub['slap-configuration']['slap-software-type'] == 'relay'
    sub.install([])
    assert (tmp_path / 'relay-ran').exists()
    assert not (tmp_path / 'master-asked').exists()


@pytest.mark.parametrize('root', [
    ROOT, ROOT.replace('[slap-configuration]\n{slap_configuration}\n', '')],
    ids=['no-software-type', 'no-section'])
def test_without_slap_configuration_the_message_names_the_section(tmp_path,
                                                                   root):
    buildout = root_buildout(tmp_path, None, root)
    with pytest.raises(UserError) as e:
        switch(buildout)
    message = str(e.value)
    assert '[switch-softwaretype]' in message
    assert '[slap-configuration]' in message
    assert 'slapos.mailbundle:slapconfiguration' in message


def test_an_unknown_software_type_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(UserError) as e:
        switch(root_buildout(tmp_path, 'cluster'))
    assert str(e.value) == ("software type 'cluster' is not one of this "
                            "software release's types: default, relay")


def test_the_recipe_option_is_no_software_type(tmp_path):
    # the section as buildout gives it to the recipe, ``recipe`` included
    buildout = root_buildout(tmp_path, 'recipe')
    options = Options(buildout, 'switch-softwaretype', {
        'recipe': 'slapos.mailbundle:switch-softwaretype',
        'default': 'instance-default:output',
        'relay': 'instance-relay:output'})
    with pytest.raises(UserError) as e:
        Recipe(buildout, 'switch-softwaretype', options)
    assert str(e.value) == ("software type 'recipe' is not one of this "
                            "software release's types: default, relay")


def test_a_reference_without_a_colon_says_how_to_write_it(tmp_path):
    root = ROOT.replace('relay = instance-relay:output',
                        'relay = ${{instance-relay:output}}')
    with pytest.raises(UserError) as e:
        switch(root_buildout(tmp_path, 'relay', root))
    message = str(e.value)
    assert message.startswith('[switch-softwaretype] relay = ')
    assert 'section:option' in message and 'instance-default:output' in message
