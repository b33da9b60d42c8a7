"""recipes.programs.certificate_rotate: upstream's
bin/postfix-certificate-rotate, and the store's files it acts on."""
import pytest

from recipes.clients import master
from recipes.programs import certificate_rotate
from recipes.stores import certificates

CONNECTION = ['server-url=http://127.0.0.1:4000', 'key-file=', 'cert-file=',
              'computer-id=local', 'partition-id=slappart3']


def pairs_in(tmp_path):
    openssl = 'openssl'
    return certificates.ensure(openssl, str(tmp_path / 'ssl'), 'mail.example')


def test_rotation_asked_for_then_done_at_the_next_run(tmp_path, monkeypatch,
                                                       capsys):
    banged = []
    monkeypatch.setattr(master, 'bang', lambda options, message:
                        banged.append((options, message)))
    prefix = str(tmp_path / 'postfix' / 'ssl' / 'postfix-backend')
    pairs = pairs_in(tmp_path)
    certificates.write_fingerprint_files(prefix, pairs)
    current, next_, bundle = certificates.fingerprint_files(prefix)
    with open(current) as f:
        assert f.read() == 'sha256 Fingerprint=%s\n' % (
            pairs['current']['fingerprint'])
    assert not certificates.rotation_requested(prefix)
    certificate_rotate.main([prefix] + CONNECTION)
    # upstream's meaning: the current fingerprint file gone, a bang
    assert certificates.rotation_requested(prefix)
    assert banged == [({'server-url': 'http://127.0.0.1:4000',
                        'key-file': '', 'cert-file': '',
                        'computer-id': 'local', 'partition-id': 'slappart3'},
                       'certificate rotation')]
    assert 'rotation asked for' in capsys.readouterr().out
    # the next run: the next certificate is the current one
    rotated = certificates.ensure('openssl', str(tmp_path / 'ssl'),
                                  'mail.example', rotate_now=True)
    certificates.write_fingerprint_files(prefix, rotated)
    assert rotated['current']['fingerprint'] == pairs['next']['fingerprint']
    with open(current) as f:
        assert pairs['next']['fingerprint'] in f.read()
    with open(next_) as f:
        assert rotated['next']['fingerprint'] in f.read()
    with open(bundle) as b, open(rotated['current']['key']) as k:
        assert b.read().startswith(k.read())


def test_a_wrong_command_line_says_how(tmp_path):
    with pytest.raises(SystemExit) as e:
        certificate_rotate.main([str(tmp_path / 'x')] + CONNECTION[:-1])
    assert 'partition-id=...' in str(e.value)
