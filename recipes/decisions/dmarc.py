"""DMARC (RFC 7489) of a relay node's inbound mail: whose domain a message
shows in its From header, whether its SPF or DKIM results speak for that
domain, and what the domain asks for a message they do not speak for. The
records and the DKIM signatures are looked up and verified by
``recipes.clients.resolver``; the milter of the policy daemon
(``recipes.programs.relay_policy``, ``inbound-authentication``) applies
the decision.

- The author domains: those of the From header's addresses (as readers and
  DMARC verifiers parse it). No From header, or none with an address:
  nothing to evaluate (``none``).
- The policy: the DMARC record of the From domain, else of its
  organizational domain (the Public Suffix List's registrable domain,
  ``publicsuffixlist``) with its ``sp``. Parsed, and the identifiers
  aligned (relaxed or strict, ``adkim``/``aspf``), by the ``dmarc``
  package; ``pct`` below 100 applies the policy to that share of the
  failing messages, the others get the next milder one (RFC 7489 6.6.4);
  ``t=y`` (DMARCbis) is a test: quarantine at most.
- The result: ``pass`` when an SPF ``pass`` for the envelope sender or a
  DKIM ``pass`` is aligned with the From domain; else ``fail``, and the
  disposition is the policy's: ``reject`` refused at the end of the data
  (``550 5.7.1``), ``quarantine`` filed into the recipient's Junk (the
  header ``QUARANTINE_HEADER``, which the backend's Sieve reads),
  ``none`` delivered. A DNS failure is a ``temperror`` and never refuses
  mail; a broken record a ``permerror``, treated as no policy.
- Several author domains: each is evaluated; the strictest disposition
  wins.

``authentication_results`` writes the ``Authentication-Results`` header
(RFC 8601) that says all of it to the user's client and the spam filter.
"""
import email.utils
import random

from .names import domain_of

# what the relay adds to a message to be quarantined, and removes from
# every message it receives: the backend's Sieve files it into Junk
QUARANTINE_HEADER = 'X-DMARC-Quarantine'
DISPOSITIONS = ('none', 'quarantine', 'reject')
REFUSAL = '550 5.7.1 %s'


def domain_of_sender(sender):
    """The domain of the envelope sender (None for the null sender)."""
    sender = (sender or '').strip().strip('<>')
    return domain_of(sender).lower().rstrip('.') or None if '@' in sender \
        else None


def author_domains(from_values):
    """The domains of the addresses of the From headers ``from_values``,
    lower-cased, in order, without repeats."""
    found = []
    for _, address in email.utils.getaddresses(list(from_values)):
        domain = domain_of(address) if '@' in address else ''
        domain = domain.strip().lower().rstrip('.')
        if domain and domain not in found:
            found.append(domain)
    return found


_PSL = []


def organizational_domain(domain):
    """The registrable domain of ``domain`` (``example.co.uk`` for
    ``mail.example.co.uk``), the domain itself when it is one or when the
    list does not know it."""
    if not _PSL:
        from publicsuffixlist import PublicSuffixList
        _PSL.append(PublicSuffixList())
    return _PSL[0].privatesuffix(domain) or domain


class _Alignment:
    """The ``dmarc`` package's interface to a public suffix list."""

    @staticmethod
    def get_public_suffix(domain):
        return organizational_domain(domain)


class Verdict:
    """The DMARC result of one author domain: ``result`` (pass, fail,
    none, temperror, permerror), ``disposition`` (none, quarantine,
    reject) and ``policy`` (the policy published: none, quarantine,
    reject, or '')."""

    def __init__(self, domain, result, disposition='none', policy='',
                 comment=''):
        self.domain = domain
        self.result = result
        self.disposition = disposition
        self.policy = policy
        self.comment = comment

    def __repr__(self):
        return 'Verdict(%r, %r, %r, %r)' % (self.domain, self.result,
                                            self.disposition, self.policy)


def milder(disposition):
    return DISPOSITIONS[max(0, DISPOSITIONS.index(disposition) - 1)]


def evaluate(domain, lookup, spf, dkim_domains, sample=random.random):
    """The ``Verdict`` for author domain ``domain``.

    ``lookup(name)``: the DMARC record (TXT) of ``name``, None when it has
    none, raises LookupError when DNS fails. ``spf``: ``(result, domain of
    the envelope sender)``. ``dkim_domains``: the ``d=`` of each signature
    that verified."""
    import dmarc
    org = organizational_domain(domain)
    try:
        record, org_domain = lookup(domain), None
        if record is None and org != domain:
            record, org_domain = lookup(org), org
    except LookupError as e:
        return Verdict(domain, 'temperror', comment=str(e))
    if record is None:
        return Verdict(domain, 'none')
    try:
        policy = dmarc.DMARCPolicy(record=record, domain=domain,
                                   org_domain=org_domain,
                                   publicsuffix=_Alignment())
    except dmarc.Error as e:
        return Verdict(domain, 'permerror', comment=str(e))
    results = [dmarc.DKIM(d, dmarc.DKIMResult.PASS) for d in dkim_domains]
    spf_result, spf_domain = spf
    if spf_result == 'pass' and spf_domain:
        results.append(dmarc.SPF(spf_domain, dmarc.SPFResult.PASS))
    try:
        policy.verify(auth_results=results)
    except dmarc.PolicyError:
        pass
    published = policy.policy.p.value
    if policy.result.result is dmarc.DMARCResult.PASS:
        return Verdict(domain, 'pass', policy=published)
    disposition = policy.result.disposition.value or 'none'
    if policy.policy.t is dmarc.DMARCTesting.Y:
        disposition = milder(disposition)
    elif policy.policy.pct < 100 and sample() * 100 >= policy.policy.pct:
        disposition = milder(disposition)
    return Verdict(domain, 'fail', disposition, published)


def strictest(verdicts):
    """The verdict whose disposition is the strictest (the first of
    those)."""
    return max(verdicts, key=lambda v: DISPOSITIONS.index(v.disposition),
               default=None)


def refusal(verdict):
    """The SMTP reply of a message DMARC refuses, or None."""
    if verdict is None or verdict.disposition != 'reject':
        return None
    return REFUSAL % ('Unauthenticated mail from %s is refused by its '
                      'DMARC policy (p=reject): it is neither from a server '
                      'its SPF allows nor signed by it' % verdict.domain)


def authentication_results(authserv_id, spf, dkim, verdict):
    """The ``Authentication-Results`` header's value. ``spf``: ``(result,
    envelope sender's domain)`` or None when not checked; ``dkim``: a
    ``(result, d=, s=)`` per signature, empty for an unsigned message;
    ``verdict``: the DMARC ``Verdict`` that decided, or None when DMARC
    was not evaluated."""
    parts = [authserv_id]
    if spf is not None:
        result, domain = spf
        parts.append('spf=%s smtp.mailfrom=%s' % (result, domain or '<>'))
    if dkim:
        for result, d, s in dkim:
            parts.append('dkim=%s header.d=%s header.s=%s' % (result, d, s))
    else:
        parts.append('dkim=none')
    if verdict is not None:
        detail = ''
        if verdict.policy:
            detail = ' (p=%s dis=%s)' % (verdict.policy,
                                         verdict.disposition)
        parts.append('dmarc=%s%s header.from=%s' % (
            verdict.result, detail, verdict.domain))
    return '; '.join(parts)


def authserv_id_of(value):
    """The authserv-id an ``Authentication-Results`` value starts with."""
    return value.split(';', 1)[0].strip().split()[0].lower() \
        if value.strip() else ''
