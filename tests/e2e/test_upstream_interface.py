"""Upstream's request interface, used as a script written for upstream
SlapOS's mail-server and mail-server-relay uses it (../shared/interface.md):

- a relay cluster requested with every key of upstream's schema, unknown
  keys of its open objects included (ignored, and named in the instance
  log), whose proxy-map lists a domain under two smarthosts (upstream's
  error) and whose smarthosts do not answer (an alarm, not a failure);
- a backend requested with its domain alone: bogofilter on, ManageSieve on
  4190, its domain ordered from the relay found as urn:slapos:mail-relay;
- the published values read as upstream's users read them: one JSON object
  in ``_``, ``relay-hosts[0]``, ``backend-domains.splitlines()``, integer
  ports, the zone lines of ``dns-entries``, upstream's error texts;
- domain verification, against a stand-in DNS server: verified by MX, as
  non-existent, exempt through proxy-map; refused when the MX points
  elsewhere (and mail for it refused at the relay); unverified with the
  reason while DNS does not answer, verified at a later run;
- the password page as upstream's scripts drive it: 8 characters at least,
  ``Password updated successfully``, a reset-token published back as the
  token until it is used.
"""
import ipaddress
import json
import os
import smtplib
import subprocess
import uuid

import pytest

from tests.deployment import (MAIL_SERVER, RELAY, http_request, imaps_find,
                              post_form, send_retrying,
                              text_message)
from tests.dns_server import DNSServer
from tests.deployment import ManageSieve
from tests.harness import partition_ipv6

RELAY_FQDN = 'relay1.example.net'
RELAY_DOMAIN = 'relay.example.net'
BACKEND_DOMAIN = 'upstream.example.com'      # its MX points at the node
NEW = 'new.example.com'                      # does not exist yet
TAKEN = 'taken.example.com'                  # its MX points elsewhere
PROXIED = 'proxied.example.com'              # elsewhere too, but proxied
LATER = 'later.example.com'                  # asked while DNS is down
DUPLICATE = 'dup.example.com'                # under two smarthosts
ALICE = 'alice@' + BACKEND_DOMAIN
SMARTHOST = partition_ipv6(31)               # nothing answers there
DNS = partition_ipv6(29)
UNVERIFIED = ('Your domain has not yet passed our domain verification:\n'
              'please set MX records pointing to this mail relay cluster')
RECORDS = {(BACKEND_DOMAIN, 'MX'): ['10 %s.' % RELAY_FQDN],
           (LATER, 'MX'): ['10 %s.' % RELAY_FQDN],
           (TAKEN, 'MX'): ['10 mx.taken.example.'],
           (PROXIED, 'MX'): ['10 mx.proxied.example.']}


PASSWORD = 'a password from the reset'


class StandInDNS:
    """The stand-in DNS server, which a test may stop and start again on
    the same port."""

    def __init__(self):
        self.server = DNSServer(DNS, RECORDS).start()
        self.address = self.server.address

    def stop(self):
        self.server.stop()

    def start(self):
        self.server = DNSServer(DNS, RECORDS, port=self.server.port).start()

    @property
    def queries(self):
        return self.server.queries


@pytest.fixture(scope='module')
def dns():
    server = StandInDNS()
    yield server
    server.stop()


@pytest.fixture(scope='module')
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp('certificate')
    key, cert = str(directory / 'key.pem'), str(directory / 'cert.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-days', '90', '-subj', '/CN=' + RELAY_FQDN,
                    '-keyout', key, '-out', cert], check=True,
                   capture_output=True)
    with open(key) as k, open(cert) as c:
        return k.read() + c.read()


def cluster_parameters(dns, certificate, relay_url):
    """Every key of upstream's cluster schema, and keys its open objects
    accept that this release does not use; its node's ``sr-url`` the
    relay's URL (``relay_url``)."""
    return {
        'default-relay-config': {
            'proxy-map': {
                'provider-a': {'host': SMARTHOST, 'port': 10587,
                               'user': 'relay', 'password': 'smarthost-pw',
                               'domains': [PROXIED, DUPLICATE]},
                'provider-b': {'host': SMARTHOST, 'port': 10465,
                               'domains': [DUPLICATE]}},
            'greylisting': {'enable': True, 'greylisting-delay': 5,
                            'whitelist-clients': [],
                            'whitelist-recipients': [BACKEND_DOMAIN],
                            'auto-whitelist-clients': 5},
            'dmarc': {'enable': True},
            'greylisting-enabled': True,
            'nameservers': [dns.address]},
        'relay-domain': RELAY_DOMAIN,
        'topology': {'relay-one': {
            'fqdn': RELAY_FQDN, 'sla': {'computer_guid': 'local'},
            'sr-url': relay_url, 'software-type': 'relay',
            'state': 'started',
            'config': {'greylisting': {'greylisting-delay': 5},
                       'monitor-password': 'not used'},
            'custom-inbound-certificate': certificate,
            'monitor': 'not used'}},
    }


def domain(name, host, **more):
    return dict({'name': name, 'mail-server-host': host,
                 'mail-server-port': 10025}, **more)


@pytest.fixture(scope='module')
def deployment(slapos, dns, certificate):
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    slapos.request(RELAY, 'relay', 'cluster',
                   cluster_parameters(dns, certificate,
                                      slapos.software_url(RELAY)))
    # nothing but its domains
    backend = slapos.request(MAIL_SERVER, 'backend', 'default',
                             {'mail-domains': [BACKEND_DOMAIN]})
    slapos.request(MAIL_SERVER, 'alice', 'default', {'address': ALICE},
                   shared=True, instance_guid=backend.getId())
    slapos.wait_instance(max_retry=8, max_passes=8)
    host = slapos.connection_parameters(MAIL_SERVER,
                                        'backend')['imap-smtp-ipv6']
    for reference, parameters in (
            ('new', domain(NEW, host)), ('taken', domain(TAKEN, host)),
            ('proxied', domain(PROXIED, host)),
            # upstream's users' shared instances, every key
            ('new-again', domain(NEW, partition_ipv6(30),
                                 authentication='fingerprint',
                                 fingerprints=['AB' * 32]))):
        slapos.request(RELAY, reference, 'cluster', parameters, shared=True)
    slapos.wait_instance(max_retry=8)
    return {'backend-partition': slapos.partition_of_address(host),
            'backend-id': backend.getId()}


def upstream_read(slapos, software, reference, software_type='default',
                  shared=False):
    """The connection parameters as a script written for upstream reads
    them: ``json.loads(instance.getConnectionParameterDict()['_'])``."""
    instance = slapos._request(**dict(
        slapos._requests[reference, shared],
        software_release=slapos.software_url(software),
        software_type=software_type))
    return json.loads(instance.getConnectionParameterDict()['_'])


def cluster(slapos):
    return upstream_read(slapos, RELAY, 'relay', 'cluster')


def shared(slapos, reference):
    return upstream_read(slapos, RELAY, reference, 'cluster', shared=True)


def backend(slapos):
    return upstream_read(slapos, MAIL_SERVER, 'backend')


# -- the cluster -------------------------------------------------------------------
def test_the_cluster_publishes_upstreams_keys_and_values(deployment, slapos):
    relay = cluster(slapos)
    ipaddress.IPv6Address(relay['relay-hosts'][0])
    domains = relay['backend-domains'].splitlines()
    assert {BACKEND_DOMAIN, NEW, PROXIED} <= set(domains)
    assert TAKEN not in domains
    assert relay['errors'] == [
        "Domain 'dup.example.com' appears in multiple proxies: 'provider-a' "
        "and 'provider-b'. Each domain must appear in only one proxy's "
        "domains list."]


def test_the_keys_it_does_not_use_are_named_in_the_instance_log(
        deployment, slapos):
    with open(os.path.join(slapos.base_directory, 'var', 'log',
                           'slapos-node-instance.log'),
              errors='replace') as f:
        log = f.read()
    assert 'parameter default-relay-config.dmarc is not used' not in log
    for path in ('default-relay-config.greylisting-enabled',
                 'default-relay-config.greylisting.auto-whitelist-clients',
                 'topology.relay-one.monitor',
                 'topology.relay-one.config.monitor-password'):
        assert 'parameter %s is not used by this software release: ' \
            'ignored' % path in log, path


def test_a_smarthost_that_does_not_answer_is_an_alarm_only(
        deployment, slapos):
    # the deployment settled (the fixture's runs succeeded) with no
    # smarthost answering; the promise says so, each time it is asked
    node = slapos.partition_of_address(cluster(slapos)['relay-hosts'][0])
    slapos.run_promise(node, 'smarthost-provider-a', anomaly=True)
    result = slapos.run_promise(node, 'smarthost-provider-a', anomaly=True)
    assert result['failed'], result
    assert 'does not answer' in result['message'], result


# -- domain verification --------------------------------------------------------
def test_verified_by_mx_as_non_existent_and_through_the_proxy_map(
        deployment, slapos, dns):
    for reference, name in (('new', NEW), ('proxied', PROXIED)):
        published = shared(slapos, reference)
        assert 'error' not in published, published
        assert published['outbound-host'] == RELAY_DOMAIN
        # a string, as upstream's tests read it
        assert published['outbound-smtp-port'] == '10587'
        assert published['dns-entries'].splitlines() == [
            '%s. MX 10 %s.' % (name, RELAY_FQDN)]
    assert shared(slapos, 'proxied')['outbound-has-proxy'] is True
    assert shared(slapos, 'new')['outbound-has-proxy'] is False
    # the proxied domain was not even looked up
    assert (PROXIED, 'MX') not in dns.queries
    # a second claim: upstream's words
    assert shared(slapos, 'new-again') == {
        'domain': NEW, 'error': 'this domain has already been claimed'}


def test_a_domain_whose_mx_points_elsewhere_is_refused(deployment, slapos):
    published = shared(slapos, 'taken')
    assert published['domain'] == TAKEN
    assert published['error'] == UNVERIFIED
    assert published['dns-entries'] == '%s. MX 10 %s.' % (TAKEN, RELAY_FQDN)
    assert 'mx.taken.example' in published['verification']
    assert 'outbound-host' not in published
    # and no mail for it crosses the relay
    with smtplib.SMTP(cluster(slapos)['relay-hosts'][0], 10025,
                      timeout=30) as smtp:
        smtp.ehlo('outside.example')
        assert smtp.mail('etienne@hotmail.com')[0] == 250
        code, text = smtp.rcpt('postmaster@' + TAKEN)
    assert code == 554 and b'Relay access denied' in text, (code, text)


def test_while_dns_does_not_answer_a_domain_waits_with_the_reason(
        deployment, slapos, dns):
    dns.stop()
    try:
        slapos.request(RELAY, 'later', 'cluster',
                       domain(LATER, partition_ipv6(30)), shared=True)
        slapos.wait_instance(max_retry=4)
        published = shared(slapos, 'later')
        assert published['error'] == UNVERIFIED
        assert published['verification'].startswith(
            '%s could not be looked up: DNS did not answer' % LATER)
        assert LATER not in cluster(slapos)['backend-domains']
    finally:
        dns.start()
    # the next run (a node runs each partition again periodically)
    slapos.wait_instance(max_retry=4, force=True)
    assert 'error' not in shared(slapos, 'later')
    assert LATER in cluster(slapos)['backend-domains'].splitlines()


# -- the backend, requested with its domains alone ------------------------------
def test_the_backend_publishes_upstreams_values(deployment, slapos):
    published = backend(slapos)
    for name, port in (('smtp', 10025), ('imap', 10143), ('imaps', 10993),
                       ('sieve', 4190)):
        assert published[name + '-port'] == port
    assert isinstance(published['tls-fingerprints'], list)
    # it ordered its domain from the relay found as urn:slapos:mail-relay
    assert BACKEND_DOMAIN in cluster(slapos)['backend-domains'].splitlines()
    assert {'name': BACKEND_DOMAIN, 'type': 'MX',
            'value': '10 %s.' % RELAY_FQDN} in published['dns-records']
    with open(os.path.join(deployment['backend-partition'], 'etc',
                           'postfix', 'main.cf')) as f:
        assert 'relayhost = [%s]:10587' % RELAY_DOMAIN in f.read()


def set_password_as_upstreams_scripts_do(published, password):
    """GET the setup link, POST user, token and password to the page."""
    status, _, _ = http_request(published['setup-url'])
    assert status == 200
    return post_form(published['setup-url'].split('?')[0],
                     user=published['address'], token=published['token'],
                     password=password)


def test_the_password_page_as_upstreams_scripts_drive_it(deployment, slapos):
    published = upstream_read(slapos, MAIL_SERVER, 'alice', shared=True)
    assert published['address'] == ALICE
    status, _, text = set_password_as_upstreams_scripts_do(published,
                                                           'seven77')
    assert status == 400 and 'at least 8 characters' in text
    status, _, text = set_password_as_upstreams_scripts_do(published,
                                                           'eight888')
    assert status == 200 and 'Password updated successfully' in text
    # a reset-token comes back as the token, until it is used
    token = 'reset-%s' % uuid.uuid4()
    slapos.request(MAIL_SERVER, 'alice', 'default',
                   {'address': ALICE, 'reset-token': token}, shared=True,
                   instance_guid=deployment['backend-id'])
    slapos.wait_instance(max_retry=4)
    published = upstream_read(slapos, MAIL_SERVER, 'alice', shared=True)
    assert published['token'] == token
    status, _, text = set_password_as_upstreams_scripts_do(published,
                                                           PASSWORD)
    assert status == 200 and 'Password updated successfully' in text
    slapos.wait_instance(max_retry=4, force=True)
    assert upstream_read(slapos, MAIL_SERVER, 'alice', shared=True) == {
        'address': ALICE}


def test_managesieve_on_4190_and_bogofilter_by_default(deployment, slapos):
    host = backend(slapos)['imap-smtp-ipv6']
    sieve = ManageSieve(host, 4190)
    try:
        sieve.starttls()
        assert sieve.login(ALICE, PASSWORD).startswith('OK')
    finally:
        sieve.close()
    subject = 'filtered %s' % uuid.uuid4()
    # from the Internet, through the relay (the backend takes its domain's
    # mail from its relay only)
    # (greylisted first, as upstream's configuration asks: sent again after
    # the delay, as a sender's MTA does)
    send_retrying(cluster(slapos)['relay-hosts'][0], 10025,
                  'etienne@hotmail.example', [ALICE],
                  text_message('etienne@hotmail.example', [ALICE], subject))
    message = imaps_find(host, 10993, ALICE, PASSWORD, subject)
    assert 'X-Bogosity: ' in message
