#!/usr/bin/python3
"""What eas_shared_state (docs/scale-out.md) adds where it talks to Redis:

  verification  a right password the cache has not seen (a new user each
                time): client-side latency with shared state off and on
  failure       a wrong password (a new user each time, so no lockout):
                the same
  supersede     a device's Ping held on gateway A, its new Ping sent to
                gateway B: time from B's Ping reaching the backend to A's
                Ping answered (A's sweep runs once a second, so up to
                about 1 s is expected)

Prints p50/p99 in ms.  Every component is real and local: two nginx
gateways with the module (2 workers each), a redis-server, the tests'
recording ActiveSync backend; everything on 127.0.0.1, every wait
bounded.  Not a test: the figures are for comparing builds.

    bench/shared-state.py [--n 300] [--pings 20]
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from eastest.backends import EasBackend          # noqa: E402
from eastest.client import EasClient             # noqa: E402
from eastest.nginx import Nginx, free_port       # noqa: E402
from eastest.redis import RedisServer            # noqa: E402

MODULE = os.environ.get("EAS_MODULE",
                        os.path.join(ROOT, "build", "ngx_http_eas_module.so"))

CONF = """
http {
    ${temp_paths}
    ${shared}
    eas_preauth_zone zone=auth:10m;
    eas_device_zone zone=devices:10m;
    upstream backend {
        server 127.0.0.1:${backend_port};
        keepalive 8;
    }
    server {
        listen 127.0.0.1:${port};
        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_devices devices;
            eas_longpoll on;
            eas_heartbeat_min 2s;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file users plain;
            eas_preauth_lockout user=5 address=65535;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://backend;
        }
    }
}
"""


def gateway(work, name, backend, redis, users):
    nginx = Nginx(os.path.join(work, name), MODULE)
    port = free_port()
    shared = ("eas_shared_state %s timeout=1s;" % redis.url) if redis else ""
    nginx.render(CONF, port=port, backend_port=backend.port, shared=shared)
    with open(os.path.join(nginx.dir, "users"), "w") as f:
        for i in range(users):
            f.write("u%d:{PLAIN}pw%d\n" % (i, i))
    nginx.start(ports=(port,))
    nginx.port = port
    return nginx


def client(nginx, user, password, device_id="BENCH"):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user, password=password,
                     device_id=device_id, timeout=30)


def percentiles(samples):
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return p50 * 1000, p99 * 1000


def timed(nginx, first, n, wrong):
    samples = []
    for i in range(first, first + n):
        password = ("bad%d" % i) if wrong else ("pw%d" % i)
        start = time.monotonic()
        reply = client(nginx, "u%d" % i, password).options()
        samples.append(time.monotonic() - start)
        assert reply.status == (401 if wrong else 200), reply.status
    return samples


def supersede(a, b, backend, pings):
    samples = []
    for i in range(pings):
        device_id = "PUSH%d" % i
        held = {}

        def hold():
            held["reply"] = client(a, "u0", "pw0", device_id).ping(
                heartbeat=60)

        count = len(backend.requests)
        thread = threading.Thread(target=hold)
        thread.start()
        backend.wait_for(count + 1)
        newer = threading.Thread(target=lambda: client(
            b, "u0", "pw0", device_id).ping(heartbeat=2))
        newer.start()
        backend.wait_for(count + 2)
        start = time.monotonic()
        thread.join(30)
        if thread.is_alive():
            sys.exit("shared-state: a held Ping was not superseded")
        samples.append(time.monotonic() - start)
        newer.join(30)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--pings", type=int, default=20)
    args = parser.parse_args()
    if not os.path.isfile(MODULE):
        sys.exit("shared-state: build the module first: make")

    work = tempfile.mkdtemp(prefix="eas-shared.")
    os.chmod(work, 0o755)
    users = 4 * args.n + 10
    started = []
    with EasBackend(supersede=False) as backend, \
            RedisServer(os.path.join(work, "redis")) as redis:
        try:
            off = gateway(work, "off", backend, None, users)
            started.append(off)
            a = gateway(work, "a", backend, redis, users)
            started.append(a)
            b = gateway(work, "b", backend, redis, users)
            started.append(b)
            # the first of each is cold (thread pool, keys): not counted
            timed(off, users - 2, 1, False)
            timed(a, users - 1, 1, False)
            rows = []
            n = args.n
            for what, wrong, first in (("verification", False, 0),
                                       ("failure", True, 2 * n)):
                base = percentiles(timed(off, first, n, wrong))
                shared = percentiles(timed(a, first + n, n, wrong))
                rows.append((what, base, shared))
            pushes = percentiles(supersede(a, b, backend, args.pings))
        finally:
            for nginx in started:
                nginx.stop()

    print("| path | off p50 | off p99 | shared p50 | shared p99 |"
          " added p50 | added p99 |")
    print("|---|---|---|---|---|---|---|")
    for what, base, shared in rows:
        print("| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %+.2f ms |"
              " %+.2f ms |" % (what, base[0], base[1], shared[0], shared[1],
                               shared[0] - base[0], shared[1] - base[1]))
    print("| supersede across gateways | | | %.0f ms | %.0f ms | | |"
          % pushes)


if __name__ == "__main__":
    main()
