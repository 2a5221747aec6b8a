"""An OPTIONS whose query hides a blocked DeviceId.

Device rules apply to an OPTIONS whose query names a DeviceId: `OPTIONS
...?DeviceId=LostPhone1` is blocked.  An edge that forgot every field of
a query it could not read would forward a second DeviceId, a raw ";" or
a bad escape to the backend, where PHP (Z-Push) reads the last DeviceId
and older readers split on ";"; such an OPTIONS is refused (400) as a
POST is (docs/requests.md, "Methods").  The record is the recording
backend."""

import pytest

from eastest import confs
from eastest.client import raw_http
from eastest.nginx import start_gateway

EAS = "/Microsoft-Server-ActiveSync"
LOST = "LostPhone1"

NGINX_CONFIG = confs.gateway(
    confs.eas_location("eas_device_block device_id=%s;" % LOST),
    http=confs.PLAIN_REFUSALS, zones=None)

VECTORS = [
    ("blocked-alone", "DeviceId=%s&DeviceType=iPhone" % LOST),
    ("blocked-first-of-two",
     "DeviceId=%s&DeviceType=iPhone&DeviceId=GoodPhone1" % LOST),
    ("blocked-last-of-two",
     "DeviceId=GoodPhone1&DeviceType=iPhone&DeviceId=%s" % LOST),
    ("blocked-after-semicolon",
     "DeviceId=GoodPhone1&DeviceType=iPhone;DeviceId=%s" % LOST),
    ("blocked-with-bad-escape",
     "DeviceId=%s&DeviceType=iPhone&x=%%zz" % LOST),
]


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=backend.port)


@pytest.mark.parametrize("query", [pytest.param(v[1], id=v[0])
                                   for v in VECTORS])
def test_options_of_a_blocked_device_does_not_reach_the_backend(
        gateway, backend, query):
    request = ("OPTIONS %s?%s HTTP/1.1\r\nHost: mail.example.org\r\n"
               "Content-Length: 0\r\nConnection: close\r\n\r\n"
               % (EAS, query)).encode()
    reply = raw_http("127.0.0.1", gateway.port, request)

    assert [r.target for r in backend.requests] == [], \
        "the blocked device's OPTIONS reached the backend"
    assert reply[9:12] in (b"400", b"403")
