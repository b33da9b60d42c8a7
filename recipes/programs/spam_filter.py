"""The spam filter of a mail backend: one long-running process that
classifies every delivered message with the user's bogofilter word list,
and teaches the word list what the user moves into and out of Junk.

The global Sieve scripts run ``bogofilter``: ``execute :pipe :output
"verdict" "bogofilter" ["-v", "-e"]`` before each delivery
(spam-classify.sieve: the X-Bogosity line alone comes back, the script adds
it with editheader, Dovecot keeps the message it has), ``pipe "bogofilter"
["-s"]`` and the like when the user moves a message (spam-learn-*.sieve).
Dovecot looks for a socket named after the program
(``sieve_execute_socket_dir``, ``sieve_pipe_socket_dir``) before the program
itself: this process listens there, so a delivery costs a connection
instead of a fork of the LMTP process and an exec of bogofilter, which
together cost nearly as much CPU as the rest of Dovecot's delivery. It
keeps one ``bogofilter -b -v`` (bulk mode: a message file name in, its
X-Bogosity line out) per word list, the word list open.

bogofilter locks the word list for as long as it is open, and a learner
waiting for the lock only polls it every second or so: it would never get
in between two messages. So learning goes through here too: for each word
list, classifying and learning take turns (the bulk process is closed, the
learner runs, the next message opens a new one). A bulk process is also
closed after a short idle time, for the tools an administrator runs.

A user without a word list (before the first move into or out of Junk:
most users never train) gets an Unsure verdict that says so, at once.

When this process is down, Dovecot runs bogofilter itself (its socket is
removed at stop): the same verdicts, at a fork and an exec per message. When
it fails (a word list it cannot read, a message over MAX_SIZE, as spam
filters skip big messages, a stale socket), the classifying script delivers
the message unchanged but for an Unsure verdict, and a move is not learnt.
Nothing is lost.

The wire protocol is Dovecot's program client ("script" protocol 4.0):
  VERSION<TAB>script<TAB>4<TAB>0 LF, env_NAME=value LF..., "-" LF, one
  argument per LF, an empty line, then the message until the client shuts
  its side down; the answer is the output (the verdict line, nothing for
  learning) then "+" LF (success) or "-" LF (failure). Fields
  are tab-escaped (\\001 escapes).

Run by supervisord: python -m recipes.programs.spam_filter SOCKET BOGOFILTER
"""
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import time

CLASSIFY = ('-v', '-e')    # the X-Bogosity line alone, exit 0 unless it
                           # fails
# register as spam, as ham; -N undoes the opposite registration first
LEARN = {('-s',), ('-n',), ('-Ns',), ('-Sn',)}
IDLE = 0.25                # seconds before an unused bulk process is closed
MAX_SIZE = 2 << 20         # bytes: bigger requests are not classified, the
                           # memory held stays bounded
TIMEOUT = 10               # seconds for one verdict, or one learning
HEADER = b'X-Bogosity:'
UNTRAINED = HEADER + (b' Unsure, tests=bogofilter, not classified (no word '
                      b'list yet)')
_UNESCAPE = {b'0': b'\0', b'1': b'\1', b't': b'\t', b'r': b'\r', b'n': b'\n'}


class FilterError(Exception):
    """A request not served: Dovecot is answered a failure, the reason
    logged (stderr, the service's log)."""


def unescape(field):
    """Dovecot's tab-unescaping of one protocol field."""
    if b'\1' not in field:
        return field
    parts = field.split(b'\1')
    return parts[0] + b''.join(_UNESCAPE.get(p[:1], p[:1]) + p[1:]
                               for p in parts[1:])


def escape(text):
    """Dovecot's tab-escaping of one protocol field (what ``unescape``
    undoes)."""
    return (text.replace(b'\1', b'\0011').replace(b'\0', b'\0010')
            .replace(b'\t', b'\1t').replace(b'\r', b'\1r')
            .replace(b'\n', b'\1n'))


def ask(path, home, arguments, message, timeout=10):
    """As Dovecot's sieve asks the program behind ``path`` (for the
    promise and the tests): the whole answer, ``+`` or ``-`` last."""
    request = b'VERSION\tscript\t4\t0\nenv_HOME=%s\n-\n%s\n' % (
        escape(home.encode()),
        b''.join(escape(a.encode()) + b'\n' for a in arguments))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(path)
        client.sendall(request + message)
        client.shutdown(socket.SHUT_WR)
        answer = []
        while True:
            chunk = client.recv(1 << 16)
            if not chunk:
                return b''.join(answer)
            answer.append(chunk)


def parse_request(lines):
    """(environment, arguments) of a request, given its lines up to the
    empty one that ends them."""
    if not lines or not lines[0].startswith(b'VERSION\tscript\t4\t'):
        raise FilterError('not a Dovecot program request: %r'
                            % (lines[:1] or [b''])[0][:40])
    env = {}
    rest = iter(lines[1:])
    for line in rest:
        if not line.startswith(b'env_'):
            if line == b'noreply':
                raise FilterError('asked with noreply: a filter answers')
            break                  # "-": an answer is expected
        name, _, value = unescape(line[4:]).partition(b'=')
        env[name.decode()] = value.decode('utf-8', 'replace')
    return env, [unescape(line).decode() for line in rest]


def word_list(env):
    """The user's word list directory (bogofilter's own default)."""
    home = env.get('HOME', '')
    if not os.path.isabs(home):
        raise FilterError('no absolute HOME given by Dovecot')
    return os.path.join(home, '.bogofilter')


class WordList:
    """One user's word list: a ``bogofilter -b -v`` kept open over it, and
    the learning that takes turns with it."""

    def __init__(self, bogofilter, directory):
        self.bogofilter = bogofilter
        self.directory = directory
        self.process = None
        self.used = 0.0

    def trained(self):
        return self.process is not None or os.path.exists(
            os.path.join(self.directory, 'wordlist.db'))

    def classify(self, path):
        """The X-Bogosity header line bogofilter gives the message file."""
        if self.process is None:
            self.process = subprocess.Popen(
                [self.bogofilter, '-b', '-v', '-d', self.directory],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL)
        try:
            self.process.stdin.write(path.encode() + b'\n')
            self.process.stdin.flush()
            ready = select.select([self.process.stdout], [], [], TIMEOUT)[0]
            line = self.process.stdout.readline() if ready else b''
        except OSError:
            line = b''
        self.used = time.monotonic()
        prefix = path.encode() + b' '
        if not (line.startswith(prefix)
                and line[len(prefix):].startswith(HEADER)):
            self.close()
            raise FilterError('bogofilter gave no verdict (%r)' % line[:80])
        return line[len(prefix):].rstrip(b'\n')

    def learn(self, arguments, message):
        """Register the message (bogofilter's options), the word list
        closed to classifying meanwhile; created at the first time."""
        self.close()
        try:
            subprocess.run([self.bogofilter, '-d', self.directory]
                           + list(arguments), input=message, check=True,
                           timeout=TIMEOUT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        except (subprocess.SubprocessError, OSError) as e:
            raise FilterError('bogofilter %s failed: %s'
                              % (' '.join(arguments), e))

    def close(self):
        process, self.process = self.process, None
        if process is None:
            return
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


class SpamFilter:
    """The word lists, and the requests Dovecot sends."""

    def __init__(self, bogofilter):
        self.bogofilter = bogofilter
        self.word_lists = {}

    def word_list(self, env):
        directory = word_list(env)
        if directory not in self.word_lists:
            self.word_lists[directory] = WordList(self.bogofilter, directory)
        return self.word_lists[directory]

    def close_idle(self):
        now = time.monotonic()
        for one in self.word_lists.values():
            if one.process and now - one.used > IDLE:
                one.close()

    def answer(self, data):
        """The answer to a whole request: the verdict line, or nothing for
        learning, and "+"; only "-" when it failed."""
        try:
            request, _, message = data.partition(b'\n\n')
            env, arguments = parse_request(request.split(b'\n'))
            arguments = tuple(arguments)
            if arguments == CLASSIFY:
                words = self.word_list(env)
                if not words.trained():
                    return UNTRAINED + b'\n+\n'
                # bogofilter reads the message from memory, by a path
                with open(os.memfd_create('message'), 'w+b') as memory:
                    memory.write(message)
                    memory.flush()
                    verdict = words.classify(
                        '/proc/%d/fd/%d' % (os.getpid(), memory.fileno()))
                return verdict + b'\n+\n'
            if arguments in LEARN:
                self.word_list(env).learn(arguments, message)
                return b'+\n'
            raise FilterError('bogofilter %s is not served'
                              % ' '.join(arguments))
        except FilterError as e:
            print('spam filter: %s' % e, file=sys.stderr, flush=True)
            return b'-\n'


class Connection:
    """One client: its request read up to its EOF, then its answer."""

    def __init__(self, sock):
        self.socket = sock
        self.data = []
        self.size = 0
        self.answer = None
        self.started = time.monotonic()


def listen(socket_path):
    """The listening socket at ``socket_path`` (0600), and its inode."""
    if os.path.exists(socket_path):
        os.unlink(socket_path)      # left by a process that was killed
    os.umask(0o077)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(socket_path)
    listener.listen(64)
    listener.setblocking(False)
    return listener, os.stat(socket_path).st_ino


def accept(listener, selector):
    try:
        client, _ = listener.accept()
    except BlockingIOError:
        return
    client.setblocking(False)
    selector.register(client, selectors.EVENT_READ, Connection(client))


def exchange(connection, events, selector, spam_filter):
    """Read the request until it is whole, then send the answer; True when
    the connection is done with (answered, or gone)."""
    try:
        if events & selectors.EVENT_READ:
            chunk = connection.socket.recv(1 << 16)
            connection.size += len(chunk)
            if chunk and connection.size <= MAX_SIZE:
                connection.data.append(chunk)
                return False
            connection.answer = memoryview(
                spam_filter.answer(b''.join(connection.data))
                if not chunk else b'-\n')
            connection.data = None
            selector.modify(connection.socket, selectors.EVENT_WRITE,
                            connection)
        sent = connection.socket.send(connection.answer)
        connection.answer = connection.answer[sent:]
        return not len(connection.answer)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True    # the client went away: it fails the filter


def sweep(selector, spam_filter, now):
    """Close the idle bulk processes; let go of a client that never
    finishes its request."""
    spam_filter.close_idle()
    for key in list(selector.get_map().values()):
        if key.data and now - key.data.started > TIMEOUT * 6:
            selector.unregister(key.fileobj)
            key.fileobj.close()


def serve(socket_path, bogofilter):
    """One thread, one loop: every request is read whole, then answered;
    bogofilter answers a classification in a fraction of a millisecond (a
    learning, rarer, holds the loop for its tens of milliseconds)."""
    listener, ours = listen(socket_path)
    spam_filter = SpamFilter(bogofilter)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    stopping = []
    swept = 0.0
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    try:
        while not stopping:
            for key, events in selector.select(IDLE):
                if key.fileobj is listener:
                    accept(listener, selector)
                elif exchange(key.data, events, selector, spam_filter):
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
            now = time.monotonic()
            if now - swept >= IDLE:
                swept = now
                sweep(selector, spam_filter, now)
    finally:
        # without the socket, Dovecot runs bogofilter itself (unless
        # another process took the path over)
        try:
            if os.stat(socket_path).st_ino == ours:
                os.unlink(socket_path)
        except OSError:
            pass


def main(argv=None):
    socket_path, bogofilter = (argv or sys.argv[1:])[:2]
    serve(socket_path, bogofilter)


if __name__ == '__main__':
    main()
