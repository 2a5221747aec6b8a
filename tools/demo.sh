#!/bin/bash
# make demo / make demo-stop: a gateway on https://127.0.0.1:$DEMO_PORT
# in front of the EAS backend simulator, and device sessions through it:
# a refused password, a blocked device, a malformed request, a Ping held
# until new mail arrives (DirectPush) and a lockout.
#
#   tools/demo.sh start|stop
#
# Everything lives in demo/ (ignored by git): a throwaway CA and
# certificate, the rendered nginx.conf, logs, pid files.  Only 127.0.0.1.

set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/demo"
port=${DEMO_PORT:-8443}
backend_port=${DEMO_BACKEND_PORT:-9080}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
url="https://127.0.0.1:$port/Microsoft-Server-ActiveSync"

step() {
    printf '\n== %s\n' "$*"
}

stop() {
    if [ -f "$dir/nginx.pid" ]; then
        kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
        rm -f "$dir/nginx.pid"
        echo "demo: nginx stopped"
    fi

    if [ -f "$dir/backend.pid" ]; then
        kill -TERM "$(cat "$dir/backend.pid")" 2>/dev/null || true
        rm -f "$dir/backend.pid"
        echo "demo: backend simulator stopped"
    fi
}

make_certs() {
    [ -f "$dir/server.pem" ] && return 0

    openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
        -subj "/CN=ngx_eas demo CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null

    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null

    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$dir/san.ext"

    openssl x509 -req -in "$dir/server.csr" -days 30 \
        -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
}

render_conf() {
    cat > "$dir/nginx.conf" <<CONF
# rendered by tools/demo.sh; the included files are conf.example/'s
load_module $top/build/ngx_http_eas_module.so;

worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log info;

events {
    worker_connections 1024;
}

http {
    include $top/conf.example/eas-log-formats.conf;

    eas_preauth_zone zone=eas_auth:1m;
    eas_device_zone zone=eas_devices:1m;

    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    upstream eas_backend {
        server 127.0.0.1:$backend_port;
        keepalive 8;
    }

    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;

        ssl_certificate     $dir/server.pem;
        ssl_certificate_key $dir/server.key;
        include $top/conf.example/tls-modern.conf;

        access_log $dir/access.log eas_text;

        location /Microsoft-Server-ActiveSync {
            eas on;

            # Basic credentials checked at the edge against a bcrypt file,
            # in nginx's thread pool, cached in the shared zone
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=eas_auth valid=5m invalid=5m;
            eas_preauth_user_file $dir/users.htpasswd;
            # 3 wrong passwords in 15 minutes lock the user for 2 minutes
            eas_preauth_lockout user=3 address=50 window=15m time=2m;

            # every device recorded; conf.example's rules
            eas_devices eas_devices;
            include $top/conf.example/eas-devices.conf;

            include $top/conf.example/eas-proxy.conf;
            proxy_pass http://eas_backend;
        }

        location = /eas/devices {
            eas_devices eas_devices;
            eas_device_inventory;
        }

        location / {
            return 404;
        }
    }
}
CONF
}

wait_port() {
    i=0
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 50 ]; then
            echo "demo: nothing listens on 127.0.0.1:$1" >&2
            return 1
        fi
        sleep 0.1
    done
}

# a port some other program holds: say which, and how to pick another
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        echo "demo: 127.0.0.1:$1 is already in use$(port_owner "$1")." >&2
        echo "demo: stop that program, or pick other ports:" \
             "DEMO_PORT=9443 DEMO_BACKEND_PORT=9081 make demo" >&2
        return 1
    fi
}

port_owner() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -ltnpH "sport = :$1" 2>/dev/null \
        | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/ by \1 (pid \2)/p' \
        | head -n 1
}

# the backend simulator's record shows a Ping held for the device
wait_ping_held() {
    i=0
    while ! curl -s "http://127.0.0.1:$backend_port/_sim/requests" \
            | grep -q 'Cmd=Ping&User=amy'; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "demo: the Ping never reached the backend" >&2
            return 1
        fi
        sleep 0.1
    done
}

start() {
    stop >/dev/null
    port_free "$port"
    port_free "$backend_port"
    mkdir -p "$dir/tmp"

    step "Throwaway CA and certificate for 127.0.0.1 in demo/"
    make_certs
    echo "demo/ca.pem signs demo/server.pem (CN=localhost, IP 127.0.0.1)"

    step "A password file: jdoe / demo and amy / demo (bcrypt, made by htpasswd)"
    htpasswd -b -c -B -C 8 "$dir/users.htpasswd" jdoe demo 2>&1
    htpasswd -b -B -C 8 "$dir/users.htpasswd" amy demo 2>&1

    step "EAS backend simulator on 127.0.0.1:$backend_port"
    "$top/tools/eas-backend" --listen "127.0.0.1:$backend_port" \
        --pidfile "$dir/backend.pid" > "$dir/backend.log" 2>&1 &
    wait_port "$backend_port"
    echo "log: demo/backend.log"

    step "nginx $("$nginx" -v 2>&1 | sed 's/.*: //') with ngx_eas on $url"
    render_conf
    : > "$dir/access.log"
    : > "$dir/error.log"
    "$nginx" -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    wait_port "$port"

    step "A device session: iPhone, plain query, protocol 16.1"
    "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
        --user 'CONTOSO\jdoe' --password demo \
        --device-id ApplC39ZH2VJJCM3 --device-type iPhone \
        --protocol 16.1 --form plain --heartbeat 3 session

    step "A Windows Mail device: base64 query, binary DeviceId, 14.0"
    "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
        --user jdoe@contoso.com --password demo \
        --device-id 6ff14b29fb6f64f0b33a6b300e79c819 --device-id-hex \
        --device-type WindowsMail --user-agent "MSFT-WIN-3/10.0.19045" \
        --protocol 14.0 --form base64 foldersync

    step "A wrong password is refused at the edge (401)"
    "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
        --user jdoe --password wrong --device-id ApplC39ZH2VJJCM3 \
        --device-type iPhone --protocol 16.1 foldersync || true
    grep 'eas: ' "$dir/error.log" | tail -n 1

    step "An iOS 6.1 build (conf.example/eas-devices.conf) is blocked (Status 129)"
    "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
        --user jdoe --password demo --device-id ApplLOOP0001 \
        --device-type iPhone --user-agent Apple-iPhone4C1/1002.141 \
        --protocol 14.1 foldersync || true
    grep 'eas: ' "$dir/error.log" | tail -n 1

    step "A malformed request is refused at the edge (400)"
    curl -sS --cacert "$dir/ca.pem" -o /dev/null -w 'HTTP %{http_code}\n' \
        -X POST -H 'MS-ASProtocolVersion: 14.1' \
        "$url?Cmd=Sync&DeviceId=AAA&DeviceId=BBB&DeviceType=iPhone"
    grep 'eas: ' "$dir/error.log" | tail -n 1

    step "DirectPush: a Ping held until new mail arrives"
    echo "amy's phone sends a Ping with a 5-minute heartbeat; the gateway"
    echo "holds it open to the backend.  Then new mail arrives in the Inbox"
    echo "(the simulator's notify, folder 5) and the Ping is answered at once:"
    "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
        --user amy --password demo --device-id ApplAMY00001 \
        --device-type iPhone --protocol 16.1 --heartbeat 300 ping \
        > "$dir/ping.out" 2>&1 &
    ping_pid=$!
    wait_ping_held
    echo "held: $(curl -s "http://127.0.0.1:$backend_port/_sim/requests" \
        | grep -c 'Cmd=Ping&User=amy') Ping at the backend; new mail now"
    curl -s -o /dev/null -X POST \
        "http://127.0.0.1:$backend_port/_sim/notify?folder=5"
    wait "$ping_pid" || true
    cat "$dir/ping.out"

    step "A lockout: three wrong passwords lock amy out for 2 minutes"
    for n in 1 2 3; do
        "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
            --user amy --password "guess$n" --device-id ApplSTALE001 \
            --device-type iPhone --protocol 16.1 foldersync || true
    done
    grep 'locked out' "$dir/error.log" | tail -n 1
    echo "the right password from a new device is refused while it lasts:"
    "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
        --user amy --password demo --device-id ApplNEW00001 \
        --device-type iPhone --protocol 16.1 foldersync || true
    grep 'eas: ' "$dir/error.log" | tail -n 1
    echo "amy's own phone, known good, keeps syncing:"
    "$top/tools/eas-client" --url "$url" --cafile "$dir/ca.pem" \
        --user amy --password demo --device-id ApplAMY00001 \
        --device-type iPhone --protocol 16.1 foldersync

    step "What the gateway logged (demo/access.log, format eas_text)"
    cat "$dir/access.log"

    step "The device inventory (GET /eas/devices)"
    curl -sS --cacert "$dir/ca.pem" "https://127.0.0.1:$port/eas/devices"
    echo

    step "Running"
    echo "gateway: $url  (CA: demo/ca.pem)"
    echo "try:     tools/eas-client --url $url --cafile demo/ca.pem \\"
    echo "             --user jdoe --password demo --device-id MYDEVICE1 \\"
    echo "             --device-type iPhone session"
    echo "stop:    make demo-stop"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
