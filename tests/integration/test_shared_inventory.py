"""The device inventory shared by gateways on one Redis (eas_shared_state,
docs/scale-out.md): a device seen on one gateway is listed by the admin
API of every other; deleted on one, it is gone from all; a gateway
started later lists the fleet; Redis killed and back, the gateways
converge; last-seen moves are batched (far fewer Redis writes than
requests, counted by Redis itself); eas_device_max stays exact with the
records imported from other gateways; junk on the channel or in Redis
is refused and no worker dies.  Every gateway is a real nginx with two
workers, Redis a real redis-server on a loopback port."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from eastest.backends import CredentialBackend, EasBackend
from eastest import confs
from eastest.client import EasClient
from eastest.jsonschema import validate
from eastest.nginx import start_gateway
from eastest.waiting import poll

NGINX_CONFIG = """
http {
    ${temp_paths}

    eas_shared_state ${redis_url} prefix=t: timeout=${timeout}
                     connect_timeout=300ms retry=200ms flush=${flush} ${gateway_name}
                     device_ttl=2h;

    eas_preauth_zone zone=auth:1m;
    eas_device_zone zone=devices:1m;

    upstream backend {
        server 127.0.0.1:${backend_port};
    }

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_devices devices;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_request /_directory;
            ${device_max}
            proxy_pass http://backend;
        }

""" + confs.SHARED_DIRECTORY + """
""" + confs.SHARED_STATUS_ADMIN + """    }
}
"""


@pytest.fixture
def directory():
    users = {"jdoe": "secret", "amy": "apple"}
    users.update({"u%02d" % i: "pw" for i in range(10)})
    with CredentialBackend({None: users}) as server:
        yield server


@pytest.fixture
def backend():
    with EasBackend() as server:
        yield server


def gateway(nginx_factory, redis, directory, backend, device_max="",
            timeout="300ms", flush="1s", name=None):
    nginx = start_gateway(nginx_factory, NGINX_CONFIG, redis_url=redis.url,
                          dir_port=directory.port, backend_port=backend.port,
                          device_max=device_max, timeout=timeout,
                          flush=flush,
                          gateway_name="gateway=%s" % name if name else "")
    return nginx


def gateways(nginx_factory, redis, directory, backend, count, **kw):
    started = [gateway(nginx_factory, redis, directory, backend, **kw)
               for _ in range(count)]
    poll(lambda: clients(redis) >= 4 * count or None,
         "connections of every worker to Redis")
    return started


def clients(redis):
    for line in redis.command("INFO", "clients").decode().splitlines():
        if line.startswith("connected_clients:"):
            return int(line.split(":")[1]) - 1
    return 0


def device(nginx, device_id, user="jdoe", password="secret"):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user, password=password,
                     device_id=device_id, timeout=20)


def get(nginx, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (nginx.port, path),
                                timeout=10) as reply:
        return json.loads(reply.read().decode())


def listed(nginx, **query):
    query.setdefault("per_page", 1000)
    path = "/eas/admin/devices?" + "&".join("%s=%s" % kv
                                            for kv in query.items())
    return get(nginx, path)["devices"]


def ids(nginx):
    return {d["device_id"] for d in listed(nginx)}


def delete(nginx, user, device_id):
    return delete_answer(nginx, user, device_id)[0]


SCHEMA = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                      "status.schema.json")


def inventory_status(nginx):
    """Its part of eas_status, the whole document checked against the
    schema of the docs, the Prometheus text by promtool."""
    document = get(nginx, "/eas/status?format=json")
    with open(SCHEMA) as f:
        assert validate(document, json.load(f)) == []
    with urllib.request.urlopen("http://127.0.0.1:%d/eas/status?format="
                                "prometheus" % nginx.port,
                                timeout=10) as reply:
        text = reply.read()
    assert b"\nnginx_eas_shared_inventory_refused_total %d\n" \
        % document["shared_inventory"]["refused"] in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: install Debian's prometheus"
    run = subprocess.run([promtool, "check", "metrics"], input=text,
                         capture_output=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    return document["shared_inventory"]


def command_calls(redis):
    """Calls per command, as Redis counts them (scripts' inner ones too)."""
    calls = {}
    for line in redis.command("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line[len("cmdstat_"):].partition(":")
            calls[name] = int(fields.split(",")[0].split("=")[1])
    return calls


def test_seen_on_a_listed_on_b_and_c_deleted_on_b_gone_everywhere(
        nginx_factory, redis, directory, backend):
    a, b, c = gateways(nginx_factory, redis, directory, backend, 3)
    reply = device(a, "PHONE1").foldersync()
    assert reply.status == 200
    for nginx in (b, c):
        poll(lambda: "PHONE1" in ids(nginx) or None,
             "the device of A listed on another gateway")
    record = [d for d in listed(b) if d["device_id"] == "PHONE1"][0]
    mine = [d for d in listed(a) if d["device_id"] == "PHONE1"][0]
    for field in ("user", "device_type", "user_agent", "protocol_version",
                  "first_seen", "access", "last_command"):
        assert record[field] == mine[field], field
    assert record["user"] == "jdoe"
    # on Redis: the record, with the inventory's expiry (device_ttl)
    keys = redis.keys("t:i:devices:*")
    assert len(keys) == 1
    assert 3600 < int(redis.command("TTL", keys[0])) <= 7200
    assert 3600 < int(redis.command("TTL", "t:iz:devices")) <= 7200

    assert delete(b, "jdoe", "PHONE1") == 200
    for nginx in (a, c):
        poll(lambda: "PHONE1" not in ids(nginx) or None,
             "the device deleted on B gone from the others")
    assert redis.keys("t:i:devices:*") == []
    assert redis.command("ZCARD", "t:iz:devices") == 0


def test_gateway_started_later_lists_the_fleet(nginx_factory, redis,
                                               directory, backend):
    """More devices than one step of the fill reads (32): all listed by
    a gateway started afterwards, in the order they were last seen."""
    a, = gateways(nginx_factory, redis, directory, backend, 1)
    fleet = set()
    for i in range(10):
        for k in range(5):
            device_id = "U%02dDEV%d" % (i, k)
            assert device(a, device_id, user="u%02d" % i,
                          password="pw").foldersync().status == 200
            fleet.add(device_id)
    poll(lambda: redis.command("ZCARD", "t:iz:devices") == len(fleet)
         or None, "every record written to Redis")
    later = gateway(nginx_factory, redis, directory, backend)
    poll(lambda: ids(later) == fleet or None, "the fleet on the new gateway")
    seen = [d["last_seen"] for d in listed(later)]
    assert seen == sorted(seen, reverse=True)
    assert get(later, "/eas/admin/devices?per_page=10&page=5")["total"] \
        == len(fleet)


def test_redis_killed_and_back_converges(nginx_factory, redis, directory,
                                         backend):
    a, b = gateways(nginx_factory, redis, directory, backend, 2)
    assert device(a, "BEFORE").foldersync().status == 200
    poll(lambda: "BEFORE" in ids(b) or None, "BEFORE listed on B")
    redis.stop()
    assert device(a, "DURING").foldersync().status == 200
    poll(lambda: inventory_status(a)["dropped"] >= 1 or None,
         "the record written while Redis is down counted as dropped")
    redis.start()
    poll(lambda: clients(redis) >= 8 or None, "the gateways back on Redis")
    # the next request of the device writes it again
    assert device(a, "DURING").foldersync().status == 200
    assert device(b, "ONB").foldersync().status == 200
    poll(lambda: {"BEFORE", "DURING", "ONB"} <= ids(b) or None,
         "B lists every device")
    poll(lambda: {"DURING", "ONB"} <= ids(a) or None, "A lists B's device")
    # B's subscriptions dropped (as in a network blip): what A writes
    # meanwhile reaches B all the same, read back when B subscribes again
    redis.command("CLIENT", "KILL", "TYPE", "pubsub")
    assert device(a, "BLIP").foldersync().status == 200
    poll(lambda: "BLIP" in ids(b) or None, "B lists the device of the blip")


def test_last_seen_batched(nginx_factory, redis, directory, backend):
    """Many requests of known devices: a few batched writes, not one a
    request; the other gateway sees the last-seen time move."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2)
    for device_id in ("P1", "P2"):
        assert device(a, device_id).foldersync().status == 200
    poll(lambda: {"P1", "P2"} <= ids(b) or None, "listed on B")
    first = {d["device_id"]: d["last_seen"] for d in listed(b)}
    before = command_calls(redis)
    requests = 0
    clients_ = [device(a, "P1"), device(a, "P2")]
    started = time.monotonic()
    for _ in range(100):
        for client in clients_:
            assert client.foldersync().status == 200
            requests += 1
    after = command_calls(redis)
    # at most one write per device, worker and flush (1 s) that passed
    flushes = time.monotonic() - started + 2

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)

    writes = delta("set")
    trips = delta("eval") + delta("evalsha") + delta("publish")
    assert writes <= 2 * 2 * flushes, (writes, requests, flushes)
    assert trips <= 2 * 2 * flushes, (trips, requests, flushes)
    assert writes < requests / 2 and trips < requests / 2

    def moved():
        # one more request each, in a later second than the first ones
        if int(time.time()) > max(first.values()):
            for client in clients_:
                client.foldersync()
        return all(d["last_seen"] > first[d["device_id"]]
                   for d in listed(b) if d["device_id"] in first) or None

    poll(moved, "the last-seen times moved on B")
    assert inventory_status(a)["written"] >= 2


def test_device_max_exact_with_imported_records(nginx_factory, redis,
                                                directory, backend):
    """eas_device_max 1: the phone of A imported by B does not count on B
    as a second place; the user's set on Redis expires with the
    inventory."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2,
                    device_max="eas_device_max 1;")
    assert device(a, "PHONE1").foldersync().status == 200
    poll(lambda: "PHONE1" in ids(b) or None, "PHONE1 imported by B")
    assert 3600 < int(redis.command("TTL", "t:d:devices:jdoe")) <= 7200
    # B counts nothing of its own yet: the import is not a place
    device(b, "PHONE2").foldersync()
    assert forwarded(backend) == {"PHONE1"}
    assert device(b, "PHONE1").foldersync().status == 200
    assert device(a, "PHONE1").foldersync().status == 200
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone1"]
    assert forwarded(backend) == {"PHONE1"}
    record = [d for d in listed(b) if d["device_id"] == "PHONE1"][0]
    assert record["user_devices"] == 1

    # deleted on B: its place given back everywhere, PHONE2 now fits
    assert delete(b, "jdoe", "PHONE1") == 200
    poll(lambda: "PHONE1" not in ids(a) or None, "PHONE1 gone from A")
    assert device(a, "PHONE2").foldersync().status == 200
    poll(lambda: "PHONE2" in ids(b) or None, "PHONE2 imported by B")
    count = len(backend.requests)
    device(b, "PHONE1").foldersync()
    assert [r.eas.device_id for r in backend.requests[count:]] == []
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone2"]


def test_device_refused_by_redis_listed_blocked_everywhere(
        nginx_factory, redis, directory, backend):
    """A device that Redis refuses for eas_device_max (the user's places
    are held on another gateway) is listed blocked by eas_device_max on
    every gateway, as on the one that refused it: the shared record
    carries the request's final decision, and it gives no place."""
    a, b, c = gateways(nginx_factory, redis, directory, backend, 3,
                       device_max="eas_device_max 1;")
    assert device(a, "PHONE1").foldersync().status == 200
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone1"]
    device(b, "PHONE2").foldersync()
    assert forwarded(backend) == {"PHONE1"}

    def refused(nginx):
        found = [d for d in listed(nginx, decision="blocked")
                 if d["device_id"] == "PHONE2"]
        return found and found[0]["reason"] == "eas_device_max" or None

    for nginx in (a, b, c):
        poll(lambda: refused(nginx), "PHONE2 blocked by eas_device_max")
        assert "PHONE2" not in {d["device_id"]
                                for d in listed(nginx, decision="allowed")}
    record = redis.command("GET", "t:i:devices:4:jdoephone2").decode()
    assert record.endswith("Apple-iPhone13C4/2307.71eas_device_max")
    # never admitted: an hour on Redis at most, not device_ttl (2h)
    assert 0 < int(redis.command("TTL", "t:i:devices:4:jdoephone2")) <= 3600
    assert int(redis.command("TTL", "t:i:devices:4:jdoephone1")) > 3600
    assert float(redis.command("ZSCORE", "t:iz:devices",
                               "t:i:devices:4:jdoephone2")) \
        <= time.time() - 3600 + 5
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone1"]
    # still refused on its next request, and still no place
    device(b, "PHONE2").foldersync()
    assert forwarded(backend) == {"PHONE1"}


def test_index_trimmed_in_bounded_steps(nginx_factory, redis, directory,
                                        backend):
    """Index entries older than device_ttl (a shortened device_ttl, a
    gateway away for long) leave the index a bounded number per write,
    never all in one script: one write must not take Redis longer than
    the gateways' timeout.  Writes go on trimming until none is left."""
    a, = gateways(nginx_factory, redis, directory, backend, 1)
    old = int(time.time()) - 3 * 3600
    redis.command("EVAL", "for i = 1, tonumber(ARGV[2]) do "
                  "redis.call('ZADD', KEYS[1], ARGV[1], 'old' .. i) end",
                  "1", "t:iz:devices", str(old), "20000")
    assert device(a, "PHONE1").foldersync().status == 200
    poll(lambda: redis.command("EXISTS", "t:i:devices:4:jdoephone1") == 1
         or None, "PHONE1 written")
    left = int(redis.command("ZCARD", "t:iz:devices"))
    assert 20000 - 64 <= left - 1 < 20000
    for n in range(2, 6):
        device(a, "PHONE%d" % n).foldersync()
    poll(lambda: int(redis.command("ZCARD", "t:iz:devices")) <= left - 64
         or None, "more old entries trimmed by later writes")


def test_user_set_rebuilt_and_limit_converges(nginx_factory, redis,
                                              directory, backend):
    """The user's set on Redis gone (Redis restarted empty, expired,
    deleted): a device counted on A puts its place back with the next
    write of its record, so B cannot admit another.  If B admitted one
    meanwhile (the set is full with others), A gives its place back and
    the device's next request is refused: the limit converges to
    eas_device_max, never max x gateways."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2,
                    device_max="eas_device_max 1;")
    assert device(a, "PHONE1").foldersync().status == 200
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone1"]

    # the set goes; PHONE1 keeps syncing on A and puts its place back
    redis.command("DEL", "t:d:devices:jdoe")
    device(a, "PHONE1").foldersync()
    poll(lambda: redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone1"]
         or None, "PHONE1's place back on Redis")
    device(b, "PHONE2").foldersync()
    assert forwarded(backend) == {"PHONE1"}

    # the set goes, B admits PHONE3 before PHONE1 comes back: PHONE1
    # loses its place at its next write and is refused after that
    redis.command("DEL", "t:d:devices:jdoe")
    device(b, "PHONE3").foldersync()
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone3"]
    assert forwarded(backend) == {"PHONE1", "PHONE3"}

    def refused():
        count = len(backend.requests)
        device(a, "PHONE1").foldersync()
        return len(backend.requests) == count or None

    poll(refused, "PHONE1 refused on A")
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone3"]
    record = [d for d in listed(a) if d["device_id"] == "PHONE1"][0]
    assert (record["access"], record["reason"]) == ("blocked",
                                                    "eas_device_max")
    # two devices admitted in all at no time after the last refusal
    count = len(backend.requests)
    device(a, "PHONE1").foldersync()
    device(b, "PHONE3").foldersync()
    assert [r.eas.device_id for r in backend.requests[count:]] == ["PHONE3"]
    assert "lost its \"eas_device_max\" place" in a.error_log()


def test_redis_restarted_empty_limit_holds(nginx_factory, redis,
                                          directory, backend):
    """Redis restarted empty: A puts the place of the phone it counts
    back (and its next request would too), so B admits no second device
    for the user, and A keeps listing its own device."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2,
                    device_max="eas_device_max 1;")
    assert device(a, "PHONE1").foldersync().status == 200
    redis.stop()
    redis.start()
    poll(lambda: clients(redis) >= 8 or None, "the gateways back on Redis")
    assert device(a, "PHONE1").foldersync().status == 200
    poll(lambda: redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone1"]
         or None, "PHONE1's place back on Redis")
    device(b, "PHONE2").foldersync()
    assert forwarded(backend) == {"PHONE1"}
    assert "PHONE1" in ids(a)


FILLED = 'eas: shared state: the fill of zone "devices" read '


def fills(nginx):
    """The lines of the gateway's fills, one a zone's fill, oldest
    first (said by its first worker, which imports)."""
    return [line[line.index(FILLED) + len(FILLED):]
            for line in nginx.error_log().splitlines() if FILLED in line]


def filled(nginx, count=1):
    """Waits for the gateway's first worker to have ended (at least)
    count fills: its subscription was made that many times."""
    def done():
        lines = fills(nginx)
        return lines if len(lines) >= count else None
    return poll(done, "fill %d of the gateway" % count)


def last_seen(nginx, device_id):
    return listed(nginx, device_id=device_id)[0]["last_seen"]


def next_second(after):
    poll(lambda: int(time.time()) > after or None, "the next second")


def workers(nginx):
    """The pids of the gateway's workers (the children of its master)."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as f:
                stat = f.read()
        except (OSError, ValueError):
            continue
        if pid.isdigit() and \
                int(stat.rsplit(")", 1)[1].split()[1]) == nginx.process.pid:
            out.append(int(pid))
    assert len(out) == 2, out
    return out


def test_deletion_missed_during_resubscription(nginx_factory, redis,
                                              directory, backend):
    """A device deleted on A while B's subscription is being made again
    (B never hears the deletion): B's fill finds its record gone from
    Redis and removes it, so B neither lists it nor counts it, and its
    next request through B asks Redis like a new device's, refused when
    the place it had was taken meanwhile.

    Nothing here is left to timing.  B's first fill is over before its
    subscription goes (the first fill of a worker never sweeps: it
    cannot know what was dropped before it), the fill sweeps only when
    none of B's writes was dropped since its previous fill (a write whose
    answer is later than "timeout" counts as dropped: these gateways
    wait 5s), "not seen since the fill began" is to the second, as
    last_seen, and B must not be subscribed when A deletes: SUBSCRIBE is
    refused (ACL) until the deletion is made, or B could hear it.  B's
    last write of AMYB0 (the "flush" after its request) may land before
    the deletion or after it: after, Redis does not take it back (the
    deletion is remembered) and the answer makes B remove AMYB0 at once;
    either way the fill sweeps, and AMYB0 is gone."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2,
                    device_max="eas_device_max 1;", timeout="5s")
    assert filled(b)[0] == ('0 records; those it did not find are kept: '
                            'the first fill of this worker')
    assert device(b, "AMYB0", user="amy", password="apple") \
        .foldersync().status == 200
    poll(lambda: "AMYB0" in ids(a) or None, "AMYB0 imported by A")
    next_second(last_seen(b, "AMYB0"))
    assert inventory_status(b)["dropped"] == 0
    before = len(fills(b))
    redis.command("ACL", "SETUSER", "default", "-subscribe")
    try:
        redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        assert delete(a, "amy", "AMYB0") == 200
        poll(lambda: redis.command("EXISTS", "t:i:devices:3:amyamyb0") == 0
             or None, "AMYB0 deleted on Redis")
    finally:
        redis.command("ACL", "SETUSER", "default", "+subscribe")
    done = filled(b, before + 1)[before:]
    assert "AMYB0" not in ids(b)
    assert "AMYB0" not in ids(a)
    # it swept: 1 removed, or 0 when B's late write removed it already
    assert "device records gone from Redis" in done[0] and \
        "kept" not in "".join(done), done
    assert inventory_status(b)["dropped"] == 0
    assert redis.command("EXISTS", "t:i:devices:3:amyamyb0") == 0

    # the freed place taken on A: AMYB0 through B is refused at once
    assert device(a, "AMYA1", user="amy", password="apple") \
        .foldersync().status == 200
    count = len(backend.requests)
    device(b, "AMYB0", user="amy", password="apple").foldersync()
    assert [r.eas.device_id for r in backend.requests[count:]] == []
    assert redis.command("SMEMBERS", "t:d:devices:amy") == [b"amya1"]


def delete_answer(nginx, user, device_id):
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/devices?user=%s&device_id=%s"
        % (nginx.port, user, device_id),
        method="DELETE", headers={"X-EAS-Admin": "1"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read().decode())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


def test_deleted_while_redis_down_deleted_everywhere_once_back(
        nginx_factory, redis, directory, backend):
    """Deleted on B while Redis is down: B answers shared:false, keeps
    the deletion and sends it when Redis is back, so A drops the device
    too.  A device seen again on A after its deletion (its record on
    Redis newer than the deletion) is kept: B's deletion, sent late,
    does not undo what A saw since."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2)
    for device_id in ("PHONE1", "LATER"):
        assert device(a, device_id).foldersync().status == 200
    poll(lambda: {"PHONE1", "LATER"} <= ids(b) or None, "listed on B")
    status, answer = delete_answer(b, "jdoe", "PHONE1")
    assert (status, answer) == (200, {"deleted": 1, "shared": True})
    poll(lambda: "PHONE1" not in ids(a) or None, "PHONE1 gone from A")
    # back in a later second than its deletion: a new device
    deleted = int(time.time())
    poll(lambda: int(time.time()) > deleted or None, "the next second")
    assert device(a, "PHONE1").foldersync().status == 200
    poll(lambda: "PHONE1" in ids(b) or None, "PHONE1 back on B")

    redis.stop()
    poll(lambda: get(b, "/eas/status?format=json")["shared_state"]["up"] == 0
         or None, "B sees Redis down")
    for device_id in ("PHONE1", "LATER"):
        status, answer = delete_answer(b, "jdoe", device_id)
        assert (status, answer) == (200, {"deleted": 1, "shared": False})
    assert "PHONE1" not in ids(b)
    deleted = int(time.time())
    # B frozen while Redis comes back and A sees LATER again, later than
    # the deletion: B's deletion reaches Redis after A's record
    frozen = workers(b)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        redis.start()
        poll(lambda: int(time.time()) > deleted or None, "the next second")
        assert device(a, "LATER").foldersync().status == 200
        poll(lambda: redis.command("EXISTS", "t:i:devices:4:jdoelater") == 1
             and last_seen_on_redis(redis, "t:i:devices:4:jdoelater")
             > deleted or None, "LATER written again by A, seen since")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    poll(lambda: "PHONE1" not in ids(a) or None,
         "the deletion made on B while Redis was down reaches A")
    assert redis.command("SISMEMBER", "t:d:devices:jdoe", "phone1") == 0
    assert "while it was away sent to it" in b.error_log()
    poll(lambda: "LATER" in ids(b) or None, "LATER, seen since, back on B")
    assert "LATER" in ids(a)
    assert redis.command("EXISTS", "t:i:devices:4:jdoelater") == 1


def test_deletions_while_redis_down_bounded(nginx_factory, redis,
                                            directory, backend):
    """A worker keeps 256 deletions for a Redis that is down: past them
    the admin API refuses (503, saying why) and the record stays."""
    a, = gateways(nginx_factory, redis, directory, backend, 1)
    assert device(a, "KEEP").foldersync().status == 200
    redis.stop()
    poll(lambda: get(a, "/eas/status?format=json")["shared_state"]["up"] == 0
         or None, "A sees Redis down")
    refused = None
    # two workers: at most 2 x 256 kept, each on one connection
    for i in range(600):
        status, answer = delete_answer(a, "jdoe", "GONE%03d" % i)
        if status == 503:
            refused = answer
            break
        assert status == 404, answer
    assert refused is not None
    assert "queue of deletions" in refused["error"]
    # a refused deletion is not made here either (the other worker, with
    # room left, deletes and keeps: the device comes back, asked again)
    for _ in range(100):
        status, answer = delete_answer(a, "jdoe", "KEEP")
        if status == 503:
            break
        assert (status, answer) == (200, {"deleted": 1, "shared": False})
        assert device(a, "KEEP").foldersync().status == 200
    assert status == 503
    assert "KEEP" in ids(a)


def last_seen_on_redis(redis, key):
    """The last seen time of a record on Redis, past its gateway's name
    ("2 LEN:NAME 1 FIRST LAST ...")."""
    fields = redis.command("GET", key).split()
    if fields[0] == b"2":
        fields = fields[2:]
    return int(fields[2])


def test_batch_written_when_the_worker_exits(nginx_factory, redis,
                                             directory, backend):
    """The last-seen moves a worker holds when it shuts down gracefully
    (a reload) reach Redis: with flush=60s nothing else writes them."""
    a, = gateways(nginx_factory, redis, directory, backend, 1, flush="60s")
    key = "t:i:devices:4:jdoephone1"
    # a new device is written at once
    assert device(a, "PHONE1").foldersync().status == 200
    poll(lambda: redis.command("EXISTS", key) == 1 or None, "PHONE1 written")
    first = last_seen_on_redis(redis, key)
    poll(lambda: int(time.time()) > first or None, "the next second")
    assert device(a, "PHONE1").foldersync().status == 200
    assert last_seen_on_redis(redis, key) == first
    a.reload()
    poll(lambda: last_seen_on_redis(redis, key) > first or None,
         "the last seen time the exiting worker held, on Redis")


def test_listing_says_which_gateway_saw_the_device(nginx_factory, redis,
                                                   directory, backend):
    """Every record says the gateway that wrote it last ("gateway=",
    the host name by default), on every gateway; a record of an older
    gateway (version 1, no name) is listed with an empty one."""
    a = gateway(nginx_factory, redis, directory, backend, name="gw-a")
    b = gateway(nginx_factory, redis, directory, backend, name="gw-b")
    poll(lambda: clients(redis) >= 8 or None, "the gateways on Redis")
    assert device(a, "PHONEA").foldersync().status == 200
    assert device(b, "PHONEB").foldersync().status == 200
    for nginx in (a, b):
        poll(lambda: {"PHONEA", "PHONEB"} <= ids(nginx) or None,
             "both devices listed")
        assert {d["device_id"]: d["gateway"] for d in listed(nginx)} \
            == {"PHONEA": "gw-a", "PHONEB": "gw-b"}
    assert redis.command("GET", "t:i:devices:4:jdoephonea") \
        .startswith(b"2 4:gw-a 1 ")
    # PHONEA syncs through B: every gateway says B saw it last
    seen = [d["last_seen"] for d in listed(a) if d["device_id"] == "PHONEA"]
    poll(lambda: int(time.time()) > seen[0] or None, "the next second")
    assert device(b, "PHONEA").foldersync().status == 200
    for nginx in (a, b):
        poll(lambda: listed(nginx, device_id="PHONEA")[0]["gateway"]
             == "gw-b" or None, "PHONEA seen last by B")
    # a record of version 1, as an older gateway writes it
    redis.command("PUBLISH", "t:db0:events",
                  b"I 0000000000000000 0 0 7 0 devices"
                  + frame(good_record("OLDGW", int(time.time()))))
    poll(lambda: listed(a, device_id="OLDGW") or None, "OLDGW listed")
    assert listed(a, device_id="OLDGW")[0]["gateway"] == ""


def restarted_empty_refilled(redis, nginx, records, flush=False):
    """Redis restarted empty (or flushed, its subscriptions made again):
    the records and jdoe's set of devices (IDLEA, IDLEB) come back
    without a request, and the gateway says it wrote its own again."""
    mark = nginx.mark()
    if flush:
        redis.command("FLUSHALL")
        redis.command("CLIENT", "KILL", "TYPE", "pubsub")
    else:
        redis.stop()
        redis.start()
    poll(lambda: redis.command("ZCARD", "t:iz:devices") == records or None,
         "the records written again")
    poll(lambda: sorted(redis.command("SMEMBERS", "t:d:devices:jdoe"))
         == [b"idlea", b"idleb"] or None, "jdoe's set of devices back")
    assert any("written to it again" in line
               for line in nginx.error_lines_since(mark))


def test_redis_restarted_empty_refilled_by_idle_gateways(
        nginx_factory, redis, directory, backend):
    """Redis restarted empty: each gateway writes the records it wrote
    last again, idle devices too, so the fleet's inventory and the
    users' sets of counted devices come back with no request at all; a
    gateway started afterwards lists the fleet."""
    # flush=60s: no batch of last-seen times writes the records meanwhile
    a, b = gateways(nginx_factory, redis, directory, backend, 2,
                    device_max="eas_device_max 2;", flush="60s")
    assert device(a, "IDLEA").foldersync().status == 200
    assert device(b, "IDLEB").foldersync().status == 200
    assert device(a, "OTHER", user="amy",
                  password="apple").foldersync().status == 200
    for nginx in (a, b):
        poll(lambda: ids(nginx) == {"IDLEA", "IDLEB", "OTHER"} or None,
             "the fleet listed")
    restarted_empty_refilled(redis, a, 3)
    assert redis.command("SMEMBERS", "t:d:devices:amy") == [b"other"]
    assert redis.command("GET", "t:i:devices:4:jdoeidleb") \
        .startswith(b"2 ")
    c = gateway(nginx_factory, redis, directory, backend,
                device_max="eas_device_max 2;")
    poll(lambda: ids(c) == {"IDLEA", "IDLEB", "OTHER"} or None,
         "the fleet on a gateway started afterwards")
    # the limit holds across the gateways
    count = len(backend.requests)
    device(c, "THIRD").foldersync()
    assert [r.eas.device_id for r in backend.requests[count:]] == []


def test_write_after_deletion_brings_nothing_back(nginx_factory, redis,
                                                  directory, backend):
    """A write of a device seen before its deletion, landing after it
    (B's batch of last-seen moves, flushed while B did not hear the
    deletion), does not bring the device back: not on Redis, not on A,
    and B removes it too, from the write's answer, one line.

    Made certain: B's workers are stopped (SIGSTOP) with the write still
    in B's batch (the index on Redis still has the first write's time),
    A deletes, B goes on; its subscription refused meanwhile (ACL)."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2,
                    flush="2s")
    filled(b)
    for attempt in range(5):
        name = "AMYB%d" % (attempt + 1)
        key = "t:i:devices:3:amy" + name.lower()
        phone = device(b, name, user="amy", password="apple")
        assert phone.foldersync().status == 200
        poll(lambda: name in ids(a) or None, name + " imported by A")
        first = last_seen(b, name)
        next_second(first)
        # a later request: its last seen time waits in B's batch
        assert phone.foldersync().status == 200
        pids = workers(b)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if int(redis.command("ZSCORE", "t:iz:devices", key)) == first:
            break
        # the machine took longer than "flush": again, with another
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    else:
        pytest.fail("B's write always left before B's workers stopped")
    before = len(fills(a))
    redis.command("ACL", "SETUSER", "default", "-subscribe")
    try:
        redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        assert delete(a, "amy", name) == 200
        poll(lambda: redis.command("EXISTS", key) == 0 or None,
             name + " deleted on Redis")
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        # the write landed: the record back (before), or B removed it
        poll(lambda: redis.command("EXISTS", key)
             or "removed here, not written back" in b.error_log() or None,
             "B's write of %s answered" % name)
        assert redis.command("EXISTS", key) == 0
        assert name not in ids(b)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        redis.command("ACL", "SETUSER", "default", "+subscribe")
    assert redis.command("ZSCORE", "t:iz:devices", key) is None
    filled(a, before + 1)
    assert name not in ids(a)
    assert inventory_status(b)["dropped"] == 0


def forwarded(backend):
    return {r.eas.device_id for r in backend.requests}


def frame(record):
    data = record.encode() if isinstance(record, str) else record
    return b"%d:%s" % (len(data), data)


def good_record(device_id, now, first=None):
    user, type_ = "amy", "iPhone"
    return "1 %d %d 0 141 0 1 %d %d %d 0 0 %s%s%s" % (
        now - 10 if first is None else first, now, len(user),
        len(device_id), len(type_), user, device_id, type_)


JUNK_RECORDS = [
    b"",
    b"2 1 1 0 141 0 1 3 4 0 0 0 amyDEV1",           # another version
    b"1 1 1 0 141 0 1 3 4 0 0 0 amyDEV",            # short
    b"1 1 1 0 141 0 1 3 4 0 0 0 amyDEV1X",          # long
    b"1 1 1 0 141 0 9 3 4 0 0 0 amyDEV1",           # access
    b"1 1 1 0 141 0 1 3 0 0 0 0 amy",               # no DeviceId
    b"1 1 1 0 141 0 1 3 4 999 0 0 amyDEV1",         # type over its slot
    b"1 5 1 0 141 0 1 3 4 0 0 0 amyDEV1",           # first after last
    b"1 1 99999999999 0 141 0 1 3 4 0 0 0 amyDEV1",  # in the future
    b"1 1 1 0 141 0 1 3 4 0 0 0 amyDEV1 trailing",
    b"1 x 1 0 141 0 1 3 4 0 0 0 amyDEV1",
    b"\xff" * 2000,
    b"2 3:gwa1 1 1 0 141 0 1 3 4 0 0 0 amyDEV1",    # name not as long
    b"2 0: 1 1 1 0 141 0 1 3 4 0 0 0 amyDEV1",      # no name
    b"2 65:" + b"g" * 65 + b" 1 1 1 0 141 0 1 3 4 0 0 0 amyDEV1",
    b"2 3:gwa 2 3:gwb 1 1 1 0 141 0 1 3 4 0 0 0 amyDEV1",
    b"2 3:gwa",
]


def refused_record(device_id, now):
    user, reason = "amy", "eas_device_max"
    return "1 %d %d 0 141 0 2 %d %d 0 0 %d %s%s%s" % (
        now, now, len(user), len(device_id), len(reason), user, device_id,
        reason)


def test_refused_spray_evicts_no_admitted_record(nginx_factory, redis,
                                                 directory, backend):
    """Records of devices refused for eas_device_max, imported from
    another gateway (a spray of DeviceIds, more than the zone holds),
    take free room only: the records of admitted devices of the other
    gateways stay in the zone, however long ago they were seen."""
    a, = gateways(nginx_factory, redis, directory, backend, 1)
    now = int(time.time())
    channel = "t:db0:events"
    header = b"I 0000000000000000 0 0 7 0 devices"
    real = ["REAL%02d" % i for i in range(20)]
    redis.command("PUBLISH", channel, header + b"".join(
        frame(good_record(d, now - 3000)) for d in real))
    poll(lambda: set(real) <= ids(a) or None, "the admitted devices")
    for m in range(100):
        redis.command("PUBLISH", channel, header + b"".join(
            frame(refused_record("SPRAY%04d" % (32 * m + i), now - 10))
            for i in range(32)))
    # the channel is read in order: REAL19 deleted, the spray was read
    redis.command("PUBLISH", channel,
                  b"D 0000000000000000 0 0 7 3 devicesamyREAL19")
    poll(lambda: not listed(a, device_id="REAL19") or None,
         "the spray read")
    assert inventory_status(a)["imported"] >= 1000
    assert all(listed(a, device_id=d) for d in real[:19])
    # the gateway's own new device still gets a record
    assert device(a, "PHONE").foldersync().status == 200


def blocked(redis):
    for line in redis.command("INFO", "clients").decode().splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":")[1])
    return 0


def test_fill_skips_nothing_moved_between_steps(nginx_factory, redis,
                                                directory, backend):
    """The fill reads the index 32 records a step, each step after the
    last record the previous one read (its time and key), not after a
    rank: a record written again between two steps (it moves to the end
    of the index, those after it one rank down) makes no record
    skipped, so the fill that sweeps removes none that is on Redis.

    Made certain: Redis holds the second fill's first step (CLIENT PAUSE
    WRITE), B's first worker is stopped (SIGSTOP) once it is held, Redis
    lets it run (its answer waits in B's socket), the oldest record is
    written again, and B goes on to its second step."""
    now = int(time.time())
    names = ["MOVE%02d" % i for i in range(40)]
    for i, name in enumerate(names):
        key = "t:i:devices:3:amy" + name.lower()
        redis.command("SET", key, good_record(name, now - 1000 + i))
        redis.command("ZADD", "t:iz:devices", str(now - 1000 + i), key)
    b, = gateways(nginx_factory, redis, directory, backend, 1)
    first = filled(b)
    assert names[32] in ids(b) and len(ids(b)) == 40, first
    line = [x for x in b.error_log().splitlines() if FILLED in x][0]
    worker0 = int(line.split("] ", 1)[1].split("#")[0])
    mark, = redis.command("KEYS", "t:filled:*")
    redis.command("EXPIRE", mark, "1000")
    redis.command("CLIENT", "PAUSE", "30000", "WRITE")
    try:
        redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        poll(lambda: blocked(redis) >= 1 or None, "the first step held")
        os.kill(worker0, signal.SIGSTOP)
        try:
            redis.command("CLIENT", "UNPAUSE")
            poll(lambda: blocked(redis) == 0 or None, "the first step run")
            # it ran: it renewed this gateway's mark
            assert redis.command("TTL", mark) > 1000
            key = "t:i:devices:3:amy" + names[0].lower()
            redis.command("SET", key, good_record(names[0], now - 5,
                                                  first=now - 1000))
            redis.command("ZADD", "t:iz:devices", str(now - 5), key)
        finally:
            os.kill(worker0, signal.SIGCONT)
    finally:
        redis.command("CLIENT", "UNPAUSE")
    done = filled(b, len(first) + 1)[len(first):]
    # MOVE00 read twice: in the first step, and at its new place
    assert done == ["41 records; 0 device records gone from Redis "
                    "(deleted or expired while the subscription was made "
                    "again) removed here"], done
    assert ids(b) == set(names)


def test_junk_refused_and_no_worker_dies(nginx_factory, redis, directory,
                                         backend):
    """Records not understood, on the channel and in Redis (read by the
    fill of a gateway started afterwards): refused and counted, a good
    record beside them imported, no worker dies (the fixture's
    check_no_alerts)."""
    now = int(time.time())
    # in Redis before the gateway starts: junk strings, a key of another
    # type, an index entry with no record, and one good record
    for i, junk in enumerate(JUNK_RECORDS):
        key = "t:i:devices:junk%d" % i
        redis.command("SET", key, junk)
        redis.command("ZADD", "t:iz:devices", str(now - 100 + i), key)
    redis.command("HSET", "t:i:devices:hash", "f", "1")
    redis.command("ZADD", "t:iz:devices", str(now), "t:i:devices:hash")
    redis.command("ZADD", "t:iz:devices", str(now), "t:i:devices:gone")
    redis.command("SET", "t:i:devices:good", good_record("FILLED", now))
    redis.command("ZADD", "t:iz:devices", str(now), "t:i:devices:good")

    a, = gateways(nginx_factory, redis, directory, backend, 1)
    poll(lambda: "FILLED" in ids(a) or None, "the good record of the fill")

    channel = "t:db0:events"
    header = b"I 0000000000000000 0 0 7 0 devices"
    for junk in JUNK_RECORDS:
        redis.command("PUBLISH", channel, header + frame(junk))
    for junk in (b"5:ab", b"x:1", b"99999999:1", b":", b"3"):
        redis.command("PUBLISH", channel, header + junk)
    redis.command("PUBLISH", channel, b"D 0000000000000000 0 0 7 3 "
                  b"devicesamy")                        # no DeviceId
    redis.command("PUBLISH", channel, b"I 0000000000000000 0 0 5 0 "
                  b"other" + frame(good_record("ELSEWHERE", now)))
    redis.command("PUBLISH", channel,
                  header + frame(good_record("PUBLISHED", now)))
    poll(lambda: "PUBLISHED" in ids(a) or None, "the good published record")
    assert ids(a) == {"FILLED", "PUBLISHED"}
    status = inventory_status(a)
    assert status["refused"] >= len(JUNK_RECORDS)
    assert status["imported"] == 2
    # the gateway still works
    assert device(a, "PHONE").foldersync().status == 200


def field_record(now, user=b"amy", device_id=b"DEV", type_=b"iPhone",
                 agent=b"", reason=b"", version=141, command=0):
    """A record well framed, its numbers in bounds, the fields as given."""
    return b"1 %d %d 0 %d %d 1 %d %d %d %d %d %s%s%s%s%s" % (
        now - 10, now, version, command, len(user), len(device_id),
        len(type_), len(agent), len(reason), user, device_id, type_, agent,
        reason)


# fields no request could carry (the parser's rules, the zone's identity):
# each record with its own DeviceId, none of them may be listed
FORGED_FIELDS = [
    dict(device_id=b"F01\x01"),                  # control byte
    dict(device_id=b"F02 X"),                     # space
    dict(device_id=b"F03\x7f"),                  # DEL
    dict(device_id=b"F04\xc3\xa9"),              # not ASCII (valid UTF-8)
    dict(device_id=b"F05", type_=b"iPh\x01ne"),   # DeviceType control byte
    dict(device_id=b"F06", type_=b"iPh one"),     # DeviceType space
    dict(device_id=b"F07", type_=b"iPh\xc3\xa9"),  # DeviceType not ASCII
    dict(device_id=b"F08", user=b"amy\xff"),      # invalid UTF-8
    dict(device_id=b"F09", user=b"am\xc3"),       # cut mid-sequence
    dict(device_id=b"F10", user=b"\xc0\xa1my"),   # overlong
    dict(device_id=b"F11", user=b"a\x01my"),      # control byte
    dict(device_id=b"F12", user=b"a\x7fmy"),      # DEL
    dict(device_id=b"F13", user=b"Amy"),          # folds to "amy"
    dict(device_id=b"F14", user=b"amy "),         # folds to "amy"
    dict(device_id=b"F15", user=b"a  my"),        # folds to "a my"
    dict(device_id=b"F16", user="ＡＭＹ".encode()),  # full width: "amy"
    dict(device_id=b"F17", user=b"DOMAIN\\amy"),  # not an identity
    dict(device_id=b"F18", user=b"amy@Example.COM"),  # domain in capitals
    dict(device_id=b"F19", agent=b"Phone\x00/1"),  # NUL in a header
    dict(device_id=b"F20", agent=b"Phone\r\nX: 1"),
    dict(device_id=b"F21", reason=b"rule\x1b[31m"),
    dict(device_id=b"F22", version=142),          # no such version
    dict(device_id=b"F23", version=999),
    dict(device_id=b"F24", command=200),          # no such command
    dict(device_id=b"F" * 129),                   # DeviceId over 128
    dict(device_id=b"F26", type_=b"T" * 65),      # DeviceType over its slot
    dict(device_id=b"F27", user=b"u" * 257),      # user over 256
]


def test_forged_fields_refused_on_channel_and_in_redis(
        nginx_factory, redis, directory, backend):
    """A record whose fields no request could carry (a DeviceId with a
    control byte, a user not UTF-8 or not folded to itself, a version the
    parser does not know, fields over their length), published on the
    channel or left in Redis for the fill: refused and counted, never in
    the zone, never listed; good records beside them are, with fields a
    request does carry (an identity, UTF-8 in a User-Agent)."""
    now = int(time.time())
    started = time.monotonic()
    forged = [field_record(now, **f) for f in FORGED_FIELDS]
    for i, record in enumerate(forged):
        key = "t:i:devices:forged%d" % i
        redis.command("SET", key, record)
        redis.command("ZADD", "t:iz:devices", str(now - 100 + i), key)
    good = field_record(now, device_id=b"FILLED",
                        agent="Téléphone/1.0".encode(), reason=b"default")
    redis.command("SET", "t:i:devices:good", good)
    redis.command("ZADD", "t:iz:devices", str(now), "t:i:devices:good")

    a, = gateways(nginx_factory, redis, directory, backend, 1)
    poll(lambda: "FILLED" in ids(a) or None, "the good record of the fill")
    assert ids(a) == {"FILLED"}
    assert inventory_status(a)["refused"] == len(forged)

    channel = "t:db0:events"
    header = b"I 0000000000000000 0 0 7 0 devices"
    # one message each, and all of them in one
    for record in forged:
        redis.command("PUBLISH", channel, header + frame(record))
    redis.command("PUBLISH", channel, header + b"".join(
        frame(r) for r in forged))
    redis.command("PUBLISH", channel, header + frame(field_record(
        now, user="zoë".encode(), device_id=b"PUBLISHED", type_=b"")))
    poll(lambda: "PUBLISHED" in ids(a) or None, "the good published record")
    assert ids(a) == {"FILLED", "PUBLISHED"}
    assert listed(a, device_id="PUBLISHED")[0]["user"] == "zoë"
    status = inventory_status(a)
    assert status["refused"] == 3 * len(forged)
    assert status["imported"] == 2
    # said once a minute per worker (the first worker imports): not
    # once a record
    lines = [x for x in a.error_log().splitlines()
             if "a device record not understood, refused" in x]
    assert 1 <= len(lines) <= 1 + (time.monotonic() - started) // 60, lines


def test_stale_deleted_on_one_gateway_gone_everywhere(nginx_factory, redis,
                                                      directory, backend):
    """DELETE devices/stale?days=2 on B: the records it deletes go from
    Redis and from A too; a device seen today stays everywhere."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2)
    old = int(time.time()) - 3 * 86400
    record = good_record("OLDPHONE", old, first=old - 60)
    key = "t:i:devices:3:amyoldphone"
    redis.command("SET", key, record)
    redis.command("ZADD", "t:iz:devices", str(old), key)
    redis.command("PUBLISH", "t:db0:events",
                  b"I 0000000000000000 0 0 7 0 devices" + frame(record))
    assert device(a, "FRESH").foldersync().status == 200
    for nginx in (a, b):
        poll(lambda: {"OLDPHONE", "FRESH"} <= ids(nginx) or None,
             "both devices listed")
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/devices/stale?days=2" % b.port,
        method="DELETE", headers={"X-EAS-Admin": "1"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        deleted = json.loads(reply.read().decode())["devices"]
    assert [d["device_id"] for d in deleted] == ["OLDPHONE"]
    poll(lambda: "OLDPHONE" not in ids(a) or None, "OLDPHONE gone from A")
    assert ids(a) == ids(b) == {"FRESH"}
    poll(lambda: redis.keys("t:i:devices:3:amy*") == [] or None,
         "its record gone from Redis")


def test_stale_deleted_while_redis_down_gone_everywhere_once_back(
        nginx_factory, redis, directory, backend):
    """DELETE devices/stale on B while Redis is down: B deletes them at
    once and sends the deletions when Redis is back, so A drops them
    too; a device seen today stays everywhere."""
    a, b = gateways(nginx_factory, redis, directory, backend, 2)
    old = int(time.time()) - 3 * 86400
    record = good_record("OLDPHONE", old, first=old - 60)
    redis.command("PUBLISH", "t:db0:events",
                  b"I 0000000000000000 0 0 7 0 devices" + frame(record))
    assert device(a, "FRESH").foldersync().status == 200
    for nginx in (a, b):
        poll(lambda: {"OLDPHONE", "FRESH"} <= ids(nginx) or None,
             "both devices listed")
    redis.stop()
    poll(lambda: get(b, "/eas/status?format=json")["shared_state"]["up"] == 0
         or None, "B sees Redis down")
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/devices/stale?days=2" % b.port,
        method="DELETE", headers={"X-EAS-Admin": "1"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        deleted = json.loads(reply.read().decode())["devices"]
    assert [d["device_id"] for d in deleted] == ["OLDPHONE"]
    assert "OLDPHONE" in ids(a)
    redis.start()
    poll(lambda: "OLDPHONE" not in ids(a) or None, "OLDPHONE gone from A")
    assert ids(a) == ids(b) == {"FRESH"}


def test_gateway_names_outside_what_gateway_takes_refused(
        nginx_factory, redis, directory, backend):
    """The name of the gateway before a record ("2 LEN:NAME ") is one
    "gateway=" would take (letters, digits, '.', '-', '_'): a record
    named otherwise (a control byte, a space, a quote, UTF-8) is refused
    whole, so no forged name reaches the listing or the zone's table of
    names; a record named rightly is listed with its name."""
    now = int(time.time())
    a, = gateways(nginx_factory, redis, directory, backend, 1)
    channel = "t:db0:events"
    header = b"I 0000000000000000 0 0 7 0 devices"
    bad = [b"g\x01w", b"g w", b'g"w', "gé".encode(), b"g\x7fw", b"g\nw"]
    for i, name in enumerate(bad):
        record = b"2 %d:%s " % (len(name), name) + field_record(
            now, device_id=b"BAD%d" % i)
        redis.command("PUBLISH", channel, header + frame(record))
    redis.command("PUBLISH", channel, header + frame(
        b"2 9:edge-2.lb " + field_record(now, device_id=b"NAMED")))
    poll(lambda: "NAMED" in ids(a) or None, "the rightly named record")
    assert ids(a) == {"NAMED"}
    assert listed(a, device_id="NAMED")[0]["gateway"] == "edge-2.lb"
    assert inventory_status(a)["refused"] == len(bad)


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def skewed_gateway(nginx_factory, redis, directory, backend, monkeypatch,
                   offset):
    """A second gateway whose clock is OFFSET ("+3h", "-3h") off the
    real one (libfaketime, preloaded into its master only), once its
    workers are on Redis beside the first gateway's."""
    monkeypatch.setenv("LD_PRELOAD", FAKETIME)
    monkeypatch.setenv("FAKETIME", offset)
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    # read once: nginx's workers have no FAKETIME to read again
    monkeypatch.setenv("FAKETIME_CACHE_DURATION", "100000")
    nginx = gateway(nginx_factory, redis, directory, backend)
    monkeypatch.delenv("LD_PRELOAD")
    poll(lambda: clients(redis) >= 8 or None, "the skewed gateway on Redis")
    return nginx


@pytest.mark.skipif(not os.path.exists(FAKETIME),
                    reason="libfaketime (Debian package libfaketime)")
def test_deletion_on_a_gateway_ahead_keeps_no_device_out(
        nginx_factory, redis, directory, backend, monkeypatch):
    """Gateway A's clock runs three hours ahead (libfaketime): a device
    deleted through A is remembered on Redis at Redis's time, not A's,
    so when the device syncs again through B (a later second) B writes
    it again and every gateway lists it; it is not kept out of the
    listing for three hours while the backend sees it."""
    b, = gateways(nginx_factory, redis, directory, backend, 1)
    a = skewed_gateway(nginx_factory, redis, directory, backend, monkeypatch,
                       "+3h")
    assert device(b, "SKEWDEV").foldersync().status == 200
    poll(lambda: "SKEWDEV" in ids(a) or None, "SKEWDEV imported by A")
    assert delete(a, "jdoe", "SKEWDEV") == 200
    poll(lambda: "SKEWDEV" not in ids(b) or None, "SKEWDEV gone from B")
    score = redis.command("ZSCORE", "t:ix:devices",
                          "t:i:devices:4:jdoeskewdev")
    assert score is not None and float(score) <= time.time() + 5, score
    seen = int(time.time())
    poll(lambda: int(time.time()) > seen or None, "the next second")
    count = len(backend.requests)
    assert device(b, "SKEWDEV").foldersync().status == 200
    assert len(backend.requests) == count + 1
    poll(lambda: "SKEWDEV" in ids(b) or None, "SKEWDEV listed on B again")
    poll(lambda: redis.command("EXISTS", "t:i:devices:4:jdoeskewdev") == 1
         or None, "SKEWDEV's record on Redis again")


@pytest.mark.skipif(not os.path.exists(FAKETIME),
                    reason="libfaketime (Debian package libfaketime)")
def test_a_gateway_behind_writes_a_device_back_after_its_deletion(
        nginx_factory, redis, directory, backend, monkeypatch):
    """Gateway B's clock runs three hours behind (libfaketime): a device
    seen on B and deleted through A (the deletion at Redis's time) syncs
    again through B a second later; B's record of that request is seen
    after the deletion once B's clock is moved by how far it is from
    Redis's, so it is written back and A lists the device again, and it
    is not kept out of every listing for three hours while the backend
    sees it."""
    a, = gateways(nginx_factory, redis, directory, backend, 1)
    b = skewed_gateway(nginx_factory, redis, directory, backend, monkeypatch,
                       "-3h")
    assert device(b, "BEHINDDEV").foldersync().status == 200
    poll(lambda: "BEHINDDEV" in ids(a) or None, "BEHINDDEV imported by A")
    assert delete(a, "jdoe", "BEHINDDEV") == 200
    poll(lambda: "BEHINDDEV" not in ids(b) or None, "BEHINDDEV gone from B")
    seen = int(time.time())
    poll(lambda: int(time.time()) > seen + 1 or None, "a later second")
    assert device(b, "BEHINDDEV").foldersync().status == 200
    poll(lambda: "BEHINDDEV" in ids(a) or None, "BEHINDDEV listed on A again")
    assert "BEHINDDEV" in ids(b)
    assert redis.command("EXISTS", "t:i:devices:4:jdoebehinddev") == 1


@pytest.mark.parametrize("blip", ["kill", "pause", "reload", "flushall"])
def test_redis_restarted_empty_after_a_blip_refilled(
        nginx_factory, redis, directory, backend, blip):
    """A fill that read this gateway's own records back (its
    subscription made again after a blip, or a reload), then Redis
    restarted empty: the records stay this gateway's, and it writes
    them again, idle devices and their places in the user's set too.
    So it does when Redis lost its data with no connection of the
    gateway's workers dropped (FLUSHALL, then its subscription made
    again): only its first fill is not taken for a loss."""
    # flush=60s: no batch of last-seen times writes the records meanwhile
    a, = gateways(nginx_factory, redis, directory, backend, 1,
                  device_max="eas_device_max 2;", flush="60s")
    filled(a)
    assert device(a, "IDLEA").foldersync().status == 200
    assert device(a, "IDLEB").foldersync().status == 200
    poll(lambda: redis.command("ZCARD", "t:iz:devices") == 2 or None,
         "the records on Redis")
    assert sorted(redis.command("SMEMBERS", "t:d:devices:jdoe")) \
        == [b"idlea", b"idleb"]
    before = len(fills(a))
    if blip == "kill":
        redis.command("CLIENT", "KILL", "TYPE", "pubsub")
    elif blip == "reload":
        a.reload()
    elif blip == "pause":
        redis.command("CLIENT", "PAUSE", "3000", "ALL")
    filled(a, before + (blip != "flushall"))
    restarted_empty_refilled(redis, a, 2, flush=blip == "flushall")
