"""What a partition's monitor publishes and whom its web server lets in, as
upstream's ``stack/monitor`` does (``monitor-publish``): the monitor's base
URL, and the setup URL that opens upstream's monitor web app on this
monitor's feeds with its credentials."""
import re
import urllib.parse

# upstream's: the web app an operator opens monitor-setup-url in, the
# monitor's port and user (stack/monitor's monitor-instance-parameter)
INTERFACE_URL = 'https://monitor.app.officejs.com/#page=ojsm_landing'
PORT = 8196
USERNAME = 'admin'


def base_url(ipv6, port=PORT):
    """``monitor-base-url``: the monitor's web server, on the partition's
    IPv6 address (upstream's ``monitor-httpd-conf-parameter:url``)."""
    return 'https://[%s]:%s' % (ipv6, port)


def feeds_url(base):
    """The OPML list of the monitor's RSS feeds: what the web app reads."""
    return base + '/public/feeds'


def setup_url(interface_url, base, username, password):
    """``monitor-setup-url``: the web app's URL given the feeds and the
    credentials, written as upstream's (its URI template
    ``{&url,username,password}``, expanded then unquoted): scripts written
    for upstream find each value after its ``&name=``. The values must not
    hold ``&`` nor ``#``."""
    values = (('url', feeds_url(base)), ('username', username),
              ('password', password))
    for name, value in values:
        if re.search('[&#\\s]', value):
            raise ValueError('the monitor %s %r cannot be given in the setup '
                             'URL' % (name, value))
    return interface_url + ''.join('&%s=%s' % item for item in values)


def cors_origin(interface_url):
    """The regular expression (for Apache's ``SetEnvIf Origin``) of the
    origins allowed to read the monitor from a browser: the web app's host
    and its subdomains, over HTTP(S)."""
    host = urllib.parse.urlsplit(interface_url.split('#')[0]).hostname
    if not host:
        raise ValueError('monitor interface URL without a host: %r'
                         % interface_url)
    return '^https?://(.+\\.)?%s$' % re.escape(host)
