"""Just enough of Postfix's socketmap protocol (socketmap_table(5)) for a
lookup table served by the policy daemon (``recipes.programs.relay_policy``):
``socketmap:unix:SOCKET:NAME`` in main.cf.

Each request is a netstring ``LENGTH:NAME KEY,``; each reply a netstring
``OK VALUE``, ``NOTFOUND `` or ``TEMP REASON``. Postfix keeps the
connection for many requests. A map is made for each connection
(``new_map()``) and answers ``lookup(name, key)`` with the value, or None
when the key is not found; an exception answers ``TEMP``, so that Postfix
defers the mail rather than deciding without the map.
"""
import socketserver

MAX_REQUEST = 100000     # Postfix's own limit on a reply (socketmap.c)


class ProtocolError(Exception):
    """What the client sent is no netstring."""


def netstring(text):
    data = text.encode('utf-8', 'surrogateescape')
    return b'%d:%s,' % (len(data), data)


def read_netstring(stream):
    """The text of the next netstring of ``stream``, or None at the end."""
    length = b''
    while True:
        c = stream.read(1)
        if not c:
            if length:
                raise ProtocolError('netstring cut short')
            return None
        if c == b':':
            break
        if not c.isdigit() or len(length) > 6:
            raise ProtocolError('not a netstring length')
        length += c
    if not length or int(length) > MAX_REQUEST:
        raise ProtocolError('netstring of %s bytes' % length)
    data = stream.read(int(length) + 1)
    if len(data) != int(length) + 1 or data[-1:] != b',':
        raise ProtocolError('netstring cut short')
    return data[:-1].decode('utf-8', 'surrogateescape')


def answer(lookup, request):
    """The reply (text) to one request ``NAME KEY``."""
    name, _, key = request.partition(' ')
    try:
        value = lookup(name, key)
    except Exception as e:       # the map failed: Postfix defers
        return 'TEMP %s' % str(e)[:200].replace('\n', ' ')
    return 'NOTFOUND ' if value is None else 'OK %s' % value


class SocketmapConnection(socketserver.BaseRequestHandler):
    """One connection of a Postfix process, answered by the server's
    ``new_policy()`` (the map's ``lookup``)."""

    def handle(self):
        lookup = self.server.new_policy()
        try:
            with self.request.makefile('rb') as stream:
                while True:
                    request = read_netstring(stream)
                    if request is None:
                        return
                    self.request.sendall(netstring(answer(lookup, request)))
        except (OSError, ProtocolError):
            return
