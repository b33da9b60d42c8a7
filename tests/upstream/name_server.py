"""The Internet's DNS, as upstream's suites expect to find it (there is no
Internet here): a stand-in name server for the runner's own SlapOS.

Upstream's relay tests rely on public records of ``rapid.space`` (SlapOS's
own test zone, ``messwithdns.test.rapid.space``): a domain whose MX points
at a relay node's fqdn, SPF records that always fail or always pass, and a
well-known domain whose MX points elsewhere. This server answers those
names as the public zone does, NXDOMAIN for any other name of that zone
(as for ``domain.lan``, which does not exist on the Internet either), and
forwards every other question to the host's own resolvers, so that the
package registries still resolve.

  python tests/upstream/name_server.py ADDRESS RESOLV_CONF

serves UDP on ``[ADDRESS]:53`` (hence root) until it is killed; the
forwarders are the ``nameserver`` lines of ``RESOLV_CONF`` (the host's,
read before the runner's mount namespace puts its own in place).
"""
import os
import sys

import dns.exception
import dns.message
import dns.query
import dns.rcode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
from tests.dns_server import DNSServer  # noqa: E402

ZONE = 'rapid.space'
TEST_ZONE = 'messwithdns.test.' + ZONE
RECORDS = {
    # test_relay_usurped_well_known_domain_rejected: a domain that exists
    # and receives its mail elsewhere
    (ZONE, 'MX'): ['10 mx.%s.' % ZONE],
    (ZONE, 'A'): ['192.0.2.10'],
    # test_relay_owned_mx_domain_accepted: the MX points at the node
    # ipv6.messwithdns.test.rapid.space
    ('mx-ipv6.' + TEST_ZONE, 'MX'): ['10 ipv6.%s.' % TEST_ZONE],
    # test_spf_impersonation_rejected, test_spf_pass
    ('spf-always-fail.' + TEST_ZONE, 'TXT'): ['v=spf1 -all'],
    ('spf-always-pass.' + TEST_ZONE, 'TXT'): ['v=spf1 +all'],
}


def in_zone(name):
    name = name.lower().rstrip('.')
    return name == ZONE or name.endswith('.' + ZONE)


class StandIn(DNSServer):
    """The records above for the zone, the host's resolvers for the
    rest."""

    def __init__(self, host, forwarders):
        super().__init__(host, RECORDS, port=53)
        self.forwarders = forwarders

    def answer(self, wire):
        query = dns.message.from_wire(wire)
        if in_zone(query.question[0].name.to_text()):
            return super().answer(wire)
        for forwarder in self.forwarders:
            try:
                return dns.query.udp(query, forwarder, timeout=3).to_wire()
            except (OSError, dns.exception.DNSException):
                continue
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire()


def forwarders(resolv_conf):
    with open(resolv_conf) as f:
        return [line.split()[1] for line in f
                if line.split()[:1] == ['nameserver']]


def main():
    address, resolv_conf = sys.argv[1:3]
    server = StandIn(address, forwarders(resolv_conf))
    print('stand-in DNS on [%s]:53, forwarding to %s'
          % (address, ', '.join(server.forwarders)), flush=True)
    server.running = True
    server.socket.settimeout(None)
    server.serve()


if __name__ == '__main__':
    main()
