"""The Python package of the SlapOS mail bundle: its buildout recipes and
the plain-Python logic behind them (``import recipes``)."""
import os

from setuptools import find_packages, setup

# The version a software release pins (software/stack/versions.cfg): a
# release to a package index bumps both.
VERSION = '0.1.0'

setup(
    name='slapos.mailbundle',
    version=VERSION,
    description='Buildout recipes and logic of the SlapOS mail bundle '
                '(mail-server, mail-server-relay)',
    long_description=open(os.path.join(os.path.dirname(__file__),
                                       'README.md')).read(),
    long_description_content_type='text/markdown',
    license='GPL-3.0-or-later',
    # Python modules only: the profiles, templates and schemas are not in
    # the egg, a node downloads them next to the software URL it is given.
    packages=find_packages(include=['recipes', 'recipes.*']),
    python_requires='>=3.9',
    install_requires=['jsonschema', 'libpass', 'jinja2', 'pyspf',
                      'dnspython', 'dkimpy', 'dmarc', 'publicsuffixlist',
                      'zc.buildout', 'slapos.core',
                      'slapos.cookbook'],
    entry_points={
        'zc.buildout': [
            'slapconfiguration = recipes.instance.slapconfiguration:Recipe',
            'switch-softwaretype = '
            'recipes.instance.switch_softwaretype:Recipe',
            'certificate = recipes.instance.certificates:Recipe',
            'custom-certificate = recipes.instance.certificates:CustomRecipe',
            'http-delivery = recipes.instance.http_delivery:Recipe',
            'smarthost-passwords = '
            'recipes.instance.smarthost_passwords:Recipe',
            'accounts = recipes.instance.accounts:Recipe',
            'request = recipes.instance.request:Recipe',
            'wait = recipes.instance.waiting:Recipe',
            'reload = recipes.instance.reload:Recipe',
            'publish = recipes.instance.publish:Recipe',
            'publish-shared = recipes.instance.publish:SharedRecipe',
            'outbound = recipes.instance.outbound:Recipe',
            'relay-domains = recipes.instance.relay_cluster:Domains',
            'relay-publications = recipes.instance.relay_cluster:Publications',
            'dkim-keys = recipes.instance.dkim:Recipe',
            'webmail = recipes.instance.webmail:Recipe',
            'autoconfig = recipes.instance.autoconfig:Recipe',
            'monitor = recipes.instance.monitor:Recipe',
        ],
    },
)
