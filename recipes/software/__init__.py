"""The buildout recipes of the software profiles: see ``recipes``."""
