#!/bin/sh
# Builds the Debian package libnginx-mod-http-eas into build/deb/ and
# checks it with lintian (every override is justified in
# debian/libnginx-mod-http-eas.lintian-overrides).
#
#   tools/build-deb.sh
#
# The tree is copied into build/deb/src first, so the build writes
# nothing outside build/ and works from a tree with uncommitted changes.

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/deb"

rm -rf "$out"
mkdir -p "$out/src"

(cd "$top" && tar --exclude=./build --exclude=./.git -cf - .) \
    | tar -C "$out/src" -xf -

cd "$out/src"
dpkg-buildpackage -us -uc -b > "$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed, see $out/build.log" >&2
    exit 1
}

cd "$out"
deb=$(ls libnginx-mod-http-eas_*.deb)

# --fail-on warning: a warning fails the build as an error does
lintian --fail-on error,warning --info "$deb"

echo "build-deb: $out/$deb"
