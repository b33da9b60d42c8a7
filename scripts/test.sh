#!/bin/bash
# Runs the test suite as root (the embedded node's administrator), after
# scripts/setup.sh:
#   bash scripts/test.sh [pytest arguments]      (default: tests)
# The exit code is pytest's; "no tests collected" (5) counts as a failure.
set -euo pipefail
REPO=$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")
[ $# -gt 0 ] || set -- tests
echo "==> running pytest: pytest $*"
rc=0
bash "$REPO/scripts/run.sh" python -m pytest -p no:cacheprovider "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: error: pytest collected no tests" >&2
fi
exit "$rc"
