"""The SQLite databases the stores keep in a partition (the greylisting
triplets, the password page's failures): private to the partition's user,
shared by several processes or threads."""
import contextlib
import os
import sqlite3

BUSY_TIMEOUT = 10                 # seconds to wait for another process's write


def open_private(path, schema, threads=False):
    """A connection to the database at ``path`` (its directory made 0700,
    the file 0600), in WAL mode, with ``schema`` (a CREATE TABLE IF NOT
    EXISTS) applied; ``threads``: usable from several threads (the caller
    keeps them to one at a time)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    old_umask = os.umask(0o077)
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                             check_same_thread=not threads)
        db.execute('PRAGMA journal_mode=WAL')
        db.execute(schema)
    finally:
        os.umask(old_umask)
    return db


@contextlib.contextmanager
def immediate(db):
    """One write transaction, taken at once (BEGIN IMMEDIATE): committed,
    or rolled back on an error."""
    db.execute('BEGIN IMMEDIATE')
    try:
        yield
        db.execute('COMMIT')
    except BaseException:
        db.execute('ROLLBACK')
        raise
