"""The Python package of the SlapOS mail bundle: its buildout recipes and
the plain-Python logic behind them (``import recipes``)."""
from setuptools import setup

setup(
    name='slapos.mailbundle',
    version='0.1.0',
    description='Buildout recipes and logic of the SlapOS mail bundle '
                '(mail-server, mail-server-relay)',
    packages=['recipes'],
    include_package_data=True,
    python_requires='>=3.9',
    install_requires=['jsonschema', 'libpass', 'jinja2', 'pyspf', 'dnspython'],
    entry_points={
        'zc.buildout': [
            'slapconfiguration = recipes.slapconfiguration:Recipe',
            'switch-softwaretype = recipes.switch_softwaretype:Recipe',
            'profile-files = recipes.profile_files:Recipe',
            'certificate = recipes.certificates:Recipe',
            'custom-certificate = recipes.certificates:CustomRecipe',
            'smarthost-passwords = recipes.smarthost_passwords:Recipe',
            'accounts = recipes.accounts:Recipe',
            'request = recipes.request:Recipe',
            'reload = recipes.reload:Recipe',
            'publish-shared = recipes.publish:Recipe',
            'outbound = recipes.outbound:Recipe',
            'relay-domains = recipes.relay_cluster:Domains',
            'relay-publications = recipes.relay_cluster:Publications',
            'dkim-keys = recipes.dkim:Recipe',
            'optional-archive = recipes.optional_archive:Recipe',
            'webmail = recipes.webmail:Recipe',
            'autoconfig = recipes.autoconfig:Recipe',
        ],
    },
)
