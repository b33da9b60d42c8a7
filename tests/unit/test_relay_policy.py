import io

from recipes import relay_policy

DOMAINS = [
    {'name': 'ip.example', 'authentication': 'none',
     'mail-server-host': 'fd00::2'},
    {'name': 'login.example', 'authentication': 'password',
     'mail-server-host': 'fd00::3', 'outbound-user': 'login.example'},
    {'name': 'cert.example', 'authentication': 'fingerprint',
     'mail-server-host': 'fd00::4', 'fingerprints': ['AB:CD:EF']},
]


def action(**request):
    return relay_policy.outbound_action(request, DOMAINS)


def test_each_backend_is_recognised_as_its_domain_says():
    assert action(client_address='fd00:0::2', sender='a@ip.example') == 'OK'
    assert action(client_address='fd00::9', sasl_username='login.example',
                  sender='a@login.example') == 'OK'
    assert action(client_address='fd00::9', ccert_fingerprint='ab:cd:ef',
                  sender='a@cert.example') == 'OK'


def test_a_stranger_is_refused():
    assert action(client_address='fd00::9', sender='a@ip.example') \
        .startswith('REJECT 5.7.1 Relay access denied')
    # the right address is not enough for a domain that wants a login
    assert action(client_address='fd00::3', sender='a@login.example') \
        .startswith('REJECT')
    assert action(client_address='fd00::9', ccert_fingerprint='00:11',
                  sender='a@cert.example').startswith('REJECT')


def test_a_backend_cannot_send_as_another_backends_domain():
    answer = action(client_address='fd00::9', sasl_username='login.example',
                    sender='a@ip.example')
    assert answer.startswith('REJECT') and 'ip.example' in answer
    assert action(client_address='fd00::2', sender='') == 'OK'


def test_the_policy_protocol():
    out = io.StringIO()
    relay_policy.serve(
        lambda r: 'OK' if r.get('sender') == 'a@b' else 'REJECT',
        io.StringIO('request=smtpd_access_policy\nsender=a@b\n\n'
                    'sender=x@y\n\n'), out)
    assert out.getvalue() == 'action=OK\n\naction=REJECT\n\n'
