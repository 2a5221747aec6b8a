"""Issue 10, point 15: a subrequest source that says yes to everyone.  The
shipped check sends an OPTIONS to /Microsoft-Server-ActiveSync; SOGo
answers any path outside /SOGo with 200 and an HTML page, whatever the
credentials, so every wrong password was accepted, cached and never
counted.  A 2xx without MS-ASProtocolVersions is no answer to an
ActiveSync OPTIONS: a source error (503), logged as such, and nothing
reaches the backend.  With "answer=status" (a source that is not an
ActiveSync server) any 2xx counts, and the backend refusing what the edge
accepted is logged loudly."""

import re

import pytest

from eastest.backends import CredentialBackend
from eastest import confs
from eastest.nginx import free_port, start_gateway
from preauth_client import send_basic

QUERY = "?Cmd=Settings&User=jdoe&DeviceId=DEV1&DeviceType=iPhone"

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/auth.log auth;",
    confs.eas_location(confs.PREAUTH_CACHED,
                       "eas_preauth_request /_eas_preauth ${answer};",
                       proxy_pass=confs.DIRECT),
    confs.location("= /_eas_preauth", """
        internal;
        proxy_method OPTIONS;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_pass http://127.0.0.1:${backend_port}/whatever/path;
    """),
    http="log_format auth '$status $eas_auth $eas_reason';",
    zones=confs.AUTH_ZONE, upstream=None)


@pytest.fixture
def sogo():
    backend = CredentialBackend({None: {"jdoe": "secret"}}, sogo_like=True)
    backend.start()
    yield backend
    backend.stop()


def send(port, user, password):
    return send_basic(port, user, password, QUERY)


def test_a_2xx_without_activesync_headers_is_a_source_error(
        nginx_factory, sogo):
    nginx = start_gateway(nginx_factory, NGINX_CONFIG, answer="",
                          backend_port=sogo.port)
    port = nginx.port
    mark = nginx.mark()

    for password in ("wrong-1", "wrong-2", "secret"):
        reply = send(port, "jdoe", password)
        assert reply.status == 503

    # the backend saw the checks, never a command
    assert {r.method for r in sogo.requests} == {"OPTIONS"}
    assert len(sogo.requests) == 3

    log = nginx.wait_for_access_log(3, name="auth.log")
    assert log == ["503 error auth_error"] * 3
    errors = [line for line in nginx.error_lines_since(mark)
              if "not an ActiveSync server's answer" in line]
    assert len(errors) == 3
    assert all("[error]" in line and 'user "jdoe"' in line
               and "wrong" not in line for line in errors)


def test_the_backend_refusing_what_the_edge_accepted_is_logged(
        nginx_factory, sogo):
    nginx = start_gateway(nginx_factory, NGINX_CONFIG, answer="answer=status",
                          backend_port=sogo.port)
    port = nginx.port
    mark = nginx.mark()

    for _ in range(4):
        assert send(port, "jdoe", "wrong").status == 401   # the backend's

    def warnings():
        return [line for line in nginx.error_lines_since(mark)
                if "credential stores disagree" in line]

    nginx.wait_for_access_log(4, name="auth.log")
    lines = warnings()
    # loud, but at most one per worker in 10 s
    assert 1 <= len(lines) <= nginx.worker_processes
    assert re.search(r'\[warn\].*backend answered 401 to user "jdoe" '
                     r'accepted at the edge \(auth=(ok|cached), credential '
                     r'source "/_eas_preauth"\)', lines[0]), lines[0]
    assert "wrong" not in lines[0]


@pytest.mark.parametrize("parameter,message", [
    ("answer=maybe", 'invalid parameter "answer=maybe" in '
                     '"eas_preauth_request", it must be '
                     '"answer=activesync" or "answer=status"'),
])
def test_the_answer_parameter_is_checked(nginx_factory, parameter, message):
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=free_port(),
                          answer=parameter, backend_port=free_port())
    nginx.expected_alerts.append(r"\[emerg\]")
    code, output = nginx.test_config()
    assert code != 0
    assert message in output
