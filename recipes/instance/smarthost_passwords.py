"""Recipe: Postfix's SASL password map for the smarthosts mail leaves
through, written from the partition's parameters
(``recipes.decisions.smarthosts``):

  [smarthost-password-map]
  recipe = slapos.mailbundle:smarthost-passwords
  parameter = proxy-map          (a relay node: one line per sender domain)
            | outbound-relay     (a backend: one line for its smarthost)
  output = ${directory:postfix}/smarthost-passwords

The passwords are read from the partition's parameters file
(``recipes.instance.slapconfiguration``), never passed as an option: they
stay out of the rendered instance profile and out of buildout's records.
The file is 0600, written atomically on every run.
"""
from ..decisions import smarthosts
from ..stores.files import write_atomically
from .slapconfiguration import partition_parameters

MAPS = {'proxy-map': smarthosts.relay_password_map,
        'outbound-relay': smarthosts.backend_password_map}


class Recipe:

    def __init__(self, buildout, name, options):
        self.buildout = buildout
        self.parameter = options['parameter']
        self.output = options['output']

    def install(self):
        parameters = partition_parameters(self.buildout)
        write_atomically(self.output, MAPS[self.parameter](
            parameters[self.parameter]), 0o600)
        return []

    update = install
