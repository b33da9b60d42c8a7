"""Buildout recipes of the SlapOS mail bundle and the logic behind them.

Each recipe module is a thin adapter from buildout options to plain
functions that are unit tested without buildout (see DEVELOPERS.md)."""
