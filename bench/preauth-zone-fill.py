#!/usr/bin/python3
"""The pre-authentication zone under a spray of invented user names: how
many requests fill it, and what the edge does then.

    bench/preauth-zone-fill.py [SIZE] [MAX]      (default 10m, 150000)
    EAS_MODULE=/path/to/other.so bench/preauth-zone-fill.py

One nginx (two workers) with "eas_preauth_zone zone=auth:SIZE", the
default lockout (user=5 address=50 window=15m time=15m) and a {SHA}
password file (cheap hashes: the figure is the zone's, not the CPU's).
First a victim user is locked (5 wrong passwords); then refused logins
of invented names, 49 per loopback address (127.0.1.1, 127.0.1.2, ...:
an address locks at its 50th failure), one connection each.  Every 500
requests the victim's right password is tried from a new device and
address.  It stops at the first of:

    full       the edge refuses a new name (503, the zone has no room
               for its counters): the module fails closed
    unlocked   the victim's password is accepted: the spray pushed the
               victim's lock out of the zone (what main did)
    MAX        neither

Everything runs on 127.0.0.0/8 in a temporary directory; nginx is
stopped on exit.  Not a test: the rate depends on the machine.
"""

import base64
import http.client
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))

from eastest.backends import EasBackend  # noqa: E402
from eastest.nginx import Nginx, free_port  # noqa: E402

CONFIG = """
http {
    ${temp_paths}
    access_log off;
    eas_preauth_zone zone=auth:${size};

    server {
        listen 127.0.0.1:${port};
        error_log ${dir}/error.log notice;

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file ${dir}/users;
            proxy_pass http://127.0.0.1:${backend_port};
        }
    }
}
"""


def send(port, user, password, device, source):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                            source_address=(source, 0))
    try:
        connection.request(
            "POST", "/Microsoft-Server-ActiveSync?Cmd=Sync&User=x&DeviceId=%s"
            "&DeviceType=iPhone" % device, body=b"",
            headers={"Authorization": "Basic " + token,
                     "MS-ASProtocolVersion": "14.1",
                     "Content-Length": "0"})
        reply = connection.getresponse()
        reply.read()
        return reply.status
    finally:
        connection.close()


def address(n):
    return "127.0.%d.%d" % (1 + n // 250, 1 + n % 250)


def main():
    size = sys.argv[1] if len(sys.argv) > 1 else "10m"
    most = int(sys.argv[2]) if len(sys.argv) > 2 else 150000
    module = os.environ.get("EAS_MODULE",
                            os.path.join(TOP, "build",
                                         "ngx_http_eas_module.so"))
    work = tempfile.mkdtemp(prefix="eas-zone-fill-")
    os.chmod(work, 0o755)
    port = free_port()
    with EasBackend() as backend:
        nginx = Nginx(work, module)
        nginx.render(CONFIG, size=size, port=port, backend_port=backend.port)
        line = subprocess.run(["htpasswd", "-nbs", "jdoe", "secret"],
                              stdout=subprocess.PIPE, check=True)
        with open(os.path.join(work, "users"), "wb") as f:
            f.write(line.stdout)
        nginx.start(ports=(port,))
        try:
            for i in range(5):
                send(port, "jdoe", "guess%d" % i, "EVIL", "127.0.0.3")
            started = time.monotonic()
            outcome, n = "MAX", most
            for i in range(most):
                status = send(port, "ghost%d" % i, "x", "G%d" % i,
                              address(i // 49))
                if status == 503:
                    outcome, n = "full", i + 1
                    break
                if i % 500 == 499 and send(port, "jdoe", "secret", "NEW",
                                           "127.0.0.4") == 200:
                    outcome, n = "unlocked", i + 1
                    break
            elapsed = time.monotonic() - started
            print("zone %s: %s after %d requests (%d addresses) in %.1f s, "
                  "%.0f requests/s; victim still locked: %s; new name "
                  "answered %d"
                  % (size, outcome, n, n // 49 + 1, elapsed, n / elapsed,
                     send(port, "jdoe", "secret", "NEW2", "127.0.0.5") != 200,
                     send(port, "ghost-new", "x", "GN", "127.0.0.6")))
            alerts = [line for line in nginx.error_log().splitlines()
                      if "[alert]" in line]
            print("alert lines: %d%s" % (len(alerts), (": " + alerts[0])
                                         if alerts else ""))
        finally:
            nginx.stop()


if __name__ == "__main__":
    main()
