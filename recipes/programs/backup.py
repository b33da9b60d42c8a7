"""Backups of a partition: snapshots of what cannot be made again, and
their restore into a new instance.

  python -m recipes.programs.backup CONFIG.json create
  python -m recipes.programs.backup CONFIG.json restore SNAPSHOT
  python -m recipes.programs.backup CONFIG.json list

The partition has it as ``bin/backup`` (``bin/backup restore
srv/backup/latest``); its scheduler runs ``create`` daily at the ``backup``
parameter's time. Snapshots go to the backup directory
(``recipes.stores.backups``: the layout, how a pull-based backup takes
them).

CONFIG.json (``etc/backup.json``, written by the instance profile):
``{"release", "directory", "keep", "domains", "certificates"}``, a backend
adds ``"accounts"`` (the account database), ``"mail"`` (the homes) and
``"bogoutil"``, a relay node ``"dkim"``; ``"master"``: the partition's
slap connection.

The parts of a snapshot, each restored in this order:

  accounts      the account database's state (``recipes.stores.accounts``):
                who had which address, the password hashes
  homes         every home of the mail directory, those kept aside too:
                mail, Sieve scripts, spam word list (``recipes.stores.homes``)
  certificates  the partition's self-signed certificates, current and next
  dkim          the DKIM key of each domain (relay node)

A restore is meant for a freshly deployed instance of the same domains,
with the same shared instances requested. It adds what the instance lacks
and replaces nothing that changed since, saying what it kept: the accounts
without a password get theirs back, a message already there stays as it
is. The certificates and DKIM keys, which a new instance generated, are
replaced by the snapshot's (the peers pinned those, the DNS publishes
those), and it says so. Then it bangs the partition: the node's next run
reloads the daemons and publishes what changed.
"""
import os
import sys
import time

from ..clients import master
from ..decisions import backups as decisions
from ..decisions.accounts import home_of
from ..stores import accounts, backups, certificates, dkim_keys, homes
from ..stores.files import read_json

REMOVED = accounts.REMOVED_DIRECTORY


def say(text):
    print(text, flush=True)


# --- the parts ------------------------------------------------------------------

def save_accounts(config, target):
    state = accounts.snapshot(config['accounts'], target)
    return {'accounts': len(state.get('accounts', {}))}


def restore_accounts(config, source):
    restored, said = accounts.restore_passwords(
        config['accounts'], accounts.read_snapshot(source))
    if restored:
        say('accounts: the password of %s restored' % ', '.join(restored))
    for line in said:
        say('accounts: ' + line)


def homes_of(mail_directory):
    """``[relative path]`` of every home: ``<domain>/<local part>``, and
    those kept aside (``.removed/<address>-<time>``)."""
    found = []
    for domain in sorted(os.listdir(mail_directory)) \
            if os.path.isdir(mail_directory) else []:
        for name in sorted(os.listdir(os.path.join(mail_directory, domain))):
            if os.path.isdir(os.path.join(mail_directory, domain, name)):
                found.append(os.path.join(domain, name))
    return found


def save_homes(config, target):
    count = messages = 0
    for home in homes_of(config['mail']):
        messages += homes.copy_home(os.path.join(config['mail'], home),
                                    os.path.join(target, home),
                                    config['bogoutil'])
        count += 1
    return {'homes': count, 'messages': messages}


def restore_homes(config, source):
    current = accounts.read_state(config['accounts']).get('accounts', {})
    claimed = {home_of(address) for address in current}
    restored, left = homes.Restored(), []
    for home in homes_of(source):
        if home.split(os.sep)[0] != REMOVED and home not in claimed:
            left.append(home)
            continue
        homes.restore_home(os.path.join(source, home),
                           os.path.join(config['mail'], home),
                           config['bogoutil'], restored)
    say('homes: %d messages restored, %d already there; %d other files '
        '(Sieve scripts, word lists...) restored'
        % (restored.messages, restored.kept, restored.files))
    for line in restored.conflicts:
        say('homes: ' + line)
    if left:
        say('homes: not restored, no account asks for them here: %s'
            % ', '.join(left))


def save_files(files, target):
    """Copy ``{name: path}`` into ``target``."""
    os.makedirs(target, mode=0o700, exist_ok=True)
    for name, path in files.items():
        with open(path, 'rb') as f, open(os.path.join(target, name),
                                         'wb') as copy:
            os.fchmod(copy.fileno(), 0o600)
            copy.write(f.read())
    return {'files': len(files)}


def read_files(directory):
    """``{name: bytes}`` of the files of a snapshot's part."""
    found = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), 'rb') as f:
            found[name] = f.read()
    return found


def differing(files, current):
    """The names of ``files`` (``{name: bytes}``) whose content differs
    from ``current`` (``{name: path}``), or that it lacks."""
    changed = []
    for name, data in files.items():
        if name not in current:
            changed.append(name)
            continue
        with open(current[name], 'rb') as f:
            if f.read() != data:
                changed.append(name)
    return changed


def save_certificates(config, target):
    return save_files(certificates.pair_files(config['certificates']), target)


def restore_certificates(config, source):
    snapshot = read_files(source)
    if not differing(snapshot, certificates.pair_files(
            config['certificates'])):
        return
    # the pairs go together: all of them, or a key could meet another's
    # certificate
    certificates.install_pairs(config['certificates'], snapshot)
    say('certificates: replaced the certificates generated here by the '
        'snapshot\'s (%s): the fingerprints the peers pinned are served '
        'again from the next run' % ', '.join(sorted(snapshot)))


def save_dkim(config, target):
    keys = dkim_keys.key_files(config['dkim'])
    return save_files({domain + '.private': path
                       for domain, path in keys.items()}, target)


def restore_dkim(config, source):
    current = {domain + '.private': path for domain, path in
               dkim_keys.key_files(config['dkim']).items()}
    snapshot = read_files(source)
    for name in differing(snapshot, current):
        domain = name[:-len('.private')]
        dkim_keys.install_key(config['dkim'], domain,
                              snapshot[name].decode('ascii'))
        say('dkim: %s the key of %s by the snapshot\'s: the DKIM record '
            'published with it is valid again' % (
                'replaced' if name in current else 'restored', domain))


# name -> (the configuration key that says the partition has it, save,
# restore), in the order of a restore
PARTS = {
    'accounts': ('accounts', save_accounts, restore_accounts),
    'homes': ('mail', save_homes, restore_homes),
    'certificates': ('certificates', save_certificates,
                     restore_certificates),
    'dkim': ('dkim', save_dkim, restore_dkim),
}


# --- the commands ---------------------------------------------------------------

def describe(parts):
    """``accounts 2 accounts; homes 2 homes, 5 messages``..."""
    return '; '.join('%s %s' % (name, ', '.join(
        '%s %s' % (count, what) for what, count in sorted(summary.items())))
        for name, summary in parts.items())


def create(config, now=None):
    """Takes a snapshot, keeps the newest ``keep``; returns its path."""
    now = time.time() if now is None else now
    directory = config['directory']
    with backups.locked(directory):
        try:
            partial = backups.begin(directory, now)
            parts = {name: save(config, os.path.join(partial, name))
                     for name, (key, save, _) in PARTS.items() if key in config}
            path = backups.commit(directory, partial, {
                'format': decisions.FORMAT, 'release': config['release'],
                'created': now, 'domains': config['domains'],
                'parts': parts})
            pruned = backups.prune(directory, config['keep'])
        except Exception as e:
            backups.record_status(directory, now, error='%s: %s' % (
                type(e).__name__, e))
            raise
        backups.record_status(directory, now, os.path.basename(path))
    say('snapshot %s: %s' % (path, describe(parts)))
    if pruned:
        say('removed the older snapshots %s (keep: %d)'
            % (', '.join(pruned), config['keep']))
    return path


def restore(config, snapshot, bang=True):
    """Brings ``snapshot`` into this instance (the module's docstring says
    what is added and what is replaced)."""
    manifest = backups.read_manifest(snapshot)
    if manifest['release'] != config['release']:
        raise SystemExit('%s is a snapshot of %s, this partition is %s: '
                         'restore it into an instance of %s' % (
                             snapshot, manifest['release'],
                             config['release'], manifest['release']))
    if sorted(manifest['domains']) != sorted(config['domains']):
        say('warning: the snapshot is of %s, this instance of %s: what '
            'belongs to the other domains is not restored' % (
                ', '.join(manifest['domains']), ', '.join(config['domains'])))
    say('restoring %s, taken at %s' % (snapshot,
                                       decisions.utc(manifest['created'])))
    with backups.locked(config['directory']):
        for name, (key, _, restore_part) in PARTS.items():
            if name in manifest['parts'] and key in config:
                restore_part(config, os.path.join(snapshot, name))
    if bang:
        try:
            master.bang(config['master'], 'restored from %s' % snapshot)
            say('the partition was banged: the next run of the node reloads '
                'the daemons and publishes what changed')
        except Exception as e:
            say('warning: the partition could not be banged (%s): the '
                'daemons take the restored certificates and keys at its '
                'next run' % e)


def listing(config):
    directory = config['directory']
    for name in backups.names(directory):
        path = os.path.join(directory, backups.SNAPSHOTS, name)
        try:
            manifest = backups.read_manifest(path)
        except ValueError as e:
            say('%s: %s' % (name, e))
            continue
        say('%s  %s' % (path, describe(manifest['parts'])))
    status = backups.read_status(directory)
    if status.get('error'):
        say('the last attempt, at %s, failed: %s' % (
            decisions.utc(status['last-attempt']), status['error']))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    usage = ('usage: python -m recipes.programs.backup CONFIG.json create | '
             'restore SNAPSHOT | list')
    if len(argv) < 2 or argv[1] not in ('create', 'restore', 'list') or \
            (argv[1] == 'restore') != (len(argv) == 3):
        raise SystemExit(usage)
    config = read_json(argv[0], None)
    if config is None:
        raise SystemExit('%s: no backup configuration there (etc/backup.json '
                         'of a partition)' % argv[0])
    if argv[1] == 'create':
        create(config)
    elif argv[1] == 'restore':
        try:
            restore(config, os.path.abspath(argv[2]))
        except ValueError as e:
            raise SystemExit(str(e))
    else:
        listing(config)


if __name__ == '__main__':
    main()
