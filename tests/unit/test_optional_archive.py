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
    options = dict({'url': URL, 'sha256sum': '',
                    'required-file': 'snappymail/v/2.38.2/include.php'},
                   **options)
    return optional_archive.Recipe(buildout, 'snappymail', options), options


def test_cache_name_is_the_md5_of_the_url():
    assert optional_archive.cache_name(URL) == hashlib.md5(
        URL.encode()).hexdigest()


@pytest.mark.parametrize('top', [None, 'snappymail-2.38.2'])
def test_a_cached_archive_of_the_operator_is_unpacked(tmp_path, top, caplog):
    """Not the official archive (a rebuild from the tag): used as the
    operator's own, what it is in the log."""
    (tmp_path / 'cache').mkdir()
    cached = tarball(str(tmp_path / 'cache' / optional_archive.cache_name(URL)),
                     {'index.php': b'<?php', 'snappymail/v/2.38.2/include.php':
                      b'<?php'}, top)
    r, options = recipe(tmp_path, sha256sum='ab' * 32)
    assert options['archive-md5'] == optional_archive.file_digest(cached, 'md5')
    with caplog.at_level(logging.WARNING):
        assert r.install() == [options['location']]
    assert 'WITHOUT checksum verification' in caplog.text
    # what was used: name, size, sha256
    assert '%s (%d bytes, sha256 %s,' % (
        URL.rsplit('/', 1)[-1], os.path.getsize(cached),
        optional_archive.file_digest(cached, 'sha256')) in caplog.text
    assert 'not the official archive (sha256 %s)' % ('ab' * 32) in caplog.text
    assert os.path.isfile(os.path.join(options['location'], 'snappymail', 'v',
                                       '2.38.2', 'include.php'))
    assert os.path.isfile(os.path.join(options['location'], 'index.php'))


def test_the_cached_official_archive_is_verified(tmp_path, caplog):
    (tmp_path / 'cache').mkdir()
    cached = tarball(str(tmp_path / 'cache' / optional_archive.cache_name(URL)),
                     {'index.php': b'<?php',
                      'snappymail/v/2.38.2/include.php': b'<?php'})
    r, options = recipe(tmp_path, sha256sum=optional_archive.file_digest(
        cached, 'sha256'))
    with caplog.at_level(logging.INFO):
        r.install()
    assert "the official archive's" in caplog.text
    assert 'WITHOUT' not in caplog.text


@pytest.fixture
def served(tmp_path):
    """An http server of tmp_path/www on loopback: what a node with
    Internet access downloads from."""
    import functools
    import http.server
    import threading
    (tmp_path / 'www').mkdir()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / 'www')))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d/' % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_without_an_archive_the_official_one_is_downloaded(tmp_path, served):
    archive = tarball(str(tmp_path / 'www' / 'snappymail-2.38.2.tar.gz'),
                      {'snappymail/v/2.38.2/include.php': b'<?php'},
                      'snappymail-2.38.2')
    url = served + 'snappymail-2.38.2.tar.gz'
    (tmp_path / 'cache').mkdir()
    r, options = recipe(tmp_path, url=url, sha256sum=optional_archive.file_digest(
        archive, 'sha256'))
    r.install()
    assert os.path.isfile(os.path.join(options['location'], 'snappymail', 'v',
                                       '2.38.2', 'include.php'))
    # kept in the download cache, as buildout's downloads are
    assert optional_archive.file_digest(str(
        tmp_path / 'cache' / optional_archive.cache_name(url)), 'sha256') == \
        options['sha256sum']


def test_a_download_that_is_not_the_official_archive_is_refused(tmp_path,
                                                                served):
    tarball(str(tmp_path / 'www' / 'snappymail-2.38.2.tar.gz'),
            {'snappymail/v/2.38.2/include.php': b'<?php'})
    url = served + 'snappymail-2.38.2.tar.gz'
    (tmp_path / 'cache').mkdir()
    r, options = recipe(tmp_path, url=url, sha256sum='0' * 64)
    with pytest.raises(UserError, match='not %s .sha256sum.: refused' % ('0' * 64)):
        r.install()
    # nothing kept: the next build downloads again, nothing unpacked
    assert os.listdir(tmp_path / 'cache') in ([], ['dist'])
    assert not os.path.exists(options['location'])


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
