"""The failed logins of the password page, kept by this module alone: how
many failures each key (``recipes.decisions.throttling``: a client
network, an account) has had since its last success, and when the last
was.

State: one SQLite database (WAL journal, each change in its own immediate
transaction), shared by the page's CGI processes, one per request. Keys
with no failure for ``throttling.FORGET_AFTER`` are forgotten at the next
failure (the table holds at most an hour of keys).
"""
import time

from ..decisions.throttling import FORGET_AFTER
from .database import immediate, open_private


class LoginFailures:
    """The failures database at ``path``."""

    def __init__(self, path, now=time.time):
        self.now = now
        self.db = open_private(
            path, 'CREATE TABLE IF NOT EXISTS failure (key TEXT PRIMARY KEY, '
            'count INTEGER NOT NULL, last REAL NOT NULL)')

    def close(self):
        self.db.close()

    def count(self, keys):
        """The largest count of failures among ``keys``."""
        since = self.now() - FORGET_AFTER
        counts = [row[0] for row in self.db.execute(
            'SELECT count FROM failure WHERE last >= ? AND key IN (%s)'
            % ','.join('?' * len(keys)), [since] + list(keys))]
        return max(counts, default=0)

    def failed(self, keys):
        """One more failure for each of ``keys``."""
        now = self.now()

        def change():
            self.db.execute('DELETE FROM failure WHERE last < ?',
                            (now - FORGET_AFTER,))
            for key in keys:
                self.db.execute(
                    'INSERT INTO failure (key, count, last) VALUES (?, 1, ?) '
                    'ON CONFLICT(key) DO UPDATE SET count = count + 1, '
                    'last = excluded.last', (key, now))
        self._write(change)

    def succeeded(self, keys):
        """Forget the failures of ``keys``."""
        self._write(lambda: self.db.execute(
            'DELETE FROM failure WHERE key IN (%s)'
            % ','.join('?' * len(keys)), list(keys)))

    def _write(self, change):
        with immediate(self.db):
            change()
