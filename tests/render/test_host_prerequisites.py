"""The host's prerequisites, checked before anything is built: what is
missing stops the build with one message naming every Debian package to
install, and the command that installs them."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
BUILDOUT = os.path.join(sys.prefix, 'bin', 'buildout')


def build(tmp_path, overrides):
    (tmp_path / 'buildout.cfg').write_text('''[buildout]
extends =
  %s/software/component/host/buildout.cfg
  %s/software/component/postfix/buildout.cfg
parts = host-prerequisites
newest = false
offline = true
%s
''' % (REPO, REPO, overrides))
    return subprocess.run([BUILDOUT, '-c', 'buildout.cfg'], cwd=tmp_path,
                          capture_output=True, text=True)


@pytest.mark.skipif(not os.path.exists(BUILDOUT),
                    reason='zc.buildout is not in this virtual environment '
                           '(scripts/setup.sh installs it)')
def test_missing_prerequisites_are_named_at_once(tmp_path):
    assert build(tmp_path, '').returncode == 0
    result = build(tmp_path, '''
[dovecot]
dovecot = /nonexistent/sbin/dovecot
module-dir = /nonexistent/dovecot/modules
[php-fpm]
extension-dir = /nonexistent/php
[postfix-build]
requires = /nonexistent/lmdb.h=liblmdb-dev /usr/bin/make=make
''')
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert ('this host lacks the Debian packages dovecot-core, dovecot-sieve, '
            'liblmdb-dev, php8.2-curl, ') in output, output
    assert ('apt-get install -y --no-install-recommends dovecot-core '
            'dovecot-sieve liblmdb-dev php8.2-curl php8.2-gd ') in output
    assert 'make' not in output.split('lacks the Debian packages')[1].split(
        'apt-get')[0]
