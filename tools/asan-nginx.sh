#!/bin/sh
# Builds Debian's own nginx (the source package of the installed version)
# with AddressSanitizer, plus the module in the same tree, into build/asan/.
# "make test-asan" then runs the integration suite against that pair, so a
# memory error anywhere in the module's path stops the test that caused
# it (the harness fails on any "Sanitizer" line in the error log).
#
# Needs root once: it adds a deb-src entry for bookworm and installs
# dpkg-dev.  nginx-dev alone cannot build nginx itself, hence the source
# package.

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/asan"
version=$(dpkg-query -W -f='${Version}' nginx)
upstream=${version%%-*}
tree="$out/nginx-$upstream"

# the module's file list (config) decides the Makefile: configure again
# whenever it changes
want=$(cat "$top/config" "$0" | cksum)

if [ ! -d "$tree" ]; then

    if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/
    then
        cat > /etc/apt/sources.list.d/ngx-eas-deb-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get update -qq
    fi

    dpkg-query -W -f='${Status}' dpkg-dev 2>/dev/null \
        | grep -q "install ok installed" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev

    rm -rf "$out"
    mkdir -p "$out"
    cd "$out"
    # the mirror may lack the source of the very build installed (a
    # security update): any Debian revision of the same nginx will do,
    # since nginx and the module are both built from this tree
    fetched=""
    for v in "$version" $(apt-cache showsrc nginx \
                          | sed -n "s/^Version: \($upstream-.*\)/\1/p")
    do
        if apt-get source -qq "nginx=$v" >> source.log 2>&1; then
            fetched=$v
            break
        fi
    done

    if [ -z "$fetched" ]; then
        tail -5 source.log >&2
        echo "asan-nginx: no source package of nginx $upstream found" >&2
        exit 1
    fi

fi

if [ ! -f "$tree/.eas-configured" ] \
   || [ "$(cat "$tree/.eas-configured")" != "$want" ]
then
    cd "$tree"
    flags=$(sed -n 's/^NGX_CONF_FLAGS=( *\(.*\) *)$/\1/p' \
            /usr/share/nginx/src/conf_flags)
    # libasan intercepts crypt_r(): configure then finds it "in libc" and
    # links no libcrypt, and the interceptor has nothing to call (a jump
    # to address 0 in the thread that verifies a password).  Link it.
    # shellcheck disable=SC2086
    ./configure $flags \
        --with-cc-opt="-g -O1 -fno-omit-frame-pointer -fsanitize=address -DNGX_DEBUG_PALLOC=1" \
        --with-ld-opt="-fsanitize=address -Wl,--no-as-needed -lcrypt" \
        --add-dynamic-module="$top" > configure.log
    echo "$want" > .eas-configured
fi

cd "$tree"
nice make -j2 -f objs/Makefile > make.log 2>&1 || { tail -20 make.log; exit 1; }
nice make -f objs/Makefile modules >> make.log 2>&1
echo "asan-nginx: $tree/objs/nginx and objs/ngx_http_eas_module.so"
