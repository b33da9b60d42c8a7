"""What a partition waits for from other instances, one file a wait in the
partition's ``var/waiting`` directory, written by this module alone.

A recipe whose work depends on another instance's answer (a backend on its
relay's answer to a domain order, a relay cluster on its nodes'
publications, a node on its cluster's configuration) does what it can
without it, then ``wait``\\ s: the file ``<name>`` says, in one sentence,
what it waits for; ``done`` removes it once the answer is there. The
partition's ``waiting-for`` promise (``recipes.promises.waiting_for``)
fails while a file is there, with those sentences: the node's run fails and
names them, and the node processes the partition again at its next run,
until the answer is there.
"""
import os

from .files import write_atomically


def path(directory, name):
    return os.path.join(directory, name)


def wait(directory, name, reason):
    """Record that ``name`` waits: ``reason`` (one sentence); returns the
    file's path."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    target = path(directory, name)
    try:
        with open(target) as f:
            if f.read() == reason + '\n':
                return target
    except FileNotFoundError:
        pass
    write_atomically(target, reason + '\n', 0o644)
    return target


def done(directory, name):
    """``name`` waits no more."""
    try:
        os.unlink(path(directory, name))
    except FileNotFoundError:
        pass


def reasons(directory):
    """What the partition waits for: the sentences of every file, sorted by
    name."""
    try:
        names = sorted(n for n in os.listdir(directory)
                       if not n.startswith('.'))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            with open(path(directory, name)) as f:
                found.append(f.read().strip())
        except FileNotFoundError:
            continue
    return [r for r in found if r]
