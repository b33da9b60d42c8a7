#!/bin/sh
# build.sh SOURCE_TARBALL PREFIX PATCH...
#
# Build Postfix from its upstream source tarball with our patches (the
# single-user postfix-unprivileged.patch, postfix-dovecot-auth-timeout.patch),
# applied in order, and install it into PREFIX, as any user: the
# install is a "package" install (no chown/chgrp, no set-gid bits), staged
# and then copied into PREFIX.
#
# Result:
#   PREFIX/sbin/             postfix postconf postmap postqueue postsuper
#                            sendmail postdrop postlog postalias postcat ...
#   PREFIX/libexec/postfix/  daemon_directory: master smtpd qmgr ... and the
#                            postfix-script / post-install helpers
#   PREFIX/bin/              smtp-source smtp-sink (test tools), mailq,
#                            newaliases
#   PREFIX/etc/postfix/      sample main.cf/master.cf and meta files
#                            (postfix-files, ...), read by post-install
#
# Compiled-in defaults point into PREFIX (never /etc/postfix); every instance
# is run with its own "-c CONFIG_DIR" anyway.
#
# Features: OpenSSL TLS, Cyrus SASL and Dovecot SASL, LMDB (the default
# database type), PCRE2, Berkeley DB (hash/btree), ICU (SMTPUTF8); linked
# against Debian's -dev libraries. Postfix's own libraries are linked
# statically (no shared=yes/dynamicmaps), so nothing else needs installing.
set -eu

[ $# -ge 3 ] || { echo "usage: $0 SOURCE_TARBALL PREFIX PATCH..." >&2; exit 2; }
abspath() { case $1 in /*) echo "$1";; *) echo "$(pwd)/$1";; esac; }
TARBALL=$(abspath "$1")
PREFIX=$(abspath "$2")
PREFIX=${PREFIX%/}
shift 2
PATCHES=
for patch in "$@"; do PATCHES="$PATCHES $(abspath "$patch")"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postfix-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Keep the (long) make output out of the buildout log unless a step fails.
quiet() {
    echo "build.sh: $*" | cut -c1-100
    "$@" > "$WORK/step.log" 2>&1 || { tail -n 60 "$WORK/step.log" >&2; exit 1; }
}
tar -xzf "$TARBALL" -C "$WORK"
cd "$WORK"/postfix-*/
for patch in $PATCHES; do
    quiet patch -p1 --batch --no-backup-if-mismatch -i "$patch"
done

quiet make -f Makefile.init makefiles \
    CCARGS='-DUSE_TLS -DUSE_SASL_AUTH -DUSE_CYRUS_SASL -I/usr/include/sasl -DHAS_LMDB -DNO_NIS' \
    AUXLIBS='-lssl -lcrypto -lsasl2' \
    AUXLIBS_LMDB='-llmdb' \
    OPT='-O2' DEBUG='' \
    default_database_type=lmdb \
    config_directory="$PREFIX/etc/postfix" \
    meta_directory="$PREFIX/etc/postfix" \
    command_directory="$PREFIX/sbin" \
    daemon_directory="$PREFIX/libexec/postfix" \
    data_directory="$PREFIX/var/lib/postfix" \
    queue_directory="$PREFIX/var/spool/postfix" \
    sendmail_path="$PREFIX/sbin/sendmail" \
    mailq_path="$PREFIX/bin/mailq" \
    newaliases_path="$PREFIX/bin/newaliases" \
    manpage_directory="$PREFIX/share/man" \
    html_directory=no readme_directory=no
quiet make -j"$(nproc 2>/dev/null || echo 2)"

# Package install into a staging root: no chown to root, no set-gid bits.
STAGE=$WORK/stage
quiet make non-interactive-package install_root="$STAGE"
mkdir -p "$PREFIX/bin"
cp -a "$STAGE$PREFIX/." "$PREFIX/"
cp bin/smtp-source bin/smtp-sink "$PREFIX/bin/"
# postfix-install made these relative to the staging root: make them local.
ln -sf ../sbin/sendmail "$PREFIX/bin/mailq"
ln -sf ../sbin/sendmail "$PREFIX/bin/newaliases"
chmod -R u+w,go-w "$PREFIX"

# Fail here rather than later if something is missing.
for f in sbin/postfix sbin/postconf sbin/postmap sbin/postqueue \
         sbin/postsuper sbin/sendmail sbin/postdrop sbin/postlog \
         libexec/postfix/master libexec/postfix/smtpd \
         libexec/postfix/postfix-script libexec/postfix/post-install \
         etc/postfix/postfix-files bin/smtp-source bin/smtp-sink; do
    [ -x "$PREFIX/$f" ] || [ -f "$PREFIX/$f" ] ||
        { echo "build.sh: missing $PREFIX/$f" >&2; exit 1; }
done
"$PREFIX/sbin/postconf" -c "$PREFIX/etc/postfix" -d mail_version default_database_type
