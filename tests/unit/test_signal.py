"""recipes.programs.signal: a daemon of a pid file gets its signal; one
that does not run is said, not an error that stops the reload."""
import subprocess
import sys
import time

from recipes.programs.signal import main


def test_the_daemon_of_the_pid_file_gets_the_signal(tmp_path):
    seen = tmp_path / 'seen'
    daemon = subprocess.Popen([sys.executable, '-c', (
        'import signal, sys, time\n'
        'signal.signal(signal.SIGUSR1, lambda *a: open(%r, "w").write("USR1"))\n'
        'print("ready", flush=True)\n'
        'time.sleep(30)\n') % str(seen)], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline() == 'ready\n'
        pid_file = tmp_path / 'daemon.pid'
        pid_file.write_text('%d\n' % daemon.pid)
        assert main([str(pid_file), 'USR1']) == 0
        deadline = time.time() + 10
        while not seen.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert seen.read_text() == 'USR1'
        assert daemon.poll() is None      # a reload, not an end
    finally:
        daemon.kill()
        daemon.wait()


def test_a_daemon_that_does_not_run_is_said(tmp_path, capsys):
    assert main([str(tmp_path / 'absent.pid'), 'USR1']) == 1
    assert 'absent.pid: not signalled' in capsys.readouterr().err
    stale = tmp_path / 'stale.pid'
    child = subprocess.Popen(['true'])
    child.wait()
    stale.write_text(str(child.pid))
    assert main([str(stale), 'USR1']) == 1
    assert main([str(stale), 'NOSUCHSIGNAL']) == 1
