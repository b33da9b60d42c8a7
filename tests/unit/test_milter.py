"""The milter protocol as the header checks speak it
(``recipes.programs.milter``), packet by packet."""
import io
import struct

import pytest

from recipes.programs import milter


class Check:
    def __init__(self):
        self.events = []

    def connect(self, address, port):
        self.events.append(('connect', address, port))

    def mail(self, macros):
        self.events.append(('mail', macros.get('auth_authen')))
        return None if macros.get('auth_authen') else milter.ACCEPT

    def header(self, name, value):
        self.events.append(('header', name, value))

    def end_of_headers(self):
        return '550 5.7.1 no' if ('header', 'From', 'bad') in self.events \
            else None

    def reset(self):
        self.events.append(('reset',))


def test_packets_round_trip_and_bad_ones_are_refused():
    stream = io.BytesIO(milter.packet(milter.HEADER, b'From\0a@b\0'))
    assert milter.read_packet(stream) == (milter.HEADER, b'From\0a@b\0')
    assert milter.read_packet(stream) is None        # the end
    with pytest.raises(milter.ProtocolError):        # cut short
        milter.read_packet(io.BytesIO(b'\0\0\0\x05L'))
    with pytest.raises(milter.ProtocolError):        # absurdly long
        milter.read_packet(io.BytesIO(struct.pack('!I', 1 << 30) + b'L'))


def test_a_session_answers_each_stage():
    checks = []

    def new_check():
        checks.append(Check())
        return checks[-1]
    session = milter.Session(new_check)
    reply = session.answer(milter.NEGOTIATE,
                           struct.pack('!III', 6, 0x1ff, 0x1fffff))
    assert reply[4:5] == milter.NEGOTIATE
    assert struct.unpack('!III', reply[5:]) == (6, 0, milter.SKIPPED)
    assert session.answer(milter.CONNECT, b'h\x006\x10\x92fd00::7\0') == \
        milter.packet(milter.CONTINUE)
    assert checks[-1].events[0] == ('connect', 'fd00::7', 4242)
    assert session.answer(milter.MACRO,
                          b'M{auth_authen}\0alice\0{mail_addr}\0a@x\0') is None
    assert session.answer(milter.MAIL, b'<a@x>\0') == \
        milter.packet(milter.CONTINUE)
    # no reply to a header line when Postfix offered to skip it
    assert session.answer(milter.HEADER, b'From\0bad\0') is None
    assert session.answer(milter.END_OF_HEADERS, b'') == milter.packet(
        milter.REPLY_CODE, b'550 5.7.1 no\0')
    assert session.answer(milter.ABORT, b'') is None
    # steps it asked to skip, sent anyway, go on
    for command in (milter.HELO, milter.RCPT, milter.DATA, milter.BODY,
                    milter.UNKNOWN):
        assert session.answer(command, b'x\0') == \
            milter.packet(milter.CONTINUE)
    # a new SMTP session over the same connection gets a new check
    assert session.answer(milter.QUIT_NEW_CONNECTION, b'') is None
    assert len(checks) == 2 and session.macros == {}
    assert session.answer(milter.MAIL, b'<a@x>\0') == \
        milter.packet(milter.ACCEPT)
    with pytest.raises(EOFError):
        session.answer(milter.QUIT, b'')


def test_without_the_offer_each_header_gets_its_reply():
    session = milter.Session(Check)
    session.answer(milter.NEGOTIATE, struct.pack('!III', 6, 0x1ff,
                                                 milter.NO_BODY))
    assert session.answer(milter.HEADER, b'Subject\0x\0') == \
        milter.packet(milter.CONTINUE)
    with pytest.raises(milter.ProtocolError):
        session.answer(milter.NEGOTIATE, b'\0\0')
