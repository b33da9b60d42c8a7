"""Postfix policy services and milters of a relay node and of a mail
backend (SMTPD_POLICY_README, MILTER_README): one daemon per partition, run
by the partition's supervisor, answering on a unix socket per service
(``check_policy_service unix:SOCKET``, ``smtpd_milters = unix:SOCKET``):

  python -m recipes.programs.relay_policy MODE SOCKET CONFIG [MODE SOCKET CONFIG]...

Each connection (an smtpd process keeps its own, for many requests) is
served by a thread of its own; each service reads its CONFIG again when
the file changes (one stat per request), so that a new domain takes effect
at once and no request is lost to a restart.

``inbound`` (policy; a relay node's inbound port, a backend's SMTP port
when it is its domains' MX): the size of the message against its
recipients' backend (``recipes.decisions.size_limits``: at RCPT with the
announced size, at the end of the data with the real one); SPF of the
sender (``recipes.decisions.spf``: refused on ``fail`` only, a
``Received-SPF`` header otherwise; a ``pass`` skips greylisting), then greylisting
(``recipes.decisions.greylisting``: a first attempt is deferred with
``DEFER_IF_PERMIT 4.7.1``, so that a recipient refused for another reason
is still refused at once). Clients that are the partition itself (its
addresses, loopback) or a backend of the cluster skip SPF and
greylisting, as Postfix's own ``mynetworks`` would; whitelisted clients and
recipients skip greylisting.

CONFIG.json of ``inbound``: ``{"greylisting": {enable, greylisting-delay,
whitelist-clients, whitelist-recipients}, "spf": {enable, timeout},
"nameservers": [resolver] (the system's when empty), "trusted-clients":
[address or network: the partition's own, loopback, a relay node's
backends], "size-limits": {domain: bytes}, "database": path, "log-file":
path, "receiver": the partition's name, "greylisting-peers": {"port",
"names": [the other nodes' fqdn]}}``.

``greylist-peers`` (a relay node, ``[ADDRESS]:PORT`` instead of a socket;
CONFIG: the inbound policy's): the first attempts the other nodes of the
cluster greylisted, learnt into this node's database, and this node's told
to them (``recipes.programs.greylist_peers``), so that a retry through
another node passes.

``outbound`` (policy; a relay node's submission port, at RCPT): the client
must be a backend, recognised as its domain shared instance says
(``authentication``: its IP address, its SASL login or its TLS client
certificate fingerprint), and the sender's domain must be one of the
domains it is recognised for.

CONFIG.json of ``outbound``: ``{"domains": [{"name", "authentication",
"mail-server-host", "outbound-user", "fingerprints"}]}`` (the node's
``mail-domains``).

``outbound-header`` (milter, after ``outbound`` on the same port): the
From header may only show addresses of the domains that ``outbound``
recognised the client for (``recipes.decisions.header_from``), before
OpenDKIM signs by it; a message the backend forwards (its envelope sender
an SRS address of the backend's domains, or an ``X-Sieve-Redirected-From``
header, Pigeonhole's, naming an address of them: a user's Sieve redirect)
or a bounce (the null sender: one it sends on to the original sender of a
forward) may show its author's address too, unless that is of a domain the
node hosts for another backend. Postfix gives a milter no client certificate, so the
two share what ``outbound`` found, by the client's address and port.
CONFIG: the outbound policy's.

``submission-header`` (milter; a backend's submission, SMTPS and SMTP
ports): an authenticated user's From header may only show addresses its
login may send as. CONFIG: the account database's ``senders`` map
(``recipes.stores.accounts``).

``srs`` (socketmap, ``recipes.programs.socketmap``; a backend): the
Sender Rewriting Scheme of mail that leaves again
(``recipes.decisions.srs``). Map ``forward`` (``sender_canonical_maps``
of the cleanup that such mail passes): a sender outside the hosted domains
becomes an SRS address of ``domain``; map ``reverse``
(``recipient_canonical_maps``): an SRS address of ours becomes the
original sender, where its bounce goes. CONFIG.json: ``{"domain": the SRS
domain, "hosted": [domain], "secret-file": path}`` (the secret, 0600, made
at the first start).

``inbound-authentication`` (milter, after ``inbound`` on the same port):
DKIM verification and DMARC (``recipes.decisions.dmarc``) of the message
from a client that is not trusted: a message whose From domain's DMARC
policy is ``reject`` and which neither an aligned SPF pass (as ``inbound``
found it, shared by the client's address and port) nor an aligned DKIM
signature speaks for is refused at the end of the data; ``quarantine``
gets the header that files it into the recipient's Junk; every message
gets an ``Authentication-Results`` header (the ones claiming this node's
name, and the quarantine header, that it came with are removed). CONFIG:
the inbound policy's, with ``dmarc: {enable}`` (when disabled: the header
says SPF and DKIM only, no policy is applied).

When the daemon is down, Postfix answers 4xx
(``smtpd_policy_service_default_action``, ``milter_default_action``): the
mail is deferred, neither lost nor let through unchecked.
"""
import collections
import json
import os
import socketserver
import stat
import sys
import threading
import time

from ..clients.resolver import (MessageAuthenticator, SPFChecker,
                                lookup_with, resolver)
from ..decisions import dmarc, greylisting, header_from, size_limits, srs
from ..decisions.names import domain_of
from ..decisions.relay_policy import identified_domains, sender_action
from ..decisions.spf import skips_greylisting, spf_action
from ..stores import accounts, files
from ..stores.greylist import Greylist
from .milter import (ACCEPT, ADD_HEADERS, CHANGE_HEADERS,
                     HEADER_LEADING_SPACE, NO_DATA, NO_HEADER_REPLY, NO_HELO,
                     NO_RCPT, NO_UNKNOWN, MilterConnection)
from .greylist_peers import Notices, PeerAddresses, PeerServer
from .socketmap import SocketmapConnection

class InboundChecks:
    """What the ``inbound`` policy of one configuration shares between the
    connections (threads) of the daemon: the SPF resolver, the greylisting
    database and the log file."""

    def __init__(self, config):
        self.config = config
        self.grey = config['greylisting']
        self.trusted = config.get('trusted-clients', ())
        self.size_limits = config.get('size-limits', {})
        self.log_file = config.get('log-file')
        # reentrant: opening the greylist opens the peers' addresses
        self.lock = threading.RLock()
        self.opened = {}

    def _once(self, name, open_it):
        if name not in self.opened:
            with self.lock:
                if name not in self.opened:
                    self.opened[name] = open_it()
        return self.opened[name]

    # Opened at the first client that is not trusted: the backends and the
    # node's own addresses (most of a busy relay's connections, every one
    # of the benchmark's) never pay for the SPF resolver's imports nor the
    # database.
    @property
    def greylist(self):
        """The ``greylisting.Greylist`` (safe across threads), or None."""
        return self._once('greylist', self._open_greylist)

    def _open_greylist(self):
        if not self.grey['enable']:
            return None
        peers = self.config.get('greylisting-peers') or {}
        notices = Notices(self.peer_addresses, peers['port'], self.log_text,
                          source=peers.get('address')) \
            if peers.get('names') else None
        return Greylist(self.config['database'],
                        int(self.grey['greylisting-delay']),
                        on_first=notices and notices.send)

    @property
    def peer_addresses(self):
        """The ``PeerAddresses`` of the other nodes of the cluster."""
        return self._once('peer-addresses', lambda: PeerAddresses(
            (self.config.get('greylisting-peers') or {}).get('names', ()),
            lookup_with(resolver(self.config.get('nameservers', ()),
                                 int(self.config['spf']['timeout'])))))

    def learn(self, key, first):
        """A first attempt a peer greylisted (``greylist-peers``)."""
        if self.greylist is not None:
            self.greylist.learn(key, first)

    @property
    def authenticator(self):
        """The ``MessageAuthenticator`` (DKIM, DMARC records)."""
        return self._once('authenticator', lambda: MessageAuthenticator(
            self.config.get('nameservers', ()),
            int(self.config['spf']['timeout'])))

    @property
    def spf(self):
        """The ``SPFChecker`` (each check a query of its own, safe across
        threads), or None."""
        return self._once('spf', self._open_spf)

    def _open_spf(self):
        spf = self.config['spf']
        if not spf['enable']:
            return None
        return SPFChecker(self.config.get('nameservers', ()),
                          int(spf['timeout']),
                          self.config.get('receiver', ''))

    def log(self, request, what):
        self.log_text('inbound client=[%s] from=<%s> to=<%s>: %s' % (
            request.get('client_address'), request.get('sender', ''),
            request.get('recipient', ''), what))

    def log_text(self, what):
        if not self.log_file:
            return
        line = '%s %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'), what)
        try:
            with self.lock, open(self.log_file, 'a', encoding='utf-8',
                                 errors='backslashreplace') as f:
                f.write(line)
        except OSError:
            pass


class Inbound:
    """The ``inbound`` policy of one connection: ``checks()`` gives the
    shared ``InboundChecks`` of the configuration in force; what this
    connection's messages were given (their SPF result, their header) stays
    here."""

    def __init__(self, checks, spf_results=None):
        self.checks = checks
        self.spf_results = spf_results
        self.headers_for = None      # the message (instance) given its header
        self.spf_checked = (None, None)  # (message and sender, result)
        self.size_limit = (None, None)   # (message, smallest recipient limit)

    def __call__(self, request):
        checks = self.checks()
        try:
            return self.decide(checks, request)
        except Exception as e:   # a policy that breaks must not refuse mail
            checks.log(request, 'policy error, mail let through: %r' % e)
            return 'DUNNO'

    def size_refusal(self, checks, request):
        """At RCPT, the announced size against the recipient's limit (the
        smallest of the message's recipients is kept); at the end of the
        data, the real size against it."""
        instance = request.get('instance')
        size = int(request.get('size') or 0)
        if request.get('protocol_state') == 'END-OF-MESSAGE':
            kept_for, limit = self.size_limit
            return size_limits.refusal(size, limit if kept_for == instance
                                       else None)
        limit = size_limits.recipient_limit(checks.size_limits,
                                            request.get('recipient', ''))
        refusal = size_limits.refusal(size, limit)
        if not refusal and limit:
            kept_for, kept = self.size_limit
            if kept_for == instance and kept:
                limit = min(limit, kept)
            self.size_limit = (instance, limit)
        return refusal

    def decide(self, checks, request):
        refusal = self.size_refusal(checks, request)
        if refusal:
            checks.log(request, 'too big (%s bytes), refused'
                       % request.get('size'))
            return refusal
        if request.get('protocol_state') == 'END-OF-MESSAGE':
            return 'DUNNO'
        client = request.get('client_address', '')
        if greylisting.whitelisted_client(checks.trusted, client):
            return 'DUNNO'
        sender = request.get('sender', '')
        recipient = request.get('recipient', '')
        header = None
        spf_passed = False
        if checks.spf is not None:
            # once per message, whatever its number of recipients
            key = (request.get('instance'), client, sender,
                   request.get('helo_name', ''))
            if self.spf_checked[0] != key:
                self.spf_checked = (key, checks.spf.check(*key[1:]))
                if self.spf_results is not None:
                    self.spf_results.record(request, (
                        self.spf_checked[1][0], sender))
            result, explanation, header = self.spf_checked[1]
            refusal = spf_action(result, explanation, sender)
            if refusal:
                checks.log(request, 'SPF %s, refused' % result)
                return refusal
            spf_passed = skips_greylisting(result)
        grey = checks.grey
        if checks.greylist is not None and not spf_passed and not (
                greylisting.whitelisted_client(
                    grey.get('whitelist-clients', ()), client,
                    request.get('client_name', ''))
                or greylisting.whitelisted_recipient(
                    grey.get('whitelist-recipients', ()), recipient)):
            wait = checks.greylist.check(client, sender, recipient)
            if wait:
                checks.log(request, 'greylisted, retry in %d s' % wait)
                return ('DEFER_IF_PERMIT 4.7.1 Greylisted, retry in %d '
                        'seconds' % wait)
        instance = request.get('instance')
        if header and instance != self.headers_for:
            # one header per message, not one per recipient
            self.headers_for = instance
            return 'PREPEND Received-SPF: %s' % header
        return 'DUNNO'


def serve(decide, rfile, wfile):
    """Answer each request (``name=value`` lines, then an empty line) read
    from ``rfile`` with ``action=decide(request)`` on ``wfile``."""
    request = {}
    for line in rfile:
        line = line.rstrip('\n')
        if line:
            name, _, value = line.partition('=')
            request[name] = value
            continue
        wfile.write('action=%s\n\n' % decide(request))
        wfile.flush()
        request = {}


def read_json(path):
    with open(path) as f:
        return json.load(f)


class ConfigFile:
    """``make(read(path))`` (the JSON of path by default), made again when
    the file changes (a stat per call). A file that cannot be read or
    parsed (being written) leaves the previous one in force until it
    changes again."""

    def __init__(self, path, make, read=read_json):
        self.path = path
        self.make = make
        self._read = read
        self.lock = threading.RLock()
        self.stamp = None
        stamp = self.current_stamp()
        self.value = self.make(self.read())   # the daemon fails at start
        self.stamp = stamp

    def current_stamp(self):
        try:
            s = os.stat(self.path)
        except OSError:
            return self.stamp
        return (s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)

    def read(self):
        return self._read(self.path)

    def __call__(self):
        stamp = self.current_stamp()
        if stamp != self.stamp:
            with self.lock:
                if stamp != self.stamp:
                    try:
                        self.value = self.make(self.read())
                        print('%s: read again' % self.path, file=sys.stderr)
                    except Exception as e:
                        print('%s: kept the previous configuration: %s' % (
                            self.path, e), file=sys.stderr)
                    self.stamp = stamp
        return self.value


class PolicyConnection(socketserver.BaseRequestHandler):
    """One smtpd's connection: ``serve`` over the socket, with a policy of
    its own (``server.new_policy()``)."""

    def handle(self):
        policy = self.server.new_policy()
        try:
            with self.request.makefile('r', encoding='utf-8',
                                       errors='surrogateescape',
                                       newline='\n') as rfile, \
                    self.request.makefile('w', encoding='utf-8',
                                          errors='surrogateescape',
                                          newline='\n') as wfile:
                serve(policy, rfile, wfile)
        except OSError:       # smtpd went away (killed, or its time is up)
            pass


class PolicyServer(socketserver.ThreadingUnixStreamServer):
    """A policy (``PolicyConnection``) or a milter (``MilterConnection``) on
    the unix socket ``path``, readable by the partition's user only;
    ``new_policy()`` gives each connection (or SMTP session) its policy or
    check."""

    daemon_threads = True
    request_queue_size = 128    # a burst of smtpd processes connecting

    def __init__(self, path, new_policy, handler=PolicyConnection):
        self.new_policy = new_policy
        # a socket left by a daemon that was killed would stop the bind
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
        super().__init__(path, handler)

    def server_bind(self):
        umask = os.umask(0o177)
        try:
            super().server_bind()
        finally:
            os.umask(umask)


class Identities:
    """What a policy found of an SMTP session, by the client's address and
    port, for the milter of the same message: the domains the outbound
    policy found the client to own (for the header check), the SPF result
    of the inbound policy (for DMARC). The most recent sessions are
    kept."""

    KEPT = 4096

    def __init__(self):
        self.lock = threading.RLock()
        self.found = collections.OrderedDict()

    def record(self, request, domains):
        key = (request.get('client_address'), request.get('client_port'))
        with self.lock:
            self.found[key] = domains
            self.found.move_to_end(key)
            while len(self.found) > self.KEPT:
                self.found.popitem(last=False)

    def get(self, address, port):
        with self.lock:
            return self.found.get((address, str(port)))


class HeaderCheck:
    """The milter check of one SMTP session (``recipes.programs.milter``):
    collects the From headers; ``refusal(froms)`` decides."""

    def __init__(self):
        self.client = (None, 0)
        self.froms = []

    def connect(self, address, port):
        self.client = (address, port)

    def mail(self, macros):
        return None

    def header(self, name, value):
        if name.lower() == 'from':
            self.froms.append(value)

    def end_of_headers(self):
        return self.refusal(self.froms)

    def reset(self):
        self.froms = []


class RelayHeaderCheck(HeaderCheck):
    """``outbound-header``: the From domains are those the outbound policy
    recognised the client for; a message its backend forwards (an SRS
    envelope sender of its domains, or Pigeonhole's
    ``X-Sieve-Redirected-From`` naming one of its addresses: a user's Sieve
    redirect) or a bounce (the null sender) may also show an author outside
    the ``hosted()`` domains."""

    REDIRECTED = 'x-sieve-redirected-from'

    def __init__(self, identities, hosted):
        super().__init__()
        self.identities = identities
        self.hosted = hosted
        self.sender = ''
        self.redirected_by = []

    def mail(self, macros):
        self.sender = macros.get('mail_addr', '')
        return None

    def header(self, name, value):
        super().header(name, value)
        if name.lower() == self.REDIRECTED:
            self.redirected_by.append(value.strip().strip('<>'))

    def reset(self):
        super().reset()
        self.redirected_by = []

    def refusal(self, froms):
        domains = self.identities.get(*self.client)
        if domains is None:
            return ('451 4.7.1 The sender was not recognised before its '
                    'data: try again')
        def own(address):
            return domain_of(address).lower() in {d.lower() for d in domains}
        # a forward (an SRS sender of its own), a user's redirect, or a
        # bounce it sends on (to the original sender of a forward: the
        # author is the destination's mailer daemon)
        forwarded = (not self.sender
                     or srs.is_srs(self.sender) and own(self.sender)
                     or any(own(a) for a in self.redirected_by))
        return header_from.relay_refusal(
            froms, domains, self.hosted() if forwarded else None)


class SubmissionHeaderCheck(HeaderCheck):
    """``submission-header``: an authenticated user's From addresses are
    ones its login may send as; other mail (from the relay) is not
    checked."""

    def __init__(self, senders):
        super().__init__()
        self.senders = senders
        self.login = None

    def mail(self, macros):
        self.login = macros.get('auth_authen')
        return None if self.login else ACCEPT

    def refusal(self, froms):
        return header_from.submission_refusal(froms, self.login,
                                              self.senders())


class AuthenticationCheck(HeaderCheck):
    """``inbound-authentication``: DKIM and DMARC of one SMTP session's
    messages. ``checks()`` gives the ``InboundChecks`` in force;
    ``spf_results`` what the inbound policy found."""

    # it reads the body; the header values come with their leading space,
    # as in the message, so that the header verified is the one signed
    skipped = (NO_HELO | NO_RCPT | NO_HEADER_REPLY | NO_UNKNOWN | NO_DATA
               | HEADER_LEADING_SPACE)
    actions = ADD_HEADERS | CHANGE_HEADERS

    def __init__(self, checks, spf_results):
        super().__init__()
        self.checks = checks
        self.spf_results = spf_results
        self.sender = ''
        self.lines = []          # (name, value as received)
        self.chunks = []


    def connect(self, address, port):
        super().connect(address, port)
        checks = self.checks()
        if greylisting.whitelisted_client(checks.trusted, address):
            return ACCEPT
        return None

    def mail(self, macros):
        self.sender = macros.get('mail_addr', '')
        return None

    def header(self, name, value):
        self.lines.append((name, value))
        super().header(name, value.strip())

    def end_of_headers(self):
        return None

    def body(self, chunk):
        self.chunks.append(chunk)

    def reset(self):
        super().reset()
        self.lines, self.chunks, self.sender = [], [], ''

    def message(self):
        header = b''.join(
            b'%s:%s\r\n' % (name.encode('utf-8', 'surrogateescape'),
                            value.replace('\r\n', '\n').replace(
                                '\n', '\r\n').encode('utf-8',
                                                      'surrogateescape'))
            for name, value in self.lines)
        return header + b'\r\n' + b''.join(self.chunks)

    def end_of_body(self):
        checks = self.checks()
        try:
            return self.authenticate(checks)
        except Exception as e:   # a check that breaks must not refuse mail
            checks.log({'client_address': self.client[0],
                        'sender': self.sender},
                       'authentication check error, mail let through: %r'
                       % e)
            return [], None

    def authenticate(self, checks):
        """``(changes, refusal)`` of the message (see ``end_of_body``)."""
        authenticator = checks.authenticator
        authserv_id = checks.config.get('receiver') or 'localhost'
        changes = self.removals(authserv_id)
        spf = self.spf_results.get(*self.client)
        spf_domain = None
        if spf is not None:
            spf_domain = dmarc.domain_of_sender(spf[1])
        dkim = authenticator.dkim(self.message()) if authenticator else []
        verdict = None
        if checks.config.get('dmarc', {}).get('enable', True) and \
                authenticator is not None:
            passed = [d for result, d, _ in dkim if result == 'pass']
            verdict = dmarc.strictest([
                dmarc.evaluate(domain, authenticator.dmarc_record,
                               (spf[0] if spf else 'none', spf_domain),
                               passed)
                for domain in dmarc.author_domains(self.froms)])
        refusal = dmarc.refusal(verdict)
        if refusal:
            checks.log({'client_address': self.client[0],
                        'sender': self.sender},
                       'DMARC %s of %s, refused' % (verdict.disposition,
                                                   verdict.domain))
            return [], refusal
        # with HEADER_LEADING_SPACE, the values it adds carry their space
        # too (Postfix writes "name:" then the value as it is)
        changes.append(('insert', 'Authentication-Results',
                        ' ' + dmarc.authentication_results(
                            authserv_id, spf and (spf[0], spf_domain), dkim,
                            verdict)))
        if verdict is not None and verdict.disposition == 'quarantine':
            changes.append(('insert', dmarc.QUARANTINE_HEADER,
                            ' %s (p=%s)' % (verdict.domain, verdict.policy)))
        return changes, None

    def removals(self, authserv_id):
        """The header lines the message came with that only this node may
        write: its own Authentication-Results, the quarantine mark."""
        changes, seen = [], collections.Counter()
        for name, value in self.lines:
            key = name.lower()
            seen[key] += 1
            if key == dmarc.QUARANTINE_HEADER.lower() or (
                    key == 'authentication-results'
                    and dmarc.authserv_id_of(value) == authserv_id.lower()):
                changes.append(('remove', name, seen[key]))
        return changes


class Shared:
    """What the services of one daemon share: the outbound policy's
    ``identities`` and the inbound policy's ``spf`` results, each by SMTP
    session, and each configuration file's ``ConfigFile`` (the inbound
    policy's and its milter's are the same)."""

    def __init__(self):
        self.identities = Identities()
        self.spf = Identities()
        self.configs = {}

    def config(self, path, make, **kw):
        if path not in self.configs:
            self.configs[path] = ConfigFile(path, make, **kw)
        return self.configs[path]


def outbound_policy(config_path, shared):
    """``new_policy`` of the outbound socket: one for every connection (it
    keeps nothing between requests); what it finds goes to
    ``shared.identities``."""
    config = ConfigFile(config_path, lambda config: config)

    def decide(request):
        current = config()
        mine = identified_domains(request, current['domains'])
        shared.identities.record(request, mine)
        return sender_action(request, mine,
                             {d['name'] for d in current['domains']},
                             set(current.get('sent-outside', ())))
    return lambda: decide


def inbound_policy(config_path, shared):
    """``new_policy`` of the inbound socket: one ``Inbound`` per
    connection."""
    checks = shared.config(config_path, InboundChecks)
    return lambda: Inbound(checks, shared.spf)


def inbound_authentication_milter(config_path, shared):
    checks = shared.config(config_path, InboundChecks)
    return lambda: AuthenticationCheck(checks, shared.spf)


def outbound_header_milter(config_path, shared):
    hosted = ConfigFile(config_path, lambda config: {
        d['name'].lower() for d in config['domains']})
    return lambda: RelayHeaderCheck(shared.identities, hosted)


def submission_header_milter(senders_path, shared):
    senders = ConfigFile(senders_path, lambda senders: senders,
                         read=accounts.read_senders)
    return lambda: SubmissionHeaderCheck(senders)


class SRSMap:
    """``srs``: the socketmap's ``forward`` and ``reverse`` maps."""

    def __init__(self, config):
        self.domain = config['domain']
        self.hosted = {d.lower() for d in config['hosted']}
        self.secret = files.secret(config['secret-file']).encode()

    def lookup(self, name, key):
        local, _, domain = key.rpartition('@')
        if not local:       # Postfix asks @domain too: never rewritten
            return None
        if name == 'forward':
            if srs.leaves_rewritten(key, self.hosted):
                return srs.forward(key, self.domain, self.secret)
            return None
        if name == 'reverse':
            if domain.lower() in self.hosted:
                return srs.reverse(key, self.secret)
            return None
        raise ValueError('no map %r (forward, reverse)' % name)


def srs_map(config_path, shared):
    """``new_policy`` of the srs socketmap: the lookup of the configuration
    in force."""
    maps = ConfigFile(config_path, SRSMap)
    return lambda: lambda name, key: maps().lookup(name, key)


# mode -> (the maker of new_policy, the connection handler)
POLICIES = {'outbound': (outbound_policy, PolicyConnection),
            'inbound': (inbound_policy, PolicyConnection),
            'inbound-authentication': (inbound_authentication_milter,
                                       MilterConnection),
            'outbound-header': (outbound_header_milter, MilterConnection),
            'submission-header': (submission_header_milter,
                                  MilterConnection),
            'srs': (srs_map, SocketmapConnection)}


def servers(argv):
    """The ``PolicyServer`` of each ``MODE SOCKET CONFIG`` of ``argv``."""
    if not argv or len(argv) % 3:
        raise SystemExit('usage: python -m recipes.programs.relay_policy MODE SOCKET '
                         'CONFIG [MODE SOCKET CONFIG]... (MODE: %s)'
                         % ', '.join(POLICIES))
    shared = Shared()
    found = []
    for i in range(0, len(argv), 3):
        mode, path, config_path = argv[i:i + 3]
        if mode == 'greylist-peers':
            found.append(greylist_peer_server(path, config_path, shared))
            continue
        if mode not in POLICIES:
            raise SystemExit('unknown policy %r: %s' % (
                mode, ', '.join(list(POLICIES) + ['greylist-peers'])))
        make, handler = POLICIES[mode]
        found.append(PolicyServer(path, make(config_path, shared),
                                  handler))
    return found


def greylist_peer_server(address, config_path, shared):
    """The ``PeerServer`` of ``[ADDRESS]:PORT``, whose notices go to the
    greylisting of the inbound configuration in force."""
    host, _, port = address.rpartition(':')
    checks = shared.config(config_path, InboundChecks)
    return PeerServer(host.strip('[]'), int(port),
                      lambda: checks().peer_addresses(),
                      lambda key, first: checks().learn(key, first))


def main(argv=None):
    listening = servers(sys.argv[1:] if argv is None else argv)
    for server in listening[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print('policies on %s' % ', '.join(str(s.server_address) for s in listening),
          file=sys.stderr, flush=True)
    listening[0].serve_forever()


if __name__ == '__main__':
    main()
