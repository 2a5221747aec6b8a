"""Every concern works in every place it can be configured.

The phase handlers of pre-authentication, device access and long-poll,
and the metrics' log step, join nginx's phases only when some level of
the configuration uses them (ngx_http_eas_uses.c): a request of a
configuration that never uses one does not pay for it.  Leaving one out
where it is configured would let requests through unchecked, so each
configuration here has the concerns in ONE place only, and a request
that runs there must meet all of them:

  - pre-authentication: no credentials get 401;
  - device access: a blocked DeviceId gets 403;
  - long-poll: a Ping below eas_heartbeat_min is answered at the edge
    (Status 5);
  - the metrics: the request forwarded is counted;

and none of the refused ones reaches the backend (its own record).
The places: the http level and the server level (inherited), a nested
location, an "if" block and a "limit_except" block (nginx merges both as
locations of their own; the module's directives cannot be written in
them, so they inherit the enclosing location's), a named location
reached by error_page, and one reached by try_files.
"""

import json
import urllib.request

import pytest

from eastest import confs
from eastest.client import EasClient
from eastest.nginx import start_gateway

EAS = confs.EAS

CONCERNS = """
    eas_preauth "ActiveSync";
    eas_preauth_cache zone=auth;
    eas_preauth_user_file ${dir}/users plain;
    eas_devices devices;
    eas_device_block device_id=ApplBLOCKED0001;
    eas_device_block_status 403;
    eas_longpoll on;
    eas_heartbeat_min 2s;
    eas_heartbeat_max 120s;
"""

STATUS = confs.location("= /status", "eas_status;")

# place: (http level, server level, locations); the requests go to EAS
PLACES = {
    "http": (CONCERNS, "", [confs.eas_location()]),
    "server": ("", CONCERNS, [confs.eas_location()]),
    "nested": ("", "", [confs.location(
        "/", confs.eas_location(CONCERNS))]),
    "if": ("", "", [confs.location(
        EAS, "eas on;", CONCERNS,
        "if ($request_method) { proxy_pass http://backend; }",
        "proxy_pass http://backend;")]),
    "limit_except": ("", "", [confs.location(
        EAS, "eas on;", CONCERNS,
        "limit_except GET { allow 127.0.0.1; deny all; }",
        "proxy_pass http://backend;")]),
    "named_error_page": ("", "", [
        confs.location(EAS, "eas on;", "error_page 418 = @eas;",
                       "return 418;"),
        confs.location("@eas", "eas on;", CONCERNS,
                       "proxy_pass http://backend;")]),
    "named_try_files": ("", "", [
        confs.location(EAS, "eas on;", "try_files /nothing-here @eas;"),
        confs.location("@eas", "eas on;", CONCERNS,
                       "proxy_pass http://backend;")]),
}


pytestmark = pytest.mark.backend(hold_cap=0)


def client(nginx, **kwargs):
    kwargs.setdefault("user", "jdoe")
    kwargs.setdefault("password", "secret")
    return EasClient("http://127.0.0.1:%d%s" % (nginx.port, EAS),
                     device_id=kwargs.pop("device_id", "ApplGOOD0001"),
                     timeout=10.0, **kwargs)


def status(nginx):
    url = "http://127.0.0.1:%d/status" % nginx.port
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read().decode())


@pytest.mark.parametrize("place", sorted(PLACES))
def test_every_concern_works_where_it_is_configured(nginx_factory, backend,
                                                    place):
    http, server, locations = PLACES[place]
    config = confs.gateway(server, *locations, STATUS, http=http)
    nginx = start_gateway(nginx_factory, config,
                          files={"users": confs.password_file(
                              {"jdoe": "secret"})},
                          backend_port=backend.port)

    # pre-authentication
    response = client(nginx, password=None).foldersync()
    assert response.status == 401

    response = client(nginx, password="wrong").foldersync()
    assert response.status == 401

    # device access
    response = client(nginx, device_id="ApplBLOCKED0001").foldersync()
    assert response.status == 403

    # long-poll: below the minimum, answered at the edge
    response = client(nginx).ping(heartbeat=1, timeout=10)
    assert response.status == 200
    assert response.eas_status() == 5

    assert backend.requests == []

    # what passes every check reaches the backend, and is counted
    response = client(nginx).foldersync()
    assert response.status == 200
    assert len(backend.requests) == 1

    doc = status(nginx)
    assert doc["requests"]["FolderSync"]["forwarded"] == 1
    assert doc["requests"]["FolderSync"]["refused"] == 3
    assert doc["requests"]["Ping"]["answered"] == 1


# A request that passed the checks of its "eas on" location goes on to
# a location without "eas on" (try_files runs after those checks): with
# no device step anywhere, the core marks it checked itself, and with
# one elsewhere the device step does; either way it is forwarded.
@pytest.mark.parametrize("devices_elsewhere", [False, True])
def test_checked_request_goes_on_without_the_device_step(
        nginx_factory, backend, devices_elsewhere):
    elsewhere = (confs.eas_location("eas_devices devices;",
                                    path="/other" + EAS)
                 if devices_elsewhere else "")
    config = confs.gateway(
        confs.location(EAS, "eas on;", "try_files /nothing-here @plain;"),
        confs.location("@plain", "proxy_pass http://backend;"),
        elsewhere)
    nginx = start_gateway(nginx_factory, config, backend_port=backend.port)

    response = client(nginx, password=None).foldersync()
    assert response.status == 200
    assert len(backend.requests) == 1
