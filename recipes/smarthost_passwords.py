"""Recipe: the relay node's SASL password map for its smarthosts, written
from the partition's parameters (``proxy-map``).

  [relay-smarthost-password-map]
  recipe = slapos.mailbundle:smarthost-passwords
  output = ${directory:postfix}/smarthost-passwords

The passwords are read from ``[slap-configuration]`` by the recipe itself,
never passed as an option: they stay out of the rendered instance profile
and out of the options buildout records for this part. The file is 0600,
written atomically on every run, one ``@sender-domain user:password`` line
per domain of each smarthost that has a login (Postfix's
``smtp_sender_dependent_authentication``).
"""
from .files import write_atomically
from .slapconfiguration import partition_parameters


def password_map(proxy_map):
    """The text of the map for a ``proxy-map``."""
    lines = ['# @sender domain -> user:password of its smarthost']
    for _, smarthost in sorted(proxy_map.items()):
        if not smarthost.get('user'):
            continue
        for domain in smarthost.get('domains', ()):
            lines.append('@%s %s:%s' % (domain, smarthost['user'],
                                         smarthost.get('password', '')))
    return '\n'.join(lines) + '\n'


class Recipe:

    def __init__(self, buildout, name, options):
        self.output = options['output']
        self.text = password_map(
            partition_parameters(buildout).get('proxy-map') or {})

    def install(self):
        write_atomically(self.output, self.text, 0o600)
        return []

    update = install
