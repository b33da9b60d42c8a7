"""How big a message a relay node takes per domain
(``recipes.decisions.size_limits``), and whom a partition trusts as itself
(``recipes.decisions.network.networks``)."""
from recipes.decisions import size_limits
from recipes.decisions.network import networks, postfix_networks

MIB = 1024 * 1024


def test_each_domain_takes_what_its_backend_takes():
    domains = [{'name': 'a.example', 'email-size-limit': 10},
               {'name': 'b.example', 'email-size-limit': 200},
               {'name': 'old.example'}]      # ordered before the limit travelled
    limits = size_limits.domain_limits(domains)
    assert limits == {'a.example': 10 * MIB, 'b.example': 200 * MIB}
    # the node takes the largest, and never less than it always did
    assert size_limits.node_limit(domains) == 200 * MIB
    assert size_limits.node_limit(domains[:1]) == size_limits.NODE_MINIMUM
    assert size_limits.node_limit([]) == size_limits.NODE_MINIMUM
    assert size_limits.recipient_limit(limits, 'X@A.example') == 10 * MIB
    assert size_limits.recipient_limit(limits, 'x@old.example') is None


def test_a_message_over_the_limit_gets_552():
    assert size_limits.refusal(10, 10) is None
    assert size_limits.refusal(11, None) is None
    assert size_limits.refusal(11, 10) == (
        "552 5.3.4 Message too big for the recipient's mail server: it "
        "takes 10 bytes at most")


def test_trusted_networks_in_cidr_and_in_postfix_syntax():
    entries = ['127.0.0.0/8', '::1', 'fd00::2', '[fd00::3]', '',
               '192.0.2.7', 'fd00::2']
    assert networks(entries) == ['127.0.0.0/8', '::1/128', 'fd00::2/128',
                                 'fd00::3/128', '192.0.2.7/32']
    assert postfix_networks(entries) == (
        '127.0.0.0/8 [::1]/128 [fd00::2]/128 [fd00::3]/128 192.0.2.7/32')
