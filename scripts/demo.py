"""The reference topology in an embedded SlapOS (run by scripts/demo.sh).

A relay cluster with one node, a backend for mail1.example.com and one for
mail2.example.com, each domain ordered from the relay; then mail from the
Internet to each backend through the relay, found in the recipient's
mailbox over IMAPS. The deployment keeps running until `demo.sh stop`.
"""
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.deployment import MAIL_SERVER, RELAY, imaps_find, send  # noqa
from tests.harness import EmbeddedSlapOS  # noqa

BACKENDS = {'mail1': 'mail1.example.com', 'mail2': 'mail2.example.com'}
TEST_PASSWORD = 'password123'


def step(message):
    print('==> %s' % message, flush=True)


def deploy(slapos):
    step('building the software releases (Postfix from source: about a '
         'minute the first time)')
    slapos.supply(MAIL_SERVER)
    slapos.supply(RELAY)
    slapos.wait_software()
    step('deploying the relay cluster and the backends')
    slapos.request(RELAY, 'relay', 'cluster',
                   {'topology': {'node1': {'fqdn': 'relay1.example.com'}}})
    for reference, domain in BACKENDS.items():
        slapos.request(MAIL_SERVER, reference, 'default',
                       {'mail-domains': [domain], 'test-account': True})
    slapos.wait_instance(max_retry=3)
    backends = {reference: slapos.connection_parameters(MAIL_SERVER, reference)
                for reference in BACKENDS}
    step('ordering each domain from the relay')
    for reference, domain in BACKENDS.items():
        slapos.request(RELAY, 'domain-' + domain, 'cluster', {
            'name': domain,
            'mail-server-host': backends[reference]['imap-smtp-ipv6'],
            'mail-server-port': int(backends[reference]['smtp-port'])},
            shared=True)
    slapos.wait_instance(max_retry=3)
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    return backends, json.loads(relay['relay-hosts'])[0]


def inbound(backends, node):
    step('mail from the Internet through the relay (path 4)')
    for reference, domain in BACKENDS.items():
        address = 'testmail@' + domain
        subject = 'demo %s' % uuid.uuid4()
        start = time.time()
        send(node, 10025, 'etienne@hotmail.com', [address], subject)
        imaps_find(backends[reference]['imap-smtp-ipv6'],
                   backends[reference]['imaps-port'], address, TEST_PASSWORD,
                   subject)
        print('    etienne@hotmail.com -> %s: relay [%s]:10025, found in '
              'INBOX of %s over IMAPS on backend %s, %.2f s'
              % (address, node, address, reference, time.time() - start))


def endpoints(backends, node):
    step('ready; to use it by hand:')
    print('    relay node, inbound SMTP:  [%s]:10025' % node)
    for reference, domain in BACKENDS.items():
        b = backends[reference]
        print('    %s (%s): SMTP [%s]:%s, IMAP (STARTTLS) %s, IMAPS %s'
              % (reference, domain, b['imap-smtp-ipv6'], b['smtp-port'],
                 b['imap-port'], b['imaps-port']))
        print('        account testmail@%s, password %s'
              % (domain, TEST_PASSWORD))
    print('    stop it with: bash scripts/demo.sh stop')


def main(argv):
    if argv[1:] == ['stop']:
        EmbeddedSlapOS().stop()
        return 0
    if argv[1:]:
        print(__doc__)
        return 2
    slapos = EmbeddedSlapOS()
    slapos.start()
    try:
        backends, node = deploy(slapos)
        inbound(backends, node)
    except BaseException:
        slapos.stop()
        raise
    endpoints(backends, node)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
