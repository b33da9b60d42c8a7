"""The spam filter of a mail backend: one long-running process that
classifies every delivered message with the user's bogofilter word list,
and teaches the word list what the user moves into and out of Junk.

The global Sieve scripts run ``bogofilter``: ``filter "bogofilter" ["-p",
"-e"]`` before each delivery (spam-classify.sieve), ``pipe "bogofilter"
["-s"]`` and the like when the user moves a message (spam-learn-*.sieve).
Dovecot looks for a socket named after the program (``sieve_filter_socket_dir``,
``sieve_pipe_socket_dir``) before the program itself: this process listens
there, so a delivery costs a connection instead of a fork of the LMTP
process and an exec of bogofilter, which together cost more CPU than the
rest of Dovecot's delivery. It keeps one ``bogofilter -b -v`` (bulk mode:
a message file name in, its X-Bogosity line out) per word list, the word
list open.

bogofilter locks the word list for as long as it is open, and a learner
waiting for the lock only polls it every second or so: it would never get
in between two messages. So learning goes through here too: for each word
list, classifying and learning take turns (the bulk process is closed, the
learner runs, the next message opens a new one). A bulk process is also
closed after a short idle time, for the tools an administrator runs.

When this process is down, Dovecot runs bogofilter itself (its socket is
removed at stop): the same verdicts, at a fork and an exec per message. When
it fails (no word list before the user's first move, a word list it cannot
read, a stale socket), the classifying script delivers the message unchanged
but for an Unsure verdict, and a move is not learnt. Nothing is lost.

The wire protocol is Dovecot's program client ("script" protocol 4.0):
  VERSION<TAB>script<TAB>4<TAB>0 LF, env_NAME=value LF..., "-" LF, one
  argument per LF, an empty line, then the message until the client shuts
  its side down; the answer is the output (the message with its verdict,
  nothing for learning) then "+" LF (success) or "-" LF (failure). Fields
  are tab-escaped (\\001 escapes).

Run by supervisord: python -m recipes.spam_filter SOCKET BOGOFILTER
"""
import asyncio
import os
import re
import signal
import sys
import time

CLASSIFY = ('-p', '-e')    # passthrough: the message with its verdict
# register as spam, as ham; -N undoes the opposite registration first
LEARN = {('-s',), ('-n',), ('-Ns',), ('-Sn',)}
IDLE = 0.25                # seconds before an unused bulk process is closed
TIMEOUT = 10               # seconds for one verdict, or one learning
HEADER = b'X-Bogosity:'
END_OF_HEADER = re.compile(rb'\r?\n(?=\r?\n)')
_UNESCAPE = {b'0': b'\0', b'1': b'\1', b't': b'\t', b'r': b'\r', b'n': b'\n'}


class FilterError(Exception):
    pass


def unescape(field):
    """Dovecot's tab-unescaping of one protocol field."""
    if b'\1' not in field:
        return field
    parts = field.split(b'\1')
    return parts[0] + b''.join(_UNESCAPE.get(p[:1], p[:1]) + p[1:]
                               for p in parts[1:])


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


def with_verdict(message, verdict):
    """The message with its X-Bogosity header, replacing any, at the end of
    the header, in the message's own line endings (as bogofilter -p)."""
    if message.startswith((b'\n', b'\r\n')):
        header, body = b'', message
    else:
        end = END_OF_HEADER.search(message)
        header, body = ((message[:end.end()], message[end.end():]) if end
                        else (message, b''))
    lines = header.splitlines(keepends=True)
    eol = b'\r\n' if lines and lines[0].endswith(b'\r\n') else b'\n'
    kept = []
    skipping = False
    for line in lines:
        if line[:1] in (b' ', b'\t') and skipping:
            continue                           # a folded line of one
        skipping = line[:len(HEADER)].lower() == HEADER.lower()
        if not skipping:
            kept.append(line)
    if kept and not kept[-1].endswith(b'\n'):
        kept[-1] += eol
    return b''.join(kept) + verdict + eol + (body or eol)


class WordList:
    """One user's word list: a ``bogofilter -b -v`` kept open over it, and
    the learning that takes turns with it."""

    def __init__(self, bogofilter, directory):
        self.bogofilter = bogofilter
        self.directory = directory
        self.lock = asyncio.Lock()
        self.process = None
        self.used = 0.0

    async def classify(self, path):
        """The X-Bogosity header line bogofilter gives the message file."""
        async with self.lock:
            if self.process is None:
                if not os.path.exists(os.path.join(self.directory,
                                                   'wordlist.db')):
                    # as bogofilter -p -e exits 3: the script says so
                    raise FilterError('no word list yet in %s'
                                      % self.directory)
                self.process = await asyncio.create_subprocess_exec(
                    self.bogofilter, '-b', '-v', '-d', self.directory,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL)
            try:
                self.process.stdin.write(path.encode() + b'\n')
                line = await asyncio.wait_for(
                    self.process.stdout.readline(), TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                line = b''
            self.used = time.monotonic()
            prefix = path.encode() + b' '
            if not (line.startswith(prefix)
                    and line[len(prefix):].startswith(HEADER)):
                await self._close()
                raise FilterError('bogofilter gave no verdict (%r)'
                                  % line[:80])
            return line[len(prefix):].rstrip(b'\n')

    async def learn(self, arguments, message):
        """Register the message (bogofilter's options), the word list
        closed to classifying meanwhile; created at the first time."""
        async with self.lock:
            await self._close()
            process = await asyncio.create_subprocess_exec(
                self.bogofilter, '-d', self.directory, *arguments,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            try:
                await asyncio.wait_for(process.communicate(message), TIMEOUT)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
            if process.returncode != 0:
                raise FilterError('bogofilter %s failed (%s)'
                                  % (' '.join(arguments), process.returncode))

    async def close_if_idle(self):
        async with self.lock:
            if time.monotonic() - self.used > IDLE:
                await self._close()

    async def _close(self):
        process, self.process = self.process, None
        if process is None:
            return
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


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

    async def close_idle(self):
        while True:
            await asyncio.sleep(IDLE)
            for one in list(self.word_lists.values()):
                await one.close_if_idle()

    async def handle(self, reader, writer):
        """Answer one request: the message with its verdict, or nothing
        for learning, and "+"; only "-" when it failed."""
        try:
            data = await reader.read()          # until the client's EOF
            request, _, message = data.partition(b'\n\n')
            env, arguments = parse_request(request.split(b'\n'))
            arguments = tuple(arguments)
            if arguments == CLASSIFY:
                # bogofilter reads the message from memory, by a path
                with open(os.memfd_create('message'), 'w+b') as memory:
                    memory.write(message)
                    memory.flush()
                    verdict = await self.word_list(env).classify(
                        '/proc/%d/fd/%d' % (os.getpid(), memory.fileno()))
                writer.write(with_verdict(message, verdict))
            elif arguments in LEARN:
                await self.word_list(env).learn(arguments, message)
            else:
                raise FilterError('bogofilter %s is not served'
                                  % ' '.join(arguments))
            writer.write(b'+\n')
        except FilterError:
            writer.write(b'-\n')
        try:
            await writer.drain()
            writer.close()
        except OSError:
            pass        # the client went away: it fails the filter itself


async def serve(socket_path, bogofilter):
    if os.path.exists(socket_path):
        os.unlink(socket_path)      # left by a process that was killed
    os.umask(0o077)
    spam_filter = SpamFilter(bogofilter)
    server = await asyncio.start_unix_server(spam_filter.handle, socket_path,
                                             backlog=64)
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopped.set)
    closer = asyncio.ensure_future(spam_filter.close_idle())
    try:
        await stopped.wait()
    finally:
        # without the socket, Dovecot runs bogofilter itself
        os.unlink(socket_path)
        server.close()
        closer.cancel()


def main(argv=None):
    socket_path, bogofilter = (argv or sys.argv[1:])[:2]
    asyncio.run(serve(socket_path, bogofilter))


if __name__ == '__main__':
    main()
