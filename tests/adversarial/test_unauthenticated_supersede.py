"""Issue 10.12 (supersede): without eas_preauth the backend
authenticates and the identity the edge sees is the query's User=,
which anyone can write.  A Ping with no (or wrong) credentials naming a
victim's user and DeviceId must not make the gateway end the victim's
held Ping: one such request a second would break the phone's DirectPush.
The gateway ends a superseded Ping only for a verified identity
(docs/directpush.md); the backend, which authenticates, handles its
own collisions."""

import json
import threading

import pytest

from eastest.backends import EasBackend
from eastest.client import EasClient
from eastest import confs
from eastest.nginx import start_gateway

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/eas.log eas_longpoll;",
    confs.eas_location("""
        eas_devices eas_devices;
        eas_longpoll on;
        eas_heartbeat_min 2s;
        eas_heartbeat_max 120s;
        eas_longpoll_margin 2s;
        """, proxy_pass=confs.DIRECT),
    http="""
    log_format eas_longpoll escape=json '{"status":"$status",'
        '"device":"$eas_device_id","reason":"$eas_reason"}';
    """,
    zones="eas_device_zone zone=eas_devices:1m;", upstream=None)

HOLD = 4


@pytest.fixture
def gateway(nginx_factory):
    # a backend that never ends an older Ping itself
    with EasBackend(supersede=False) as backend:
        nginx = start_gateway(nginx_factory, NGINX_CONFIG,
                              backend_port=backend.port)
        nginx.backend = backend
        yield nginx


def client(gateway, password):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % gateway.port, user="jdoe", password=password,
                     device_id="victimphone", timeout=20.0)


@pytest.mark.parametrize("password", [None, "guessed"],
                         ids=["no Authorization", "wrong password"])
def test_unverified_ping_does_not_end_a_held_ping(gateway, password):
    mark = gateway.mark()
    result = {}
    victim = threading.Thread(target=lambda: result.setdefault(
        "ping", client(gateway, "secret").ping(heartbeat=HOLD)))
    victim.start()
    gateway.backend.wait_for(1)

    # the attacker's Ping names the victim's user and DeviceId
    attacker = threading.Thread(target=lambda: result.setdefault(
        "attack", client(gateway, password).ping(heartbeat=2)))
    attacker.start()
    gateway.backend.wait_for(2)

    victim.join(20)
    attacker.join(20)
    ping = result["ping"]
    # held for its whole interval, answered by the backend
    assert (ping.status, ping.eas_status()) == (200, 1)
    assert ping.elapsed >= HOLD - 0.2

    entries = [json.loads(line) for line in
               gateway.wait_for_access_log(2, name="eas.log", timeout=10)]
    assert "ping_superseded" not in [e["reason"] for e in entries]
    assert not [line for line in gateway.error_lines_since(mark)
                if "superseded" in line]
    # the backend's record: both reached it, the victim's first
    assert [r.header("Authorization") is not None
            for r in gateway.backend.requests] == [True,
                                                    password is not None]
