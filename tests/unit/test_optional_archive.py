"""recipes.software.optional_archive: an archive from the download cache, or a clear
note that there is none."""
import hashlib
import io
import logging
import os
import tarfile

import pytest
from zc.buildout import UserError

from recipes.software import optional_archive

URL = 'https://example.com/snappymail-2.38.2.tar.gz'


def tarball(path, files, top=None):
    with tarfile.open(path, 'w:gz') as tar:
        for name, content in files.items():
            info = tarfile.TarInfo((top + '/' if top else '') + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def recipe(tmp_path, **options):
    buildout = {'buildout': {'parts-directory': str(tmp_path / 'parts'),
                             'download-cache': str(tmp_path / 'cache')}}
    options = dict({'url': URL, 'md5sum': '',
                    'required-file': 'snappymail/v/2.38.2/include.php'},
                   **options)
    return optional_archive.Recipe(buildout, 'snappymail', options), options


def test_cache_name_is_the_md5_of_the_url():
    assert optional_archive.cache_name(URL) == hashlib.md5(
        URL.encode()).hexdigest()


@pytest.mark.parametrize('top', [None, 'snappymail-2.38.2'])
def test_a_cached_archive_is_unpacked(tmp_path, top, caplog):
    (tmp_path / 'cache').mkdir()
    cached = tarball(str(tmp_path / 'cache' / optional_archive.cache_name(URL)),
                     {'index.php': b'<?php', 'snappymail/v/2.38.2/include.php':
                      b'<?php'}, top)
    r, options = recipe(tmp_path)
    assert options['archive-md5'] == optional_archive.file_digest(cached, 'md5')
    with caplog.at_level(logging.WARNING):
        assert r.install() == [options['location']]
    assert 'WITHOUT checksum verification' in caplog.text
    # what was used: name, size, sha256
    assert '%s (%d bytes, sha256 %s,' % (
        URL.rsplit('/', 1)[-1], os.path.getsize(cached),
        optional_archive.file_digest(cached, 'sha256')) in caplog.text
    assert os.path.isfile(os.path.join(options['location'], 'snappymail', 'v',
                                       '2.38.2', 'include.php'))
    assert os.path.isfile(os.path.join(options['location'], 'index.php'))


def test_a_recorded_md5sum_is_checked(tmp_path):
    (tmp_path / 'cache').mkdir()
    tarball(str(tmp_path / 'cache' / optional_archive.cache_name(URL)),
            {'snappymail/v/2.38.2/include.php': b''})
    r, _ = recipe(tmp_path, md5sum='0' * 32)
    with pytest.raises(UserError, match='expected'):
        r.install()


def test_not_the_expected_archive(tmp_path):
    (tmp_path / 'cache').mkdir()
    tarball(str(tmp_path / 'cache' / optional_archive.cache_name(URL)),
            {'README': b''})
    r, _ = recipe(tmp_path)
    with pytest.raises(UserError, match='not the expected archive'):
        r.install()


def test_no_archive_skips_the_part_and_says_why(tmp_path, caplog):
    r, options = recipe(tmp_path)
    assert options['archive-md5'] == 'absent'
    with caplog.at_level(logging.WARNING):
        r.install()
    assert 'SKIPPED' in caplog.text and 'SNAPPYMAIL_ARCHIVE' in caplog.text
    assert os.listdir(options['location']) == [optional_archive.NOTE]


def test_members_outside_the_location_are_refused(tmp_path):
    (tmp_path / 'cache').mkdir()
    tarball(str(tmp_path / 'cache' / optional_archive.cache_name(URL)),
            {'../evil': b'', 'snappymail/v/2.38.2/include.php': b''})
    r, _ = recipe(tmp_path)
    with pytest.raises(UserError, match='refusing'):
        r.install()
    assert not (tmp_path / 'parts' / 'evil').exists()


def test_the_program_the_software_release_runs(tmp_path):
    """[snappymail] runs it with the software's Python: the same install,
    from its arguments."""
    (tmp_path / 'cache').mkdir()
    tarball(str(tmp_path / 'cache' / optional_archive.cache_name(URL)),
            {'snappymail/v/2.38.2/include.php': b'<?php'}, 'snappymail-2.38.2')
    location = str(tmp_path / 'parts' / 'snappymail')
    optional_archive.main([URL, '', str(tmp_path / 'cache'), location,
                           'snappymail/v/2.38.2/include.php'])
    assert os.path.isfile(os.path.join(location, 'snappymail', 'v', '2.38.2',
                                       'include.php'))
    optional_archive.main([URL, '', str(tmp_path / 'none'), location,
                           'snappymail/v/2.38.2/include.php'])
    assert os.listdir(location) == [optional_archive.NOTE]
