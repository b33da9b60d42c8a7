"""Recipe: the configuration of a relay node's delivery agent for the
domains whose mail goes to an HTTPS API (``recipes.programs.http_delivery``),
written from the partition's parameters (``recipes.decisions.http_endpoints``):

  [http-delivery]
  recipe = slapos.mailbundle:http-delivery
  output = ${directory:postfix}/http-delivery.json
  socket = ${directory:run}/http-delivery.sock      (the agent's LMTP socket)
  answers-file = ${directory:srv}/http-answers.json (each API's last answer)
  node = the node's name
  probe-sender = double-bounce@<the node's name> (Postfix's address
                 verification probes: the recipients asked of the API)

The tokens are read from the partition's parameters file
(``recipes.instance.slapconfiguration``), never passed as an option: they
stay out of the rendered instance profile and out of buildout's records.
The file is 0600, written atomically when it changes (the agent reads it
again then).
"""
import json

from ..decisions.http_endpoints import agent_domains
from ..stores.files import read_json, write_atomically
from .slapconfiguration import partition_parameters


class Recipe:

    def __init__(self, buildout, name, options):
        self.buildout = buildout
        self.options = options

    def install(self):
        o = self.options
        config = {'socket': o['socket'], 'answers-file': o['answers-file'],
                  'node': o['node'], 'probe-sender': o['probe-sender'],
                  'domains': agent_domains(
                      partition_parameters(self.buildout).get(
                          'mail-domains', []))}
        if read_json(o['output'], None) != config:
            write_atomically(o['output'], json.dumps(config, sort_keys=True),
                             0o600)
        return []

    update = install
