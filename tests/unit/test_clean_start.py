import os
import subprocess
import sys

from recipes.programs import clean_start

# a "master" that starts a worker in its process group, writes its pid
# file, and waits: killed with SIGKILL, it leaves the worker behind
MASTER = '''import os, subprocess, sys, time
os.setpgrp()
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)",
                           sys.argv[2]])
open(sys.argv[1], "w").write("%d\\n" % os.getpid())
print(worker.pid, flush=True)
time.sleep(300)
'''


def test_the_workers_of_a_killed_master_are_ended(tmp_path):
    pidfile, marker = str(tmp_path / 'daemon.pid'), str(tmp_path / 'd.conf')
    master = subprocess.Popen([sys.executable, '-c', MASTER, pidfile, marker],
                              stdout=subprocess.PIPE, text=True)
    worker = int(master.stdout.readline())
    master.kill()
    master.wait()
    assert not clean_start.zombie(worker)     # left behind
    assert clean_start.leftovers(master.pid, marker) == [worker]
    assert clean_start.end_leftovers(pidfile, marker) == [worker]
    assert clean_start.zombie(worker)


def test_no_pid_file_nothing_to_end(tmp_path):
    assert clean_start.end_leftovers(str(tmp_path / 'none.pid'), 'x') == []


def test_it_becomes_the_command(tmp_path):
    out = subprocess.run(
        [sys.executable, '-m', 'recipes.programs.clean_start',
         str(tmp_path / 'none.pid'), 'x', '--', '/bin/sh', '-c',
         'echo $$'], capture_output=True, text=True, check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
    assert out.stdout.strip().isdigit()
