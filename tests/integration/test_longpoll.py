"""Step 4 of the request flow (docs/directpush.md) through a real nginx:
Ping and Sync bodies are read and scanned, out-of-range intervals are
answered at the edge exactly as Exchange answers them (checked with
libwbxml's wbxml2xml), in-range ones reach the backend byte for byte, are
remembered in the device record and held for their interval while other
commands to a silent backend fail fast; held requests survive a reload
and a superseding Ping.  Short intervals: the configured minimum is 2 s."""

import json
import signal
import socket
import threading
import time

import pytest

from eastest import confs, wbxml
from eastest.backends import EasBackend
from eastest.client import EasClient, raw_http
from eastest.nginx import free_port, start_gateway
from eastest.waiting import error_lines, logged

MIN, MAX = 2, 120           # eas_heartbeat_min / _max of the test config
# Bounds a hang, not a speed: below the 60 s the held Pings here ask for,
# so one held for its interval instead of ended early fails, and far
# above the second or so an early end takes on a busy machine.
HANG = 45

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/eas.log eas_longpoll;",
    confs.KEEPALIVE,
    confs.longpoll(body_max=512),
    """
    # shorter than any hold: only the per-request timeout lets a
    # long-poll live
    proxy_read_timeout 1s;
    """,
    confs.location(confs.EAS, "${preauth}", "proxy_pass http://backend;"),
    confs.location("/silent" + confs.EAS,
                   "proxy_pass http://silent/Microsoft-Server-ActiveSync;"),
    # proxy_pass with variables: checked at first use, not start-up
    confs.location("/variable" + confs.EAS, """
        set $backend_addr 127.0.0.1:${backend_port};
        proxy_pass http://$backend_addr/Microsoft-Server-ActiveSync$is_args$args;
    """),
    confs.location("/denied" + confs.EAS, "deny all;",
                   "proxy_pass http://backend/Microsoft-Server-ActiveSync;"),
    confs.location("= /devices", "eas off;", "eas_device_inventory;"),
    confs.location("/off" + confs.EAS, """
        eas_longpoll off;
        proxy_read_timeout 30s;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    """),
    http=confs.json_log("eas_longpoll", **confs.LONGPOLL_LOG,
                        held="$upstream_response_time",
                        upstream="$upstream_addr", pid="$pid"),
    zones=[confs.LONGPOLL_ZONE, confs.AUTH_ZONE],
    upstream=[confs.timed_upstream("backend", "backend_port", "keepalive 4;"),
              confs.timed_upstream("silent", "silent_port")])


@pytest.fixture
def gateway(nginx_factory, backend, silent):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=backend.port, silent_port=silent.port,
                         preauth="")


# the gateway ends a superseded Ping only for a verified identity
PREAUTH = """eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file users plain;"""


def device(nginx, path="/Microsoft-Server-ActiveSync", device_id="dev1"):
    return EasClient("http://127.0.0.1:%d%s" % (nginx.port, path),
                     user="jdoe", password="secret", device_id=device_id,
                     timeout=10.0)


def log_entries(nginx, count):
    lines = nginx.wait_for_access_log(count, name="eas.log")
    return [json.loads(line) for line in lines]


def wbxml2xml(body):
    """libwbxml's reading of a response body (an independent decoder)."""
    return wbxml.libwbxml_xml(body)


# Out of range: the gateway answers, the backend never sees the request.
# (command, body args, expected XML of libwbxml)

EDGE = [
    ("Ping", dict(heartbeat=MIN - 1),
     '<Ping xmlns="Ping:"><Status>5</Status>'
     '<HeartbeatInterval>2</HeartbeatInterval></Ping>'),
    ("Ping", dict(heartbeat=MAX + 1),
     '<Ping xmlns="Ping:"><Status>5</Status>'
     '<HeartbeatInterval>120</HeartbeatInterval></Ping>'),
    ("Ping", dict(heartbeat=0),
     '<Ping xmlns="Ping:"><Status>5</Status>'
     '<HeartbeatInterval>2</HeartbeatInterval></Ping>'),
    ("Ping", dict(heartbeat=99999999999),
     '<Ping xmlns="Ping:"><Status>5</Status>'
     '<HeartbeatInterval>120</HeartbeatInterval></Ping>'),
    ("Sync", dict(heartbeat=MIN - 1),
     '<Sync xmlns="AirSync:"><Status>14</Status><Limit>2</Limit></Sync>'),
    ("Sync", dict(heartbeat=MAX + 1),
     '<Sync xmlns="AirSync:"><Status>14</Status><Limit>120</Limit></Sync>'),
    ("Sync", dict(wait=0),
     '<Sync xmlns="AirSync:"><Status>14</Status><Limit>1</Limit></Sync>'),
    ("Sync", dict(wait=3),
     '<Sync xmlns="AirSync:"><Status>14</Status><Limit>2</Limit></Sync>'),
]


@pytest.mark.parametrize("cmd,args,xml", EDGE,
                         ids=["%s-%s" % (c[0], c[1]) for c in EDGE])
def test_out_of_range_answered_at_the_edge(gateway, backend, cmd, args,
                                           xml):
    mark = gateway.mark()
    client = device(gateway)
    if cmd == "Ping":
        response = client.ping(timeout=10, **args)
    else:
        response = client.sync(timeout=10, **args)

    assert response.status == 200
    assert response.header("Content-Type") == "application/vnd.ms-sync.wbxml"
    assert int(response.header("Content-Length")) == len(response.body)
    assert wbxml2xml(response.body) == xml

    entry = log_entries(gateway, 1)[0]
    assert entry["source"] == "out_of_range"
    assert entry["reason"] == "heartbeat_out_of_range"
    assert entry["upstream"] == ""
    assert backend.requests == []

    lines = [line for line in gateway.error_lines_since(mark)
             if "out of range" in line]
    assert len(lines) == 1 and "[notice]" in lines[0], lines
    assert "Status %s" % ("5" if cmd == "Ping" else "14") in lines[0]


# In range: forwarded byte for byte, held for the interval it asked for.

IN_RANGE = [
    ("Ping", dict(heartbeat=MIN), MIN),
    ("Sync", dict(heartbeat=MIN), MIN),
]


@pytest.mark.parametrize("cmd,args,hold", IN_RANGE,
                         ids=[c[0] for c in IN_RANGE])
def test_minimum_is_held_and_answered_by_the_backend(gateway, backend, cmd,
                                                     args, hold):
    client = device(gateway)
    if cmd == "Ping":
        response = client.ping(**args)
        assert response.eas_status() == 1
    else:
        response = client.sync(**args)
        assert response.status == 200 and response.body == b""

    # generous bound: held by the backend for its interval, not cut at
    # proxy_read_timeout (1 s)
    assert response.elapsed >= hold - 0.2

    entry = log_entries(gateway, 1)[0]
    assert entry == dict(entry, status="200", cmd=cmd, heartbeat=str(hold),
                         source="body")
    assert float(entry["held"]) >= hold - 0.2

    sent = backend.requests[0].body
    expected = client_body(cmd, args)
    assert sent == expected


def client_body(cmd, args):
    if cmd == "Ping":
        return wbxml.encode(("Ping:Ping", [
            ("Ping:HeartbeatInterval", str(args["heartbeat"])),
            ("Ping:Folders", [("Ping:Folder", [("Ping:Id", "5"),
                                               ("Ping:Class", "Email")])])]))
    children = [("AirSync:Collections", [("AirSync:Collection", [
        ("AirSync:SyncKey", "1"), ("AirSync:CollectionId", "5")])])]
    if "wait" in args:
        children.append(("AirSync:Wait", str(args["wait"])))
    if "heartbeat" in args:
        children.append(("AirSync:HeartbeatInterval", str(args["heartbeat"])))
    return wbxml.encode(("AirSync:Sync", children))


MAXIMUM = [
    ("Ping", dict(heartbeat=MAX), "120"),
    ("Sync", dict(heartbeat=MAX), "120"),
    ("Sync", dict(wait=2), "120"),
    ("Sync", dict(wait=1), "60"),
]


@pytest.mark.parametrize("cmd,args,heartbeat", MAXIMUM,
                         ids=["%s-%s" % (c[0], c[1]) for c in MAXIMUM])
def test_maximum_is_forwarded(gateway, backend, cmd, args, heartbeat):
    """The upper bounds reach the backend; the client gives up early (a
    client disconnect during a hold: 499, no error)."""
    client = device(gateway)
    with pytest.raises(socket.timeout):
        if cmd == "Ping":
            client.ping(timeout=1.0, **args)
        else:
            client.sync(timeout=1.0, **args)

    received = backend.wait_for(1)
    assert received[0].body == client_body(cmd, args)

    entry = log_entries(gateway, 1)[0]
    assert entry["status"] == "499"
    assert entry["heartbeat"] == heartbeat
    assert entry["source"] == "body"


def test_held_ping_outlives_a_fast_failure(gateway, backend, silent):
    """A Ping held 3 s answers Status 1 while a FolderSync to a silent
    backend is failed with 504 after eas_command_timeout (1 s)."""
    ping = device(gateway, device_id="pinger")
    sync = device(gateway, path="/silent/Microsoft-Server-ActiveSync")

    started = time.monotonic()
    held, (failed, failed_after) = ping_in_background(
        ping, 3, backend,
        lambda: (sync.foldersync(), time.monotonic() - started))

    assert failed.status == 504
    assert held.eas_status() == 1
    assert held.elapsed >= 2.8
    # the fast failure came before the Ping ended
    assert failed_after < held.elapsed

    entries = {e["cmd"]: e for e in log_entries(gateway, 2)}
    assert entries["FolderSync"]["status"] == "504"
    assert "heartbeat" not in entries["FolderSync"] or \
        entries["FolderSync"]["heartbeat"] == ""
    assert entries["Ping"]["heartbeat"] == "3"


NO_INTERVAL = [
    ("empty Ping", "Ping", b""),
    ("Ping with folders only", "Ping", wbxml.encode(("Ping:Ping", [
        ("Ping:Folders", [("Ping:Folder", [("Ping:Id", "5"),
                                           ("Ping:Class", "Email")])])]))),
]


@pytest.mark.parametrize("name,cmd,body", NO_INTERVAL,
                         ids=[c[0] for c in NO_INTERVAL])
def test_no_interval_is_held_for_the_maximum(gateway, backend, name, cmd,
                                             body):
    client = device(gateway, device_id="nocache")
    response = client.command(cmd, body)
    # the simulator has nothing cached for this device: Ping Status 3,
    # Sync the empty response, both at once
    assert response.status == 200
    assert backend.requests[0].body == body

    entry = log_entries(gateway, 1)[0]
    assert entry["heartbeat"] == str(MAX)
    assert entry["source"] == "default"


MALFORMED = [
    ("truncated", "Ping", bytes.fromhex("03016a00000d454803363000")),
    ("letters", "Ping", bytes.fromhex("03016a00000d45480336307300 0101")),
    ("wrong root", "Ping", bytes.fromhex("03016a00456403333000 0101")),
    ("not wbxml", "Sync", b"<Sync><Wait>5</Wait></Sync>"),
]


@pytest.mark.parametrize("name,cmd,body", MALFORMED,
                         ids=[c[0] for c in MALFORMED])
def test_malformed_body_is_forwarded_untouched(gateway, backend, name, cmd,
                                               body):
    mark = gateway.mark()
    client = device(gateway)
    response = client.command(cmd, body)
    assert response.status in (200, 400)
    assert backend.requests[0].body == body

    entry = log_entries(gateway, 1)[0]
    assert entry["source"] == "malformed"
    assert entry["heartbeat"] == str(MAX)

    lines = [line for line in gateway.error_lines_since(mark)
             if "body not understood" in line]
    assert len(lines) == 1 and "[notice]" in lines[0], lines


def test_body_over_the_cap_is_streamed_unread(gateway, backend):
    """eas_longpoll_body_max 512: a larger Sync (uploading changes) is
    forwarded unread and held no longer than the maximum."""
    children = [("AirSync:Collections", [("AirSync:Collection", [
        ("AirSync:SyncKey", "x" * 600), ("AirSync:CollectionId", "5")])]),
        ("AirSync:HeartbeatInterval", "1")]
    body = wbxml.encode(("AirSync:Sync", children))
    assert len(body) > 512
    client = device(gateway)
    response = client.command("Sync", body, timeout=10)
    assert response.status == 200
    assert backend.requests[0].body == body

    entry = log_entries(gateway, 1)[0]
    assert entry["source"] == "unread"
    assert entry["heartbeat"] == str(MAX)


def test_chunked_body_is_read_and_forwarded(gateway, backend):
    body = client_body("Ping", dict(heartbeat=MIN))
    target = device(gateway).target("Ping")
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nMS-ASProtocolVersion: 14.1\r\n"
            "Content-Type: application/vnd.ms-sync.wbxml\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            % target).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                      for part in (body[:5], body[5:])) + b"0\r\n\r\n"
    reply = raw_http("127.0.0.1", gateway.port, head + chunks, timeout=10)
    assert reply.startswith(b"HTTP/1.1 200")
    assert backend.requests[0].body == body
    entry = log_entries(gateway, 1)[0]
    assert (entry["heartbeat"], entry["source"]) == (str(MIN), "body")


def give_up_after_forwarding(client, backend, count, cmd="Ping", body=b""):
    """Send cmd, wait until the backend holds it, then hang up (499)."""
    with pytest.raises(socket.timeout):
        client.command(cmd, body, timeout=0.5)
    backend.wait_for(count)


def test_empty_ping_reuses_the_remembered_interval_in_every_worker(
        gateway, backend):
    """The interval of a Ping body is remembered in the device record;
    later Pings without one are held for it, whichever worker takes
    them (the zone is shared)."""
    client = device(gateway, device_id="remember")
    give_up_after_forwarding(
        client, backend, 1, "Ping", client_body("Ping", dict(heartbeat=100)))

    pids = set()
    for attempt in range(40):
        give_up_after_forwarding(client, backend, attempt + 2)
        entry = log_entries(gateway, attempt + 2)[-1]
        assert (entry["heartbeat"], entry["source"]) == ("100",
                                                         "remembered")
        pids.add(entry["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2, "every empty Ping went to worker %s" % pids

    # another device of the same user knows nothing (the backend has no
    # cache for it either: Status 3 at once)
    other = device(gateway, device_id="stranger")
    assert other.ping(folders=()).eas_status() == 3
    entry = log_entries(gateway, attempt + 3)[-1]
    assert (entry["heartbeat"], entry["source"]) == (str(MAX), "default")


def test_remembered_interval_is_in_the_device_inventory(gateway, backend):
    """One record per device: the inventory shows the heartbeat."""
    client = device(gateway, device_id="listed")
    give_up_after_forwarding(
        client, backend, 1, "Ping", client_body("Ping", dict(heartbeat=77)))
    listing = EasClient("http://127.0.0.1:%d" % gateway.port).raw(
        "GET", "/devices")
    records = {d["device_id"]: d for d in json.loads(listing.body)["devices"]}
    assert records["listed"]["heartbeat"] == 77
    assert records["listed"]["user"] == "jdoe"


def test_refused_request_never_has_its_body_read(gateway, backend):
    """The long-poll step runs after the access phase: a request refused
    there (here by "deny all") is never read, scanned or remembered."""
    mark = gateway.mark()
    client = device(gateway, path="/denied/Microsoft-Server-ActiveSync",
                    device_id="denied")
    response = client.ping(heartbeat=MIN - 1, timeout=10)
    assert response.status == 403
    entry = log_entries(gateway, 1)[0]
    assert (entry["heartbeat"], entry["source"]) == ("", "")
    assert not [line for line in gateway.error_lines_since(mark)
                if "eas Ping held" in line or "out of range" in line]
    assert backend.requests == []


def test_sync_without_wait_reuses_the_remembered_interval(gateway, backend):
    client = device(gateway, device_id="syncmem")
    give_up_after_forwarding(client, backend, 1, "Sync",
                             client_body("Sync", dict(wait=1)))
    give_up_after_forwarding(client, backend, 2, "Sync", b"")
    entries = log_entries(gateway, 2)
    assert [(e["heartbeat"], e["source"]) for e in entries] == [
        ("60", "body"), ("60", "remembered")]


def ping_in_background(client, heartbeat, backend, then):
    """Hold a Ping of client, run then() once the backend holds it;
    return (the Ping's response, what then() returned)."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "ping", client.ping(heartbeat=heartbeat)))
    thread.start()
    try:
        backend.wait_for(1)
        other = then()
    finally:
        thread.join(timeout=HANG)
    assert "ping" in result, "the Ping was not answered in %d s" % HANG
    return result["ping"], other


def test_superseded_ping_ends_as_a_normal_answer(gateway, backend):
    """A newer Ping of the same device: the backend ends the older one
    with Status 1, which the gateway relays as any answer (200, no
    error), and the newer one is held for its own interval."""
    old, newer = ping_in_background(
        device(gateway, device_id="twice"), 60, backend,
        lambda: device(gateway, device_id="twice").ping(heartbeat=MIN))
    assert old.eas_status() == 1
    assert old.elapsed < HANG            # not held for its 60 s
    assert newer.eas_status() == 1
    entries = log_entries(gateway, 2)
    assert sorted((e["status"], e["heartbeat"]) for e in entries) == [
        ("200", "2"), ("200", "60")]


@pytest.fixture
def holding(nginx_factory, silent):
    """A gateway in front of a backend that never ends an older Ping of
    a device itself: each is held for its own interval."""
    with EasBackend(supersede=False) as server:
        nginx = start_gateway(nginx_factory, NGINX_CONFIG,
                              files={"users": confs.password_file(
                                  {"jdoe": "secret"})},
                              backend_port=server.port,
                              silent_port=silent.port, preauth=PREAUTH)
        nginx.backend = server
        yield nginx


class HeldPing:
    """A Ping (or Sync) sent in the background, timed from the moment
    the backend got it."""

    def __init__(self, gateway, device_id, heartbeat, cmd="ping"):
        self.result = {}
        client = device(gateway, device_id=device_id)
        send = getattr(client, cmd)
        count = len(gateway.backend.requests)
        self.thread = threading.Thread(target=lambda: self.result.setdefault(
            "response", send(heartbeat=heartbeat)))
        self.thread.start()
        gateway.backend.wait_for(count + 1)
        self.forwarded = time.monotonic()

    def pending(self):
        return self.thread.is_alive()

    def response(self, timeout=HANG):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "no answer in %d s" % timeout
        self.answered = time.monotonic()
        return self.result["response"]


def superseded_lines(gateway, mark):
    return [line for line in gateway.error_lines_since(mark)
            if "superseded by a newer Ping" in line]


def test_gateway_ends_a_superseded_ping_on_any_worker(holding):
    """Pings of one device, each sent while the previous one is held by
    a backend that does not end it: the gateway answers the older one
    with Status 1 within about a sweep (200, $eas_reason
    ping_superseded, one info line), the newer one stays held, whether
    both are on one worker or not; another device's Ping of the same
    user is left alone."""
    mark = holding.mark()
    stranger = HeldPing(holding, "stranger", 60)
    pings = [HeldPing(holding, "chain", 60)]
    pids, pairs = [], set()
    for attempt in range(30):
        pings.append(HeldPing(holding, "chain", 60))
        older = pings[-2]
        response = older.response()          # not held for its 60 s
        assert (response.status, response.eas_status()) == (200, 1)
        assert pings[-1].pending()
        entry = log_entries(holding, len(pings) - 1)[-1]
        assert (entry["status"], entry["reason"], entry["heartbeat"]) == (
            "200", "ping_superseded", "60")
        pids.append(entry["pid"])
        if len(pids) >= 2:
            pairs.add(pids[-2] == pids[-1])
        if len(pairs) == 2:
            break
    assert pairs == {True, False}, "workers of the chain: %s" % pids

    # the last one ends when the backend answers it: held, not ended
    last = HeldPing(holding, "chain", MIN)
    assert pings[-1].response().eas_status() == 1
    answer = last.response()
    assert answer.eas_status() == 1
    assert answer.elapsed >= MIN - 0.2

    assert stranger.pending()
    lines = superseded_lines(holding, mark)
    assert len(lines) == len(pings)
    assert all("[notice]" in line for line in lines), lines
    entries = log_entries(holding, len(pings) + 1)
    assert [e["reason"] for e in entries].count("ping_superseded") == \
        len(pings)
    newest = HeldPing(holding, "stranger", MIN)
    assert stranger.response().eas_status() == 1
    assert newest.response().eas_status() == 1


def test_a_ping_never_ends_a_sync(holding):
    """A Sync of the device held while its Pings supersede each other is
    answered by the backend after its interval."""
    sync = HeldPing(holding, "syncing", 4, cmd="sync")
    older = HeldPing(holding, "syncing", 60)
    newer = HeldPing(holding, "syncing", MIN)
    assert older.response().eas_status() == 1      # not held for its 60 s
    assert newer.response().eas_status() == 1
    response = sync.response()
    assert response.status == 200
    assert response.elapsed >= 3.8
    entries = log_entries(holding, 3)
    assert sorted((e["cmd"], e["heartbeat"], e["reason"] == "ping_superseded")
                  for e in entries) == [
        ("Ping", "2", False), ("Ping", "60", True), ("Sync", "4", False)]


def test_an_unheld_ping_supersedes_nothing(holding):
    """A Ping answered at the edge (out of range) or one whose body is
    not understood is not the device's held Ping: the older one stays."""
    mark = holding.mark()
    older = HeldPing(holding, "kept", 3)
    client = device(holding, device_id="kept")
    assert client.ping(heartbeat=MAX + 1).eas_status() == 5
    assert client.command("Ping", MALFORMED[0][2]).eas_status() == 4
    assert older.response().elapsed >= 2.8
    assert superseded_lines(holding, mark) == []


def test_reload_answers_held_pings_at_once(gateway, backend):
    """nginx -s reload while a Ping is held for 60 s: the old worker
    answers it with Status 1 (an expired heartbeat, no error) within
    about a second instead of holding it for the interval; the device's
    next Ping reaches a new worker, and the interval is still remembered
    in the zone."""
    client = device(gateway, device_id="reloaded")
    mark = gateway.mark()
    ping, _ = ping_in_background(client, 60, backend, gateway.reload)
    assert ping.status == 200
    assert ping.eas_status() == 1
    assert ping.elapsed < HANG           # not held for its 60 s
    # and this line says it was the reload that ended it
    lines = [line for line in gateway.error_lines_since(mark)
             if "answered as expired" in line]
    assert len(lines) == 1 and "[notice]" in lines[0], lines

    give_up_after_forwarding(client, backend, 2)
    # each Ping's own line (the old and a new worker log in either order)
    held, empty = logged(gateway, "eas.log", ["body", "remembered"],
                         key=lambda entry: entry["source"])
    assert held["status"] == "200"
    assert empty["heartbeat"] == "60"
    assert empty["pid"] != held["pid"]


def test_reload_leaves_held_sync_to_the_backend(gateway, backend):
    """A held Sync may carry changes: the old worker keeps it until the
    backend answers (here after its 3 s interval)."""
    client = device(gateway, device_id="syncreload")
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "sync", client.sync(heartbeat=3)))
    thread.start()
    try:
        backend.wait_for(1)
        gateway.reload()
    finally:
        thread.join(timeout=15)
    assert result["sync"].status == 200
    assert result["sync"].elapsed >= 2.8


def test_graceful_stop_answers_held_pings(gateway, backend):
    """nginx -s quit with a Ping held for 60 s: Status 1 at once, and
    nginx exits without waiting out the interval."""
    client = device(gateway, device_id="stopping")
    ping, _ = ping_in_background(
        client, 60, backend,
        lambda: gateway.process.send_signal(signal.SIGQUIT))
    assert ping.eas_status() == 1
    gateway.process.wait(HANG)           # not after the 60 s interval


def test_first_use_warns_when_the_read_timeout_cannot_hold(gateway,
                                                           backend):
    """proxy_pass with variables that names no upstream block creates
    its peers without peer.init, where the module sets timeouts: the
    Ping is cut at proxy_read_timeout (1 s) and nginx says why, loudly."""
    mark = gateway.mark()
    client = device(gateway, path="/variable/Microsoft-Server-ActiveSync",
                    device_id="variable")
    response = client.ping(heartbeat=MIN)
    assert response.status == 504

    # the warning is written in the log phase, after the response is sent
    lines = error_lines(
        gateway, mark, lambda line: "whose read timeout the module could "
        "not set" in line, "the warning")
    assert len(lines) == 1 and "[warn]" in lines[0], lines
    assert "Ping held for 2 s" in lines[0] and "1000ms" in lines[0]


def test_longpoll_off_forwards_without_reading(gateway, backend):
    """eas_longpoll off: below the minimum is not refused, the body is
    not read, proxy_read_timeout (30 s there) applies."""
    client = device(gateway, path="/off/Microsoft-Server-ActiveSync")
    response = client.ping(heartbeat=MIN - 1)
    assert response.eas_status() == 1
    assert backend.requests[0].body == client_body(
        "Ping", dict(heartbeat=MIN - 1))
    entry = log_entries(gateway, 1)[0]
    assert entry["heartbeat"] == "" and entry["source"] == ""


# Configuration: mistakes fail nginx -t.

CONFIG_TEMPLATE = confs.gateway(
    confs.eas_location("eas_longpoll on;", "%s", proxy_pass="http://plain"),
    zones=None, upstream=confs.block("upstream plain",
                                     "server 127.0.0.1:9;"))

CONFIG_ERRORS = [
    ("eas_heartbeat_min 0;",
     '"eas_heartbeat_min" must be between 1s and 3540s, not 0'),
    ("eas_heartbeat_max 3541s;",
     '"eas_heartbeat_max" must be between 1s and 3540s, not 3541'),
    ("eas_heartbeat_min 100s; eas_heartbeat_max 90s;",
     '"eas_heartbeat_min" 100s is above "eas_heartbeat_max" 90s'),
    ("eas_command_timeout 0;", '"eas_command_timeout" must not be 0'),
    ("eas_heartbeat_max soon;", '"eas_heartbeat_max" directive invalid value'),
    ("eas_longpoll_body_max lots;", '"eas_longpoll_body_max" directive invalid value'),
    ("eas_upstream_timeouts;", '"eas_upstream_timeouts" directive is not '
                               'allowed here'),
]


@pytest.mark.parametrize("directives,message", CONFIG_ERRORS,
                         ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors(nginx_factory, directives, message):
    nginx = nginx_factory(CONFIG_TEMPLATE % directives, start=False,
                          port=free_port())
    nginx.expected_alerts.append(r"\[emerg\]")
    code, output = nginx.test_config()
    assert code != 0
    assert "[emerg]" in output and message in output, output


def test_eas_upstream_timeouts_still_loads(nginx_factory):
    """Every upstream is covered now; the directive of earlier versions
    is accepted, and no start-up check warns about proxy_read_timeout
    (the module sets the read timeout of every upstream)."""
    template = CONFIG_TEMPLATE.replace("server 127.0.0.1:9;",
                                       "server 127.0.0.1:9;\n"
                                       "        eas_upstream_timeouts;")
    nginx = nginx_factory(template % "", start=False, port=free_port())
    code, output = nginx.test_config()
    assert code == 0, output
    assert "cannot hold" not in output, output
