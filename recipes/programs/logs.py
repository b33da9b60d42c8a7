"""What logrotate runs after it renamed a daemon's log (``FILE`` to
``FILE.1``, the postrotate script of ``etc/logrotate.conf``): the daemon is
told to reopen its log, which creates a new ``FILE``, and the command waits
until no process has ``FILE.1`` open any more. logrotate compresses
``FILE.1`` only then: what was logged across the rotation is in one of the
two files, never lost.

  python -m recipes.programs.logs reopen FILE.1 [FILE.1...] [-- COMMAND...]

COMMAND tells the daemon (``postfix reload``, ``doveadm log reopen``, an
Apache graceful restart, PHP-FPM's USR1); a daemon that opens its log for
each line (the relay's policy daemon, the scheduler) needs none. A COMMAND
that fails (its daemon is not running) is reported, and only the wait
decides. When a file is still open after ``TIMEOUT`` seconds, the exit
status is 1, naming the process: logrotate then leaves the file
uncompressed, and nothing is lost either.
"""
import os
import subprocess
import sys
import time

TIMEOUT = 60


def ancestors():
    """This process and those it descends from: the rotation itself (the
    scheduler's log-rotation job writes its output to a log it rotates)."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open('/proc/%d/stat' % pid) as f:
                pid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def holders(paths):
    """``{path: [(pid, name)]}`` of the processes of this user that have
    one of ``paths`` open (those of other users cannot be read, and cannot
    write there either), but the rotation's own (``ancestors``)."""
    wanted = {os.path.realpath(p): p for p in paths}
    found = {}
    ours = ancestors()
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) in ours:
            continue
        fd_directory = '/proc/%s/fd' % pid
        try:
            fds = os.listdir(fd_directory)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_directory, fd))
            except OSError:
                continue
            if target in wanted:
                found.setdefault(wanted[target], []).append(
                    (int(pid), process_name(pid)))
    return found


def process_name(pid):
    try:
        with open('/proc/%s/comm' % pid) as f:
            return f.read().strip()
    except OSError:
        return '?'


def reopen(paths, command, timeout=TIMEOUT, poll=0.1):
    """Runs ``command`` (if any), then waits until nobody holds ``paths``;
    returns the holders left (empty: done)."""
    if command:
        result = subprocess.run(command, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True)
        if result.returncode:
            print('%s: exit %d: %s' % (' '.join(command), result.returncode,
                                       (result.stderr or result.stdout)
                                       .strip()), file=sys.stderr)
    deadline = time.time() + timeout
    while True:
        left = holders(paths)
        if not left or time.time() > deadline:
            return left
        time.sleep(poll)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ['reopen'] or len(argv) < 2:
        raise SystemExit('usage: python -m recipes.programs.logs reopen '
                         'FILE.1... [-- COMMAND...]')
    argv = argv[1:]
    paths, command = (argv[:argv.index('--')], argv[argv.index('--') + 1:]) \
        if '--' in argv else (argv, [])
    left = reopen(paths, command)
    for path, processes in sorted(left.items()):
        print('%s is still written to by %s after %d s: left uncompressed, '
              'so that nothing is lost' % (path, ', '.join(
                  '%s (pid %d)' % (name, pid) for pid, name in processes),
                  TIMEOUT), file=sys.stderr)
    return 1 if left else 0


if __name__ == '__main__':
    sys.exit(main())
