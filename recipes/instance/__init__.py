"""The buildout recipes of the instance profiles (entry points
``slapos.mailbundle:<name>`` in setup.py): see ``recipes``."""
