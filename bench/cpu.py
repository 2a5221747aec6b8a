#!/usr/bin/python3
"""Instructions per request of the front nginx, measured with callgrind,
side by side in one run (bench/cpu.sh is the entry point; see
bench/README.md).

Each front is one nginx process (master_process off, so the one process
measured is the one that serves) started under valgrind --tool=callgrind,
terminating TLS and proxying to the same plain nginx backend over
keep-alive.  One keep-alive TLS connection sends N identical ActiveSync
requests; the front is run twice, with N1 and N2 requests, and

    instructions/request = (Ir(N2) - Ir(N1)) / (N2 - N1)

so start-up, the TLS handshake, the first (cold) verification and
shutdown cancel out.  The fronts:

    plain       proxy_pass, no module
    eas         eas on (parse only)
    preauth     eas on + eas_preauth, bcrypt file (cost 5: only the first,
                cold request pays it, and it cancels out), warm cache
    everything  preauth + device zone, RULES block rules, eas_longpoll,
                eas_upstream_timeouts
    auth_basic  nginx's auth_basic with a {SHA} file (no module)
    eas_nometrics, everything_nometrics
                eas and everything with "eas_metrics off": what the
                per-worker counters cost on the request path
    preauth_shared, everything_shared
                preauth and everything with "eas_shared_state" on a
                redis-server the bench starts: the warm path must make no
                round trip to it (docs/scale-out.md), so the same figure

Prints one table with the ratio of each to plain.  With --base MODULE
every front that loads the module runs twice, with that build ("before")
and with EAS_MODULE ("after"), and the table shows both side by side.
With --annotate NAME it also prints that front's per-function profile of
the warm path: each function's instructions in the N2 run minus those in
the N1 run (from callgrind_annotate), divided by N2 - N1, and next to it
the same function's count in the plain front (what is left over is the
module's).  Not a test: the figures are for comparing builds.
"""

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
MODULE = os.environ.get("EAS_MODULE",
                        os.path.join(TOP, "build", "ngx_http_eas_module.so"))
USER, PASSWORD = "jdoe", "secret"
DEVICE_ID = "ApplC39ZH2VJJCM3"
# FolderSync, SyncKey 1: the WBXML a phone sends
BODY = bytes.fromhex("03016a000756520331000101")

FRONTS = ("plain", "eas", "preauth", "everything", "auth_basic",
          "eas_nometrics", "everything_nometrics", "preauth_shared",
          "everything_shared")

# the "_shared" fronts: eas_shared_state on a redis-server of the bench
REDIS_PORT = None

COMMON = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/{name}.pid;
error_log {dir}/{name}.error.log notice;
events {{ worker_connections 64; }}
thread_pool default threads=2;
"""

HTTP_COMMON = """
    access_log off;
    client_body_temp_path {dir}/{name}.body;
    proxy_temp_path {dir}/{name}.proxy;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 8;
        {upstream_extra}
    }}
"""

SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 100000;

        location /Microsoft-Server-ActiveSync {{
            {location}
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }}
    }}
"""

PREAUTH = """eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file {dir}/users.bcrypt;"""

LOCATIONS = {
    "plain": "",
    "eas": "eas on;",
    "preauth": PREAUTH,
    "everything": PREAUTH + """
            eas_devices devices;
            eas_device_rules {dir}/rules;
            eas_longpoll on;""",
    "auth_basic": """auth_basic "ActiveSync";
            auth_basic_user_file {dir}/users.sha;""",
}

LOCATIONS["eas_nometrics"] = LOCATIONS["eas"]
LOCATIONS["everything_nometrics"] = LOCATIONS["everything"]

HTTP_EXTRA = {
    "preauth": "eas_preauth_zone zone=auth:10m;",
    "everything": "eas_preauth_zone zone=auth:10m;\n"
                  "    eas_device_zone zone=devices:10m;",
}

LOCATIONS["preauth_shared"] = LOCATIONS["preauth"]
LOCATIONS["everything_shared"] = LOCATIONS["everything"]

HTTP_EXTRA["eas_nometrics"] = "eas_metrics off;"
HTTP_EXTRA["everything_nometrics"] = (HTTP_EXTRA["everything"]
                                      + "\n    eas_metrics off;")

BACKEND = """
daemon on;
master_process on;
worker_processes 1;
pid {dir}/backend.pid;
error_log {dir}/backend.error.log notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{backend_port};
        keepalive_requests 100000;
        location / {{
            return 200 "ok";
        }}
    }}
}}
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*args, **kwargs):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **kwargs).stdout


def prepare(work, rules):
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout",
        os.path.join(work, "key.pem"), "-out", os.path.join(work, "cert.pem"))
    with open(os.path.join(work, "users.bcrypt"), "wb") as f:
        f.write(run("htpasswd", "-nbB", "-C", "5", USER, PASSWORD).strip()
                + b"\n")
    with open(os.path.join(work, "users.sha"), "wb") as f:
        f.write(run("htpasswd", "-nbs", USER, PASSWORD).strip() + b"\n")
    with open(os.path.join(work, "rules"), "w") as f:
        for i in range(rules):
            f.write("block device_id=BLOCKED%08d\n" % i)


def start_redis(work):
    """redis-server on a free port for the "_shared" fronts"""
    global REDIS_PORT
    if shutil.which("redis-server") is None:
        sys.exit("cpu.sh: redis-server not found (make deps installs it)")
    REDIS_PORT = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(REDIS_PORT, process, time.monotonic() + 10)
    return process


def uses_module(name):
    return name != "plain" and name != "auth_basic"


def front_conf(work, name, port, backend_port, module=MODULE, tag=""):
    text = COMMON.format(dir=work, name=name + tag)
    if uses_module(name):
        text = "load_module %s;\n" % module + text
    upstream_extra = ("eas_upstream_timeouts;"
                      if name.startswith("everything") else "")
    text += "http {\n" + HTTP_COMMON.format(
        dir=work, name=name, backend_port=backend_port,
        upstream_extra=upstream_extra)
    text += "    " + HTTP_EXTRA.get(name.replace("_shared", ""), "") + "\n"
    if name.endswith("_shared"):
        text += "    eas_shared_state redis://127.0.0.1:%d;\n" % REDIS_PORT
    text += SERVER.format(dir=work, port=port,
                          location=LOCATIONS[name].format(dir=work))
    text += "}\n"
    path = os.path.join(work, name + tag + ".conf")
    with open(path, "w") as f:
        f.write(text)
    for sub in ("body", "proxy"):
        os.makedirs(os.path.join(work, "%s.%s" % (name, sub)), exist_ok=True)
    return path


def request_bytes():
    token = base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
    head = ("POST /Microsoft-Server-ActiveSync?Cmd=FolderSync&User=%s"
            "&DeviceId=%s&DeviceType=iPhone HTTP/1.1\r\n"
            "Host: mail.example.org\r\n"
            "User-Agent: Apple-iPhone13C4/2307.71\r\n"
            "Authorization: Basic %s\r\n"
            "MS-ASProtocolVersion: 14.1\r\n"
            "X-MS-PolicyKey: 3769048351\r\n"
            "Content-Type: application/vnd.ms-sync.wbxml\r\n"
            "Content-Length: %d\r\n\r\n" % (USER, DEVICE_ID, token,
                                            len(BODY)))
    return head.encode() + BODY


def send(port, count, deadline):
    """count requests on one keep-alive TLS connection; every answer
    must be 200."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = request_bytes()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as raw:
        with context.wrap_socket(raw) as sock:
            reader = sock.makefile("rb")
            for i in range(count):
                if time.monotonic() > deadline:
                    raise RuntimeError("out of time after %d requests" % i)
                sock.sendall(request)
                status = reader.readline()
                if not status.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("request %d got %r" % (i, status))
                length = 0
                while True:
                    line = reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                reader.read(length)


def wait_port(port, process, deadline):
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("nginx exited with %s" % process.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("port %d never opened" % port)


def measure(work, name, conf, port, count):
    out = os.path.join(work, "%s.%d.callgrind" % (name, count))
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
         NGINX, "-p", work, "-c", conf],
        stdout=subprocess.DEVNULL, stderr=open(out + ".log", "wb"))
    try:
        deadline = time.monotonic() + 600
        wait_port(port, process, deadline)
        send(port, count, deadline)
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1]), out
    raise RuntimeError("no totals in %s" % out)


def functions(profile):
    """{function: self instructions} from callgrind_annotate."""
    # --auto=no: the annotated sources would count inlined code twice
    text = run("callgrind_annotate", "--inclusive=no", "--threshold=100",
               "--auto=no",
               profile).decode("utf-8", "replace")
    counts = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([\d,]+) \([^)]*\)\s+(\S.*)$", line)
        if match and "PROGRAM TOTALS" not in line:
            name = re.sub(r" \[[^]]*\]$", "", match.group(2))
            counts[name] = counts.get(name, 0) + int(
                match.group(1).replace(",", ""))
    return counts


def per_request_profile(first, second, requests):
    """{function: instructions per request}"""
    before, after = functions(first), functions(second)
    return {name: (after[name] - before.get(name, 0)) / requests
            for name in after}


def print_profile(title, profile, plain):
    """the top functions of a profile, each with plain's count beside"""
    print()
    print("per request, %s (self instructions; plain's count; the"
          " difference), most added first:" % title)
    plain = plain or {}
    rows = sorted(profile.items(),
                  key=lambda d: -(d[1] - plain.get(d[0], 0)))
    for function, count in rows[:40]:
        base = plain.get(function, 0)
        if count - base < 10:
            break
        print("%9.0f %9.0f %+9.0f  %s" % (count, base, count - base,
                                           function))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n1", type=int, default=200)
    parser.add_argument("--n2", type=int, default=1200)
    parser.add_argument("--rules", type=int, default=100000)
    parser.add_argument("--fronts", default=",".join(FRONTS))
    parser.add_argument("--annotate", help="front whose profile to print")
    parser.add_argument("--base", metavar="MODULE",
                        help="another build of the module to compare with")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (the callgrind files,"
                        " for callgrind_annotate --auto=yes)")
    args = parser.parse_args()

    for tool in ("valgrind", "callgrind_annotate", "openssl", "htpasswd",
                 NGINX):
        if shutil.which(tool) is None:
            sys.exit("cpu.sh: %s not found (make deps installs it)" % tool)
    if not os.path.isfile(MODULE):
        sys.exit("cpu.sh: build the module first: make")
    if args.base and not os.path.isfile(args.base):
        sys.exit("cpu.sh: no module at %s" % args.base)
    fronts = args.fronts.split(",")
    for name in fronts:
        if name not in FRONTS:
            sys.exit("cpu.sh: unknown front %s" % name)
    annotate = set()
    if args.annotate:
        annotate = {args.annotate, "plain"}

    work = tempfile.mkdtemp(prefix="eas-cpu.")
    os.chmod(work, 0o755)
    backend_port = free_port()
    redis = None
    try:
        prepare(work, args.rules)
        if any(name.endswith("_shared") for name in fronts):
            redis = start_redis(work)
        backend_conf = os.path.join(work, "backend.conf")
        with open(backend_conf, "w") as f:
            f.write(BACKEND.format(dir=work, backend_port=backend_port))
        run(NGINX, "-p", work, "-c", backend_conf)
        wait_port(backend_port, None, time.monotonic() + 10)

        # (front, build): the base build first, then this one, alternated
        runs = []
        for name in fronts:
            if args.base and uses_module(name):
                runs.append((name, "before", args.base))
            runs.append((name, "after", MODULE))

        results, profiles = {}, {}
        for name, build, module in runs:
            tag = "." + build if args.base and uses_module(name) else ""
            port = free_port()
            conf = front_conf(work, name, port, backend_port, module, tag)
            first, first_out = measure(work, name + tag, conf, port, args.n1)
            second, second_out = measure(work, name + tag, conf, port,
                                         args.n2)
            results[name, build] = (second - first) / (args.n2 - args.n1)
            print("cpu: %-11s %-6s %9.0f instructions/request" % (
                name, build if tag else "", results[name, build]),
                file=sys.stderr)
            if name in annotate:
                profiles[name, build] = per_request_profile(
                    first_out, second_out, args.n2 - args.n1)

        def cell(name, build):
            value = results.get((name, build))
            if value is None:
                value = results.get((name, "after"))
            base = results.get(("plain", "after"))
            ratio = ("%.3f" % (value / base)) if base else "-"
            return "%.1fk | %s" % (value / 1000, ratio)

        if args.base:
            print("| front | before: instructions/request | ratio to plain"
                  " | after: instructions/request | ratio to plain |")
            print("|---|---|---|---|---|")
            for name in fronts:
                print("| %s | %s | %s |" % (name, cell(name, "before"),
                                             cell(name, "after")))
        else:
            print("| front | instructions/request | ratio to plain |")
            print("|---|---|---|")
            for name in fronts:
                print("| %s | %s |" % (name, cell(name, "after")))

        plain = profiles.get(("plain", "after"))
        for build in ("before", "after"):
            profile = profiles.get((args.annotate, build))
            if profile and args.annotate != "plain":
                print_profile("%s%s" % (args.annotate, (", " + build)
                                        if args.base else ""),
                              profile, plain)
        if args.annotate == "plain" and plain:
            print_profile("plain", plain, None)
    finally:
        if redis is not None:
            redis.kill()
            redis.wait(10)
        pid_file = os.path.join(work, "backend.pid")
        if os.path.exists(pid_file):
            with open(pid_file) as f:
                os.kill(int(f.read()), signal.SIGQUIT)
        time.sleep(0.5)
        if args.keep:
            print("cpu: kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
