"""Recipe: make a running daemon take a new configuration without a restart
(``postfix reload``, ``doveadm reload``): no connection is dropped.

  [postfix-reload]
  recipe = slapos.mailbundle:reload
  files = ${postfix-main-cf:output} ${postfix-master-cf:output}
  command = ${postfix:postfix} -c ${directory:postfix} reload
  state-file = ${directory:etc}/.postfix-reload

Referencing the files puts this part after the parts that write them. The
command runs when their content changed since the last run; a daemon that
is not running yet (first run) reads the configuration when it starts, so
the command's failure then is not an error. With ``unless = VALUE``, a
non-empty value keeps the command from running (a ``postfix flush`` while
``defer_transports`` holds outbound mail would send it anyway, around
the relay the backend waits for).
"""
import hashlib
import logging
import shlex
import subprocess

logger = logging.getLogger(__name__)


def digest(paths):
    h = hashlib.sha256()
    for path in paths:
        h.update(path.encode() + b'\0')
        with open(path, 'rb') as f:
            h.update(f.read())
    return h.hexdigest()


def reload_if_changed(paths, command, state_file):
    """Run ``command`` when the files changed; return whether it ran."""
    current = digest(paths)
    try:
        with open(state_file) as f:
            previous = f.read()
    except FileNotFoundError:
        previous = None
    if current == previous:
        return False
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        logger.info('%s: not reloaded (%s), the daemon reads the new '
                    'configuration when it starts', command[0],
                    (result.stderr or result.stdout).strip())
    with open(state_file, 'w') as f:
        f.write(current)
    return True


class Recipe:

    def __init__(self, buildout, name, options):
        self.options = options

    def install(self):
        if self.options.get('unless', '').strip():
            return []
        reload_if_changed(self.options['files'].split(),
                          shlex.split(self.options['command']),
                          self.options['state-file'])
        return []

    update = install
