"""Recipe: the backend's account and alias database
(``recipes.stores.accounts``, decided by ``recipes.decisions.accounts``).

  [accounts]
  recipe = slapos.mailbundle:accounts
  directory = ${directory:accounts}          the database (0700)
  mail-directory = ${directory:mail}         homes: <domain>/<local part>
  domains = example.com example.org
  default-quota = 1024                       (MiB)
  test-account = false
  password-url = https://[...]:8081/password
  postmaster = admin@example.com             (optional: the parameter; by
                                             default postmaster@ the first
                                             domain)

The shared instances come from the partition's parameters file
(``recipes.instance.slapconfiguration``), where their reset tokens are; the
options hold none. Exports the paths ``passwd-file``, ``mailboxes-map``,
``aliases-map``, ``senders-map``, ``suspended-map``,
``suspended-transport-map``, ``domains-file`` and ``published-file`` (what
each shared instance gets, setup tokens included: for
``slapos.mailbundle:publish-shared``'s ``results-file``). The database is
updated on install and on update."""
import os

from zc.buildout import UserError

from ..decisions.accounts import postmaster_address
from ..stores import accounts
from .slapconfiguration import partition_parameters


class Recipe:

    def __init__(self, buildout, name, options):
        self.buildout = buildout
        self.options = options
        for option, filename in accounts.FILES.items():
            options[option] = os.path.join(options['directory'], filename)
        try:
            self.postmaster = postmaster_address(options.get('postmaster'),
                                                 options['domains'].split())
        except ValueError as e:
            raise UserError(str(e))

    def install(self):
        o = self.options
        accounts.update(
            o['directory'], o['mail-directory'], o['domains'].split(),
            partition_parameters(self.buildout, 'valid-shared-instance-list',
                                 []),
            int(o['default-quota']), o.get('test-account') == 'true',
            o.get('password-url', ''), postmaster=self.postmaster)
        return []

    update = install
