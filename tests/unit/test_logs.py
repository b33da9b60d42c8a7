import gzip
import os
import shutil
import subprocess
import sys
import time

import pytest

from recipes.programs import logs


def writer(path):
    """A daemon that keeps ``path`` open (from when this returns) and
    writes each line of its standard input there."""
    process = subprocess.Popen(
        [sys.executable, '-c', 'import sys\nf = open(sys.argv[1], "a")\n'
         'print("open", flush=True)\n'
         'for line in sys.stdin:\n    f.write(line); f.flush()\n',
         str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    assert process.stdout.readline() == 'open\n'
    return process


def test_the_holders_of_a_file_are_found(tmp_path):
    path = tmp_path / 'daemon.log'
    process = writer(path)
    try:
        (pid, name), = logs.holders([str(path)])[str(path)]
        assert pid == process.pid and name.startswith('python')
    finally:
        process.stdin.close()
        process.wait()
    assert logs.holders([str(path)]) == {}


def test_reopen_waits_until_the_rotated_file_is_released(tmp_path):
    rotated = tmp_path / 'daemon.log.1'
    rotated.write_text('')
    process = writer(rotated)
    try:
        # the "reopen command" makes the daemon write a last line and exit,
        # as postlogd does after a reload
        start = time.time()
        left = logs.reopen([str(rotated)], [
            'sh', '-c', 'sleep 0.5; kill %d' % process.pid], timeout=10)
        assert left == {}
        assert time.time() - start >= 0.5
    finally:
        process.kill()
        process.wait()


def test_a_file_still_open_is_reported_and_left(tmp_path, capsys):
    rotated = tmp_path / 'daemon.log.1'
    process = writer(rotated)
    try:
        left = logs.reopen([str(rotated)], ['false'], timeout=0.5)
        assert [pid for pid, _ in left[str(rotated)]] == [process.pid]
        assert 'false: exit 1' in capsys.readouterr().err
    finally:
        process.kill()
        process.wait()


@pytest.mark.skipif(not shutil.which('logrotate'), reason='logrotate is not '
                    'installed (scripts/setup.sh installs it)')
def test_logrotate_compresses_only_once_the_daemon_let_go(tmp_path):
    """The rotation as etc/logrotate.conf does it, with the host's
    logrotate: a daemon that writes until it is told, and a line written
    across the rotation."""
    log = tmp_path / 'daemon.log'
    process = writer(log)
    process.stdin.write('before\n')
    process.stdin.flush()
    config = tmp_path / 'logrotate.conf'
    config.write_text(
        '%s {\n  rotate 2\n  compress\n  postrotate\n    %s -m '
        'recipes.programs.logs reopen %s.1 -- sh -c "sleep 0.5; kill %d"\n'
        '  endscript\n}\n' % (log, sys.executable, log, process.pid))
    # written after the rename, before the daemon was told
    rotation = subprocess.Popen(['logrotate', '-f', '-s',
                                 str(tmp_path / 'state'), str(config)],
                                cwd=os.path.dirname(os.path.dirname(
                                    os.path.dirname(__file__))))
    time.sleep(0.2)
    process.stdin.write('across\n')
    process.stdin.flush()
    assert rotation.wait(30) == 0
    process.wait(10)
    assert gzip.decompress((tmp_path / 'daemon.log.1.gz').read_bytes()) \
        .decode().split() == ['before', 'across']


def test_the_rotation_does_not_wait_for_itself(tmp_path):
    """The scheduler's log-rotation job writes its output to the log it
    rotates: the rotation's own processes are not waited for."""
    log = tmp_path / 'scheduler.log.1'
    with open(log, 'a') as output:
        result = subprocess.run(
            [sys.executable, '-m', 'recipes.programs.logs', 'reopen',
             str(log)], stdout=output, stderr=subprocess.PIPE, timeout=30,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))))
    assert result.returncode == 0, result.stderr
