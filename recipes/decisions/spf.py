"""SPF of a relay node's inbound mail: what a result means for the message
(the checks themselves are ``recipes.clients.resolver.SPFChecker``).

Decision (``spf_action``), as an operator would have it:

- ``fail`` (the sender's domain says this client may not send its mail):
  refused, ``550 5.7.23`` (RFC 7372), with pyspf's explanation;
- ``softfail``, ``neutral``, ``none``, ``pass``: accepted, with a
  ``Received-SPF`` header for the filters downstream;
- ``temperror`` and ``permerror`` (no DNS, a timeout, a broken record):
  accepted, with the header; a lookup that fails never refuses mail.

A ``pass`` also skips greylisting (``skips_greylisting``), as upstream's
relay does (policyd-spf's ``Mail_From_pass_restriction``): a client that
the sender's domain names as its own is no spam run to slow down.

The null sender of a bounce is checked against the HELO name, as RFC 7208
says (pyspf does it).
"""
SPF_FAIL_CODE = '550 5.7.23'


def spf_action(result, explanation, sender):
    """The policy answer for an SPF result: a rejection on ``fail`` only."""
    if result == 'fail':
        return '%s SPF check failed for <%s>: %s' % (
            SPF_FAIL_CODE, sender, explanation)
    return None


def skips_greylisting(result):
    """Whether an SPF result lets the message skip greylisting: a
    ``pass``."""
    return result == 'pass'
