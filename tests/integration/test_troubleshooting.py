"""docs/troubleshooting.md, row by row where the gateway is involved: each
test produces the situation a row describes and asserts the log line and
the $eas_* values the row quotes, as the gateway writes them (issue 13.3).
A row whose text changes must change here too, and the other way round:
the quoted lines are checked to be in the page."""

import base64
import hashlib
import json
import pathlib
import re

import pytest

from eastest import confs
from eastest.client import EasClient
from eastest.nginx import start_gateway

DOC = (pathlib.Path(__file__).resolve().parents[2] / "docs"
       / "troubleshooting.md").read_text()
PASSWORD = "correct horse"

LOG_FORMAT = (
    "log_format trouble escape=json '{\"status\":$status,"
    "\"client\":\"$remote_addr\",\"cmd\":\"$eas_cmd\","
    "\"device\":\"$eas_device_id\",\"auth\":\"$eas_auth\","
    "\"access\":\"$eas_access\",\"reason\":\"$eas_reason\","
    "\"hb\":\"$eas_heartbeat\",\"upstream_status\":\"$upstream_status\"}';")

CONFIG = confs.gateway(
    "access_log ${dir}/trouble.log trouble;",
    """
    # a load balancer in front (here: the test itself)
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    """,
    confs.eas_location("""
        eas_preauth "ActiveSync";
        eas_preauth_cache zone=auth valid=5m invalid=5m;
        eas_preauth_lockout user=3 address=4 window=15m time=15m;
        eas_preauth_user_file ${dir}/users.htpasswd;
        eas_devices devices;
        eas_device_max 2;
        eas_device_block device_id=ApplLOST0001;
        eas_longpoll on;
        eas_heartbeat_min 60s;
        eas_heartbeat_max 3540s;
        """, proxy_pass=confs.DIRECT),
    confs.location("= /eas/devices", "eas_devices devices;",
                   "eas_device_inventory;"),
    http=LOG_FORMAT, upstream=None)


class Phone(EasClient):
    """A device behind the balancer, with an Authorization of its own
    choosing when given (NTLM, ...)."""

    def __init__(self, *args, forwarded_for="203.0.113.9",
                 authorization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.forwarded_for = forwarded_for
        self.authorization = authorization

    def _common_headers(self):
        headers = super()._common_headers()
        if self.authorization:
            headers = [h for h in headers if h[0] != "Authorization"]
            headers.append(("Authorization", self.authorization))
        headers.append(("X-Forwarded-For", self.forwarded_for))
        return headers


@pytest.fixture
def gateway(nginx_factory, backend, tmp_path):
    sha = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest())
    users = "".join("%s:{SHA}%s\n" % (user, sha.decode())
                    for user in ("jdoe", "amy", "bob", "eve", "max"))
    return start_gateway(nginx_factory, CONFIG,
                         files={"users.htpasswd": users},
                         backend_port=backend.port)


def phone(gateway, user="jdoe", password=PASSWORD, **kwargs):
    kwargs.setdefault("device_id", "ApplC39ZH2VJJCM3")
    return Phone("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                 % gateway.port, user=user, password=password, **kwargs)


def last_entry(gateway, count):
    lines = gateway.wait_for_access_log(count, name="trouble.log")
    return json.loads(lines[-1])


def quoted(line):
    """The doc quotes the line (a row must not drift from the code)."""
    assert line in DOC, "docs/troubleshooting.md does not quote %r" % line
    return line


def test_wrong_password(gateway, backend):
    reply = phone(gateway, password="wrong").foldersync()

    assert reply.status == 401
    assert quoted('eas: preauth refused: invalid password for user "jdoe"') \
        in gateway.error_log()
    entry = last_entry(gateway, 1)
    assert (entry["auth"], entry["reason"]) == ("invalid", "auth_invalid")
    assert not backend.requests


def test_lockout_starts_and_holds(gateway, backend):
    for n in range(3):
        assert phone(gateway, password="wrong%d" % n).foldersync().status \
            == 401
    assert quoted('user "jdoe" locked out for 900 s after 3 failures') \
        in gateway.error_log()

    # the right password now: refused while the lock lasts
    assert phone(gateway).foldersync().status == 401
    assert re.search(r'eas: preauth refused: user "jdoe" is locked out for '
                     r'\d+ s more', gateway.error_log())
    assert quoted('eas: preauth refused: user "jdoe" is locked out for')
    entry = last_entry(gateway, 4)
    assert (entry["auth"], entry["reason"]) == ("locked", "auth_user_locked")
    assert not backend.requests


def test_address_lockout_names_the_phone_behind_the_balancer(gateway,
                                                             backend):
    for user in ("amy", "bob", "eve", "max"):
        phone(gateway, user=user, password="wrong",
              forwarded_for="198.51.100.4").foldersync()

    assert quoted('address "198.51.100.4" locked out for 900 s') \
        in gateway.error_log()
    assert last_entry(gateway, 4)["client"] == "198.51.100.4"
    # a phone behind another address is not locked with it
    assert phone(gateway).foldersync().status == 200


def test_ntlm_is_refused_at_the_edge(gateway, backend):
    reply = phone(gateway, authorization="NTLM TlRMTVNTUAABAAAAB4IIog=="
                  ).foldersync()

    assert reply.status == 401
    assert quoted("eas: preauth refused: Authorization scheme is not Basic") \
        in gateway.error_log()
    entry = last_entry(gateway, 1)
    assert (entry["auth"], entry["reason"]) == ("malformed", "auth_scheme")
    assert not backend.requests


def test_blocked_device(gateway, backend):
    new = phone(gateway, device_id="ApplLOST0001", protocol="14.1")
    old = phone(gateway, device_id="ApplLOST0001", protocol="12.1")

    reply = new.foldersync()
    assert (reply.status, reply.eas_status()) == (200, 129)
    assert old.foldersync().status == 403
    assert quoted('eas: device "ApplLOST0001" of user "jdoe" blocked by '
                  'eas_device_block:') in gateway.error_log()
    entry = last_entry(gateway, 2)
    assert entry["access"] == "blocked"
    assert entry["reason"].startswith("eas_device_block:")
    assert not backend.requests


def test_too_many_devices_and_duplicates_after_a_reinstall(gateway, backend):
    # the phone before and after a reinstall: a new DeviceId
    assert phone(gateway, device_id="ApplOLD00001").foldersync().status \
        == 200
    assert phone(gateway, device_id="ApplNEW00001").foldersync().status \
        == 200
    listing = json.loads(phone(gateway).raw("GET", "/eas/devices").body)
    mine = [d for d in listing["devices"] if d["user"] == "jdoe"]
    assert {d["device_id"] for d in mine} == {"ApplOLD00001",
                                              "ApplNEW00001"}
    assert all(d["user_devices"] == 2 for d in mine)

    # a third device is over eas_device_max 2
    reply = phone(gateway, device_id="ApplTHIRD001").foldersync()
    assert (reply.status, reply.eas_status()) == (200, 129)
    assert quoted('eas: device "ApplTHIRD001" of user "jdoe" blocked by '
                  'eas_device_max') in gateway.error_log()
    # four lines: two FolderSyncs, the GET of the inventory, the third
    assert last_entry(gateway, 4)["reason"] == "eas_device_max"


def test_heartbeat_out_of_range(gateway, backend):
    reply = phone(gateway).ping(heartbeat=4000)

    assert (reply.status, reply.eas_status()) == (200, 5)
    assert quoted("eas: Ping HeartbeatInterval 4000 out of range 60..3540, "
                  "answered Status 5 with 3540") in gateway.error_log()
    entry = last_entry(gateway, 1)
    assert (entry["reason"], entry["hb"]) == ("heartbeat_out_of_range",
                                              "4000")


def test_a_move_goes_through_untouched(gateway, backend):
    body = bytes.fromhex("03016a00000e45480351") + b"\x01\x01"
    reply = phone(gateway).command("MoveItems", body)

    assert reply.status == 200
    assert backend.requests[-1].body == body
    entry = last_entry(gateway, 1)
    assert (entry["cmd"], entry["upstream_status"]) == ("MoveItems", "200")
    assert quoted("cmd=MoveItems")
