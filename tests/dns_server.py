"""A stand-in DNS server for the tests (there is no DNS here): answers UDP
queries from a table of records, NXDOMAIN for any other name::

    with DNSServer('127.0.0.1', {('example.com', 'TXT'): ['v=spf1 -all']}) as dns:
        ... resolver at dns.address ('[127.0.0.1]:<port>') ...

Records are ``{(name, type): [value in zone file syntax]}``; TXT values are
given unquoted. ``records`` may be changed while it runs (a record the
tests learn from a deployment)."""
import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DNSServer:

    def __init__(self, host, records, port=0):
        self.host = host
        self.records = {(n.lower().rstrip('.'), t.upper()): v
                        for (n, t), v in records.items()}
        self.queries = []
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.socket.bind((host, port))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.address = '[%s]:%d' % (host, self.port)
        self.running = False
        self.thread = None

    def add(self, name, qtype, values):
        """Serve ``values`` for (``name``, ``qtype``) from now on."""
        self.records[(name.lower().rstrip('.'), qtype.upper())] = list(values)

    def answer(self, wire):
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower().rstrip('.')
        qtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, qtype))
        values = self.records.get((name, qtype))
        if values:
            if qtype == 'TXT':   # strings of 255 bytes at most (a DKIM key)
                values = [' '.join('"%s"' % v[i:i + 255].replace('"', '\\"')
                                   for i in range(0, len(v), 255))
                          for v in values]
            response.answer.append(dns.rrset.from_text(
                question.name, 60, 'IN', qtype, *values))
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def serve(self):
        while self.running:
            try:
                wire, peer = self.socket.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                self.socket.sendto(self.answer(wire), peer)
            except Exception:
                continue

    def start(self):
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.running = False
        if self.thread:
            self.thread.join(5)
        self.socket.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
