"""Software release side: what every instance run of this release does
first, done once at build time, so that a node whose buildout cannot run
this release's instances fails its software build, naming its versions,
instead of every partition failing later. The [instance-buildout-check]
part (software/stack/mail.cfg) runs it with the software's Python:

  python -m recipes.software.instance_check BUILDOUT COMPONENTS \\
      SOFTWARE_DIRECTORY NODE_VERSIONS

  BUILDOUT            the node's buildout that slapgrid runs for each
                      partition: bin/buildout of the software directory
  COMPONENTS          components.cfg, which every instance profile extends
  NODE_VERSIONS       what the node runs, for the message
                      ('zc.buildout 6.0.1, setuptools 84.2.1')

In a temporary directory, BUILDOUT runs a profile that extends COMPONENTS
and loads the eggs of this release's recipes and promises, as slapgrid runs
an instance's buildout: offline, without the user's defaults (-U). It must
succeed without writing into SOFTWARE_DIRECTORY, where a partition's user
cannot write (zc.buildout 5 and later append ``eggs-directory-version`` to
``eggs-directory``: a directory of their own to create).
"""
import os
import re
import subprocess
import sys
import tempfile

# the node buildouts this release was run under, end to end
# (tests/harness.py's node, tests/e2e/test_readme_node.py's)
KNOWN_TO_WORK = ('zc.buildout 4.2.0 with setuptools 80.10.2, and zc.buildout '
                 '6.0.1 with setuptools 84 (what `pip install slapos.core` '
                 'installs)')
EGGS = ('slapos.mailbundle', 'slapos.cookbook', 'slapos.recipe.template')
PROFILE = """\
[buildout]
extends = {components}
offline = true
parts = instance-eggs

[instance-eggs]
recipe = zc.recipe.egg
eggs =
{eggs}
scripts =
"""


def written_into(output, directory):
    """The directories under ``directory`` that buildout's ``output`` says
    it created (``Creating directory '...'.``)."""
    root = os.path.join(os.path.realpath(directory), '')
    return [path for path in re.findall(r"Creating directory '(.*?)'\.",
                                        output)
            if os.path.realpath(path).startswith(root)]


def problem(returncode, output, software_directory, node_versions):
    """Why the instances of this release would fail on this node, or
    None."""
    created = written_into(output, software_directory)
    if returncode == 0 and not created:
        return None
    if created:
        why = ('creates %s in the software directory, which the partitions\' '
               'users cannot write' % ', '.join(created))
    else:
        why = 'fails:\n%s' % '\n'.join(output.splitlines()[-20:])
    return ('the instance buildout of this software release, run offline by '
            'this node\'s buildout (%s) as slapgrid runs it for each '
            'partition, %s: every instance would fail. This release runs '
            'under %s.' % (node_versions, why, KNOWN_TO_WORK))


def check(buildout, components, software_directory, node_versions):
    with tempfile.TemporaryDirectory(prefix='instance-check-') as directory:
        profile = os.path.join(directory, 'instance.cfg')
        with open(profile, 'w') as f:
            f.write(PROFILE.format(components=components, eggs='\n'.join(
                '  ' + egg for egg in EGGS)))
        result = subprocess.run(
            [buildout, '-U', '-c', profile, 'buildout:directory=' + directory],
            cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
    found = problem(result.returncode, result.stdout, software_directory,
                    node_versions)
    for path in written_into(result.stdout, software_directory):
        try:
            os.removedirs(path)  # what an instance run must not leave
        except OSError:
            pass
    return found


def main(argv=None):
    buildout, components, software_directory, node_versions = (
        sys.argv[1:] if argv is None else argv)
    found = check(buildout, components, software_directory, node_versions)
    if found:
        sys.exit(found)
    print('the instance buildout loads this release\'s eggs offline under '
          '%s' % node_versions)


if __name__ == '__main__':
    main()
