#!/bin/bash
# Runs upstream SlapOS's own test suites of mail-server and mail-server-relay
# (software/mail-server/test/test.py, software/mail-server-relay/test/test.py
# and test_e2e.py of a SlapOS/slapos checkout) against this bundle's
# releases, in an embedded SlapOS of their own, and prints what passed and
# failed, suite by suite (docs/upstream-suites.md):
#
#   bash scripts/upstream-suites.sh SLAPOS_CHECKOUT [all|mail-server|relay|relay-e2e] [unittest names...]
#   bash scripts/upstream-suites.sh stop      (what a run interrupted left running)
#
# e.g. bash scripts/upstream-suites.sh ~/slapos relay-e2e test_e2e.E2E.test_send_email
# As root (or through sudo): it sets the machine up with scripts/setup.sh
# for its own root and starts the stand-in DNS, then runs the suites
# (tests/upstream/runner.py) as an unprivileged system user of their own,
# smsuites (UPSTREAM_SUITES_USER), made if missing, with its home in the
# root: slapos.testing starts its own SlapOS node as the user who runs it,
# and slapgrid refuses to run partitions owned by root, so upstream's
# suites run as SlapOS's own CI runs them. The user owns what the runner
# and its node write (scratch, slapos, upstream-results, the copy of
# upstream's tests, download-cache/dist); venv, node, src and the rest of
# download-cache stay root's, which it reads.
# Its SlapOS is apart from the tests' and the demo's:
#   UPSTREAM_SUITES_ROOT   (default /srv/sm-upstream-suites)
#   UPSTREAM_SUITES_PORT   (default 42000; the software server on +1)
#   UPSTREAM_SUITES_PREFIX (default fd6d:6169:6e00; partitions ::2 and up,
#                           the stand-in DNS on ::1)
# A full run takes about 25 minutes on 2 cores. The exit code is 0 when
# every selected test passed.
set -euo pipefail
SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SCRIPT")")
export SLAPOS_MAIL_ROOT=${UPSTREAM_SUITES_ROOT:-/srv/sm-upstream-suites}
export SLAPOS_MAIL_PROXY_PORT=${UPSTREAM_SUITES_PORT:-42000}
export SLAPOS_MAIL_IPV6_PREFIX=${UPSTREAM_SUITES_PREFIX:-fd6d:6169:6e00}
ROOT=$SLAPOS_MAIL_ROOT

usage() { sed -n '2,28p' "$SCRIPT" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
if [ "$(id -u)" -ne 0 ]; then
  [ -t 0 ] && SUDO=(sudo) || SUDO=(sudo -n)
  exec "${SUDO[@]}" env UPSTREAM_SUITES_ROOT="$ROOT" \
    UPSTREAM_SUITES_PORT="$SLAPOS_MAIL_PROXY_PORT" \
    UPSTREAM_SUITES_PREFIX="$SLAPOS_MAIL_IPV6_PREFIX" \
    UPSTREAM_SUITES_TIMEOUT="${UPSTREAM_SUITES_TIMEOUT:-}" \
    ${UPSTREAM_SUITES_USER:+UPSTREAM_SUITES_USER=$UPSTREAM_SUITES_USER} \
    bash "$SCRIPT" "$@"
fi
RUN_USER=${UPSTREAM_SUITES_USER:-smsuites}
RUN_HOME=$ROOT/home
# (sudo above passes it empty when unset: the runner's default then)
[ -n "${UPSTREAM_SUITES_TIMEOUT:-}" ] || unset UPSTREAM_SUITES_TIMEOUT

# as_suites_user COMMAND...: the command as the suites' user, from
# $ROOT/src, with the virtual environment first in PATH (and the rest of
# this environment: UPSTREAM_SUITES_TIMEOUT, when set, for the runner)
as_suites_user() {
  (cd "$ROOT/src" && exec runuser -u "$RUN_USER" -- env HOME="$RUN_HOME" \
    SLAPOS_MAIL_ROOT="$ROOT" SLAPOS_MAIL_PROXY_PORT="$SLAPOS_MAIL_PROXY_PORT" \
    SLAPOS_MAIL_IPV6_PREFIX="$SLAPOS_MAIL_IPV6_PREFIX" \
    PATH="$ROOT/venv/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" "$@")
}

if [ "$1" = stop ]; then
  { [ -x "$ROOT/venv/bin/python" ] && [ -d "$ROOT/src" ] \
      && id -u "$RUN_USER" >/dev/null 2>&1; } || exit 0
  as_suites_user python -c '
import os
from tests.upstream.runner import SuitesNode
SuitesNode(os.environ["SLAPOS_MAIL_ROOT"]).stop_all("stopped by upstream-suites.sh stop")'
  exit $?
fi

CHECKOUT=$(readlink -f "$1"); shift
[ -f "$CHECKOUT/software/mail-server/test/test.py" ] \
  || { echo "upstream-suites.sh: $CHECKOUT is not a checkout of SlapOS/slapos (no software/mail-server/test/test.py)" >&2; exit 2; }

echo "==> setting up $ROOT (scripts/setup.sh, log $ROOT.setup.log)"
bash "$REPO/scripts/setup.sh" >"$ROOT.setup.log" 2>&1 \
  || { tail -20 "$ROOT.setup.log"; exit 1; }

# The suites' user, and what it writes: the runner's scratch copy, the
# embedded SlapOS (slapos: software, partitions, the served checkout),
# the results, the copy of upstream's tests, its home, and the download
# cache's dist, where the node's buildout keeps the eggs' archives it
# downloads (the rest of the download cache, venv, node and src stay
# root's: setup.sh makes them so at each run).
if ! id -u "$RUN_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$RUN_HOME" \
    --shell /usr/sbin/nologin --comment "upstream's suites (scripts/upstream-suites.sh)" \
    "$RUN_USER"
  echo "==> made the system user $RUN_USER (home $RUN_HOME)"
fi
RUN_GROUP=$(id -gn "$RUN_USER")
for d in "$RUN_HOME" "$ROOT/scratch" "$ROOT/slapos" "$ROOT/upstream-results" \
    "$ROOT/download-cache/dist"; do
  mkdir -p "$d"
  # (what an earlier layout's runtime user left is handed over too)
  if [ "$(find "$d" \( \! -user "$RUN_USER" -o \! -group "$RUN_GROUP" \) -print -quit)" ]; then
    chown -R "$RUN_USER:$RUN_GROUP" "$d"
  fi
done
# upstream's checkout, readable by the suites' user: a copy of its two
# test directories (the runner copies them again into its scratch tree)
UPSTREAM=$ROOT/upstream-checkout
rm -rf "$UPSTREAM"
for release in mail-server mail-server-relay; do
  mkdir -p "$UPSTREAM/software/$release"
  cp -a "$CHECKOUT/software/$release/test" "$UPSTREAM/software/$release/"
done
{ git -C "$CHECKOUT" rev-parse HEAD 2>/dev/null || cat "$CHECKOUT/.git-commit" 2>/dev/null || echo unknown; } >"$UPSTREAM/.git-commit"
chown -R "$RUN_USER:$RUN_GROUP" "$UPSTREAM"

# The stand-in DNS (tests/upstream/name_server.py): upstream's relay tests
# read public records of rapid.space; there is no Internet here. It answers
# on <prefix>::1, port 53, for a private mount namespace whose
# /etc/resolv.conf names it: the runner's SlapOS, and nothing else on the
# machine, resolves through it.
DNS_ADDRESS=$SLAPOS_MAIL_IPV6_PREFIX::1
# (not "ip | grep -q": grep ends first, ip dies of SIGPIPE, and pipefail
# takes the address for missing when lo has many)
[[ $(ip -6 addr show dev lo) == *"inet6 $DNS_ADDRESS/"* ]] \
  || ip -6 addr add "$DNS_ADDRESS/128" dev lo nodad
mkdir -p "$ROOT/dns"
cp /etc/resolv.conf "$ROOT/dns/host-resolv.conf"
echo "nameserver $DNS_ADDRESS" >"$ROOT/dns/resolv.conf"

export REPO ROOT DNS_ADDRESS UPSTREAM RUN_USER RUN_HOME
export -f as_suites_user
exec unshare --mount --propagation private -- bash -c '
set -euo pipefail
mount --bind "$ROOT/dns/resolv.conf" /etc/resolv.conf
: >"$ROOT/dns/name-server.log"
"$ROOT/venv/bin/python" "$ROOT/src/tests/upstream/name_server.py" \
  "$DNS_ADDRESS" "$ROOT/dns/host-resolv.conf" >"$ROOT/dns/name-server.log" 2>&1 &
DNS_PID=$!
trap "kill $DNS_PID 2>/dev/null || true" EXIT
for _ in $(seq 50); do
  grep -q "stand-in DNS" "$ROOT/dns/name-server.log" && break
  kill -0 $DNS_PID 2>/dev/null || { cat "$ROOT/dns/name-server.log"; exit 1; }
  sleep 0.1
done
rc=0
as_suites_user python -m tests.upstream.runner "$UPSTREAM" "$@" || rc=$?
exit $rc
' upstream-suites "$@"
