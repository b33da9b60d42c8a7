"""The greylisting database of a relay node, kept by this module alone:
which triplets (``recipes.decisions.greylisting.triplet``) were seen when,
and which passed.

State: one SQLite database in the partition (WAL journal, each decision in
its own immediate transaction, so that several processes may share it); the
policy daemon's threads share one ``Greylist``, whose connection a lock
keeps to one decision at a time.
Triplets never retried are forgotten after ``RETRY_WINDOW``, passed ones
after ``MAX_AGE`` without mail; pruning runs when a process starts and then
at most every ``PRUNE_EVERY`` seconds.
"""
import threading
import time

from ..decisions.greylisting import triplet
from .database import immediate, open_private

RETRY_WINDOW = 2 * 24 * 3600      # a first attempt not retried within: forgotten
MAX_AGE = 35 * 24 * 3600          # a passed triplet unseen for: forgotten
PRUNE_EVERY = 3600


class Greylist:
    """The triplets database at ``path``, safe across threads."""

    def __init__(self, path, delay, now=time.time, on_first=None):
        self.path = path
        self.delay = delay
        self.now = now
        # told ``(key, time)`` of each first attempt recorded (the relay
        # node's peers are, so that a retry through another node passes)
        self.on_first = on_first
        self.pruned = 0
        self.lock = threading.Lock()
        self.db = open_private(
            path, 'CREATE TABLE IF NOT EXISTS triplet (key TEXT PRIMARY KEY, '
            'first REAL NOT NULL, last REAL NOT NULL, '
            'passed INTEGER NOT NULL DEFAULT 0)', threads=True)

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
        key = triplet(client_address, sender, recipient)
        now = self.now()
        with self.lock:
            wait, first = self._check(key, now)
        if first and self.on_first is not None:
            self.on_first(key, now)
        if wait <= 0:
            return 0
        return max(1, int(wait + 0.999))

    def learn(self, key, first):
        """A first attempt of ``key`` that another node of the cluster saw
        at ``first``: kept unless this node saw an earlier one, or let the
        triplet pass already."""
        now = self.now()
        if not now - RETRY_WINDOW < first <= now:
            return
        with self.lock, immediate(self.db):
            row = self.db.execute(
                'SELECT first, passed FROM triplet WHERE key = ?',
                (key,)).fetchone()
            if row is None:
                self.db.execute(
                    'INSERT INTO triplet (key, first, last, passed) '
                    'VALUES (?, ?, ?, 0)', (key, first, first))
            elif not row[1] and first < row[0]:
                self.db.execute('UPDATE triplet SET first = ? WHERE key = ?',
                                (first, key))

    def _check(self, key, now):
        """``(seconds to wait, whether this is a first attempt)``."""
        if now - self.pruned >= PRUNE_EVERY:
            self._prune(now)
        first = False
        with immediate(self.db):
            row = self.db.execute(
                'SELECT first, passed FROM triplet WHERE key = ?',
                (key,)).fetchone()
            if row is None or (not row[1] and now - row[0] > RETRY_WINDOW):
                self.db.execute(
                    'INSERT OR REPLACE INTO triplet (key, first, last, passed) '
                    'VALUES (?, ?, ?, 0)', (key, now, now))
                wait, first = self.delay, True
            elif row[1] or now - row[0] >= self.delay:
                self.db.execute(
                    'UPDATE triplet SET last = ?, passed = 1 WHERE key = ?',
                    (now, key))
                wait = 0
            else:
                wait = self.delay - (now - row[0])
        return wait, first
