"""The Sender Rewriting Scheme of mail that leaves again
(recipes/decisions/srs.py), its socketmap (recipes/programs/socketmap.py)
and the policy daemon's srs maps."""
import io
import json
import os
import socket

import pytest

from recipes.decisions import srs
from recipes.programs import milter, socketmap
from tests.unit.test_relay_policy import (  # noqa: F401 (fixtures)
    DOMAINS, MTA, Client, serving, sockets, write_json)

SECRET = b'a secret of the backend'
NOW = 1_800_000_000
DAY = 86400


def test_a_forwarded_sender_becomes_ours_and_comes_back():
    address = srs.forward('etienne@hotmail.example', 'mail1.example', SECRET,
                          NOW)
    local, _, domain = address.rpartition('@')
    assert domain == 'mail1.example'
    assert local.startswith('SRS0=') and local.endswith(
        '=hotmail.example=etienne')
    assert srs.is_srs(address)
    assert srs.reverse(address, SECRET, NOW) == 'etienne@hotmail.example'
    # mail systems may change the case of a local part
    assert srs.reverse(address.lower(), SECRET, NOW) == \
        'etienne@hotmail.example'
    assert srs.reverse(address.upper(), SECRET, NOW) == \
        'ETIENNE@HOTMAIL.EXAMPLE'


def test_a_local_part_with_separators_survives():
    original = 'first=last+tag@lists.example'
    address = srs.forward(original, 'mail1.example', SECRET, NOW)
    assert srs.reverse(address, SECRET, NOW) == original


def test_nobody_else_makes_an_address_we_would_send_on():
    address = srs.forward('etienne@hotmail.example', 'mail1.example', SECRET,
                          NOW)
    # another secret, a changed hash, another original sender
    assert srs.reverse(address, b'another secret', NOW) is None
    local, _, domain = address.rpartition('@')
    _, given, stamp, host, user = local.split('=', 4)
    forged = 'SRS0=%s=%s=%s=%s@%s' % (given, stamp, host, 'boss', domain)
    assert srs.reverse(forged, SECRET, NOW) is None
    other = 'A' if given[0] != 'A' else 'B'
    assert srs.reverse('SRS0=%s%s=%s=%s=%s@%s' % (
        other, given[1:], stamp, host, user, domain), SECRET, NOW) is None
    for broken in ('SRS0=@mail1.example', 'SRS0=abc=def@mail1.example',
                   'SRS0==AA=h=u@mail1.example', 'SRS1=x@mail1.example',
                   'etienne@mail1.example', 'SRS0=ABCDEF=!!=h=u@m.example'):
        assert srs.reverse(broken, SECRET, NOW) is None, broken


def test_an_address_expires_after_21_days():
    address = srs.forward('etienne@hotmail.example', 'mail1.example', SECRET,
                          NOW)
    assert srs.reverse(address, SECRET, NOW + 21 * DAY) is not None
    assert srs.reverse(address, SECRET, NOW + 22 * DAY) is None
    # the stamp wraps around after 1024 days
    later = NOW + 1024 * DAY * 3
    assert srs.reverse(srs.forward('a@b.example', 'm.example', SECRET, later),
                       SECRET, later + DAY) == 'a@b.example'


def test_another_forwarders_address_is_wrapped_and_unwrapped():
    theirs = srs.forward('etienne@hotmail.example', 'fwd.example',
                         b'their secret', NOW)
    ours = srs.forward(theirs, 'mail1.example', SECRET, NOW)
    assert ours.startswith('SRS1=') and ours.endswith('@mail1.example')
    assert '=fwd.example==' in ours
    # its bounce goes back to the other forwarder, which unwraps its own
    back = srs.reverse(ours, SECRET, NOW)
    assert back.lower() == theirs.lower()
    assert srs.reverse(back, b'their secret', NOW) == \
        'etienne@hotmail.example'
    # an SRS1 address forwarded again keeps its first forwarder
    again = srs.forward(ours, 'other.example', b'other secret', NOW)
    assert again.startswith('SRS1=') and '=fwd.example==' in again
    assert srs.reverse(again, b'other secret', NOW).lower() == theirs.lower()


def test_what_leaves_rewritten():
    hosted = {'mail1.example'}
    assert srs.leaves_rewritten('etienne@hotmail.example', hosted)
    assert not srs.leaves_rewritten('alice@mail1.example', hosted)
    assert not srs.leaves_rewritten('Alice@MAIL1.example', hosted)
    assert not srs.leaves_rewritten('', hosted)


# -- the socketmap protocol --------------------------------------------------
def test_netstrings_round_trip_and_bad_ones_are_refused():
    assert socketmap.netstring('OK a@b') == b'6:OK a@b,'
    stream = io.BytesIO(b'9:forward x,7:reverse,')
    assert socketmap.read_netstring(stream) == 'forward x'
    assert socketmap.read_netstring(stream) == 'reverse'
    assert socketmap.read_netstring(stream) is None
    for bad in (b'x:abc,', b'5:abc,', b'3:abc;', b'99999999:', b'3:ab'):
        with pytest.raises(socketmap.ProtocolError):
            socketmap.read_netstring(io.BytesIO(bad))


def test_answers():
    def lookup(name, key):
        if name == 'broken':
            raise ValueError('no such\nmap')
        return {'a': 'b'}.get(key)
    assert socketmap.answer(lookup, 'm a') == 'OK b'
    assert socketmap.answer(lookup, 'm z') == 'NOTFOUND '
    assert socketmap.answer(lookup, 'broken a') == 'TEMP no such map'


# -- the daemon's srs maps, as Postfix asks them ---------------------------------
def ask(path, *requests):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        stream = s.makefile('rb')
        answers = []
        for request in requests:
            s.sendall(socketmap.netstring(request))
            answers.append(socketmap.read_netstring(stream))
        return answers


def test_the_daemon_rewrites_and_reverses(tmp_path, serving):
    config = tmp_path / 'srs.json'
    secret = tmp_path / 'srs-secret'
    config.write_text(json.dumps({
        'domain': 'mail1.example', 'hosted': ['mail1.example', 'mail2.example'],
        'secret-file': str(secret)}))
    path = serving('srs', config)
    forwarded, own, null_domain, bad_map = ask(
        path, 'forward etienne@hotmail.example', 'forward alice@mail2.example',
        'forward @hotmail.example', 'other etienne@hotmail.example')
    assert forwarded.startswith('OK SRS0=')
    assert forwarded.endswith('=hotmail.example=etienne@mail1.example')
    # our own senders, and Postfix's @domain lookups, are left alone
    assert own == 'NOTFOUND ' and null_domain == 'NOTFOUND '
    assert bad_map.startswith('TEMP ')
    # the secret was made at the first start, private
    assert os.stat(secret).st_mode & 0o777 == 0o600
    address = forwarded[3:]
    back, unknown, forged, elsewhere = ask(
        path, 'reverse ' + address.lower(), 'reverse alice@mail1.example',
        'reverse ' + address.replace('=etienne@', '=boss@'),
        'reverse ' + address.replace('@mail1.example', '@outside.example'))
    assert back == 'OK etienne@hotmail.example'
    assert unknown == forged == elsewhere == 'NOTFOUND '


def test_the_relay_lets_a_backend_forward_an_authors_from(tmp_path, serving):
    """A message a backend forwards (its envelope sender an SRS address of
    the backend's domain) keeps its author's From, unless that is of a
    domain another backend of the relay owns."""
    config = tmp_path / 'outbound.json'
    write_json(config, {'domains': DOMAINS})
    policy = Client(serving('outbound', config))
    mta = MTA(serving('outbound-header', config))
    forwarded = srs.forward('etienne@hotmail.example', 'ip.example', SECRET)
    try:
        mta.negotiate()
        mta.connect('fd00::2', 4242)
        assert policy.ask(client_address='fd00::2', client_port='4242',
                          sender=forwarded) == 'OK'
        assert mta.mail(forwarded, mail_addr=forwarded) == (milter.CONTINUE,
                                                             b'')
        assert mta.headers(('From', 'Etienne <etienne@hotmail.example>')) \
            == (milter.CONTINUE, b'')
        mta.send(milter.END_OF_BODY)
        assert mta.reply() == (milter.ACCEPT, b'')
        # not another backend's domain: its key would sign it
        mta.mail(forwarded, mail_addr=forwarded)
        command, text = mta.headers(('From', 'boss@login.example'))
        assert command == milter.REPLY_CODE and text.startswith(
            b'550 5.7.1 <boss@login.example>')
        mta.send(milter.ABORT)
        # without an SRS sender, the author's From is refused as before
        mta.mail('a@ip.example', mail_addr='a@ip.example')
        command, _ = mta.headers(('From', 'etienne@hotmail.example'))
        assert command == milter.REPLY_CODE
        mta.send(milter.ABORT)
        # a bounce sent on to the original sender of a forward shows the
        # destination's mailer daemon
        mta.mail('', mail_addr='')
        assert mta.headers(('From', 'MAILER-DAEMON@gmail.example')) == (
            milter.CONTINUE, b'')
        mta.send(milter.END_OF_BODY)
        assert mta.reply() == (milter.ACCEPT, b'')
        # a Sieve redirect of one of its users (Pigeonhole's header), from
        # that user's address
        mta.mail('a@ip.example', mail_addr='a@ip.example')
        assert mta.headers(('X-Sieve-Redirected-From', 'a@ip.example'),
                           ('From', 'etienne@hotmail.example')) == (
            milter.CONTINUE, b'')
        mta.send(milter.END_OF_BODY)
        assert mta.reply() == (milter.ACCEPT, b'')
        # ... not another backend's user, nor kept for the next message
        mta.mail('a@ip.example', mail_addr='a@ip.example')
        command, _ = mta.headers(('X-Sieve-Redirected-From', 'x@login.example'),
                                 ('From', 'etienne@hotmail.example'))
        assert command == milter.REPLY_CODE
        mta.send(milter.ABORT)
        mta.mail('a@ip.example', mail_addr='a@ip.example')
        command, _ = mta.headers(('From', 'etienne@hotmail.example'))
        assert command == milter.REPLY_CODE
        mta.send(milter.ABORT)
        # nor does another domain's SRS address make it a forward
        other = srs.forward('etienne@hotmail.example', 'login.example',
                            SECRET)
        mta.mail(other, mail_addr=other)
        command, _ = mta.headers(('From', 'etienne@hotmail.example'))
        assert command == milter.REPLY_CODE
    finally:
        mta.close()
        policy.close()
