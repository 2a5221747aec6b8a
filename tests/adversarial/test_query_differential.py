"""Issue 10, point 1: the query differential.  The edge decides on its
reading of the query (device rules, the query user, the command); the
backend acts on its own.  A PHP backend (php -S, $_GET as Z-Push reads
it) and the recording backend stand behind two servers with the same
"eas on" location and a block rule for the lost phone LostPhone1.  Every
vector must be refused at the edge with its precise $eas_reason and reach
neither backend; every request the edge accepts must be read by PHP with
the same Cmd, User, DeviceId and DeviceType.  Sent as raw bytes: an HTTP
client library would normalise some of them."""

import json

import pytest

from eastest import confs
from eastest.client import raw_http
from eastest.nginx import free_port
from eastest.php import PhpBackend

EAS = "/Microsoft-Server-ActiveSync"
GOOD = "GoodPhone1"
LOST = "LostPhone1"

LOG_FORMAT = ("log_format diff escape=json '{\"status\":\"$status\","
              "\"reason\":\"$eas_reason\",\"Cmd\":\"$eas_cmd\","
              "\"User\":\"$eas_user\",\"DeviceId\":\"$eas_device_id\","
              "\"DeviceType\":\"$eas_device_type\"}';")

def front(name, upstream):
    """A server on ${name_listen} in front of upstream, logging to
    name.log."""
    return confs.server(
        "access_log ${dir}/%s.log diff;" % name,
        confs.eas_location("eas_device_block device_id=%s;" % LOST,
                           "eas_device_block_status 403;",
                           proxy_pass="http://" + upstream),
        listen="127.0.0.1:${%s_listen}" % name)


NGINX_CONFIG = confs.block(
    "http", "${temp_paths}", LOG_FORMAT,
    confs.block("upstream php", "server 127.0.0.1:${php_port};"),
    confs.block("upstream recorder", "server 127.0.0.1:${backend_port};"),
    front("php", "php"), front("rec", "recorder"), gap="\n\n") + "\n"

BASE = "Cmd=Sync&User=jdoe&DeviceId=%s&DeviceType=iPhone" % GOOD

# (id, query, $eas_reason): each was let through by the edge before, and
# each is read otherwise by PHP, ASP.NET or Python (docs/requests.md,
# "One reading for the edge and the backend").
VECTORS = [
    ("escaped-deviceid", BASE + "&Device%49d=" + LOST, "param_duplicate"),
    ("fully-escaped-deviceid",
     BASE + "&%44%65%76%69%63%65%49%64=" + LOST, "param_duplicate"),
    ("escaped-cmd", BASE + "&%43md=Ping", "param_duplicate"),
    ("escaped-user", BASE + "&Us%65r=victim", "param_duplicate"),
    ("php-array", BASE + "&DeviceId[]=" + LOST, "param_name_invalid"),
    ("php-array-escaped", BASE + "&DeviceId%5B%5D=" + LOST,
     "param_name_invalid"),
    ("php-leading-plus", BASE + "&+DeviceId=" + LOST, "param_name_invalid"),
    ("php-leading-space", BASE + "&%20DeviceId=" + LOST,
     "param_name_invalid"),
    ("php-nul-in-name", BASE + "&DeviceId%00x=" + LOST, "percent_encoding"),
    ("semicolon", "Cmd=Sync&User=jdoe&DeviceId=%s;DeviceId=%s"
     "&DeviceType=iPhone" % (GOOD, LOST), "query_semicolon"),
    ("aspnet-u-escape-in-name", BASE + "&%u0044eviceId=" + LOST,
     "percent_encoding"),
    ("invalid-escape-in-unknown", BASE + "&Foo=%zz", "percent_encoding"),
    ("double-encoding", BASE.replace(GOOD, "%254Cost"), "double_encoding"),
    ("overlong-utf8-user", BASE.replace("User=jdoe", "User=j%C0%AEdoe"),
     "utf8_invalid"),
    ("name-without-value", BASE + "&DeviceIdx", "param_no_value"),
    ("base64-blob-beside-plain",
     "jAAJBApMb3N0UGhvbmUxAAZpUGhvbmU&" + BASE, "param_no_value"),
    ("too-many-parameters", BASE + "&x=1" * 70, "param_too_many"),
]

# Requests the edge accepts: PHP must read every field the same way.
AGREE = [
    ("plain", BASE),
    ("plus-is-space", BASE.replace("User=jdoe", "User=j+doe")),
    ("escaped-semicolon-in-value",
     BASE.replace("User=jdoe", "User=j%3Bdoe")),
    ("dot-name-is-another-name", BASE + "&Device.Id=" + LOST),
    ("utf8-user", BASE.replace("User=jdoe", "User=j%C3%B6rg")),
    ("literal-percent", BASE.replace("User=jdoe", "User=100%25")),
]


@pytest.fixture
def gateway(nginx_factory, backend, tmp_path):
    # ";" is a separator for this PHP, as for older Python
    with PhpBackend(tmp_path / "php", separators="&;") as php:
        php_listen, rec_listen = free_port(), free_port()
        nginx = nginx_factory(NGINX_CONFIG, listen=(php_listen, rec_listen),
                              php_listen=php_listen, rec_listen=rec_listen,
                              php_port=php.port, backend_port=backend.port)
        nginx.php = php
        nginx.php_listen = php_listen
        nginx.rec_listen = rec_listen
        yield nginx


def post(port, target):
    """POST target as raw bytes; return the status code."""
    request = ("POST %s HTTP/1.1\r\nHost: mail.example.org\r\n"
               "MS-ASProtocolVersion: 14.1\r\nContent-Length: 0\r\n"
               "Connection: close\r\n\r\n" % target).encode("latin-1")
    reply = raw_http("127.0.0.1", port, request)
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply[9:12])


def edge_entry(nginx, name):
    return json.loads(nginx.wait_for_access_log(1, name=name)[-1])


@pytest.mark.parametrize("query, reason",
                         [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_vector_refused_at_the_edge(gateway, backend, query, reason):
    status = post(gateway.php_listen, EAS + "?" + query)
    edge = edge_entry(gateway, "php.log")
    php = gateway.php.records()

    if status != 400:
        # say how the two readings differed before failing
        seen = php[0]["fields"] if php else None
        pytest.fail("edge answered %d reading %s; PHP read %s"
                    % (status, {k: edge[k] for k in ("Cmd", "User",
                                                     "DeviceId")}, seen))
    assert edge["reason"] == reason
    assert php == [], "PHP got a refused request"

    assert post(gateway.rec_listen, EAS + "?" + query) == 400
    assert edge_entry(gateway, "rec.log")["reason"] == reason
    assert backend.requests == [], "the recording backend got it"


@pytest.mark.parametrize("query", [a[1] for a in AGREE],
                         ids=[a[0] for a in AGREE])
def test_accepted_request_read_alike(gateway, query):
    assert post(gateway.php_listen, EAS + "?" + query) == 200
    edge = edge_entry(gateway, "php.log")
    (php,) = gateway.php.wait_for(1)

    for name in ("Cmd", "User", "DeviceId", "DeviceType"):
        assert edge[name] == (php["fields"][name] or ""), (name, edge, php)


def test_lost_phone_blocked_in_plain_sight(gateway, backend):
    """The control: the block rule holds for a plain request."""
    query = "Cmd=Sync&User=jdoe&DeviceId=%s&DeviceType=iPhone" % LOST
    assert post(gateway.php_listen, EAS + "?" + query) == 403
    assert post(gateway.rec_listen, EAS + "?" + query) == 403
    assert gateway.php.records() == []
    assert backend.requests == []
