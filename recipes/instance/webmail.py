"""Recipe: Snappymail on a mail backend (what it is told:
``recipes.decisions.webmail``; its files: ``recipes.stores.webmail``), with
the plugin that changes an account's password through
``recipes.stores.accounts``."""
import os

from ..decisions.webmail import ADMIN_LOGIN, settings
from ..stores.webmail import (admin_password, install_plugin,
                              release_version, write_application_ini,
                              write_document_root, write_domains)


class Recipe:
    """Recipe: Snappymail's configuration, document root and connection
    parameters.

      [webmail]
      recipe = slapos.mailbundle:webmail
      release = <software>/parts/snappymail     ([snappymail:location])
      document-root = ...    data-directory = ...
      domains = example.com example.org
      host = <the backend's IPv6>
      imaps-port = 10993     smtps-port = 10465     sieve-port = 14190
      php = ${php-fpm:php}
      log-directory = ${directory:log}
      admin-password-file = ${directory:etc}/webmail-admin-password
      plugin = ${profile:templates}/web/snappymail-plugin
      change-password-command = <python> -m recipes.programs.passwords change-password
                                ${accounts:directory}
      url = https://[...]:8081/
      password-url = https://[...]:8081/password

    Exports ``available`` (true/false), ``password-url`` and, when the
    software release has Snappymail, ``webmail-url`` and
    ``webmail-admin-url``; ``-publish`` lists these connection parameters,
    and ``-files`` the admin password's file (generated on install), for a
    ``slapos.mailbundle:publish`` section's ``-extends``; ``promise-url``:
    the webmail URL, or the password page without it."""

    def __init__(self, buildout, name, options):
        self.options = options
        self.version = release_version(options['release'])
        options['available'] = 'true' if self.version else 'false'
        published = ['password-url']
        options['promise-url'] = options['password-url']
        if self.version:
            options['webmail-url'] = options['url']
            options['webmail-admin-url'] = options['url'] + '?' + ADMIN_LOGIN
            options['promise-url'] = options['url']
            published += ['webmail-url', 'webmail-admin-url']
            options['-files'] = 'webmail-admin-password %s' % options[
                'admin-password-file']
        options['-publish'] = ' '.join(published)

    def install(self):
        o = self.options
        domains = o['domains'].split()
        data = o['data-directory']
        os.makedirs(data, mode=0o700, exist_ok=True)
        _, password_hash = admin_password(o['admin-password-file'], o['php'])
        write_application_ini(data, settings(domains, password_hash,
                                             o['log-directory']))
        write_domains(data, domains, o['host'], o['imaps-port'],
                      o['smtps-port'], o['sieve-port'])
        install_plugin(data, o['plugin'], o['change-password-command'].split())
        write_document_root(o['document-root'], o['release'], data,
                            self.version)
        return []

    update = install
