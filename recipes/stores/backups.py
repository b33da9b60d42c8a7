"""The partition's snapshots, kept by this module alone in the backup
directory (``srv/backup``, 0700), which a pull-based backup takes as it is
(upstream's resilient stack, or ``rsync -aH`` from another node: ``-H``
keeps the hard links, so that a message is copied once).

# Layout

  snapshots/<name>/  one complete snapshot each (``20261201T030000Z``, UTC):
                     ``manifest.json`` (``FORMAT``, the release, when, the
                     partition's domains, what each part holds) and a
                     directory per part (``accounts``, ``homes``,
                     ``certificates``, ``dkim``). Files that never change
                     (Maildir messages) are hard links to the live ones: a
                     snapshot costs its directories and the files that
                     changed
  latest             a link to the newest snapshot
  status.json        the runs: first-attempt, last-attempt, last-success,
                     last-snapshot, error (the backup promise reads it)
  .partial-<name>/   a snapshot being written, or interrupted: never taken
                     for one, removed by the next run
  .lock              one backup or restore at a time
"""
import contextlib
import fcntl
import json
import os
import shutil

from ..decisions import backups
from .files import read_json, write_atomically

SNAPSHOTS = 'snapshots'
LATEST = 'latest'
STATUS = 'status.json'
MANIFEST = 'manifest.json'
PARTIAL = '.partial-'


@contextlib.contextmanager
def locked(directory):
    """The backup directory, for one backup or restore at a time (a second
    one waits)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, '.lock'), os.O_RDWR | os.O_CREAT,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def begin(directory, now):
    """A new, empty snapshot directory to fill, once the partial ones left
    by interrupted runs are removed."""
    for name in os.listdir(directory):
        if name.startswith(PARTIAL):
            shutil.rmtree(os.path.join(directory, name))
    path = os.path.join(directory, PARTIAL + backups.snapshot_name(now))
    os.makedirs(path, mode=0o700)
    return path


def commit(directory, partial, manifest):
    """Make ``partial`` a snapshot: its manifest, then its name, then the
    ``latest`` link; returns its path."""
    write_atomically(os.path.join(partial, MANIFEST),
                     json.dumps(manifest, indent=1, sort_keys=True))
    snapshots = os.path.join(directory, SNAPSHOTS)
    os.makedirs(snapshots, mode=0o700, exist_ok=True)
    path = os.path.join(snapshots, os.path.basename(partial)[len(PARTIAL):])
    os.rename(partial, path)
    link = os.path.join(directory, LATEST)
    tmp = link + '.new'
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join(SNAPSHOTS, os.path.basename(path)), tmp)
    os.rename(tmp, link)
    return path


def names(directory):
    """The snapshots' names, oldest first."""
    try:
        found = os.listdir(os.path.join(directory, SNAPSHOTS))
    except FileNotFoundError:
        return []
    return sorted(n for n in found if backups.is_snapshot_name(n))


def prune(directory, keep):
    """Remove the snapshots beyond the newest ``keep``; returns their
    names."""
    removed = backups.to_prune(names(directory), keep)
    for name in removed:
        shutil.rmtree(os.path.join(directory, SNAPSHOTS, name))
    return removed


def read_manifest(snapshot):
    """The manifest of a snapshot directory; ValueError naming the
    directory when it is none (a partial one, another tree)."""
    path = os.path.join(snapshot, MANIFEST)
    manifest = read_json(path, None)
    if not isinstance(manifest, dict) or \
            manifest.get('format') != backups.FORMAT:
        raise ValueError(
            '%s is not a snapshot of this bundle (no %s of format %d): give '
            'a directory of srv/backup/snapshots, or srv/backup/latest'
            % (snapshot, MANIFEST, backups.FORMAT))
    return manifest


def read_status(directory):
    return read_json(os.path.join(directory, STATUS), {})


def record_status(directory, now, snapshot=None, error=None):
    """Record an attempt: its snapshot when it succeeded, else its
    error."""
    status = read_status(directory)
    status.setdefault('first-attempt', now)
    status['last-attempt'] = now
    if error is None:
        status.update({'last-success': now, 'last-snapshot': snapshot})
        status.pop('error', None)
    else:
        status['error'] = error
    write_atomically(os.path.join(directory, STATUS),
                     json.dumps(status, indent=1, sort_keys=True))
    return status
