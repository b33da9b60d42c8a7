"""Recipes: the partition's certificates (``recipes.stores.certificates``).

``certificate`` keeps the current and next self-signed pairs: it acts when
computing its options, because other sections need the fingerprints as
options: a pair is created once (the first run, a rotation) and never
changed otherwise, like the generated passwords of
``slapos.cookbook:generate.password``. ``custom-certificate`` serves a
certificate given as a parameter when it is valid.
"""
import json
import ssl

from ..stores.certificates import (RENEW_BEFORE_DAYS, SLOTS, VALIDITY_DAYS,
                                  check_custom, custom_paths, ensure,
                                  fingerprint, fingerprint_of_der,
                                  install_custom, rotation_requested,
                                  write_fingerprint_files)
from .slapconfiguration import partition_parameters


class Recipe:
    """Recipe: the partition's current and next self-signed certificates.

      [certificate]
      recipe = slapos.mailbundle:certificate
      openssl = ${openssl:openssl}
      directory = ${directory:certificates}
      common-name = mail.example.com
      validity-days =               (of each new certificate; default
                                    VALIDITY_DAYS of the store)
      renew-before-days =           rotate when the current one expires
                                    within that many days (default
                                    RENEW_BEFORE_DAYS)
      max-age-days =                (optional) rotate when the current one
                                    is older than that
      fingerprint-files =           (optional) the prefix of upstream's
                                    files (``etc/postfix/ssl/postfix``):
                                    its ``.fingerprint`` removed asks for a
                                    rotation now; they are written again

    Exports ``key`` and ``cert`` (the current pair), ``fingerprint``,
    ``next-fingerprint`` and ``fingerprints`` (JSON list: current, next).
    The files are created once and kept across runs, until a rotation."""

    def __init__(self, buildout, name, options):
        max_age = options.get('max-age-days')
        prefix = options.get('fingerprint-files')
        pairs = ensure(options['openssl'], options['directory'],
                       options['common-name'],
                       int(options.get('renew-before-days')
                           or RENEW_BEFORE_DAYS),
                       int(max_age) if max_age else None,
                       int(options.get('validity-days') or VALIDITY_DAYS),
                       rotate_now=bool(prefix) and rotation_requested(prefix))
        if prefix:
            write_fingerprint_files(prefix, pairs)
        options['key'] = pairs['current']['key']
        options['cert'] = pairs['current']['cert']
        options['fingerprint'] = pairs['current']['fingerprint']
        options['next-fingerprint'] = pairs['next']['fingerprint']
        options['fingerprints'] = json.dumps(
            [pairs[slot]['fingerprint'] for slot in SLOTS])

    def install(self):
        return []

    update = install




class CustomRecipe:
    """Recipe: serve a certificate given as a parameter, when it is valid.

      [inbound-certificate]
      recipe = slapos.mailbundle:custom-certificate
      parameter = custom-inbound-certificate   (PEM key then chain)
      openssl = ${openssl:openssl}
      directory = ${directory:certificates}
      key = ${certificate:key}                 (served otherwise)
      cert = ${certificate:cert}

    The PEM is read from the partition's parameters
    (``[slap-configuration]``), not from an option, so that the key never
    sits in buildout's records; it is checked when the options are computed
    and written on install. Exports ``key`` and ``cert`` (what to serve),
    ``custom`` (yes/no), ``fingerprint`` and ``error`` (why a given
    certificate was refused: the fallback is served meanwhile)."""

    def __init__(self, buildout, name, options):
        parameter = options['parameter']
        pem = partition_parameters(buildout).get(parameter) or ''
        options['custom'] = 'no'
        options['error'] = ''
        self.directory = options['directory']
        self.checked = None
        fingerprint_ = fingerprint(options['cert']) if not pem.strip() \
            else None
        if pem.strip():
            try:
                self.checked = check_custom(options['openssl'], pem)
            except (ValueError, OSError) as e:
                options['error'] = (
                    '%s refused: %s; the self-signed certificate is served '
                    'meanwhile' % (parameter, e))
                fingerprint_ = fingerprint(options['cert'])
        if self.checked:
            options['key'], options['cert'] = custom_paths(self.directory)
            options['custom'] = 'yes'
            fingerprint_ = fingerprint_of_der(
                ssl.PEM_cert_to_DER_cert(self.checked[1][0]))
        options['fingerprint'] = fingerprint_

    def install(self):
        if self.checked:
            install_custom(self.directory, *self.checked)
        return []

    update = install
