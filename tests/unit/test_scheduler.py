import json
import os
import threading
import time

import pytest

from recipes.programs import scheduler


def make(tmp_path, jobs):
    config = {'state-file': str(tmp_path / 'state.json'),
              'log-file': str(tmp_path / 'scheduler.log'), 'jobs': jobs}
    path = tmp_path / 'scheduler.json'
    path.write_text(json.dumps(config))
    return scheduler.Scheduler(scheduler.read_config(str(path)))


def running(s):
    thread = threading.Thread(target=s.loop, daemon=True)
    thread.start()
    return thread


def wait_for(predicate, timeout=10):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, 'not after %s s' % timeout
        time.sleep(0.05)


def test_jobs_run_when_due_and_their_output_is_logged(tmp_path):
    mark = tmp_path / 'ran'
    s = make(tmp_path, {'often': {'every': 1, 'command': [
        'sh', '-c', 'echo run >> %s; echo output of the job' % mark]}})
    thread = running(s)
    wait_for(lambda: mark.exists() and len(mark.read_text().split()) >= 2)
    s.stop()
    thread.join(5)
    assert not thread.is_alive()
    state = json.loads((tmp_path / 'state.json').read_text())['often']
    assert state['last-status'] == 0
    assert state['last-end'] >= state['last-start']
    log = (tmp_path / 'scheduler.log').read_text()
    assert 'often: started: sh -c' in log
    assert 'output of the job' in log and 'often: done in' in log


def test_a_job_that_ran_is_not_run_again_before_its_time(tmp_path):
    mark = tmp_path / 'ran'
    s = make(tmp_path, {'daily': {'daily': '03:00', 'command': [
        'sh', '-c', 'echo run >> %s' % mark]}})
    s.record('daily', **{'last-start': time.time()})
    assert s.due(time.time()) == []
    (tmp_path / 'state.json').unlink()
    assert s.due(time.time()) == ['daily']


def test_a_failing_job_is_recorded_with_its_status(tmp_path):
    s = make(tmp_path, {'bad': {'every': 3600, 'command': [
        'sh', '-c', 'echo cannot >&2; exit 3']}})
    assert s.run('bad') == 3
    assert s.state()['bad']['last-status'] == 3
    log = (tmp_path / 'scheduler.log').read_text()
    assert 'cannot' in log and 'bad: failed (exit 3)' in log


def test_a_job_past_its_timeout_is_killed_with_its_children(tmp_path):
    child = tmp_path / 'child.pid'
    s = make(tmp_path, {'slow': {'every': 3600, 'timeout': 1, 'command': [
        'sh', '-c', 'sleep 60 & echo $! > %s; wait' % child]}})
    start = time.time()
    assert s.run('slow') is None
    assert time.time() - start < 15
    pid = int(child.read_text())
    wait_for(lambda: not os.path.exists('/proc/%d' % pid)
             or open('/proc/%d/stat' % pid).read().split()[2] == 'Z')
    assert 'slow: timed out after 1 s' in (
        tmp_path / 'scheduler.log').read_text()


def test_stopping_the_scheduler_stops_the_running_job(tmp_path):
    s = make(tmp_path, {'long': {'every': 3600, 'command': ['sleep', '60']}})
    thread = running(s)
    wait_for(lambda: 'long: started' in (
        tmp_path / 'scheduler.log').read_text()
        if (tmp_path / 'scheduler.log').exists() else False)
    s.stop()
    thread.join(15)
    assert not thread.is_alive()
    assert 'the scheduler stops' in (tmp_path / 'scheduler.log').read_text()


@pytest.mark.parametrize('job', [
    {'every': 60}, {'every': 60, 'command': []},
    {'daily': '25:00', 'command': ['true']}])
def test_a_bad_job_is_refused_with_its_name(tmp_path, job):
    path = tmp_path / 'scheduler.json'
    path.write_text(json.dumps({'state-file': 's', 'log-file': 'l',
                                'jobs': {'rotation': job}}))
    with pytest.raises(SystemExit) as e:
        scheduler.read_config(str(path))
    assert 'job rotation' in str(e.value)
