"""What the bundle asks DNS: the SPF checks of a relay node's inbound mail
(pyspf over dnspython), its DKIM signatures' keys (dkimpy) and its From
domains' DMARC records (``MessageAuthenticator``), and the MX and addresses
of a claimed domain (the cluster's domain verification and ``check-mx``).

DNS: the system's resolver (``/etc/resolv.conf``) unless the relay
configuration names ``nameservers`` (``address``, or ``[address]:port``
for a resolver on another port); each check takes at most ``timeout``
seconds in all.
"""
from ..decisions.dns import LookupFailed, parse_nameserver


# answers kept by a cached resolver (each for its TTL, as a caching
# resolver keeps them)
CACHED_ANSWERS = 4096


def resolver(nameservers, timeout, cached=False):
    """A dnspython resolver: the system's, or the given nameservers. None
    when there is no usable resolver at all (no /etc/resolv.conf): every
    check is then a ``temperror``. ``cached``: it keeps each answer for its
    TTL (a thread-safe LRU cache), for the checks of every message of a
    process: mail comes in bursts from the same domains, and each lookup
    it saves is a socket and a round trip to the name server."""
    import dns.nameserver
    import dns.resolver
    try:
        if nameservers:
            r = dns.resolver.Resolver(configure=False)
            r.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(n))
                             for n in nameservers]
        else:
            r = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return None
    r.lifetime = timeout
    r.timeout = min(timeout, 3)
    if cached:
        r.cache = dns.resolver.LRUCache(CACHED_ANSWERS)
    return r


def lookup_with(r):
    """pyspf's DNS lookup function (``spf.DNSLookup``) over resolver ``r``:
    ``[((name, type), value)]``; a failure of DNS itself raises pyspf's
    ``TempError``."""
    import dns.exception
    import dns.resolver
    import spf

    def lookup(name, qtype, tcpfallback=True, timeout=None):
        if r is None:
            raise spf.TempError('DNS: no resolver configured')
        found = []
        try:
            answers = r.resolve(name, qtype, search=False,
                                raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return found
        except (dns.exception.DNSException, OSError) as e:
            raise spf.TempError('DNS %s' % (e or e.__class__.__name__))
        for rdata in answers:
            if qtype in ('A', 'AAAA'):
                found.append(((name, qtype), rdata.address))
            elif qtype == 'MX':
                found.append(((name, qtype), (rdata.preference,
                                              rdata.exchange)))
            elif qtype == 'PTR':
                found.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ('TXT', 'SPF'):
                found.append(((name, qtype), rdata.strings))
        return found
    return lookup


class SPFChecker:
    """SPF checks over one cached resolver, reused for every request of a
    process (safe across threads: each lookup is a query of its own)."""

    def __init__(self, nameservers, timeout, receiver=''):
        import spf
        self.spf = spf
        self.timeout = timeout
        self.receiver = receiver or 'unknown'
        spf.DNSLookup = lookup_with(resolver(nameservers, timeout,
                                             cached=True))

    def check(self, client_address, sender, helo):
        """``(result, explanation, Received-SPF header value)``."""
        try:
            query = self.spf.query(i=client_address, s=sender or '',
                                   h=helo or 'unknown',
                                   receiver=self.receiver,
                                   timeout=self.timeout,
                                   querytime=self.timeout)
            result, _, explanation = query.check()
            header = query.get_header(result, self.receiver)
        except Exception as e:     # never refuse mail for a bug or bad input
            result, explanation = 'temperror', 'SPF check failed: %s' % e
            header = '%s (%s: %s) client-ip=%s;' % (
                result, self.receiver, explanation, client_address)
        return result, explanation, header


def domain_lookup(nameservers=(), timeout=5):
    """``lookup(domain)`` for ``recipes.decisions.domain_verification`` and
    ``recipes.decisions.dns.mx_check``: ``{exists, mx: [target], address}``
    (``address``: whether the domain has an A or AAAA record, asked only
    when it has no MX), over ``nameservers`` (the system's when empty).
    A failure of DNS itself raises LookupFailed; after one, the next
    lookups of the run fail at once (one timeout per run, not one per
    domain)."""
    state = {'failed': None}

    def ask(r, name, qtype):
        import dns.exception
        import dns.resolver
        try:
            return [a.to_text() for a in r.resolve(
                name, qtype, search=False, raise_on_no_answer=False)]
        except dns.resolver.NXDOMAIN:
            return None
        except (dns.exception.DNSException, OSError) as e:
            state['failed'] = 'DNS did not answer (%s)' % (
                str(e) or e.__class__.__name__)
            raise LookupFailed(state['failed'])

    def lookup(domain):
        if state['failed']:
            raise LookupFailed(state['failed'])
        r = resolver(nameservers, timeout)
        if r is None:
            state['failed'] = 'no resolver is configured'
            raise LookupFailed(state['failed'])
        mx = ask(r, domain, 'MX')
        if mx is None:
            return {'exists': False, 'mx': [], 'address': False}
        targets = [text.split()[-1] for text in mx]
        address = not targets and bool(ask(r, domain, 'AAAA') or
                                       ask(r, domain, 'A'))
        return {'exists': True, 'mx': targets, 'address': address}
    return lookup


class MessageAuthenticator:
    """DKIM verification (dkimpy) and DMARC (``recipes.decisions.dmarc``)
    of inbound messages, over one resolver with a cache, reused for every
    message of a process (safe across threads: each lookup is a query of
    its own)."""

    MAX_SIGNATURES = 5     # a message with more gets only these verified

    def __init__(self, nameservers, timeout):
        self.timeout = timeout
        self.resolver = resolver(nameservers, timeout, cached=True)

    def txt(self, name):
        """The TXT records of ``name`` (each its strings joined), [] when
        it has none; a failure of DNS raises LookupError."""
        import dns.exception
        import dns.resolver
        if self.resolver is None:
            raise LookupError('DNS: no resolver configured')
        try:
            answers = self.resolver.resolve(name, 'TXT', search=False,
                                            raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except (dns.exception.DNSException, OSError) as e:
            raise LookupError('DNS %s' % (e or e.__class__.__name__))
        return [b''.join(rdata.strings) for rdata in answers]

    def dmarc_record(self, domain):
        """The DMARC record of ``domain``, None when it has none (or more
        than one, RFC 7489 6.6.3)."""
        found = [t.decode('utf-8', 'replace') for t in
                 self.txt('_dmarc.%s' % domain)
                 if t[:8].upper() == b'V=DMARC1']
        return found[0] if len(found) == 1 else None

    def _dkim_key(self, name, timeout=None):
        import dkim
        try:
            found = self.txt(name.decode('ascii', 'replace'))
        except LookupError as e:
            raise dkim.DnsTimeoutError(str(e))
        return found[0] if found else None

    def dkim(self, message):
        """``[(result, d=, s=)]``, one per DKIM signature of ``message``
        (bytes): ``pass``, ``fail`` (the signature does not match),
        ``permerror`` (a signature or key that cannot be used) or
        ``temperror`` (DNS failed)."""
        if b'dkim-signature' not in message.lower():
            # no signature to verify: not worth dkimpy's parsing of the
            # message (most mail of a relay that is not signed)
            return []
        import dkim
        try:
            verifier = dkim.DKIM(message, timeout=self.timeout)
        except Exception:    # a message dkimpy cannot parse: no signature
            return []
        count = sum(1 for name, _ in verifier.headers
                    if name.lower() == b'dkim-signature')
        results = []
        for index in range(min(count, self.MAX_SIGNATURES)):
            try:
                result = 'pass' if verifier.verify(
                    idx=index, dnsfunc=self._dkim_key) else 'fail'
            except dkim.DnsTimeoutError:
                result = 'temperror'
            except Exception:      # dkimpy's errors, and a bug of a key
                result = 'permerror'
            fields = verifier.signature_fields or {}
            results.append((result, _text(fields.get(b'd', b'')).lower(),
                            _text(fields.get(b's', b''))))
            verifier.signature_fields = {}
        return results


def _text(value):
    return value.decode('ascii', 'replace') if isinstance(value, bytes) \
        else str(value)
