"""Just enough of the milter protocol (version 6 of Sendmail's libmilter,
as Postfix speaks it: MILTER_README, src/milter/milter8.c) for a check
that reads the sender's stage and the header of each message and may
refuse it; served by the policy daemon (``recipes.programs.relay_policy``).

A packet is a 4-byte big-endian length, a command byte and its data. At
the negotiation the check asks Postfix to skip what it does not read (by
default HELO, RCPT, DATA, the body, unknown commands) and not to wait for
an answer to each header line, so that a message costs three round trips.

A check is made for each SMTP session (``new_check()``) and has:

  connect(address, port)     the SMTP client; returns ACCEPT when nothing
                             of the session is to be checked, else None
  mail(macros)               the sender's stage (macros: ``auth_authen``,
                             ``mail_addr``...); returns ACCEPT when nothing
                             of this message is to be checked, else None
  header(name, value)        each header line
  end_of_headers()           None, or the refusal: ``"550 5.7.1 text"``
  reset()                    the message is over (accepted or aborted)

and, optionally (a check that reads the body and changes the header):

  skipped                    the steps it does without (default SKIPPED)
  actions                    what it may change (ADD_HEADERS, CHANGE_HEADERS)
  body(chunk)                each chunk of the body (CRLF line ends)
  end_of_body()              ``(changes, refusal)``: the header lines to add
                             (``("add", name, value)`` at the end,
                             ``("insert", name, value)`` at the top) or
                             to remove
                             (``("remove", name, index)``, index counted
                             from 1 among the lines of that name), and
                             None or the refusal
"""
import socketserver
import struct

# commands of the MTA
ABORT, BODY, CONNECT, MACRO, END_OF_BODY, HELO, QUIT_NEW_CONNECTION, \
    HEADER, MAIL, END_OF_HEADERS, NEGOTIATE, QUIT, RCPT, DATA, UNKNOWN = (
        b'A', b'B', b'C', b'D', b'E', b'H', b'K', b'L', b'M', b'N', b'O',
        b'Q', b'R', b'T', b'U')
# replies of the filter
ACCEPT, CONTINUE, REPLY_CODE = b'a', b'c', b'y'
# modifications of the filter
ADD_HEADER, CHANGE_HEADER, INSERT_HEADER = b'h', b'm', b'i'

VERSION = 6
# the steps the check does without (SMFIP_*): Postfix skips those it offers
NO_HELO, NO_RCPT, NO_BODY, NO_HEADER_REPLY, NO_UNKNOWN, NO_DATA = (
    0x2, 0x8, 0x10, 0x80, 0x100, 0x200)
SKIPPED = NO_HELO | NO_RCPT | NO_BODY | NO_HEADER_REPLY | NO_UNKNOWN | NO_DATA
# header values with their leading space, as in the message (SMFIP_HDR_LEADSPC)
HEADER_LEADING_SPACE = 0x100000
# the changes a check may make (SMFIF_*)
ADD_HEADERS, CHANGE_HEADERS = 0x1, 0x10
# a header line, or a body chunk sent anyway (Postfix sends 64 KB at most)
MAX_PACKET = 1 << 20


class ProtocolError(Exception):
    """What the MTA sent is not the milter protocol."""


def packet(command, data=b''):
    return struct.pack('!I', len(data) + 1) + command + data


def _read(stream, size):
    data = stream.read(size)
    if len(data) < size:
        if data:
            raise ProtocolError('packet cut short')
        return None
    return data


def read_packet(stream):
    """``(command, data)`` of the next packet, or None at the end."""
    head = _read(stream, 4)
    if head is None:
        return None
    (length,) = struct.unpack('!I', head)
    if not 1 <= length <= MAX_PACKET:
        raise ProtocolError('packet of %d bytes' % length)
    data = _read(stream, length)
    if data is None:
        raise ProtocolError('packet cut short')
    return data[:1], data[1:]


def _text(data):
    return data.decode('utf-8', 'replace')


def change_packet(change):
    """The packet of one change of the header (see ``end_of_body``)."""
    if change[0] == 'add':
        _, name, value = change
        return packet(ADD_HEADER, name.encode() + b'\0' + value.encode()
                      + b'\0')
    if change[0] == 'insert':
        _, name, value = change
        return packet(INSERT_HEADER, struct.pack('!I', 0) + name.encode()
                      + b'\0' + value.encode() + b'\0')
    _, name, index = change          # removed: changed to no value
    return packet(CHANGE_HEADER, struct.pack('!I', index) + name.encode()
                  + b'\0\0')


class Session:
    """One connection of the MTA: an SMTP session, and the next ones it
    sends over it (``QUIT_NEW_CONNECTION``)."""

    def __init__(self, new_check):
        self.new_check = new_check
        self.check = new_check()
        self.macros = {}
        self.header_reply = True

    def answer(self, command, data):
        """The reply to one packet, or None when none is expected; raises
        EOFError at the end of the connection."""
        if command == NEGOTIATE:
            if len(data) < 12:
                raise ProtocolError('negotiation of %d bytes' % len(data))
            _, offered_actions, offered = struct.unpack('!III', data[:12])
            wanted = getattr(self.check, 'skipped', SKIPPED) & offered
            actions = getattr(self.check, 'actions', 0) & offered_actions
            self.header_reply = not wanted & NO_HEADER_REPLY
            return packet(NEGOTIATE, struct.pack('!III', VERSION, actions,
                                                 wanted))
        if command == MACRO:
            fields = data[1:].split(b'\0')
            for name, value in zip(fields[0::2], fields[1::2]):
                self.macros[_text(name).strip('{}')] = _text(value)
            return None
        if command == CONNECT:
            _, _, rest = data.partition(b'\0')
            if rest[:1] in (b'4', b'6') and len(rest) >= 3:
                (port,) = struct.unpack('!H', rest[1:3])
                address = _text(rest[3:].split(b'\0')[0])
            else:
                port, address = 0, ''
            return packet(self.check.connect(address, port) or CONTINUE)
        if command == MAIL:
            return packet(self.check.mail(dict(self.macros)) or CONTINUE)
        if command == HEADER:
            name, _, rest = data.partition(b'\0')
            self.check.header(_text(name), _text(rest.split(b'\0')[0]))
            return packet(CONTINUE) if self.header_reply else None
        if command == END_OF_HEADERS:
            refusal = self.check.end_of_headers()
            if refusal:
                return packet(REPLY_CODE, refusal.encode() + b'\0')
            return packet(CONTINUE)
        if command == BODY:
            body = getattr(self.check, 'body', None)
            if body is not None:
                body(data)
            return packet(CONTINUE)
        if command == END_OF_BODY:
            body = getattr(self.check, 'body', None)
            if data and body is not None:     # the last chunk, if any
                body(data)
            end_of_body = getattr(self.check, 'end_of_body', None)
            changes, refusal = end_of_body() if end_of_body else ([], None)
            self.check.reset()
            replies = [change_packet(change) for change in changes]
            if refusal:
                replies.append(packet(REPLY_CODE, refusal.encode() + b'\0'))
            else:
                replies.append(packet(ACCEPT))
            return b''.join(replies)
        if command == ABORT:
            self.check.reset()
            return None
        if command == QUIT_NEW_CONNECTION:
            self.check = self.new_check()
            self.macros = {}
            return None
        if command == QUIT:
            raise EOFError
        # a step it skips, sent anyway (HELO, RCPT, DATA, BODY, UNKNOWN)
        return packet(CONTINUE)


class MilterConnection(socketserver.BaseRequestHandler):
    """One connection of Postfix: ``Session`` over the socket, with the
    server's ``new_policy`` as the check's maker."""

    def handle(self):
        session = Session(self.server.new_policy)
        try:
            with self.request.makefile('rb') as stream:
                while True:
                    received = read_packet(stream)
                    if received is None:
                        return
                    reply = session.answer(*received)
                    if reply:
                        self.request.sendall(reply)
        except (EOFError, OSError, ProtocolError):
            # Postfix went away, or is not speaking the protocol: it then
            # applies milter_default_action (tempfail)
            return
