"""The EAS request headers sent twice.

docs/requests.md checks MS-ASProtocolVersion (one of nine versions) and
X-MS-PolicyKey (1-64 visible characters) at the edge, and refuses a
query parameter sent twice because "a backend that reads the first and a
rule that reads the last must never disagree".  The headers were read
from their first line only: a second line with any value was forwarded
unchecked, and a backend reads the two as one list ("14.1, 99.9" in
ASP.NET's Request.Headers and PHP behind Apache) or takes the last.
Now each of them sent twice is refused (400, header_duplicate).

Raw sockets: HTTP clients merge or refuse repeated headers.  The record
is the recording backend."""

import json

import pytest

from eastest import confs
from eastest.client import raw_http
from eastest.nginx import start_gateway

EAS = "/Microsoft-Server-ActiveSync"
QUERY = "Cmd=Sync&User=jdoe&DeviceId=GoodPhone1&DeviceType=iPhone"

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/dup.log dup;", confs.eas_location(),
    http=confs.json_log("dup", status="$status", reason="$eas_reason"),
    zones=None)

POLICY_KEY_TOO_LONG = "9" * 65

# (id, header lines after the request line)
VECTORS = [
    ("version-valid-then-invalid",
     ["MS-ASProtocolVersion: 14.1", "MS-ASProtocolVersion: 99.9"]),
    ("version-twice-valid",
     ["MS-ASProtocolVersion: 14.1", "MS-ASProtocolVersion: 2.5"]),
    ("policy-key-valid-then-invalid",
     ["MS-ASProtocolVersion: 14.1", "X-MS-PolicyKey: 1",
      "X-MS-PolicyKey: " + POLICY_KEY_TOO_LONG]),
    ("policy-key-empty-then-invalid",
     ["MS-ASProtocolVersion: 14.1", "X-MS-PolicyKey:",
      "X-MS-PolicyKey: " + POLICY_KEY_TOO_LONG]),
    ("policy-key-other-spelling",
     ["MS-ASProtocolVersion: 14.1", "X-MS-PolicyKey: 1",
      "x-ms-policykey: 2"]),
]


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=backend.port)


@pytest.mark.parametrize("headers", [v[1] for v in VECTORS],
                         ids=[v[0] for v in VECTORS])
def test_eas_header_sent_twice_is_refused(gateway, backend, headers):
    request = ("POST %s?%s HTTP/1.1\r\nHost: mail.example.org\r\n%s\r\n"
               "Content-Length: 0\r\nConnection: close\r\n\r\n"
               % (EAS, QUERY, "\r\n".join(headers))).encode()
    reply = raw_http("127.0.0.1", gateway.port, request)
    entry = json.loads(gateway.wait_for_access_log(1, name="dup.log")[-1])

    assert [r.target for r in backend.requests] == [], \
        "the backend got a request with an EAS header twice"
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert entry["reason"] == "header_duplicate"
