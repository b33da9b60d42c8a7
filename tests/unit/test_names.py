"""What a domain name and an address are: the JSON schemas
(software/stack/definitions.json) and recipes/decisions/names.py agree on
the same cases."""
import json
import pathlib
import random

import jsonschema
import pytest

from recipes.decisions import names

DEFINITIONS = json.loads((pathlib.Path(__file__).resolve().parents[2] /
                          'software' / 'stack' / 'definitions.json')
                         .read_text())['$defs']

DOMAINS = {
    # name: valid?
    'example.com': True,
    'mail1.example.com': True,
    'a.b.c.d.example.org': True,
    'example.xn--p1ai': True,             # an IDN top-level domain
    'xn--bcher-kva.example': True,
    '3com.example': True,
    'a-b.example': True,
    'x' * 63 + '.example': True,
    ('a' * 61 + '.') * 4 + 'abcde': True,    # 253 characters
    ('a' * 61 + '.') * 4 + 'abcdef': False,  # 254 characters
    'x' * 64 + '.example': False,
    'example': False,                     # not fully qualified
    'example.123': False,                 # an all-digit last label
    '192.0.2.1': False,
    '-a.example': False,
    'a-.example': False,
    'a..example': False,
    '.example.com': False,
    'example.com.': False,                # absolute: normalised away first
    'Example.com': False,                 # written lower-case
    'under_score.example': False,
    'exa mple.com': False,
    '': False,
}


def schema_accepts(definition, value):
    return jsonschema.Draft202012Validator(
        DEFINITIONS[definition]).is_valid(value)


@pytest.mark.parametrize('name', sorted(DOMAINS))
def test_schema_and_python_agree_on_a_domain(name):
    assert schema_accepts('domain', name) == DOMAINS[name]
    assert names.is_domain(name) == DOMAINS[name]


def test_a_domain_is_normalised_before_it_is_judged():
    assert names.normalise_domain(' Example.COM. ') == 'example.com'
    assert names.domain_error('example.com') is None
    assert 'last label' in names.domain_error('example.123')


ADDRESSES = [
    'alice@example.com', 'Alice.Smith@Example.COM', "o'brien@example.com",
    'a+tag@example.xn--p1ai', 'x' * 64 + '@example.com',
]
REFUSED_BY_PYTHON = [
    'alice', '@example.com', 'alice@', 'al/ice@example.com',
    'al%ice@example.com', '#alice@example.com', '.alice@example.com',
    'al..ice@example.com', 'x' * 65 + '@example.com', 'alice@example',
    'alice@example.123',
]


@pytest.mark.parametrize('address', ADDRESSES)
def test_an_address_python_accepts_the_schema_accepts(address):
    normalised, why = names.normalise_address(address)
    assert why is None and normalised == address.lower()
    assert schema_accepts('address', address)


@pytest.mark.parametrize('address', REFUSED_BY_PYTHON)
def test_python_refuses_with_a_reason_what_the_schema_may_let_through(
        address):
    # the schema checks a shape only, so that the shared instance gets the
    # error of recipes.decisions.accounts (invalid_address: ...)
    normalised, why = names.normalise_address(address)
    assert normalised is None and why


def test_the_quick_path_accepts_only_what_the_rules_accept():
    """normalise_address takes the common address in one match: every
    address that match takes, the rules take too (and the rules alone
    refuse, with their reason)."""
    rng = random.Random(5)
    alphabet = "ab9-_.+=#%/!'@x"
    candidates = ADDRESSES + REFUSED_BY_PYTHON + [
        'a@b.c', 'a@1.2', 'a@b.2', 'a@b-.com', 'a@-b.com', 'a.@b.com',
        'x' * 64 + '@' + 'a' * 63 + '.com', 'x' * 65 + '@b.com',
        'a@' + '.'.join(['a' * 63] * 4) + '.com',
        'a@' + 'b' * 64 + '.com', 'a@b.' + 'c' * 64]
    for _ in range(20000):
        local = ''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        domain = ''.join(rng.choice('ab9-.') for _ in range(rng.randint(0, 8)))
        candidates.append(local + '@' + domain)
    for address in candidates:
        address = address.lower()
        normalised, why = names.normalise_address(address)
        assert (why is None) == (names.address_error(address) is None), \
            address


def test_a_catch_all():
    assert names.normalise_catch_all('@Example.COM') == ('@example.com', None)
    key, why = names.normalise_catch_all('@example')
    assert key is None and 'fully qualified' in why
