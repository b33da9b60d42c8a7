#!/bin/bash
# Installs everything the SlapOS mail bundle needs on a Debian 12 machine:
# Debian packages, the directories of DEVELOPERS.md, the Postfix source in
# the download cache, the virtual environment with this package in develop
# mode, the SlapOS node's environment (without it), and the partitions' IPv6
# addresses. Everything belongs to root, the embedded node's administrator:
# the node's software user and partition users are made by `slapos node
# format` when the embedded SlapOS starts (tests/harness.py).
#
# Idempotent: a second run only checks, and takes a few seconds. It says
# one line per step; what apt-get and pip print goes to $SLAPOS_MAIL_ROOT/
# setup.log (named in the lines of the steps that ran them).
# Environment: SLAPOS_MAIL_ROOT (default /srv/slapos-mail),
# SNAPPYMAIL_ARCHIVE (the Snappymail release tarball; default: the one in
# ../shared/snappymail/ beside the checkout, when it is there).
set -euo pipefail

# One line per step: "==> step: what it found or did; ...", printed when
# the step ends.
STEP=
NOTES=
step() { end_step; STEP=$*; NOTES=; }
note() { NOTES=${NOTES:+$NOTES; }$*; }
end_step() { [ -z "$STEP" ] || echo "==> $STEP${NOTES:+: $NOTES}"; STEP=; }
die() { end_step; echo "setup.sh: error: $*" >&2; exit 1; }

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(dirname "$(dirname "$SCRIPT")")
ROOT=${SLAPOS_MAIL_ROOT:-/srv/slapos-mail}
START=$SECONDS

# --- root, or re-run through sudo ------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 \
    || die "must be run as root (sudo is not installed): run it as root"
  # Without a terminal there is nobody to type a password: fail instead.
  [ -t 0 ] && SUDO=(sudo) || SUDO=(sudo -n)
  rc=0
  "${SUDO[@]}" env SLAPOS_MAIL_ROOT="$ROOT" \
    ${SLAPOS_MAIL_IPV6_PREFIX:+SLAPOS_MAIL_IPV6_PREFIX=$SLAPOS_MAIL_IPV6_PREFIX} \
    SNAPPYMAIL_ARCHIVE="${SNAPPYMAIL_ARCHIVE:-}" bash "$SCRIPT" "$@" || rc=$?
  [ "$rc" -eq 0 ] || echo "setup.sh: failed (as root through sudo, exit $rc): run it as root if sudo cannot be used" >&2
  exit "$rc"
fi

cd "$REPO"
# what apt-get and pip print, this run's only
mkdir -p "$ROOT"
LOG=$ROOT/setup.log
echo "scripts/setup.sh, $(date -u '+%Y-%m-%d %H:%M:%S UTC')" > "$LOG"
# apt-get waits for another apt-get or dpkg, and says so on the terminal
. "$REPO/scripts/apt.sh"
exec 3>&2
export APT_SAY_FD=3

# --- (a) Debian packages ----------------------------------------------------
PACKAGES=(
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve
  dovecot-managesieved apache2 php8.2-fpm php8.2-curl php8.2-xml
  php8.2-mbstring php8.2-intl php8.2-zip php8.2-gd php8.2-sqlite3
  libssl-dev libsasl2-dev libsasl2-modules libdb-dev liblmdb-dev libpcre2-dev libicu-dev
  m4 make gcc openssl ca-certificates dpkg-dev python3-venv python3-dev
  bogofilter swaks iproute2 procps rsync sudo curl
  opendkim opendkim-tools haproxy logrotate
  chromium chromium-driver
)
step "Debian packages"
installed=" $(dpkg-query -W -f='${Package}=${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null \
  | sed -n 's/=ii.*//p' | tr '\n' ' ')"
missing=()
for p in "${PACKAGES[@]}"; do
  [[ $installed == *" $p "* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  note "all ${#PACKAGES[@]} already installed"
else
  note "installed ${missing[*]} (apt-get's transcript: $LOG)"
  # Keep the packages' maintainer scripts from starting services.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy=1
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  # two set-ups at once (two embedded SlapOS on one machine) take turns
  exec 9>/var/lock/slapos-mail-apt.lock
  flock 9
  apt_get -q update >>"$LOG" \
    || die "apt-get update failed: see $LOG"
  apt_get install -y -q --no-install-recommends "${missing[@]}" </dev/null >>"$LOG" \
    || die "apt-get install failed: see $LOG"
  flock -u 9
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

# Our own instances listen on the partitions' addresses: the system's
# daemons (which bind every address) must neither run nor start at boot.
step "system mail and web services"
stopped=()
for svc in dovecot apache2 php8.2-fpm postfix haproxy; do
  [ -e "/etc/init.d/$svc" ] || [ -e "/lib/systemd/system/$svc.service" ] || continue
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet "$svc" 2>/dev/null \
        || systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
      stopped+=("$svc")
    fi
  elif compgen -G "/etc/rc[2-5].d/S??$svc" >/dev/null; then
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done
# Whatever still runs as root from the system binaries (our instances run as
# the runtime user): kill those processes by pid.
pids=$( { ps -u root -o pid=,comm= | awk '$2 == "dovecot" || $2 == "apache2" || $2 == "php-fpm8.2" {print $1}'
          pgrep -u root -f '^/usr/lib/postfix/sbin/master'; } || true)
if [ -n "$pids" ]; then
  stopped+=($(ps -o comm= -p "$(echo $pids | tr ' ' ,)" | sort -u))
  kill $pids 2>/dev/null || true
  for _ in $(seq 50); do
    alive=$(for p in $pids; do kill -0 "$p" 2>/dev/null && echo "$p"; done || true)
    [ -z "$alive" ] && break
    sleep 0.1
  done
  [ -z "$alive" ] || kill -9 $alive 2>/dev/null || true
fi
if [ ${#stopped[@]} -gt 0 ]; then note "stopped ${stopped[*]}"; else note "none running"; fi

# --- (b) directories ---------------------------------------------------------
step "directories under $ROOT"
# An earlier version of this script made them the runtime user slapmail's:
# root's now (root runs what is in them).
for d in "$ROOT" "$ROOT/venv" "$ROOT/src" "$ROOT/download-cache" "$ROOT/slapos"; do
  mkdir -p "$d"
done
for d in "$ROOT/venv" "$ROOT/node" "$ROOT/src" "$ROOT/download-cache"; do
  if [ -d "$d" ] && [ "$(find "$d" -maxdepth 0 \! -user root)" ]; then
    chown -R root:root "$d"
    note "$d: now root's"
  fi
done
# the root itself too: a daemon that checks the path of its secrets
# (OpenDKIM's keys) refuses a parent directory another user owns
if [ "$(stat -c %U "$ROOT")" != root ]; then
  chown root:root "$ROOT"
  note "$ROOT: now root's"
fi

# --- (d) Postfix source -----------------------------------------------------
step "Postfix source in the download cache"
if [ -f "$REPO/scripts/fetch-postfix-source.sh" ]; then
  fetched=$(sh "$REPO/scripts/fetch-postfix-source.sh" "$ROOT/download-cache" 2>>"$LOG") \
    || die "scripts/fetch-postfix-source.sh failed: see $LOG"
  note "$fetched"
else
  note "scripts/fetch-postfix-source.sh is not there yet: skipped"
fi

# --- (d2) Snappymail archive ---------------------------------------------
# Its release archive is in no registry reachable offline: the file named by
# SNAPPYMAIL_ARCHIVE, else the one provided beside the checkout
# (../shared/snappymail/), goes into the download cache under the name the
# software release looks for (md5 of the url of software/component/snappymail).
step "Snappymail archive in the download cache"
SNAPPYMAIL_URL=$(sed -n 's/^url *= *//p' "$REPO/software/component/snappymail/buildout.cfg" 2>/dev/null || true)
if [ -z "$SNAPPYMAIL_URL" ]; then
  note "software/component/snappymail is not there: skipped"
else
  SNAPPYMAIL_TARGET=$ROOT/download-cache/$(printf '%s' "$SNAPPYMAIL_URL" | md5sum | cut -d' ' -f1)
  SHARED_ARCHIVE=$(dirname "$REPO")/shared/snappymail/${SNAPPYMAIL_URL##*/}
  if [ -z "${SNAPPYMAIL_ARCHIVE:-}" ] && [ -f "$SHARED_ARCHIVE" ]; then
    SNAPPYMAIL_ARCHIVE=$SHARED_ARCHIVE
  fi
  if [ -n "${SNAPPYMAIL_ARCHIVE:-}" ] && [ -f "$SNAPPYMAIL_ARCHIVE" ]; then
    if cmp -s "$SNAPPYMAIL_ARCHIVE" "$SNAPPYMAIL_TARGET"; then
      note "already there ($SNAPPYMAIL_ARCHIVE)"
    else
      install -m 0644 "$SNAPPYMAIL_ARCHIVE" "$SNAPPYMAIL_TARGET"
      note "copied $SNAPPYMAIL_ARCHIVE to $SNAPPYMAIL_TARGET (sha256 $(sha256sum < "$SNAPPYMAIL_TARGET" | cut -d' ' -f1))"
    fi
  elif [ -n "${SNAPPYMAIL_ARCHIVE:-}" ]; then
    note "warning: SNAPPYMAIL_ARCHIVE=$SNAPPYMAIL_ARCHIVE is not a file: ignored"
  elif [ -f "$SNAPPYMAIL_TARGET" ]; then
    note "present ($SNAPPYMAIL_TARGET)"
  else
    note "none: the webmail is skipped (set SNAPPYMAIL_ARCHIVE=/path/to/${SNAPPYMAIL_URL##*/}, or put it in $(dirname "$SHARED_ARCHIVE")/)"
  fi
fi

# --- (e) source copy and virtual environment -------------------------------
step "the checkout copied to $ROOT/src"
# __pycache__ is hidden, not protected: a removed package's goes with it
rsync -a --delete --chown=root:root \
  --exclude=.git --exclude=/bin/ --exclude=/parts/ --exclude=/eggs/ \
  --exclude=/develop-eggs/ --exclude=.installed.cfg --filter='H __pycache__' \
  --exclude=.pytest_cache --exclude='*.egg-info' --exclude=/build/ \
  "$REPO/" "$ROOT/src/"
note "done"

VENV=$ROOT/venv
PY=$VENV/bin/python
CONSTRAINTS=$ROOT/src/scripts/constraints.txt
REQUIREMENTS=(zc.buildout slapos.core slapos.cookbook slapos.recipe.template
  slapos.recipe.build jinja2 libpass pytest slapos.libnetworkcache nxdbom
  zc.recipe.egg aiosmtpd dkimpy pyspf dmarc publicsuffixlist selenium
  pytest-xdist)
step "virtual environment $VENV"
# -S: without the site-packages, whose .pth files cost 0.4 s a start here
if [ -e "$PY" ] && ! "$PY" -S -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
  note "broken or foreign virtual environment: recreating"
  find "$VENV" -mindepth 1 -delete
fi
[ -e "$PY" ] || /usr/bin/python3 -m venv "$VENV"
# Does the venv hold exactly the pinned versions? (fast: no pip involved)
pins_ok() {
  "$PY" - "$CONSTRAINTS" <<'EOF'
import re, sys
from importlib import metadata
norm = lambda n: re.sub(r'[-_.]+', '-', n).lower()
installed = {norm(d.metadata['Name']): d.version for d in metadata.distributions()}
bad = []
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if line:
        name, version = line.split('==')
        if installed.get(norm(name)) != version:
            bad.append('%s==%s (have %s)' % (name, version, installed.get(norm(name))))
if bad:
    print('to install: ' + (', '.join(bad) if len(bad) < 6 else '%d packages' % len(bad)))
    sys.exit(1)
EOF
}
if pins_ok >/dev/null; then
  note "pinned packages already installed"
else
  note "$(pins_ok)"
  { "$VENV/bin/pip" install -q -c "$CONSTRAINTS" pip setuptools wheel &&
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" "${REQUIREMENTS[@]}"; } >>"$LOG" 2>&1 \
    || die "pip install failed: see $LOG"
  pins_ok >/dev/null || die "the virtual environment does not match scripts/constraints.txt"
  note "installed (pip's transcript: $LOG)"
fi

# slapos.core 1.26.1 calls importlib.resources.files() on modules, not
# packages (slapos.grid.SlapObject and slapos.grid.svcbackend do it at
# import/supervisord start), which only Python >= 3.12 accepts: on 3.11 it
# raises "TypeError: ... is not a package". This shim, loaded by a .pth at
# interpreter start-up, makes files(<module>) return the module's directory,
# as 3.12 does.
SHIM='import importlib, importlib.resources, os, pathlib

_files = importlib.resources.files


def files(anchor=None):
    try:
        return _files(anchor)
    except TypeError:
        module = importlib.import_module(anchor) if isinstance(anchor, str) else anchor
        if getattr(module, "__file__", None) is None:
            raise
        return pathlib.Path(os.path.dirname(module.__file__))


importlib.resources.files = files'
# the site-packages of the environment of a Python 3.11 (asked of it, it
# would cost a start with its site-packages: 0.4 s here)
site_packages() { echo "$(dirname "$(dirname "$1")")/lib/python3.11/site-packages"; }
install_shim() {  # PYTHON: in its site-packages
  local site
  site=$(site_packages "$1")
  if [ "$(cat "$site/slapos_mail_compat.py" 2>/dev/null || true)" != "$SHIM" ]; then
    printf '%s\n' "$SHIM" > "$site/slapos_mail_compat.py"
    echo 'import slapos_mail_compat' > "$site/slapos_mail_compat.pth"
    note "installed the importlib.resources.files() shim in $site"
  fi
}
install_shim "$PY"

step "slapos.mailbundle in develop mode"
stamp="$VENV/.slapos.mailbundle.stamp"
digest=$( { cat "$ROOT"/src/setup.py "$ROOT"/src/setup.cfg "$ROOT"/src/pyproject.toml \
  2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
site=$(site_packages "$PY")
if [ "$(cat "$stamp" 2>/dev/null || true)" = "$digest" ] \
    && compgen -G "$site/slapos?mailbundle-*.dist-info" >/dev/null; then
  note "already installed"
else
  (cd "$ROOT/src" && env PYTHONWARNINGS=ignore "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT/src") >>"$LOG" 2>&1 \
    || die "pip install -e failed: see $LOG"
  echo "$digest" > "$stamp"
  note "installed"
fi

# --- (e2) slapgrid's watchdog ----------------------------------------------
# slapgrid hard-codes the watchdog's path (WATCHDOG_PATH in
# slapos/grid/slapgrid.py), where a SlapOS node has it: without it, the
# supervisord event listener that bangs a partition whose service died is
# FATAL, and a dead daemon stays down. Several embedded SlapOS (one per
# SLAPOS_MAIL_ROOT) may share this machine, each with its own virtual
# environment: the script runs the watchdog (slapos.grid.watchdog) of the
# environment whose supervisord started it. A watchdog that is not ours (a
# real node's) is left.
step "slapgrid's watchdog"
WATCHDOG=/opt/slapos/bin/slapos-watchdog
MARK='# slapos-mail: the watchdog of the supervisord that runs it (scripts/setup.sh)'
WATCHDOG_SCRIPT=$(cat <<'EOF'
#!/bin/sh
# slapos-mail: the watchdog of the supervisord that runs it (scripts/setup.sh)
# supervisord runs its virtual environment's Python, which has slapos.core
python=$(tr '\000' '\n' < "/proc/$PPID/cmdline" | head -n 1)
if [ ! -x "$python" ]; then
  echo "$0: $python, the Python of the supervisord that runs it, is not there" >&2
  exit 1
fi
# slapproxy stamps a partition with a float (time.time()), which the
# watchdog of slapos.core 1.26 reads with int(): it would die at the first
# event after a partition's first bang, and never bang it again
exec "$python" -c 'import sys
from slapos.grid import watchdog
watchdog.int = lambda text: int(float(text))
sys.exit(watchdog.main())' "$@"
EOF
)
if [ -e "$WATCHDOG" ] && ! grep -qF "$MARK" "$WATCHDOG"; then
  note "$WATCHDOG is not ours (a SlapOS node's): kept"
elif [ "$(cat "$WATCHDOG" 2>/dev/null || true)" = "$WATCHDOG_SCRIPT" ]; then
  note "already there"
else
  mkdir -p "$(dirname "$WATCHDOG")"
  printf '%s\n' "$WATCHDOG_SCRIPT" > "$WATCHDOG.tmp"
  chmod 755 "$WATCHDOG.tmp" && mv "$WATCHDOG.tmp" "$WATCHDOG"
  note "installed $WATCHDOG"
fi

# --- (e3) the SlapOS node's environment -------------------------------------
# What a SlapOS node runs slapgrid and buildout from, as /opt/slapos does:
# slapos.core and zc.buildout, pinned like the venv, and NOT this bundle,
# which the software releases install themselves (tests/harness.py uses
# it). zc.buildout and the packages it needs live in their own directory,
# as the eggs of a real node do: a buildout run from here sees only them,
# never the node's other packages, and installs what a profile needs into
# the software's own directories. Its zc.buildout is not the venv's: see
# scripts/node-constraints.txt.
NODE=$ROOT/node
NODE_PY=$NODE/bin/python3
NODE_BUILDOUT=$NODE/buildout
NODE_CONSTRAINTS=$ROOT/src/scripts/node-constraints.txt
BUILDOUT_DISTS=(zc.buildout setuptools pip wheel packaging)
step "SlapOS node environment $NODE"
node_stamp=$NODE/.setup.stamp
node_digest=$( { cat "$CONSTRAINTS" "$NODE_CONSTRAINTS"; echo "${BUILDOUT_DISTS[*]} node 3"; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$node_stamp" 2>/dev/null || true)" = "$node_digest" ] && [ -x "$NODE/bin/slapos" ]; then
  note "already there"
else
  rm -rf "$NODE"
  mkdir -p "$NODE"
  { /usr/bin/python3 -m venv --without-pip "$NODE" &&
    "$VENV/bin/pip" --python "$NODE_PY" install -q -c "$CONSTRAINTS" slapos.core slapos.libnetworkcache &&
    "$VENV/bin/pip" --python "$NODE_PY" uninstall -q -y "${BUILDOUT_DISTS[@]}" &&
    "$VENV/bin/pip" install -q -c "$NODE_CONSTRAINTS" --no-deps --target "$NODE_BUILDOUT" "${BUILDOUT_DISTS[@]}"
  } >>"$LOG" 2>&1 || die "making the node's environment failed: see $LOG"
  # zc is a namespace that eggs share (zc.recipe.egg): declared as in the
  # zc.buildout egg of a node, not by pip's nspkg.pth, which only a site
  # directory runs
  echo "__import__('pkg_resources').declare_namespace(__name__)" \
    > "$NODE_BUILDOUT/zc/__init__.py"
  node_site=$("$NODE_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$NODE_BUILDOUT" > "$node_site/zc_buildout.pth"
  install_shim "$NODE_PY"
  PYTHONWARNINGS=ignore "$NODE_PY" -c 'import slapos.slap, zc.buildout.buildout' \
    || die "the node's environment $NODE is broken"
  if (cd / && "$NODE_PY" -c "import recipes" 2>/dev/null); then
    die "slapos.mailbundle must not be in the node's environment $NODE"
  fi
  echo "$node_digest" > "$node_stamp"
  note "made (pip's transcript: $LOG)"
fi
# The sdists a software release's buildout builds (slapos.cookbook,
# slapos.core, dkimpy... 13 of them) are built with the node's own
# setuptools, as SlapOS's buildout builds eggs, not each in a new isolated
# environment fetched from the index (2 s an sdist, twice: once per
# release). This is pip's site configuration of the node's environment
# (sys.prefix), read by the pip that zc.buildout runs; pip spells "do not
# isolate" as no-build-isolation = false.
NODE_PIP_CONF="[install]
no-build-isolation = false"
if [ "$(cat "$NODE/pip.conf" 2>/dev/null || true)" != "$NODE_PIP_CONF" ]; then
  printf '%s\n' "$NODE_PIP_CONF" > "$NODE/pip.conf"
  note "builds sdists with its own setuptools ($NODE/pip.conf)"
fi

# --- (f) IPv6 addresses of the partitions ----------------------------------
# Partition i has <prefix>::<i+2>, the prefix being SLAPOS_MAIL_IPV6_PREFIX
# (default fd6d:6169:6c00): a second embedded SlapOS on the same machine
# uses another prefix (and root, port).
IPV6_PREFIX=${SLAPOS_MAIL_IPV6_PREFIX:-fd6d:6169:6c00}
step "the partitions' IPv6 addresses on lo"
note "$(bash "$REPO/scripts/addresses.sh" "$IPV6_PREFIX" | sed 's/^ *//'); names in /etc/hosts"

# --- (g) summary ------------------------------------------------------------
end_step
echo "==> set up in $((SECONDS - START)) s: root $ROOT, venv $VENV ($("$PY" --version)), IPv6 $IPV6_PREFIX::2-::21 on lo"
