"""Start a daemon after ending what its predecessor left when it was
killed:

  python -m recipes.programs.clean_start PIDFILE MARKER -- COMMAND...

Apache's and PHP-FPM's workers outlive a master killed with SIGKILL: they
keep the listening sockets, and the next master cannot start (Apache:
"Address already in use", PHP-FPM: "Another FPM instance seems to already
listen"), so the daemon would never come back. The workers are in the
killed master's process group (supervisord makes each service the leader of
a group), whose id is the pid the master wrote in PIDFILE. The processes
of that group that are this user's and show MARKER in their command line
(the daemon's configuration file, or the title it gives its processes) get
SIGTERM, then SIGKILL; then this process becomes COMMAND (exec: the same
pid for supervisord).
"""
import os
import signal
import sys
import time

GRACE = 5


def leftovers(group, marker):
    """The pids of this user's processes of process group ``group`` whose
    command line holds ``marker``."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if os.getpgid(int(pid)) != group or \
                    os.stat('/proc/' + pid).st_uid != os.getuid():
                continue
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except (OSError, ValueError):
            continue
    return found


def end_leftovers(pidfile, marker, grace=GRACE):
    """Ends the leftovers of the daemon whose pid ``pidfile`` holds;
    returns their pids."""
    try:
        with open(pidfile) as f:
            group = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = leftovers(group, marker)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(
                os.path.exists('/proc/%d' % pid) and not zombie(pid)
                for pid in pids):
            time.sleep(0.1)
    return pids


def zombie(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 4 or argv[2] != '--':
        raise SystemExit('usage: python -m recipes.programs.clean_start '
                         'PIDFILE MARKER -- COMMAND...')
    pidfile, marker, command = argv[0], argv[1], argv[3:]
    ended = end_leftovers(pidfile, marker)
    if ended:
        print('ended what the killed %s left: pids %s' % (
            os.path.basename(command[0]), ' '.join(map(str, ended))),
            file=sys.stderr, flush=True)
    os.execv(command[0], command)


if __name__ == '__main__':
    main()
