"""A relay node's defences and watches, in the embedded SlapOS, against
stand-ins of what is outside: a backend (an SMTP server with STARTTLS that
records what it receives), a third-party smarthost and a DNS server.

- greylisting: an outside sender's first attempt is deferred (4xx), its
  retry after the delay is accepted and delivered; a whitelisted client is
  accepted at once;
- SPF: ``fail`` is refused (5.7.23), a pass gets its Received-SPF header,
  and with no DNS at all the message is accepted;
- custom-inbound-certificate: served on the inbound port, with a promise
  that warns before it expires; a node given a key that does not match its
  certificate keeps serving its self-signed one and its promise says why;
- promises: the certificate served, the deferred queue, each smarthost's
  login (an alarm: a smarthost that does not answer never keeps the
  deployment from settling), the policy daemon (run by slapgrid's promise
  launcher on the node's partition);
- check-mx: a domain without an MX gets a warning, and is still accepted
  and works (exempt from domain verification: the proxy-map lists it).
"""
import json
import os
import smtplib
import subprocess
import sys
import time
import uuid

import pytest

from tests.deployment import RELAY, assert_no_secret_in_records
from tests.dns_server import DNSServer
from tests.harness import partition_ipv6
from tests.smarthost import Recorder, Smarthost

from aiosmtpd.controller import Controller

DOMAIN = 'inbound.example.com'
SMARTHOST = partition_ipv6(31)
STRANGER = partition_ipv6(30)      # an outside client, greylisted
DNS = partition_ipv6(29)
BACKEND = partition_ipv6(28)
FRIEND = partition_ipv6(27)        # a whitelisted client
ALLOWED = partition_ipv6(26)       # the SPF record of spf.example allows it
LOGINS = {'relay-user': 'smarthost-secret'}
DELAY = 2


class Backend(Smarthost):
    """A stand-in backend: STARTTLS (the relay requires TLS to backends),
    no login, accepts every recipient, records each message."""

    def start(self):
        os.makedirs(self.directory, exist_ok=True)
        self.controllers = [Controller(
            Recorder(self.directory, self.starttls_port), hostname=self.host,
            port=self.starttls_port, tls_context=self._tls(),
            require_starttls=True)]
        self.controllers[0].start()
        return self


@pytest.fixture(scope='module')
def outside(tmp_path_factory):
    records = {('spf.example', 'TXT'): ['v=spf1 ip6:%s -all' % ALLOWED]}
    with Smarthost(SMARTHOST, str(tmp_path_factory.mktemp('smarthost')),
                   LOGINS) as smarthost, \
            Backend(BACKEND, str(tmp_path_factory.mktemp('backend')), {},
                    starttls_port=10025) as backend, \
            DNSServer(DNS, records) as dns:
        yield {'smarthost': smarthost, 'backend': backend, 'dns': dns,
               'records': records}


@pytest.fixture(scope='module')
def certificate(tmp_path_factory):
    """A key and certificate made by openssl, valid 10 days (less than the
    15 days the promise wants)."""
    directory = tmp_path_factory.mktemp('custom-certificate')
    key, cert = str(directory / 'key.pem'), str(directory / 'cert.pem')
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days',
         '10', '-subj', '/CN=mx.inbound.example.com', '-keyout', key, '-out',
         cert], check=True, capture_output=True)
    other = str(directory / 'other.key')
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'EC', '-pkeyopt',
                    'ec_paramgen_curve:prime256v1', '-out', other],
                   check=True, capture_output=True)
    with open(key) as k, open(cert) as c, open(other) as o:
        cert_text = c.read()
        return {'pem': k.read() + cert_text, 'cert': cert,
                # a key that is not the certificate's
                'mismatched': o.read() + cert_text}


@pytest.fixture(scope='module')
def deployment(slapos, outside, certificate):
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node1': {
            'fqdn': 'relay-in.example.net',
            'custom-inbound-certificate': certificate['pem']},
            'node2': {
                'fqdn': 'relay-in2.example.net',
                'custom-inbound-certificate': certificate['mismatched']}},
        'check-mx': True,
        'default-relay-config': {
            'greylisting': {'enable': True, 'greylisting-delay': DELAY,
                            'whitelist-clients': [FRIEND]},
            'spf': {'timeout': 3},
            'nameservers': [outside['dns'].address],
            'proxy-map': {'provider': {
                'host': SMARTHOST, 'port': outside['smarthost'].starttls_port,
                'user': 'relay-user', 'password': 'smarthost-secret',
                'domains': [DOMAIN]}}}})
    slapos.request(RELAY, 'domain-' + DOMAIN, 'cluster', {
        'name': DOMAIN, 'mail-server-host': BACKEND}, shared=True)
    slapos.wait_instance(max_retry=8)
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    node, node2 = relay['relay-hosts']
    return {'relay': relay, 'node': node, 'node2': node2,
            'partition': slapos.partition_of_address(node),
            'partition2': slapos.partition_of_address(node2),
            'shared': slapos.connection_parameters(
                RELAY, 'domain-' + DOMAIN, 'cluster', shared=True)}


def attempt(deployment, source, sender, subject, recipient='alice@' + DOMAIN):
    """One SMTP session from ``source``: ``(code, text)`` of the first
    refusal, or ``(250, ...)`` once the message is accepted."""
    message = ('From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>'
               '\r\n\r\nHello.\r\n' % (sender, recipient, subject, uuid.uuid4()))
    with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                      source_address=(source, 0)) as smtp:
        smtp.ehlo('mx.outside.example')
        code, text = smtp.mail(sender)
        if code >= 400:
            return code, text.decode()
        code, text = smtp.rcpt(recipient)
        if code >= 400:
            return code, text.decode()
        code, text = smtp.data(message)
        return code, text.decode()


def delivered(outside, subject, timeout=60):
    _, message = outside['backend'].wait_for(
        lambda m, data: subject.encode() in data, timeout)
    return message.decode()


PROMISE_RUNNER = """
import logging, sys
from slapos.grid.promise import PromiseError, PromiseLauncher
partition, name, anomaly = sys.argv[1], sys.argv[2], sys.argv[3] == 'anomaly'
try:
    PromiseLauncher(config={
        'partition-folder': partition,
        'promise-folder': partition + '/etc/plugin',
        'log-folder': partition + '/.slapgrid/promise/log',
        'force': True, 'check-anomaly': anomaly, 'promise-timeout': 60,
        'run-only-promise-list': [name + '.py']},
        logger=logging.getLogger('promise')).run()
except PromiseError:
    pass
"""


def run_promise(partition, name, anomaly=False):
    """Run one promise of the partition now, as slapgrid does (its promise
    launcher, in a fresh interpreter as slapgrid's is: the plugin reloads
    slapos' modules; with slapgrid's log folder, where a promise finds its
    earlier results); return its result ``{'failed', 'message'}``."""
    subprocess.run([sys.executable, '-c', PROMISE_RUNNER, partition, name,
                    'anomaly' if anomaly else 'test'], check=True,
                   capture_output=True, timeout=120)
    with open(os.path.join(partition, '.slapgrid', 'promise', 'result',
                           name + '.status.json')) as f:
        return json.load(f)['result']


# -- greylisting ---------------------------------------------------------------
def test_a_first_attempt_is_greylisted_and_its_retry_delivered(
        deployment, outside):
    subject = 'greylisted %s' % uuid.uuid4()
    sender = 'etienne@nospf.example'
    code, text = attempt(deployment, STRANGER, sender, subject)
    assert code == 450, (code, text)
    assert text.startswith('4.7.1') and 'Greylisted, retry in' in text
    time.sleep(DELAY + 0.5)
    code, text = attempt(deployment, STRANGER, sender, subject)
    assert code == 250, (code, text)
    message = delivered(outside, subject)
    # no SPF record for nospf.example: accepted, with its header
    assert 'Received-SPF: None' in message


def test_a_whitelisted_client_is_accepted_at_once(deployment, outside):
    subject = 'whitelisted %s' % uuid.uuid4()
    code, text = attempt(deployment, FRIEND, 'friend@nospf.example', subject)
    assert code == 250, (code, text)
    delivered(outside, subject)


def test_an_unknown_recipient_domain_is_still_refused_at_once(deployment):
    code, _ = attempt(deployment, STRANGER, 'etienne@nospf.example', 'x',
                      recipient='bob@unclaimed.example')
    assert code == 554


# -- SPF ---------------------------------------------------------------------------
def test_spf_fail_is_refused(deployment):
    code, text = attempt(deployment, STRANGER, 'mallory@spf.example', 'forged')
    assert code == 550, (code, text)
    assert '5.7.23' in text and 'SPF' in text


def test_spf_pass_is_accepted_at_once_with_its_header(deployment, outside):
    # as upstream's relay: a client the sender's domain names skips
    # greylisting
    subject = 'spf pass %s' % uuid.uuid4()
    code, text = attempt(deployment, ALLOWED, 'alice@spf.example', subject)
    assert code == 250, (code, text)
    assert 'Received-SPF: Pass' in delivered(outside, subject)


def test_with_no_dns_spf_never_refuses(deployment, outside):
    """The resolver is gone: the lookup of a domain whose record would
    refuse this client fails, and the message is accepted."""
    outside['dns'].stop()
    try:
        subject = 'no dns %s' % uuid.uuid4()
        code, text = attempt(deployment, FRIEND, 'mallory@spf.example',
                             subject)
        assert code == 250, (code, text)
        assert 'Received-SPF: TempError' in delivered(outside, subject)
    finally:
        outside['dns'] = DNSServer(DNS, outside['records'],
                                   port=outside['dns'].port).start()


# -- custom-inbound-certificate -----------------------------------------------------
def served_on(host, port):
    from recipes.promises.smtp_certificate import served_fingerprint
    return served_fingerprint(host, port)


def test_the_custom_certificate_is_served_on_the_inbound_port_only(
        deployment, certificate):
    from recipes.stores.certificates import fingerprint
    custom = fingerprint(certificate['cert'])
    assert served_on(deployment['node'], 10025) == custom
    # submission keeps the self-signed certificate the backends pin
    assert served_on(deployment['node'], 10587) in \
        deployment['shared']['tls-fingerprints']
    assert custom not in deployment['shared']['tls-fingerprints']


def test_a_promise_warns_that_the_custom_certificate_expires_soon(
        deployment):
    result = run_promise(deployment['partition'], 'inbound-certificate',
                         anomaly=True)
    assert result['failed'], result
    assert 'custom-inbound-certificate expires on' in result['message']
    assert 'less than 15' in result['message']


def test_a_refused_custom_certificate_leaves_the_self_signed_one_served(
        deployment):
    from recipes.stores.certificates import fingerprint
    partition = deployment['partition2']
    self_signed = fingerprint(os.path.join(partition, 'etc', 'ssl',
                                           'current.crt'))
    assert served_on(deployment['node2'], 10025) == self_signed
    result = run_promise(partition, 'inbound-certificate', anomaly=True)
    assert result['failed'], result
    assert ('custom-inbound-certificate refused: the private key does not '
            'match the first certificate') in result['message']
    assert 'self-signed certificate is served meanwhile' in result['message']


# -- promises ----------------------------------------------------------------------
def test_the_served_certificate_and_queue_promises_pass(deployment):
    plugins = os.listdir(os.path.join(deployment['partition'], 'etc', 'plugin'))
    for name in ('smtp-certificate', 'deferred-queue', 'smarthost-provider',
                 'smtp-port-listening', 'submission-port-listening',
                 'inbound-policy-answering', 'outbound-policy-answering'):
        assert name + '.py' in plugins, plugins
    for mode in ('inbound', 'outbound'):
        result = run_promise(deployment['partition'],
                             mode + '-policy-answering')
        assert not result['failed'], result
    result = run_promise(deployment['partition'], 'smtp-certificate')
    assert not result['failed'], result
    result = run_promise(deployment['partition'], 'deferred-queue',
                         anomaly=True)
    assert not result['failed'], result


def test_the_smarthost_promise_checks_the_login(deployment, outside, slapos):
    partition = deployment['partition']
    result = run_promise(partition, 'smarthost-provider', anomaly=True)
    assert not result['failed'], result
    assert 'accepts the login of relay-user' in result['message']
    # the provider changed the password: the promise says which entry
    # (an alarm, twice in a row: a passing hiccup of the third party is none)
    logins = outside['smarthost'].logins
    logins[b'relay-user'] = b'changed-by-the-provider'
    try:
        run_promise(partition, 'smarthost-provider', anomaly=True)
        result = run_promise(partition, 'smarthost-provider', anomaly=True)
        # ... and the partition's deployment is not failed for it: what the
        # partition cannot fix never keeps it from settling
        slapos.wait_instance(force=True)
    finally:
        logins[b'relay-user'] = b'smarthost-secret'
    assert result['failed'], result
    assert 'smarthost provider of proxy-map' in result['message']
    assert 'refuses the login of relay-user' in result['message']
    assert 'smarthost-secret' not in result['message']


def test_no_secret_in_the_promises_nor_the_node_profile(deployment,
                                                      certificate):
    partition = deployment['partition']
    plugin = os.path.join(partition, 'etc', 'plugin')
    key_material = certificate['pem'].splitlines()[1]
    for path in [os.path.join(plugin, n) for n in os.listdir(plugin)
                 if n.endswith('.py')] + [
            os.path.join(partition, 'instance-relay.cfg'),
            os.path.join(partition, '.installed-switch-softwaretype.cfg')]:
        with open(path) as f:
            text = f.read()
        assert 'smarthost-secret' not in text, path
        assert key_material not in text, path
    # the password map Postfix reads has it, readable by the partition only
    passwords = os.path.join(partition, 'etc', 'postfix', 'smarthost-passwords')
    assert os.stat(passwords).st_mode & 0o077 == 0
    with open(passwords) as f:
        assert '@%s relay-user:smarthost-secret' % DOMAIN in f.read()


# -- check-mx ----------------------------------------------------------------------
def test_with_check_mx_a_domain_without_mx_is_accepted(deployment):
    shared = deployment['shared']
    assert 'error' not in shared, shared
    assert DOMAIN in deployment['relay']['backend-domains'].splitlines()
    # the DNS server has no MX for it: a warning, never a refusal
    assert shared['mx-check'] == (
        'warning: %s has no MX record: add one pointing at '
        'relay-in.example.net or relay-in2.example.net' % DOMAIN)


def test_the_node_configuration_passes_postfix_check(deployment, slapos):
    from tests.e2e.test_relay import postfix_tool
    config = os.path.join(deployment['partition'], 'etc', 'postfix')
    result = subprocess.run([postfix_tool(slapos, 'postfix'), '-c', config,
                             'check'], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == '', result.stderr


def test_the_submission_port_never_greylists_nor_checks_spf(deployment, slapos):
    """Backends relay through submission: its restrictions are the outbound
    policy's alone, the inbound policy is the SMTP port's."""
    from tests.e2e.test_relay import postfix_tool
    config = os.path.join(deployment['partition'], 'etc', 'postfix')

    def postconf(*args):
        return subprocess.run([postfix_tool(slapos, 'postconf'), '-c', config]
                              + list(args), capture_output=True, text=True,
                              check=True).stdout
    services = postconf('-P').splitlines()
    submission = [l for l in services if ':10587/inet/' in l]
    assert 'smtpd_recipient_restrictions=' in [
        l.split('/inet/', 1)[1].replace(' ', '') for l in submission]
    socket_path = os.path.join(deployment['partition'], 'var', 'run',
                               'inbound-policy.sock')
    assert not any('inbound-policy' in l for l in submission)
    assert 'check_policy_service unix:%s' % socket_path in postconf(
        '-h', 'smtpd_recipient_restrictions')
    # the policy daemon's socket: the partition's user only
    assert os.stat(socket_path).st_mode & 0o777 == 0o600


def test_no_secret_sits_in_buildout_records(deployment, slapos, certificate):
    # the custom certificate's private key and the smarthost's password,
    # given to the cluster and passed on to the nodes: through files, never
    # options
    key_lines = [line for line in certificate['pem'].split(
        '-----END')[0].splitlines() if line and not line.startswith('-----')]
    assert_no_secret_in_records(
        slapos, key_lines + ['smarthost-secret'], expected='relay-in.example.net')

