"""What the bundle asks other servers: see ``recipes``."""
