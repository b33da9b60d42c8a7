#!/bin/bash
# Sets everything up (scripts/setup.sh, through sudo when not root), then
# runs a command as the runtime user, from $SLAPOS_MAIL_ROOT/src, with the
# virtual environment's Python first in PATH:
#   bash scripts/as-runtime-user.sh python -m pytest tests
#   bash scripts/as-runtime-user.sh --no-setup COMMAND...   without the
#        set-up (what an earlier one set up); nothing to do when there was
#        none (exit 0, saying so)
# The command's exit code is this script's.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SCRIPT")")
ROOT=${SLAPOS_MAIL_ROOT:-/srv/slapos-mail}
export SLAPOS_MAIL_ROOT=$ROOT
SETUP=yes
if [ "${1:-}" = --no-setup ]; then
  SETUP=no
  shift
  if [ ! -x "$ROOT/venv/bin/python" ] || [ ! -d "$ROOT/src" ]; then
    echo "nothing set up in $ROOT: nothing to do"
    exit 0
  fi
fi

if [ "$SETUP" = no ]; then
  RUN_USER=${SLAPOS_MAIL_USER:-$( [ "$(id -u)" -eq 0 ] && echo slapmail || id -un)}
elif [ "$(id -u)" -eq 0 ]; then
  bash "$REPO/scripts/setup.sh"
  RUN_USER=${SLAPOS_MAIL_USER:-slapmail}
else
  RUN_USER=${SLAPOS_MAIL_USER:-$(id -un)}
  command -v sudo >/dev/null 2>&1 \
    || { echo "error: scripts/setup.sh needs root and sudo is not installed" >&2; exit 1; }
  [ -t 0 ] && SUDO=(sudo) || SUDO=(sudo -n)
  "${SUDO[@]}" env SLAPOS_MAIL_ROOT="$ROOT" SLAPOS_MAIL_USER="$RUN_USER" \
    SLAPOS_MAIL_IPV6_PREFIX="${SLAPOS_MAIL_IPV6_PREFIX:-fd6d:6169:6c00}" \
    bash "$REPO/scripts/setup.sh"
fi
RUN_HOME=$(getent passwd "$RUN_USER" | cut -d: -f6)

cmd=(env HOME="$RUN_HOME" SLAPOS_MAIL_ROOT="$ROOT"
     SLAPOS_MAIL_PROXY_PORT="${SLAPOS_MAIL_PROXY_PORT:-40000}"
     SLAPOS_MAIL_IPV6_PREFIX="${SLAPOS_MAIL_IPV6_PREFIX:-fd6d:6169:6c00}"
     PATH="$ROOT/venv/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" "$@")
cd "$ROOT/src"
if [ "$(id -un)" = "$RUN_USER" ]; then
  exec "${cmd[@]}"
elif [ "$(id -u)" -eq 0 ]; then
  exec runuser -u "$RUN_USER" -- "${cmd[@]}"
else
  echo "error: run it as root or as the runtime user $RUN_USER" >&2
  exit 1
fi
