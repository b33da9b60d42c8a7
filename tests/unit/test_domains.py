from recipes import domains


def shared(reference, name, host='fd00::2'):
    return {'reference': reference,
            'parameters': {'name': name, 'mail-server-host': host}}


def test_first_claim_wins_and_second_claimant_gets_an_error():
    accepted, errors = domains.accept([
        shared('first', 'example.com', 'fd00::2'),
        shared('second', 'Example.COM', 'fd00::3'),
        shared('other', 'example.org', 'fd00::4'),
    ])
    assert [(d['reference'], d['name'], d['mail-server-host'])
            for d in accepted] == [('first', 'example.com', 'fd00::2'),
                                   ('other', 'example.org', 'fd00::4')]
    assert list(errors) == ['second']
    assert 'example.com' in errors['second']
    assert 'already claimed' in errors['second']


def test_nothing_claimed():
    assert domains.accept([]) == ([], {})
