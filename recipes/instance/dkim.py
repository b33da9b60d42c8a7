"""Recipe: the DKIM keys of a relay node (``recipes.stores.dkim_keys``) and
the TXT record that publishes each public key under this node's selector
(``recipes.decisions.dns``).

  [dkim-keys]
  recipe = slapos.mailbundle:dkim-keys
  openssl = ${openssl:openssl}
  directory = ${directory:dkim}
  domains = mail1.example.com mail2.example.com
  fqdn = relay1.example.com

Exports ``selector`` (derived from the node's fqdn, so that every node of a
cluster signs with its own key), ``records`` (JSON list of the key records
of every domain) and ``zone`` (the same as zone file lines).
A missing key is generated when the options are computed: its public key is
one of them (as ``slapos.cookbook:generate.password`` does for a password).
"""
import json

from ..decisions import dns
from ..stores.dkim_keys import public_keys


class Recipe:

    def __init__(self, buildout, name, options):
        options['selector'] = selector = dns.dkim_selector(options['fqdn'])
        keys = public_keys(options['openssl'], options['directory'],
                           options['domains'].split())
        records = [dns.dkim_record(selector, domain, keys[domain])
                   for domain in sorted(keys)]
        options['records'] = json.dumps(records, sort_keys=True)
        options['zone'] = dns.zone_text(records)

    def install(self):
        return []

    update = install
