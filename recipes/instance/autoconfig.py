"""Recipe: the settings of the autoconfiguration program
(``recipes.programs.autoconfig``) and the DNS records a backend publishes
(``recipes.decisions.autoconfig``)."""
import json

from ..decisions.autoconfig import (THUNDERBIRD_PATHS, dns_records, merged,
                                    settings)
from ..stores.files import write_atomically


class Recipe:
    """Recipe: the settings of the autoconfiguration program, and the DNS
    records a backend publishes.

      [autoconfig]
      recipe = slapos.mailbundle:autoconfig
      domains = example.com example.org
      host = <the backend's IPv6>
      imaps-port = 10993   pop3s-port = 10995   smtps-port = 10465
      submission-port = 10587   https-port = 8081
      settings-file = ${directory:etc}/autoconfig.json
      url = https://[...]:8081/
      other-records = ${outbound:dns-records}     (JSON list, e.g. the relay's)

    Exports ``autoconfig-url`` (Thunderbird's file) and ``dns-records``
    (JSON list: ``other-records`` then this module's)."""

    PORTS = ('imaps-port', 'pop3s-port', 'smtps-port', 'submission-port',
             'https-port')

    def __init__(self, buildout, name, options):
        self.options = options
        domains = options['domains'].split()
        ports = {key: options[key] for key in self.PORTS}
        self.settings = settings(domains, options['host'], ports)
        try:
            others = json.loads(options.get('other-records') or '[]')
        except ValueError:
            others = []
        options['autoconfig-url'] = (options['url'].rstrip('/')
                                     + THUNDERBIRD_PATHS[0])
        options['dns-records'] = json.dumps(merged(
            others if isinstance(others, list) else [],
            dns_records(domains, options['host'], ports)))

    def install(self):
        write_atomically(self.options['settings-file'],
                         json.dumps(self.settings, indent=1) + '\n',
                         mode=0o644)
        return []

    update = install
