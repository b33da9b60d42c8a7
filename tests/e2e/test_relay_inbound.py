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
  and works (exempt from domain verification: the proxy-map lists it);
- the monitors: the cluster's lists its nodes', which open with its
  password; a node's shows its failing promise and its logs.
- a domain whose mail goes to an HTTPS API (``http-endpoint``, the
  stand-in tests/http_api.py): a message arrives there byte for byte with
  the token and the envelope; the API down (503, hanging, refused) while
  100 messages arrive: each delivered once after it is back, none bounced;
  a token the API no longer takes: deferred, the promise names the 401; an
  unknown recipient refused at RCPT; the API's reply out through the
  submission port and the smarthost, DKIM-signed; the token in no record,
  log or readable file.
"""
import os
import smtplib
import subprocess
import time
import uuid

import pytest

from tests import monitor
from tests.deployment import (RELAY, assert_no_secret_in_records,
                              insecure_tls, postfix)
from tests.dns_server import DNSServer
from tests.harness import partition_ipv6
from tests.http_api import HttpApi
from recipes.programs.http_delivery import PAUSE
from tests.smarthost import Recorder, Smarthost

from aiosmtpd.controller import Controller

DOMAIN = 'inbound.example.com'
SMARTHOST = partition_ipv6(31)
STRANGER = partition_ipv6(30)      # an outside client, greylisted
DNS = partition_ipv6(29)
BACKEND = partition_ipv6(28)
FRIEND = partition_ipv6(27)        # a whitelisted client
ALLOWED = partition_ipv6(26)       # the SPF record of spf.example allows it
API = partition_ipv6(25)           # the stand-in HTTPS API
API_DOMAIN = 'in.example.com'      # its mail goes to the API
TOKEN = 'api-token-8f3b2c1d0e'
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
    records = {('spf.example', 'TXT'): ['v=spf1 ip6:%s -all' % ALLOWED],
               # the same record, for the test without DNS: a domain the
               # relay never looked up (an answer it has is kept for its
               # TTL, with or without DNS)
               ('unseen-spf.example', 'TXT'): ['v=spf1 ip6:%s -all' % ALLOWED]}
    with Smarthost(SMARTHOST, str(tmp_path_factory.mktemp('smarthost')),
                   LOGINS) as smarthost, \
            Backend(BACKEND, str(tmp_path_factory.mktemp('backend')), {},
                    starttls_port=10025) as backend, \
            DNSServer(DNS, records) as dns, \
            HttpApi(API, str(tmp_path_factory.mktemp('api')), TOKEN) as api:
        yield {'smarthost': smarthost, 'backend': backend, 'dns': dns,
               'records': records, 'api': api}


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
                'domains': [DOMAIN, API_DOMAIN],
                'tls': outside['smarthost'].tls}}}})
    slapos.request(RELAY, 'domain-' + DOMAIN, 'cluster', {
        'name': DOMAIN, 'mail-server-host': BACKEND}, shared=True)
    slapos.request(RELAY, 'domain-' + API_DOMAIN, 'cluster', {
        'name': API_DOMAIN, 'http-endpoint': outside['api'].url,
        'http-token': TOKEN, 'authentication': 'password',
        'http-ca-certificate': outside['api'].ca_certificate,
        'http-timeout': 3, 'http-verify-recipients': True}, shared=True)
    # plain http to an address that is not loopback: refused
    slapos.request(RELAY, 'domain-plain.example.com', 'cluster', {
        'name': 'plain.example.com', 'http-token': TOKEN,
        'http-endpoint': 'http://[%s]:8080/v1/email' % API}, shared=True)
    slapos.wait_instance(max_retry=8)
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    node, node2 = relay['relay-hosts']
    return {'relay': relay, 'node': node, 'node2': node2,
            'partition': slapos.partition_of_address(node),
            'partition2': slapos.partition_of_address(node2),
            'shared': slapos.connection_parameters(
                RELAY, 'domain-' + DOMAIN, 'cluster', shared=True),
            'api': slapos.connection_parameters(
                RELAY, 'domain-' + API_DOMAIN, 'cluster', shared=True),
            'plain': slapos.connection_parameters(
                RELAY, 'domain-plain.example.com', 'cluster', shared=True)}


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
        code, text = attempt(deployment, FRIEND, 'mallory@unseen-spf.example',
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
        deployment, slapos):
    result = slapos.run_promise(deployment['partition'], 'inbound-certificate',
                         anomaly=True)
    assert result['failed'], result
    assert 'custom-inbound-certificate expires on' in result['message']
    assert 'less than 15' in result['message']


def test_a_refused_custom_certificate_leaves_the_self_signed_one_served(
        deployment, slapos):
    from recipes.stores.certificates import fingerprint
    partition = deployment['partition2']
    self_signed = fingerprint(os.path.join(partition, 'etc', 'ssl',
                                           'current.crt'))
    assert served_on(deployment['node2'], 10025) == self_signed
    result = slapos.run_promise(partition, 'inbound-certificate', anomaly=True)
    assert result['failed'], result
    assert ('custom-inbound-certificate refused: the private key does not '
            'match the first certificate') in result['message']
    assert 'self-signed certificate is served meanwhile' in result['message']


# -- promises ----------------------------------------------------------------------
def test_the_served_certificate_and_queue_promises_pass(deployment, slapos):
    plugins = os.listdir(os.path.join(deployment['partition'], 'etc', 'plugin'))
    for name in ('smtp-certificate', 'deferred-queue', 'smarthost-provider',
                 'smtp-port-listening', 'submission-port-listening',
                 'inbound-policy-answering', 'outbound-policy-answering'):
        assert name + '.py' in plugins, plugins
    for mode in ('inbound', 'outbound'):
        result = slapos.run_promise(deployment['partition'],
                             mode + '-policy-answering')
        assert not result['failed'], result
    result = slapos.run_promise(deployment['partition'], 'smtp-certificate')
    assert not result['failed'], result
    result = slapos.run_promise(deployment['partition'], 'deferred-queue',
                         anomaly=True)
    assert not result['failed'], result


def test_the_smarthost_promise_checks_the_login(deployment, outside, slapos):
    partition = deployment['partition']
    result = slapos.run_promise(partition, 'smarthost-provider', anomaly=True)
    assert not result['failed'], result
    assert 'accepts the login of relay-user' in result['message']
    # the provider changed the password: the promise says which entry
    # (an alarm, twice in a row: a passing hiccup of the third party is none)
    logins = outside['smarthost'].logins
    logins[b'relay-user'] = b'changed-by-the-provider'
    try:
        slapos.run_promise(partition, 'smarthost-provider', anomaly=True)
        result = slapos.run_promise(partition, 'smarthost-provider', anomaly=True)
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
    result = postfix(slapos, deployment['partition'], 'postfix', 'check',
                     check=False)
    assert result.returncode == 0 and result.stderr == '', result.stderr


def test_the_submission_port_never_greylists_nor_checks_spf(deployment, slapos):
    """Backends relay through submission: its restrictions are the outbound
    policy's alone, the inbound policy is the SMTP port's."""
    def postconf(*args):
        return postfix(slapos, deployment['partition'], 'postconf',
                       *args).stdout
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


# -- the monitors ------------------------------------------------------------------
def test_the_cluster_monitor_lists_its_nodes_with_one_password(deployment,
                                                              slapos):
    relay = deployment['relay']
    base = relay['monitor-base-url']
    cluster_auth = monitor.credentials(relay)
    assert monitor.get(base)[0] == 401
    assert monitor.get(base, cluster_auth)[0] == 200
    nodes = [monitor.published_by(slapos, deployment[key])
             for key in ('partition', 'partition2')]
    assert [node['monitor-base-url'] for node in nodes] == [
        'https://[%s]:8196' % deployment[key] for key in ('node', 'node2')]
    # each node's monitor opens with the cluster's password
    for node in nodes:
        assert monitor.credentials(node) == cluster_auth
        assert monitor.get(node['monitor-base-url'])[0] == 401
        assert monitor.get(node['monitor-base-url'], cluster_auth)[0] == 200
    # the web app given the cluster's feeds reads every node's too
    assert monitor.feeds(base) == [base + '/public/feed'] + [
        node['monitor-base-url'] + '/public/feed' for node in nodes]
    assert_no_secret_in_records(slapos, [cluster_auth[1]], expected=base)


def test_a_node_monitor_shows_its_failing_promise_and_logs(deployment,
                                                          slapos):
    # node2 was given a key that does not match its certificate: its
    # promise fails, and the node's monitor says why
    node = monitor.published_by(slapos, deployment['partition2'])
    base, auth = node['monitor-base-url'], monitor.credentials(node)
    slapos.run_promise(deployment['partition2'], 'inbound-certificate',
                       anomaly=True)
    items = monitor.feed_shows(base, 'inbound-certificate', 'ERROR')
    assert 'private key does not match' in items['inbound-certificate'][1]
    for name in ('smtp-port-listening', 'inbound-policy-answering',
                 'monitor-httpd-listening-on-tcp'):
        assert items[name][0] == 'OK', (name, items)
    assert monitor.history(base, 'inbound-certificate')[-1]['status'] == \
        'ERROR'
    status, _, listing = monitor.get(base + '/private/log/', auth)
    assert status == 200
    for name in ('postfix.log', 'scheduler.log', 'monitor/'):
        assert 'href="%s"' % name in listing, (name, listing)



# -- a domain whose mail goes to an HTTPS API -------------------------------------
def raw_message(recipient, subject, sender='etienne@nospf.example'):
    """A message as a sender's server sends it: CRLF, a line that starts
    with a dot, 8-bit text, trailing white space."""
    return ('From: Etienne <%s>\r\nTo: <%s>\r\nSubject: %s\r\n'
            'Message-ID: <%s@outside.example>\r\n'
            'Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n'
            'Content-Type: text/plain; charset=utf-8\r\n'
            'Content-Transfer-Encoding: 8bit\r\n\r\n'
            'Bonjour, voilà le ticket.  \r\n.a line that starts with a dot\r\n'
            '\r\n-- \r\nEtienne\r\n' % (sender, recipient, subject,
                                        uuid.uuid4())).encode()


def send_raw(deployment, source, recipients, data, sender):
    with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                      source_address=(source, 0)) as smtp:
        smtp.ehlo('mx.outside.example')
        smtp.sendmail(sender, recipients, data)


def stored_with(api, subject, timeout=60):
    return api.wait_for(lambda headers, data: subject.encode() in data,
                        timeout)


def node_log(slapos, deployment):
    return slapos.run(deployment['partition'], [
        'cat', os.path.join(deployment['partition'], 'var', 'log',
                            'postfix.log')], capture_output=True, text=True,
        check=True).stdout


def test_a_bad_endpoint_gets_its_error(deployment):
    assert deployment['plain']['domain'] == 'plain.example.com'
    assert deployment['plain']['error'].startswith('http-endpoint ')
    assert 'plain http' in deployment['plain']['error']
    assert 'plain.example.com' not in deployment['relay']['backend-domains']


def test_the_api_domain_is_published_as_any_domain(deployment):
    api = deployment['api']
    assert 'error' not in api, api
    assert API_DOMAIN in deployment['relay']['backend-domains'].splitlines()
    assert api['outbound-user'] == API_DOMAIN and api['outbound-password']
    assert api['dns-entries'].splitlines() == [
        '%s. MX 10 relay-in.example.net.' % API_DOMAIN,
        '%s. MX 10 relay-in2.example.net.' % API_DOMAIN]
    types = {(r['name'], r['type']) for r in api['dns-records']}
    assert (API_DOMAIN, 'MX') in types and ('_dmarc.' + API_DOMAIN,
                                            'TXT') in types


def test_a_message_reaches_the_api_byte_for_byte(deployment, outside):
    subject = 'to the API %s' % uuid.uuid4()
    data = raw_message('bob@' + API_DOMAIN, subject)
    send_raw(deployment, FRIEND, ['bob@' + API_DOMAIN], data,
             'etienne@nospf.example')
    headers, stored = stored_with(outside['api'], subject)
    assert headers['Authorization'] == 'Bearer ' + TOKEN
    assert headers['Content-Type'] == 'message/rfc822'
    assert headers['X-Envelope-From'] == 'etienne@nospf.example'
    assert headers['X-Envelope-To'] == 'bob@' + API_DOMAIN
    assert headers['Idempotency-Key'].endswith(
        '@relay-in.example.net/bob@' + API_DOMAIN)
    # what the sender sent, byte for byte, after the relay's trace headers
    assert stored.endswith(data)
    trace = stored[:-len(data)].decode().split('\r\n')[:-1]
    assert trace and all(line.startswith(('Received: ', 'Received-SPF: ',
                                          'Authentication-Results: ',
                                          '\t', ' ')) for line in trace), trace


def test_an_unknown_recipient_of_the_api_is_refused_at_rcpt(deployment):
    # http-verify-recipients: the API answers 422 for unknown@
    with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                      source_address=(FRIEND, 0)) as smtp:
        smtp.ehlo('mx.outside.example')
        assert smtp.mail('etienne@nospf.example')[0] == 250
        code, text = smtp.rcpt('unknown@' + API_DOMAIN)
    assert code == 550 and b'5.1.1' in text, (code, text)


def deferred_lines(slapos, deployment, words):
    """The node's log lines of deliveries deferred with ``words``."""
    return [line for line in node_log(slapos, deployment).splitlines()
            if 'status=deferred' in line and words in line]


def test_a_token_the_api_refuses_defers_and_the_promise_names_the_401(
        deployment, outside, slapos):
    """The API's token was changed, not the relay's: a wrong token is
    configured. The message waits; it is delivered once the API takes the
    token again (with the outage's messages, below)."""
    api = outside['api']
    promise = 'http-endpoint-in-example-com'
    result = slapos.run_promise(deployment['partition'], promise, anomaly=True)
    assert not result['failed'], result
    api.token = 'rotated-by-the-api'
    subject = 'wrong token %s' % uuid.uuid4()
    outside['wrong-token'] = subject
    try:
        send_raw(deployment, FRIEND, ['bob@' + API_DOMAIN],
                 raw_message('bob@' + API_DOMAIN, subject),
                 'etienne@nospf.example')
        wait = time.time() + 30
        while not deferred_lines(slapos, deployment, '401 Unauthorized'):
            assert time.time() < wait, 'no delivery deferred for the 401'
            time.sleep(1)
        result = slapos.run_promise(deployment['partition'], promise, anomaly=True)
    finally:
        api.token = TOKEN
    assert result['failed'], result
    assert ('the API of %s refuses its mail: %s answered 401 Unauthorized'
            % (API_DOMAIN, api.url)) in result['message'], result
    assert '1 messages deferred' in result['message']


def test_the_api_down_for_a_while_loses_nothing(deployment, outside, slapos):
    """100 messages arrive while the API answers 503, then hangs (past
    http-timeout), then refuses connections: each reaches it exactly once
    after it is back, by the node's own retries; none is bounced."""
    api = outside['api']
    sender = 'outage@nospf.example'
    subjects = ['outage %03d %s' % (i, uuid.uuid4()) for i in range(100)]
    batches = {'503': subjects[:34], 'hang': subjects[34:67],
               'down': subjects[67:]}
    start = time.time()
    try:
        for mode, words in (('503', '503 Service Unavailable'),
                            ('hang', 'no answer within 3 s'),
                            ('down', 'connection refused')):
            api.set_mode(mode)
            # the agent asks again once the last failure's rest is over:
            # the first message of the batch meets the API in this mode
            time.sleep(PAUSE + 1)
            # from loopback, which the node trusts: no rate limit (100
            # messages in a minute), no greylisting
            with smtplib.SMTP(deployment['node'], 10025, timeout=60,
                              source_address=('::1', 0)) as smtp:
                smtp.ehlo('mx.outside.example')
                for subject in batches[mode]:
                    smtp.sendmail(sender, ['bob@' + API_DOMAIN],
                                  raw_message('bob@' + API_DOMAIN, subject,
                                              sender))
            wait = time.time() + 20
            while not deferred_lines(slapos, deployment, words):
                assert time.time() < wait, 'no delivery deferred for ' + words
                time.sleep(0.5)
        outage = time.time() - start
    finally:
        api.set_mode('ok')
    back = time.time()
    expected = subjects + [outside['wrong-token']]
    wait = time.time() + 120
    while True:
        found = [subject for _, data in api.messages() for subject in expected
                 if subject.encode() in data]
        if set(found) == set(expected) or time.time() > wait:
            break
        time.sleep(1)
    assert sorted(found) == sorted(expected), (
        '%d of %d delivered, %d twice' % (len(set(found)), len(expected),
                                          len(found) - len(set(found))))
    print('outage %.0f s, all delivered %.0f s after the API was back'
          % (outage, time.time() - back))
    log = node_log(slapos, deployment)
    assert 'status=bounced' not in log
    assert 'bounce' not in ' '.join(
        line for line in log.splitlines() if 'outage@' in line)


def test_the_apis_reply_leaves_through_the_relay_dkim_signed(deployment,
                                                             outside):
    """The application answers as a backend would: the submission port,
    the login it was published; out through the smarthost of its domain,
    signed with the domain's key."""
    import dkim
    api = deployment['api']
    subject = 'reply from the API %s' % uuid.uuid4()
    sender = 'support@' + API_DOMAIN
    with smtplib.SMTP(deployment['node'], api['outbound-smtp-port'],
                      timeout=30, source_address=(STRANGER, 0)) as smtp:
        smtp.starttls(context=insecure_tls())
        smtp.login(api['outbound-user'], api['outbound-password'])
        smtp.sendmail(sender, ['etienne@nospf.example'], (
            'From: Support <%s>\r\nTo: etienne@nospf.example\r\n'
            'Subject: %s\r\nMessage-ID: <%s@in.example.com>\r\n\r\n'
            'Your ticket is open.\r\n' % (sender, subject, uuid.uuid4())))
    metadata, received = outside['smarthost'].wait_for(
        lambda m, data: subject.encode() in data)
    assert metadata['rcpt-tos'] == ['etienne@nospf.example']
    assert metadata['login'] == 'relay-user'
    records = {r['name'] + '.': r['value'] for r in api['dns-records']
               if r['type'] == 'TXT'}
    assert b'DKIM-Signature:' in received
    assert dkim.verify(received, dnsfunc=lambda name, timeout=5: records.get(
        name.decode() if isinstance(name, bytes) else name, '').encode())


def test_the_api_token_is_in_no_record_log_nor_readable_file(
        deployment, slapos):
    assert_no_secret_in_records(slapos, [TOKEN], expected=API_DOMAIN)
    holders = []
    inst = os.path.join(slapos.base_directory, 'inst')
    for name in os.listdir(inst):
        if name.startswith('slappart'):
            partition = os.path.join(inst, name)
            holders += slapos.run(partition, ['grep', '-rlF', TOKEN, partition],
                                  capture_output=True, text=True).stdout.split()
    # the parameters files (the cluster's, the nodes'), the cluster's
    # record of the shared instances it validated and the delivery agents'
    # configuration, each its partition's alone
    assert {os.path.basename(path) for path in holders} == {
        '.slap-parameters.json', '.slap-shared-validation.json',
        'http-delivery.json'}, holders
    for path in holders:
        assert os.stat(path).st_mode & 0o077 == 0, path
    # the partitions' services' logs, and the node's instance runs
    logs = slapos.run(deployment['partition'], [
        'grep', '-rlF', TOKEN,
        os.path.join(slapos.base_directory, 'inst', 'var', 'log')],
        capture_output=True, text=True)
    assert logs.stdout == '', logs.stdout
    with open(os.path.join(slapos.base_directory, 'var', 'log',
                           'slapos-node-instance.log')) as f:
        text = f.read()
    assert 'Processing Computer Partition' in text and TOKEN not in text
