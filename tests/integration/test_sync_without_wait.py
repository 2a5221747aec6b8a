"""Issue 11.4: which Sync and Ping requests are long-polls, and for how
long.  A Sync with a body and no Wait/HeartbeatInterval is an ordinary
command (eas_command_timeout); an empty Sync is held only when the
device zone remembers an interval for the device.  $eas_heartbeat is in
seconds, for a Wait too.  A held Ping is never answered 504: without an
interval in its body its backend may replay a longer interval of its
own cache (SOGo), so the read timeout covers the maximum; and a backend
that outstays the time given gets the answer of an expired heartbeat,
Status 1, from the gateway."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from eastest import confs, wbxml
from eastest.backends import SilentBackend
from eastest.client import EasClient
from eastest.nginx import start_gateway

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/eas.log eas_longpoll;",
    confs.longpoll(margin="1s"),
    "proxy_read_timeout 1s;",
    confs.location("/silent" + confs.EAS, "proxy_pass http://silent;"),
    confs.location("/cached" + confs.EAS, "eas_heartbeat_max 8s;",
                   "proxy_pass http://cached;"),
    upstream=[confs.timed_upstream("silent", "silent_port"),
              confs.timed_upstream("cached", "cached_port")],
    zones=confs.LONGPOLL_ZONE,
    http=confs.json_log("eas_longpoll", **confs.LONGPOLL_LOG,
                        upstream_status="$upstream_status"))

SYNC_WITHOUT_WAIT = wbxml.encode(("AirSync:Sync", [
    ("AirSync:Collections", [("AirSync:Collection", [
        ("AirSync:SyncKey", "1"), ("AirSync:CollectionId", "5")])])]))

PING_STATUS_1 = wbxml.encode(("Ping:Ping", [("Ping:Status", "1")]))

CACHED_HOLD = 5.0       # what the backend's own cache says, seconds


class _CachedHandler(BaseHTTPRequestHandler):
    """Holds every Ping for CACHED_HOLD seconds whatever its body says,
    as a backend replaying an interval of its own cache does, then
    answers Status 1."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.server.seen.append(self.path)
        self.server.stop.wait(CACHED_HOLD)
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.ms-sync.wbxml")
        self.send_header("Content-Length", str(len(PING_STATUS_1)))
        self.send_header("X-Answered-By", "backend")
        self.end_headers()
        self.wfile.write(PING_STATUS_1)

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway(nginx_factory):
    with SilentBackend() as silent:
        cached = ThreadingHTTPServer(("127.0.0.1", 0), _CachedHandler)
        cached.daemon_threads = True
        cached.seen, cached.stop = [], threading.Event()
        thread = threading.Thread(target=cached.serve_forever, daemon=True)
        thread.start()
        nginx = start_gateway(nginx_factory, NGINX_CONFIG,
                              silent_port=silent.port,
                              cached_port=cached.server_address[1])
        nginx.cached = cached
        try:
            yield nginx
        finally:
            cached.stop.set()
            nginx.stop()
            cached.shutdown()
            cached.server_close()


def device(nginx, path, device_id):
    return EasClient("http://127.0.0.1:%d/%s/Microsoft-Server-ActiveSync"
                     % (nginx.port, path), user="jdoe", device_id=device_id,
                     timeout=15.0)


def log_entries(nginx, count):
    lines = nginx.wait_for_access_log(count, name="eas.log", timeout=15.0)
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("body", [SYNC_WITHOUT_WAIT, b""],
                         ids=["Sync without Wait", "empty Sync, nothing "
                              "remembered"])
def test_sync_without_wait_is_an_ordinary_command(gateway, body):
    """To a backend that never answers: 504 after eas_command_timeout
    (1 s), not after the maximum interval (120 s)."""
    response = device(gateway, "silent", "plainsync").command("Sync", body)
    assert response.status == 504
    entry = log_entries(gateway, 1)[0]
    assert (entry["cmd"], entry["heartbeat"], entry["source"]) == (
        "Sync", "", "")


def test_out_of_range_wait_is_logged_in_seconds(gateway):
    """Wait is in minutes: 70 minutes is logged as 4200 s."""
    client = device(gateway, "silent", "waiter")
    response = client.sync(wait=70)
    assert (response.status, response.eas_status()) == (200, 14)
    entry = log_entries(gateway, 1)[0]
    assert (entry["heartbeat"], entry["source"]) == ("4200", "out_of_range")


def test_ping_outstayed_by_its_backend_is_answered_as_expired(gateway):
    """A Ping of 2 s the backend holds 5 s: the gateway answers Status 1
    at its interval plus the margin, never 504."""
    mark = gateway.mark()
    client = device(gateway, "cached", "outstayed")
    response = client.ping(heartbeat=2)
    assert (response.status, response.eas_status()) == (200, 1)
    assert response.header("X-Answered-By") is None
    entry = log_entries(gateway, 1)[0]
    assert (entry["status"], entry["heartbeat"], entry["reason"]) == (
        "200", "2", "heartbeat_expired")
    lines = [line for line in gateway.error_lines_since(mark)
             if "answered as expired" in line]
    assert len(lines) == 1 and "[notice]" in lines[0], lines


def test_empty_ping_replaying_the_backends_longer_interval(gateway):
    """The device asked for 2 s last (remembered), the backend replays
    its own cached 5 s for an empty Ping: the backend's own answer gets
    through, no 504."""
    client = device(gateway, "cached", "replayed")
    assert client.ping(heartbeat=2).eas_status() == 1
    response = client.command("Ping", b"")
    assert (response.status, response.eas_status()) == (200, 1)
    assert response.header("X-Answered-By") == "backend"
    entries = log_entries(gateway, 2)
    assert (entries[1]["heartbeat"], entries[1]["source"],
            entries[1]["upstream_status"]) == ("2", "remembered", "200")
    assert len(gateway.cached.seen) == 2


def test_silent_backend_never_gives_a_ping_504(gateway):
    """Nothing at all from the backend: Status 1 after the interval plus
    the margin."""
    response = device(gateway, "silent", "nothing").ping(heartbeat=2)
    assert (response.status, response.eas_status()) == (200, 1)
    entry = log_entries(gateway, 1)[0]
    assert (entry["status"], entry["reason"]) == ("200", "heartbeat_expired")
