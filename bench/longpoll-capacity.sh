#!/bin/sh
# DirectPush capacity: N phones each holding one TLS Ping through five
# fronts, side by side in one run, each proxying the same load:
#   plain     nginx, proxy_pass only, no module loaded
#   eas       + the module, "eas on"
#   preauth   + "eas_preauth" from a password file, cache warm
#   longpoll  "eas on" + "eas_longpoll on" (no pre-auth, no device zone)
#   all       everything on: pre-auth, device zone, long-poll
#
#   bench/longpoll-capacity.sh [N ...]        default: 10000 50000 100000
#   FRONTS="plain all" bench/longpoll-capacity.sh 20000
#   EAS_MODULE=/path/to/other.so ...          another build of the module
#   PING=empty ...                            Pings without a body
#
# Every request carries what a phone's does (Authorization, a policy
# key, a long User-Agent), on every front alike.
#
# For each N and each front: a backend that holds every
# request (bench/holdsrv, several processes sharing a port with
# SO_REUSEPORT), the front nginx with enough workers that none needs more
# than ~18,000 descriptors (each held request costs the front two; the
# hard limit here is 20,000 per process), and bench/loadcli processes
# opening N/K TLS connections each, one Ping with HeartbeatInterval 3540
# per connection, each connection its own DeviceId.  Everything is on
# loopback: phones connect to 127.0.3.1-8, the front reaches the backend
# on 127.0.2.1-8, one ephemeral port range per address pair.
#
# Reported per front: connections held at the end of the hold (the
# clients count any that were closed or answered as dropped), the held
# connections the backend sees, and the memory of the front's workers
# (sum of Pss from /proc/PID/smaps_rollup, and of RSS) after minus
# before, per held connection.  The last column is the gateway's cost
# beyond plain nginx.  Bounded: setup SETUP s (default 600), hold until
# measured (at most HOLD s, default 120); every process started here is
# stopped by its pid.  DEVICES=off runs the gateway without the device
# zone, to tell the inventory's share from the long-poll step's; the
# last lines give each front's cost beyond plain nginx.  Requires: build/ngx_http_eas_module.so (make),
# gcc, libssl-dev, openssl, ss.

set -eu

cd "$(dirname "$0")/.."

ROOT=$(pwd)
NGINX=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${EAS_MODULE:-$ROOT/build/ngx_http_eas_module.so}
WORK=$ROOT/build/bench
SETUP=${SETUP:-600}
HOLD=${HOLD:-120}
PER_WORKER=${PER_WORKER:-9000}
PER_CLIENT=${PER_CLIENT:-17000}
PER_BACKEND=${PER_BACKEND:-14000}
DEVICES=${DEVICES:-on}         # off: "all" without the device zone
FRONTS=${FRONTS:-plain eas preauth longpoll all}
PING=${PING:-interval}          # empty: Pings without a body (remembered)

SIZES=${*:-10000 50000 100000}

[ -f "$MODULE" ] || { echo "bench: build the module first (make)" >&2; exit 1; }

mkdir -p "$WORK"
gcc -O2 -Wall -Wextra -o "$WORK/holdsrv" bench/holdsrv.c
gcc -O2 -Wall -Wextra -o "$WORK/loadcli" bench/loadcli.c -lssl -lcrypto

if [ ! -f "$WORK/cert.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj /CN=localhost -days 30 -keyout "$WORK/key.pem" \
        -out "$WORK/cert.pem" 2>/dev/null
fi

# W2 of docs/protocol.md: <Ping><HeartbeatInterval>3540</...></Ping>
printf '\003\001\152\000\000\015\105\110\003\063\065\064\060\000\001\001' \
    > "$WORK/ping.wbxml"
{
    printf 'POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=bench'
    printf '&DeviceId=devXXXXXXXX&DeviceType=iPhone HTTP/1.1\r\n'
    printf 'Host: mail.example.org\r\n'
    printf 'MS-ASProtocolVersion: 14.1\r\n'
    printf 'X-MS-PolicyKey: 1307862372\r\n'
    printf 'Authorization: Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ=\r\n'
    printf 'User-Agent: Apple-iPhone13C4/2307.71 (iOS 17.1.2; build 21B101)\r\n'
    printf 'Content-Type: application/vnd.ms-sync.wbxml\r\n'
    if [ "$PING" = empty ]; then
        printf 'Content-Length: 0\r\n\r\n'
    else
        printf 'Content-Length: 16\r\n\r\n'
        cat "$WORK/ping.wbxml"
    fi
} > "$WORK/request"

# bench:bench-password, the Authorization above
echo 'bench:{PLAIN}bench-password' > "$WORK/users"

pids=""

cleanup() {
    touch "$WORK/stop" 2>/dev/null || true
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -f "$WORK/run/nginx.pid" ]; then
        kill -TERM "$(cat "$WORK/run/nginx.pid")" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# sum of a smaps_rollup field (kB) over the master's children
workers_kb() {
    total=0
    for pid in $(ps --ppid "$1" -o pid= ); do
        kb=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    echo $total
}

ceil_div() {
    echo $((($1 + $2 - 1) / $2))
}

write_conf() {
    mode=$1 workers=$2 port=$3 backend=$4 conf=$5

    {
        if [ "$mode" != plain ]; then
            echo "load_module $MODULE;"
        fi
        cat <<EOF
worker_processes $workers;
worker_rlimit_nofile 20000;
pid $WORK/run/nginx.pid;
error_log $WORK/run/error.log notice;
events { worker_connections 19000; }
http {
    access_log off;
    client_body_temp_path $WORK/run/body;
    proxy_temp_path $WORK/run/proxy;
    fastcgi_temp_path $WORK/run/fastcgi;
    uwsgi_temp_path $WORK/run/uwsgi;
    scgi_temp_path $WORK/run/scgi;
EOF
        if [ "$mode" = all ] && [ "$DEVICES" = on ]; then
            echo "    eas_device_zone zone=eas_devices:64m;"
        fi
        case $mode in preauth|all)
            echo "    eas_preauth_zone zone=auth:16m;" ;;
        esac
        echo "    upstream backend {"
        for i in 1 2 3 4 5 6 7 8; do
            echo "        server 127.0.2.$i:$backend;"
        done
        case $mode in longpoll|all)
            # needed by builds before the wrapper covered every upstream
            echo "        eas_upstream_timeouts;" ;;
        esac
        cat <<EOF
    }
    server {
        listen *:$port ssl reuseport backlog=4096;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.3;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 3600s;
        location /Microsoft-Server-ActiveSync {
EOF
        if [ "$mode" != plain ]; then
            echo "            eas on;"
        fi
        case $mode in preauth|all)
            echo "            eas_preauth \"ActiveSync\";"
            echo "            eas_preauth_cache zone=auth;"
            echo "            eas_preauth_user_file $WORK/users plain;" ;;
        esac
        if [ "$mode" = all ] && [ "$DEVICES" = on ]; then
            echo "            eas_devices eas_devices;"
        fi
        case $mode in longpoll|all)
            echo "            eas_longpoll on;" ;;
        esac
        cat <<EOF
            proxy_pass http://backend;
        }
    }
}
EOF
    } > "$conf"
}

# run_one MODE N -> "held backend pss_kb rss_kb dropped failed answered setup"
run_one() {
    mode=$1 n=$2
    workers=$(ceil_div "$n" "$PER_WORKER")
    [ "$workers" -ge 2 ] || workers=2
    clients=$(ceil_div "$n" "$PER_CLIENT")
    backends=$(ceil_div "$n" "$PER_BACKEND")
    port=$(free_port)
    bport=$(free_port)

    rm -rf "$WORK/run" "$WORK/stop"
    mkdir -p "$WORK/run"
    pids=""

    for i in $(seq "$backends"); do
        "$WORK/holdsrv" "$bport" $((SETUP + HOLD + 60)) &
        pids="$pids $!"
    done

    write_conf "$mode" "$workers" "$port" "$bport" "$WORK/run/nginx.conf"
    "$NGINX" -p "$WORK/run" -c "$WORK/run/nginx.conf" -e "$WORK/run/error.log"
    master=$(cat "$WORK/run/nginx.pid")
    sleep 1

    # warm: one request first (the credential cache, every worker's
    # lazily made state), answered or cut after 2 s
    for i in 1 2 3 4; do
        timeout 5 "$WORK/loadcli" 127.0.3. 8 "$port" 1 "$WORK/request" \
            5 1 "$WORK/nostop" $((900000 + i)) > /dev/null 2>&1 || true
    done

    pss0=$(workers_kb "$master" Pss)
    rss0=$(workers_kb "$master" Rss)

    per=$(ceil_div "$n" "$clients")
    left=$n
    for i in $(seq "$clients"); do
        count=$per
        [ "$count" -le "$left" ] || count=$left
        left=$((left - count))
        "$WORK/loadcli" 127.0.3. 8 "$port" "$count" "$WORK/request" \
            "$SETUP" "$HOLD" "$WORK/stop" $(((i - 1) * per)) \
            > "$WORK/run/client.$i" 2>&1 &
        pids="$pids $!"
    done

    # every client set up (bounded by SETUP inside loadcli)
    while [ "$(cat "$WORK"/run/client.* | grep -c ready)" -lt "$clients" ]; do
        sleep 1
    done
    sleep 3

    pss1=$(workers_kb "$master" Pss)
    rss1=$(workers_kb "$master" Rss)
    held_backend=$(ss -Htn state established "( sport = :$bport )" | wc -l)

    touch "$WORK/stop"
    while [ "$(cat "$WORK"/run/client.* | grep -c 'held=')" -lt "$clients" ]; do
        sleep 1
    done

    held=0 dropped=0 failed=0 answered=0 setup=0
    for f in "$WORK"/run/client.*; do
        line=$(grep 'held=' "$f")
        for kv in $line; do
            case $kv in
            held=*) held=$((held + ${kv#held=})) ;;
            dropped=*) dropped=$((dropped + ${kv#dropped=})) ;;
            failed=*) failed=$((failed + ${kv#failed=})) ;;
            answered=*) answered=$((answered + ${kv#answered=})) ;;
            esac
        done
        # "loadcli: ready opened=N failed=N in S s": the slowest client
        s=$(awk '/ready/ { print $(NF - 1) }' "$f")
        setup=$(awk -v a="$setup" -v b="$s" 'BEGIN { print (b > a) ? b : a }')
    done

    kill -TERM "$master"
    while kill -0 "$master" 2>/dev/null; do sleep 0.2; done
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=""

    echo "$held $held_backend $((pss1 - pss0)) $((rss1 - rss0)) $dropped $failed $answered $setup $workers"
}

printf '%-8s %-8s %8s %8s %8s %8s %10s %10s %8s\n' N front held backend \
    dropped failed "Pss/conn" "RSS/conn" setup_s
for n in $SIZES; do
    for mode in $FRONTS; do
        set -- $(run_one "$mode" "$n")
        pss_b=$(( $3 * 1024 / n ))
        rss_b=$(( $4 * 1024 / n ))
        printf '%-8s %-8s %8s %8s %8s %8s %9sB %9sB %8s\n' "$n" "$mode" \
            "$1" "$2" "$5" "$6" "$pss_b" "$rss_b" "$8"
        eval "pss_$mode=$pss_b"
    done
    case " $FRONTS " in *" plain "*)
        for mode in $FRONTS; do
            [ "$mode" != plain ] || continue
            eval "pss=\$pss_$mode"
            printf '%-8s %-8s - plain: %5s B per held connection (Pss), ratio %s\n' \
                "$n" "$mode" $((pss - pss_plain)) \
                "$(awk -v a="$pss" -v b="$pss_plain" 'BEGIN { printf "%.3f", a / b }')"
        done ;;
    esac
done
