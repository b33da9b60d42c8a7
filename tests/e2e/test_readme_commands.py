"""The README's ``slapos request`` commands ("Ordering from a SlapOS
master"), run as they are written, with the ``slapos`` client of the
embedded SlapOS ($SLAPOS_MAIL_ROOT/slapos/bin/slapos, as on the demo)."""
import glob
import json
import os
import re
import subprocess

from tests.deployment import MAIL_SERVER, RELAY, imaps_login_works

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'README.md')


def readme_blocks():
    with open(README) as f:
        text = f.read()
    section = text[text.index('## Ordering from a SlapOS master'):]
    section = section[:section.index('\n## ')]
    return re.findall(r'```sh\n(.*?)```', section, re.S)


def run(block, slapos, cwd, **variables):
    """Runs a block with bash, ``slapos`` being the embedded SlapOS's
    client; fails with its output, else returns it (the client logs what
    it was answered)."""
    # the README's $SLAPOS_MAIL_ROOT/slapos is the demo's node; a test
    # worker's node is elsewhere (slapos-gwK): a root that leads to it
    root = os.path.join(str(cwd), 'root')
    if not os.path.exists(root):
        os.makedirs(root)
        os.symlink(slapos.base_directory, os.path.join(root, 'slapos'))
    env = dict(os.environ, SLAPOS_MAIL_ROOT=root, **variables)
    env['PATH'] = os.pathsep.join([os.path.join(slapos.base_directory,
                                                'bin'), env['PATH']])
    result = subprocess.run(['bash', '-euo', 'pipefail', '-c', block],
                            cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (block, result.stdout, result.stderr)
    return result.stdout + result.stderr


def parameters(cwd, name):
    with open(os.path.join(cwd, name)) as f:
        return json.load(f)


def test_the_readme_orders_a_relay_a_backend_and_an_account(slapos,
                                                           tmp_path):
    order, account = readme_blocks()
    urls = {'MAIL_SERVER_URL': slapos.supply(MAIL_SERVER),
            'RELAY_URL': slapos.supply(RELAY)}
    slapos.wait_software()
    run(order, slapos, tmp_path, **urls)
    slapos.wait_instance(max_retry=6)
    # asked again with the same parameters, as the client does: the answer
    # carries the connection parameters
    slapos.request(MAIL_SERVER, 'mail1', 'default',
                   parameters(tmp_path, 'mail1.json'))
    backend = slapos.connection_parameters(MAIL_SERVER, 'mail1')
    assert backend['imap-smtp-ipv6']
    # the backend ordered its domain from the relay urn:slapos:mail-relay
    # names, which verifies it with this machine's resolver (no
    # nameservers in relay.json): accepted when the domain does not exist
    # (NXDOMAIN, upstream's rule) or its MX points at the relay, else
    # waiting with the reason, as a domain whose MX is not set yet does
    slapos.request(RELAY, 'relay', 'cluster', parameters(tmp_path,
                                                         'relay.json'))
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    published = {}
    for path in glob.glob(os.path.join(slapos.base_directory, 'inst', '*',
                                       'srv', 'published.json')):
        with open(path) as f:
            published.update(json.load(f))
    # what the relay publishes to the backend's order of the domain
    (order,) = [p for p in published.values()
                if p.get('dns-entries', '').startswith('mail1.example.com. MX')]
    if 'mail1.example.com' in relay['backend-domains'].splitlines():
        assert 'error' not in order and order['outbound-host'], order
    else:
        assert relay['backend-domains'] == ''
        assert 'domain verification' in order['error'], order
        assert order['verification'], order

    partition = os.path.basename(slapos.partition_of_address(
        backend['imap-smtp-ipv6']))
    run(account, slapos, tmp_path, MAIL1_PARTITION=partition,
        MAIL1_PASSWORD_URL=backend['password-url'], **urls)
    # dave logs in with the password set through the page
    assert imaps_login_works(backend['imap-smtp-ipv6'], backend['imaps-port'],
                             'dave@mail1.example.com', 'dave chose this')


def test_parameters_given_inline_are_refused_by_the_client(slapos, tmp_path):
    """What the README no longer shows: the client refuses it."""
    url = slapos.supply(MAIL_SERVER)
    result = subprocess.run(
        [os.path.join(slapos.base_directory, 'bin', 'slapos'), 'request',
         'inline', url, '--parameters',
         '{"_": "{\\"mail-domains\\": [\\"x.example.com\\"]}"}'],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
