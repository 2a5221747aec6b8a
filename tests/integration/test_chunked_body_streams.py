"""Issue 11 point 10: a chunked Ping/Sync body is not spooled.

With "proxy_request_buffering off" the long-poll step reads only the start
of a chunked HTTP/1.1 body (up to eas_longpoll_body_max) and proxy_pass
streams the rest: the backend sees the first bytes of a large chunked
upload before the client has sent the last ones, and nothing is written to
client_body_temp.  The bytes read early are left unread for proxy_pass (and
for nginx's discard when the gateway answers itself): the backend gets the
body byte for byte, a request pipelined behind it is served, and an
answered body never becomes a request of its own."""

import json
import socket
import time

import pytest

from eastest import confs, wbxml
from eastest.bodies import (LAST_CHUNK, chunked, dechunk, ping_body,
                             sync_body, temp_files, wait_until)
from eastest.client import EasClient
from eastest.nginx import start_gateway

MIN, MAX = 2, 120
BODY_MAX = 512

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/eas.log eas_body;",
    """
    # a chunked body past 1k would go to client_body_temp if read
    client_body_buffer_size 1k;
    client_max_body_size 10m;
    client_body_timeout 2s;
    """,
    confs.KEEPALIVE, "proxy_request_buffering off;",
    confs.longpoll(command_timeout="5s", body_max="${body_max}"),
    confs.location(confs.EAS, "proxy_pass http://backend;"),
    confs.location("/recorder" + confs.EAS,
                   "proxy_pass http://recorder/Microsoft-Server-ActiveSync;"),
    http=confs.json_log("eas_body", **confs.LONGPOLL_LOG,
                        request_length="$request_length"),
    zones=confs.LONGPOLL_ZONE,
    upstream=[confs.timed_upstream("backend", "backend_port"),
              confs.timed_upstream("recorder", "recorder_port")])


@pytest.fixture
def recorder(silent):
    return silent


@pytest.fixture
def gateway(nginx_factory, backend, recorder):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=backend.port,
                         recorder_port=recorder.port, body_max=BODY_MAX)


def target(cmd, path="/Microsoft-Server-ActiveSync", device_id="chunk1"):
    client = EasClient("http://127.0.0.1%s" % path, user="jdoe",
                       device_id=device_id)
    return client.target(cmd)


def head(cmd, path="/Microsoft-Server-ActiveSync", expect=False,
         device_id="chunk1", close=False):
    lines = ["POST %s HTTP/1.1" % target(cmd, path, device_id),
             "Host: localhost",
             "MS-ASProtocolVersion: 14.1",
             "Content-Type: application/vnd.ms-sync.wbxml",
             "Transfer-Encoding: chunked"]
    if expect:
        lines.append("Expect: 100-continue")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Responses:
    """HTTP/1.1 responses read one after another from one connection."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.deadline = time.monotonic() + timeout
        self.data = bytearray()

    def _more(self):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete response; got %r"
                               % bytes(self.data[:300]))
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed; got %r" % bytes(self.data[:300]))
        self.data += chunk

    def next(self, interim=False):
        """(status, headers dict, body); 1xx skipped unless interim."""
        while True:
            while b"\r\n\r\n" not in self.data:
                self._more()
            end = self.data.index(b"\r\n\r\n") + 4
            lines = bytes(self.data[:end]).decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                del self.data[:end]
                if interim:
                    return status, headers, b""
                continue
            length = int(headers.get("content-length", "0"))
            while len(self.data) < end + length:
                self._more()
            body = bytes(self.data[end:end + length])
            del self.data[:end + length]
            return status, headers, body


def entries(nginx, count):
    lines = nginx.wait_for_access_log(count, name="eas.log", timeout=10.0)
    return [json.loads(line) for line in lines]


def test_large_chunked_sync_streams_to_the_backend(gateway, recorder):
    """The client sends half of a 64 KiB chunked Sync and waits: the
    backend records its first bytes while the rest is still unsent, and
    no temporary file exists; then the rest, byte for byte."""
    body = sync_body(filler=64 * 1024)
    data = chunked(body, 4096)
    half = len(data) // 2

    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        sock.sendall(head("Sync", "/recorder/Microsoft-Server-ActiveSync")
                     + data[:half])

        # the backend has the start of the body; the client has not yet
        # sent the second half
        wait_until(lambda: recorder.connections == 1
                   and b"FIRST-" in recorder.received[0],
                   "the backend saw nothing of a half-sent chunked body")
        assert b"-LAST" not in recorder.received[0]
        assert temp_files(gateway) == []

        sock.sendall(data[half:] + LAST_CHUNK)

        def whole():
            raw = recorder.received[0]
            return (b"\r\n\r\n" in raw
                    and dechunk(raw[raw.index(b"\r\n\r\n") + 4:]) is not None)

        wait_until(whole, "the backend never got the whole body")
        raw = recorder.received[0]
        request_head = raw[:raw.index(b"\r\n\r\n")].decode("latin-1")
        assert "transfer-encoding: chunked" in request_head.lower()
        assert dechunk(raw[raw.index(b"\r\n\r\n") + 4:]) == body
        assert temp_files(gateway) == []
    finally:
        sock.close()

    entry = entries(gateway, 1)[0]
    assert entry["source"] == "unread"
    assert entry["heartbeat"] == str(MAX)


@pytest.mark.parametrize("expect", [False, True],
                         ids=["one-write", "after-100-continue"])
def test_chunked_ping_out_of_range_answered_and_connection_reused(
        gateway, backend, expect):
    """Status 5 at the edge for a chunked Ping; the body read early is
    discarded, not parsed as a request: the next request on the same
    connection is answered, and the backend sees only that one."""
    body = ping_body(MAX + 1)
    options = ("OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\n"
               "Host: localhost\r\n\r\n").encode()

    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        replies = Responses(sock)
        if expect:
            sock.sendall(head("Ping", expect=True))
            assert replies.next(interim=True)[0] == 100
            sock.sendall(chunked(body, 7) + LAST_CHUNK + options)
        else:
            sock.sendall(head("Ping") + chunked(body, 7) + LAST_CHUNK
                         + options)

        status, headers, answer = replies.next()
        assert status == 200
        assert wbxml.decode(answer) == ("Ping:Ping", [
            ("Ping:Status", "5"), ("Ping:HeartbeatInterval", str(MAX))])

        status, _, _ = replies.next()
        assert status == 200
    finally:
        sock.close()

    backend.wait_for(1)
    assert [r.method for r in backend.requests] == ["OPTIONS"]
    logged = entries(gateway, 2)
    assert logged[0]["source"] == "out_of_range"


def test_chunked_ping_in_many_writes_is_scanned(gateway, backend):
    """A small Ping, chunked in 3-byte pieces sent as separate writes
    after 100-continue: its interval is found and the backend gets it
    byte for byte, then a pipelined request on the same connection."""
    body = ping_body(MIN)
    data = chunked(body, 3) + LAST_CHUNK
    options = ("OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\n"
               "Host: localhost\r\n\r\n").encode()

    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        replies = Responses(sock, timeout=15)
        sock.sendall(head("Ping", expect=True))
        assert replies.next(interim=True)[0] == 100
        for start in range(0, len(data), 5):
            sock.sendall(data[start:start + 5])
        sock.sendall(options)

        status, _, answer = replies.next()
        assert status == 200
        assert wbxml.decode(answer)[1][0] == ("Ping:Status", "1")
        assert replies.next()[0] == 200
    finally:
        sock.close()

    assert backend.requests[0].body == body
    assert backend.requests[1].method == "OPTIONS"
    entry = entries(gateway, 2)[0]
    assert (entry["heartbeat"], entry["source"]) == (str(MIN), "body")


def test_chunked_body_over_the_cap_with_a_pipelined_request(gateway,
                                                            backend):
    """A chunked Sync past the cap, sent after 100-continue together with
    the next request: the gateway's reads stop at the body's end, so the
    pipelined request is served after it, and both reach the backend
    whole."""
    body = sync_body(filler=3 * BODY_MAX)
    options = ("OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\n"
               "Host: localhost\r\n\r\n").encode()

    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        replies = Responses(sock)
        sock.sendall(head("Sync", expect=True))
        assert replies.next(interim=True)[0] == 100
        sock.sendall(chunked(body, 100) + LAST_CHUNK + options)
        assert replies.next()[0] == 200
        assert replies.next()[0] == 200
    finally:
        sock.close()

    backend.wait_for(2)
    assert backend.requests[0].body == body
    assert backend.requests[1].method == "OPTIONS"
    assert temp_files(gateway) == []
    entry = entries(gateway, 2)[0]
    assert entry["source"] == "unread"


def test_framing_past_reason_is_not_scanned(gateway, backend):
    """A small Sync whose chunk framing alone is larger than twice the
    cap plus 1k is forwarded unread (held for the maximum), whole."""
    body = sync_body()
    data = chunked(body, 1, extension=b";" + b"e" * 200) + LAST_CHUNK

    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        replies = Responses(sock)
        sock.sendall(head("Sync", close=True) + data)
        assert replies.next()[0] == 200
    finally:
        sock.close()

    assert backend.requests[0].body == body
    assert entries(gateway, 1)[0]["source"] == "unread"


def test_invalid_chunked_body_is_refused(gateway, backend):
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        replies = Responses(sock)
        sock.sendall(head("Ping") + b"zz\r\nhello\r\n0\r\n\r\n")
        assert replies.next()[0] == 400
    finally:
        sock.close()
    assert entries(gateway, 1)[0]["status"] == "400"
    assert backend.requests == []


def test_client_stalling_in_the_chunked_start(gateway, backend):
    """A client that stops in the middle of the part the gateway reads
    gets client_body_timeout (408), as with nginx's own body reader,
    and the backend sees nothing."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        replies = Responses(sock)
        sock.sendall(head("Ping", expect=True))
        assert replies.next(interim=True)[0] == 100
        sock.sendall(b"20\r\n" + ping_body(MIN)[:10])
        assert entries(gateway, 1)[0]["status"] == "408"
    finally:
        sock.close()
    assert backend.requests == []


def test_large_content_length_sync_streams(gateway, recorder):
    """Already so before this change: a body with a Content-Length past
    the cap is not read by the gateway and streams as well."""
    body = sync_body(filler=64 * 1024)
    request = head("Sync", "/recorder/Microsoft-Server-ActiveSync").replace(
        b"Transfer-Encoding: chunked",
        b"Content-Length: %d" % len(body))
    half = len(body) // 2

    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    try:
        sock.sendall(request + body[:half])
        wait_until(lambda: recorder.connections == 1
                   and b"FIRST-" in recorder.received[0],
                   "the backend saw nothing of a half-sent body")
        assert b"-LAST" not in recorder.received[0]
        sock.sendall(body[half:])
        wait_until(lambda: recorder.received[0].endswith(body),
                   "the backend never got the whole body")
        assert temp_files(gateway) == []
    finally:
        sock.close()
