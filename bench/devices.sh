#!/bin/sh
# Device access rules: what they cost a request.  One nginx (one worker)
# loads the module and serves the same ActiveSync POST on four ports:
#
#   plain       no "eas": nginx proxying, for reference
#   no-rules    "eas on", no device directive (the device step is off)
#   10-rules    8 exact DeviceId rules + 2 User-Agent regexes
#   100k-rules  99,998 exact DeviceId rules + the same 2 regexes
#
# each forwarding (keepalive) to a second, plain nginx that answers 200.
# Requests rotate over 1,000 users and DeviceIds, none of them listed,
# so every rule table is searched and every request is forwarded.  wrk
# runs ROUNDS rounds of SECONDS per port, interleaved.
#
# Two figures per port: the median requests/second wrk saw, and the
# requests served per second of CPU used by the gateway's worker (from
# /proc, user + system).  On a machine shared with other work the first
# swings with the neighbours' load; the second is what the rules cost a
# request, and the verdict uses it.
#
#   bench/devices.sh [SECONDS] [ROUNDS]      (default 2 s x 5 rounds)
#
# Target (issue 4): 100k-rules >= 0.98 x no-rules.

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-2}
rounds=${2:-5}
module=${EAS_MODULE:-$top/build/ngx_http_eas_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}

command -v wrk > /dev/null || { echo "bench: wrk is not installed" >&2; exit 1; }
[ -f "$module" ] || { echo "bench: $module missing: run make" >&2; exit 1; }

work=$(mktemp -d /tmp/eas-bench-devices.XXXXXX)
pid=

bpid=

cleanup() {
    for p in $pid $bpid; do
        kill -QUIT "$p" 2>/dev/null || true
    done
    sleep 0.5
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
')
set -- $ports
upstream=$1 plain=$2 none=$3 ten=$4 big=$5

regexes='block user_agent=~^Apple-iPhone[0-9]+C[0-9]+/1002\.14[1-5]$
block user_agent=~*^android-mail/7\.5\.9\.'
awk 'BEGIN { for (i = 0; i < 8; i++) printf "block device_id=Lost%06d\n", i }' \
    > "$work/10.txt"
echo "$regexes" >> "$work/10.txt"
awk 'BEGIN { for (i = 0; i < 99998; i++) printf "block device_id=Lost%06d\n", i }' \
    > "$work/100k.txt"
echo "$regexes" >> "$work/100k.txt"

server() {
    cat <<CONF
    server {
        listen 127.0.0.1:$1 reuseport;
        location /Microsoft-Server-ActiveSync {
            $2
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }
    }
CONF
}

prologue() {
    cat <<CONF
worker_processes 1;
daemon off;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 1024; }
CONF
}

temp_paths() {
    for t in client_body proxy fastcgi uwsgi scgi; do
        echo "    ${t}_temp_path $work/$1-$t;"
    done
}

cat > "$work/backend.conf" <<CONF
$(prologue backend)
http {
    access_log off;
$(temp_paths backend)
    server {
        listen 127.0.0.1:$upstream;
        location / { return 200 "ok\n"; }
    }
}
CONF

cat > "$work/nginx.conf" <<CONF
load_module $module;
pcre_jit on;
$(prologue nginx)
http {
    access_log off;
$(temp_paths nginx)

    upstream backend {
        server 127.0.0.1:$upstream;
        keepalive 32;
    }

$(server "$plain" "")
$(server "$none" "eas on;")
$(server "$ten" "eas on; eas_device_rules $work/10.txt;")
$(server "$big" "eas on; eas_device_rules $work/100k.txt;")
}
CONF

cat > "$work/eas.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    local k = n % 1000
    local path = string.format("/Microsoft-Server-ActiveSync?Cmd=Sync"
        .. "&User=user%03d&DeviceId=ApplBENCH%05d&DeviceType=iPhone", k, k)
    return wrk.format("POST", path, {
        ["MS-ASProtocolVersion"] = "14.1",
        ["User-Agent"] = "Apple-iPhone13C4/2307.71",
        ["Content-Length"] = "0" }, "")
end
LUA

"$nginx" -t -q -p "$work" -c "$work/nginx.conf"
# the gateway on one CPU; wrk and the backend on the other
taskset -c 0 "$nginx" -p "$work" -c "$work/nginx.conf" &
pid=$!
taskset -c 1 "$nginx" -p "$work" -c "$work/backend.conf" &
bpid=$!

for port in $upstream $plain $none $ten $big; do
    i=0
    until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "bench: nginx did not start" >&2; exit 1; }
        sleep 0.1
    done
done

worker=$(ps -o pid= --ppid "$pid" | tr -d ' ')
tck=$(getconf CLK_TCK)

# CPU ticks the gateway's worker has used so far
ticks() {
    awk '{ print $14 + $15 }' "/proc/$worker/stat"
}

# rps PORT SECONDS: "requests/second requests cpu-ticks" of one wrk run
rps() {
    before=$(ticks)
    out=$(taskset -c 1 wrk -t1 -c32 -d"$2s" -s "$work/eas.lua" \
          "http://127.0.0.1:$1/Microsoft-Server-ActiveSync")
    after=$(ticks)
    echo "$out" | awk -v t=$((after - before)) '
        / requests in / { n = $1 }
        /^Requests\/sec:/ { r = $2 }
        END { print r, n, t }'
}

# every request must be forwarded: a refusal would make a port faster
for port in $plain $none $ten $big; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
             -H 'MS-ASProtocolVersion: 14.1' -H 'User-Agent: Apple-iPhone13C4/2307.71' \
             "http://127.0.0.1:$port/Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=ApplBENCH00001&DeviceType=iPhone")
    [ "$status" = 200 ] || { echo "bench: port $port answered $status" >&2; exit 1; }
done
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'MS-ASProtocolVersion: 14.1' \
         "http://127.0.0.1:$big/Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=Lost099997&DeviceType=iPhone")
[ "$status" = 403 ] || { echo "bench: 100k rules not loaded ($status)" >&2; exit 1; }

echo "nginx $($nginx -v 2>&1 | sed 's/.*\///'), 1 worker; wrk -t1 -c32, $rounds x ${seconds}s per port, interleaved"

# warm-up, not counted: connections, caches, CPU frequency
for port in $plain $none $ten $big; do
    rps "$port" 1 > /dev/null
done

results="$work/results"
: > "$results"
round=1
while [ $round -le "$rounds" ]; do
    for name in plain no-rules 10-rules 100k-rules; do
        case $name in
            plain) port=$plain ;;
            no-rules) port=$none ;;
            10-rules) port=$ten ;;
            100k-rules) port=$big ;;
        esac
        echo "$name $(rps "$port" "$seconds")" >> "$results"
    done
    round=$((round + 1))
done

if grep -q '\[alert\]\|\[crit\]\|\[emerg\]' "$work"/*error.log; then
    echo "bench: nginx logged errors:" >&2
    cat "$work"/*error.log >&2
    exit 1
fi

sort -k1,1 -k2,2n "$results" | awk -v tck="$tck" '
    {
        v[$1, ++n[$1]] = $2; all[$1] = all[$1] " " int($2)
        req[$1] += $3; cpu[$1] += $4
    }
    END {
        split("plain no-rules 10-rules 100k-rules", order, " ")
        for (i = 1; i <= 4; i++) {
            k = order[i]
            m[k] = v[k, int((n[k] + 1) / 2)]
            c[k] = req[k] / (cpu[k] / tck)
        }
        printf "%-11s %10s %7s  %12s %7s  %s\n", "config", "median rps",
               "ratio", "req/cpu-sec", "ratio", "rps of each round, sorted"
        for (i = 1; i <= 4; i++) {
            k = order[i]
            printf "%-11s %10.0f %7.3f  %12.0f %7.3f %s\n", k, m[k],
                   m[k] / m["no-rules"], c[k], c[k] / c["no-rules"], all[k]
        }
        ratio = c["100k-rules"] / c["no-rules"]
        printf "100k-rules / no-rules, requests per CPU-second of the " \
               "worker: %.3f (target >= 0.98): %s\n", ratio,
               (ratio >= 0.98 ? "met" : "NOT met")
    }'
