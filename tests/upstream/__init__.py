"""The runner of upstream SlapOS's own test suites against this bundle's
releases (``scripts/upstream-suites.sh``; ``docs/upstream-suites.md``)."""
