"""software/stack/buildout.hash.cfg pins every file the software releases
download next to their profiles: a file changed without running
scripts/update-buildout-hash.py would make every node refuse the build."""
import configparser
import hashlib
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def load_script():
    spec = importlib.util.spec_from_file_location(
        'update_buildout_hash',
        os.path.join(ROOT, 'scripts', 'update-buildout-hash.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hash_file():
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read(os.path.join(ROOT, 'software', 'stack', 'buildout.hash.cfg'))
    return parser


def test_every_checksum_is_the_file_s():
    parser = hash_file()
    stale = []
    for path in parser['profile-files']['sections'].split():
        with open(os.path.join(ROOT, path), 'rb') as f:
            if hashlib.md5(f.read()).hexdigest() != parser[path]['md5sum']:
                stale.append(path)
    for (section, option), path in load_script().COMPONENT_FILES.items():
        with open(os.path.join(ROOT, path), 'rb') as f:
            if hashlib.md5(f.read()).hexdigest() != parser[section][option]:
                stale.append(path)
    assert not stale, ('stale checksums in software/stack/buildout.hash.cfg '
                       '(run python3 scripts/update-buildout-hash.py): %s'
                       % ', '.join(stale))


def test_the_file_is_what_the_script_writes():
    """Every template and schema is listed (a new one too), nothing else."""
    script = load_script()
    with open(os.path.join(ROOT, script.HASH_FILE)) as f:
        assert f.read() == script.render(), (
            'run python3 scripts/update-buildout-hash.py')


def test_a_changed_file_is_seen(tmp_path, monkeypatch):
    script = load_script()
    monkeypatch.setattr(script, 'ROOT', str(tmp_path))
    monkeypatch.setattr(script, 'PROFILE_FILES', ['instance-templates/**'])
    monkeypatch.setattr(script, 'COMPONENT_FILES', {})
    template = tmp_path / 'instance-templates' / 'common' / 'a.cfg.in'
    template.parent.mkdir(parents=True)
    template.write_text('one\n')
    (tmp_path / 'software' / 'stack').mkdir(parents=True)
    assert script.main([]) == 0
    assert script.main(['--check']) == 0
    template.write_text('two\n')
    assert script.main(['--check']) == 1
    assert script.main([]) == 0
    assert hashlib.md5(b'two\n').hexdigest() in (
        tmp_path / script.HASH_FILE).read_text()


def versions():
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(ROOT, 'software', 'stack', 'versions.cfg'))
    return dict(parser['versions'])


def test_the_release_pins_the_version_setup_py_builds():
    with open(os.path.join(ROOT, 'setup.py')) as f:
        version = re.search(r"^VERSION = '([^']+)'", f.read(), re.M).group(1)
    assert versions()['slapos.mailbundle'] == version


@pytest.mark.parametrize('name', ['jsonschema', 'libpass', 'Jinja2', 'pyspf',
                                  'dnspython', 'slapos.core',
                                  'slapos.cookbook'])
def test_the_release_pins_what_the_venv_pins(name):
    """One version of each package, in the release and in the virtual
    environment the tests run with."""
    with open(os.path.join(ROOT, 'scripts', 'constraints.txt')) as f:
        pins = dict(line.split('#')[0].strip().split('==')
                    for line in f if '==' in line.split('#')[0])
    assert versions()[name] == pins[name]
