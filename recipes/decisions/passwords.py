"""Passwords and one-time tokens: what a password must be, how it is hashed
for Dovecot, how a token is drawn and kept (hashed)."""
import hashlib
import secrets

from passlib.hash import sha512_crypt

HASH_PREFIX = '{SHA512-CRYPT}'
# no password matches it: Dovecot's crypt of any password never gives '!'
NO_PASSWORD = HASH_PREFIX + '!'
# NIST SP 800-63B's minimum for a password the user chooses (and upstream's)
MIN_PASSWORD_LENGTH = 8
# sha512-crypt costs rounds x length: bound it
MAX_PASSWORD_LENGTH = 256
# Dovecot's single auth process checks each login's hash in turn: at
# passlib's default (656,000 rounds, 0.4 s a check here) ten guessers made
# every login of the backend wait past Postfix's 30 s (454), and 200 relay
# logins took minutes. 100,000 rounds (about 60 ms here) is 20 times
# Dovecot's own default (doveadm pw: 5,000) for a stolen hash, while the
# guessing online is slowed by the penalties (Dovecot's, the password
# page's), not by the hash.
ROUNDS = 100000
TOKEN_LIFETIME = 7 * 24 * 3600


class AccountError(Exception):
    """A refused password operation; the message is safe to show (it never
    contains a password or a token)."""


class UnknownUser(AccountError):
    pass


class InvalidToken(AccountError):
    """Wrong, used or expired token (or wrong current password)."""


class WeakPassword(AccountError):
    pass


def hash_password(password):
    """A hash Dovecot verifies (SHA512-CRYPT), with its scheme prefix."""
    return HASH_PREFIX + sha512_crypt.using(rounds=ROUNDS).hash(password)


def verify_password(stored, password):
    if not stored or not stored.startswith(HASH_PREFIX) or stored == NO_PASSWORD:
        return False
    try:
        return sha512_crypt.verify(password, stored[len(HASH_PREFIX):])
    except ValueError:
        return False


def new_token():
    """32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(address, token):
    """A fast hash is enough for a random token; the address salts it, so
    that a reset token reused for another account hashes differently."""
    return hashlib.sha256(
        ('%s\0%s' % (address, token)).encode('utf-8')).hexdigest()


def check_password(address, password):
    """Raise WeakPassword with the reason, or return None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword('the password must have at least %d characters'
                           % MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword('the password must have at most %d characters'
                           % MAX_PASSWORD_LENGTH)
    if any(c in password for c in '\0\r\n'):
        raise WeakPassword('the password must not contain a line break '
                           'or a NUL character')
    lowered = password.lower()
    if lowered in (address.lower(), address.lower().split('@')[0]):
        raise WeakPassword('the password must not be the address')
