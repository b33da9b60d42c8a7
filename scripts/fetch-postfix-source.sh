#!/bin/sh
# fetch-postfix-source.sh DOWNLOAD_CACHE_DIR
#
# Put the upstream Postfix source tarball into zc.buildout's download cache
# so that the [postfix] section of software/component/postfix/buildout.cfg
# builds with no network access (only the Debian mirror is needed, here).
#
# The tarball comes from Debian's source package: postfix_3.7.11.orig.tar.gz
# is byte-identical to upstream's postfix-3.7.11.tar.gz (Debian ships
# upstream's detached signature beside it as .orig.tar.gz.asc, and the
# checksum below is the one recorded in buildout.cfg).
#
# Cache file naming (zc.buildout 6.0.1 + slapos.recipe.build 0.66):
# slapos.recipe.build's self.download() calls zc.buildout.download.Download
# with hash_name=True and no namespace, so the file is looked up as
#     DOWNLOAD_CACHE_DIR/<md5 hex digest of the URL string>
# (not under dist/, which buildout only uses for eggs).
#
# Idempotent; run as root (enables Debian's source index if missing). Files
# and directories it creates belong to the owner of DOWNLOAD_CACHE_DIR (or of
# its parent, if it has to create it) and are world-readable. It says what
# it did in one line on standard output; apt-get's transcript goes to
# standard error, and apt-get waits for another apt-get or dpkg to let go
# of apt's locks (scripts/apt.sh).
set -eu
. "$(dirname "$0")/apt.sh"

[ $# -eq 1 ] || { echo "usage: $0 DOWNLOAD_CACHE_DIR" >&2; exit 2; }
CACHE=$1

# Keep in sync with software/component/postfix/buildout.cfg ([postfix] url/md5sum).
VERSION=3.7.11
URL=https://de.postfix.org/ftp-dist/official/postfix-$VERSION.tar.gz
MD5=91aad8d04381bbddfa423266a53284e9
SOURCES=/etc/apt/sources.list.d/debian.sources

KEY=$(printf '%s' "$URL" | md5sum | cut -d' ' -f1)

md5_of() { md5sum "$1" | cut -d' ' -f1; }

if [ ! -d "$CACHE" ]; then
    parent=$(dirname "$CACHE")
    mkdir -p "$CACHE"
    chown "$(stat -c %u:%g "$parent")" "$CACHE"
    chmod 0755 "$CACHE"
fi
OWNER=$(stat -c %u:%g "$CACHE")
CACHE=$(cd "$CACHE" && pwd)
TARGET=$CACHE/$KEY

# buildout creates <download-cache>/dist at start-up: pre-create it so that a
# user who cannot write to the cache directory itself can still run buildout.
if [ ! -d "$CACHE/dist" ]; then
    mkdir "$CACHE/dist"
    chown "$OWNER" "$CACHE/dist"
fi

if [ -f "$TARGET" ] && [ "$(md5_of "$TARGET")" = "$MD5" ]; then
    chmod 0644 "$TARGET"
    echo "postfix-$VERSION.tar.gz already in $TARGET"
    exit 0
fi

# Enable Debian's source index (deb-src) beside every deb stanza, same
# URIs/Suites/Components/Signed-By, unless some deb-src entry exists already.
if ! grep -qs '^ *\(Types:.*deb-src\|deb-src \)' "$SOURCES" \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources; then
    [ -f "$SOURCES" ] || { echo "no $SOURCES to derive deb-src from" >&2; exit 1; }
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
         { print }
         /(^|\n)Types: *deb *(\n|$)/ { src[++n] = $0 }
         END { for (i = 1; i <= n; i++) {
                 s = src[i]; sub(/Types: *deb *(\n|$)/, "Types: deb-src\n", s)
                 print s } }' "$SOURCES" > "$SOURCES.new"
    chmod 0644 "$SOURCES.new"
    mv "$SOURCES.new" "$SOURCES"
    apt_get -q update >&2
elif ! ls /var/lib/apt/lists/*_Sources* >/dev/null 2>&1; then
    apt_get -q update >&2
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# apt downloads as the _apt user when it can write there
chmod 0755 "$TMP"; chown _apt "$TMP" 2>/dev/null || true
(cd "$TMP" && apt_get -q source --download-only postfix >&2)
ORIG=$TMP/postfix_$VERSION.orig.tar.gz
if [ ! -f "$ORIG" ]; then
    echo "Debian's postfix source is not $VERSION:" $(ls "$TMP") >&2
    exit 1
fi
if [ "$(md5_of "$ORIG")" != "$MD5" ]; then
    echo "$ORIG: md5 $(md5_of "$ORIG") != $MD5 (not the upstream tarball)" >&2
    exit 1
fi
install -m 0644 "$ORIG" "$TARGET.tmp"
chown "$OWNER" "$TARGET.tmp"
mv "$TARGET.tmp" "$TARGET"
echo "postfix-$VERSION.tar.gz (from Debian's orig.tar.gz) placed at $TARGET"
