"""Copy files that lie next to a profile into the software's directory.

The instance buildout runs offline and must not depend on the checkout the
software release came from, so templates and schemas are copied at build
time, keeping their layout: a schema's ``$ref`` to another directory
(``../stack/definitions.json``) finds it as on the SlapOS master, which
reads them next to the software URL. ``root`` is relative to the profile
file that defines this section (``${:_profile_base_location_}`` on SlapOS's
buildout, the file zc.buildout records as the origin of the section's
``recipe`` option otherwise), ``paths`` relative to ``root``.

  [profile-files]
  recipe = slapos.mailbundle:profile-files
  root = ../..
  paths = instance-templates/common  software/mail-server/*.json
  destination = ${buildout:directory}/profile   (default:
                                                 parts/<section name>)

Exports ``location``: a directory under the destination named after the
content's digest, where each path is copied at the same relative place, so
that an updated file has a new path. zc.buildout's download cache, which
slapos.recipe.template reads templates through, keeps the first copy of a
path for good: an unchanged path would keep serving the old template. Other
digests' directories are removed. Glob patterns are expanded.
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


def files_under(root, sources):
    """The files of ``sources`` (files or directories under ``root``), as
    paths relative to ``root``, sorted."""
    found = set()
    for source in sources:
        if os.path.isdir(source):
            found.update(os.path.join(d, f) for d, _, files in os.walk(source)
                         for f in files)
        else:
            found.add(source)
    return sorted(os.path.relpath(path, root) for path in found)


def digest(root, relative_paths):
    """A digest of the files: their names and content."""
    h = hashlib.sha256()
    for path in relative_paths:
        h.update(path.encode() + b'\0')
        with open(os.path.join(root, path), 'rb') as f:
            h.update(f.read() + b'\0')
    return h.hexdigest()[:16]


def copy_tree(root, relative_paths, destination):
    """Make ``destination`` hold a copy of each file, at the same path
    relative to it as to ``root``, and nothing else."""
    shutil.rmtree(destination, ignore_errors=True)
    for path in relative_paths:
        target = os.path.join(destination, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(root, path), target)


class Recipe:

    def __init__(self, buildout, name, options):
        self.root = os.path.normpath(os.path.join(
            profile_directory(buildout, name, options), options['root']))
        sources = []
        for pattern in options['paths'].split():
            matches = sorted(glob.glob(os.path.join(self.root, pattern)))
            if not matches:
                raise UserError('[%s] paths: %r matches nothing under %s'
                                % (name, pattern, self.root))
            sources.extend(matches)
        self.files = files_under(self.root, sources)
        options.setdefault('destination', os.path.join(
            buildout['buildout']['parts-directory'], name))
        self.destination = options['destination']
        self.location = options['location'] = os.path.join(
            self.destination, digest(self.root, self.files))

    def install(self):
        copy_tree(self.root, self.files, self.location)
        for entry in os.listdir(self.destination):
            path = os.path.join(self.destination, entry)
            if path != self.location:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        return []

    update = install
