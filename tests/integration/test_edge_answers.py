"""What the edge says and logs when it answers a request itself (issue
10.14, 11.9): the level of its log lines (eas_log_level), and the
headers and bodies of its answers (docs/edge-answers.md)."""

import base64
import hashlib
import re
import shutil

import pytest

from eastest import wbxml
from eastest.client import EasClient, raw_http
from eastest import confs
from eastest.nginx import free_port, start_gateway

EAS = "/Microsoft-Server-ActiveSync"

NGINX_CONFIG = confs.gateway(
    confs.eas_location("${location_level}", proxy_pass=confs.DIRECT),
    zones=None, upstream=None)


@pytest.mark.parametrize("level", ["info", "notice", "warn", "error"])
def test_eas_log_level_sets_the_level_of_refusals(nginx_factory, backend,
                                                   level):
    nginx = start_gateway(nginx_factory, NGINX_CONFIG,
                          backend_port=backend.port,
                          location_level="eas_log_level %s;" % level)
    port = nginx.port
    mark = nginx.mark()

    client = EasClient("http://127.0.0.1:%d" % port, protocol="14.1")
    assert client.raw("POST", EAS + "?Cmd=Sync&DeviceId=a&DeviceId=b"
                      "&DeviceType=iPhone").status == 400

    lines = [line for line in nginx.error_lines_since(mark)
             if "eas: malformed request" in line]
    assert len(lines) == 1 and "[%s]" % level in lines[0], lines
    assert backend.requests == []


def test_eas_log_level_default_is_notice(nginx_factory, backend):
    nginx = start_gateway(nginx_factory, NGINX_CONFIG,
                          backend_port=backend.port, location_level="")
    port = nginx.port
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


# ---------------------------------------------------------------------
# A blocked device gets what Exchange's device access sends (issue 11.9)

BLOCK_CONFIG = confs.gateway(
    confs.eas_location("eas_device_block device_id=ApplLOST0001;",
                       "${location_level}", proxy_pass=confs.DIRECT),
    zones=None, upstream=None)

# (command, the XML libwbxml reads back from the answer)
BLOCKED = [
    ("FolderSync", '<FolderSync xmlns="FolderHierarchy:">'),
    ("FolderCreate", '<FolderCreate xmlns="FolderHierarchy:">'),
    ("FolderDelete", '<FolderDelete xmlns="FolderHierarchy:">'),
    ("FolderUpdate", '<FolderUpdate xmlns="FolderHierarchy:">'),
    ("Sync", '<Sync xmlns="AirSync:">'),
    ("Ping", '<Ping xmlns="Ping:">'),
    ("Provision", '<Provision xmlns="Provision:">'),
    ("Settings", '<Settings xmlns="Settings:">'),
    ("Search", '<Search xmlns="Search:">'),
    ("ItemOperations", '<ItemOperations xmlns="ItemOperations:">'),
    ("ResolveRecipients", '<ResolveRecipients xmlns="ResolveRecipients:">'),
    ("ValidateCert", '<ValidateCert xmlns="ValidateCert:">'),
    ("SendMail", '<SendMail xmlns="ComposeMail:">'),
    ("SmartForward", '<SmartForward xmlns="ComposeMail:">'),
    ("SmartReply", '<SmartReply xmlns="ComposeMail:">'),
]


@pytest.fixture
def blocking(nginx_factory, backend):
    def make(location_level=""):
        return start_gateway(nginx_factory, BLOCK_CONFIG,
                             backend_port=backend.port,
                             location_level=location_level)
    return make


def device(nginx, protocol="14.1", device_id="ApplLOST0001"):
    return EasClient("http://127.0.0.1:%d" % nginx.port, user="jdoe",
                     device_id=device_id, protocol=protocol)


@pytest.mark.skipif(shutil.which("wbxml2xml") is None,
                    reason="libwbxml2-utils is not installed")
@pytest.mark.parametrize("command,xml", BLOCKED,
                         ids=[case[0] for case in BLOCKED])
def test_blocked_device_gets_status_129_from_protocol_14(blocking, backend,
                                                          command, xml):
    nginx = blocking()

    reply = device(nginx).command(command, b"\x03\x01\x6a\x00")

    assert reply.status == 200
    assert reply.header("Content-Type") == "application/vnd.ms-sync.wbxml"
    root = xml[1:xml.index(" ")]
    assert wbxml.libwbxml_xml(reply.body, root) == \
        xml + "<Status>129</Status></%s>" % root
    assert reply.header("MS-Server-ActiveSync")
    assert reply.header("Cache-Control") == "private"
    assert backend.requests == []


@pytest.mark.parametrize("protocol,command", [
    ("12.1", "FolderSync"), ("12.0", "Sync"), ("2.5", "Ping"),
    # no top-level Status in these answers: 403 at any version
    ("14.1", "GetAttachment"), ("16.1", "MoveItems"),
    ("14.0", "MeetingResponse")])
def test_blocked_device_gets_403_where_exchange_sends_it(blocking, backend,
                                                         protocol, command):
    nginx = blocking()

    reply = device(nginx, protocol).command(command, b"")

    assert reply.status == 403
    assert reply.header("MS-Server-ActiveSync")
    assert backend.requests == []


def test_explicit_block_status_applies_to_every_version(blocking, backend):
    nginx = blocking("eas_device_block_status 449;")

    assert device(nginx, "16.1").foldersync().status == 449
    assert device(nginx, "12.1").foldersync().status == 449
    assert backend.requests == []


def test_blocked_answer_keeps_the_connection_usable(blocking, backend):
    """The blocked request's body is discarded, not read as the next
    request: the connection goes on with an allowed device."""
    nginx = blocking()
    body = b"\x03\x01\x6a\x00" + b"x" * 5000
    lost = device(nginx).target("FolderSync")
    good = device(nginx, device_id="ApplGOOD0001").target("FolderSync")
    data = b""
    sync = wbxml.encode(("FolderHierarchy:FolderSync",
                         [("FolderHierarchy:SyncKey", "0")]))
    for target, payload in ((lost, body), (good, sync)):
        data += (b"POST %s HTTP/1.1\r\nHost: x\r\nMS-ASProtocolVersion: "
                 b"14.1\r\nContent-Length: %d\r\n\r\n%s"
                 % (target.encode(), len(payload), payload))
    data += (b"OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\n"
             b"Connection: close\r\n\r\n")

    reply = raw_http("127.0.0.1", nginx.port, data, timeout=10)

    assert re.findall(rb"HTTP/1.1 (\d+)", reply) == [b"200"] * 3, reply
    assert [r.eas.device_id for r in backend.wait_for(2)] == \
        ["ApplGOOD0001", None]


# ---------------------------------------------------------------------
# Every answer made at the edge carries the ActiveSync server's headers;
# a backend's answer passes untouched

HEADERS_CONFIG = confs.gateway(
    confs.eas_location("eas_longpoll on;", proxy_pass=confs.DIRECT),
    confs.eas_location("""
        eas_preauth "ActiveSync";
        eas_preauth_cache zone=auth;
        eas_preauth_user_file ${dir}/users.htpasswd;
        """, path="/auth" + EAS, proxy_pass=confs.DIRECT + EAS),
    confs.eas_location(path="/dead" + EAS,
                       proxy_pass="http://127.0.0.1:${dead_port}"),
    zones="eas_preauth_zone zone=auth:1m;", upstream=None)


@pytest.fixture
def edge(nginx_factory, backend):
    sha1 = base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    nginx = start_gateway(nginx_factory, HEADERS_CONFIG,
                          files={"users.htpasswd": "jdoe:{SHA}%s\n" % sha1},
                          backend_port=backend.port, dead_port=free_port())
    nginx.expected_alerts.append(r"connect\(\) failed")
    return nginx


def edge_client(nginx, path="", **kwargs):
    return EasClient("http://127.0.0.1:%d%s%s" % (nginx.port, path, EAS),
                     user="jdoe", protocol="14.1", **kwargs)


EDGE_MADE = [
    ("400 malformed", lambda n: edge_client(n).raw(
        "POST", EAS + "?Cmd=Sync&DeviceId=a&DeviceId=b&DeviceType=x",
        [("MS-ASProtocolVersion", "14.1"), ("Content-Length", "0")]), 400),
    ("405 method", lambda n: edge_client(n).raw("GET", EAS + "?Cmd=Sync"),
     405),
    ("401 no credentials", lambda n: edge_client(n, "/auth").foldersync(),
     401),
    ("401 wrong password", lambda n: edge_client(
        n, "/auth", password="wrong").foldersync(), 401),
    ("Ping Status 5", lambda n: edge_client(n).ping(heartbeat=30), 200),
    ("502 backend down", lambda n: edge_client(n, "/dead").foldersync(),
     502),
]


@pytest.mark.parametrize("name,send,status", EDGE_MADE,
                         ids=[case[0] for case in EDGE_MADE])
def test_edge_made_answers_carry_server_headers(edge, backend, name, send,
                                                status):
    reply = send(edge)

    assert reply.status == status
    assert reply.header("MS-Server-ActiveSync") == "15.1"
    assert reply.header("Cache-Control") == "private"
    assert backend.requests == []


def test_backend_answers_pass_untouched(edge, backend):
    reply = edge_client(edge, "/auth", password="secret").foldersync()

    assert reply.status == 200
    assert reply.eas_status() == 1
    assert reply.header("MS-Server-ActiveSync") is None
    assert reply.header("Cache-Control") is None
    assert len(backend.requests) == 1
