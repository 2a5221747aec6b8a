"""Step 1 of the request flow through a real nginx: every ActiveSync
request of an "eas on" location is parsed; good ones reach the backend
byte for byte with their fields in $eas_* variables, malformed ones are
answered 400 with one log line and never reach the backend."""

import base64
import json
import os
import re

import pytest

from eastest import wbxml
from eastest.client import EasClient, raw_http
from eastest.nginx import free_port

EAS = "/Microsoft-Server-ActiveSync"

VARIABLES = ("eas_cmd", "eas_user", "eas_device_id", "eas_device_type",
             "eas_protocol_version", "eas_policy_key", "eas_query_form",
             "eas_locale", "eas_attachment_name", "eas_collection_id",
             "eas_collection_name", "eas_item_id", "eas_long_id",
             "eas_parent_id", "eas_occurrence", "eas_save_in_sent",
             "eas_accept_multipart", "eas_reason")

LOG_FORMAT = "log_format eas_test escape=json '{\"status\":\"$status\"," + \
    ",".join('"%s":"$%s"' % (name, name) for name in VARIABLES) + "}';"

NGINX_CONFIG = """
http {
    ${temp_paths}
    """ + LOG_FORMAT + """

    upstream backend {
        server 127.0.0.1:${backend_port};
        keepalive 4;
    }

    server {
        listen 127.0.0.1:${port};
        listen 127.0.0.1:${tls_port} ssl;
        ssl_certificate ${cert};
        ssl_certificate_key ${key};

        access_log ${dir}/eas.log eas_test;
        error_log ${dir}/error.log debug;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_request_buffering off;

        location /Microsoft-Server-ActiveSync {
            eas on;

            # the parse runs before the location's own rewrite directives
            if ($eas_device_type = "RewriteProbe") {
                return 418;
            }

            proxy_pass http://backend;
        }

        location /get-allowed/Microsoft-Server-ActiveSync {
            eas on;
            eas_methods POST OPTIONS GET;
            proxy_pass http://backend/Microsoft-Server-ActiveSync;
        }

        location /error-page/Microsoft-Server-ActiveSync {
            eas on;
            error_page 400 = /bad-request;
            proxy_pass http://backend;
        }

        location = /bad-request {
            return 400 "refused by the gateway\\n";
        }

        location /no-eas/Microsoft-Server-ActiveSync {
            proxy_pass http://backend/Microsoft-Server-ActiveSync;
        }
    }
}
"""


@pytest.fixture
def gateway(nginx_factory, backend, certs):
    port, tls_port = free_port(), free_port()
    nginx = nginx_factory(NGINX_CONFIG, listen=(port, tls_port), port=port,
                          tls_port=tls_port, backend_port=backend.port,
                          cert=certs.cert, key=certs.key)
    nginx.port = port
    nginx.tls_port = tls_port
    return nginx


def log_entries(nginx, count):
    lines = nginx.wait_for_access_log(count, name="eas.log")
    return [json.loads(line) for line in lines[:count]]


def send(nginx, method, target, headers=(), body=b""):
    client = EasClient("http://127.0.0.1:%d" % nginx.port)
    headers = list(headers)
    if body or method == "POST":
        headers.append(("Content-Length", str(len(body))))
    return client.raw(method, target, headers, body)


def expect_fields(entry, **expected):
    """Compare the logged variables; a field not given must be not found
    (escape=json logs that as ""), so nothing is set by accident."""
    for name in VARIABLES:
        want = expected.get(name[len("eas_"):], "")
        assert entry[name] == want, (name, entry)


# Good requests: the target as a device sends it, the headers, and what
# the variables must say.  Vectors from docs/protocol.md 2.7.

GOOD = [
    ("plain spec order",
     "Cmd=Sync&User=jdoe&DeviceId=ApplC39ZH2VJJCM3&DeviceType=iPhone",
     [("MS-ASProtocolVersion", "14.1"), ("X-MS-PolicyKey", "3769048351")],
     dict(cmd="Sync", user="jdoe", device_id="ApplC39ZH2VJJCM3",
          device_type="iPhone", protocol_version="14.1",
          policy_key="3769048351", query_form="plain")),

    ("plain, iOS order with Cmd last, lower-case names",
     "user=CONTOSO%5Cjdoe&deviceid=ApplC39ZH2VJJCM3&devicetype=iPad"
     "&cmd=ping",
     [("MS-ASProtocolVersion", "16.1")],
     dict(cmd="Ping", user="CONTOSO\\jdoe", device_id="ApplC39ZH2VJJCM3",
          device_type="iPad", protocol_version="16.1", query_form="plain")),

    ("plain SmartReply parameters, + kept, unknown parameter ignored",
     "Cmd=SmartReply&User=jane%2Btag%40example.com&DeviceId=androidc42"
     "&DeviceType=Android&CollectionId=5&ItemId=5%3A12&SaveInSent=T"
     "&Foo=bar",
     [("MS-ASProtocolVersion", "12.1")],
     dict(cmd="SmartReply", user="jane+tag@example.com",
          device_id="androidc42", device_type="Android",
          protocol_version="12.1", query_form="plain", collection_id="5",
          item_id="5:12", save_in_sent="T")),

    ("plain GetAttachment of Windows Mobile 6.1, legacy 12.0",
     "Cmd=GetAttachment&AttachmentName=5%2F12%3A1&User=jdoe"
     "&DeviceId=WM6DEVICE01&DeviceType=PocketPC",
     [("MS-ASProtocolVersion", "12.0"), ("User-Agent", "MSFT-PPC/5.2.1301")],
     dict(cmd="GetAttachment", attachment_name="5/12:1", user="jdoe",
          device_id="WM6DEVICE01", device_type="PocketPC",
          protocol_version="12.0", query_form="plain")),

    ("base64 vector A (MS-ASHTTP example)",
     "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l", [],
     dict(cmd="Sync", device_id="v140Device", device_type="SmartPhone",
          protocol_version="14.0", query_form="base64", locale="0x0409")),

    ("base64 vector B: Windows Phone GUID, AcceptMultiPart",
     "jBMHBBCoHzHhi8b5YrNnTZh4inyaBAAAAAACV1AHAQI=", [],
     dict(cmd="ItemOperations",
          device_id="A81F31E18BC6F962B3674D98788A7C9A", device_type="WP",
          policy_key="0", protocol_version="14.0", query_form="base64",
          locale="0x0407", accept_multipart="T", save_in_sent="F")),

    ("base64 vector C: Windows Mail, unknown tag 0xFF skipped",
     "jAEECBBv8Usp+29k8LM6azAOecgZBAAAAAALV2luZG93c01haWz/AwEMAQ==", [],
     dict(cmd="SendMail", device_id="6FF14B29FB6F64F0B33A6B300E79C819",
          device_type="WindowsMail", policy_key="0",
          protocol_version="14.0", query_form="base64", locale="0x0804")),

    ("base64 vector C percent-encoded",
     "jAEECBBv8Usp%2B29k8LM6azAOecgZBAAAAAALV2luZG93c01haWz%2FAwEMAQ%3D%3D",
     [],
     dict(cmd="SendMail", device_id="6FF14B29FB6F64F0B33A6B300E79C819",
          device_type="WindowsMail", policy_key="0",
          protocol_version="14.0", query_form="base64", locale="0x0804")),

    ("base64 vector E: SmartReply with parameters and policy key",
     "jQMJBBBBcHBsQzM5WkgyVkpKQ00zBB8dp+AGaVBob25lAQE1AwQ1OjEyBwEBCARqZG9l",
     [],
     dict(cmd="SmartReply", user="jdoe", device_id="ApplC39ZH2VJJCM3",
          device_type="iPhone", policy_key="3769048351",
          protocol_version="14.1", query_form="base64", locale="0x0409",
          collection_id="5", item_id="5:12", save_in_sent="T",
          accept_multipart="F")),

    ("base64 vector F: 12.1 Ping, no policy key",
     "eRIHBBCoHzHhi8b5YrNnTZh4inyaAAJXUA==", [],
     dict(cmd="Ping", device_id="A81F31E18BC6F962B3674D98788A7C9A",
          device_type="WP", protocol_version="12.1", query_form="base64",
          locale="0x0407")),
]


@pytest.mark.parametrize("name,query,headers,expected", GOOD,
                         ids=[case[0] for case in GOOD])
def test_good_request_reaches_backend_byte_for_byte(
        gateway, backend, name, query, headers, expected):
    body = wbxml.encode(("Ping:Ping", [("Ping:HeartbeatInterval", "480")]))
    body += bytes(range(256))  # and every byte value after it
    target = EAS + "?" + query
    headers = [("Authorization", "Basic " + base64.b64encode(
                   b"CONTOSO\\jdoe:p@ss:w0rd").decode()),
               ("Content-Type", "application/vnd.ms-sync.wbxml")] + headers

    response = send(gateway, "POST", target, headers, body)

    assert response.status == 200
    seen = backend.wait_for(1)[0]
    assert seen.method == "POST"
    assert seen.target == target
    assert seen.body == body
    for header, value in headers:
        assert seen.header(header) == value
    expect_fields(log_entries(gateway, 1)[0], **expected)


def test_eas_headers_any_case_and_never_twice(gateway, backend):
    """The three EAS headers are found by name in any case, in one pass;
    one sent twice, in any case, is refused (a backend may read the two
    as a list, another the last one)."""
    headers = [("ms-asprotocolversion", "14.1"),
               ("x-ms-policykey", "1234"),
               ("Ms-AsAcceptMultiPart", "T")]

    response = send(gateway, "POST", EAS + "?" + PLAIN_OK, headers)

    assert response.status == 200
    backend.wait_for(1)
    expect_fields(log_entries(gateway, 1)[0], cmd="Sync", user="jdoe",
                  device_id="DEV1", device_type="iPhone",
                  protocol_version="14.1", policy_key="1234",
                  query_form="plain", accept_multipart="T")

    for name, value in (("MS-ASProtocolVersion", "12.0"),
                        ("X-MS-POLICYKEY", "999"),
                        ("MS-ASAcceptMultiPart", "F")):
        backend.clear()
        response = send(gateway, "POST", EAS + "?" + PLAIN_OK,
                        headers + [(name, value)])
        assert response.status == 400, name
    assert backend.requests == []


# Malformed requests: each is refused with 400, the reason token in
# $eas_reason, one "notice" line with the reason's sentence, nothing sent on.

PLAIN_OK = "Cmd=Sync&User=jdoe&DeviceId=DEV1&DeviceType=iPhone"
V141 = [("MS-ASProtocolVersion", "14.1")]


def b64(data):
    return base64.b64encode(bytes(data)).decode()


HEADER = [0x8c, 0x00, 0x09, 0x04]          # 14.0, Sync, en-US
DEVICE = [0x04] + list(b"DEV1")
NO_KEY = [0x00]
TYPE = [0x02] + list(b"WP")

MALFORMED = [
    ("no query", "", V141, "query_missing", "no query string"),
    ("bad percent", "Cmd=Sync&User=a%zz&DeviceId=D&DeviceType=T", V141,
     "percent_encoding", 'invalid percent-encoding in query "User"'),
    ("percent NUL", "Cmd=Sync&DeviceId=D%00&DeviceType=T", V141,
     "percent_encoding", 'invalid percent-encoding in query "DeviceId"'),
    ("duplicate DeviceId", "Cmd=Sync&DeviceId=A&deviceid=B&DeviceType=T",
     V141, "param_duplicate", 'duplicate parameter "DeviceId"'),
    ("duplicate Cmd, same value", "Cmd=Sync&Cmd=Sync&DeviceId=A"
     "&DeviceType=T", V141, "param_duplicate", 'duplicate parameter "Cmd"'),
    ("known name without value", "Cmd=Sync&DeviceId&DeviceType=T", V141,
     "param_no_value", 'parameter without value "DeviceId"'),
    ("control character", "Cmd=Sync&DeviceId=A&DeviceType=T&ItemId=a%0Ab",
     V141, "param_invalid", 'invalid parameter value "ItemId"'),
    ("bad SaveInSent", PLAIN_OK + "&SaveInSent=yes", V141,
     "param_invalid", 'invalid parameter value "SaveInSent"'),
    ("no Cmd", "User=jdoe&DeviceId=DEV1&DeviceType=iPhone", V141,
     "cmd_missing", "no Cmd parameter"),
    ("unknown Cmd", "Cmd=Format&DeviceId=DEV1&DeviceType=iPhone", V141,
     "cmd_unknown", 'unknown command "Cmd"'),
    ("no DeviceId", "Cmd=Sync&DeviceType=iPhone", V141,
     "device_id_missing", "no DeviceId"),
    ("empty DeviceId", "Cmd=Sync&DeviceId=&DeviceType=iPhone", V141,
     "device_id_missing", "no DeviceId"),
    ("DeviceId with space", "Cmd=Sync&DeviceId=A%20B&DeviceType=iPhone",
     V141, "device_id_invalid", 'invalid DeviceId "DeviceId"'),
    ("DeviceId too long", "Cmd=Sync&DeviceType=iPhone&DeviceId=" + "A" * 129,
     V141, "device_id_invalid", 'invalid DeviceId "DeviceId"'),
    ("no DeviceType", "Cmd=Sync&DeviceId=DEV1", V141,
     "device_type_missing", "no DeviceType"),
    ("User too long", "Cmd=Sync&DeviceId=D&DeviceType=T&User=" + "u" * 257,
     V141, "user_invalid", 'invalid User parameter "User"'),
    ("no protocol version header", PLAIN_OK, [],
     "version_missing", "no MS-ASProtocolVersion header"),
    ("unknown protocol version", PLAIN_OK,
     [("MS-ASProtocolVersion", "17.0")],
     "version_invalid", "unsupported MS-ASProtocolVersion"),
    ("policy key too long", PLAIN_OK, V141 + [("X-MS-PolicyKey", "1" * 65)],
     "policy_key_invalid", "invalid X-MS-PolicyKey header"),
    ("base64 alphabet", "jAAJBAp2MTQw*GV2aWNl", [],
     "base64_invalid", "query is not valid base64"),
    ("base64 too short", b64([0x8c, 0x00, 0x09]), [],
     "base64_invalid", "query is not valid base64"),
    ("base64 version 2.5", b64([25, 0, 9, 4] + DEVICE + NO_KEY + TYPE), [],
     "base64_version", "unsupported protocol version in base64 query"),
    ("base64 command code 7", b64([0x8c, 7, 9, 4] + DEVICE + NO_KEY + TYPE),
     [], "base64_command", "unknown command code in base64 query"),
    ("base64 command code 24",
     b64([0x8c, 24, 9, 4] + DEVICE + NO_KEY + TYPE), [],
     "base64_command", "unknown command code in base64 query"),
    ("base64 empty DeviceId", b64(HEADER + [0] + NO_KEY + TYPE), [],
     "device_id_missing", "no DeviceId"),
    ("base64 DeviceId runs past the end", b64(HEADER + [0x20] + [0x41] * 6),
     [], "base64_truncated", 'base64 query field runs past the end '
     '"DeviceId"'),
    ("base64 policy key length 3",
     b64(HEADER + DEVICE + [3, 1, 2, 3] + TYPE), [],
     "base64_policy_key_length",
     "policy key length in base64 query is neither 0 nor 4"),
    ("base64 empty DeviceType", b64(HEADER + DEVICE + NO_KEY + [0]), [],
     "device_type_missing", "no DeviceType"),
    ("base64 DeviceType runs past the end",
     b64(HEADER + DEVICE + NO_KEY + [9] + list(b"WP")), [],
     "base64_truncated", 'base64 query field runs past the end '
     '"DeviceType"'),
    ("base64 parameter runs past the end",
     b64(HEADER + DEVICE + NO_KEY + TYPE + [1, 9, 0x35]), [],
     "base64_truncated", 'base64 query field runs past the end '
     '"CollectionId"'),
    ("base64 trailing byte", b64(HEADER + DEVICE + NO_KEY + TYPE + [8]), [],
     "base64_trailing", "trailing byte after base64 query parameters"),
    ("base64 duplicate User tag",
     b64(HEADER + DEVICE + NO_KEY + TYPE + [8, 1, 0x61, 8, 1, 0x62]), [],
     "param_duplicate", 'duplicate parameter "User"'),
]


@pytest.mark.parametrize("name,query,headers,reason,text", MALFORMED,
                         ids=[case[0] for case in MALFORMED])
def test_malformed_request_is_refused_at_the_edge(
        gateway, backend, name, query, headers, reason, text):
    mark = gateway.mark()
    target = EAS + ("?" + query if query else "")

    response = send(gateway, "POST", target, headers, b"\x03\x01\x6a\x00")

    assert response.status == 400
    entry = log_entries(gateway, 1)[0]
    assert entry["status"] == "400"
    expect_fields(entry, reason=reason)

    lines = [line for line in gateway.error_lines_since(mark)
             if "eas: " in line]
    assert len(lines) == 1, lines
    assert "[notice]" in lines[0]
    assert "eas: malformed request: " + text + ", client: 127.0.0.1" \
        in lines[0]
    assert backend.requests == []


def test_malformed_request_after_a_good_one_on_a_kept_alive_connection(
        gateway, backend):
    good = ("POST %s?%s HTTP/1.1\r\nHost: x\r\nMS-ASProtocolVersion: 14.1\r\n"
            "Content-Length: 0\r\n\r\n" % (EAS, PLAIN_OK)).encode()
    bad = ("POST %s?Cmd=Sync HTTP/1.1\r\nHost: x\r\n"
           "MS-ASProtocolVersion: 14.1\r\nContent-Length: 3\r\n\r\nabc"
           % EAS).encode()

    reply = raw_http("127.0.0.1", gateway.port, good + bad, timeout=5)

    statuses = re.findall(rb"^HTTP/1\.1 (\d{3})", reply, re.M)
    assert statuses == [b"200", b"400"]
    assert [r.target for r in backend.requests] == [EAS + "?" + PLAIN_OK]


def test_options_goes_to_the_backend_untouched(gateway, backend):
    headers = [("Authorization", "Basic amRvZTpzZWNyZXQ="),
               ("User-Agent", "Apple-iPhone13C4/2307.71")]
    # what an OPTIONS does not need: no DeviceType, an unknown Cmd and
    # parameter, no version header (each refused on a POST)
    query = "?Cmd=Capabilities&DeviceId=A&Foo=1"

    plain = send(gateway, "OPTIONS", EAS, headers)
    odd = send(gateway, "OPTIONS", EAS + query, headers)

    for response in (plain, odd):
        assert response.status == 200
        assert response.header("MS-ASProtocolVersions") == \
            "2.5,12.0,12.1,14.0,14.1,16.0,16.1"
        assert "Ping" in response.header("MS-ASProtocolCommands")
    seen = backend.wait_for(2)
    assert [r.method for r in seen] == ["OPTIONS", "OPTIONS"]
    assert [r.target for r in seen] == [EAS, EAS + query]
    for request in seen:
        for header, value in headers:
            assert request.header(header) == value
    # two workers write the log, in either order: the bare OPTIONS is the
    # one without a DeviceId
    first, second = sorted(log_entries(gateway, 2),
                           key=lambda entry: entry["eas_device_id"])
    expect_fields(first)
    expect_fields(second, device_id="A", query_form="plain")


@pytest.mark.parametrize("query, reason", [
    ("Cmd=Sync&DeviceId=A&DeviceId=B", "param_duplicate"),
    ("DeviceId=A&DeviceType=b;DeviceId=B", "query_semicolon"),
    ("DeviceId=A&x=%zz", "percent_encoding"),
    ("DeviceId=A&Device%49d=B", "param_duplicate"),
    ("DeviceId=A%2542", "double_encoding"),
    ("DeviceId=A&User=%C0%AF", "utf8_invalid"),
])
def test_options_with_an_ambiguous_query_is_refused(gateway, backend, query,
                                                    reason):
    mark = gateway.mark()

    response = send(gateway, "OPTIONS", EAS + "?" + query)

    assert response.status == 400
    assert backend.requests == []
    assert log_entries(gateway, 1)[0]["eas_reason"] == reason
    lines = [line for line in gateway.error_lines_since(mark)
             if "eas: " in line]
    assert len(lines) == 1 and "malformed request" in lines[0]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PROPFIND"])
def test_other_methods_are_refused_with_allow(gateway, backend, method):
    mark = gateway.mark()

    response = send(gateway, method, EAS + "?" + PLAIN_OK, V141)

    assert response.status == 405
    assert response.header("Allow") == "OPTIONS, POST"
    expect_fields(log_entries(gateway, 1)[0], reason="method_not_allowed")
    lines = [line for line in gateway.error_lines_since(mark)
             if "eas: " in line]
    assert len(lines) == 1 and "[notice]" in lines[0]
    assert 'eas: method "%s" not allowed, client: 127.0.0.1' % method \
        in lines[0]
    assert backend.requests == []


def test_eas_methods_allows_more(gateway, backend):
    target = "/get-allowed" + EAS + "?" + PLAIN_OK

    get = send(gateway, "GET", target, V141)
    put = send(gateway, "PUT", target, V141)

    assert get.status == 200
    assert put.status == 405
    assert put.header("Allow") == "OPTIONS, POST, GET"
    assert [r.method for r in backend.requests] == ["GET"]


def test_location_without_eas_is_untouched(gateway, backend):
    target = "/no-eas" + EAS + "?Cmd=Sync&DeviceId=A&DeviceId=B"

    post = send(gateway, "POST", target, [], b"x")
    get = send(gateway, "GET", target)

    assert post.status == 200 and get.status == 200
    forwarded = EAS + "?Cmd=Sync&DeviceId=A&DeviceId=B"
    assert [r.target for r in backend.wait_for(2)] == [forwarded, forwarded]
    for entry in log_entries(gateway, 2):
        expect_fields(entry)


def test_variables_are_ready_for_rewrite_directives(gateway, backend):
    query = "Cmd=Sync&DeviceId=DEV1&DeviceType=RewriteProbe"

    response = send(gateway, "POST", EAS + "?" + query, V141)

    assert response.status == 418
    assert backend.requests == []


def test_reason_survives_an_error_page_redirect(gateway, backend):
    target = "/error-page" + EAS + "?Cmd=Sync&DeviceType=iPhone"

    response = send(gateway, "POST", target, V141)

    assert response.status == 400
    assert response.body == b"refused by the gateway\n"
    expect_fields(log_entries(gateway, 1)[0], reason="device_id_missing")
    assert backend.requests == []


def test_tls_session_of_a_device_through_the_gateway(gateway, backend,
                                                      certs):
    client = EasClient("https://localhost:%d" % gateway.tls_port,
                       user="CONTOSO\\jdoe", password="secret",
                       device_id="ApplC39ZH2VJJCM3", device_type="iPhone",
                       protocol="16.1", cafile=certs.ca)

    assert client.options().status == 200
    assert client.provision().eas_status() == 1
    folders = client.foldersync()
    ping = client.ping(heartbeat=1)

    assert folders.status == 200 and folders.eas_status() == 1
    assert ping.status == 200 and ping.eas_status() == 1
    commands = [r.eas.command for r in backend.requests]
    assert commands == [None, "Provision", "FolderSync", "Ping"]
    # two workers write the log, in either order: the order is the
    # backend's record above
    cmds = [entry["eas_cmd"] for entry in log_entries(gateway, 4)]
    assert sorted(cmds) == ["", "FolderSync", "Ping", "Provision"]


def test_chunked_body_reaches_backend_unchanged(gateway, backend):
    body = os.urandom(70000)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                       for part in (body[:1000], body[1000:]))
    request = ("POST %s?%s HTTP/1.1\r\nHost: x\r\nMS-ASProtocolVersion: 14.1"
               "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               % (EAS, PLAIN_OK)).encode() + chunked + b"0\r\n\r\n"

    reply = raw_http("127.0.0.1", gateway.port, request, timeout=30)

    assert reply.startswith(b"HTTP/1.1 200")
    assert backend.wait_for(1)[0].body == body
