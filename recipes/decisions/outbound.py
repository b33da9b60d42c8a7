"""How a mail backend's outbound mail leaves: through the relay that answered
its domain request, through a smarthost, or directly; and which relay nodes
may deliver its inbound mail.

``route`` decides from the ``outbound-relay`` parameter and the relays'
answers (one per hosted domain, empty until the relay answered);
``relay_fingerprints`` gives the certificates of the relay nodes;
``recipes.instance.outbound`` hands both to the Postfix template.
"""
import json

from .smarthosts import nexthop


def _json_list(text):
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def relay_fingerprints(answers):
    """The certificate fingerprints of every relay node that answered for a
    hosted domain (current and next of each), without repeats: the only
    clients that deliver to the backend's SMTP port without logging in."""
    found = []
    for answer in answers:
        for fingerprint in _json_list(answer.get('tls-fingerprints')):
            if fingerprint not in found:
                found.append(fingerprint)
    return found


def route(outbound, answers):
    """Decide the outbound route.

    ``outbound``: the ``outbound-relay`` parameter (schema defaults applied);
    ``answers``: ``[{domain, outbound-host, outbound-smtp-port,
    tls-fingerprints (JSON text), dns-records (JSON text), outbound-hosts
    (JSON text, may be missing)}]`` in the order of the hosted domains,
    values empty when the relay has not answered.

    Returns ``{mode, relayhost, defer-transports, tls-security-level,
    tls-fingerprints (list), sasl (bool), dns-records (list)}``: ``mode`` is
    ``direct``, ``smarthost``, ``relay`` or ``waiting`` (relay wanted, no
    answer yet: outbound mail is accepted and waits in the deferred queue,
    ``defer_transports = smtp``; a retry/error transport instead would make
    smtpd refuse it at RCPT)."""
    dns_records = []
    for answer in answers:
        for entry in _json_list(answer.get('dns-records')):
            if entry not in dns_records:
                dns_records.append(entry)
    decision = {'mode': 'direct', 'relayhost': '', 'defer-transports': '',
                'tls-security-level': 'may', 'tls-fingerprints': [],
                'sasl': False, 'dns-records': dns_records}
    if not outbound['enable']:
        return decision
    if outbound.get('host'):
        decision.update(
            mode='smarthost',
            relayhost=nexthop(outbound['host'], outbound['port']),
            sasl=bool(outbound.get('user')),
            **{'tls-security-level': 'encrypt'})
        return decision
    for answer in answers:
        if answer.get('outbound-host') and answer.get('outbound-smtp-port'):
            # every node of the cluster, in turn when one does not answer
            hosts = _json_list(answer.get('outbound-hosts')) or [
                answer['outbound-host']]
            decision.update(
                mode='relay',
                relayhost=', '.join(nexthop(host, answer['outbound-smtp-port'])
                                    for host in hosts),
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
