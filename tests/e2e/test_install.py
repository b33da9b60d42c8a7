"""Both software releases installed as a SlapOS node installs them: from
their http URLs, with the node's own buildout (an environment without this
bundle), every egg installed into the software's directory, every file next
to a profile downloaded and checked against buildout.hash.cfg; and, as a
development VM does, from the checkout's local path."""
import configparser
import glob
import json
import os
import shutil
import subprocess
import sys
import uuid

import psutil
import pytest

from tests.deployment import (MACHINE_CLIENTS, MAIL_SERVER, RELAY, imaps_find,
                              send, set_password)
from tests.harness import SlapOSCommandFailed

DOMAIN = 'install.example.com'
ACCOUNT = 'alice@' + DOMAIN
PASSWORD = 'correct horse battery'


def software_path(slapos, url):
    return slapos._software_path(url)


@pytest.fixture(scope='module')
def urls(slapos):
    urls = {'mail-server': slapos.supply(MAIL_SERVER),
            'relay': slapos.supply(RELAY)}
    slapos.wait_software()
    return urls


@pytest.fixture(scope='module')
def deployment(slapos, urls):
    # the domain is ordered from the relay by hand below
    slapos.request(MAIL_SERVER, 'backend', 'default',
                   {'mail-domains': [DOMAIN], 'inbound-relay': {'enable': False}})
    slapos.request(MAIL_SERVER, 'alice', 'default', {'address': ACCOUNT},
                   shared=True)
    slapos.wait_instance(max_retry=2)
    backend = slapos.connection_parameters(MAIL_SERVER, 'backend')
    set_password(slapos, 'alice', PASSWORD, backend['password-url'])
    slapos.request(RELAY, 'relay', 'cluster',
                   {'topology': {'node1': {'fqdn': 'relay1.example.com'}},
                    'default-relay-config': {'greylisting': MACHINE_CLIENTS}})
    slapos.request(RELAY, 'domain', 'cluster', {
        'name': DOMAIN, 'mail-server-host': backend['imap-smtp-ipv6'],
        'mail-server-port': int(backend['smtp-port'])}, shared=True)
    slapos.wait_instance(max_retry=6)
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    return {'backend': backend, 'node': relay['relay-hosts'][0]}


def test_supplied_from_http_urls_by_a_node_without_the_bundle(slapos, urls):
    for url in urls.values():
        assert url.startswith('http://127.0.0.1:')
    node_python = os.path.join(slapos.root, 'node', 'bin', 'python3')
    found = subprocess.run([node_python, '-c', 'import recipes'], cwd='/',
                           capture_output=True, text=True)
    assert found.returncode != 0 and 'No module named' in found.stderr
    # slapgrid runs the software's buildout with the node's zc.buildout only
    for url in urls.values():
        with open(os.path.join(software_path(slapos, url), 'bin',
                               'buildout')) as f:
            assert os.path.join(slapos.root, 'node') in f.read()


def test_the_bundle_and_its_dependencies_are_eggs_of_the_software(
        slapos, urls):
    for url in urls.values():
        software = software_path(slapos, url)
        assert glob.glob(os.path.join(software, 'eggs',
                                      'slapos.mailbundle-0.1.0-*.egg'))
        located = subprocess.run(
            [os.path.join(software, 'bin', 'python-mailbundle'), '-c',
             'import json, recipes, jsonschema, passlib, spf, dns, jinja2, '
             'slapos.recipe.template; print(json.dumps([m.__file__ for m in '
             '(recipes, jsonschema, passlib, spf, dns, jinja2, '
             'slapos.recipe.template)]))'],
            cwd='/', capture_output=True, text=True, check=True)
        for path in json.loads(located.stdout):
            assert path.startswith(os.path.join(software, 'eggs') + os.sep), \
                path


def test_mail_crosses_the_relay_to_an_ordered_account(deployment):
    subject = 'install %s' % uuid.uuid4()
    send(deployment['node'], 10025, 'etienne@hotmail.com', [ACCOUNT], subject)
    backend = deployment['backend']
    message = imaps_find(backend['imap-smtp-ipv6'], backend['imaps-port'],
                         ACCOUNT, PASSWORD, subject)
    assert 'etienne@hotmail.com' in message


def test_the_partitions_programs_run_the_software_s_python(
        slapos, urls, deployment):
    """ps: the relay node's policy daemon is the relay software's
    interpreter, whose path holds the software's eggs, not the node's
    environment."""
    relay = software_path(slapos, urls['relay'])
    interpreter = os.path.join(relay, 'bin', 'python-mailbundle')
    node = slapos.partition_of_address(deployment['node'])
    daemons = [p.info['cmdline'] for p in psutil.process_iter(['cmdline'])
               if 'recipes.programs.relay_policy' in (p.info['cmdline'] or [])
               and node + os.sep in ' '.join(p.info['cmdline'])]
    assert daemons and all(interpreter in cmdline for cmdline in daemons), \
        daemons
    with open(interpreter) as f:
        script = f.read()
    assert os.path.join(relay, 'eggs', 'slapos.mailbundle-0.1.0') in script
    assert os.path.join(slapos.root, 'node', 'lib') not in script


def test_postfix_is_compiled_once_for_both_releases_and_shared(
        slapos, urls, deployment):
    """Both releases (and a third, below, from a local path) use one
    Postfix: a shared part of the node (its shared-part-list), compiled by
    whichever release was built first, read-only; the other releases'
    builds found it built. The partitions of both run their master from
    it."""
    locations = {}
    for name, url in urls.items():
        software = software_path(slapos, url)
        components = configparser.ConfigParser(interpolation=None)
        components.read(os.path.join(software, 'components.cfg'))
        locations[name] = components.get('postfix', 'location')
        assert not os.path.exists(os.path.join(software, 'parts', 'postfix'))
    location, = set(locations.values())
    assert location.startswith(os.path.join(
        slapos.shared_part_root, 'postfix') + os.sep), location
    assert os.path.exists(os.path.join(location, '.buildout-shared.json'))
    master = os.path.join(location, 'libexec', 'postfix', 'master')
    assert not os.stat(master).st_mode & 0o222, oct(os.stat(master).st_mode)
    with open(os.path.join(slapos.base_directory, 'var', 'log',
                           'slapos-node-software.log')) as f:
        log = f.read()
    # this module's builds: compiled at most once (none when an earlier
    # module built it), found built by every other build
    assert log.count('will be shared at %s (needs to build)' % location) <= 1
    assert 'shared at %s (already built)' % location in log
    running = {slapos.partition_of_address(address) for address in (
        deployment['node'], deployment['backend']['imap-smtp-ipv6'])}
    masters = {p.info['exe'] for p in psutil.process_iter(['exe', 'cwd'])
               if p.info['exe'] and p.info['exe'].endswith(
                   os.path.join('postfix', 'master'))
               and any((p.info['cwd'] or '').startswith(partition + os.sep)
                       or p.info['cwd'] == partition for partition in running)}
    assert masters == {master}, masters


def bom(slapos, url, tmp_path):
    """nxdbom's description of a built software release, run as
    slapos.testing runs it. The zc.buildout from PyPI, which builds here,
    appends a [buildout] section to .installed.cfg each time it updates a
    part, which zc.buildout reads as one and nxdbom refuses; SlapOS's
    buildout writes it once: nxdbom reads such a copy."""
    software = software_path(slapos, url)
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(software, '.installed.cfg'))
    copy = tmp_path / os.path.basename(software)
    copy.mkdir(parents=True)
    with open(copy / '.installed.cfg', 'w') as f:
        parser.write(f)
    shutil.copy(os.path.join(software, 'buildout.cfg'), copy)
    output = tmp_path / 'bom.json'
    subprocess.run([os.path.join(sys.prefix, 'bin', 'nxdbom'),
                    '--format=cyclonedx-json', '--output', str(output),
                    'software', str(copy)], check=True)
    with open(output) as f:
        return {c['name']: c['version'] for c in json.load(f)['components']}


def test_nxdbom_describes_both_releases(slapos, urls, tmp_path):
    boms = {name: bom(slapos, url, tmp_path / name)
            for name, url in urls.items()}
    for components in boms.values():
        assert components['postfix'] == '3.7.11'
        assert components['slapos.mailbundle'] == '0.1.0'
        assert components['jsonschema'] == '4.26.0'
        assert components['slapos.cookbook'] == '1.0.514'
    assert boms['mail-server']['snappymail'] == '2.38.2'
    assert 'snappymail' not in boms['relay']


def test_a_stale_checksum_fails_the_build_naming_the_file(slapos, urls):
    """A template changed after buildout.hash.cfg was written: the node
    refuses it."""
    served = os.path.join(slapos.served_directory, 'checkout')
    stale = os.path.join(slapos.served_directory, 'stale-checkout')
    shutil.rmtree(stale, ignore_errors=True)
    shutil.copytree(served, stale)
    template = 'instance-templates/mail-server-relay/instance-relay.cfg.in'
    with open(os.path.join(stale, template), 'a') as f:
        f.write('# changed, its checksum not\n')
    url = urls['relay'].replace('/checkout/', '/stale-checkout/')
    slapos.supply(url)
    try:
        with pytest.raises(SlapOSCommandFailed) as failed:
            slapos.wait_software()
        assert 'MD5 checksum mismatch' in str(failed.value)
        assert template in str(failed.value)
    finally:
        slapos.supply(url, state='destroyed')
        slapos.wait_software()
        shutil.rmtree(stale)
    assert not os.path.exists(software_path(slapos, url))


def test_from_a_local_path_the_bundle_is_the_checkout_in_develop_mode(
        slapos, urls):
    """A development VM's way: the same profile, given as a path (of the
    software user's checkout)."""
    path = slapos.supply(RELAY, served=False)
    assert path == os.path.join(slapos.develop_checkout, 'software',
                                'mail-server-relay', 'software.cfg')
    slapos.wait_software()
    software = software_path(slapos, path)
    links = glob.glob(os.path.join(software, 'develop-eggs',
                                   'slapos.mailbundle.egg-link'))
    assert links
    with open(links[0]) as f:
        assert f.readline().strip() == os.path.dirname(os.path.dirname(
            os.path.dirname(path)))
    slapos.request(RELAY, 'local-relay', 'cluster',
                   {'topology': {'local': {'fqdn': 'relay2.example.com'}}})
    slapos.wait_instance(max_retry=4)
    published = slapos.connection_parameters(RELAY, 'local-relay', 'cluster')
    assert published['relay-hosts']
