#!/bin/sh
# The admin API's device listing at 100,000 devices: what a page costs.
# One nginx (one worker) loads the module, records N devices (wrk sends
# one ActiveSync request per DeviceId, 5 devices a user, forwarded to a
# "return 200" server of the same nginx), then times GET devices with
# curl, the median of ROUNDS, for:
#
#   first       page 1 of 100, newest first (what the console opens with)
#   last        the last page of 100
#   oldest      page 1, sort=last_seen
#   user        user=u00042 (5 matches)
#   blocked     decision=blocked (no match: the whole zone walked)
#
# With a second module (BASE=old.so), the same run with it and the ratio
# new/old per query.
#
#   bench/admin-devices.sh [N] [ROUNDS]       (default 100000 x 5)
#   BASE=/path/to/old.so bench/admin-devices.sh

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
count=${1:-100000}
rounds=${2:-5}
module=${EAS_MODULE:-$top/build/ngx_http_eas_module.so}
base=${BASE:-}
nginx=${NGINX_BIN:-/usr/sbin/nginx}

command -v wrk > /dev/null || { echo "bench: wrk is not installed" >&2; exit 1; }
[ -f "$module" ] || { echo "bench: $module missing: run make" >&2; exit 1; }

work=$(mktemp -d /tmp/eas-bench-admin.XXXXXX)
pid=

cleanup() {
    [ -z "$pid" ] || kill -QUIT "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
')
set -- $ports
port=$1 upstream=$2

cat > "$work/fill.lua" <<LUA
local n = 0
request = function()
    local k = n % $count
    n = n + 1
    local path = string.format("/Microsoft-Server-ActiveSync?Cmd=Sync"
        .. "&User=u%05d&DeviceId=BENCH%06d&DeviceType=iPhone", math.floor(k / 5), k)
    return wrk.format("POST", path, {
        ["MS-ASProtocolVersion"] = "14.1",
        ["User-Agent"] = "Apple-iPhone13C4/2307.71",
    }, "")
end
LUA

run() {        # module label
    cat > "$work/nginx.conf" <<CONF
load_module $1;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/client_body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;

    eas_device_zone zone=devices:256m;

    upstream backend {
        server 127.0.0.1:$upstream;
        keepalive 32;
    }

    server {
        listen 127.0.0.1:$upstream;
        location / { return 200 "ok\n"; }
    }

    server {
        listen 127.0.0.1:$port;
        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_devices devices;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }
        location /eas/admin/ {
            eas_admin device_zone=devices;
        }
    }
}
CONF
    "$nginx" -c "$work/nginx.conf" -p "$work" &
    pid=$!

    url="http://127.0.0.1:$port/eas/admin/devices"
    tries=0
    until curl -sf "$url?per_page=1" > /dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { echo "bench: nginx did not start" >&2; exit 1; }
        sleep 0.1
    done

    total=0
    tries=0
    while [ "$total" -lt "$count" ] && [ "$tries" -lt 30 ]; do
        wrk -t1 -c16 -d10s -s "$work/fill.lua" "http://127.0.0.1:$port" > /dev/null
        total=$(curl -s "$url?per_page=1" | sed -n 's/^{"total":\([0-9]*\),.*/\1/p')
        tries=$((tries + 1))
    done
    [ "$total" -ge "$count" ] || { echo "bench: only $total devices recorded" >&2; exit 1; }

    last=$(( (count + 99) / 100 ))

    for q in "first ?page=1" "last ?page=$last" "oldest ?sort=last_seen" \
             "user ?user=u00042" "blocked ?decision=blocked"
    do
        name=${q%% *}
        args=${q#* }
        for r in $(seq "$rounds"); do
            curl -s -o /dev/null -w '%{time_total}\n' "$url$args"
        done | sort -n | awk -v n="$rounds" -v name="$name" -v label="$2" \
            '{ t[NR] = $1 } END { printf "%s %s %.2f\n", label, name, t[int((n + 1) / 2)] * 1000 }'
    done >> "$work/results"

    kill -QUIT "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    rm -f "$work/nginx.pid"
}

run "$module" new
[ -z "$base" ] || run "$base" old

echo "GET devices with $count devices recorded: median ms of $rounds"
awk '
    { ms[$1, $2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
    END {
        printf "%-8s %10s %10s %8s\n", "query", "new ms", "old ms", "new/old"
        for (i = 1; i <= n; i++) {
            q = order[i]
            if (("old", q) in ms)
                printf "%-8s %10.2f %10.2f %8.3f\n", q, ms["new", q], ms["old", q], ms["new", q] / ms["old", q]
            else
                printf "%-8s %10.2f %10s %8s\n", q, ms["new", q], "-", "-"
        }
    }' "$work/results"
