"""Decisions over plain data, no I/O: see ``recipes``."""
