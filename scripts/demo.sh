#!/bin/bash
# The reference topology in an embedded SlapOS, left running:
#   bash scripts/demo.sh          set up, build, deploy, move mail, print
#                                 the endpoints
#   bash scripts/demo.sh stop     stop everything the demo started
set -euo pipefail
REPO=$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")
exec bash "$REPO/scripts/as-runtime-user.sh" python scripts/demo.py "$@"
