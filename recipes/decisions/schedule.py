"""When a partition's scheduled jobs are due (``recipes.programs.scheduler``
runs them): time arithmetic over Unix times, in UTC, without I/O.

A job runs ``{"every": <seconds>}`` or ``{"daily": "HH:MM"}`` (UTC). A run
that was missed (the scheduler was down at its time) is caught up once, at
the next start, as anacron does: a job is due when it has not started since
its latest scheduled time. A job that never ran is due at once.
"""
import re

DAY = 24 * 3600
DAILY = re.compile(r'^([01][0-9]|2[0-3]):([0-5][0-9])$')


def daily_offset(text):
    """Seconds after midnight UTC of ``HH:MM``; ValueError naming the
    format otherwise."""
    match = DAILY.match(text or '')
    if not match:
        raise ValueError('%r is not a time of day: give HH:MM (UTC), for '
                         'example 03:00' % (text,))
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60


def check(job):
    """Raise ValueError unless ``job`` has exactly one valid schedule."""
    if ('every' in job) == ('daily' in job):
        raise ValueError('a job runs either every N seconds or daily at '
                         'HH:MM: %r' % (job,))
    if 'every' in job:
        if not isinstance(job['every'], int) or job['every'] < 1:
            raise ValueError('every: a number of seconds (at least 1), not '
                             '%r' % (job['every'],))
    else:
        daily_offset(job['daily'])


def period(job):
    """Seconds between two scheduled runs."""
    return job['every'] if 'every' in job else DAY


def latest_time(job, now):
    """The latest scheduled time at or before ``now`` of a daily job."""
    midnight = now - now % DAY
    at = midnight + daily_offset(job['daily'])
    return at if at <= now else at - DAY


def is_due(job, last_start, now):
    """Whether ``job``, last started at ``last_start`` (None: never), must
    start at ``now``."""
    if last_start is None:
        return True
    if 'every' in job:
        return now >= last_start + job['every']
    return last_start < latest_time(job, now)


def next_time(job, last_start, now):
    """When ``job`` is next due: ``now`` when it is due already."""
    if is_due(job, last_start, now):
        return now
    if 'every' in job:
        return last_start + job['every']
    return latest_time(job, now) + DAY
