#!/bin/bash
# Sets everything up (scripts/setup.sh, through sudo when not root), then
# runs a command as root, the embedded SlapOS node's administrator (slapgrid
# runs as root and drops to the software user and to each partition's user,
# as on a SlapOS node), from $SLAPOS_MAIL_ROOT/src, with the virtual
# environment's Python first in PATH:
#   bash scripts/run.sh python -m pytest tests
#   bash scripts/run.sh --no-setup COMMAND...   without the set-up (what an
#        earlier one set up); nothing to do when there was none (exit 0,
#        saying so)
# The command's exit code is this script's.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SCRIPT")")
ROOT=${SLAPOS_MAIL_ROOT:-/srv/slapos-mail}
SETUP=yes
if [ "${1:-}" = --no-setup ]; then
  SETUP=no
  shift
  if [ ! -x "$ROOT/venv/bin/python" ] || [ ! -d "$ROOT/src" ]; then
    echo "nothing set up in $ROOT: nothing to do"
    exit 0
  fi
fi
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 \
    || { echo "error: $0 needs root and sudo is not installed" >&2; exit 1; }
  # Without a terminal there is nobody to type a password: fail instead.
  [ -t 0 ] && SUDO=(sudo) || SUDO=(sudo -n)
  exec "${SUDO[@]}" env SLAPOS_MAIL_ROOT="$ROOT" \
    ${SLAPOS_MAIL_PROXY_PORT:+SLAPOS_MAIL_PROXY_PORT=$SLAPOS_MAIL_PROXY_PORT} \
    ${SLAPOS_MAIL_IPV6_PREFIX:+SLAPOS_MAIL_IPV6_PREFIX=$SLAPOS_MAIL_IPV6_PREFIX} \
    ${SNAPPYMAIL_ARCHIVE:+SNAPPYMAIL_ARCHIVE=$SNAPPYMAIL_ARCHIVE} \
    ${DEMO_STARTED:+DEMO_STARTED=$DEMO_STARTED} \
    bash "$SCRIPT" $( [ "$SETUP" = no ] && echo --no-setup ) "$@"
fi
export SLAPOS_MAIL_ROOT=$ROOT
[ "$SETUP" = no ] || bash "$REPO/scripts/setup.sh"
cd "$ROOT/src"
exec env SLAPOS_MAIL_ROOT="$ROOT" \
  SLAPOS_MAIL_PROXY_PORT="${SLAPOS_MAIL_PROXY_PORT:-40000}" \
  SLAPOS_MAIL_IPV6_PREFIX="${SLAPOS_MAIL_IPV6_PREFIX:-fd6d:6169:6c00}" \
  PATH="$ROOT/venv/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" "$@"
