"""The development buildout (buildout.cfg at the root) installs this
package in develop mode and a pytest that runs the unit tests."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDOUT = os.path.join(sys.prefix, 'bin', 'buildout')


@pytest.mark.skipif(not os.path.exists(BUILDOUT),
                    reason='zc.buildout is not in this virtual environment '
                           '(scripts/setup.sh installs it)')
def test_development_buildout_runs_the_unit_tests(tmp_path):
    checkout = tmp_path / 'checkout'
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        'bin', 'parts', 'eggs', 'develop-eggs', '.installed.cfg', '*.egg-info',
        '__pycache__', '.git'))
    subprocess.run([BUILDOUT, '-c', 'buildout.cfg'], cwd=checkout,
                   check=True, capture_output=True)
    result = subprocess.run(
        [str(checkout / 'bin' / 'pytest'), '-q', '-p', 'no:cacheprovider',
         'tests/unit/test_relay_domains.py'],
        cwd=checkout, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ' passed' in result.stdout
