"""Issue 11.2: the long-poll timeouts use public interfaces only.  The
module references no symbol of the proxy module (it loads into an nginx
built without it), and locations served by fastcgi_pass, uwsgi_pass,
scgi_pass and grpc_pass get the same timeouts as proxy_pass ones: a
Ping is held past the location's own *_read_timeout (1 s) and answered
as an expired heartbeat (Status 1, the backend here never answers),
and any other command to a silent backend fails after
eas_command_timeout (1 s) although *_read_timeout is 30 s."""

import json
import subprocess

import pytest

from eastest.backends import SilentBackend
from eastest.client import EasClient
from eastest.nginx import free_port

KINDS = {
    "fastcgi": "fastcgi_pass 127.0.0.1:${silent_port};",
    "uwsgi": "uwsgi_pass 127.0.0.1:${silent_port};",
    "scgi": "scgi_pass 127.0.0.1:${silent_port};",
    "grpc": "grpc_pass grpc://127.0.0.1:${silent_port};",
    "proxy": "proxy_pass http://127.0.0.1:${silent_port};",
}


def locations():
    out = []
    for kind, directive in KINDS.items():
        for name, read_timeout in (("short", "1s"), ("long", "30s")):
            out.append(
                "        location /%s-%s/Microsoft-Server-ActiveSync {\n"
                "            %s\n"
                "            %s_read_timeout %s;\n"
                "        }\n" % (kind, name, directive, kind, read_timeout))
    return "".join(out)


NGINX_CONFIG = """
http {
    ${temp_paths}
    log_format eas_longpoll escape=json '{"status":"$status",'
        '"cmd":"$eas_cmd","reason":"$eas_reason","uri":"$uri"}';

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/eas.log eas_longpoll;

        eas on;
        eas_longpoll on;
        eas_heartbeat_min 2s;
        eas_heartbeat_max 120s;
        eas_longpoll_margin 1s;
        eas_command_timeout 1s;

""" + locations() + """
    }
}
"""


def test_module_does_not_reference_the_proxy_module(module_path):
    undefined = subprocess.run(["nm", "-D", "--undefined-only",
                                str(module_path)], check=True,
                               capture_output=True, text=True).stdout
    assert "ngx_http_proxy_module" not in undefined


@pytest.fixture
def gateway(nginx_factory):
    with SilentBackend() as silent:
        port = free_port()
        nginx = nginx_factory(NGINX_CONFIG, listen=(port,), port=port,
                              silent_port=silent.port)
        nginx.port = port
        yield nginx


def client(gateway, kind, name):
    return EasClient("http://127.0.0.1:%d/%s-%s/Microsoft-Server-ActiveSync"
                     % (gateway.port, kind, name), user="jdoe",
                     device_id="%s%s" % (kind, name), timeout=10.0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_ping_is_held_past_the_locations_read_timeout(gateway, kind):
    response = client(gateway, kind, "short").ping(heartbeat=2)
    assert (response.status, response.eas_status()) == (200, 1)
    entry = json.loads(gateway.wait_for_access_log(
        1, name="eas.log", timeout=10)[0])
    assert (entry["status"], entry["reason"]) == ("200",
                                                  "heartbeat_expired")


@pytest.mark.parametrize("kind", list(KINDS))
def test_other_commands_get_the_command_timeout(gateway, kind):
    response = client(gateway, kind, "long").foldersync()
    # within the client's 10 s, far below the location's 30 s
    assert response.status == 504
