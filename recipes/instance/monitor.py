"""Recipe: the monitor's URLs and credentials (``recipes.decisions.monitor``,
kept by ``recipes.stores.monitor``), for its web server and the
publication.

  [monitor]
  recipe = slapos.mailbundle:monitor
  directory = ${monitor-directory:etc}     its credentials (0700)
  ipv6 = ${partition:ipv6}
  port = 8196
  username = admin
  interface-url = https://monitor.app.officejs.com/#page=ojsm_landing
  password-parameter = monitor-password    (optional) the partition's
                                           parameter that gives the
                                           password; generated once when
                                           absent

The password is drawn when the options are computed, the first time, and
kept (as ``slapos.cookbook:generate.password`` does): a relay cluster
gives it to its nodes, whose requests are computed before anything is
installed.

Exports ``base-url`` (``monitor-base-url``), ``htpasswd``,
``password-file`` (for ``secret-file-config-`` of a request), ``cors-origin``
(the web app's origins, a regular expression), ``program-files`` (the
monitor daemon's code, for its service's ``hash-existing-files``), and, for
a ``slapos.mailbundle:publish`` section's ``-extends``: ``-publish``
(``monitor-base-url``) and ``-files`` (``monitor-setup-url``, a file: it
holds the password, which never sits in an option)."""
from ..decisions import monitor
from ..stores import monitor as store
from .profile_text import source_files
from .slapconfiguration import partition_parameters

# the daemon (recipes.programs.monitor) and what it imports of ours
PROGRAM = ('recipes.programs.monitor', 'recipes.decisions.monitor')


class Recipe:

    def __init__(self, buildout, name, options):
        self.options = options
        base = monitor.base_url(options['ipv6'], options['port'])
        files = store.paths(options['directory'])
        options['monitor-base-url'] = options['base-url'] = base
        options['htpasswd'] = files['htpasswd']
        options['password-file'] = files['password']
        given = None
        if options.get('password-parameter'):
            given = partition_parameters(buildout).get(
                options['password-parameter'])
        store.password(options['directory'], given)
        options['cors-origin'] = monitor.cors_origin(options['interface-url'])
        options['program-files'] = source_files(*PROGRAM)
        options['-publish'] = 'monitor-base-url'
        options['-files'] = 'monitor-setup-url %s' % files['setup-url']

    def install(self):
        o = self.options
        password = store.read(o['password-file'])
        store.write_htpasswd(o['directory'], o['username'], password)
        store.write_setup_url(o['directory'], monitor.setup_url(
            o['interface-url'], o['base-url'], o['username'], password))
        return []

    update = install
