"""SPF of a relay node's inbound mail (the ``inbound`` policy of
``recipes.relay_policy``), with pyspf over dnspython.

Decision (``spf_action``), as an operator would have it:

- ``fail`` (the sender's domain says this client may not send its mail):
  refused, ``550 5.7.23`` (RFC 7372), with pyspf's explanation;
- ``softfail``, ``neutral``, ``none``, ``pass``: accepted, with a
  ``Received-SPF`` header for the filters downstream;
- ``temperror`` and ``permerror`` (no DNS, a timeout, a broken record):
  accepted, with the header; a lookup that fails never refuses mail.

The null sender of a bounce is checked against the HELO name, as RFC 7208
says (pyspf does it).

DNS: the system's resolver (``/etc/resolv.conf``) unless the relay
configuration names ``spf.nameservers`` (``address``, or ``[address]:port``
for a resolver on another port); each check takes at most ``timeout``
seconds in all.
"""
import ipaddress

SPF_FAIL_CODE = '550 5.7.23'
DEFAULT_TIMEOUT = 10


def parse_nameserver(text):
    """``(address, port)`` of ``2001:db8::53``, ``192.0.2.53``,
    ``[2001:db8::53]:5353`` or ``192.0.2.53:5353``."""
    text = text.strip()
    if text.startswith('['):
        address, _, port = text[1:].partition(']')
        port = port.lstrip(':')
    elif text.count(':') == 1:
        address, _, port = text.partition(':')
    else:
        address, port = text, ''
    ipaddress.ip_address(address)        # ValueError when it is not one
    return address, int(port or 53)


def resolver(nameservers=(), timeout=DEFAULT_TIMEOUT):
    """A dnspython resolver: the system's, or the given nameservers. None
    when there is no usable resolver at all (no /etc/resolv.conf): every
    check is then a ``temperror``."""
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


class Checker:
    """SPF checks over one resolver, reused for every request of a
    process."""

    def __init__(self, nameservers=(), timeout=DEFAULT_TIMEOUT, receiver=''):
        import spf
        self.spf = spf
        self.timeout = timeout
        self.receiver = receiver or 'unknown'
        spf.DNSLookup = lookup_with(resolver(nameservers, timeout))

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


def spf_action(result, explanation, sender):
    """The policy answer for an SPF result: a rejection on ``fail`` only."""
    if result == 'fail':
        return '%s SPF check failed for <%s>: %s' % (
            SPF_FAIL_CODE, sender, explanation)
    return None
