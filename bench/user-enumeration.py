#!/usr/bin/python3
"""User enumeration by timing (issue 10, point 10): the time of a refusal
for an unknown user against that for a known user with a wrong password,
with a password file whose alphabetically first entry is a legacy {SHA}
hash and whose users have bcrypt hashes.

Prints the median of each and the ratio unknown/known (target: about 1;
before the fix an unknown user cost the first entry's {SHA} and the
ratio was about 0.02).  Every request is a cache miss (a new password
each time) with the lockout off.  Not a test: the figures depend on the
machine.

    bench/user-enumeration.py                 # COST=10 COUNT=30
    EAS_MODULE=/path/to/old.so bench/user-enumeration.py

Needs: nginx, htpasswd, openssl and the module built (make).  Uses only
127.0.0.1 and a temporary directory.
"""

import base64
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.environ.get("EAS_MODULE",
                        os.path.join(TOP, "build", "ngx_http_eas_module.so"))
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
COST = os.environ.get("COST", "10")
COUNT = int(os.environ.get("COUNT", "30"))

CONFIG = """
load_module %(module)s;
daemon on;
worker_processes 1;
pid %(work)s/nginx.pid;
error_log %(work)s/error.log notice;
user root;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(work)s/body;
    proxy_temp_path %(work)s/proxy;
    eas_preauth_zone zone=auth:1m;
    server {
        listen 127.0.0.1:%(port)d;
        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth valid=1s invalid=1s;
            eas_preauth_user_file %(work)s/users;
            eas_preauth_lockout user=off address=off;
        }
    }
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line(*argv, data=None):
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def refusal_time(port, user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("POST", "/Microsoft-Server-ActiveSync?Cmd=Sync&User=u"
                 "&DeviceId=D1&DeviceType=iPhone",
                 headers={"Authorization": "Basic " + token,
                          "MS-ASProtocolVersion": "14.1",
                          "Content-Length": "0"})
    status = conn.getresponse().status
    elapsed = time.perf_counter() - started
    conn.close()
    assert status == 401, status
    return elapsed * 1000


def main():
    if not os.path.isfile(MODULE):
        sys.exit("user-enumeration.py: build the module first: make")
    work = tempfile.mkdtemp(prefix="eas-bench.")
    os.chmod(work, 0o755)
    port = free_port()
    try:
        sha = base64.b64encode(line("openssl", "dgst", "-sha1", "-binary",
                                    data=b"legacy")).decode()
        users = ["aaa-legacy:{SHA}%s" % sha]
        for name in ("jdoe", "amy", "zed"):
            users.append(line("htpasswd", "-nbB", "-C", COST, name,
                              "pw").decode().strip())
        with open(os.path.join(work, "users"), "w") as f:
            f.write("\n".join(users) + "\n")
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(CONFIG % {"module": MODULE, "work": work, "port": port})
        subprocess.run([NGINX, "-p", work, "-c",
                        os.path.join(work, "nginx.conf")], check=True)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)

        unknown, known = [], []
        for i in range(COUNT):      # interleaved: the same machine load
            unknown.append(refusal_time(port, "nobody%d" % i, "x%d" % i))
            known.append(refusal_time(port, "jdoe", "x%d" % i))
        u, k = statistics.median(unknown), statistics.median(known)
        print("module:          %s" % MODULE)
        print("bcrypt cost:     %s, %d requests each" % (COST, COUNT))
        print("unknown user:    %.2f ms (median)" % u)
        print("known user:      %.2f ms (median)" % k)
        print("unknown/known:   %.2f (target about 1)" % (u / k))
    finally:
        pid_file = os.path.join(work, "nginx.pid")
        if os.path.exists(pid_file):
            with open(pid_file) as f:
                os.kill(int(f.read()), signal.SIGQUIT)
            time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
