"""The device record is written at most once a second per device and
connection (ngx_http_eas_devices_seen.c, docs/devices.md): requests that
would write the same record again in the same second on the same
keep-alive connection leave it alone, and anything else a request
changes (User-Agent, DeviceType, version, command, decision) still
reaches the inventory at once, as does last_seen in a later second."""

import http.client
import json
import time
import urllib.request

import pytest

from eastest import wbxml
from eastest.backends import EasBackend
from eastest.nginx import start_gateway

NGINX_CONFIG = """
http {
    ${temp_paths}

    eas_device_zone zone=devices:1m;

    upstream backend {
        server 127.0.0.1:${backend_port};
    }

    server {
        listen 127.0.0.1:${port};

        eas_devices devices;
        keepalive_requests 1000;

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_device_block device_type=Blocked;
            proxy_pass http://backend;
        }

        location = /inventory {
            eas_device_inventory;
        }
    }
}
"""

BODIES = {
    "FolderSync": wbxml.encode(("FolderHierarchy:FolderSync", [
        ("FolderHierarchy:SyncKey", "0")])),
    "Sync": wbxml.encode(("AirSync:Sync", [("AirSync:Collections", [
        ("AirSync:Collection", [("AirSync:SyncKey", "1"),
                                ("AirSync:CollectionId", "5")])])])),
}


@pytest.fixture
def backend():
    with EasBackend(hold_cap=0) as server:
        yield server


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=backend.port)


def record(nginx, device_id):
    with urllib.request.urlopen("http://127.0.0.1:%d/inventory"
                                % nginx.port, timeout=10) as reply:
        listing = json.loads(reply.read())
    found = [d for d in listing["devices"] if d["device_id"] == device_id]
    assert len(found) == 1, listing
    return found[0]


def send(conn, device_id, agent="Apple-iPhone13C4/2307.71",
         device_type="iPhone", command="FolderSync", version="14.1"):
    conn.request("POST", "/Microsoft-Server-ActiveSync?Cmd=%s&User=jdoe"
                 "&DeviceId=%s&DeviceType=%s" % (command, device_id,
                                                  device_type),
                 body=BODIES[command],
                 headers={"MS-ASProtocolVersion": version,
                          "User-Agent": agent,
                          "Content-Type": "application/vnd.ms-sync.wbxml"})
    reply = conn.getresponse()
    reply.read()
    return reply.status


def test_a_change_on_the_same_connection_reaches_the_record(gateway):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        # the same request three times: the third may write nothing
        for _ in range(3):
            assert send(conn, "seen1") == 200

        # each of these differs from the last in one field, at once
        steps = [
            (dict(agent="Apple-iPhone13C4/2307.72"),
             "user_agent", "Apple-iPhone13C4/2307.72"),
            (dict(agent="Apple-iPhone13C4/2307.72", command="Sync"),
             "last_command", "Sync"),
            (dict(agent="Apple-iPhone13C4/2307.72", version="16.1"),
             "protocol_version", "16.1"),
            (dict(agent="Apple-iPhone13C4/2307.72", device_type="iPad"),
             "device_type", "iPad"),
        ]
        for kwargs, field, value in steps:
            assert send(conn, "seen1", **kwargs) == 200
            assert send(conn, "seen1", **kwargs) == 200
            assert record(gateway, "seen1")[field] == value, field

        # a rule's decision is part of what is written: blocked at once
        # (answered at the edge as Exchange would, with an EAS status)
        send(conn, "seen1", device_type="Blocked")
        got = record(gateway, "seen1")
        assert (got["access"], got["device_type"]) == ("blocked", "Blocked")

        # and allowed again with the next allowed request
        assert send(conn, "seen1") == 200
        assert send(conn, "seen1") == 200
        got = record(gateway, "seen1")
        assert (got["access"], got["device_type"],
                got["user_agent"]) == ("allowed", "iPhone",
                                       "Apple-iPhone13C4/2307.71")
    finally:
        conn.close()


def test_last_seen_moves_in_a_later_second(gateway):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        for _ in range(3):
            assert send(conn, "seen2") == 200
        first = record(gateway, "seen2")["last_seen"]

        # wait for the clock's next second (a condition, not a duration)
        deadline = time.monotonic() + 10
        while int(time.time()) <= first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(time.time()) > first

        assert send(conn, "seen2") == 200
        later = record(gateway, "seen2")["last_seen"]
        assert later > first
        assert later <= int(time.time())
    finally:
        conn.close()
