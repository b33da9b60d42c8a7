"""How long a login door makes a guesser wait (the password page's; the
IMAP, POP3, ManageSieve and SMTP AUTH doors are Dovecot's own, whose
anvil this follows). The failures themselves are counted by
``recipes.stores.login_failures``.

- Each failure counts against the client's network (``client_network``:
  the address for IPv4, its /64 for IPv6, what one customer is usually
  given) and against the account named, so that neither many accounts
  from one address nor one account from many addresses are guessed at
  speed.
- Before answering, every attempt (the right one too) waits ``penalty``
  of the larger count: 0 s with no failure, then 2, 4, 8 and at most 15 s,
  as Dovecot's ``auth_penalty``; a wrong one waits ``FAILURE_DELAY`` more,
  as Dovecot's ``auth_failure_delay``. Parallel attempts all wait, so ten
  clients of one address get about as few answers as one.
- A success clears both counts; a count with no new failure for
  ``FORGET_AFTER`` is forgotten.
"""
from .network import network_of

PENALTY_INITIAL = 2
PENALTY_MAX = 15
FAILURE_DELAY = 2
FORGET_AFTER = 3600


def penalty(failures):
    """Seconds an attempt waits after ``failures`` failures."""
    if failures <= 0:
        return 0
    return min(PENALTY_MAX, PENALTY_INITIAL << min(failures - 1, 8))


def client_network(address):
    """The key a client's failures count under: its IPv4 address, or its
    IPv6 /64 (an IPv4-mapped IPv6 address counts as its IPv4); what is not
    an address counts as itself."""
    network = network_of(address or '', 32, 64)
    return 'client:%s' % ((address or '').lower() if network is None
                          else network)


def account(user):
    """The key an account's failures count under."""
    return 'account:%s' % (user or '').strip().lower()
