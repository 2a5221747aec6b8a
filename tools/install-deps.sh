#!/bin/sh
# Installs the Debian packages ngx_eas needs to build, test and run its
# demo; packages already present are left alone, so it is idempotent.
#
#   tools/install-deps.sh          everything (build, tests, demo)
#   tools/install-deps.sh demo     only what "make demo" needs

set -eu

packages="
    nginx
    nginx-dev
    gcc
    make
    clang
    libpcre2-dev
    libssl-dev
    zlib1g-dev
    openssl
    python3
    python3-pytest
    python3-h2
    nghttp2-client
    libwbxml2-utils
    apache2-utils
    whois
    curl
    wrk
    libldap-dev
    libicu-dev
    libhiredis-dev
    redis-server
    libfaketime
    slapd
    ldap-utils
    debhelper
    dpkg-dev
    lintian
    valgrind
    php-cli
    python3-h2
    prometheus
    fail2ban
    chromium
    chromium-driver
    python3-selenium
"

# make demo: build the module, run nginx, htpasswd, curl; no test tools
if [ "${1:-}" = demo ]; then
    packages="nginx nginx-dev gcc make libpcre2-dev libssl-dev zlib1g-dev
              libldap-dev libicu-dev libhiredis-dev openssl python3
              apache2-utils curl"
fi

missing=""

for p in $packages; do
    # "triggers-pending": installed, with a trigger (nginx-reload after a
    # module package is installed) not yet run
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -Eq "install ok (installed|triggers-pending|triggers-awaited)"
    then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages:$missing" >&2
    echo "install-deps: run as root, or: sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=300 install -y -qq $missing
