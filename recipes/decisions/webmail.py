"""What Snappymail is told on a mail backend: its IMAP, submission and Sieve
server for each hosted domain (``domain_settings``), the keys of its
``application.ini`` the instance owns (``settings``, merged into the file
by ``merge_ini``). Every key is one Snappymail 2.38 reads (the PHP file that
reads it is named where it is written); ``recipes.stores.webmail`` writes
them."""
import os
import re

PLUGIN = 'mailbundle-change-password'
ADMIN_LOGIN = 'admin'
# Snappymail's MailSo/Net/Enumerations/ConnectionSecurityType.php
NONE, SSL, STARTTLS = 0, 1, 2
# The backend's certificate is self-signed, and Snappymail connects to the
# partition's own address: nothing to verify it against. The keys are those
# of MailSo/Net/SSLContext.php (each one is set as a property).
UNVERIFIED_TLS = {
    'verify_peer': False,
    'verify_peer_name': False,
    'allow_self_signed': True,
    'SNI_enabled': False,
    'disable_compression': True,
    'security_level': 1,
}
# what Dovecot offers (auth_mechanisms), for IMAP, submission and Sieve
SASL = ['PLAIN', 'LOGIN']
# Snappymail's own default (app/domains/default.json)
DISABLED_IMAP_CAPABILITIES = ['METADATA', 'OBJECTID', 'PREVIEW', 'STATUS=SIZE']


def bracketed(host):
    """An IPv6 address as PHP's stream_socket_client() needs it."""
    return '[%s]' % host if ':' in host and not host.startswith('[') else host


def server(host, port, security, timeout):
    """The keys of fromArray() in MailSo/Net/ConnectSettings.php."""
    return {
        'host': bracketed(host),
        'port': int(port),
        'type': security,
        'timeout': timeout,
        'shortLogin': False,
        'lowerLogin': True,
        'sasl': SASL,
        'ssl': dict(UNVERIFIED_TLS),
    }


def domain_settings(host, imaps_port, smtps_port, sieve_port):
    """The content of ``domains/<domain>.json``, as fromArray() of
    RainLoop/Model/Domain.php reads it: IMAPS and SMTPS (implicit TLS,
    login = the full address) and ManageSieve (STARTTLS), all on the
    backend's address."""
    imap = server(host, imaps_port, SSL, 300)
    # fromArray() of MailSo/Imap/Settings.php
    imap.update({
        'disabled_capabilities': DISABLED_IMAP_CAPABILITIES,
        'expunge_all_on_delete': False,
        'fast_simple_search': True,
        'force_select': False,
        'message_all_headers': False,
        'message_list_limit': 10000,
        'search_filter': '',
        # the spam filter's verdict header (X-Bogosity)
        'spam_headers': 'bogofilter',
    })
    smtp = server(host, smtps_port, SSL, 60)
    # fromArray() of MailSo/Smtp/Settings.php; the sender is the login's
    # address
    smtp.update({'useAuth': True, 'setSender': False, 'usePhpMail': False,
                 'authPlainLine': False})
    sieve = server(host, sieve_port, STARTTLS, 10)
    sieve.update({'enabled': True, 'authLiteral': True})
    return {'IMAP': imap, 'SMTP': smtp, 'Sieve': sieve, 'whiteList': ''}


def settings(domains, admin_password_hash, log_directory):
    """The keys of application.ini that the instance owns (each one is in
    defaultValues() of RainLoop/Config/Application.php)."""
    return {
        'security': {
            'allow_admin_panel': True,
            'admin_login': ADMIN_LOGIN,
            'admin_password': admin_password_hash,
        },
        # the admin panel's URL: ?admin
        'admin_panel': {'key': ADMIN_LOGIN, 'allow_update': False},
        'login': {
            # "alice" alone logs in as alice@<first domain>
            'default_domain': domains[0],
            'determine_user_domain': False,
        },
        'plugins': {
            'enable': True,
            'enabled_list': PLUGIN,
        },
        # warnings and errors in the partition's log directory; passwords
        # hidden (hide_passwords is Snappymail's default, kept On)
        'logs': {
            'enable': True,
            'path': os.path.join(log_directory, ''),
            'filename': 'snappymail.log',
            'level': 4,
            'hide_passwords': True,
        },
    }


def ini_value(value):
    if isinstance(value, bool):
        return 'On' if value else 'Off'
    if isinstance(value, int):
        return str(value)
    if '"' in value or '\n' in value:
        raise ValueError('cannot write %r in application.ini' % value)
    return '"%s"' % value


KEY = re.compile(r'\s*([^;#=\s\[][^=]*?)\s*=')
HEADER = re.compile(r'\s*\[([^\]]+)\]\s*$')


def merge_ini(text, wanted):
    """``text`` (an INI file) with the keys of ``wanted`` ({section: {key:
    value}}) set, everything else (other keys, comments) kept."""
    blocks = [[None, []]]
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            blocks.append([header.group(1).strip(), [line]])
        else:
            blocks[-1][1].append(line)
    present = {name for name, _ in blocks}
    blocks += [[name, ['', '[%s]' % name]] for name in wanted
               if name not in present]
    out = []
    for name, lines in blocks:
        keys = wanted.get(name, {})
        done = set()
        kept = []
        for line in lines:
            match = KEY.match(line)
            if match and match.group(1) in keys:
                key = match.group(1)
                if key not in done:  # a key written twice: PHP takes the last
                    kept.append('%s = %s' % (key, ini_value(keys[key])))
                    done.add(key)
                continue
            kept.append(line)
        end = len(kept)
        while end > 1 and not kept[end - 1].strip():
            end -= 1
        kept[end:end] = ['%s = %s' % (key, ini_value(value))
                         for key, value in keys.items() if key not in done]
        out.extend(kept)
    return '\n'.join(out).strip('\n') + '\n'
