#!/bin/bash
# Runs the test suite as root (the embedded node's administrator), after
# scripts/setup.sh:
#   bash scripts/test.sh [pytest arguments]      (default: tests)
# Test modules run side by side, SLAPOS_MAIL_TEST_WORKERS at a time (default
# 3; 1: one after the other), each worker a SlapOS node of its own
# (tests/conftest.py); the software releases are built once first.
# The exit code is pytest's; "no tests collected" (5) counts as a failure.
set -euo pipefail
REPO=$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")
[ $# -gt 0 ] || set -- tests
WORKERS=${SLAPOS_MAIL_TEST_WORKERS:-3}
parallel=()
if [ "$WORKERS" -gt 1 ]; then
  echo "==> building the software releases once (python -m tests.harness build)"
  bash "$REPO/scripts/run.sh" python -m tests.harness build
  parallel=(-n "$WORKERS" --dist loadfile)
fi
echo "==> running pytest: pytest ${parallel[*]} $*"
rc=0
bash "$REPO/scripts/run.sh" python -m pytest -p no:cacheprovider "${parallel[@]}" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: error: pytest collected no tests" >&2
fi
exit "$rc"
