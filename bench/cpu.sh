#!/bin/sh
# Instructions per request of the front nginx, with callgrind, every
# front side by side in one run: plain proxy_pass, eas on, warm
# pre-authentication, everything on (device zone, 100,000 rules,
# long-poll), nginx's auth_basic with {SHA}.  See bench/cpu.py for the
# method and bench/README.md for figures.
#
#   bench/cpu.sh                                  # all fronts
#   bench/cpu.sh --fronts plain,preauth --annotate preauth
#   bench/cpu.sh --n1 200 --n2 2200 --rules 1000
#   EAS_MODULE=new.so bench/cpu.sh --base old.so  # two builds, one table
#
# Needs valgrind (make deps installs it), nginx, openssl, htpasswd and
# the module built (make).  Uses only 127.0.0.1 and a temporary
# directory; every run is bounded (600 s per front at most).

set -eu

exec /usr/bin/python3 "$(dirname "$0")/cpu.py" "$@"
