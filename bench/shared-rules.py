#!/usr/bin/python3
"""How fast a runtime rule (eas_admin_rules) made on one gateway is in
force on the others through eas_shared_state (docs/scale-out.md):

  change        the admin API's answer to the change on gateway A
                (applied to A's zone, its file written, the change
                queued for Redis)
  propagation   from that answer to the change listed by gateway B's
                admin API (B's zone has it: its next request is decided
                by it), polled in a tight loop
  restart       a gateway started with R rules on Redis: from its start
                to all R listed by it

Alternately a block and its removal of one DeviceId, N times.  Prints
p50/p99 in ms.  Every component is real and local: three nginx gateways
with the module (2 workers each), a redis-server; everything on
127.0.0.1, every wait bounded.  Not a test: the figures are for
comparing builds.

    bench/shared-rules.py [--n 200] [--rules 500]
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from eastest.nginx import Nginx, free_port       # noqa: E402
from eastest.redis import RedisServer            # noqa: E402

# the module, and the percentiles, as the shared state's bench has them
_spec = importlib.util.spec_from_file_location(
    "shared_state_bench", os.path.join(ROOT, "bench", "shared-state.py"))
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)
MODULE = shared.MODULE
percentiles = shared.percentiles

CONF = """
http {
    ${temp_paths}
    eas_shared_state ${redis_url} timeout=1s;
    eas_admin_rules zone=rules:4m file=${dir}/admin.rules;
    server {
        listen 127.0.0.1:${port};
        location /eas/admin/ {
            allow 127.0.0.1;
            deny all;
            eas_admin;
        }
    }
}
"""

DEADLINE = 30.0


def gateway(work, name, redis, start=True):
    nginx = Nginx(os.path.join(work, name), MODULE)
    nginx.port = free_port()
    nginx.render(CONF, port=nginx.port, redis_url=redis.url)
    if start:
        nginx.start(ports=(nginx.port,))
    return nginx


def api(nginx, method, path):
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/%s" % (nginx.port, path),
        method=method, headers={"X-EAS-Admin": "1"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def listed(nginx):
    return {r.get("device_id") for r in api(nginx, "GET", "rules")["rules"]}


def wait(condition, what):
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            sys.exit("shared-rules: no %s within %.0f s" % (what, DEADLINE))


def changes(a, b, n):
    answer, propagation = [], []
    for i in range(n):
        block = i % 2 == 0
        start = time.monotonic()
        if block:
            api(a, "POST", "rules?access=block&device_id=ApplBENCH")
        else:
            api(a, "DELETE", "rules?device_id=ApplBENCH")
        answered = time.monotonic()
        wait(lambda: ("ApplBENCH" in listed(b)) == block, "change on B")
        answer.append(answered - start)
        propagation.append(time.monotonic() - answered)
    return answer, propagation


def restart(work, a, redis, rules):
    for i in range(rules):
        api(a, "POST", "rules?access=block&device_id=ApplMANY%d" % i)
    c = gateway(work, "c", redis, start=False)
    start = time.monotonic()
    c.start(ports=(c.port,))
    wait(lambda: len(listed(c)) >= rules, "rules on the new gateway")
    return c, time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rules", type=int, default=500)
    args = parser.parse_args()
    if not os.path.isfile(MODULE):
        sys.exit("shared-rules: build the module first: make")

    work = tempfile.mkdtemp(prefix="eas-rules.")
    os.chmod(work, 0o755)
    started = []
    with RedisServer(os.path.join(work, "redis")) as redis:
        try:
            a = gateway(work, "a", redis)
            started.append(a)
            b = gateway(work, "b", redis)
            started.append(b)
            wait(lambda: redis.command("PUBSUB", "NUMSUB",
                                       "eas:db0:events")[1] >= 4,
                 "subscriptions")
            changes(a, b, 4)                  # warm up, not counted
            answer, propagation = changes(a, b, args.n)
            c, took = restart(work, a, redis, args.rules)
            started.append(c)
        finally:
            for nginx in started:
                nginx.stop()

    print("| what | p50 | p99 |")
    print("|---|---|---|")
    print("| change answered on A | %.2f ms | %.2f ms |"
          % percentiles(answer))
    print("| in force on B after that | %.2f ms | %.2f ms |"
          % percentiles(propagation))
    print("| gateway started with %d rules on Redis: all in force | "
          "%.0f ms | |" % (args.rules, took * 1000))


if __name__ == "__main__":
    main()
