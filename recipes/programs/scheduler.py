"""The scheduler of a partition: runs its periodic jobs (log rotation,
backups) as the partition's user, as cron does on a host. A partition has
no cron of its own here: upstream's ``slapos.cookbook:cron`` runs a dcron
built from source, which Debian does not ship; this is one small process
per partition, under the partition's supervisor like its daemons.

  python -m recipes.programs.scheduler CONFIG.json

CONFIG.json: ``{"state-file": path, "log-file": path, "jobs": {name:
{"every": seconds | "daily": "HH:MM" (UTC), "command": [argv...],
"timeout": seconds}}}``.

Each job runs when it is due (``recipes.decisions.schedule``: a run missed
while the scheduler was down is caught up once), one job at a time, in a
process group of its own, killed after its ``timeout``. Its output is
appended to ``log-file``, which is opened for each run (a log rotation
needs no signal), between a line when it starts and one when it ends.
``state-file`` keeps each job's last start, end and exit status; the start
is recorded first, so a job that kills the scheduler is not run again in a
loop. SIGTERM stops the running job, then the scheduler.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

from ..decisions import schedule
from ..stores.files import read_json, write_atomically

# between two looks at the clock, however far the next job is (the clock
# may be set)
MAX_SLEEP = 60
STOP_GRACE = 10


def read_config(path):
    """The configuration, checked: a bad job fails with its name."""
    with open(path) as f:
        config = json.load(f)
    for name, job in config['jobs'].items():
        try:
            schedule.check(job)
            if not job.get('command') or not all(
                    isinstance(a, str) for a in job['command']):
                raise ValueError('command: a non-empty list of strings')
        except ValueError as e:
            raise SystemExit('%s: job %s: %s' % (path, name, e))
    return config


def stamp(now=None):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))


class Scheduler:

    def __init__(self, config):
        self.config = config
        self.jobs = config['jobs']
        self.stopping = threading.Event()

    def stop(self, *_):
        self.stopping.set()

    def log(self, text):
        with open(self.config['log-file'], 'a') as f:
            f.write('%s %s\n' % (stamp(), text))

    def state(self):
        return read_json(self.config['state-file'], {})

    def record(self, name, **values):
        state = self.state()
        state.setdefault(name, {}).update(values)
        write_atomically(self.config['state-file'],
                         json.dumps(state, sort_keys=True, indent=1))

    def run(self, name):
        """Runs job ``name`` to its end (or its timeout, or SIGTERM);
        returns its exit status, None when it was killed."""
        job = self.jobs[name]
        start = time.time()
        self.record(name, **{'last-start': start})
        self.log('%s: started: %s' % (name, ' '.join(job['command'])))
        with open(self.config['log-file'], 'a') as output:
            process = subprocess.Popen(
                job['command'], stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = start + job.get('timeout', schedule.DAY)
        status, why = None, None
        while status is None:
            try:
                status = process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                if self.stopping.is_set():
                    why = 'the scheduler stops'
                elif time.time() > deadline:
                    why = 'timed out after %d s' % job.get('timeout')
                if why:
                    self.kill(process)
                    break
        end = time.time()
        self.record(name, **{'last-end': end, 'last-status': status})
        self.log('%s: %s in %.1f s' % (
            name, why or ('done' if status == 0 else 'failed (exit %d)'
                          % status), end - start))
        return status

    @staticmethod
    def kill(process):
        for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                pass

    def due(self, now):
        state = self.state()
        return [name for name in sorted(self.jobs) if schedule.is_due(
            self.jobs[name], state.get(name, {}).get('last-start'), now)]

    def next_time(self, now):
        state = self.state()
        return min(schedule.next_time(job, state.get(name, {}).get(
            'last-start'), now) for name, job in self.jobs.items())

    def loop(self):
        while not self.stopping.is_set():
            for name in self.due(time.time()):
                if self.stopping.is_set():
                    break
                self.run(name)
            if not self.jobs:
                self.stopping.wait(MAX_SLEEP)
                continue
            wait = self.next_time(time.time()) - time.time()
            self.stopping.wait(min(max(wait, 0.5), MAX_SLEEP))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit('usage: python -m recipes.programs.scheduler '
                         'CONFIG.json')
    scheduler = Scheduler(read_config(argv[0]))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, scheduler.stop)
    print('scheduler: %s' % (', '.join(sorted(scheduler.jobs)) or 'no job'),
          file=sys.stderr, flush=True)
    scheduler.loop()


if __name__ == '__main__':
    main()
