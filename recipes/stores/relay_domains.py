"""What a relay cluster keeps between runs, kept by this module alone, in
its state directory (0700; files 0600):

  claims.json       ``{domain: reference}``: who claimed each domain first
                    (``recipes.decisions.claims``); an earlier release kept
                    ``[[reference, domain], ...]`` in claim order, read too
  credentials.json  ``{reference: {user, password, hash}}``: the outbound
                    login of each domain with ``authentication: password``
"""
import json
import os

from .files import read_json, write_atomically

CLAIMS = 'claims.json'
CREDENTIALS = 'credentials.json'


def read_claims(directory):
    claims = read_json(os.path.join(directory, CLAIMS), {})
    if isinstance(claims, list):
        ordered = {}
        for reference, name in claims:
            ordered.setdefault(name, reference)
        return ordered
    return claims


def read_credentials(directory):
    return read_json(os.path.join(directory, CREDENTIALS), {})


def credentials_path(directory):
    return os.path.join(directory, CREDENTIALS)


def write(directory, claims, credentials):
    os.makedirs(directory, mode=0o700, exist_ok=True)
    write_atomically(os.path.join(directory, CLAIMS),
                     json.dumps(claims, sort_keys=True, indent=1))
    write_atomically(os.path.join(directory, CREDENTIALS),
                     json.dumps(credentials, sort_keys=True))
