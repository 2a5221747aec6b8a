"""Issue 10, point 12 (device part): without an authenticated identity
the edge keyed eas_device_max on the query's User=, so three requests
without credentials filled a victim's devices.  Per-user state now
changes only for an authenticated identity: eas_device_max without
eas_preauth fails nginx -t, and where another module admits a request
without good credentials ("satisfy any"), the device zone is not
written and a device that would need a counted place is refused."""

import json

import pytest

from eastest.client import EasClient
from eastest import confs
from eastest.nginx import start_gateway

EAS = "/Microsoft-Server-ActiveSync"
VICTIM = confs.password_file({"victim": "victim-pw"})

# an address exempt from pre-authentication
ANY = """
    eas_preauth "ActiveSync";
    satisfy any;
    allow 127.0.0.1;
    deny all;
"""

NGINX_CONFIG = confs.gateway(
    """
    eas_preauth_cache zone=auth;
    eas_preauth_user_file ${dir}/users plain;
    eas_devices devices;
    """,
    # with a limit
    confs.eas_location(ANY, "eas_device_max 2;", path="/any/",
                       proxy_pass="http://backend/"),
    # the same without a limit: admitted, but nothing recorded
    confs.eas_location(ANY, path="/any-open/", proxy_pass="http://backend/"),
    confs.location("= /inventory", "eas_device_inventory;"),
    http=confs.PLAIN_REFUSALS)

MINIMAL = confs.gateway(
    confs.eas_location("eas_devices devices;", "eas_device_max 3;",
                       proxy_pass="http://127.0.0.1:1"),
    http=confs.PLAIN_REFUSALS, zones="eas_device_zone zone=devices:1m;",
    upstream=None)


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         files={"users": VICTIM}, backend_port=backend.port)


def sync(nginx, prefix, device_id, password=None):
    client = EasClient("http://127.0.0.1:%d/%s%s" % (nginx.port, prefix, EAS),
                       user="victim", password=password, device_id=device_id)
    return client.foldersync().status


def inventory(nginx):
    client = EasClient("http://127.0.0.1:%d/" % nginx.port)
    reply = client.raw("GET", "/inventory", [("Host", "localhost")])
    return json.loads(reply.body)["devices"]


def test_device_max_without_preauth_fails_nginx_t(nginx_factory):
    nginx = nginx_factory(MINIMAL, start=False, port=1)
    nginx.expected_alerts.append(r"\[emerg\]")

    rc, output = nginx.test_config()

    assert rc != 0
    assert ('[emerg] "eas_device_max" counts the devices of authenticated '
            'users: add "eas_preauth"') in output


SERVER_LEVEL = confs.gateway(
    "eas on;", "eas_devices devices;", "eas_device_max 3;",
    confs.location(confs.EAS, """
        eas_preauth "ActiveSync";
        eas_preauth_cache zone=auth;
        eas_preauth_user_file /dev/null;
        proxy_pass http://127.0.0.1:1;
    """),
    http=confs.PLAIN_REFUSALS, upstream=None)


def test_server_level_limit_with_location_preauth_passes(nginx_factory):
    nginx = nginx_factory(SERVER_LEVEL, start=False, port=1)

    rc, output = nginx.test_config()

    assert rc == 0, output


def test_unauthenticated_requests_do_not_fill_a_victims_devices(gateway,
                                                               backend):
    for i in range(3):
        assert sync(gateway, "any", "ApplFAKE%d" % i) == 403
    assert [r for r in backend.requests if "ApplFAKE" in r.target] == []

    # the victim, authenticated, has both places
    assert sync(gateway, "any", "ApplREAL1", "victim-pw") == 200
    assert sync(gateway, "any", "ApplREAL2", "victim-pw") == 200
    assert sync(gateway, "any", "ApplREAL3", "victim-pw") == 403
    devices = {d["device_id"]: d for d in inventory(gateway)}
    assert sorted(devices) == ["ApplREAL1", "ApplREAL2", "ApplREAL3"]
    assert devices["ApplREAL1"]["user_devices"] == 2


def test_unauthenticated_requests_leave_no_record(gateway, backend):
    assert sync(gateway, "any-open", "ApplFAKE9") == 200
    assert inventory(gateway) == []
