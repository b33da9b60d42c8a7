"""The Python package of the SlapOS mail bundle: its buildout recipes and
the plain-Python logic behind them (``import recipes``)."""
from setuptools import find_packages, setup

setup(
    name='slapos.mailbundle',
    version='0.1.0',
    description='Buildout recipes and logic of the SlapOS mail bundle '
                '(mail-server, mail-server-relay)',
    packages=find_packages(include=['recipes', 'recipes.*']),
    include_package_data=True,
    python_requires='>=3.9',
    install_requires=['jsonschema', 'libpass', 'jinja2', 'pyspf', 'dnspython'],
    entry_points={
        'zc.buildout': [
            'slapconfiguration = recipes.instance.slapconfiguration:Recipe',
            'switch-softwaretype = '
            'recipes.instance.switch_softwaretype:Recipe',
            'certificate = recipes.instance.certificates:Recipe',
            'custom-certificate = recipes.instance.certificates:CustomRecipe',
            'smarthost-passwords = '
            'recipes.instance.smarthost_passwords:Recipe',
            'accounts = recipes.instance.accounts:Recipe',
            'request = recipes.instance.request:Recipe',
            'reload = recipes.instance.reload:Recipe',
            'publish = recipes.instance.publish:Recipe',
            'publish-shared = recipes.instance.publish:SharedRecipe',
            'outbound = recipes.instance.outbound:Recipe',
            'relay-domains = recipes.instance.relay_cluster:Domains',
            'relay-publications = recipes.instance.relay_cluster:Publications',
            'dkim-keys = recipes.instance.dkim:Recipe',
            'webmail = recipes.instance.webmail:Recipe',
            'autoconfig = recipes.instance.autoconfig:Recipe',
            'profile-files = recipes.software.profile_files:Recipe',
            'optional-archive = recipes.software.optional_archive:Recipe',
        ],
    },
)
