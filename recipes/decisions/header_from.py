"""Whose address a message shows in its From header: the address its
reader sees and DKIM signs for (OpenDKIM picks the key by it), unlike the
envelope sender that the policies check. Checked by the milter of the
policy daemon (``recipes.programs.relay_policy``) before the message is
accepted:

- on a relay node's submission port, every From address must be in a
  domain of the backend that sent it, or, in a message the backend
  forwards, of a domain the relay does not host (``relay_refusal``);
- on a backend's submission, SMTPS and SMTP ports, an authenticated user's
  From addresses must be ones its login may send as: its own, or an alias
  that delivers to it, as ``smtpd_sender_login_maps`` says of the envelope
  (``submission_refusal``).

What counts as an address the header shows: every address its parser
reads, and any address-like text anywhere else in it (a display name, a
comment, an RFC 2047 encoded word), so that no reading of the header shows
an address that was not checked. A message without a From header claims
nothing and passes; two From headers, or one without any address, are
refused (readers and DKIM verifiers would not agree on the sender).
"""
import email.errors
import email.header
import email.utils
import re

from .names import domain_of

# what looks like an address, wherever it is in the header
_ADDRESS_LIKE = re.compile(r'[^\s<>()\[\]",;:@\\]+@[^\s<>()\[\]",;:@\\]+')


def _decoded(value):
    """``value`` with its RFC 2047 encoded words decoded (as is when they
    cannot be)."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return value


def shown_addresses(value):
    """The addresses one From header ``value`` shows, lower-cased, without
    repeats; ``None`` when its parser reads an entry without an address."""
    found = []
    for _, address in email.utils.getaddresses([value]):
        if '@' not in address:
            return None
        found.append(address)
    for text in (value, _decoded(value)):
        found.extend(_ADDRESS_LIKE.findall(text))
    shown = []
    for address in found:
        address = address.strip().lower().rstrip('.')
        if address not in shown:
            shown.append(address)
    return shown or None


def refusal(values, allowed, whose):
    """``None`` when the From headers ``values`` show only addresses that
    ``allowed(address)`` accepts, else the SMTP reply (5.7.1); ``whose``
    says whose addresses they must be, in that reply."""
    if not values:
        return None
    if len(values) > 1:
        return '550 5.7.1 More than one From header: give one'
    shown = shown_addresses(values[0])
    if shown is None:
        return '550 5.7.1 The From header shows no valid address'
    for address in shown:
        if not allowed(address):
            return ('550 5.7.1 <%s>: the From header may only show %s'
                    % (address, whose))
    return None


def relay_refusal(values, domains, forwarded_from=None):
    """On a relay node: the backend proven to own ``domains`` (set of
    names) sends the message whose From headers are ``values``. A message
    it forwards (``forwarded_from``: the domains the node hosts) keeps its
    author's From: any address but those of the domains of other backends
    (OpenDKIM would sign it with their key)."""
    domains = {d.lower() for d in domains}
    if forwarded_from is None:
        return refusal(values, lambda address: domain_of(address) in domains,
                       'addresses of your domains (%s)' % ', '.join(
                           sorted(domains)))
    others = {d.lower() for d in forwarded_from} - domains
    return refusal(values, lambda address: domain_of(address) not in others,
                   'addresses of your domains (%s) or of no domain of this '
                   'relay: a forward' % ', '.join(sorted(domains)))


def submission_refusal(values, login, senders):
    """On a backend: the user ``login`` submits the message whose From
    headers are ``values``; ``senders`` maps an address to the logins that
    may send as it (the account database's ``senders`` map)."""
    login = login.lower()
    return refusal(values,
                   lambda address: login in senders.get(address, ()),
                   'addresses that %s may send as' % login)
