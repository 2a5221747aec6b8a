"""Issue 10, point 4: a full device zone lifted eas_device_max.  Every
request, blocked or not, took a record, and evicting the least recently
seen record lowered its owner's count silently: one authenticated user
spraying DeviceIds freed every other user's places and went past his own
maximum.  Now a device counted for its user is never evicted, refused
devices only take records that can be evicted, and when a device needs
a counted place the zone does not have, it is refused (fail closed) with
one alert a minute.  Asserted from the backend's record."""

import json

import pytest

from eastest.client import EasClient
from eastest import confs
from eastest.nginx import start_gateway

EAS = "/Microsoft-Server-ActiveSync"
USERS = 400

NGINX_CONFIG = confs.gateway(
    confs.eas_location(confs.PREAUTH, """
        eas_preauth_lockout user=off address=off;
        eas_devices tiny;
        eas_device_max 2;
        eas_device_block device_id=~^ApplBAD;
        """),
    confs.location("= /inventory", "eas_devices tiny;",
                   "eas_device_inventory;"),
    http=confs.PLAIN_REFUSALS, zones="""
    eas_preauth_zone zone=auth:4m;
    eas_device_zone zone=tiny:32k;
    """)


@pytest.fixture
def gateway(nginx_factory, backend):
    users = {"victim": "victim-pw", "attacker": "attacker-pw"}
    users.update(("user%03d" % i, "pw%03d" % i) for i in range(USERS))
    nginx = start_gateway(nginx_factory, NGINX_CONFIG,
                          files={"users": confs.password_file(users)},
                          backend_port=backend.port)
    nginx.expected_alerts.append(r'eas zone "tiny" is full')
    return nginx


def sync(nginx, user, password, device_id):
    client = EasClient("http://127.0.0.1:%d%s" % (nginx.port, EAS),
                       user=user, password=password, device_id=device_id)
    return client.foldersync().status


def forwarded(backend, user):
    return sorted({r.eas.device_id for r in backend.requests
                   if r.eas.user == user})


def inventory(nginx):
    client = EasClient("http://127.0.0.1:%d/" % nginx.port)
    reply = client.raw("GET", "/inventory", [("Host", "localhost")])
    assert reply.status == 200
    return json.loads(reply.body)["devices"]


def test_spraying_device_ids_frees_no_place(gateway, backend):
    assert sync(gateway, "victim", "victim-pw", "ApplVICTIM1") == 200
    assert sync(gateway, "victim", "victim-pw", "ApplVICTIM2") == 200

    # far more records than the zone holds: over the limit, and blocked
    for i in range(300):
        device = ("ApplSPRAY%03d" if i % 2 else "ApplBAD%03d") % i
        sync(gateway, "attacker", "attacker-pw", device)

    # the victim's two places are still taken, his devices still work
    assert sync(gateway, "victim", "victim-pw", "ApplVICTIM3") == 403
    assert sync(gateway, "victim", "victim-pw", "ApplVICTIM1") == 200
    assert sync(gateway, "victim", "victim-pw", "ApplVICTIM2") == 200
    # and the attacker never had more than his own two
    assert len(forwarded(backend, "attacker")) == 2
    assert forwarded(backend, "victim") == ["ApplVICTIM1", "ApplVICTIM2"]


def test_full_zone_refuses_new_counted_devices(gateway, backend):
    assert sync(gateway, "victim", "victim-pw", "ApplVICTIM1") == 200

    mark = gateway.mark()
    refused = None
    for i in range(USERS):
        user, password = "user%03d" % i, "pw%03d" % i
        if sync(gateway, user, password, "ApplUSER%03d" % i) == 403:
            refused = i
            break
    assert refused is not None, "the zone never filled"
    lines = gateway.error_lines_since(mark)
    assert any('blocked by eas_device_zone_full' in line for line in lines)

    # fail closed: the next ones too, with one alert for all of them
    for i in range(refused + 1, min(refused + 5, USERS)):
        assert sync(gateway, "user%03d" % i, "pw%03d" % i,
                    "ApplUSER%03d" % i) == 403
    lines = gateway.error_lines_since(mark)
    assert len([line for line in lines if "is full" in line]) == 1

    # nobody counted lost his place
    assert sync(gateway, "victim", "victim-pw", "ApplVICTIM1") == 200
    assert sync(gateway, "user000", "pw000", "ApplUSER000") == 200
    users = {r.eas.user for r in backend.requests}
    assert "user%03d" % refused not in users
    counted = [d for d in inventory(gateway) if d["user_devices"]]
    assert len(counted) == refused + 1
