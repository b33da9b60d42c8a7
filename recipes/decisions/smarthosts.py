"""The third-party smarthosts that mail leaves through: a relay node's
``proxy-map`` (each smarthost used for the sender domains it lists) and a
backend's ``outbound-relay`` with ``host``.

A relay configuration (``relay_configs``) is a node's ``config`` merged
over the cluster's ``default-relay-config``."""
from .names import normalise_domain


def relay_configs(parameters):
    """``{parameter path: relay configuration}`` of each node of the cluster
    parameters, ``config`` merged over ``default-relay-config``."""
    default = parameters.get('default-relay-config', {})
    configs = {}
    for name, node in parameters['topology'].items():
        own = node.get('config', {})
        path = ('topology.%s.config' % name if 'proxy-map' in own
                else 'default-relay-config')
        configs[path] = dict(default, **own)
    return configs


def listings(proxy_map):
    """``[(domain, [the names of the smarthosts that list it])]`` of a
    proxy-map, in name order: a domain's mail leaves through the first
    (upstream keeps the first too); a domain listed twice is an error of
    the configuration (``conflicts``), never a map that Postfix refuses."""
    found = {}
    for name, entry in sorted(proxy_map.items()):
        for domain in entry.get('domains', ()):
            names = found.setdefault(normalise_domain(domain), [])
            if name not in names:
                names.append(name)
    return list(found.items())


def conflicts(relay_configs):
    """``[(domain, error)]`` for each domain listed under more than one
    smarthost of a relay configuration, in upstream's words (its users
    match them): one error for each smarthost after the first that lists
    it. ``relay_configs`` maps the parameter path of each configuration
    (``topology.node1.config``) to it."""
    found = []
    for _, config in sorted(relay_configs.items()):
        for domain, names in listings(config.get('proxy-map', {})):
            for later in names[1:]:
                error = ("Domain '%s' appears in multiple proxies: '%s' and "
                         "'%s'. Each domain must appear in only one proxy's "
                         "domains list." % (domain, names[0], later))
                if (domain, error) not in found:
                    found.append((domain, error))
    return found


def hosts_for(domain, relay_configs):
    """The hosts of the smarthosts that send ``domain``'s mail, on any node."""
    hosts = []
    for _, config in sorted(relay_configs.items()):
        proxy_map = config.get('proxy-map', {})
        for listed, names in listings(proxy_map):
            if listed == domain and proxy_map[names[0]]['host'] not in hosts:
                hosts.append(proxy_map[names[0]]['host'])
    return hosts


def proxied_domains(relay_configs):
    """The domains some smarthost of a relay configuration lists (exempt
    from domain verification: the cluster's operator vouched for them)."""
    return {normalise_domain(domain)
            for config in relay_configs.values()
            for entry in config.get('proxy-map', {}).values()
            for domain in entry.get('domains', ())}


def transport(port):
    """A relay node's Postfix transport for a smarthost port: implicit TLS
    (``smtp_tls_wrappermode``) on the submissions port, 465, and on ports
    that end in 465 (10465, as unprivileged test set-ups use); STARTTLS,
    required, elsewhere."""
    return 'smarthost-tls' if str(port).endswith('465') else 'smarthost'


def nexthop(host, port):
    """Postfix next hop ``[host]:port`` (no MX lookup)."""
    return '[%s]:%s' % (host, port)


def sender_transports(proxy_map):
    """``[(sender domain, transport:[host]:port)]`` of a node's proxy-map,
    each domain once (its first smarthost)."""
    routes = []
    for domain, names in listings(proxy_map):
        smarthost = proxy_map[names[0]]
        routes.append((domain, '%s:%s' % (
            transport(smarthost['port']),
            nexthop(smarthost['host'], smarthost['port']))))
    return routes


def relay_password_map(proxy_map):
    """A relay node's Postfix SASL password map, sender-dependent
    (``smtp_sender_dependent_authentication``): ``@domain user:password``
    for each domain whose (first) smarthost has a login."""
    lines = ['# @sender domain -> user:password of its smarthost']
    for domain, names in listings(proxy_map):
        smarthost = proxy_map[names[0]]
        if smarthost.get('user'):
            lines.append('@%s %s:%s' % (domain, smarthost['user'],
                                        smarthost.get('password', '')))
    return '\n'.join(lines) + '\n'


def backend_password_map(outbound):
    """A backend's Postfix SASL password map for the smarthost of its
    ``outbound-relay``: ``[host]:port user:password``."""
    if not (outbound.get('enable') and outbound.get('host')
            and outbound.get('user')):
        return ''
    return '%s %s:%s\n' % (nexthop(outbound['host'], outbound['port']),
                           outbound['user'], outbound['password'])
