import os
import stat

from recipes import accounts


def test_hash_is_dovecot_sha512_crypt_and_verifies():
    stored = accounts.hash_password('s3cret pass')
    assert stored.startswith('{SHA512-CRYPT}$6$')
    assert 's3cret' not in stored
    assert accounts.verify_password(stored, 's3cret pass')
    assert not accounts.verify_password(stored, 'wrong')
    assert not accounts.verify_password('{PLAIN}s3cret pass', 's3cret pass')


def test_test_account_database(tmp_path):
    db, mail = tmp_path / 'db', tmp_path / 'mail'
    passwd, mailboxes = accounts.write_database(
        str(db), str(mail), ['example.com', 'example.org'], True, 100)
    lines = open(passwd).read().splitlines()
    assert [l.split(':')[0] for l in lines] == [
        'testmail@example.com', 'testmail@example.org']
    fields = lines[0].split(':')
    assert accounts.verify_password(fields[1], accounts.TEST_PASSWORD)
    assert fields[5] == str(mail / 'example.com' / 'testmail')
    assert 'userdb_quota_rule=*:storage=100M' in lines[0]
    assert open(mailboxes).read().splitlines()[0] == (
        'testmail@example.com %s/' % (mail / 'example.com' / 'testmail'))
    assert stat.S_IMODE(os.stat(passwd).st_mode) == 0o600


def test_rerun_keeps_the_hash_and_no_test_account_removes_it(tmp_path):
    db, mail = str(tmp_path / 'db'), str(tmp_path / 'mail')
    passwd, _ = accounts.write_database(db, mail, ['example.com'], True, 10)
    before = open(passwd).read()
    accounts.write_database(db, mail, ['example.com'], True, 10)
    assert open(passwd).read() == before
    accounts.write_database(db, mail, ['example.com'], False, 10)
    assert open(passwd).read() == ''
