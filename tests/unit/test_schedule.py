import calendar

import pytest

from recipes.decisions import schedule


def utc(text):
    """Unix time of ``YYYY-MM-DD HH:MM`` UTC."""
    import time
    return calendar.timegm(time.strptime(text, '%Y-%m-%d %H:%M'))


def test_a_job_that_never_ran_is_due_at_once():
    assert schedule.is_due({'every': 3600}, None, utc('2026-12-01 10:00'))
    assert schedule.is_due({'daily': '03:00'}, None, utc('2026-12-01 10:00'))


def test_every_n_seconds():
    job = {'every': 3600}
    start = utc('2026-12-01 10:00')
    assert not schedule.is_due(job, start, start + 3599)
    assert schedule.is_due(job, start, start + 3600)
    assert schedule.next_time(job, start, start + 10) == start + 3600


def test_daily_at_its_time_in_utc():
    job = {'daily': '03:00'}
    ran = utc('2026-12-01 03:00')
    assert not schedule.is_due(job, ran, utc('2026-12-02 02:59'))
    assert schedule.is_due(job, ran, utc('2026-12-02 03:00'))
    assert schedule.next_time(job, ran, utc('2026-12-01 12:00')) == \
        utc('2026-12-02 03:00')


def test_a_missed_daily_run_is_caught_up_once():
    job = {'daily': '03:00'}
    # down from before 03:00 until 10:00: due at 10:00, once
    assert schedule.is_due(job, utc('2026-12-01 03:00'),
                           utc('2026-12-02 10:00'))
    assert not schedule.is_due(job, utc('2026-12-02 10:00'),
                               utc('2026-12-02 11:00'))
    # down for three days: one run, not three
    assert not schedule.is_due(job, utc('2026-12-05 10:00'),
                               utc('2026-12-05 10:01'))


def test_daily_before_its_time_of_day_counts_from_yesterday():
    job = {'daily': '23:30'}
    assert schedule.latest_time(job, utc('2026-12-01 10:00')) == \
        utc('2026-11-30 23:30')
    assert schedule.latest_time(job, utc('2026-12-01 23:30')) == \
        utc('2026-12-01 23:30')


@pytest.mark.parametrize('job', [
    {}, {'every': 10, 'daily': '03:00'}, {'every': 0}, {'every': '60'},
    {'daily': '3:00'}, {'daily': '24:00'}, {'daily': '03:60'}])
def test_a_bad_schedule_is_refused_with_its_value(job):
    with pytest.raises(ValueError):
        schedule.check(job)


def test_period():
    assert schedule.period({'every': 3600}) == 3600
    assert schedule.period({'daily': '03:00'}) == schedule.DAY
