"""How big a message a relay node takes for each domain: no bigger than the
backend that hosts the domain takes (its ``email-size-limit``, in MiB,
travels with the domain's order), so that the relay never accepts a
message its backend would refuse and bounce it to a sender nobody
verified. The inbound policy (``recipes.programs.relay_policy``) refuses
during the SMTP dialogue: at RCPT when the client announced the size
(``MAIL FROM:<...> SIZE=``), and at the end of the data otherwise, for the
smallest limit among the message's recipients.
"""
from .names import domain_of

MIB = 1024 * 1024
# what the node's Postfix takes at most when its domains take less (its
# message_size_limit, announced in EHLO): the policy refuses per domain
NODE_MINIMUM = 100 * MIB


def domain_limits(domains):
    """``{name: bytes}`` of the node's ``mail-domains`` that carry their
    backend's ``email-size-limit``."""
    return {d['name']: int(d['email-size-limit']) * MIB for d in domains
            if d.get('email-size-limit')}


def node_limit(domains):
    """The node's message_size_limit: the largest of its domains' limits,
    and at least ``NODE_MINIMUM``."""
    return max([NODE_MINIMUM] + list(domain_limits(domains).values()))


def recipient_limit(limits, recipient):
    """The limit of ``recipient``'s domain, or None."""
    return limits.get(domain_of(recipient.lower()))


def refusal(size, limit):
    """The policy answer for a message of ``size`` bytes against ``limit``
    (None: no limit), or None when it fits."""
    if limit and size > limit:
        return ('552 5.3.4 Message too big for the recipient\'s mail server: '
                'it takes %d bytes at most' % limit)
    return None
