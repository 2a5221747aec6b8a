"""Backend verdicts: what the backend answered, read as it streams by
(the HTTP verdict 449/401/403/451/503 and the top-level EAS Status of a
WBXML response), in $eas_backend_status / $eas_backend_status_name and
the metrics; a backend's heartbeat limit outside the gateway's range is
one warning naming both settings."""

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from eastest.client import EasClient
from eastest.nginx import start_gateway

WBXML = "application/vnd.ms-sync.wbxml"

# DeviceId -> (HTTP status, headers, body); bodies are what xml2wbxml
# writes for the documents named
ANSWERS = {
    # <FolderSync xmlns="FolderHierarchy:"><Status>142</Status></FolderSync>
    "FS142": (200, [("Content-Type", WBXML)], bytes.fromhex(
        "03016A000007564C0331343200 0101".replace(" ", ""))),
    # <Sync><Status>129</Status></Sync>
    "SY129": (200, [("Content-Type", WBXML)], bytes.fromhex(
        "03016A00454E0331323900 0101".replace(" ", ""))),
    # <FolderSync><Status>1</Status><SyncKey>1</SyncKey>...: no verdict
    "FS1": (200, [("Content-Type", WBXML)], bytes.fromhex(
        "03016A000007564C033100 01 52 033100 01 01".replace(" ", ""))),
    # <Ping><Status>5</Status><HeartbeatInterval>20</HeartbeatInterval>
    "PG5": (200, [("Content-Type", WBXML)], bytes.fromhex(
        "03016A00000D4547033500 01 48 03323000 01 01".replace(" ", ""))),
    # the same bytes with a compressed encoding: never read
    "GZ": (200, [("Content-Type", WBXML), ("Content-Encoding", "gzip")],
           bytes.fromhex("03016A000007564C0331343200 0101".replace(" ", ""))),
    "H449": (449, [], b""),
    "H403": (403, [], b""),
    "H451": (451, [("X-MS-Location", "https://other.example/")], b""),
    "H503": (503, [], b""),
}


class Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        query = parse_qs(urlsplit(self.path).query)
        status, headers, body = ANSWERS[query["DeviceId"][0]]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # the first bytes alone first: the reader must wait for the rest
        self.wfile.write(body[:5])
        self.wfile.flush()
        self.wfile.write(body[5:])

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


NGINX_CONFIG = """
http {
    ${temp_paths}

    log_format verdict escape=json '{"device":"$eas_device_id",'
        '"status":"$status","backend":"$eas_backend_status",'
        '"name":"$eas_backend_status_name"}';

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            eas on;
            access_log ${dir}/verdict.log verdict;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:${backend_port};
        }

        location = /status {
            eas_status;
        }
    }
}
"""


@pytest.fixture
def gateway(nginx_factory, scripted):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=scripted.server_address[1])


def send(nginx, device_id, cmd):
    client = EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                       % nginx.port, user="jdoe", device_id=device_id)
    return client.command(cmd, b"")


CASES = [
    # device, command, HTTP status seen, $eas_backend_status, name
    ("FS142", "FolderSync", 200, "142", "DeviceNotProvisioned"),
    ("SY129", "Sync", 200, "129", "DeviceIsBlockedForThisUser"),
    ("FS1", "FolderSync", 200, "1", ""),
    ("GZ", "FolderSync", 200, "", ""),
    ("H449", "FolderSync", 449, "449", "ProvisioningRequired"),
    ("H403", "Sync", 403, "403", "Forbidden"),
    ("H451", "FolderSync", 451, "451", "Redirect"),
    ("H503", "Ping", 503, "503", "ServiceUnavailable"),
]


def test_verdicts_in_variables_and_metrics(gateway):
    for device, cmd, status, _, _ in CASES:
        reply = send(gateway, device, cmd)
        assert reply.status == status, device
        # the body reached the device whole
        assert reply.body == ANSWERS[device][2], device

    lines = [json.loads(line) for line in
             gateway.wait_for_access_log(len(CASES), name="verdict.log")]
    got = {line["device"]: (int(line["status"]), line["backend"],
                            line["name"]) for line in lines}
    for device, _, status, backend, name in CASES:
        assert got[device] == (status, backend, name), device

    with urllib.request.urlopen("http://127.0.0.1:%d/status"
                                % gateway.port, timeout=10) as reply:
        doc = json.loads(reply.read())
    assert doc["backend"]["verdicts"] == {"449": 1, "401": 0, "403": 1,
                                          "451": 1, "503": 1}
    assert doc["backend"]["eas_status"] == {"1": 1, "129": 1, "142": 1}


def test_backend_limit_outside_the_range_is_one_warning(gateway):
    mark = gateway.mark()
    for _ in range(3):
        reply = send(gateway, "PG5", "Ping")
        assert reply.status == 200

    lines = [json.loads(line) for line in
             gateway.wait_for_access_log(3, name="verdict.log")]
    assert {(l["backend"], l["name"]) for l in lines} == {("5", "")}

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        warnings = [l for l in gateway.error_lines_since(mark)
                    if "[warn]" in l and "heartbeat limit" in l]
        if warnings:
            break
        time.sleep(0.05)
    # once per worker: two workers may each say it once
    assert 1 <= len(warnings) <= 2, warnings
    assert ('the backend answered Ping Status 5 with its own heartbeat '
            'limit 20 s, outside "eas_heartbeat_min" 60 s .. '
            '"eas_heartbeat_max" 3540 s' in warnings[0])

    with urllib.request.urlopen("http://127.0.0.1:%d/status"
                                % gateway.port, timeout=10) as reply:
        doc = json.loads(reply.read())
    assert doc["backend"]["limit_outside_range"] == 3
    assert doc["backend"]["eas_status"] == {"5": 3}
