"""The account and alias database of a mail backend: plain text files, the
single source for Postfix and Dovecot, written by this module only.

Files in the database directory:
  passwd            Dovecot passwd-file: one account a line, with its
                    password hash, home and quota
  mailboxes         Postfix virtual mailbox map (texthash): address -> home

Writes are atomic (temporary file, fsync, rename) and made under a lock, so
that a password set from the password page while buildout runs is not lost.
"""
import contextlib
import fcntl
import os
import tempfile

from passlib.hash import sha512_crypt

TEST_LOCAL_PART = 'testmail'
TEST_PASSWORD = 'password123'
HASH_PREFIX = '{SHA512-CRYPT}'


def hash_password(password):
    """A hash Dovecot verifies (SHA512-CRYPT), with its scheme prefix."""
    return HASH_PREFIX + sha512_crypt.hash(password)


def verify_password(stored, password):
    if not stored.startswith(HASH_PREFIX):
        return False
    return sha512_crypt.verify(password, stored[len(HASH_PREFIX):])


def home(mail_directory, address):
    local, domain = address.rsplit('@', 1)
    return os.path.join(mail_directory, domain, local)


def passwd_line(account, mail_directory, default_quota):
    """``user:password:uid:gid:gecos:home:shell:extra fields``; uid and gid
    are left empty: every mailbox belongs to the partition's user."""
    quota = account.get('quota') or default_quota
    extra = ['userdb_quota_rule=*:storage=%dM' % quota]
    return '%s:%s::::%s::%s' % (account['address'], account['password-hash'],
                                home(mail_directory, account['address']),
                                ' '.join(extra))


def read_passwd(path):
    """``{address: password hash}`` of an existing passwd-file."""
    hashes = {}
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        for line in f:
            fields = line.rstrip('\n').split(':')
            if len(fields) > 1:
                hashes[fields[0]] = fields[1]
    return hashes


@contextlib.contextmanager
def locked(directory):
    """Exclusive lock over the database directory."""
    with open(os.path.join(directory, '.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write_atomically(path, text, mode=0o600):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path))
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def test_accounts(domains, existing_hashes):
    """``testmail@<domain>`` with password ``password123`` in every domain,
    keeping an existing hash of that password (hashing is slow on purpose)."""
    accounts = []
    for domain in domains:
        address = '%s@%s' % (TEST_LOCAL_PART, domain)
        stored = existing_hashes.get(address, '')
        if not verify_password(stored, TEST_PASSWORD):
            stored = hash_password(TEST_PASSWORD)
        accounts.append({'address': address, 'password-hash': stored})
    return accounts


def write_database(directory, mail_directory, domains, test_account,
                   default_quota):
    """Write the passwd-file and the mailbox map; return their paths."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    passwd = os.path.join(directory, 'passwd')
    mailboxes = os.path.join(directory, 'mailboxes')
    with locked(directory):
        existing = read_passwd(passwd)
        accounts = test_accounts(domains, existing) if test_account else []
        write_atomically(passwd, ''.join(
            passwd_line(a, mail_directory, default_quota) + '\n'
            for a in accounts))
        write_atomically(mailboxes, ''.join(
            '%s %s/\n' % (a['address'], home(mail_directory, a['address']))
            for a in accounts))
    return passwd, mailboxes


class Recipe:
    """Recipe: the backend's account database (see ``recipes.accounts``).

      [accounts]
      recipe = slapos.mailbundle:accounts
      directory = ${directory:accounts}
      mail-directory = ${directory:mail}
      domains = example.com example.org
      test-account = false
      default-quota = 1024              (MiB)

    Exports ``passwd-file`` and ``mailboxes-map``."""

    def __init__(self, buildout, name, options):
        self.options = options
        directory = options['directory']
        options['passwd-file'] = os.path.join(directory, 'passwd')
        options['mailboxes-map'] = os.path.join(directory, 'mailboxes')

    def install(self):
        o = self.options
        write_database(
            o['directory'], o['mail-directory'], o['domains'].split(),
            o['test-account'] == 'true', int(o['default-quota']))
        return []

    update = install
