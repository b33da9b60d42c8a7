#!/bin/bash
# Runs the test suite: scripts/setup.sh first (through sudo when not root),
# then pytest as the runtime user from $SLAPOS_MAIL_ROOT/src, with the venv.
#   bash scripts/test.sh [pytest arguments]      (default: tests)
# The exit code is pytest's; "no tests collected" (5) counts as a failure.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SCRIPT")")
ROOT=${SLAPOS_MAIL_ROOT:-/srv/slapos-mail}
export SLAPOS_MAIL_ROOT=$ROOT

if [ "$(id -u)" -eq 0 ]; then
  bash "$REPO/scripts/setup.sh"
  RUN_USER=${SLAPOS_MAIL_USER:-slapmail}
else
  RUN_USER=${SLAPOS_MAIL_USER:-$(id -un)}
  command -v sudo >/dev/null 2>&1 \
    || { echo "test.sh: error: scripts/setup.sh needs root and sudo is not installed" >&2; exit 1; }
  [ -t 0 ] && SUDO=(sudo) || SUDO=(sudo -n)
  "${SUDO[@]}" env SLAPOS_MAIL_ROOT="$ROOT" SLAPOS_MAIL_USER="$RUN_USER" \
    bash "$REPO/scripts/setup.sh"
fi
RUN_HOME=$(getent passwd "$RUN_USER" | cut -d: -f6)

[ $# -gt 0 ] || set -- tests
cmd=(env HOME="$RUN_HOME" SLAPOS_MAIL_ROOT="$ROOT"
     "$ROOT/venv/bin/python" -m pytest -p no:cacheprovider "$@")
echo "==> running pytest as $RUN_USER in $ROOT/src: pytest $*"
cd "$ROOT/src"
rc=0
if [ "$(id -un)" = "$RUN_USER" ]; then
  "${cmd[@]}" || rc=$?
elif [ "$(id -u)" -eq 0 ]; then
  runuser -u "$RUN_USER" -- "${cmd[@]}" || rc=$?
else
  echo "test.sh: error: run it as root or as the runtime user $RUN_USER" >&2
  exit 1
fi
if [ "$rc" -eq 5 ]; then
  echo "test.sh: error: pytest collected no tests" >&2
fi
exit "$rc"
