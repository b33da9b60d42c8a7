"""Recipe: the outbound route of a mail backend
(``recipes.decisions.outbound``)."""
import json

from ..decisions import outbound


class Recipe:
    """Recipe: the outbound route of a mail backend.

      [outbound]
      recipe = slapos.mailbundle:outbound
      outbound-relay = {"enable": true}          (the parameter, JSON)
      domains = example.com example.org
      example.com-outbound-host = ${request-relay-0:connection-outbound-host}
      example.com-outbound-smtp-port = ...
      example.com-tls-fingerprints = ...         (JSON list)
      example.com-dns-records = ...              (JSON list)

    Exports ``mode``, ``relayhost``, ``defer-transports``,
    ``tls-security-level``, ``tls-fingerprints`` (space separated, for
    smtp_tls_fingerprint_cert_match), ``sasl`` (yes/no), ``dns-records``
    (JSON list of every domain's records) and ``relay-fingerprints`` (space
    separated: the certificates of every relay node that answered)."""

    KEYS = ('outbound-host', 'outbound-hosts', 'outbound-smtp-port',
            'tls-fingerprints', 'dns-records')

    def __init__(self, buildout, name, options):
        answers = [dict({'domain': domain}, **{
            key: options.get('%s-%s' % (domain, key), '') for key in self.KEYS})
            for domain in options.get('domains', '').split()]
        decision = outbound.route(json.loads(options['outbound-relay']),
                                  answers)
        options['mode'] = decision['mode']
        options['relayhost'] = decision['relayhost']
        options['defer-transports'] = decision['defer-transports']
        options['tls-security-level'] = decision['tls-security-level']
        options['tls-fingerprints'] = ' '.join(decision['tls-fingerprints'])
        options['sasl'] = 'yes' if decision['sasl'] else 'no'
        options['dns-records'] = json.dumps(decision['dns-records'])
        options['relay-fingerprints'] = ' '.join(
            outbound.relay_fingerprints(answers))

    def install(self):
        return []

    update = install
