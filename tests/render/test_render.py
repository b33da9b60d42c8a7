"""Each instance profile, rendered by slapgrid in the embedded SlapOS with
non-default parameters, gives configurations that the daemons' own checkers
accept and that carry those parameters."""
import json
import os
import stat

import pytest

from tests.deployment import MAIL_SERVER, RELAY, mx_dns, software_binary


DOMAINS = ['render1.example.com', 'render2.example.org']
SMARTHOST = {'host': 'smtp.example.net', 'port': 587, 'user': 'render',
             'password': 'render secret'}
LOGS = {'keep': 5, 'max-size': 20}
BACKUP = {'time': '04:30', 'keep': 3}


@pytest.fixture(scope='module')
def dns():
    # the relay verifies the domain it is given by its MX
    with mx_dns({DOMAINS[0]: 'relay.render.example.com'}) as server:
        yield server


@pytest.fixture(scope='module')
def rendered(slapos, dns):
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(MAIL_SERVER, 'render-backend', 'default', {
        'mail-domains': DOMAINS, 'email-size-limit': 20,
        'smtp-port': 11025, 'imap-port': 11143, 'imaps-port': 11993,
        'submission-port': 11587, 'smtps-port': 11465, 'pop3-port': 11110,
        'pop3s-port': 11995, 'sieve-port': 14191,
        'inbound-relay': {'enable': False}, 'outbound-relay': SMARTHOST,
        'logs': LOGS, 'backup': BACKUP, 'rate-limits': {'messages': 7},
        'postmaster': 'ops@' + DOMAINS[1]})
    slapos.request(RELAY, 'render-relay', 'cluster', {
        'topology': {'render-node': {'fqdn': 'relay.render.example.com'}},
        'default-relay-config': {'nameservers': [dns.address], 'logs': LOGS,
                                 'backup': dict(BACKUP, enable=False),
                                 'rate-limits': {'connections': 5},
                                 'postmaster': 'ops@' + DOMAINS[1]}})
    slapos.wait_instance(max_retry=2)
    backend = slapos.connection_parameters(MAIL_SERVER, 'render-backend')
    slapos.request(RELAY, 'render-domain', 'cluster', {
        'name': DOMAINS[0], 'mail-server-host': backend['imap-smtp-ipv6'],
        'mail-server-port': 11025}, shared=True)
    slapos.wait_instance(max_retry=4)
    relay = slapos.connection_parameters(RELAY, 'render-relay', 'cluster')
    node = relay['relay-hosts'][0]
    # the checkers read what the node's periodic runs may write again
    # meanwhile (a partition whose promise fails is processed at each):
    # those runs wait until the module is done
    with slapos.node_loop_paused():
        yield {'backend': slapos.partition_of_address(
                   backend['imap-smtp-ipv6']),
               'backend-ipv6': backend['imap-smtp-ipv6'],
               'node': slapos.partition_of_address(node), 'node-ipv6': node,
               'postfix': software_binary(slapos, 'postfix'),
               'slapos': slapos}


def run(rendered, partition, *command):
    """A command as the partition's user, who runs its daemons."""
    result = rendered['slapos'].run(partition, command, capture_output=True,
                                    text=True)
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result.stdout


def postconf(rendered, partition, *args):
    return run(rendered, partition,
               os.path.join(rendered['postfix'], 'sbin', 'postconf'),
               '-c', os.path.join(partition, 'etc', 'postfix'), *args)


@pytest.mark.parametrize('partition', ['backend', 'node'])
def test_postfix_check_accepts_the_configuration(rendered, partition):
    run(rendered, rendered[partition],
        os.path.join(rendered['postfix'], 'sbin', 'postfix'), '-c',
        os.path.join(rendered[partition], 'etc', 'postfix'), 'check')


def test_backend_postfix_carries_the_parameters(rendered):
    p = rendered['backend']
    assert postconf(rendered, p, '-h', 'message_size_limit').strip() == str(
        20 * 1024 * 1024)
    assert postconf(rendered, p, '-h', 'virtual_mailbox_domains').strip() == (
        ', '.join(DOMAINS))
    services = postconf(rendered, p, '-M')
    listeners = [l for l in services.splitlines() if ' inet ' in l]
    # SMTP, submission and SMTPS, on the partition's address only
    assert [l.split()[0] for l in listeners] == [
        '[%s]:%d' % (rendered['backend-ipv6'], port)
        for port in (11025, 11587, 11465)]


def test_backend_submission_requires_tls_and_sasl(rendered):
    p = rendered['backend']
    ipv6 = rendered['backend-ipv6']
    for port, wrapper in ((11587, None), (11465, 'yes')):
        service = '[%s]:%d/inet' % (ipv6, port)
        settings = dict(line.split(' = ', 1) for line in postconf(
            rendered, p, '-P', service).splitlines()
            if line.startswith(service))
        get = lambda name: settings.get('%s/%s' % (service, name))
        assert get('smtpd_sasl_auth_enable') == 'yes'
        assert get('smtpd_tls_security_level') == 'encrypt'
        assert get('smtpd_tls_auth_only') == 'yes'
        assert get('smtpd_tls_wrappermode') == wrapper
    main = dict(line.split(' = ', 1) for line in postconf(
        rendered, p, '-x', 'smtpd_sasl_type', 'smtpd_sasl_path',
        'submission_sender_restrictions', 'submission_relay_restrictions',
        'smtpd_sender_login_maps', 'virtual_alias_maps',
        'smtpd_recipient_restrictions').splitlines())
    assert main['smtpd_sasl_type'] == 'dovecot'
    assert os.path.basename(main['smtpd_sasl_path']) == 'auth-postfix'
    assert 'reject_sender_login_mismatch' in main[
        'submission_sender_restrictions']
    assert main['submission_relay_restrictions'] == (
        'permit_sasl_authenticated, reject')
    assert main['smtpd_sender_login_maps'].startswith('texthash:')
    assert main['virtual_alias_maps'].startswith('texthash:')
    assert 'check_recipient_access' in main['smtpd_recipient_restrictions']
    # SMTP AUTH is not offered on the port for the relay
    assert postconf(rendered, p, '-h', 'smtpd_sasl_auth_enable').strip() == 'no'


def test_backend_sends_through_the_smarthost_with_its_login(rendered):
    p = rendered['backend']
    main = dict(line.split(' = ', 1) for line in postconf(
        rendered, p, '-x', 'relayhost', 'smtp_sasl_auth_enable',
        'smtp_sasl_password_maps', 'smtp_tls_security_level').splitlines())
    assert main['relayhost'] == '[smtp.example.net]:587'
    assert main['smtp_sasl_auth_enable'] == 'yes'
    assert main['smtp_tls_security_level'] == 'encrypt'
    path = main['smtp_sasl_password_maps'].split(':', 1)[1]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        assert f.read().strip() == (
            '[smtp.example.net]:587 render:render secret')
    # the secret is in no file that others may read
    for directory, _, files in os.walk(os.path.join(p, 'etc')):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
                with open(path, errors='replace') as f:
                    assert 'render secret' not in f.read(), path


def test_dovecot_accepts_the_configuration(rendered):
    conf = os.path.join(rendered['backend'], 'etc', 'dovecot', 'dovecot.conf')
    output = run(rendered, rendered['backend'], '/usr/bin/doveconf', '-c',
                 conf, '-n')
    assert rendered['backend-ipv6'] in output
    # behind the connection limiter, which listens on the ports given
    for port in (31143, 31993, 31110, 31995, 34191):
        assert 'port = %d' % port in output
    assert output.count('haproxy = yes') == 5
    assert 'quota_full_tempfail = yes' in output
    limiter = os.path.join(rendered['backend'], 'etc', 'haproxy.cfg')
    assert 'Configuration file is valid' in run(
        rendered, rendered['backend'], '/usr/sbin/haproxy', '-c', '-f',
        limiter)
    with open(limiter) as f:
        text = f.read()
    for port, internal in ((11143, 31143), (11993, 31993), (14191, 34191)):
        assert 'bind [%s]:%d' % (rendered['backend-ipv6'], port) in text
        assert 'server local [%s]:%d send-proxy-v2' % (
            rendered['backend-ipv6'], internal) in text
    assert 'sc0_conn_cur gt 20' in text


def test_what_a_backend_sends_on_goes_through_its_own_postfix(rendered):
    """Forwards, Sieve redirects and vacation replies: sendmail with the
    partition's configuration, pickup, srs-cleanup (issue 20)."""
    p = rendered['backend']
    config = os.path.join(p, 'etc', 'postfix')
    assert postconf(rendered, p, '-h', 'default_transport').strip() == \
        'forward'
    services = ' '.join(postconf(rendered, p, '-M').split())
    assert 'pickup unix n - n 60 1 pickup -o cleanup_service_name=' \
        'srs-cleanup' in services
    assert 'srs-cleanup unix n - n - 0 cleanup -o sender_canonical_maps=' \
        'socketmap:unix:%s:forward' % os.path.join(p, 'var', 'run',
                                                   'srs.sock') in services
    assert ' -C %s -G -i -f ${sender} -- ${recipient}' % config in services
    output = run(rendered, p, '/usr/bin/doveconf', '-c', os.path.join(
        p, 'etc', 'dovecot', 'dovecot.conf'), '-n')
    [sendmail] = [line for line in output.splitlines()
                  if line.startswith('sendmail_path = ')]
    # the software's Postfix, with the partition's configuration
    assert sendmail == 'sendmail_path = %s -C %s' % (os.path.join(
        rendered['postfix'], 'sbin', 'sendmail'), config), sendmail
    assert 'sieve_extensions = +editheader' in output
    assert 'sieve_global_extensions = +vnd.dovecot.pipe ' \
        '+vnd.dovecot.execute\n' in output


def test_relay_node_routes_the_accepted_domain(rendered):
    p = rendered['node']
    assert postconf(rendered, p, '-h', 'relay_domains').strip() == DOMAINS[0]
    with open(os.path.join(p, 'etc', 'postfix', 'transport')) as f:
        routes = [l for l in f.read().splitlines() if not l.startswith('#')]
        assert ' '.join(routes).split() == [
            DOMAINS[0], 'backend:[%s]:11025' % rendered['backend-ipv6']]


@pytest.mark.parametrize('partition', ['backend', 'node'])
def test_the_log_rotation_and_the_schedule_carry_the_parameters(
        rendered, partition):
    etc = os.path.join(rendered[partition], 'etc')
    conf = os.path.join(etc, 'logrotate.conf')
    # logrotate's own check (-d: nothing is done), as the partition's user
    state = os.path.join(rendered[partition], 'var', 'lib', 'scheduler',
                         'logrotate.status')
    output = rendered['slapos'].run(
        rendered[partition], ['logrotate', '-d', '-s', state, conf],
        capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    with open(conf) as f:
        text = f.read()
    assert 'rotate 5\n' in text and 'maxsize 20M\n' in text
    logs = [line.split()[0] for line in text.splitlines()
            if line.endswith(' {')]
    # the monitor's Apache's (log/monitor/httpd-error.log) among them
    expected = {'backend': ['apache-error.log', 'dovecot.log',
                            'inbound-policy.log', 'httpd-error.log',
                            'php-fpm.log', 'postfix.log', 'scheduler.log',
                            'snappymail.log'],
                'node': ['dovecot.log', 'inbound-policy.log',
                         'httpd-error.log', 'postfix.log',
                         'scheduler.log']}[partition]
    assert [os.path.basename(p) for p in logs] == expected
    with open(os.path.join(etc, 'scheduler.json')) as f:
        jobs = json.load(f)['jobs']
    assert jobs['log-rotation']['every'] == 3600
    if partition == 'backend':
        assert jobs['backup']['daily'] == '04:30'
        with open(os.path.join(etc, 'backup.json')) as f:
            config = json.load(f)
        assert config['keep'] == 3 and config['domains'] == DOMAINS
        assert {'accounts', 'mail', 'bogoutil'} <= set(config)
    else:   # the node's backups are off
        assert 'backup' not in jobs




def test_the_hardening_carries_the_parameters(rendered):
    backend, node = rendered['backend'], rendered['node']
    for p in (backend, node):
        settings = dict(line.split(' = ', 1) for line in postconf(
            rendered, p, '-x', 'smtpd_forbid_bare_newline',
            'smtpd_forbid_unauth_pipelining', 'disable_vrfy_command',
            'smtpd_tls_mandatory_protocols',
            'smtpd_client_event_limit_exceptions').splitlines())
        assert settings['smtpd_forbid_bare_newline'] == 'normalize'
        assert settings['smtpd_forbid_unauth_pipelining'] == 'yes'
        assert settings['disable_vrfy_command'] == 'yes'
        assert settings['smtpd_tls_mandatory_protocols'] == '>=TLSv1.2'
        # the partition itself is exempt from the rate limits
        assert '127.0.0.0/8' in settings['smtpd_client_event_limit_exceptions']
    assert postconf(rendered, backend, '-h',
                    'smtpd_client_message_rate_limit').strip() == '7'
    assert postconf(rendered, node, '-h',
                    'smtpd_client_connection_rate_limit').strip() == '5'
    # its own MX (no inbound-relay): postscreen on the SMTP port
    smtp = [line.split() for line in postconf(rendered, backend,
                                              '-M').splitlines()
            if line.startswith('[%s]:11025 ' % rendered['backend-ipv6'])]
    assert smtp and smtp[0][7] == 'postscreen', smtp
    # the postmaster of every domain, and the node's bare one
    with open(os.path.join(backend, 'srv', 'accounts', 'aliases')) as f:
        assert 'postmaster@%s ops@%s' % (DOMAINS[0], DOMAINS[1]) in f.read()
    with open(os.path.join(node, 'etc', 'postfix', 'postmaster')) as f:
        assert 'postmaster@relay.render.example.com ops@%s' % DOMAINS[1] \
            in f.read()

