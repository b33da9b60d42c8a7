"""recipes.stores.files: atomic writes and read_json's default."""
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from recipes.stores.files import read_json, write_atomically


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_is_private_by_default(tmp_path):
    path = tmp_path / 'state.json'
    write_atomically(str(path), '{"a": 1}')
    assert path.read_text() == '{"a": 1}'
    assert mode(path) == 0o600
    assert os.listdir(tmp_path) == ['state.json']


def test_the_given_mode_is_applied_whatever_the_umask(tmp_path):
    path = tmp_path / 'main.cf'
    old = os.umask(0o077)
    try:
        write_atomically(str(path), 'x', mode=0o644)
    finally:
        os.umask(old)
    assert mode(path) == 0o644


def test_a_replaced_file_gets_the_new_content_and_mode(tmp_path):
    path = tmp_path / 'passwd'
    path.write_text('old content, longer than the new one\n')
    os.chmod(path, 0o666)
    write_atomically(str(path), 'new\n')
    assert path.read_text() == 'new\n'
    assert mode(path) == 0o600
    assert os.listdir(tmp_path) == ['passwd']


def test_a_relative_path_is_written_in_the_current_directory(tmp_path,
                                                              monkeypatch):
    # dirname('name') is '': the temporary file must still go next to it
    monkeypatch.chdir(tmp_path)
    write_atomically('name.json', '[]')
    assert (tmp_path / 'name.json').read_text() == '[]'
    assert os.listdir(tmp_path) == ['name.json']


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / 'claims.json'
    path.write_text('{"kept": true}')
    # a lone surrogate cannot be encoded: the write fails half-way
    with pytest.raises(UnicodeEncodeError):
        write_atomically(str(path), 'x' * 100000 + '\udcff')
    assert path.read_text() == '{"kept": true}'
    assert os.listdir(tmp_path) == ['claims.json']


def test_a_failed_rename_leaves_no_temporary_file(tmp_path):
    # a directory where the file should go: the rename itself fails
    (tmp_path / 'target').mkdir()
    with pytest.raises(OSError):
        write_atomically(str(tmp_path / 'target'), 'content')
    assert os.listdir(tmp_path) == ['target']
    assert os.listdir(tmp_path / 'target') == []


READER = textwrap.dedent('''
    import os, sys
    path, stop = sys.argv[1], sys.argv[2]
    expected = {'a' * (1 << 20), 'b' * (1 << 20)}
    reads = bad = 0
    print('reading', flush=True)
    while not os.path.exists(stop):
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            text = None
        reads += 1
        bad += text not in expected
    print(reads, bad)
''')


def test_a_reader_never_sees_a_partial_file(tmp_path):
    # another process reads while this one rewrites a 1 MiB file: with an
    # in-place write it would see empty or mixed content
    path, stop = tmp_path / 'big', tmp_path / 'stop'
    contents = ['a' * (1 << 20), 'b' * (1 << 20)]
    write_atomically(str(path), contents[0])
    reader = subprocess.Popen(
        [sys.executable, '-c', READER, str(path), str(stop)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline() == 'reading\n'
        for i in range(60):
            write_atomically(str(path), contents[i % 2])
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    reads, bad = map(int, out.split())
    assert reads > 0 and bad == 0, (reads, bad)
    assert sorted(os.listdir(tmp_path)) == ['big', 'stop']


def test_read_json_gives_the_content(tmp_path):
    path = tmp_path / 'x.json'
    path.write_text('{"a": [1, 2]}')
    assert read_json(str(path), {}) == {'a': [1, 2]}


@pytest.mark.parametrize('content', [
    b'', b'{"a": [1, ', b'not json', b'\xff\xfe\x00garbage'],
    ids=['empty', 'truncated', 'text', 'not-utf8'])
def test_read_json_gives_the_default_for_a_damaged_file(tmp_path, content):
    path = tmp_path / 'x.json'
    path.write_bytes(content)
    default = {'default': True}
    assert read_json(str(path), default) is default


def test_read_json_gives_the_default_for_a_missing_file(tmp_path):
    assert read_json(str(tmp_path / 'absent.json'), None) is None
    assert read_json(str(tmp_path / 'no' / 'dir.json'), []) == []
