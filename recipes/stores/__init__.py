"""The files the bundle keeps, one module writing each: see ``recipes``."""
