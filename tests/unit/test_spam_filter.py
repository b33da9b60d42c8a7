"""The spam filter (recipes/programs/spam_filter.py): Dovecot's program
protocol, the verdict line as bogofilter -v writes it, and a real
bogofilter behind a real socket."""
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from recipes.programs import spam_filter

BOGOFILTER = shutil.which('bogofilter') or '/usr/bin/bogofilter'
needs_bogofilter = pytest.mark.skipif(
    not os.path.exists(BOGOFILTER),
    reason='bogofilter is not installed (scripts/setup.sh installs it)')
SPAM = ('Subject: win %d\n\nBuy cheap pills now, casino jackpot, free '
        'lottery money, click here, act now, no prescription.\n')
HAM = ('Subject: meeting %d\n\nCan we move the project meeting to 3pm? I '
       'will bring the budget figures for the quarterly report.\n')


def test_the_request_is_read_as_dovecot_writes_it():
    env, arguments = spam_filter.parse_request([
        b'VERSION\tscript\t4\t0', b'env_USER=alice@example.com',
        b'env_HOME=/srv/mail/a\x01tb', b'-', b'-v', b'-e'])
    assert env == {'USER': 'alice@example.com', 'HOME': '/srv/mail/a\tb'}
    assert arguments == ['-v', '-e']
    with pytest.raises(spam_filter.FilterError):
        spam_filter.parse_request([b'HELO there'])
    with pytest.raises(spam_filter.FilterError):
        spam_filter.parse_request([b'VERSION\tscript\t4\t0', b'noreply'])


# --- a real bogofilter behind the socket ----------------------------------
def ask(path, message, home, arguments=spam_filter.CLASSIFY):
    """What Dovecot's sieve execute sends, and what it gets back."""
    return spam_filter.ask(path, home, arguments, message, timeout=30)


def test_fields_are_escaped_as_dovecot_does_and_back():
    field = b'a\tb\nc\rd\1e\0f'
    assert b'\t' not in spam_filter.escape(field)
    assert spam_filter.unescape(spam_filter.escape(field)) == field


def train(home, count=20):
    os.makedirs(home, exist_ok=True)
    for i in range(count):
        for option, text in (('-s', SPAM), ('-n', HAM)):
            subprocess.run([BOGOFILTER, option], input=(text % i).encode(),
                           env=dict(os.environ, HOME=home), check=True)


@pytest.fixture
def spam_filter_socket(tmp_path):
    path = str(tmp_path / 'bogofilter')
    with open(path, 'w'):
        pass        # a stale file where the socket goes
    log = open(str(tmp_path / 'spam-filter.log'), 'w')
    process = subprocess.Popen(
        [sys.executable, '-m', 'recipes.programs.spam_filter', path, BOGOFILTER],
        stderr=log, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
    deadline = time.time() + 30
    while not _listening(path):
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.05)
    yield path
    process.terminate()
    process.wait()
    log.close()
    assert not os.path.exists(path)


def _listening(path):
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
        return True
    except OSError:
        return False


@needs_bogofilter
def test_verdicts_are_bogofilters_own(spam_filter_socket, tmp_path):
    home = str(tmp_path / 'alice')
    train(home)
    for text in (SPAM % 99, HAM % 99, (HAM % 98).replace('\n', '\r\n')):
        direct = subprocess.run([BOGOFILTER, '-v', '-e'], input=text.encode(),
                                env=dict(os.environ, HOME=home),
                                capture_output=True, check=True).stdout
        assert ask(spam_filter_socket, text.encode(), home) == direct + b'+\n'
    assert b'X-Bogosity: Spam,' in ask(spam_filter_socket, (SPAM % 97).encode(), home)


@needs_bogofilter
def test_without_word_list_it_says_so_other_options_fail(spam_filter_socket,
                                                          tmp_path):
    home = str(tmp_path / 'bob')
    # no word list yet: said at once, not a failure (the script tries a
    # failure twice)
    assert ask(spam_filter_socket, (SPAM % 1).encode(), home) == (
        b'X-Bogosity: Unsure, tests=bogofilter, not classified (no word list '
        b'yet)\n+\n')
    # nothing created in bob's home by asking
    assert not os.path.exists(home)
    train(str(tmp_path / 'carol'), 1)
    # -p -e: the whole message back, which the classifying script no longer
    # asks for
    for arguments in (('-p', '-e'), ('-p',), ('-s', '-v'),
                      ('-d', '/tmp', '-s')):
        assert ask(spam_filter_socket, (SPAM % 1).encode(),
                   str(tmp_path / 'carol'), arguments) == b'-\n'
    # a word list bogofilter cannot read: the reason goes to the log
    dave = tmp_path / 'dave'
    (dave / '.bogofilter').mkdir(parents=True)
    (dave / '.bogofilter' / 'wordlist.db').write_bytes(b'not a database\n')
    assert ask(spam_filter_socket, (SPAM % 1).encode(), str(dave)) == b'-\n'
    log = (tmp_path / 'spam-filter.log').read_text()
    assert 'bogofilter gave no verdict' in log, log
    assert 'bob' not in log           # no word list: nothing logged


def counts(home):
    """(spam, ham) messages registered in the word list."""
    dump = subprocess.run(['bogoutil', '-d', os.path.join(
        home, '.bogofilter', 'wordlist.db')], capture_output=True,
        text=True, check=True).stdout
    for line in dump.splitlines():
        if line.startswith('.MSG_COUNT '):
            return tuple(int(n) for n in line.split()[1:3])


@needs_bogofilter
def test_moves_are_learnt_between_deliveries(spam_filter_socket, tmp_path):
    """Learning (the scripts' pipe) goes through the same socket while a
    stream of deliveries is classified: it never waits for the word list
    (a bogofilter of its own would poll the lock and could wait forever)."""
    home = str(tmp_path / 'alice')
    os.makedirs(home)
    # the first move creates the word list
    assert ask(spam_filter_socket, (SPAM % 1).encode(), home, ('-s',)) == b'+\n'
    assert ask(spam_filter_socket, (HAM % 1).encode(), home, ('-n',)) == b'+\n'
    assert counts(home) == (1, 1)
    stop = threading.Event()
    answers = []

    def deliveries():
        while not stop.is_set():
            answers.append(ask(spam_filter_socket, (HAM % 5).encode(), home))
    stream = threading.Thread(target=deliveries)
    stream.start()
    try:
        time.sleep(0.3)
        for i in range(10):
            assert ask(spam_filter_socket, (SPAM % i).encode(), home,
                       ('-s',)) == b'+\n'
        # a message moved out of Junk: spam undone, ham registered
        assert ask(spam_filter_socket, (SPAM % 0).encode(), home,
                   ('-Sn',)) == b'+\n'
    finally:
        stop.set()
        stream.join()
    assert counts(home) == (10, 2)
    assert len(answers) > 10
    assert all(a.endswith(b'+\n') and b'X-Bogosity: ' in a for a in answers)


@needs_bogofilter
def test_a_message_too_big_is_not_classified_and_held_in_memory(
        spam_filter_socket, tmp_path):
    home = str(tmp_path / 'alice')
    train(home, 2)
    big = (SPAM % 1).encode() + b'x' * spam_filter.MAX_SIZE
    try:
        answer = ask(spam_filter_socket, big, home)
    except OSError:
        answer = b'-\n'     # refused before Dovecot wrote it all: a failure
    assert answer == b'-\n'
    # the next message is classified
    assert ask(spam_filter_socket, (SPAM % 2).encode(), home).endswith(b'+\n')


@needs_bogofilter
def test_the_promise_asks_for_a_verdict_that_reads_nothing(
        spam_filter_socket, tmp_path):
    from recipes.promises.spam_filter_answering import answer
    assert answer(spam_filter_socket) == spam_filter.UNTRAINED + b'\n+\n'
    with pytest.raises(OSError):
        answer(str(tmp_path / 'nobody'))
