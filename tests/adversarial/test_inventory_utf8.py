"""Issue 10, point 16: the inventory's JSON must be valid UTF-8 whatever
bytes a device sends (a raw 0xFF, an overlong form, a surrogate, a lone
continuation byte), and truncating a long value must not cut a UTF-8
sequence in two.  The inventory is read with a strict decoder."""

import json

import pytest

from eastest import confs
from eastest.client import EasClient
from eastest.nginx import start_gateway

EAS = "/Microsoft-Server-ActiveSync"

NGINX_CONFIG = confs.gateway(
    confs.eas_location("eas_devices devices;", proxy_pass=confs.DIRECT),
    confs.location("= /inventory", "eas_devices devices;",
                   "eas_device_inventory;"),
    zones="eas_device_zone zone=devices:1m;", upstream=None)

# User-Agent as sent -> as the inventory must show it
AGENTS = [
    (b"raw-\xff", "raw-\u00ff"),
    (b"overlong-\xc0\xaf", "overlong-\u00c0\u00af"),
    (b"surrogate-\xed\xa0\x80", "surrogate-\u00ed\u00a0\u0080"),
    (b"lone-\x80-end", "lone-\u0080-end"),
    (b"short-\xe2\x82", "short-\u00e2\u0082"),
    (b"too-high-\xf4\x90\x80\x80", "too-high-\u00f4\u0090\u0080\u0080"),
    ("valid-\u00e9-\u20ac-\U0001f600".encode(), "valid-\u00e9-\u20ac-\U0001f600"),
    # 130 bytes: the 128-byte slot would end inside the euro sign
    (b"A" * 127 + "\u20ac".encode(), "A" * 127),
    (b"B" * 126 + "\U0001f600".encode(), "B" * 126),
    (b"C" * 128 + "\u00e9".encode(), "C" * 128),
]


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=backend.port)


def test_inventory_is_valid_utf8_whatever_devices_send(gateway):
    for i, (agent, _) in enumerate(AGENTS):
        client = EasClient("http://127.0.0.1:%d%s" % (gateway.port, EAS),
                           user="jdoe", device_id="ApplUTF%02d" % i,
                           user_agent=agent)
        assert client.foldersync().status == 200

    reply = EasClient("http://127.0.0.1:%d/" % gateway.port).raw(
        "GET", "/inventory", [("Host", "localhost")])
    assert reply.status == 200
    text = reply.body.decode("utf-8")          # strict: raises if invalid
    devices = {d["device_id"]: d for d in json.loads(text)["devices"]}

    for i, (_, shown) in enumerate(AGENTS):
        assert devices["ApplUTF%02d" % i]["user_agent"] == shown
