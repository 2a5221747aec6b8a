"""eas_status: the counters of every worker summed, as JSON (checked
against docs/status.schema.json) and as Prometheus text (checked by
Debian's promtool), with counts asserted after known traffic spread over
two workers, and kept across a reload."""

import json
import os
import threading
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from eastest.backends import EasBackend
from eastest.client import EasClient
from eastest.jsonschema import validate
from eastest import confs
from eastest.nginx import free_port, start_gateway

NGINX_CONFIG = confs.gateway(
    "add_header X-Worker $pid always;",
    confs.eas_location("""
        eas_devices devices;
        eas_device_block device_id=ApplBLOCKED;
        """, confs.PREAUTH,
        "eas_preauth_lockout user=3 address=50 window=1m time=1m;"),
    confs.eas_location("eas_devices tiny;",
                       path="/tiny" + confs.EAS,
                       proxy_pass="http://backend" + confs.EAS),
    confs.eas_location(confs.PREAUTH, """
        eas_devices devices;
        eas_longpoll on;
        eas_heartbeat_min 1s;
        """, path="/held" + confs.EAS, proxy_pass="http://slow" + confs.EAS),
    confs.location("= /status", "allow 127.0.0.1;", "deny all;",
                   "eas_status;"),
    confs.location("= /metrics", "eas_status prometheus;"),
    zones=confs.ZONES + "eas_device_zone zone=tiny:32k;",
    upstream=confs.UPSTREAM + """
    upstream slow {
        server 127.0.0.1:${slow_port};
        eas_upstream_timeouts;
    }
    """,
    listen="127.0.0.1:${port} reuseport")

SCHEMA = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                      "status.schema.json")


pytestmark = pytest.mark.backend(hold_cap=0)


@pytest.fixture
def slow():
    # holds a Ping until the client goes or 30 s pass; a newer Ping of a
    # device does not end the older one here: the gateway does
    with EasBackend(hold_cap=30, supersede=False) as server:
        yield server


@pytest.fixture
def gateway(nginx_factory, backend, slow):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         files={"users": confs.password_file(
                             {"jdoe": "secret", "amy": "apple"})},
                         backend_port=backend.port, slow_port=slow.port)


def fetch(nginx, path, headers=None):
    request = urllib.request.Request("http://127.0.0.1:%d%s"
                                     % (nginx.port, path),
                                     headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.headers["Content-Type"], reply.read().decode()


def status(nginx):
    kind, body = fetch(nginx, "/status")
    assert kind == "application/json"
    document = json.loads(body)
    with open(SCHEMA) as f:
        assert validate(document, json.load(f)) == []
    return document


def promtool_check(text):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: install Debian's prometheus"
    run = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                         capture_output=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    # "check metrics" lints too: it must have nothing to say
    assert run.stdout.strip() == b"" and run.stderr.strip() == b"", run


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                      m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sample(parsed, name, **labels):
    return parsed.get((name, frozenset(labels.items())), 0)


def client(nginx, user="jdoe", password="secret", device_id="ApplJDOE1"):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user, password=password,
                     device_id=device_id)


def traffic(nginx):
    """Known traffic over both workers; returns the workers seen."""
    workers = set()
    counts = {"Sync": 0, "FolderSync": 0}
    deadline = time.monotonic() + 20
    n = 0
    while (len(workers) < 2 or n < 6) and time.monotonic() < deadline \
            and n < 200:
        cmd = "Sync" if n % 2 else "FolderSync"
        c = client(nginx)
        reply = c.sync() if cmd == "Sync" else c.foldersync()
        assert reply.status == 200
        workers.add(reply.header("X-Worker"))
        counts[cmd] += 1
        n += 1
    assert len(workers) == 2, "requests never reached a second worker"
    return counts


def test_counts_after_known_traffic_over_two_workers(gateway, backend):
    counts = traffic(gateway)

    # one invalid password, one missing credential, one blocked device,
    # one malformed request (no DeviceId)
    assert client(gateway, password="wrong").foldersync().status == 401
    assert EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % gateway.port, device_id="ApplNOAUTH"
                     ).foldersync().status == 401
    # answered as Exchange answers a blocked device: 200, Status 129
    assert client(gateway, device_id="ApplBLOCKED").sync().eas_status() \
        == 129
    reply = client(gateway).raw(
        "POST", "/Microsoft-Server-ActiveSync?Cmd=Sync&User=jdoe"
        "&DeviceType=iPhone", headers=[("MS-ASProtocolVersion", "14.1")])
    assert reply.status == 400

    forwarded = sum(counts.values())
    assert len(backend.requests) == forwarded

    doc = status(gateway)
    assert doc["requests"]["Sync"]["forwarded"] == counts["Sync"]
    assert doc["requests"]["FolderSync"]["forwarded"] == counts["FolderSync"]
    assert doc["requests"]["FolderSync"]["refused"] == 2
    assert doc["requests"]["Sync"]["refused"] == 2
    assert doc["upstream"]["Sync"]["2xx"] == counts["Sync"]
    assert doc["refusals"] == {"malformed": 1, "method_not_allowed": 0,
                               "auth": 2, "device_blocked": 1,
                               "device_max": 0, "other": 0}
    assert doc["malformed"] == {"device_id_missing": 1}
    # the first good login is verified, every later one cached (in
    # whichever worker), the blocked device authenticated too
    assert doc["auth"]["ok"] + doc["auth"]["cached"] == forwarded + 1
    assert doc["auth"]["ok"] >= 1
    assert doc["auth"]["invalid"] == 1
    assert doc["auth"]["missing"] == 1
    zones = {z["name"]: z for z in doc["zones"]}
    assert zones["devices"]["kind"] == "devices"
    assert zones["devices"]["entries"] == 2
    assert zones["auth"]["kind"] == "preauth"
    assert zones["auth"]["size"] == 1024 * 1024
    assert 0 < zones["auth"]["used"] <= zones["auth"]["size"]
    # at least the good and the wrong password's cached answers
    assert zones["auth"]["entries"] >= 2

    kind, text = fetch(gateway, "/metrics")
    assert kind == "text/plain; version=0.0.4; charset=utf-8"
    promtool_check(text)
    parsed = samples(text)
    assert sample(parsed, "nginx_eas_requests_total", command="Sync",
                  decision="forwarded") == counts["Sync"]
    assert sample(parsed, "nginx_eas_refusals_total",
                  reason="auth") == 2
    assert sample(parsed, "nginx_eas_auth_total", outcome="invalid") == 1
    assert sample(parsed, "nginx_eas_upstream_responses_total",
                  command="FolderSync", **{"class": "2xx"}) \
        == counts["FolderSync"]
    assert sample(parsed, "nginx_eas_zone_entries", zone="devices",
                  kind="devices") == 2
    # labels are bounded: no user or DeviceId anywhere
    assert "jdoe" not in text and "Appl" not in text


def test_format_by_query_and_accept(gateway):
    client(gateway).foldersync()

    kind, text = fetch(gateway, "/status?format=prometheus")
    assert kind.startswith("text/plain; version=0.0.4")
    promtool_check(text)

    # what Prometheus itself sends
    kind, text = fetch(gateway, "/status", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,"
                  "application/openmetrics-text;version=0.0.1;q=0.75,"
                  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    assert kind.startswith("text/plain; version=0.0.4")

    kind, body = fetch(gateway, "/metrics?format=json")
    assert kind == "application/json"
    json.loads(body)

    kind, body = fetch(gateway, "/metrics",
                       headers={"Accept": "application/json"})
    assert kind == "application/json"


def test_counters_survive_a_reload(gateway):
    for _ in range(3):
        assert client(gateway).foldersync().status == 200
    before = status(gateway)
    assert before["requests"]["FolderSync"]["forwarded"] == 3

    gateway.reload()

    assert client(gateway).foldersync().status == 200
    after = status(gateway)
    assert after["start"] == before["start"]
    assert after["reloads"] == before["reloads"] + 1
    assert after["requests"]["FolderSync"]["forwarded"] == 4


def test_status_refuses_other_methods(gateway):
    request = urllib.request.Request("http://127.0.0.1:%d/status"
                                     % gateway.port, data=b"x",
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 405


def test_bad_format_fails_nginx_t(nginx_factory):
    nginx = nginx_factory(confs.gateway(
        confs.location("= /status", "eas_status xml;"),
        zones=None, upstream=None), start=False, port=free_port())
    nginx.expected_alerts.append(r"\[emerg\]")
    code, output = nginx.test_config()
    assert code != 0
    assert ('invalid format "xml" in "eas_status": json or prometheus'
            in output)


def wait_for(nginx, condition, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = status(nginx)
        if condition(doc):
            return doc
        time.sleep(0.05)
    raise AssertionError("never: %s (last: %r)" % (what, doc["longpoll"]))


def test_held_long_polls_are_a_gauge(gateway):
    def pinger(results, device_id):
        c = EasClient("http://127.0.0.1:%d/held/Microsoft-Server-ActiveSync"
                      % gateway.port, user="jdoe", password="secret",
                      device_id=device_id)
        try:
            # the client gives up after 3 s: that ends the held request
            results.append(c.ping(heartbeat=60, timeout=3))
        except OSError as exc:
            results.append(exc)

    results = []
    threading.Thread(target=pinger, args=(results, "ApplPING1"),
                     daemon=True).start()
    wait_for(gateway, lambda d: d["longpoll"]["held"] == 1, "one Ping held")
    threading.Thread(target=pinger, args=(results, "ApplPING2"),
                     daemon=True).start()
    wait_for(gateway, lambda d: d["longpoll"]["held"] == 2, "two Pings held")

    doc = wait_for(gateway, lambda d: d["longpoll"]["held"] == 0
                   and d["longpoll"]["completed"] == 2, "both Pings ended")
    assert len(results) == 2
    assert doc["requests"]["Ping"]["forwarded"] == 2


def test_evictions_of_a_full_device_zone(gateway):
    total = 150
    for i in range(total):
        c = EasClient("http://127.0.0.1:%d/tiny/Microsoft-Server-ActiveSync"
                      % gateway.port, user="user%03d" % i,
                      device_id="device%03d" % i)
        assert c.foldersync().status == 200
    doc = status(gateway)
    tiny = {z["name"]: z for z in doc["zones"]}["tiny"]
    assert 0 < tiny["entries"] < total
    assert doc["evictions"]["devices"] == total - tiny["entries"]
    assert tiny["used"] <= tiny["size"] == 32 * 1024


def test_password_file_loads_are_counted(gateway):
    users = os.path.join(gateway.dir, "users")

    def login_until(condition, what):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            client(gateway).foldersync()
            doc = status(gateway)
            if condition(doc["files"]):
                return doc["files"]
            time.sleep(0.1)
        raise AssertionError("never: %s (%r)" % (what, doc["files"]))

    assert status(gateway)["files"]["loads"] == 0
    with open(users, "w") as f:
        f.write("jdoe:{PLAIN}secret\namy:{PLAIN}apple\nbob:{PLAIN}b\n")
    files = login_until(lambda f: f["loads"] >= 1, "a reload counted")
    assert files["errors"] == 0

    # a line that is not "user:hash": refused, the previous one stays
    with open(users, "w") as f:
        f.write("jdoe:{PLAIN}secret\nthis line has no colon\n")
    files = login_until(lambda f: f["errors"] >= 1, "a failed load counted")
    assert files["loads"] >= 2


def test_metrics_off(nginx_factory, backend):
    nginx = start_gateway(nginx_factory, confs.gateway(
        confs.eas_location(proxy_pass="http://127.0.0.1:${backend_port}"),
        confs.location("= /status", "eas_status;"),
        http="eas_metrics off;", zones=None, upstream=None),
        backend_port=backend.port)
    port = nginx.port
    c = EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync" % port,
                  user="jdoe", device_id="ApplOFF")
    for _ in range(3):
        assert c.foldersync().status == 200
    doc = status(nginx)
    assert doc["requests"] == {} and doc["upstream"] == {}


def test_a_superseded_ping_is_counted(gateway):
    def pinger(results, timeout):
        c = EasClient("http://127.0.0.1:%d/held/Microsoft-Server-ActiveSync"
                      % gateway.port, user="jdoe", password="secret",
                      device_id="ApplPING9")
        try:
            results.append(c.ping(heartbeat=60, timeout=timeout))
        except OSError as exc:
            results.append(exc)

    first, second = [], []
    threading.Thread(target=pinger, args=(first, 30), daemon=True).start()
    wait_for(gateway, lambda d: d["longpoll"]["held"] == 1, "one Ping held")
    threading.Thread(target=pinger, args=(second, 3), daemon=True).start()
    doc = wait_for(gateway, lambda d: d["longpoll"]["superseded"] == 1,
                   "the older Ping superseded")
    assert doc["requests"]["Ping"]["answered"] == 1
    doc = wait_for(gateway, lambda d: d["longpoll"]["held"] == 0,
                   "the newer Ping ended by its client")
    assert doc["longpoll"]["completed"] == 2
    assert first and first[0].eas_status() == 1
