#!/usr/bin/python3
"""Held-Ping supersede across gateways (docs/scale-out.md): a device's
Ping held on gateway A, its new Ping sent to gateway B; the time from
B's Ping reaching the backend to A's Ping answered (Status 1), p50 and
p99 over --pings devices.  Two gateways with the module (2 workers
each), one redis-server, the tests' recording backend, all on
127.0.0.1, every wait bounded.  With BASE=/path/to/old.so the same run
with that module too, for before/after.  Not a test: figures only.

    bench/supersede.py [--pings 50]
    BASE=/tmp/main.so bench/supersede.py
"""

import argparse
import importlib.util
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from eastest.backends import EasBackend          # noqa: E402
from eastest.redis import RedisServer            # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "shared_state_bench", os.path.join(ROOT, "bench", "shared-state.py"))
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)


def run(module, pings):
    shared.MODULE = module
    work = tempfile.mkdtemp(prefix="eas-supersede.")
    os.chmod(work, 0o755)
    started = []
    with EasBackend(supersede=False) as backend, \
            RedisServer(os.path.join(work, "redis")) as redis:
        try:
            a = shared.gateway(work, "a", backend, redis, 2)
            started.append(a)
            b = shared.gateway(work, "b", backend, redis, 2)
            started.append(b)
            return shared.percentiles(shared.supersede(a, b, backend, pings))
        finally:
            for nginx in started:
                nginx.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pings", type=int, default=50)
    args = parser.parse_args()
    builds = [("this build", shared.MODULE)]
    if os.environ.get("BASE"):
        builds.insert(0, ("BASE", os.environ["BASE"]))
    rows = []
    for name, module in builds:
        if not os.path.isfile(module):
            sys.exit("supersede: %s is missing: run make" % module)
        rows.append((name, run(module, args.pings)))
    print("| module | supersede p50 | supersede p99 |")
    print("|---|---|---|")
    for name, (p50, p99) in rows:
        print("| %s | %.1f ms | %.1f ms |" % (name, p50, p99))


if __name__ == "__main__":
    main()
