"""What the edge says and logs when it answers a request itself (issue
10.14, 11.9): the level of its log lines (eas_log_level), and the
headers and bodies of its answers (docs/edge-answers.md)."""

import pytest

from eastest.client import EasClient
from eastest.nginx import free_port

EAS = "/Microsoft-Server-ActiveSync"

NGINX_CONFIG = """
http {
    ${temp_paths}

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            eas on;
            ${location_level}
            proxy_pass http://127.0.0.1:${backend_port};
        }
    }
}
"""


@pytest.mark.parametrize("level", ["info", "notice", "warn", "error"])
def test_eas_log_level_sets_the_level_of_refusals(nginx_factory, backend,
                                                   level):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, listen=(port,), port=port,
                          backend_port=backend.port,
                          location_level="eas_log_level %s;" % level)
    mark = nginx.mark()

    client = EasClient("http://127.0.0.1:%d" % port, protocol="14.1")
    assert client.raw("POST", EAS + "?Cmd=Sync&DeviceId=a&DeviceId=b"
                      "&DeviceType=iPhone").status == 400

    lines = [line for line in nginx.error_lines_since(mark)
             if "eas: malformed request" in line]
    assert len(lines) == 1 and "[%s]" % level in lines[0], lines
    assert backend.requests == []


def test_eas_log_level_default_is_notice(nginx_factory, backend):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, listen=(port,), port=port,
                          backend_port=backend.port, location_level="")
    mark = nginx.mark()

    client = EasClient("http://127.0.0.1:%d" % port, protocol="14.1")
    assert client.raw("GET", EAS + "?Cmd=Sync").status == 405

    lines = [line for line in nginx.error_lines_since(mark)
             if "eas: method" in line]
    assert len(lines) == 1 and "[notice]" in lines[0], lines


def test_eas_log_level_refuses_other_values(nginx_factory, backend):
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=free_port(),
                          backend_port=backend.port,
                          location_level="eas_log_level debug;")
    nginx.expected_alerts.append(r"\[emerg\] .*invalid value \"debug\"")

    rc, output = nginx.test_config()

    assert rc != 0
    assert 'invalid value "debug"' in output
