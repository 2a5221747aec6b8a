"""Issue 10.6: a held Ping that an internal redirect takes to a location
without eas_devices (error_page 502 = @fallback, proxy_intercept_errors,
X-Accel-Redirect) must not crash the worker's once-a-second sweep of
held requests: every other held DirectPush connection of that worker
would be lost.  One worker, so the redirected Ping and the others share
its sweep; a superseded Ping proves that a sweep ran after the redirect,
the others must still be held, and be answered normally at the end."""

import os
import socket
import socketserver
import threading

import pytest

from eastest.backends import EasBackend, SilentBackend
from eastest.client import EasClient
from eastest.nginx import free_port


EAS = """
            eas on;
            eas_devices eas_devices;
            eas_longpoll on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file ${dir}/users plain;
"""

NGINX_CONFIG = """
http {
    ${temp_paths}
    eas_device_zone zone=eas_devices:1m;
    eas_preauth_zone zone=auth:1m;

    upstream holding {
        server 127.0.0.1:${hold_port};
    }

    upstream bad {
        server 127.0.0.1:${bad_port};
    }

    server {
        listen 127.0.0.1:${port};

        eas_heartbeat_min 2s;
        eas_heartbeat_max 120s;
        eas_longpoll_margin 2s;

        location /Microsoft-Server-ActiveSync {
""" + EAS + """
            proxy_pass http://holding;
        }

        location /close/Microsoft-Server-ActiveSync {
""" + EAS + """
            error_page 502 = @fallback;
            proxy_pass http://bad;
        }

        location /intercept/Microsoft-Server-ActiveSync {
""" + EAS + """
            proxy_intercept_errors on;
            error_page 503 = @fallback;
            proxy_pass http://bad;
        }

        location /accel/Microsoft-Server-ActiveSync {
""" + EAS + """
            proxy_pass http://bad;
        }

        location /redirected/ {
            internal;
            proxy_read_timeout 5s;
            proxy_pass http://127.0.0.1:${silent_port};
        }

        location @fallback {
            proxy_read_timeout 5s;
            proxy_pass http://127.0.0.1:${silent_port};
        }
    }
}
"""


class _BadHandler(socketserver.BaseRequestHandler):
    """Reads one request; by its path: closes the connection (502 at
    nginx), answers 503, or answers with an X-Accel-Redirect."""

    def handle(self):
        data = b""
        self.request.settimeout(5)
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        self.server.seen.append(data.split(b"\r\n", 1)[0])
        if b" /close/" in data[:64]:
            return
        if b" /intercept/" in data[:64]:
            answer = (b"HTTP/1.1 503 Service Unavailable\r\n"
                      b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            answer = (b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: "
                      b"/redirected/Microsoft-Server-ActiveSync\r\n"
                      b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        self.request.sendall(answer)


class BadBackend(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _BadHandler)
        self.seen = []
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


class Background:
    """A request sent from a thread; response() joins it."""

    def __init__(self, send):
        self.result = {}

        def run():
            try:
                self.result["response"] = send()
            except (OSError, socket.timeout) as exc:
                self.result["error"] = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def pending(self):
        return self.thread.is_alive()

    def response(self, timeout=15):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "no answer in %d s" % timeout
        assert "error" not in self.result, self.result.get("error")
        return self.result["response"]


@pytest.fixture
def gateway(nginx_factory):
    with EasBackend(supersede=False) as holding, \
            SilentBackend() as silent:
        bad = BadBackend()
        port = free_port()
        variables = dict(port=port, hold_port=holding.port,
                         bad_port=bad.port, silent_port=silent.port)
        nginx = nginx_factory(NGINX_CONFIG, start=False, **variables)
        # one worker: the redirected Ping shares the sweep of the others
        nginx.worker_processes = 1
        nginx.render(NGINX_CONFIG, **variables)
        with open(os.path.join(nginx.dir, "users"), "w") as f:
            f.write("jdoe:{PLAIN}secret\n")
        nginx.start(ports=(port,))
        nginx.port = port
        nginx.holding, nginx.silent, nginx.bad = holding, silent, bad
        try:
            yield nginx
        finally:
            nginx.stop()
            bad.close()


def client(gateway, device_id, path="/Microsoft-Server-ActiveSync"):
    return EasClient("http://127.0.0.1:%d%s" % (gateway.port, path),
                     user="jdoe", password="secret", device_id=device_id,
                     timeout=30.0)


def held_ping(gateway, device_id, heartbeat=60):
    count = len(gateway.holding.requests)
    ping = Background(lambda: client(gateway, device_id).ping(
        heartbeat=heartbeat))
    gateway.holding.wait_for(count + 1)
    return ping


@pytest.mark.parametrize("variant", ["close", "intercept", "accel"])
def test_redirected_held_ping_leaves_the_sweep_alone(gateway, variant):
    kept = held_ping(gateway, "kept")
    older = held_ping(gateway, "moving")

    # held, forwarded, then redirected into a location without eas
    redirected = Background(lambda: client(
        gateway, "redirected",
        "/%s/Microsoft-Server-ActiveSync" % variant).ping(heartbeat=60))
    gateway.silent.wait_for_connections(1, timeout=10)
    assert len(gateway.bad.seen) == 1

    # a newer Ping of "moving": the sweep that ends the older one also
    # walks the redirected request
    newer = held_ping(gateway, "moving")
    response = older.response(timeout=10)
    assert (response.status, response.eas_status()) == (200, 1)

    assert kept.pending() and newer.pending()
    assert not [line for line in open(gateway.error_log_path)
                if "exited on signal" in line]

    # the backend's record: the three held Pings and nothing else
    devices = sorted(r.eas.device_id for r in gateway.holding.requests)
    assert devices == ["kept", "moving", "moving"]

    # a graceful stop answers the held Pings: their connections lived
    gateway.stop()
    for ping in (kept, newer):
        answer = ping.response(timeout=15)
        assert (answer.status, answer.eas_status()) == (200, 1)
    redirected.thread.join(15)
