"""Greylisting of a relay node's inbound mail (the ``inbound`` policy of
``recipes.relay_policy``).

The first attempt of a triplet (client network, sender, recipient) is
deferred with a temporary error; a retry once ``delay`` seconds have passed
is let through, and so is every later one while the triplet keeps being seen.
A real mail server retries; most spam engines do not.

- client network: the client's IPv4 /24 or IPv6 /64, so that a sender
  retrying from another address of the same farm is not greylisted again;
- sender and recipient: the envelope addresses, lower-cased (the null
  sender of a bounce counts as the empty address).

State: one SQLite database in the partition (WAL journal, each decision in
its own immediate transaction, so that several processes may share it); the
policy daemon's threads share one ``Greylist``, whose connection a lock
keeps to one decision at a time.
Triplets never retried are forgotten after ``RETRY_WINDOW``, passed ones
after ``MAX_AGE`` without mail; pruning runs when a process starts and then
at most every ``PRUNE_EVERY`` seconds.

Whitelists (``whitelist-clients``, ``whitelist-recipients`` of the relay
configuration) are matched by ``whitelisted_client`` and
``whitelisted_recipient``; see there.
"""
import ipaddress
import os
import sqlite3
import threading
import time

RETRY_WINDOW = 2 * 24 * 3600      # a first attempt not retried within: forgotten
MAX_AGE = 35 * 24 * 3600          # a passed triplet unseen for: forgotten
PRUNE_EVERY = 3600
BUSY_TIMEOUT = 10                 # seconds to wait for another process's write


def _address(value):
    """The IP address ``value`` (an IPv4-mapped IPv6 address as its IPv4),
    or None."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def client_network(address):
    """The network a client address counts as: /24 for IPv4, /64 for IPv6
    (an IPv4-mapped IPv6 address counts as its IPv4)."""
    ip = _address(address)
    if ip is None:
        return address.lower()
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network('%s/%d' % (ip, prefix), strict=False))


def whitelisted_client(entries, client_address, client_name=''):
    """Whether the client matches an entry of ``whitelist-clients``:

    - an IP address (``192.0.2.7``, ``2001:db8::7``): that address;
    - a network in CIDR notation (``192.0.2.0/24``, ``2001:db8::/32``): any
      address in it;
    - anything else is a host name: the client's name as Postfix verified it
      (``client_name``: its reverse name, confirmed by a forward lookup;
      never the HELO name, which the client chooses) is that name or ends
      with ``.`` + that name (``example.net`` matches ``mx1.example.net``).
    """
    address = _address(client_address)
    name = (client_name or '').lower().rstrip('.')
    if name == 'unknown':
        name = ''
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            continue
        ip = None if '/' in entry else _address(entry)
        if '/' in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if address is not None and address.version == network.version \
                    and address in network:
                return True
        elif ip is not None:
            if ip == address:
                return True
        elif name:
            entry = entry.lstrip('.').rstrip('.')
            if name == entry or name.endswith('.' + entry):
                return True
    return False


def whitelisted_recipient(entries, recipient):
    """Whether the recipient matches an entry of ``whitelist-recipients``:
    an address (``postmaster@example.com``) matches that address; a domain
    (``example.com``, or ``@example.com``) matches every address of that
    domain. Case does not matter."""
    recipient = (recipient or '').lower()
    domain = recipient.rpartition('@')[2]
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            continue
        if '@' in entry.lstrip('@'):
            if entry == recipient:
                return True
        elif entry.lstrip('@') == domain:
            return True
    return False


class Greylist:
    """The triplets database at ``path``, safe across threads."""

    def __init__(self, path, delay, now=time.time):
        self.path = path
        self.delay = delay
        self.now = now
        self.pruned = 0
        self.lock = threading.Lock()
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        old_umask = os.umask(0o077)
        try:
            self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT,
                                      isolation_level=None,
                                      check_same_thread=False)
            self.db.execute('PRAGMA journal_mode=WAL')
            self.db.execute(
                'CREATE TABLE IF NOT EXISTS triplet (key TEXT PRIMARY KEY, '
                'first REAL NOT NULL, last REAL NOT NULL, '
                'passed INTEGER NOT NULL DEFAULT 0)')
        finally:
            os.umask(old_umask)

    def close(self):
        with self.lock:
            self.db.close()

    def prune(self, now=None):
        """Forget the expired triplets; return how many."""
        with self.lock:
            return self._prune(self.now() if now is None else now)

    def _prune(self, now):
        cursor = self.db.execute(
            'DELETE FROM triplet WHERE (passed = 0 AND first < ?) '
            'OR last < ?', (now - RETRY_WINDOW, now - MAX_AGE))
        self.pruned = now
        return cursor.rowcount

    def check(self, client_address, sender, recipient):
        """``0`` when the triplet may pass, else the seconds to wait before
        a retry is let through (a first attempt is recorded)."""
        key = '%s/%s/%s' % (client_network(client_address),
                            (sender or '').lower(), (recipient or '').lower())
        with self.lock:
            wait = self._check(key, self.now())
        if wait <= 0:
            return 0
        return max(1, int(wait + 0.999))

    def _check(self, key, now):
        if now - self.pruned >= PRUNE_EVERY:
            self._prune(now)
        self.db.execute('BEGIN IMMEDIATE')
        try:
            row = self.db.execute(
                'SELECT first, passed FROM triplet WHERE key = ?',
                (key,)).fetchone()
            if row is None or (not row[1] and now - row[0] > RETRY_WINDOW):
                self.db.execute(
                    'INSERT OR REPLACE INTO triplet (key, first, last, passed) '
                    'VALUES (?, ?, ?, 0)', (key, now, now))
                wait = self.delay
            elif row[1] or now - row[0] >= self.delay:
                self.db.execute(
                    'UPDATE triplet SET last = ?, passed = 1 WHERE key = ?',
                    (now, key))
                wait = 0
            else:
                wait = self.delay - (now - row[0])
            self.db.execute('COMMIT')
        except BaseException:
            self.db.execute('ROLLBACK')
            raise
        return wait
