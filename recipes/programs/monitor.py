"""The monitor of a partition: what upstream's ``stack/monitor`` runs from
cron, with slapos.toolbox's own modules, as one process under the
partition's supervisor (a partition has no cron here: see
``recipes.programs.scheduler``).

  python -m recipes.programs.monitor MONITOR.CONF

MONITOR.CONF is slapos.toolbox's monitor configuration (``[monitor]``,
``[promises]``). The process

- links the promises' results and logs that slapgrid writes in the
  partition (``.slapgrid/promise/result`` and ``log``) into the monitor's
  public folder (``promise``) and its log folder (``promise``), as
  upstream's ``monitor-symlink``;
- runs the bootstrap (``slapos.monitor.monitor``, upstream's
  ``monitor.bootstrap``): the log folders linked into the private folder,
  the OPML list of feeds (``public/feeds``), with the related monitors'
  (a relay cluster's nodes), the configuration documents; again every
  ``REFRESH`` seconds until it succeeds (a related monitor that does not
  answer yet);
- builds the state (``slapos.monitor.monitor_state``, upstream's
  ``monitor.genstate``): the RSS feed of the promises' results
  (``public/feed``), each promise's history (``public/<promise>.history.json``),
  ``monitor.global.json``; each time slapgrid wrote results (seen within
  ``POLL`` seconds, built once they stayed unchanged for ``QUIET``
  seconds: one build per run of the promises) and at least every
  ``REFRESH`` seconds, as upstream's cron does.

An error of a build is printed and the next one tried: the monitor never
stops for a damaged file.
"""
import configparser
import os
import signal
import sys
import threading
import time
import traceback

POLL = 1
QUIET = 2
REFRESH = 120
# where slapgrid writes, in the partition (slapos.grid.promise's
# PROMISE_RESULT_FOLDER_NAME and PROMISE_LOG_FOLDER_NAME, not imported:
# slapos.grid would cost this long-running process memory for two names)
RESULT_FOLDER = os.path.join('.slapgrid', 'promise', 'result')
LOG_FOLDER = os.path.join('.slapgrid', 'promise', 'log')


class Schedule:
    """When to bootstrap and to build the state, from what the clock and
    the promises' results directory say (``tick`` every ``POLL`` s)."""

    def __init__(self, quiet=QUIET, refresh=REFRESH):
        self.quiet, self.refresh = quiet, refresh
        self.seen = None          # the results' last modification seen
        self.changed_at = None    # when it was seen changing, not built yet
        self.built_at = None
        self.bootstrapped = False
        self.bootstrap_at = None

    def tick(self, now, modified):
        """``(bootstrap, build)``: what to do now."""
        if modified != self.seen:
            if self.seen is not None or self.built_at is not None:
                self.changed_at = now
            self.seen = modified
        bootstrap = not self.bootstrapped and (
            self.bootstrap_at is None or now - self.bootstrap_at >= self.refresh)
        build = (self.built_at is None
                 or now - self.built_at >= self.refresh
                 or (self.changed_at is not None
                     and now - self.changed_at >= self.quiet))
        return bootstrap, build

    def bootstrap_done(self, now, succeeded):
        self.bootstrap_at, self.bootstrapped = now, succeeded

    def build_done(self, now):
        self.built_at, self.changed_at = now, None


def modification(directory):
    """The results directory's modification time (slapgrid renames each
    result into it), None while it does not exist."""
    try:
        return os.stat(directory).st_mtime_ns
    except FileNotFoundError:
        return None


def link(target, name):
    """``name`` a symbolic link to ``target`` (made again when it points
    elsewhere)."""
    if os.path.islink(name):
        if os.readlink(name) == target:
            return
        os.unlink(name)
    os.symlink(target, name)


class Monitor:

    def __init__(self, conf):
        self.conf = conf
        config = configparser.ConfigParser(interpolation=None)
        config.read(conf)
        partition = config.get('promises', 'partition-folder')
        self.results = os.path.join(partition, RESULT_FOLDER)
        self.links = {
            config.get('promises', 'output-folder'): self.results,
            os.path.join(config.get('monitor', 'log-folder'), 'promise'):
                os.path.join(partition, LOG_FOLDER)}

    def prepare(self):
        os.makedirs(self.results, exist_ok=True)
        for name, target in self.links.items():
            os.makedirs(target, exist_ok=True)
            link(target, name)

    def bootstrap(self):
        """slapos.toolbox's bootstrap; whether it succeeded."""
        from slapos.monitor.monitor import Monitoring
        monitoring = Monitoring(self.conf)
        monitoring.bootstrapMonitor()
        return monitoring.bootstrap_is_ok

    def build(self):
        """slapos.toolbox's state of the promises."""
        from slapos.monitor.monitor_state import MonitorStateBuilder
        MonitorStateBuilder(self.conf).buildMonitorState()


def attempt(what, *args):
    try:
        return what(*args)
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        return False


def run(monitor, stop, schedule=None, clock=time.monotonic):
    schedule = schedule or Schedule()
    monitor.prepare()
    while True:
        now = clock()
        bootstrap, build = schedule.tick(now, modification(monitor.results))
        if bootstrap:
            schedule.bootstrap_done(now, bool(attempt(monitor.bootstrap)))
        if build:
            attempt(monitor.build)
            schedule.build_done(clock())
        if stop.wait(POLL):
            return


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit('usage: python -m recipes.programs.monitor '
                         'MONITOR.CONF')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run(Monitor(argv[0]), stop)


if __name__ == '__main__':
    main()
