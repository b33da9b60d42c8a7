"""How a mail backend's outbound mail leaves: through the relay that answered
its domain request, through a smarthost, or directly.

``route`` decides from the ``outbound-relay`` parameter and the relays'
answers (one per hosted domain, empty until the relay answered); the
recipe hands the decision to the Postfix template.
"""
import json



def nexthop(host, port):
    """Postfix next hop ``[host]:port`` (no MX lookup)."""
    return '[%s]:%s' % (host, port)


def _json_list(text):
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def route(outbound, answers):
    """Decide the outbound route.

    ``outbound``: the ``outbound-relay`` parameter (schema defaults applied);
    ``answers``: ``[{domain, outbound-host, outbound-smtp-port,
    tls-fingerprints (JSON text), dns-entries (JSON text)}]`` in the order of
    the hosted domains, values empty when the relay has not answered.

    Returns ``{mode, relayhost, defer-transports, tls-security-level,
    tls-fingerprints (list), sasl (bool), dns-entries (list)}``: ``mode`` is
    ``direct``, ``smarthost``, ``relay`` or ``waiting`` (relay wanted, no
    answer yet: outbound mail is accepted and waits in the deferred queue,
    ``defer_transports = smtp``; a retry/error transport instead would make
    smtpd refuse it at RCPT)."""
    dns_entries = []
    for answer in answers:
        for entry in _json_list(answer.get('dns-entries')):
            if entry not in dns_entries:
                dns_entries.append(entry)
    decision = {'mode': 'direct', 'relayhost': '', 'defer-transports': '',
                'tls-security-level': 'may', 'tls-fingerprints': [],
                'sasl': False, 'dns-entries': dns_entries}
    if not outbound.get('enable', True):
        return decision
    if outbound.get('host'):
        decision.update(
            mode='smarthost',
            relayhost=nexthop(outbound['host'], outbound.get('port', 25)),
            sasl=bool(outbound.get('user')),
            **{'tls-security-level': 'encrypt'})
        return decision
    for answer in answers:
        if answer.get('outbound-host') and answer.get('outbound-smtp-port'):
            decision.update(
                mode='relay',
                relayhost=nexthop(answer['outbound-host'],
                                  answer['outbound-smtp-port']),
                **{'tls-security-level': 'fingerprint',
                   'tls-fingerprints': _json_list(
                       answer.get('tls-fingerprints'))})
            if not decision['tls-fingerprints']:
                # nothing to pin yet: wait rather than send unverified
                break
            return decision
    decision.update(mode='waiting', relayhost='',
                    **{'defer-transports': 'smtp',
                       'tls-security-level': 'may', 'tls-fingerprints': []})
    return decision


class Recipe:
    """Recipe: the outbound route of a mail backend.

      [outbound]
      recipe = slapos.mailbundle:outbound
      outbound-relay = {"enable": true}          (the parameter, JSON)
      domains = example.com example.org
      example.com-outbound-host = ${request-relay-0:connection-outbound-host}
      example.com-outbound-smtp-port = ...
      example.com-tls-fingerprints = ...         (JSON list)
      example.com-dns-entries = ...              (JSON list)

    Exports ``mode``, ``relayhost``, ``defer-transports``,
    ``tls-security-level``, ``tls-fingerprints`` (space separated, for
    smtp_tls_fingerprint_cert_match), ``sasl`` (yes/no) and ``dns-entries``
    (JSON list of every domain's records)."""

    KEYS = ('outbound-host', 'outbound-smtp-port', 'tls-fingerprints',
            'dns-entries')

    def __init__(self, buildout, name, options):
        answers = [dict({'domain': domain}, **{
            key: options.get('%s-%s' % (domain, key), '') for key in self.KEYS})
            for domain in options.get('domains', '').split()]
        decision = route(json.loads(options.get('outbound-relay') or '{}'),
                         answers)
        options['mode'] = decision['mode']
        options['relayhost'] = decision['relayhost']
        options['defer-transports'] = decision['defer-transports']
        options['tls-security-level'] = decision['tls-security-level']
        options['tls-fingerprints'] = ' '.join(decision['tls-fingerprints'])
        options['sasl'] = 'yes' if decision['sasl'] else 'no'
        options['dns-entries'] = json.dumps(decision['dns-entries'])

    def install(self):
        return []

    update = install
