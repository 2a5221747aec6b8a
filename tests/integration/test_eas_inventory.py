"""The device inventory: every device seen through an "eas_devices"
location gets one record per identity + DeviceId in a shared zone,
visible to every worker, kept across reloads, bounded by the zone size
with the least recently seen records evicted, and listed by
"eas_device_inventory"."""

import json
import time
import urllib.request

import pytest

from eastest.client import EasClient
from eastest import confs
from eastest.nginx import start_gateway

NGINX_CONFIG = confs.gateway(
    "eas_devices devices;",
    confs.eas_location("add_header X-Worker $pid;"),
    confs.eas_under("/tiny", "eas_devices tiny;"),
    confs.eas_under("/untracked", "eas_devices off;"),
    confs.location("= /inventory", "eas_device_inventory;"),
    confs.location("= /tiny-inventory", "eas_devices tiny;",
                   "eas_device_inventory;"),
    zones="""
    eas_device_zone zone=devices:1m;
    eas_device_zone zone=tiny:32k;
    """)

# Ping and Sync answered at once: holding them is not tested here
pytestmark = pytest.mark.backend(hold_cap=0)


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         backend_port=backend.port)


def device(nginx, path="/Microsoft-Server-ActiveSync", **kwargs):
    return EasClient("http://127.0.0.1:%d%s" % (nginx.port, path), **kwargs)


def inventory(nginx, path="/inventory"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s"
                                % (nginx.port, path), timeout=10) as reply:
        assert reply.headers["Content-Type"] == "application/json"
        return json.loads(reply.read())


def by_device(listing):
    return {(entry["user"], entry["device_id"]): entry
            for entry in listing["devices"]}


# a scripted mix: (user, device id, device type, user agent, protocol,
# form, command)
MIX = [
    ("jdoe", "ApplC39ZH2VJJCM3", "iPhone", "Apple-iPhone13C4/2307.71",
     "14.1", "plain", "FolderSync"),
    ("jdoe", "androidc42", "Android", "Android-Mail/2023.01.01",
     "16.1", "plain", "Sync"),
    ("CONTOSO\\jane", "ApplF17VJ9X1", "iPad", "Apple-iPad8C1/1905.258",
     "12.1", "plain", "Provision"),
    ("jane@contoso.com", bytes.fromhex("A81F31E18BC6F962B3674D98788A7C9A"),
     "WP", "MSFT-WP/8.10.14219", "14.0", "base64", "Ping"),
    # the first device again, later, with another command and agent
    ("jdoe", "ApplC39ZH2VJJCM3", "iPhone", "Apple-iPhone13C4/2307.72",
     "14.1", "plain", "Sync"),
]


def run_mix(nginx):
    for user, device_id, device_type, agent, protocol, form, cmd in MIX:
        client = device(nginx, user=user, device_id=device_id,
                        device_type=device_type, user_agent=agent,
                        protocol=protocol, form=form)
        if cmd == "Ping":
            reply = client.ping(heartbeat=60, folders=())
        elif cmd == "Sync":
            reply = client.sync(collections=(("0", "5"),))
        elif cmd == "Provision":
            reply = client.provision()
        else:
            reply = client.foldersync()
        assert reply.status == 200, (cmd, reply.status)


def test_inventory_after_a_scripted_mix_of_devices(gateway, backend):
    started = int(time.time())
    run_mix(gateway)
    listing = inventory(gateway)

    assert listing["zone"] == "devices"
    entries = by_device(listing)
    assert len(entries) == 4, listing

    first = entries[("jdoe", "ApplC39ZH2VJJCM3")]
    assert first["device_type"] == "iPhone"
    assert first["user_agent"] == "Apple-iPhone13C4/2307.72"
    assert first["protocol_version"] == "14.1"
    assert first["last_command"] == "Sync"
    assert first["access"] == "allowed"
    # counted only where eas_device_max applies (test_eas_device_access)
    assert first["user_devices"] == 0
    assert first["heartbeat"] == 0
    assert started <= first["first_seen"] <= first["last_seen"]
    assert first["last_seen"] <= int(time.time())
    # the same instants in ISO 8601, UTC (issue 13.6)
    for field in ("first_seen", "last_seen"):
        assert first[field + "_iso"] == time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(first[field])), first

    android = entries[("jdoe", "androidc42")]
    assert (android["device_type"], android["protocol_version"],
            android["last_command"]) == ("Android", "16.1", "Sync")

    # CONTOSO\jane and jane@contoso.com are one identity: jane
    jane = entries[("jane", "ApplF17VJ9X1")]
    assert (jane["protocol_version"], jane["last_command"],
            jane["user_devices"]) == ("12.1", "Provision", 0)

    windows = entries[("jane",
                       "A81F31E18BC6F962B3674D98788A7C9A")]
    assert (windows["device_type"], windows["protocol_version"],
            windows["last_command"], windows["user_agent"]) == (
                "WP", "14.0", "Ping", "MSFT-WP/8.10.14219")

    # most recently seen first: the device that came back leads
    assert (listing["devices"][0]["user"],
            listing["devices"][0]["device_id"]) == ("jdoe",
                                                    "ApplC39ZH2VJJCM3")
    assert len(backend.requests) == len(MIX)


def test_user_and_device_id_compare_case_insensitively(gateway):
    device(gateway, user="JDoe", device_id="ApplXYZ").foldersync()
    device(gateway, user="jdoe", device_id="APPLxyz").sync()

    entries = inventory(gateway)["devices"]

    assert len(entries) == 1, entries
    # the first spelling is kept
    # the identity is User= normalised: the name part in lower case
    assert (entries[0]["user"], entries[0]["device_id"]) == ("jdoe",
                                                            "ApplXYZ")
    assert entries[0]["last_command"] == "Sync"


def test_every_worker_writes_the_same_inventory(gateway):
    workers = set()
    deadline = time.monotonic() + 30
    n = 0
    while len(workers) < 2 and time.monotonic() < deadline and n < 200:
        reply = device(gateway, user="u%d" % n,
                       device_id="dev%d" % n).foldersync()
        workers.add(reply.header("X-Worker"))
        n += 1
    assert len(workers) == 2, "requests never reached a second worker"

    entries = by_device(inventory(gateway))
    assert set(entries) == {("u%d" % i, "dev%d" % i) for i in range(n)}


def test_options_and_untracked_locations_leave_no_record(gateway, backend):
    client = device(gateway, user="jdoe", device_id="ApplOPT")
    assert client.options().status == 200
    reply = device(gateway, path="/untracked/Microsoft-Server-ActiveSync",
                   user="jdoe", device_id="ApplOFF").foldersync()
    assert reply.status == 200

    assert inventory(gateway)["devices"] == []
    assert len(backend.requests) == 2


def test_reload_keeps_the_inventory(gateway):
    device(gateway, user="jdoe", device_id="ApplKEEP").foldersync()
    before = by_device(inventory(gateway))

    gateway.reload()

    after = by_device(inventory(gateway))
    assert after == before and ("jdoe", "ApplKEEP") in after


def test_a_full_zone_evicts_the_least_recently_seen(gateway):
    path = "/tiny/Microsoft-Server-ActiveSync"
    total = 300
    for i in range(total):
        reply = device(gateway, path=path, user="user%03d" % i,
                       device_id="device%03d" % i).foldersync()
        assert reply.status == 200

    entries = inventory(gateway, "/tiny-inventory")["devices"]
    kept = [entry["device_id"] for entry in entries]

    assert 0 < len(kept) < total
    # exactly the most recent ones, newest first
    assert kept == ["device%03d" % i
                    for i in range(total - 1, total - 1 - len(kept), -1)]
    # the other zone is untouched
    assert inventory(gateway)["devices"] == []


def test_invisible_and_reordering_characters_escaped(gateway):
    """DEL, C1 controls and the bidirectional controls of a User-Agent
    are written \\uXXXX in the listing, never raw: a terminal or a page
    showing the JSON text cannot be made to hide or reorder what
    follows them.  Other UTF-8 stays as sent."""
    agent = ("Apple\x7fiPhone\u202eevil\u2066x\u2069\u200f\x85"
             "\u2028J\u00f6rg")
    device(gateway, user="jdoe", device_id="BIDI1",
           user_agent=agent.encode("utf-8")).foldersync()
    with urllib.request.urlopen("http://127.0.0.1:%d/inventory"
                                % gateway.port, timeout=10) as reply:
        raw = reply.read()
    for char in ("\x7f", "\u202e", "\u2066", "\u2069", "\u200f", "\x85",
                 "\u2028"):
        assert char.encode("utf-8") not in raw
    assert (b'"Apple\\u007fiPhone\\u202eevil\\u2066x\\u2069\\u200f\\u0085'
            b'\\u2028J\xc3\xb6rg"') in raw
    entry = by_device(json.loads(raw))[("jdoe", "BIDI1")]
    assert entry["user_agent"] == agent
