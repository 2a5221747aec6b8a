#!/usr/bin/python3
"""The device inventory shared through Redis (docs/scale-out.md):

  writes     --devices devices on gateway A, --rounds FolderSyncs each
             (the warm path: credentials cached, device known): the
             commands Redis ran for them, as Redis counts them (INFO
             commandstats), per request: the scripts sent (round trips
             nobody waits for), the records written (SET), everything
             (the scripts' own calls included)
  fill       --fleet records put on Redis as gateways write them, then
             gateway C started: the time until its admin API lists them
             all (C's first worker reads them, 32 a step)
  listing    on C, GET /eas/admin/devices (per_page=100): page 1, the
             last page, user=, the median of 5, in ms: imported records
             are pages of the local zone like any other

Two gateways and a third started later, 2 workers each, one
redis-server, the tests' recording backend; everything on 127.0.0.1,
every wait bounded.  Not a test: the figures are for comparing builds.

    bench/shared-inventory.py [--devices 20] [--rounds 50] [--fleet 100000]
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from eastest.backends import EasBackend          # noqa: E402
from eastest.client import EasClient             # noqa: E402
from eastest.redis import RedisServer            # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "shared_state_bench", os.path.join(ROOT, "bench", "shared-state.py"))
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)

# shared-state.py's gateway, with a zone for the fleet and the admin API
shared.CONF = shared.CONF.replace("zone=devices:10m", "zone=devices:64m") \
    .replace("""    server {
        listen 127.0.0.1:${port};
""", """    server {
        listen 127.0.0.1:${port};
        location /eas/admin/ {
            eas_admin device_zone=devices;
        }
""")


def gateway(work, name, backend, redis):
    return shared.gateway(work, name, backend, redis, 1)


def calls(redis):
    out = {}
    for line in redis.command("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_"):].partition(":")
            out[name] = int(fields.split(",")[0].split("=")[1])
    return out


def get(nginx, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (nginx.port, path),
                                timeout=60) as reply:
        return json.loads(reply.read().decode())


def timed(nginx, path, rounds=5):
    samples = []
    for _ in range(rounds):
        start = time.monotonic()
        get(nginx, path)
        samples.append(time.monotonic() - start)
    return statistics.median(samples) * 1000


def load_fleet(redis, count, now):
    """count records as a gateway writes them, through redis-cli --pipe."""
    def arg(value):
        data = value.encode()
        return b"$%d\r\n%s\r\n" % (len(data), data)

    chunks = []
    for i in range(count):
        user, device_id = "f%05d" % (i // 5), "FLEET%06d" % i
        record = "1 %d %d 0 141 0 1 %d %d 6 0 0 %s%siPhone" % (
            now - count + i, now - count + i, len(user), len(device_id),
            user, device_id)
        key = "eas:i:devices:%d:%s%s" % (len(user), user, device_id.lower())
        chunks.append(b"*5\r\n" + arg("SET") + arg(key) + arg(record)
                      + arg("EX") + arg("86400"))
        chunks.append(b"*4\r\n" + arg("ZADD") + arg("eas:iz:devices")
                      + arg(str(now - count + i)) + arg(key))
    subprocess.run(["redis-cli", "-p", str(redis.port), "--pipe"],
                   input=b"".join(chunks), check=True,
                   stdout=subprocess.DEVNULL, timeout=300)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--fleet", type=int, default=100000)
    args = parser.parse_args()
    if not os.path.isfile(shared.MODULE):
        sys.exit("shared-inventory: build the module first: make")

    work = tempfile.mkdtemp(prefix="eas-inventory.")
    os.chmod(work, 0o755)
    started = []
    with EasBackend() as backend, \
            RedisServer(os.path.join(work, "redis")) as redis:
        try:
            a = gateway(work, "a", backend, redis)
            started.append(a)
            b = gateway(work, "b", backend, redis)
            started.append(b)
            clients = [EasClient("http://127.0.0.1:%d/Microsoft-Server-"
                                 "ActiveSync" % a.port, user="u0",
                                 password="pw0", device_id="D%03d" % i,
                                 timeout=30)
                       for i in range(args.devices)]
            for client in clients:             # known from now on
                client.foldersync()
            time.sleep(3)                      # a flush passes: not counted
            before = calls(redis)
            start = time.monotonic()
            for _ in range(args.rounds):
                for client in clients:
                    client.foldersync()
            spent = time.monotonic() - start
            time.sleep(3)                      # the last flush counted
            after = calls(redis)
            requests = args.devices * args.rounds

            def per(names):
                return sum(after.get(n, 0) - before.get(n, 0)
                           for n in names) / requests

            scripts = per(("eval", "evalsha"))
            sets = per(("set",))
            everything = per(set(after) - {"info"})

            load_fleet(redis, args.fleet, int(time.time()))
            start = time.monotonic()
            c = gateway(work, "c", backend, redis)
            started.append(c)
            deadline = start + 600
            while get(c, "/eas/admin/devices?per_page=1")["total"] \
                    < args.fleet:
                if time.monotonic() > deadline:
                    sys.exit("shared-inventory: the fleet was not listed")
                time.sleep(0.05)
            fill = time.monotonic() - start
            last = (args.fleet + 99) // 100
            first_page = timed(c, "/eas/admin/devices?per_page=100")
            last_page = timed(c, "/eas/admin/devices?per_page=100&page=%d"
                              % last)
            user = timed(c, "/eas/admin/devices?user=f00042")
        finally:
            for nginx in started:
                nginx.stop()

    print("| figure | value |")
    print("|---|---|")
    print("| warm requests | %d (%.0f/s) |" % (requests, requests / spent))
    print("| scripts sent per request | %.4f |" % scripts)
    print("| records written (SET) per request | %.4f |" % sets)
    print("| Redis commands per request, scripts' calls included | %.4f |"
          % everything)
    print("| fill of %d records by a new gateway | %.1f s |"
          % (args.fleet, fill))
    print("| listing page 1 / last page / user= | %.1f / %.1f / %.1f ms |"
          % (first_page, last_page, user))


if __name__ == "__main__":
    main()
