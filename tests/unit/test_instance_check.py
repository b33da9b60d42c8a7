"""recipes.software.instance_check: a node whose buildout cannot run this
release's instances fails the software build, saying why."""
from recipes.software import instance_check

SOFTWARE = '/srv/slapgrid/soft/0123'
VERSIONS = 'zc.buildout 6.0.1, setuptools 84.2.1'


def test_what_buildout_created_in_the_software_directory():
    output = ("Creating directory '/srv/slapgrid/soft/0123/eggs/v5/v5'.\n"
              "Creating directory '/tmp/instance-check-x/bin'.\n"
              "Installing instance-eggs.\n")
    assert instance_check.written_into(output, SOFTWARE) == [
        '/srv/slapgrid/soft/0123/eggs/v5/v5']
    assert instance_check.written_into(output, SOFTWARE + '4') == []


def test_a_directory_created_in_the_software_fails_the_build():
    found = instance_check.problem(
        0, "Creating directory '/srv/slapgrid/soft/0123/eggs/v5/v5'.\n",
        SOFTWARE, VERSIONS)
    assert found.startswith(
        "the instance buildout of this software release, run offline by this "
        "node's buildout (zc.buildout 6.0.1, setuptools 84.2.1) as slapgrid "
        "runs it for each partition, creates /srv/slapgrid/soft/0123/eggs/v5/"
        "v5 in the software directory, which the partitions' users cannot "
        "write: every instance would fail.")
    assert 'zc.buildout 4.2.0 with setuptools 80.10.2' in found


def test_a_failing_run_fails_the_build_with_its_end():
    found = instance_check.problem(
        1, 'Installing instance-eggs.\nCouldn\'t find a distribution for '
        "'slapos.mailbundle'.\n", SOFTWARE, VERSIONS)
    assert "fails:\nInstalling instance-eggs.\nCouldn't find a distribution " \
        "for 'slapos.mailbundle'.: every instance" in found


def test_a_clean_run_is_no_problem():
    assert instance_check.problem(
        0, "Creating directory '/tmp/instance-check-x/parts'.\nInstalling "
        "instance-eggs.\n", SOFTWARE, VERSIONS) is None
