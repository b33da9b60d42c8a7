#!/bin/bash
# The reference topology in an embedded SlapOS, left running:
#   bash scripts/demo.sh          set up, build, deploy (or keep what the
#                                 last run left), move mail along the five
#                                 paths, print the endpoints
#   bash scripts/demo.sh fresh    the same, deploying again from scratch
#   bash scripts/demo.sh stop     stop everything the demo started (without
#                                 setting anything up)
set -euo pipefail
REPO=$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")
export DEMO_STARTED=$(date +%s.%N)
if [ "${1:-}" = stop ]; then
  exec bash "$REPO/scripts/run.sh" --no-setup python scripts/demo.py stop
fi
echo "==> [   0 s] setting up (scripts/setup.sh)"
exec bash "$REPO/scripts/run.sh" python scripts/demo.py "$@"
