"""What the end-to-end tests, the render tests and the demo share: where the
software releases are, and small clients that talk to the deployed daemons
as a user would."""
import base64
import contextlib
import email
import functools
import grp
import http.client
import http.cookiejar
import imaplib
import json
import os
import pathlib
import pwd
import random
import re
import smtplib
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

from recipes.promises import unverified_tls
from tests.dns_server import DNSServer
from tests.harness import IPV6_RANGE, partition_ipv6

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAIL_SERVER = str(ROOT / 'software' / 'mail-server' / 'software.cfg')
RELAY = str(ROOT / 'software' / 'mail-server-relay' / 'software.cfg')


# TLS that accepts the partitions' self-signed certificates
insecure_tls = unverified_tls

# A client of this machine connects from a partition's address (a node's
# own, when it connects to that node), which a relay node greylists as it
# does any outside client: where greylisting is not what a test shows, its
# relay configuration whitelists the machine's clients (the tests' and the
# demo's stand-ins for the Internet's senders).
MACHINE_CLIENTS = {'whitelist-clients': [IPV6_RANGE]}


def text_message(sender, recipients, subject, body='Hello.\n', headers=''):
    """A plain message from ``sender`` to ``recipients``."""
    return ('From: %s\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s'
            % (sender, ', '.join(recipients), subject, headers, body))


def send(host, port, sender, recipients, subject, body='Hello.\n',
         starttls=False, headers=''):
    message = text_message(sender, recipients, subject, body, headers)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        if starttls:
            smtp.starttls(context=insecure_tls())
        smtp.sendmail(sender, recipients, message)


def send_retrying(host, port, sender, recipients, message, helo=None,
                  timeout=180):
    """Sends ``message`` as an Internet MTA does: a recipient greylisted
    (450 "retry in N seconds") is tried again after the delay, in a new
    session, until ``timeout``. Returns how many tries it took."""
    deadline = time.time() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            with smtplib.SMTP(host, int(port), timeout=60) as smtp:
                smtp.ehlo(helo or 'mta.example.net')
                smtp.sendmail(sender, recipients, message)
            return tries
        except smtplib.SMTPRecipientsRefused as refused:
            codes = {code for code, _ in refused.recipients.values()}
            texts = b' '.join(text for _, text in refused.recipients.values())
            if codes != {450} or b'Greylisted' not in texts or \
                    time.time() > deadline:
                raise
            found = re.search(rb'retry in (\d+) seconds', texts)
            time.sleep(int(found.group(1)) + 1 if found else 5)


def wait_for(predicate, what, timeout=60):
    """The first true value of ``predicate()``, asked every second; an
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError('%s: not after %ss' % (what, timeout))
        time.sleep(1)


def listening(host, port):
    """Whether something accepts connections on ``host``, ``port``."""
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def imaps_find(host, port, user, password, subject, timeout=60):
    """The message whose Subject is ``subject`` in the INBOX, read over IMAPS;
    waits up to ``timeout`` seconds for it to arrive."""
    deadline = time.time() + timeout
    while True:
        with imaplib.IMAP4_SSL(host, int(port),
                               ssl_context=insecure_tls()) as imap:
            imap.login(user, password)
            imap.select('INBOX')
            _, found = imap.search(None, 'SUBJECT', '"%s"' % subject)
            if found[0]:
                _, data = imap.fetch(found[0].split()[-1], '(RFC822)')
                return data[0][1].decode()
        if time.time() > deadline:
            raise AssertionError('no message %r for %s after %ss'
                                 % (subject, user, timeout))
        time.sleep(0.2)


def imaps_subjects(host, port, user, password, folder='INBOX'):
    with imaplib.IMAP4_SSL(host, int(port), ssl_context=insecure_tls()) as imap:
        imap.login(user, password)
        typ, _ = imap.select('"%s"' % folder)
        assert typ == 'OK', folder
        _, found = imap.search(None, 'ALL')
        subjects = []
        for number in found[0].split():
            _, data = imap.fetch(number, '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
            subjects.append(email.message_from_bytes(data[0][1])['Subject'])
        return subjects


class ManageSieve:
    """Just enough of RFC 5804: STARTTLS, AUTHENTICATE PLAIN, PUTSCRIPT,
    SETACTIVE."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.file = self.sock.makefile('rb')
        self.response()

    def response(self):
        lines = []
        while True:
            line = self.file.readline().decode()
            if not line:
                raise AssertionError('ManageSieve closed: %r' % lines)
            lines.append(line.rstrip('\r\n'))
            if line.startswith(('OK', 'NO', 'BYE')):
                return lines

    def command(self, text):
        self.sock.sendall(text.encode() + b'\r\n')
        return self.response()

    def starttls(self):
        assert self.command('STARTTLS')[-1].startswith('OK')
        self.sock = insecure_tls().wrap_socket(self.sock)
        self.file = self.sock.makefile('rb')
        self.response()  # capabilities again

    def login(self, user, password):
        token = base64.b64encode(('\0%s\0%s' % (user, password)).encode())
        return self.command('AUTHENTICATE "PLAIN" "%s"' % token.decode())[-1]

    def putscript(self, name, script):
        data = script.encode()
        return self.command('PUTSCRIPT "%s" {%d+}\r\n%s' % (
            name, len(data), script))[-1]

    def close(self):
        self.sock.close()


def sieve_activate(host, port, user, password, name, script):
    """Over ManageSieve, as ``user``: upload the script ``name`` and make it
    the active one (``script`` None: no script is active any more).
    Returns the answer to PUTSCRIPT (``OK``...)."""
    sieve = ManageSieve(host, port)
    try:
        sieve.starttls()
        assert sieve.login(user, password).startswith('OK')
        if script is None:
            assert sieve.command('SETACTIVE ""')[-1].startswith('OK')
            return 'OK'
        answer = sieve.putscript(name, script.replace('\n', '\r\n'))
        if answer.startswith('OK'):
            assert sieve.command('SETACTIVE "%s"' % name)[-1].startswith('OK')
        return answer
    finally:
        sieve.close()


def sieve_file_into(host, port, user, password, folder, subject_tag):
    """Over ManageSieve, as ``user``: upload and activate a script that
    files mail whose subject contains ``subject_tag`` into ``folder``."""
    script = ('require "fileinto";\n'
              'if header :contains "subject" "%s" {\n'
              '  fileinto "%s";\n}\n' % (subject_tag, folder))
    assert sieve_activate(host, port, user, password, folder.lower(),
                          script).startswith('OK')


def http_request(url, method='GET', body=None, headers=None):
    """``(status, headers, text)`` of one HTTP(S) request, as a browser
    would send it; HTTPS accepts the self-signed certificates; redirects are
    not followed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == 'https':
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=30, context=insecure_tls())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                                timeout=30)
    path = (parts.path or '/') + ('?' + parts.query if parts.query else '')
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (response.status, dict(response.getheaders()),
                response.read().decode('utf-8', 'replace'))
    finally:
        connection.close()


class _HTTPSFrom(urllib.request.HTTPSHandler):
    """HTTPS that accepts the self-signed certificates, from the address
    ``source`` (the machine's choice when None)."""

    def __init__(self, source=None):
        super().__init__(context=insecure_tls())
        self.source = source

    def https_open(self, request):
        return self.do_open(functools.partial(
            http.client.HTTPSConnection,
            source_address=(self.source, 0) if self.source else None),
            request, context=insecure_tls())


class SnappymailSession:
    """A Snappymail session as its page keeps one: the cookies, and the
    CSRF token (X-SM-Token) from AppData, renewed by the login; from the
    address ``source`` when given."""

    def __init__(self, url, source=None, timeout=60):
        self.url = url
        self.timeout = timeout
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            _HTTPSFrom(source))
        with self.opener.open(url + '?/AppData/0/%d/' % random.randrange(
                10 ** 9), timeout=self.timeout) as response:
            self.token = json.load(response)['System']['token']

    def __call__(self, action, **parameters):
        body = json.dumps(dict(parameters, Action=action)).encode()
        with self.opener.open(urllib.request.Request(
                self.url + '?/Json/&q[]=/0/', data=body, headers={
                    'Content-Type': 'application/json',
                    'X-SM-Token': self.token}), timeout=self.timeout) \
                as response:
            answer = json.load(response)
        result = answer.get('Result')
        if isinstance(result, dict) and 'System' in result:
            self.token = result['System']['token']
        return answer

    def login(self, email, password):
        answer = self('Login', Email=email, Password=password)
        assert answer.get('Result'), answer
        return answer


def post_form(url, **fields):
    """A form-encoded POST, as an HTML form sends it."""
    return http_request(url, 'POST', urllib.parse.urlencode(fields),
                        {'Content-Type': 'application/x-www-form-urlencoded'})


def smtp_submit(host, port, user, password, sender, recipients, subject,
                body='Hello.\n', implicit_tls=False, headers=''):
    """Send as a logged-in user: submission (STARTTLS) or, with
    ``implicit_tls``, SMTPS."""
    message = ('From: %s\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s'
               % (sender, ', '.join(recipients), subject, headers, body))
    if implicit_tls:
        smtp = smtplib.SMTP_SSL(host, int(port), timeout=30,
                                context=insecure_tls())
    else:
        smtp = smtplib.SMTP(host, int(port), timeout=30)
    with smtp:
        if not implicit_tls:
            smtp.starttls(context=insecure_tls())
        smtp.login(user, password)
        smtp.sendmail(sender, recipients, message)


def buildout_records(slapos):
    """The text of every record buildout keeps in the partitions
    (``.installed*.cfg``: each part's options, kept on disk): no secret may
    be found there."""
    import glob
    found = {}
    for path in glob.glob(os.path.join(slapos.base_directory, 'inst', '*',
                                       '.installed*.cfg')):
        with open(path) as f:
            found[path] = f.read()
    assert found, 'no buildout record in %s' % slapos.base_directory
    return found


def assert_no_secret_in_records(slapos, secrets, expected):
    """None of ``secrets`` is in a buildout record, where ``expected`` (a
    value that is no secret) is: the right records were read."""
    records = buildout_records(slapos)
    assert any(expected in text for text in records.values()), expected
    for secret in secrets:
        assert secret, 'an empty secret proves nothing'
        leaks = [path for path, text in records.items() if secret in text]
        assert not leaks, 'a secret (%s...) is recorded in %s' % (
            secret[:3], leaks)


def software_binary(slapos, component, *path):
    """A file of a component of the built software releases, where their
    ``components.cfg`` puts it (a shared part of the node, for Postfix):
    ``software_binary(slapos, 'postfix', 'sbin', 'postqueue')``."""
    import configparser
    import glob
    for cfg in sorted(glob.glob(os.path.join(
            slapos.base_directory, 'soft', '*', 'components.cfg'))):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(cfg)
        if parser.has_option(component, 'location'):
            candidate = os.path.join(parser.get(component, 'location'), *path)
            if os.path.exists(candidate):
                return candidate
    raise AssertionError('%s of no software release built in %s' % (
        os.path.join(component, *path), slapos.base_directory))


def postfix(slapos, partition, command, *args, check=True):
    """A Postfix command (``postqueue``, ``postconf``, ``postfix``...) on a
    partition's Postfix, as the partition's user runs it; the completed
    process, its output as text."""
    return slapos.run(partition, [
        software_binary(slapos, 'postfix', 'sbin', command), '-c',
        os.path.join(partition, 'etc', 'postfix')] + list(args),
        capture_output=True, text=True, check=check)


def postfix_queue(slapos, partition):
    """The messages in a partition's Postfix queue (``postqueue -j``)."""
    return [json.loads(line) for line in postfix(
        slapos, partition, 'postqueue', '-j').stdout.splitlines()
        if line.strip()]


def hand_over(slapos, partition, directory):
    """A copy of ``directory`` in the partition's ``srv``, its user's, as an
    operator puts a snapshot where the partition's user reads it
    (docs/operations.md); returns its path."""
    user = slapos.partition_user(partition)
    copy = os.path.join(partition, 'srv', 'handed-over-%s' % uuid.uuid4().hex)
    subprocess.run(['rsync', '-aH', '--chown=%s:%s' % (user, grp.getgrgid(
        pwd.getpwnam(user).pw_gid).gr_name), directory + '/', copy + '/'],
        check=True)
    return copy


def word_list(slapos, partition, address):
    """``(spam, ham)`` message counts of a user's bogofilter word list
    (``bogoutil -d``, as the partition's user: bogofilter's database takes
    a lock beside it), ``None`` when the user has none."""
    local, domain = address.split('@')
    path = os.path.join(partition, 'srv', 'mail', domain, local,
                        '.bogofilter', 'wordlist.db')
    if not os.path.exists(path):
        return None
    dump = slapos.run(partition, ['bogoutil', '-d', path], check=True,
                      capture_output=True, text=True).stdout
    for line in dump.splitlines():
        if line.startswith('.MSG_COUNT '):
            return tuple(int(n) for n in line.split()[1:3])
    return 0, 0


def rcpt_code(smtp, sender, recipient):
    """The reply code to MAIL FROM ``sender``, or else to RCPT TO
    ``recipient``: 2xx means the server would take the message. The client
    greets first, as every client does (again after STARTTLS, RFC 3207)."""
    smtp.ehlo_or_helo_if_needed()
    code, _ = smtp.mail(sender)
    if code >= 400:
        return code
    return smtp.rcpt(recipient)[0]


class PasswordNotSet(AssertionError):
    """The password page refused (``status``), or the account has no
    setup link (``status`` None: once its password is set, an account is
    published without one)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def set_password(slapos, reference, password, password_url):
    """Sets an account's password as its owner would: open the setup link
    the account shared instance ``reference`` got, then send the password
    page's form with its address and one-time token. Returns the
    address."""
    published = slapos.connection_parameters(MAIL_SERVER, reference,
                                             shared=True)
    if 'setup-url' not in published:
        raise PasswordNotSet('account %s got no setup-url: %s'
                             % (reference, published))
    status, _, text = http_request(published['setup-url'])
    if status != 200:
        raise AssertionError('setup link of %s: %s %s'
                             % (reference, status, text[:200]))
    status, _, text = post_form(password_url, user=published['address'],
                                token=published['token'], password=password)
    if status != 200:
        raise PasswordNotSet('password page for %s: %s %s' % (
            published['address'], status, text[:200]), status)
    return published['address']


def imaps_login_works(host, port, user, password):
    try:
        with imaplib.IMAP4_SSL(host, int(port),
                               ssl_context=insecure_tls()) as imap:
            imap.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False


# -- the reference topology (issue 5): what scripts/demo.py deploys and
# tests/e2e/test_paths.py checks, with one function so that they cannot
# drift apart ---------------------------------------------------------------
MAIL1, MAIL2 = 'mail1.example.com', 'mail2.example.com'
BACKENDS = {'mail1': MAIL1, 'mail2': MAIL2}      # instance reference -> domain
# account shared instance reference -> (address, backend reference)
ACCOUNTS = {'alice': ('alice@' + MAIL1, 'mail1'),
            'bob': ('bob@' + MAIL1, 'mail1'),
            'charlie': ('charlie@' + MAIL2, 'mail2')}
RELAY_FQDN = 'relay1.example.com'
RELAY_INBOUND_PORT = 10025
# the stand-in third-party smarthost (tests/smarthost.py), on an address of
# the prefix that no partition uses, STARTTLS port
SMARTHOST_HOST = partition_ipv6(31)
SMARTHOST_PORT = 10587
# the stand-in DNS server (tests/dns_server.py) the relay asks
# (nameservers), on another free address: mail2's MX points at the relay
# node, which verifies the domain; mail1 is exempt, its mail leaving
# through the smarthost (proxy-map)
DNS_HOST = partition_ipv6(29)
DNS_PORT = 10053
REFERENCE_MX = {MAIL2: RELAY_FQDN}
# the fifth path: a domain whose mail goes to an application's HTTPS API
# (the stand-in tests/http_api.py, on another free address), which answers
# through the relay's submission port
API_DOMAIN = 'in.example.com'
API_HOST = partition_ipv6(25)
API_PORT = 8443


def mx_dns(mx, port=0):
    """The stand-in DNS server a relay cluster of the tests asks (its
    ``nameservers``), at ``DNS_HOST``: the MX of each domain of ``mx``
    (``{domain: node fqdn}``) points at that node, any other name does not
    exist. A context manager."""
    return DNSServer(DNS_HOST, {(domain, 'MX'): ['10 %s.' % fqdn]
                                for domain, fqdn in mx.items()}, port=port)
OUTSIDE_SENDER = 'etienne@hotmail.com'
OUTSIDE_RECIPIENT = 'david@gmail.com'


@contextlib.contextmanager
def reference_smarthost(directory, login):
    """The stand-in smarthost of the reference topology, keeping what it
    receives in ``directory`` and accepting ``login`` (user, password)."""
    from tests.smarthost import Smarthost
    with Smarthost(SMARTHOST_HOST, directory, dict([login]),
                   starttls_port=SMARTHOST_PORT) as server:
        yield server


def reference_fixtures(login):
    """The module fixtures ``smarthost`` (``reference_smarthost`` accepting
    ``login``) and ``dns`` (``mx_dns`` of ``REFERENCE_MX``) of a module that
    deploys the reference topology: ``smarthost, dns =
    reference_fixtures(LOGIN)``."""
    import pytest

    @pytest.fixture(scope='module')
    def smarthost(tmp_path_factory):
        with reference_smarthost(str(tmp_path_factory.mktemp('smarthost')),
                                 login) as server:
            yield server

    @pytest.fixture(scope='module')
    def dns():
        with mx_dns(REFERENCE_MX, DNS_PORT) as server:
            yield server
    return smarthost, dns


@contextlib.contextmanager
def _quietly(what):
    yield


def deploy_reference_topology(slapos, smarthost_login, passwords,
                              step=_quietly, rebuild=True, restart=False,
                              backend_parameters=None, api=None,
                              aliases=None, smarthost_tls=None, nodes=1,
                              computers=None, relay_config=None,
                              passwords_set=False):
    """Deploys the reference topology of ../shared/interface.md in
    ``slapos`` (started): a relay cluster of one node, whose proxy-map
    sends mail1's mail through the smarthost at ``SMARTHOST_HOST`` with
    ``smarthost_login`` (user, password), verifying its certificate as
    ``smarthost_tls`` says (the stand-in's ``Smarthost.tls``: its test
    CA), and which asks the DNS server at
    ``DNS_HOST`` (``mx_dns(REFERENCE_MX, DNS_PORT)``, which the caller
    serves) to verify mail2;
    a backend for each of ``BACKENDS``, requested with its domain alone:
    it orders its domain from the relay found as ``urn:slapos:mail-relay``
    (``inbound-relay``'s default); the ``ACCOUNTS`` ordered as shared
    instances, with
    ``passwords`` (address -> password) set through their setup links
    (when a link was used already, by an earlier run, the password must
    log in). Requests are the same each time, so on a deployment left by
    an earlier run it only starts what is stopped.
    ``step(what)`` is a context manager around each long step; with
    ``rebuild``, buildout runs again on built software releases; with
    ``restart``, every partition is processed again, which starts the
    services of a deployment that was stopped. ``backend_parameters`` are
    added to both backends' parameters. With ``api`` (a
    tests.http_api.HttpApi, started), ``API_DOMAIN`` is ordered from the
    relay with its ``http-endpoint`` (the proxy-map's smarthost sends its
    mail out, which exempts it from domain verification) and a login to
    answer with (``authentication: password``). ``aliases``
    (``{reference: (alias, destinations, backend reference)}``) are
    ordered with the accounts. The cluster has ``nodes`` nodes (``node1``,
    ``node2``...: ``relay_fqdn(i)``); ``computers`` (``{node name or backend
    reference: computer id}``, each computer started by
    ``slapos.add_computer``) places them as ``sla`` does, the cluster and
    the rest staying on the first computer; ``relay_config`` is added to
    the cluster's ``default-relay-config``. With ``passwords_set``, an
    earlier run set the passwords: they are not set again."""
    computers = computers or {}
    with step('building the software releases (Postfix is compiled the '
              'first time)' if rebuild else 'checking the software releases'):
        slapos.supply(MAIL_SERVER)
        slapos.supply(RELAY)
        slapos.wait_software(force=rebuild)
    user, password = smarthost_login
    slapos.request(RELAY, 'relay', 'cluster', {
        'topology': {'node%d' % i: dict(
            {'fqdn': relay_fqdn(i)},
            **({'sla': {'computer_guid': computers['node%d' % i]}}
               if 'node%d' % i in computers else {}))
            for i in range(1, nodes + 1)},
        'default-relay-config': dict(
            {'greylisting': MACHINE_CLIENTS}, **dict(relay_config or {}, **{
            'nameservers': ['[%s]:%d' % (DNS_HOST, DNS_PORT)],
            'proxy-map': {'smarthost': dict({
                'host': SMARTHOST_HOST, 'port': SMARTHOST_PORT,
                'user': user, 'password': password,
                'domains': [MAIL1, API_DOMAIN]},
                **({'tls': smarthost_tls} if smarthost_tls else {}))}}))})
    if api is not None:
        slapos.request(RELAY, 'domain-' + API_DOMAIN, 'cluster', {
            'name': API_DOMAIN, 'http-endpoint': api.url,
            'http-token': api.token, 'http-ca-certificate': api.ca_certificate,
            'authentication': 'password'}, shared=True)
    partitions = {}
    for reference, domain in BACKENDS.items():
        partitions[reference] = slapos.request(
            MAIL_SERVER, reference, 'default', dict(
                {'mail-domains': [domain]},
                **(backend_parameters or {})),
            computer_guid=computers.get(reference)).getId()
    for reference, (address, backend) in ACCOUNTS.items():
        # on the partition of its backend (by default, a shared instance
        # goes to the first partition of its software type)
        slapos.request(MAIL_SERVER, reference, 'default',
                       {'address': address}, shared=True,
                       instance_guid=partitions[backend],
                       computer_guid=computers.get(backend))
    for reference, (alias, destinations, backend) in (aliases or {}).items():
        slapos.request(MAIL_SERVER, reference, 'default',
                       {'alias': alias, 'destinations': destinations},
                       shared=True, instance_guid=partitions[backend],
                       computer_guid=computers.get(backend))
    with step('instantiating the relay cluster, its node, the backends '
              'and the accounts'):
        slapos.wait_instance(max_retry=8, max_passes=8, force=restart)
    backends = {reference: slapos.connection_parameters(MAIL_SERVER,
                                                        reference)
                for reference in BACKENDS}
    relay = slapos.connection_parameters(RELAY, 'relay', 'cluster')
    node = relay['relay-hosts'][0]
    assert len(relay['relay-hosts']) == nodes, relay
    if not passwords_set:
        with step('setting the passwords through the setup links'):
            set_reference_passwords(slapos, backends, passwords)
    return {'relay': relay, 'node': node, 'backends': backends,
            'api-domain': slapos.connection_parameters(
                RELAY, 'domain-' + API_DOMAIN, 'cluster', shared=True)
            if api is not None else None,
            'partitions': {reference: slapos.partition_of_address(
                               b['imap-smtp-ipv6'])
                           for reference, b in backends.items()},
            'node-partition': slapos.partition_of_address(node),
            # every node, in the order of the topology (node1 first)
            'nodes': relay['relay-hosts'],
            'node-partitions': [slapos.partition_of_address(address)
                                for address in relay['relay-hosts']]}


def relay_fqdn(i):
    """The fqdn of node ``i`` of the reference topology's cluster."""
    return 'relay%d.example.com' % i


def set_reference_passwords(slapos, backends, passwords):
    """The ``ACCOUNTS``' passwords set through their setup links (when a
    link was used already, by an earlier run, the password must log in)."""
    for reference, (address, backend) in ACCOUNTS.items():
        b = backends[backend]
        try:
            set_password(slapos, reference, passwords[address],
                         b['password-url'])
        except PasswordNotSet as refused:
            # the link was used (403) or is gone (None): by an earlier
            # run, with this password (not tried first: Dovecot slows
            # down the logins of an address that failed one)
            if refused.status not in (403, None) or \
                    not imaps_login_works(b['imap-smtp-ipv6'],
                                          b['imaps-port'], address,
                                          passwords[address]):
                raise


def backend_of(address):
    return [b for a, b in ACCOUNTS.values() if a == address][0]


# path -> (sender, recipient, how it goes)
PATHS = {
    1: ('alice@' + MAIL1, 'bob@' + MAIL1,
        'submission on backend 1, delivered locally'),
    2: ('alice@' + MAIL1, 'charlie@' + MAIL2,
        'backend 1, relay, backend 2'),
    3: ('alice@' + MAIL1, OUTSIDE_RECIPIENT,
        'backend 1, relay, third-party smarthost'),
    4: (OUTSIDE_SENDER, 'alice@' + MAIL1,
        'relay inbound port, routed by domain to backend 1'),
    5: (OUTSIDE_SENDER, 'support@' + API_DOMAIN,
        'relay inbound port, POSTed to the API; its reply through the '
        'relay to the smarthost'),
}


def move_mail(topology, passwords, smarthost, path, timeout=60, api=None):
    """Sends a message along mail path ``path`` (1 to 5, ``PATHS``) as its
    sender would, and waits for it where it must arrive: the recipient's
    INBOX read over IMAPS, the store of ``smarthost`` (a
    tests.smarthost.Smarthost, started or not), or for path 5 the store
    of ``api`` (a tests.http_api.HttpApi, started or not), then the
    application's reply in the smarthost's store. Returns ``(where it was
    found, the message, seconds)``: for path 5, the reply."""
    sender, recipient, _ = PATHS[path]
    subject = 'path %d %s' % (path, uuid.uuid4())
    start = time.time()
    if path == 5:
        return answer_through_the_api(topology, smarthost, api, subject,
                                      timeout)
    if sender == OUTSIDE_SENDER:
        # as the Internet's MTA does: again after greylisting's delay (a
        # deployment that whitelists the machine's clients has none)
        send_retrying(topology['node'], RELAY_INBOUND_PORT, sender,
                      [recipient], text_message(sender, [recipient], subject))
    else:
        b = topology['backends'][backend_of(sender)]
        smtp_submit(b['imap-smtp-ipv6'], b['submission-port'], sender,
                    passwords[sender], sender, [recipient], subject)
    if recipient == OUTSIDE_RECIPIENT:
        _, data = smarthost.wait_for(
            lambda metadata, data: subject.encode() in data, timeout)
        return ('the smarthost\'s store (%s)' % smarthost.directory,
                data.decode(), time.time() - start)
    backend = backend_of(recipient)
    b = topology['backends'][backend]
    found = imaps_find(b['imap-smtp-ipv6'], b['imaps-port'], recipient,
                       passwords[recipient], subject, timeout)
    return ('INBOX of %s over IMAPS on %s' % (recipient, backend), found,
            time.time() - start)


def answer_through_the_api(topology, smarthost, api, subject, timeout):
    """Path 5: a stranger writes to ``API_DOMAIN``; the application, which
    receives it from the API, answers through the relay's submission port
    with the login its domain was published."""
    sender, recipient, _ = PATHS[5]
    start = time.time()
    send(topology['node'], RELAY_INBOUND_PORT, sender, [recipient], subject)
    headers, _ = api.wait_for(lambda h, data: subject.encode() in data,
                              timeout)
    published = topology['api-domain']
    smtp_submit(topology['node'], published['outbound-smtp-port'],
                published['outbound-user'], published['outbound-password'],
                headers['X-Envelope-To'], [headers['X-Envelope-From']],
                'Re: ' + subject, body='Your ticket is open.\n')
    _, data = smarthost.wait_for(
        lambda metadata, data: ('Re: ' + subject).encode() in data, timeout)
    return ('the API\'s store (%s), its reply in the smarthost\'s store'
            % api.directory, data.decode(), time.time() - start)


def spf_result(records, client, sender, helo='mx.example'):
    """The SPF result (``pass``, ``fail``...) of mail from ``sender``
    received from the address ``client``, as a destination would check it,
    with DNS answering the TXT ``records`` (``{name: value}``) alone."""
    from recipes.clients.resolver import SPFChecker
    with DNSServer(DNS_HOST, {(name, 'TXT'): [value]
                              for name, value in records.items()}) as dns:
        return SPFChecker([dns.address], 5).check(client, sender, helo)[0]
