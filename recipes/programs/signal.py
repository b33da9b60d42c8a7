"""Sends a signal to the daemon of a pid file, as a reload does (OpenDKIM
reads its configuration and tables again on USR1):

  python -m recipes.programs.signal PIDFILE SIGNAL      (SIGNAL: USR1, HUP...)

The exit status is 1, with the reason on standard error, when the daemon
does not run (no pid file, or no such process): the reload recipe then
leaves it to read its configuration when it starts.
"""
import os
import signal
import sys


def send(pid_file, name):
    """``kill -NAME`` the pid written in ``pid_file``."""
    with open(pid_file) as f:
        pid = int(f.read().split()[0])
    os.kill(pid, signal.Signals['SIG' + name.upper()])


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        send(*argv)
    except (OSError, ValueError, IndexError, KeyError) as e:
        print('%s: not signalled (%s)' % (argv[0], e), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
