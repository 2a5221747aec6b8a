#!/bin/sh
# Pre-authentication benchmark: in one run, over TLS, with wrk,
#
#   (a) plain nginx proxy_pass, no authentication
#   (b) ngx_eas pre-authentication, warm cache (eas on + eas_preauth
#       with a bcrypt password file)
#   (c) nginx's auth_basic with the same bcrypt file
#
# all three in one nginx (one worker) in front of the same backend (a
# server of that nginx answering 200), each with the same ActiveSync
# POST and keep-alive TLS connections.  The nginx worker runs on the
# last CPU and wrk on the first, so that they do not take turns on one.
# (a) and (b) alternate ROUNDS times (a shared machine drifts: pairs
# taken seconds apart see the same load); the medians are reported, and
# b/a is the median of the ratios of the pairs.  (c) runs once.  Prints
# req/s and latency of each and the ratios b/a (target >= 0.97) and b/c
# (target >= 50).  Not a test: the figures depend on the machine.
#
#   bench/preauth.sh                     # DURATION=4 ROUNDS=5 COST=10
#   DURATION=10 ROUNDS=1 COST=5 bench/preauth.sh
#
# Needs: nginx, wrk, htpasswd, openssl, python3 and the module built
# (make).  Uses only 127.0.0.1 and a temporary directory.

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
module=${EAS_MODULE:-$top/build/ngx_http_eas_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
duration=${DURATION:-4}
rounds=${ROUNDS:-5}
cost=${COST:-10}
threads=${THREADS:-1}
connections=${CONNECTIONS:-32}

for tool in wrk taskset curl htpasswd openssl python3 "$nginx"; do
    command -v "$tool" > /dev/null || {
        echo "preauth.sh: $tool not found (make deps installs it)" >&2
        exit 1
    }
done

[ -f "$module" ] || { echo "preauth.sh: build the module first: make" >&2; exit 1; }

work=$(mktemp -d /tmp/eas-bench.XXXXXX)
chmod 755 "$work"

stop() {
    if [ -f "$work/nginx.pid" ]; then
        kill -QUIT "$(cat "$work/nginx.pid")" 2> /dev/null || true
        sleep 0.5
    fi
    rm -rf "$work"
}
trap stop EXIT INT TERM

ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
set -- $ports
port_a=$1 port_b=$2 port_c=$3 port_backend=$4

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
htpasswd -cbB -C "$cost" "$work/users" jdoe secret 2> /dev/null

cpus=$(nproc)
last=$((cpus - 1))
# worker_cpu_affinity: a bit mask, the last CPU
mask=1
i=0
while [ $i -lt $last ]; do
    mask="${mask}0"
    i=$((i + 1))
done

cat > "$work/nginx.conf" <<CONF
load_module $module;
worker_processes 1;
worker_cpu_affinity $mask;
pid $work/nginx.pid;
error_log $work/error.log warn;
user root;
events { worker_connections 4096; }

http {
    access_log off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    keepalive_requests 1000000;

    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;

    eas_preauth_zone zone=bench:10m;

    upstream backend {
        server 127.0.0.1:$port_backend;
        keepalive 64;
    }

    proxy_http_version 1.1;
    proxy_set_header Connection "";

    server {
        listen 127.0.0.1:$port_backend;
        location / { return 200 "ok\n"; }
    }

    # (a) plain proxy_pass
    server {
        listen 127.0.0.1:$port_a ssl;
        location /Microsoft-Server-ActiveSync { proxy_pass http://backend; }
    }

    # (b) ngx_eas pre-authentication
    server {
        listen 127.0.0.1:$port_b ssl;
        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=bench;
            eas_preauth_user_file $work/users;
            proxy_pass http://backend;
        }
    }

    # (c) nginx's auth_basic, the same file
    server {
        listen 127.0.0.1:$port_c ssl;
        location /Microsoft-Server-ActiveSync {
            auth_basic "ActiveSync";
            auth_basic_user_file $work/users;
            proxy_pass http://backend;
        }
    }
}
CONF

cat > "$work/request.lua" <<'LUA'
wrk.method = "POST"
wrk.path = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=BENCH01&DeviceType=iPhone"
wrk.headers["Authorization"] = "Basic amRvZTpzZWNyZXQ="
wrk.headers["MS-ASProtocolVersion"] = "14.1"
wrk.headers["Content-Type"] = "application/vnd.ms-sync.wbxml"
wrk.headers["Content-Length"] = "0"
LUA

"$nginx" -p "$work" -c "$work/nginx.conf" -e "$work/error.log"

# ready, and the one verification of (b) done: the cache is warm
for port in $port_a $port_b $port_c; do
    i=0
    until curl -skf -o /dev/null -u jdoe:secret -X POST \
              -H 'MS-ASProtocolVersion: 14.1' \
              "https://127.0.0.1:$port/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe&DeviceId=BENCH01&DeviceType=iPhone"
    do
        i=$((i + 1))
        [ $i -lt 50 ] || { echo "preauth.sh: port $port does not answer" >&2; cat "$work/error.log" >&2; exit 1; }
        sleep 0.1
    done
done

run() {
    taskset -c 0 \
    wrk -t"$threads" -c"$connections" -d"${duration}s" --latency \
        -s "$work/request.lua" "https://127.0.0.1:$2" > "$work/$1.out"
    grep -q "Non-2xx" "$work/$1.out" && {
        echo "preauth.sh: ($1) had non-2xx answers:" >&2
        cat "$work/$1.out" >&2
        exit 1
    }
    cat "$work/$1.out" >> "$work/all-$1.out"
}

echo "ngx_eas pre-authentication benchmark: wrk -t$threads -c$connections" \
     "-d${duration}s over TLS, nginx 1 worker, bcrypt cost $cost," \
     "$rounds rounds"
echo "$(nproc) cores, $(nginx -v 2>&1 | sed 's/.*: //'), $(uname -r)"

r=1
while [ $r -le "$rounds" ]; do
    run a "$port_a"
    run b "$port_b"
    r=$((r + 1))
done
run c "$port_c"

python3 - "$work" <<'PY'
import re
import statistics
import sys

work = sys.argv[1]


def parse(name):
    text = open("%s/all-%s.out" % (work, name)).read()
    rps = [float(x) for x in re.findall(r"Requests/sec:\s+([\d.]+)", text)]
    p50 = re.findall(r"50%\s+([\d.]+)(us|ms|s)\b", text)
    p99 = re.findall(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    ms = lambda vals: statistics.median(float(v) * scale[u] for v, u in vals)
    return statistics.median(rps), ms(p50), ms(p99), rps


a, b, c = parse("a"), parse("b"), parse("c")
print()
print("%-44s %10s %9s %9s" % ("", "req/s", "p50 ms", "p99 ms"))
for label, r in (("(a) nginx proxy_pass, no auth", a),
                 ("(b) ngx_eas eas_preauth, warm cache", b),
                 ("(c) nginx auth_basic, same bcrypt file", c)):
    print("%-44s %10.0f %9.2f %9.2f" % (label, r[0], r[1], r[2]))
print()
print("runs (req/s): a %s  b %s" % (" ".join("%.0f" % x for x in a[3]),
                                    " ".join("%.0f" % x for x in b[3])))
ba = statistics.median(y / x for x, y in zip(a[3], b[3]))
bc = b[0] / c[0]
print("b/a = %.3f (target >= 0.97): %s" % (ba, "met" if ba >= 0.97 else "NOT met"))
print("b/c = %.1f (target >= 50): %s" % (bc, "met" if bc >= 50 else "NOT met"))
PY
