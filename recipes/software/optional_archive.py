"""Software release side: unpack an archive that this node may not be able
to download, and say so instead of failing when it is missing. The
[snappymail] part (software/component/snappymail) runs it with the
software's Python, as a program: nxdbom, which describes a built software
release, knows SlapOS's usual recipes only.

  python -m recipes.software.optional_archive URL SHA256SUM DOWNLOAD_CACHE \
      LOCATION REQUIRED_FILE

  URL            https://.../snappymail-2.38.2.tar.gz
  SHA256SUM      the official archive's; empty when nobody established it
  REQUIRED_FILE  snappymail/v/2.38.2/include.php (relative to LOCATION)

``Recipe`` does the work, with a buildout recipe's interface (options in,
``install``).

Where the archive comes from, in this order:
  - the download cache (``buildout:download-cache``), under the name
    slapos.recipe.build gives it: the md5 hex digest of the URL. What the
    node's operator put there is used: the official archive (its sha256 is
    ``sha256sum``) as verified, another one (an archive rebuilt from the
    release's tag, on a node that cannot download) as the operator's own,
    its name, size, sha256 and md5 written to the buildout log;
  - with a ``sha256sum`` only: buildout's downloader (the network, if the
    node has it), and the download refused unless its sha256 is that one.
    Without a recorded checksum nothing is downloaded.

Exports ``location`` and ``archive-md5`` (of the cached archive, or
``absent``): an archive put into the cache later changes the options, so
the next buildout run installs the part again. Missing archive: ``location``
holds only ``UNAVAILABLE`` (the reason), and the buildout log says how to
provide one.
"""
import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile

from zc.buildout import UserError
from zc.buildout.download import Download

logger = logging.getLogger(__name__)

NOTE = 'UNAVAILABLE'


def cache_name(url):
    """The name of ``url``'s archive in the download cache."""
    return hashlib.md5(url.encode()).hexdigest()


def file_digest(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def checked_members(tar, archive, destination):
    """The members, refusing any that would land outside ``destination``
    (what the 'data' extraction filter of newer Pythons does)."""
    root = os.path.realpath(destination)
    inside = lambda path: os.path.realpath(path).startswith(root + os.sep)
    for member in tar.getmembers():
        path = os.path.join(root, member.name)
        link = os.path.join(os.path.dirname(path), member.linkname) \
            if member.issym() else os.path.join(root, member.linkname)
        if not (member.isfile() or member.isdir() or member.issym()
                or member.islnk()) or not inside(path) or (
                    (member.issym() or member.islnk()) and not inside(link)):
            raise UserError('%s: refusing %s' % (archive, member.name))
        yield member


def unpack(archive, location, required_file):
    """Unpack the tarball ``archive`` into ``location`` (replaced), dropping a
    single top-level directory; fail unless ``required_file`` is there."""
    parent = os.path.dirname(location)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix='.unpack-')
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, 'data_filter'):
                tar.extractall(tmp, filter='data')
            else:  # Python < 3.11.4 (Debian 12's 3.11.2)
                tar.extractall(tmp, members=checked_members(tar, archive, tmp))
        root = tmp
        entries = os.listdir(tmp)
        if len(entries) == 1 and os.path.isdir(os.path.join(tmp, entries[0])):
            root = os.path.join(tmp, entries[0])
        if not os.path.exists(os.path.join(root, required_file)):
            raise UserError('%s: no %s in it: not the expected archive'
                            % (archive, required_file))
        shutil.rmtree(location, ignore_errors=True)
        os.rename(root, location)
        # mkdtemp's 0700, when the archive had no single top directory:
        # the partitions' users (the software user's group) read it
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(location, 0o777 & ~umask)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mark_unavailable(location, reason):
    shutil.rmtree(location, ignore_errors=True)
    os.makedirs(location)
    with open(os.path.join(location, NOTE), 'w') as f:
        f.write(reason + '\n')


class Recipe:

    def __init__(self, buildout, name, options):
        self.buildout, self.name, self.options = buildout, name, options
        options.setdefault('location', os.path.join(
            buildout['buildout']['parts-directory'], name))
        cache = buildout['buildout'].get('download-cache') or ''
        self.cached = os.path.join(cache, cache_name(options['url'])) \
            if cache else None
        options['archive-md5'] = (
            file_digest(self.cached, 'md5')
            if self.cached and os.path.isfile(self.cached) else 'absent')

    def archive(self):
        """``(path, reason, temporary)``: the archive's path (None, with
        the reason, when there is none), and whether it is a temporary
        file to remove once unpacked."""
        o = self.options
        sha256sum = o.get('sha256sum', '').strip().lower()
        name = o['url'].rsplit('/', 1)[-1]
        if o['archive-md5'] != 'absent':
            found = file_digest(self.cached, 'sha256')
            if found == sha256sum:
                logger.info('[%s] %s taken from the download cache (%s): '
                            'sha256 %s, the official archive\'s', self.name,
                            name, self.cached, found)
            else:
                logger.warning(
                    '[%s] %s (%d bytes, sha256 %s, md5 %s) taken from the '
                    'download cache (%s) is not the official archive (sha256 '
                    '%s): used as the node operator\'s own, WITHOUT checksum '
                    'verification', self.name, name,
                    os.path.getsize(self.cached), found, o['archive-md5'],
                    self.cached, sha256sum or 'not recorded')
            return self.cached, None, False
        if not sha256sum:
            return None, ('no archive of %s in the download cache (%s) and no '
                          'sha256sum recorded to download it'
                          % (o['url'], self.cached)), False
        try:
            path, temporary = Download(self.buildout['buildout'],
                                       hash_name=True)(o['url'])
        except Exception as e:
            return None, 'could not download %s: %s' % (o['url'], e), False
        found = file_digest(path, 'sha256')
        if found != sha256sum:
            os.unlink(path)  # never left in the download cache
            raise UserError('[%s] %s: downloaded an archive whose sha256 is '
                            '%s, not %s (sha256sum): refused' % (
                                self.name, o['url'], found, sha256sum))
        logger.info('[%s] downloaded %s: sha256 %s, as recorded', self.name,
                    o['url'], found)
        return path, None, temporary

    def install(self):
        o = self.options
        path, reason, temporary = self.archive()
        if path is None:
            logger.warning('[%s] SKIPPED: %s. Put the archive there to get '
                           'it (scripts/setup.sh does it from '
                           '$SNAPPYMAIL_ARCHIVE).', self.name, reason)
            mark_unavailable(o['location'], reason)
            return [o['location']]
        try:
            unpack(path, o['location'], o['required-file'])
        finally:
            if temporary:
                os.unlink(path)
        logger.info('[%s] unpacked into %s', self.name, o['location'])
        return [o['location']]

    def update(self):
        # the part is installed again whenever the archive changes
        # (archive-md5); a location removed by hand is restored
        if not os.path.isdir(self.options['location']):
            return self.install()
        return [self.options['location']]


def main(argv=None):
    """The recipe's install, as a program (arguments: see the top)."""
    url, sha256sum, cache, location, required_file = (
        sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    buildout = {'buildout': {'download-cache': cache,
                             'parts-directory': os.path.dirname(location)}}
    Recipe(buildout, os.path.basename(location),
           {'url': url, 'sha256sum': sha256sum,
            'required-file': required_file,
            'location': location}).install()


if __name__ == '__main__':
    main()
