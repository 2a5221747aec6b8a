#!/usr/bin/python3
"""What a flood of forged "R" messages on the gateways' channel costs a
gateway's requests (docs/scale-out.md, "Runtime rules on several
gateways"): N well-formed messages, each naming a rule (one of K keys, each newer than the last,
none of them written to the hash), published in one script, then a
marker rule written to the hash and published.  Meanwhile Syncs are
sent one after the other; prints the slowest Sync's time while the
flood was handled, their count, and the time until the marker is in
force.  Every component is real and local: one nginx gateway with the
module (2 workers), the recording EAS backend, a redis-server; all on
127.0.0.1, every wait bounded.  Not a test: the figures are for
comparing builds (EAS_MODULE=path picks the module).

    bench/shared-rules-flood.py [--n 30000] [--keys 1000]
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request

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
    eas_shared_state ${redis_url} timeout=1s;
    eas_preauth_zone zone=auth:1m;
    eas_admin_rules zone=rules:4m file=${dir}/admin.rules;
    upstream backend {
        server 127.0.0.1:${backend_port};
    }
    server {
        listen 127.0.0.1:${port};
        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file ${dir}/users plain;
            proxy_pass http://backend;
        }
        location /eas/admin/ {
            allow 127.0.0.1;
            deny all;
            eas_admin;
        }
    }
}
"""

CHANNEL = "eas:db0:events"
HASH = "eas:r:rules"
DEADLINE = 300.0

FLOOD = ("for i = 1, tonumber(ARGV[2]) do "
         "  local k = i % tonumber(ARGV[4]) "
         "  local f = 'dapplflood' .. k "
         "  redis.call('PUBLISH', ARGV[1], 'R other 0 0 5 ' .. #f .. "
         "    ' rules' .. f .. 'block ' .. (tonumber(ARGV[3]) + i) .. ' 0 ApplFLOOD' .. k) "
         "end return 1")


def listed(nginx):
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/rules" % nginx.port,
        headers={"X-EAS-Admin": "1"})
    with urllib.request.urlopen(request, timeout=DEADLINE) as reply:
        return {r.get("device_id")
                for r in json.loads(reply.read())["rules"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    if not os.path.isfile(MODULE):
        sys.exit("shared-rules-flood: build the module first: make")

    work = tempfile.mkdtemp(prefix="eas-flood.")
    os.chmod(work, 0o755)
    with RedisServer(os.path.join(work, "redis")) as redis, \
            EasBackend(hold_cap=0) as backend:
        nginx = Nginx(os.path.join(work, "a"), MODULE)
        nginx.port = free_port()
        nginx.render(CONF, port=nginx.port, redis_url=redis.url,
                     backend_port=backend.port)
        with open(os.path.join(nginx.dir, "users"), "w") as f:
            f.write("jdoe:{PLAIN}secret\n")
        nginx.start(ports=(nginx.port,))
        try:
            deadline = time.monotonic() + 30
            while redis.command("PUBSUB", "NUMSUB", CHANNEL)[1] < 2:
                if time.monotonic() > deadline:
                    sys.exit("shared-rules-flood: no subscriptions")
                time.sleep(0.05)
            client = EasClient("http://127.0.0.1:%d/Microsoft-Server-"
                               "ActiveSync" % nginx.port, user="jdoe",
                               password="secret", device_id="ApplBENCH",
                               timeout=DEADLINE)
            for _ in range(5):
                client.sync()                 # warm: credentials cached

            done = threading.Event()
            samples = []

            def syncs():
                while not done.is_set():
                    start = time.monotonic()
                    client.sync()
                    samples.append(time.monotonic() - start)

            worker = threading.Thread(target=syncs)
            worker.start()
            start = time.monotonic()
            now = int(time.time() * 1000)
            redis.command("EVAL", FLOOD, "0", CHANNEL, str(args.n),
                          str(now), str(args.keys), timeout=60)
            redis.command("HSET", HASH, "dapplmarker",
                          "block %d 0 ApplMARKER" % now)
            redis.command("PUBLISH", CHANNEL, "R other 0 0 5 11 rules"
                          "dapplmarkerblock %d 0 ApplMARKER" % now)
            while "ApplMARKER" not in listed(nginx):
                if time.monotonic() > start + DEADLINE:
                    break
                time.sleep(0.05)
            handled = time.monotonic() - start
            done.set()
            worker.join(DEADLINE)
            print("messages %d keys %d: marker in force after %.2f s; "
                  "Syncs meanwhile %d, slowest %.0f ms"
                  % (args.n, args.keys, handled, len(samples),
                     max(samples) * 1000 if samples else 0))
        finally:
            nginx.stop()


if __name__ == "__main__":
    main()
