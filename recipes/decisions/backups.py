"""What the backups decide, without I/O: how a snapshot is named, which
snapshots are kept, when the last backup is too old, which messages of a
snapshot a mailbox lacks (``recipes.stores.backups`` keeps the snapshots,
``recipes.programs.backup`` makes and restores them)."""
import calendar
import re
import time

FORMAT = 1
NAME = re.compile(r'^\d{8}T\d{6}Z$')
# how long a scheduled backup may take before it counts as missed
GRACE = 3600


def snapshot_name(now):
    """The name of a snapshot taken at Unix time ``now``, which sorts as
    time does: ``20261201T030000Z``."""
    return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))


def snapshot_time(name):
    return calendar.timegm(time.strptime(name, '%Y%m%dT%H%M%SZ'))


def is_snapshot_name(name):
    return bool(NAME.match(name))


def to_prune(names, keep):
    """The snapshots beyond the newest ``keep``, oldest first."""
    ordered = sorted(n for n in names if is_snapshot_name(n))
    return ordered[:max(len(ordered) - keep, 0)]


def overdue(status, now, period, grace=GRACE):
    """Why the backups are not kept up (``None``: they are). ``status`` is
    what the last runs recorded (``recipes.stores.backups``): the last
    attempt fails at once; else the last success must be at most one
    ``period`` (and ``grace``, for the backup to run) old, counted from
    the first attempt when none succeeded yet. Before any attempt there is
    nothing to say: the scheduler runs the first one when it starts."""
    if not status.get('first-attempt'):
        return None
    if status.get('error'):
        return 'the last backup, at %s, failed: %s' % (
            utc(status['last-attempt']), status['error'])
    since = status.get('last-success') or status['first-attempt']
    if now - since <= period + grace:
        return None
    if not status.get('last-success'):
        return 'no backup succeeded since the first attempt at %s' % utc(
            since)
    return 'the last successful backup is from %s, %.0f hours ago: more ' \
        'than its schedule allows (every %.0f hours); see var/log/' \
        'scheduler.log' % (utc(since), (now - since) / 3600, period / 3600)


def utc(when):
    return time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(when))


def message_key(name):
    """What identifies a Maildir message across its renames: its unique
    name, without the flags after ``:`` (``1701.M1P2.host:2,S``)."""
    return name.split(':', 1)[0]


def missing_messages(snapshot_names, present_names):
    """The messages of a snapshot folder (file names) that the mailbox's
    folder lacks, whatever their flags are now; a message already there is
    the same message (its name is unique), kept as it is."""
    present = {message_key(n) for n in present_names}
    return sorted(n for n in snapshot_names if message_key(n) not in present)
