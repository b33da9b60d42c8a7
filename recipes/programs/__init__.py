"""What runs in a partition, each ``python -m recipes.programs.<name>``:
see ``recipes``."""
