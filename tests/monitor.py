"""What an operator reads of a partition's monitor (instance-templates/
common/monitor.cfg), as upstream's monitor web app reads it: the published
URLs, the OPML list of feeds, the RSS feed of the promises, each promise's
history, the logs. Shared by the e2e tests of a backend and of a relay."""
import base64
import json
import urllib.parse
import xml.etree.ElementTree as ET

from tests.deployment import http_request, wait_for


def credentials(published):
    """``(username, password)`` from ``monitor-setup-url``, read as
    upstream's tests read it (software/kvm/test/test.py)."""
    setup = published['monitor-setup-url']
    auth = urllib.parse.parse_qs(urllib.parse.urlparse(
        'https' + setup.split('https')[2]).path)
    return auth['username'][0], auth['password'][0]


def get(url, auth=None, method='GET', headers=None):
    """``(status, headers, text)``; ``auth`` a ``(user, password)``."""
    headers = dict(headers or {})
    if auth:
        headers['Authorization'] = 'Basic ' + base64.b64encode(
            ('%s:%s' % auth).encode()).decode()
    return http_request(url, method, headers=headers)


def feed(base):
    """The RSS feed of the promises: ``{promise: (status, message)}``."""
    status, _, text = get(base + '/public/feed')
    assert status == 200, (status, text[:200])
    items = {}
    for item in ET.fromstring(text).iter('item'):
        state, _, promise = item.findtext('title').partition('] ')
        items[promise] = (state.lstrip('['),
                          (item.findtext('description') or '').strip())
    return items


def feed_shows(base, promise, state):
    """The feed once it shows ``promise`` in ``state`` (OK, ERROR)."""
    return wait_for(
        lambda: (lambda items: items if items.get(promise, ('',))[0] == state
                 else None)(feed(base)),
        'the monitor feed showing %s %s' % (promise, state), timeout=90)


def history(base, promise):
    """The states recorded of ``promise``, oldest first."""
    status, _, text = get('%s/public/%s.history.json' % (base, promise))
    assert status == 200, (status, text[:200])
    return json.loads(text)['data']


def feeds(base):
    """The OPML list of feeds (what the web app is given): the feed URLs."""
    status, _, text = get(base + '/public/feeds')
    assert status == 200, (status, text[:200])
    return [outline.get('xmlUrl') for outline in ET.fromstring(text).iter(
        'outline') if outline.get('xmlUrl')]



def published_by(slapos, partition):
    """The connection parameters a partition published (a relay node's,
    which its cluster requested), as the SlapOS master shows them on the
    instance's page."""
    name = partition.rstrip('/').rsplit('/', 1)[-1]
    for found in slapos.standalone.computer.getComputerPartitionList():
        if found.getId() == name:
            published = found.getConnectionParameterDict()
            return json.loads(published['_']) if '_' in published \
                else published
    raise AssertionError('no partition %s' % name)
