#!/bin/sh
# Builds ngx_http_eas_module.so against an nginx tree: Debian's into
# build/, an upstream tree's into build/upstream/.
#
#   tools/build-module.sh [NGINX_SRC]
#
# NGINX_SRC defaults to Debian's nginx-dev (/usr/share/nginx/src), whose
# conf_flags match the nginx binary that will load the module.  Any other
# directory is taken as an upstream nginx source tree and configured with
# --with-compat --with-threads (the flags the module relies on); the
# module then loads into an nginx built from that tree with the same flags.
# The tree is copied into build/ first: nothing is written outside it.

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-/usr/share/nginx/src}
build="$top/build"

# a release tarball has ./configure, a git checkout auto/configure
if [ -x "$src/configure" ]; then
    configure=./configure
elif [ -x "$src/auto/configure" ]; then
    configure=auto/configure
else
    echo "build-module: no nginx tree at $src" >&2
    echo "build-module: install Debian's nginx-dev, or give NGINX_SRC=..." >&2
    exit 1
fi

# our own files compile with -Wextra on top of nginx's -Wall -Werror;
# EAS_CC_OPT / EAS_LD_OPT add flags.  Unset, they are what Debian builds
# packages with (dpkg-buildflags, hardening=+all as debian/rules asks):
# -O2 after nginx's own -O, the stack protector and _FORTIFY_SOURCE, so
# that "make" builds, tests and measures the code the .deb ships; -O2
# alone where dpkg-buildflags is missing
if command -v dpkg-buildflags > /dev/null 2>&1; then
    deb_cc=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all \
             dpkg-buildflags --get CFLAGS | sed 's/ -ffile-prefix-map=[^ ]*//')
    deb_cc="$deb_cc $(DEB_BUILD_MAINT_OPTIONS=hardening=+all \
             dpkg-buildflags --get CPPFLAGS)"
    deb_ld=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all \
             dpkg-buildflags --get LDFLAGS)
else
    deb_cc="-O2"
    deb_ld=""
fi
cc_opt="-Wextra -Wno-unused-parameter ${EAS_CC_OPT-$deb_cc}"
ld_opt="${EAS_LD_OPT-$deb_ld}"

if [ -f "$src/conf_flags" ]; then
    tree="$build/nginx-debian"
else
    tree="$build/nginx-upstream"
fi

stamp="$tree/.configured-from"
want="$src $(printf '%s\n' "$cc_opt" "$ld_opt" | cat "$top/config" "$0" - | cksum)"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    rm -rf "$tree"
    mkdir -p "$tree"
    cp -a "$src/." "$tree/"

    cd "$tree"

    if [ -f conf_flags ]; then
        # conf_flags is bash (an array); read it without running it
        flags=$(sed -n 's/^NGX_CONF_FLAGS=( *\(.*\) *)$/\1/p' conf_flags)
        # shellcheck disable=SC2086
        $configure $flags --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
            --add-dynamic-module="$top" > "$tree/configure.log"
    else
        $configure --with-compat --with-threads --with-debug \
            --with-http_ssl_module --with-http_auth_request_module \
            --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" \
            --add-dynamic-module="$top" > "$tree/configure.log"
    fi

    echo "$want" > "$stamp"
fi

cd "$tree"

# the console's files may have changed since nginx was configured
"$top/tools/console-embed.sh" objs/ngx_http_eas_console_files.h \
    "$top/ngx_eas_module/console/index.html" \
    "$top/ngx_eas_module/console/console.js" \
    "$top/ngx_eas_module/console/console.css"

make -f objs/Makefile modules

# the Debian build is the one the tests and the demo load
if [ -f conf_flags ]; then
    out="$build/ngx_http_eas_module.so"
else
    mkdir -p "$build/upstream"
    out="$build/upstream/ngx_http_eas_module.so"
fi

cp objs/ngx_http_eas_module.so "$out"
echo "build-module: $out (from $src)"
