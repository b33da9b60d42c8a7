"""Copy files that lie next to a profile into the software's directory.

The instance buildout runs offline and must not depend on the checkout the
software release came from, so templates and schemas are copied at build
time. Paths are relative to the profile file that defines this section:
``${:_profile_base_location_}`` on SlapOS's buildout, the file zc.buildout
records as the origin of the section's ``recipe`` option otherwise.

  [instance-templates]
  recipe = slapos.mailbundle:profile-files
  paths = ../../instance-templates/mail-server  software.cfg.json  *.json
  destination = ${buildout:directory}/instance-templates   (default:
                                              parts/<section name>)

Exports ``location``: a directory under the destination named after the
content's digest, so that an updated file has a new path. zc.buildout's
download cache, which slapos.recipe.template reads templates through, keeps
the first copy of a path for good: an unchanged path would keep serving the
old template. Other digests' directories are removed. Directories are
copied whole (two of the same name are merged); glob patterns are
expanded.
"""
import glob
import hashlib
import os
import shutil

from zc.buildout import UserError


def profile_directory(buildout, name, options):
    """The directory of the profile file that defines section ``name``."""
    base = options.get('_profile_base_location_')
    if base:
        return base
    source = buildout._annotated[name]['recipe'].source
    return os.path.dirname(os.path.abspath(source))


def digest(sources):
    """A digest of the files under ``sources``: their names and content."""
    h = hashlib.sha256()
    for source in sources:
        base = os.path.dirname(source.rstrip('/'))
        paths = [source] if not os.path.isdir(source) else sorted(
            os.path.join(d, f) for d, _, files in os.walk(source) for f in files)
        for path in paths:
            h.update(os.path.relpath(path, base).encode() + b'\0')
            with open(path, 'rb') as f:
                h.update(f.read() + b'\0')
    return h.hexdigest()[:16]


def copy_tree(sources, destination):
    """Make ``destination`` hold a copy of each source (file or directory),
    and nothing else; directories of the same name are merged, later
    sources winning."""
    shutil.rmtree(destination, ignore_errors=True)
    os.makedirs(destination)
    for source in sources:
        target = os.path.join(destination, os.path.basename(source.rstrip('/')))
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


class Recipe:

    def __init__(self, buildout, name, options):
        base = profile_directory(buildout, name, options)
        self.sources = []
        for pattern in options['paths'].split():
            matches = sorted(glob.glob(os.path.join(base, pattern)))
            if not matches:
                raise UserError('[%s] paths: %r matches nothing next to %s'
                                % (name, pattern, base))
            self.sources.extend(matches)
        options.setdefault('destination', os.path.join(
            buildout['buildout']['parts-directory'], name))
        self.destination = options['destination']
        self.location = options['location'] = os.path.join(
            self.destination, digest(self.sources))

    def install(self):
        copy_tree(self.sources, self.location)
        for entry in os.listdir(self.destination):
            path = os.path.join(self.destination, entry)
            if path != self.location:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        return []

    update = install
