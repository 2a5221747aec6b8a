"""Issue 10, point 12 (device part): without an authenticated identity
the edge keyed eas_device_max on the query's User=, so three requests
without credentials filled a victim's devices.  Per-user state now
changes only for an authenticated identity: eas_device_max without
eas_preauth fails nginx -t, and where another module admits a request
without good credentials ("satisfy any"), the device zone is not
written and a device that would need a counted place is refused."""

import json
import os

import pytest

from eastest.client import EasClient
from eastest.nginx import free_port

EAS = "/Microsoft-Server-ActiveSync"

NGINX_CONFIG = """
http {
    # decisions as plain statuses (the 200 + Status 129 answer of
    # protocol 14.0+ is tested in test_edge_answers.py)
    eas_device_block_status 403;
    ${temp_paths}

    eas_preauth_zone zone=auth:1m;
    eas_device_zone zone=devices:1m;

    upstream backend {
        server 127.0.0.1:${backend_port};
    }

    server {
        listen 127.0.0.1:${port};

        eas_preauth_cache zone=auth;
        eas_preauth_user_file ${dir}/users plain;
        eas_devices devices;

        # an address exempt from pre-authentication, with a limit
        location /any/ {
            eas on;
            eas_preauth "ActiveSync";
            satisfy any;
            allow 127.0.0.1;
            deny all;
            eas_device_max 2;
            proxy_pass http://backend/;
        }

        # the same without a limit: admitted, but nothing recorded
        location /any-open/ {
            eas on;
            eas_preauth "ActiveSync";
            satisfy any;
            allow 127.0.0.1;
            deny all;
            proxy_pass http://backend/;
        }

        location = /inventory {
            eas_device_inventory;
        }
    }
}
"""

MINIMAL = """
http {
    # decisions as plain statuses (the 200 + Status 129 answer of
    # protocol 14.0+ is tested in test_edge_answers.py)
    eas_device_block_status 403;
    ${temp_paths}
    eas_device_zone zone=devices:1m;

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_devices devices;
            eas_device_max 3;
            proxy_pass http://127.0.0.1:1;
        }
    }
}
"""


@pytest.fixture
def gateway(nginx_factory, backend):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=port,
                          backend_port=backend.port)
    with open(os.path.join(nginx.dir, "users"), "w") as handle:
        handle.write("victim:{PLAIN}victim-pw\n")
    nginx.start(ports=(port,))
    nginx.port = port
    return nginx


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


SERVER_LEVEL = """
http {
    # decisions as plain statuses (the 200 + Status 129 answer of
    # protocol 14.0+ is tested in test_edge_answers.py)
    eas_device_block_status 403;
    ${temp_paths}
    eas_device_zone zone=devices:1m;
    eas_preauth_zone zone=auth:1m;

    server {
        listen 127.0.0.1:${port};
        eas on;
        eas_devices devices;
        eas_device_max 3;

        location /Microsoft-Server-ActiveSync {
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file /dev/null;
            proxy_pass http://127.0.0.1:1;
        }
    }
}
"""


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
