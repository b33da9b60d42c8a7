"""The mail users' homes (``srv/mail/<domain>/<local part>``, written by
Dovecot) as a backup sees them: copied into a snapshot while Dovecot runs,
and restored from one into the homes of a running backend. This module
alone writes into a home besides Dovecot, bogofilter and the spam filter.

What a home holds, and how each kind of file is taken:

  Maildir/ and its folders (Maildir++: ``Maildir/.Junk``...), each with
  ``cur/`` ``new/`` ``tmp/``: a message is a file that never changes once
  delivered (a new flag renames it, ``<unique name>:2,<flags>``): the
  snapshot hard-links it; one renamed or moved from ``new/`` to ``cur/``
  meanwhile is looked for again by its unique name. ``tmp/`` holds
  deliveries in progress: skipped. Dovecot's indexes, caches and UID lists
  are skipped too (Dovecot rebuilds them), and so is ``maildirsize``
  (recounted).
  sieve/, .dovecot.sieve   the Sieve scripts (ManageSieve) and the link to
  the active one: copied; their compiled ``.svbin`` skipped (recompiled).
  .bogofilter/   the user's spam word list, a Berkeley DB: dumped with
  ``bogoutil -d`` (a consistent text copy, whatever the database's
  version), loaded back with ``bogoutil -l``.

A restore adds what a home lacks and replaces nothing: a message already
there (its unique name) is kept as it is; a Sieve script, a word list or
another file that differs is kept, and said (``Restored.conflicts``).
Restored messages go through ``tmp/`` then a rename, as any Maildir
delivery: Dovecot sees whole messages only.
"""
import dataclasses
import errno
import filecmp
import os
import shutil
import subprocess

from ..decisions.backups import message_key, missing_messages

MESSAGE_DIRECTORIES = ('cur', 'new')
WORD_LIST = '.bogofilter'
WORD_LIST_DB = 'wordlist.db'
WORD_LIST_DUMP = 'wordlist.txt'
# Dovecot's own, rebuilt by it; a compiled Sieve script
DOVECOT_CACHES = ('dovecot.index', 'dovecot.list.index', 'dovecot-uidlist',
                  'dovecot-uidvalidity', 'dovecot.mailbox.log', 'maildirsize')
TIMEOUT = 300


def is_cache(name):
    return name.startswith(DOVECOT_CACHES) or name.endswith('.svbin')


def is_maildir_folder(path):
    return os.path.isdir(os.path.join(path, 'cur'))


# --- into a snapshot ------------------------------------------------------------

def copy_home(home, target, bogoutil):
    """Copy ``home`` into ``target`` (which must not exist); returns the
    number of messages taken."""
    messages = 0
    for root, directories, files in os.walk(home):
        relative = os.path.relpath(root, home)
        destination = os.path.normpath(os.path.join(target, relative))
        os.makedirs(destination, mode=0o700, exist_ok=True)
        folder = is_maildir_folder(root)
        if WORD_LIST in directories and relative == '.':
            directories.remove(WORD_LIST)
            dump_word_list(bogoutil, os.path.join(home, WORD_LIST),
                           os.path.join(target, WORD_LIST))
        if folder or os.path.basename(root) == 'sieve':
            for skipped in ('tmp',) + (MESSAGE_DIRECTORIES if folder else ()):
                if skipped in directories:
                    directories.remove(skipped)
        if folder:
            for sub in MESSAGE_DIRECTORIES:
                os.makedirs(os.path.join(destination, sub), mode=0o700,
                            exist_ok=True)
                messages += link_messages(root, sub, destination)
        for name in directories:
            if os.path.islink(os.path.join(root, name)):
                copy_link(os.path.join(root, name),
                          os.path.join(destination, name))
        for name in files:
            if not is_cache(name):
                copy_file(os.path.join(root, name),
                          os.path.join(destination, name))
    return messages


def link_messages(folder, sub, target_folder):
    """Hard-link the messages of ``folder/sub`` into ``target_folder``; a
    message renamed meanwhile (a flag, new/ to cur/) is found again by its
    unique name, one expunged meanwhile is left out."""
    taken = 0
    try:
        names = os.listdir(os.path.join(folder, sub))
    except FileNotFoundError:
        return 0
    for name in names:
        source = os.path.join(folder, sub, name)
        try:
            link_or_copy(source, os.path.join(target_folder, sub, name))
        except FileNotFoundError:
            moved = find_message(folder, message_key(name))
            if moved is None:
                continue
            try:
                link_or_copy(os.path.join(folder, *moved),
                             os.path.join(target_folder, *moved))
            except (FileNotFoundError, FileExistsError):
                continue
        taken += 1
    return taken


def find_message(folder, key):
    """``(sub, name)`` of the message with unique name ``key`` in a
    folder, or None."""
    for sub in MESSAGE_DIRECTORIES:
        try:
            for name in os.listdir(os.path.join(folder, sub)):
                if message_key(name) == key:
                    return sub, name
        except FileNotFoundError:
            pass
    return None


def link_or_copy(source, destination):
    try:
        os.link(source, destination)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        shutil.copy2(source, destination)


def copy_file(source, destination):
    if os.path.islink(source):
        copy_link(source, destination)
    else:
        try:
            shutil.copy2(source, destination)
        except FileNotFoundError:   # removed meanwhile
            pass


def copy_link(source, destination):
    try:
        os.symlink(os.readlink(source), destination)
    except FileNotFoundError:
        pass


def dump_word_list(bogoutil, directory, target):
    database = os.path.join(directory, WORD_LIST_DB)
    if not os.path.exists(database):
        return
    os.makedirs(target, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(target, WORD_LIST_DUMP),
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as output:
        subprocess.run([bogoutil, '-d', database], stdout=output,
                       stderr=subprocess.PIPE, check=True, timeout=TIMEOUT)


# --- from a snapshot ------------------------------------------------------------

@dataclasses.dataclass
class Restored:
    messages: int = 0
    kept: int = 0              # already there
    files: int = 0             # scripts, links, word list...
    conflicts: list = dataclasses.field(default_factory=list)


def restore_home(snapshot_home, home, bogoutil, restored=None):
    """Add to ``home`` what it lacks of ``snapshot_home``; returns the
    ``Restored`` counts (added to ``restored`` when given)."""
    restored = restored or Restored()
    messages = restored.messages
    for root, directories, files in os.walk(snapshot_home):
        relative = os.path.relpath(root, snapshot_home)
        destination = os.path.normpath(os.path.join(home, relative))
        os.makedirs(destination, mode=0o700, exist_ok=True)
        if relative == '.' and WORD_LIST in directories:
            directories.remove(WORD_LIST)
            load_word_list(bogoutil, os.path.join(root, WORD_LIST),
                           os.path.join(home, WORD_LIST), restored)
        if is_maildir_folder(root):
            for sub in MESSAGE_DIRECTORIES:
                if sub in directories:
                    directories.remove(sub)
            restore_folder(root, destination, restored)
        # Dovecot's own files of a Maildir (keywords, subscriptions) are
        # completed quietly: a new instance has its own already
        quiet = relative.split(os.sep)[0] == 'Maildir'
        for name in [d for d in directories
                     if os.path.islink(os.path.join(root, d))] + files:
            restore_file(os.path.join(root, name),
                         os.path.join(destination, name), restored, quiet)
    if restored.messages > messages:
        # the quota is recounted from the messages
        try:
            os.unlink(os.path.join(home, 'Maildir', 'maildirsize'))
        except FileNotFoundError:
            pass
    return restored


def restore_folder(folder, destination, restored):
    """Deliver the messages of a snapshot folder that ``destination``
    lacks, each through ``tmp/``, with the flags it had."""
    for sub in MESSAGE_DIRECTORIES + ('tmp',):
        os.makedirs(os.path.join(destination, sub), mode=0o700,
                    exist_ok=True)
    present = []
    for sub in MESSAGE_DIRECTORIES:
        present += os.listdir(os.path.join(destination, sub))
    for sub in MESSAGE_DIRECTORIES:
        names = os.listdir(os.path.join(folder, sub)) \
            if os.path.isdir(os.path.join(folder, sub)) else []
        missing = missing_messages(names, present)
        restored.kept += len(names) - len(missing)
        for name in missing:
            tmp = os.path.join(destination, 'tmp',
                               message_key(name) + '.restored')
            if os.path.lexists(tmp):
                os.unlink(tmp)
            link_or_copy(os.path.join(folder, sub, name), tmp)
            os.rename(tmp, os.path.join(destination, sub, name))
            restored.messages += 1


def restore_file(source, destination, restored, quiet=False):
    """Copy a file or a link that ``destination`` lacks; one that differs
    is kept, and said unless ``quiet``."""
    if os.path.lexists(destination):
        if os.path.islink(source) and os.path.islink(destination):
            same = os.readlink(source) == os.readlink(destination)
        elif os.path.islink(source) or os.path.islink(destination):
            same = False
        else:
            same = filecmp.cmp(source, destination, shallow=False)
        if not same and not quiet:
            restored.conflicts.append(
                'kept %s, which differs from the snapshot\'s %s'
                % (destination, source))
        return
    if os.path.islink(source):
        os.symlink(os.readlink(source), destination)
    else:
        shutil.copy2(source, destination)
    restored.files += 1


def load_word_list(bogoutil, dump_directory, directory, restored):
    dump = os.path.join(dump_directory, WORD_LIST_DUMP)
    database = os.path.join(directory, WORD_LIST_DB)
    if not os.path.exists(dump):
        return
    if os.path.exists(database):
        restored.conflicts.append(
            'kept the word list %s, trained since the snapshot (the '
            'snapshot\'s is %s: bogoutil -l loads it)' % (database, dump))
        return
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(dump, 'rb') as f:
        subprocess.run([bogoutil, '-l', database], stdin=f, check=True,
                       capture_output=True, timeout=TIMEOUT)
    restored.files += 1
