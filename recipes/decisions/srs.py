"""The Sender Rewriting Scheme of a mail backend: mail from outside that
the backend sends on to another domain (an alias or a catch-all that
forwards outside; a Sieve ``redirect`` too, when Dovecot gives it the
original sender: ours leave from the user, as upstream's) leaves with an
envelope sender of the backend's own domain, which passes SPF at the
destination and which the relay accepts from the backend; a bounce to
that address comes back through the relay and goes to the original
sender.

Addresses (the scheme of libsrs2 and postsrsd, with a hash of our own)::

    SRS0=HHHHHH=TT=orig.example=user@ours.example
    SRS1=HHHHHH=fwd.example==HHHHHH=TT=orig.example=user@ours.example

``SRS0`` wraps an ordinary sender: TT is the day (base 32, modulo 1024),
HHHHHH the first 6 characters (base 32: mail systems may change the case
of a local part) of an HMAC-SHA256 over the day, the domain and the local
part, lower-cased. ``SRS1`` wraps the SRS0 address of another forwarder
(and an SRS1 address keeps its first forwarder): only its hash is ours.
Reversing checks the hash and, for SRS0, that the address is at most
``MAX_AGE_DAYS`` old: nobody else can make an address that we would send
on, so the reverse map is no open relay.

Served to Postfix as a socketmap by the policy daemon
(``recipes.programs.relay_policy``, modes ``srs``): ``forward`` for the
cleanup of mail that leaves again, ``reverse`` for every recipient.
"""
import base64
import hashlib
import hmac
import time

BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
HASH_LENGTH = 6
MAX_AGE_DAYS = 21
DAY = 86400
# the separators other implementations write after SRS0/SRS1
_SEPARATORS = '=+-'


def _hash(secret, *parts):
    digest = hmac.new(secret, '\0'.join(parts).lower().encode(),
                      hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:HASH_LENGTH]


def _day(now):
    return int(now // DAY) % (len(BASE32) ** 2)


def _stamp(day):
    return BASE32[day >> 5] + BASE32[day & 31]


def _stamp_age(stamp, now):
    """Days since the stamp ``TT`` was made, or None when it is not one."""
    stamp = stamp.upper()
    if len(stamp) != 2 or any(c not in BASE32 for c in stamp):
        return None
    day = BASE32.index(stamp[0]) << 5 | BASE32.index(stamp[1])
    return (_day(now) - day) % (len(BASE32) ** 2)


def _kind(local):
    """``'SRS0'``, ``'SRS1'`` or None, from a local part."""
    head = local[:4].upper()
    if head in ('SRS0', 'SRS1') and local[4:5] in _SEPARATORS \
            and len(local) > 5:
        return head
    return None


def is_srs(address):
    """Whether ``address`` is an SRS address (ours or another
    forwarder's)."""
    return _kind(address.rpartition('@')[0]) is not None


def forward(address, domain, secret, now=None):
    """The envelope sender that mail from ``address`` gets when it leaves
    again from ``domain``: an SRS address of ``domain``."""
    now = time.time() if now is None else now
    local, _, host = address.rpartition('@')
    kind = _kind(local)
    if kind == 'SRS0':
        # another forwarder's address: wrap it, keeping its hash and stamp
        rest = local[5:]
        return 'SRS1=%s=%s==%s@%s' % (_hash(secret, host, rest), host, rest,
                                      domain)
    if kind == 'SRS1':
        # keep the first forwarder (the one that can reverse it)
        first, sep, rest = local[5:].partition('==')
        parts = first.split('=', 1)
        if sep and len(parts) == 2:
            first_host = parts[1]
            return 'SRS1=%s=%s==%s@%s' % (_hash(secret, first_host, rest),
                                          first_host, rest, domain)
    stamp = _stamp(_day(now))
    return 'SRS0=%s=%s=%s=%s@%s' % (_hash(secret, stamp, host, local), stamp,
                                    host, local, domain)


def reverse(address, secret, now=None):
    """The address an SRS address of ours stands for (where its bounce
    goes), or None when it is not one of ours, or its SRS0 stamp is past
    ``MAX_AGE_DAYS``."""
    now = time.time() if now is None else now
    local = address.rpartition('@')[0]
    kind = _kind(local)
    if kind == 'SRS0':
        fields = local[5:].split('=', 3)
        if len(fields) != 4 or not all(fields):
            return None
        given, stamp, host, user = fields
        age = _stamp_age(stamp, now)
        if age is None or age > MAX_AGE_DAYS:
            return None
        if not hmac.compare_digest(given.upper(),
                                   _hash(secret, stamp, host, user)):
            return None
        return '%s@%s' % (user, host)
    if kind == 'SRS1':
        first, sep, rest = local[5:].partition('==')
        fields = first.split('=', 1)
        if not sep or len(fields) != 2 or not all(fields) or not rest:
            return None
        given, host = fields
        if not hmac.compare_digest(given.upper(), _hash(secret, host, rest)):
            return None
        return 'SRS0=%s@%s' % (rest, host)
    return None


def leaves_rewritten(sender, hosted):
    """Whether mail from ``sender`` that leaves again gets an SRS sender:
    any sender but the null one (bounces) and those of the ``hosted``
    domains (a user's own mail, a vacation reply)."""
    if not sender or '@' not in sender:
        return False
    return sender.rpartition('@')[2].lower() not in hosted
