"""Issue 10, points 11 and 13: the request target.  nginx picks a location
on the normalized path ($uri), but proxy_pass without a URI part forwards
the target as the client sent it, where a backend finds another path
("..%2F", "%5C" and "\\" on IIS) or, after "#", another query.  An "eas
on" location must refuse such a target whatever the method; the shipped
Autodiscover location (taken from conf.example/nginx.conf as it is) must
forward only a normalized URI.  Asserted from the recording backend,
which keeps each target exactly as it came on the wire.  Raw sockets:
clients would normalize these targets before sending."""

import json
import pathlib
import re

import pytest

from eastest.client import raw_http
from eastest.nginx import free_port

EXAMPLE = (pathlib.Path(__file__).resolve().parents[2] / "conf.example"
           / "nginx.conf")

EAS = "/Microsoft-Server-ActiveSync"
QUERY = "Cmd=Sync&User=jdoe&DeviceId=GoodPhone1&DeviceType=iPhone"
LOST = "LostPhone1"

LOG_FORMAT = ("log_format path escape=json '{\"status\":\"$status\","
              "\"reason\":\"$eas_reason\",\"device\":\"$eas_device_id\"}';")


def shipped_autodiscover():
    """The Autodiscover location of conf.example/nginx.conf, with only its
    TLS and include lines dropped and the backend swapped for ours."""
    text = EXAMPLE.read_text()
    found = re.search(r"(?ms)^( *)location ~\* \^/autodiscover/.*?^\1\}",
                      text)
    assert found, "conf.example/nginx.conf has no Autodiscover location"
    block = re.sub(r"(?m)^ *(include|proxy_ssl_\w+) .*\n", "",
                   found.group(0))
    assert "proxy_pass https://eas_backend;" in block
    return block.replace("https://eas_backend", "http://backend")


NGINX_CONFIG = """
http {
    ${temp_paths}
    """ + LOG_FORMAT + """

    upstream backend {
        server 127.0.0.1:${backend_port};
    }

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/path.log path;

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_device_block device_id=""" + LOST + """;
            proxy_pass http://backend;
        }

${autodiscover}

        location / {
            return 404;
        }
    }
}
"""


@pytest.fixture
def gateway(nginx_factory, backend):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, listen=(port,), port=port,
                          backend_port=backend.port,
                          autodiscover=shipped_autodiscover())
    nginx.port = port
    return nginx


def send(nginx, method, target):
    """Send target as raw bytes; return (status, access log entry)."""
    before = len(nginx.access_log("path.log"))
    request = (b"%s %s HTTP/1.1\r\nHost: mail.example.org\r\n"
               b"MS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n"
               b"Connection: close\r\n\r\n"
               % (method.encode(), target.encode("latin-1")))
    reply = raw_http("127.0.0.1", nginx.port, request)
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    lines = nginx.wait_for_access_log(before + 1, name="path.log")
    return int(reply[9:12]), json.loads(lines[-1])


# (id, method, target, $eas_reason): targets that reached the backend
# through the eas location, with a path or query other than the one the
# edge read.
EAS_VECTORS = [
    ("backslash-to-owa", "POST", EAS + "\\..\\..\\owa?" + QUERY,
     "path_backslash"),
    ("encoded-backslash-to-ecp", "POST", EAS + "/%5C..%5Cecp?" + QUERY,
     "path_encoded_slash"),
    ("encoded-backslash-lower-case", "POST", EAS + "/%5c..%5cecp?" + QUERY,
     "path_encoded_slash"),
    ("encoded-slash-dot-dot", "POST", EAS + "/a/..%2Fb?" + QUERY,
     "path_encoded_slash"),
    ("dot-dot-segment", "POST", EAS + "/x/../?" + QUERY,
     "path_dot_segment"),
    ("encoded-dot-dot-segment", "POST", EAS + "/x/%2E%2E/?" + QUERY,
     "path_dot_segment"),
    ("dot-segment", "POST", EAS + "/./?" + QUERY, "path_dot_segment"),
    ("double-slash", "POST", "/" + EAS + "?" + QUERY, "path_not_canonical"),
    ("escaped-path-character", "POST", EAS.replace("-", "%2D", 1) + "?"
     + QUERY, "path_not_canonical"),
    ("fragment-second-deviceid", "POST", EAS + "?" + QUERY
     + "#&DeviceId=" + LOST, "target_fragment"),
    ("fragment-in-path", "POST", EAS + "#/../x?" + QUERY,
     "target_fragment"),
    ("semicolon-in-path", "POST", EAS + ";x=1?" + QUERY, "target_character"),
    ("options-backslash", "OPTIONS", EAS + "\\..\\owa", "path_backslash"),
    ("options-fragment", "OPTIONS", EAS + "?#&DeviceId=" + LOST,
     "target_fragment"),
]


@pytest.mark.parametrize("method, target, reason",
                         [v[1:] for v in EAS_VECTORS],
                         ids=[v[0] for v in EAS_VECTORS])
def test_eas_location_refuses_target(gateway, backend, method, target,
                                     reason):
    status, entry = send(gateway, method, target)

    assert [r.target for r in backend.requests] == [], \
        "the backend got a tricked target"
    assert status == 400
    assert entry["reason"] == reason


# Targets nginx normalizes into the Autodiscover location: the backend
# must get the normalized Autodiscover URI, never the ActiveSync path and
# query (which would skip pre-authentication and device rules).
AUTODISCOVER_VECTORS = [
    ("encoded-slash", EAS + "/..%2Fautodiscover/autodiscover.xml?" + QUERY
     .replace("GoodPhone1", LOST)),
    ("encoded-dots", EAS + "/%2e%2e/Autodiscover/Autodiscover.xml?" + QUERY
     .replace("GoodPhone1", LOST)),
    ("plain-dots", EAS + "/../autodiscover/autodiscover.xml?" + QUERY
     .replace("GoodPhone1", LOST)),
]


@pytest.mark.parametrize("target", [v[1] for v in AUTODISCOVER_VECTORS],
                         ids=[v[0] for v in AUTODISCOVER_VECTORS])
def test_autodiscover_forwards_normalized_uri(gateway, backend, target):
    send(gateway, "POST", target)

    targets = [r.target for r in backend.requests]
    assert targets == ["/Autodiscover/Autodiscover.xml"], targets


def test_autodiscover_still_published(gateway, backend):
    """A real Autodiscover request gets through, in any case."""
    for target in ("/autodiscover/autodiscover.xml",
                   "/Autodiscover/Autodiscover.xml"):
        send(gateway, "POST", target)
    targets = [r.target for r in backend.requests]
    assert targets == ["/Autodiscover/Autodiscover.xml"] * 2


@pytest.mark.parametrize("target", [EAS + "%00/x?" + QUERY,
                                    EAS + "?" + QUERY + "&x=a b"],
                         ids=["nul-in-path", "space-in-query"])
def test_refused_by_nginx_itself(gateway, backend, target):
    """nginx's own parser refuses these before any module runs (the edge
    would refuse them too: target_character, docs/requests.md)."""
    status, entry = send(gateway, "POST", target)
    assert status == 400
    assert entry["reason"] == ""
    assert backend.requests == []


def test_plain_target_still_forwarded_byte_for_byte(gateway, backend):
    target = EAS + "?" + QUERY + "&Foo=%2F..%5C"
    status, entry = send(gateway, "POST", target)
    assert status == 200, entry
    assert [r.target for r in backend.requests] == [target]
