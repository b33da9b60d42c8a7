"""Rotate the partition's self-signed certificate now, as upstream's
``bin/postfix-certificate-rotate`` does:

  python -m recipes.programs.certificate_rotate PREFIX server-url=URL key-file=PATH cert-file=PATH computer-id=ID partition-id=ID

The partition has it as ``bin/postfix-certificate-rotate``. It removes the
current fingerprint file of upstream's layout (``<prefix>.fingerprint``,
``recipes.stores.certificates``), which asks the partition's next run to
make the next certificate the current one (its fingerprint was published
in advance: the peers already trust it) and a new next one, then bangs the
partition so that the node runs it soon; its requesters and the relay
cluster take the new fingerprints at their own next runs.

PREFIX: the prefix of upstream's files (``etc/postfix/ssl/postfix``); then
the partition's slap connection (``[slap-master]``), to bang it, as
``name=value`` (a master without TLS has empty key and certificate
files).
"""
import sys

from ..clients import master
from ..stores.certificates import fingerprint_files, request_rotation


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    connection = dict(a.partition('=')[::2] for a in argv[1:])
    if not argv or sorted(connection) != sorted(master.CONNECTION_OPTIONS):
        raise SystemExit('usage: python -m recipes.programs.certificate_rotate '
                         'PREFIX %s' % ' '.join(
                             '%s=...' % o for o in master.CONNECTION_OPTIONS))
    prefix = argv[0]
    if request_rotation(prefix):
        print('rotation asked for (%s removed)' % fingerprint_files(prefix)[0])
    else:
        print('a rotation was already asked for (%s is absent)'
              % fingerprint_files(prefix)[0])
    try:
        master.bang(connection, 'certificate rotation')
        print('the partition was banged: the node\'s next run rotates the '
              'certificate and reloads the daemons')
    except Exception as e:
        print('warning: the partition could not be banged (%s): its next run '
              'rotates the certificate' % e)


if __name__ == '__main__':
    main()
