"""Recipe: a wait of the partition that its profile decides
(``recipes.stores.waiting``; a request's own wait is the request recipe's
``waiting-file``).

  [cluster-configuration]
  recipe = slapos.mailbundle:wait
  waiting-file = ${directory:waiting}/cluster-configuration
  reason = waiting for ...     (one sentence; empty: not waiting)

While ``reason`` is given, the file holds it and the partition's
``waiting-for`` promise fails with it; an empty ``reason`` removes it.
"""
import os

from ..stores import waiting


class Recipe:

    def __init__(self, buildout, name, options):
        self.directory, self.name = os.path.split(options['waiting-file'])
        self.reason = ' '.join(options.get('reason', '').split())

    def install(self):
        if self.reason:
            return [waiting.wait(self.directory, self.name, self.reason)]
        waiting.done(self.directory, self.name)
        return []

    update = install
