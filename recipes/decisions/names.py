"""What a domain name and a mail address are, for every part of the bundle:
the one normaliser that the account database, the relay's domains and the
policy daemon use.

A domain name is lower-case (``normalise_domain`` makes it so), at most 253
characters, of at least two dot-separated labels; a label is letters, digits
and inner hyphens, at most 63 characters (``xn--`` labels of IDNs included);
the last label is not all digits (that would be an IP address).

An address is ``local-part@domain``, lower-cased, at most 254 characters:
the local part is an RFC 5321 dot-atom of at most 64 characters, less ``/``
and ``%`` (it names a directory of the mail store, and Dovecot reads ``%``
as a variable) and not starting with ``#``.

The JSON schemas say the same of a domain in one place,
``software/stack/definitions.json`` (``$defs/domain``);
``tests/unit/test_names.py`` runs the same names through both. Shared
instances' addresses are only roughly checked by the schemas: the rules
here decide, so that the shared instance gets an error with its code
(``invalid_address``) rather than the schema's message.
"""
import re

MAX_DOMAIN = 253
MAX_ADDRESS = 254
MAX_LOCAL_PART = 64
_LABEL = re.compile(r'[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z')
# RFC 5321 atext less '/' and '%'
_ATOM = r"[a-z0-9!#$&'*+=?^_`{|}~-]+"
_LOCAL_PART = re.compile(r'%s(\.%s)*\Z' % (_ATOM, _ATOM))
# The common address in one match, a subset of what the rules below accept
# (fewer local-part characters, no '#'; the lengths are checked beside):
# a backend with 100,000 accounts normalises each one at every run.
_COMMON_ADDRESS = re.compile(
    r'[a-z0-9_+=-]+(\.[a-z0-9_+=-]+)*@'
    r'([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+'
    r'(?![0-9]+\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z')


def normalise_domain(text):
    """``text`` as the bundle keeps a domain: stripped, lower-case, without
    the trailing dot of an absolute name."""
    return text.strip().lower().rstrip('.')


def domain_error(domain):
    """Why ``domain`` (normalised) is not a domain name, or None."""
    labels = domain.split('.')
    if len(domain) > MAX_DOMAIN or len(labels) < 2:
        return 'it must be a fully qualified domain name (example.com)'
    for label in labels:
        if not _LABEL.match(label):
            return ('it has an invalid label %r (letters, digits and inner '
                    'hyphens, at most 63)' % label)
    if labels[-1].isdigit():
        return 'its last label must not be all digits'
    return None


def is_domain(text):
    """Whether ``text`` is a domain name as written (lower-case)."""
    return text == normalise_domain(text) and domain_error(text) is None


def normalise_address(text):
    """``(address in lowercase, None)`` or ``(None, why it is invalid)``."""
    address = text.strip().lower()
    if len(address) <= MAX_ADDRESS and _COMMON_ADDRESS.match(address) \
            and address.index('@') <= MAX_LOCAL_PART:
        return address, None
    why = address_error(address)
    return (None, why) if why else (address, None)


def address_error(address):
    """Why ``address`` (lower-case) is not an address, or None."""
    local, at, domain = address.rpartition('@')
    if not at or not local:
        return 'it must be local-part@domain'
    if len(address) > MAX_ADDRESS:
        return 'it is longer than %d characters' % MAX_ADDRESS
    if len(local) > MAX_LOCAL_PART:
        return 'its local part is longer than %d characters' % MAX_LOCAL_PART
    if not _LOCAL_PART.match(local):
        return ("its local part must be letters, digits and "
                "!#$&'*+=?^_`{|}~- in dot-separated atoms (no / nor %, "
                "no leading, trailing or double dot)")
    if local.startswith('#'):
        return 'its local part must not start with #'
    why = domain_error(domain)
    if why:
        return 'its domain %s: %s' % (domain, why)
    return None


def normalise_catch_all(text):
    """``('@domain', None)`` or ``(None, why it is invalid)`` for a catch-all
    (``@domain``: every address of the domain)."""
    domain = normalise_domain(text.strip()[1:])
    why = domain_error(domain)
    if why:
        return None, 'its domain %s: %s' % (domain, why)
    return '@' + domain, None


def domain_of(address):
    """The domain of an address (or of a catch-all ``@domain``)."""
    return address.rpartition('@')[2]
