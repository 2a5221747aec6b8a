"""Issue 10, points 11 and 13: the request target.  nginx picks a location
on the normalized path ($uri), but proxy_pass without a URI part forwards
the target as the client sent it, where a backend finds another path
("..%2F", "%5C" and "\\" on IIS) or, after "#", another query.  An "eas
on" location must refuse such a target whatever the method; the shipped
Autodiscover location (taken from conf.example/nginx.conf as it is) must
forward only a normalized URI.  Asserted from the recording backend,
which keeps each target exactly as it came on the wire.  Raw sockets, and
h2 frames built with python3-h2 for HTTP/2: clients would normalize these
targets before sending."""

import pathlib
import re
import socket
import time

import h2.config
import h2.connection
import h2.events
import pytest

from eastest.client import raw_http
from eastest.nginx import free_port
from eastest.waiting import SEQ_FIELD, TAG_HEADER, logged, tag

EXAMPLE = (pathlib.Path(__file__).resolve().parents[2] / "conf.example"
           / "nginx.conf")

EAS = "/Microsoft-Server-ActiveSync"
QUERY = "Cmd=Sync&User=jdoe&DeviceId=GoodPhone1&DeviceType=iPhone"
LOST = "LostPhone1"

LOG_FORMAT = ("log_format path escape=json '{\"status\":\"$status\","
              "\"reason\":\"$eas_reason\",\"device\":\"$eas_device_id\","
              + SEQ_FIELD + "}';")


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
        listen 127.0.0.1:${h2_port} http2;
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
    port, h2_port = free_port(), free_port()
    nginx = nginx_factory(NGINX_CONFIG, listen=(port, h2_port), port=port,
                          h2_port=h2_port, backend_port=backend.port,
                          autodiscover=shipped_autodiscover())
    nginx.port = port
    nginx.h2_port = h2_port
    return nginx


def send(nginx, method, target, headers_read=True):
    """Send target as raw bytes; return (status, access log entry).  The
    entry is found by the tag the request carries, or, for a request
    nginx refuses before it reads the headers (headers_read=False), as
    the one entry without a tag."""
    seq = tag()
    request = (b"%s %s HTTP/1.1\r\nHost: mail.example.org\r\n"
               b"MS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n"
               b"%s: %s\r\nConnection: close\r\n\r\n"
               % (method.encode(), target.encode("latin-1"),
                  TAG_HEADER.encode(), seq.encode()))
    reply = raw_http("127.0.0.1", nginx.port, request)
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply[9:12]), logged(nginx, "path.log",
                                    [seq if headers_read else ""])[0]


def send_h2(nginx, method, path, timeout=30.0):
    """One request over h2c (prior knowledge) with :path exactly as given;
    return (status or None if the stream was reset, its log entries)."""
    seq = tag()
    config = h2.config.H2Configuration(client_side=True,
                                       validate_outbound_headers=False,
                                       normalize_outbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", method), (":scheme", "http"),
                               (":authority", "mail.example.org"),
                               (":path", path),
                               ("ms-asprotocolversion", "14.1"),
                               (TAG_HEADER.lower(), seq),
                               ("content-length", "0")], end_stream=True)
    status = None
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", nginx.h2_port),
                                  timeout=timeout) as sock:
        sock.sendall(conn.data_to_send())
        done = False
        while not done and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                done = done or isinstance(event, (h2.events.StreamEnded,
                                                  h2.events.StreamReset))
            sock.sendall(conn.data_to_send())
    entries = []
    if status is not None:
        entries = logged(nginx, "path.log", [seq])
    return status, entries


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
    status, entry = send(gateway, "POST", target, headers_read=False)
    assert status == 400
    assert entry["reason"] == ""
    assert backend.requests == []


def test_plain_target_still_forwarded_byte_for_byte(gateway, backend):
    target = EAS + "?" + QUERY + "&Foo=%2F..%5C"
    status, entry = send(gateway, "POST", target)
    assert status == 200, entry
    assert [r.target for r in backend.requests] == [target]


# Over HTTP/2 the target is the :path header, parsed by nginx apart from
# the HTTP/1 request line (a space there is still refused by nginx).
H2_VECTORS = [
    ("fragment-second-deviceid", EAS + "?" + QUERY + "#&DeviceId=" + LOST,
     "target_fragment"),
    ("backslash-to-owa", EAS + "\\..\\owa?" + QUERY, "path_backslash"),
    ("encoded-slash-dot-dot", EAS + "/a/..%2Fb?" + QUERY,
     "path_encoded_slash"),
    ("double-slash", "/" + EAS + "?" + QUERY, "path_not_canonical"),
]


@pytest.mark.parametrize("path, reason", [v[1:] for v in H2_VECTORS],
                         ids=[v[0] for v in H2_VECTORS])
def test_eas_location_refuses_target_over_h2(gateway, backend, path,
                                             reason):
    status, entries = send_h2(gateway, "POST", path)

    assert [r.target for r in backend.requests] == [], \
        "the backend got a tricked target"
    if status is None:
        return      # nginx reset the stream itself: nothing went through
    assert status == 400
    assert entries[-1]["reason"] == reason
