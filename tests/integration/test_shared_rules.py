"""Runtime rules (eas_admin_rules) shared by gateways through Redis
(eas_shared_state, docs/scale-out.md): a block made on one gateway's
admin API refuses the device on the others within moments, and nothing
of it reaches the backend through them afterwards (read from the
backend's own record, which names the gateway); an allow overrides a
configured block and a runtime one; a lost device gets "provision
first" everywhere; a rule removed on another gateway is lifted; a
gateway started later gets the rules; a change made while Redis is down
is in force at once where it was made and reaches the others when Redis
is back (even empty); a rule deleted while a gateway was away does not
come back from it; junk in the hash and on the channel is refused with
one line, and no worker dies.  Every gateway is a real nginx with two
workers, Redis a real redis-server on a loopback port."""

import json
import os
import re
import stat
import time
import urllib.error
import urllib.request

import pytest

from eastest.backends import EasBackend
from eastest import confs
from eastest.client import EasClient
from eastest.nginx import free_port
from eastest.waiting import poll

HASH = "t:r:rules"
CHANNEL = "t:db0:events"
USERS = "jdoe:{PLAIN}secret\namy:{PLAIN}apple\n" + "".join(
    "%s:{PLAIN}%s\n" % (f[1], f[3]) for f in confs.FOLDED_USERS)

NGINX_CONFIG = """
http {
    ${temp_paths}

    eas_shared_state ${redis_url} prefix=t: timeout=300ms
                     connect_timeout=300ms retry=200ms;

    eas_preauth_zone zone=auth:1m;
    eas_device_zone zone=devices:1m;
    eas_admin_rules zone=rules:64k file=${dir}/admin.rules;

    upstream backend {
        server 127.0.0.1:${backend_port};
    }

    server {
        listen 127.0.0.1:${port};
        add_header X-Worker $pid always;

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file ${dir}/users plain;
            eas_devices devices;
            eas_device_block device_id=ApplSTATIC;
            proxy_set_header X-Gateway ${name};
            proxy_pass http://backend;
        }

""" + confs.SHARED_STATUS_ADMIN + """    }
}
"""


@pytest.fixture
def backend():
    with EasBackend(hold_cap=0) as server:
        yield server


def gateway(nginx_factory, redis, backend, name, start=True,
            config=NGINX_CONFIG):
    port = free_port()
    nginx = nginx_factory(config, start=False, port=port,
                          redis_url=redis.url, backend_port=backend.port,
                          name=name)
    nginx.port = port
    with open(os.path.join(nginx.dir, "users"), "w", encoding="utf-8") as f:
        f.write(USERS)
    nginx.name = name
    if start:
        up(nginx, redis)
    return nginx


def up(nginx, redis):
    """Started, and both its workers subscribed to the channel."""
    before = subscribed(redis)
    nginx.start(ports=(nginx.port,))
    poll(lambda: subscribed(redis) >= before + 2 or None,
         "the subscriptions of %s" % nginx.name)


def subscribed(redis):
    return redis.command("PUBSUB", "NUMSUB", CHANNEL)[1]


def gateways(nginx_factory, redis, backend, count):
    out = [gateway(nginx_factory, redis, backend, name)
           for name in "ABC"[:count]]
    poll(lambda: subscribed(redis) >= 2 * count or None,
         "every worker subscribed")
    return out


def admin(nginx, method, path, expect=200):
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/%s" % (nginx.port, path),
        method=method, headers={"X-EAS-Admin": "1"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    assert status == expect, (status, body)
    return json.loads(body)


def device(nginx, device_id, user="jdoe", password="secret"):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user, password=password,
                     device_id=device_id, timeout=20)


def synced(nginx, device_id, **kw):
    """The Sync's answer: 200 and its Status, as the device sees it."""
    reply = device(nginx, device_id, **kw).sync()
    return reply.status, reply.eas_status()


def blocked(nginx, device_id, **kw):
    return synced(nginx, device_id, **kw) == (200, 129)


def passes(nginx, device_id, **kw):
    status, eas = synced(nginx, device_id, **kw)
    return status == 200 and eas != 129


def on_both_workers(nginx, action):
    """action(nginx) until both workers answered; the results."""
    results, workers = [], set()
    deadline = time.monotonic() + 20
    while len(workers) < 2 and time.monotonic() < deadline \
            and len(results) < 200:
        reply = action()
        results.append(reply)
        workers.add(reply.header("X-Worker"))
    assert len(workers) == 2, "never reached a second worker"
    return results


def through(backend, nginx, device_id):
    """Requests of device_id the backend got through gateway nginx."""
    return [r for r in backend.requests
            if r.eas.device_id == device_id
            and r.header("X-Gateway") == nginx.name]


def rules(nginx):
    return {(r.get("device_id") or r.get("user")): r
            for r in admin(nginx, "GET", "rules")["rules"]}


def rules_file(nginx):
    try:
        with open(os.path.join(nginx.dir, "admin.rules")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def file_has(nginx, pattern):
    """The rules file matching pattern (a regex, per line): a change of
    another gateway is written within a second."""
    return poll(lambda: re.search(pattern, rules_file(nginx), re.M),
                "%s in the file of %s" % (pattern, nginx.name))


def lines(nginx, mark, text):
    return [line for line in nginx.error_lines_since(mark) if text in line]


def test_block_on_one_gateway_refused_on_the_others(nginx_factory, redis,
                                                    backend):
    """A block on A: B and C refuse the device within moments, on both
    workers, and from then on the backend gets nothing of it through
    them; their own rules file and listing have it, by A's admin."""
    a, b, c = gateways(nginx_factory, redis, backend, 3)
    for nginx in (a, b, c):
        assert passes(nginx, "ApplSHARED1")
    assert admin(a, "POST", "rules?access=block&device_id=ApplSHARED1") \
        == {"ok": True, "shared": True}
    assert blocked(a, "ApplSHARED1")
    for nginx in (b, c):
        poll(lambda: blocked(nginx, "ApplSHARED1"), "the block on %s"
             % nginx.name, interval=0.02)
        before = len(through(backend, nginx, "ApplSHARED1"))
        replies = on_both_workers(
            nginx, lambda: device(nginx, "ApplSHARED1").sync())
        assert {(r.status, r.eas_status()) for r in replies} == {(200, 129)}
        assert len(through(backend, nginx, "ApplSHARED1")) == before
        rule = rules(nginx)["ApplSHARED1"]
        assert rule["access"] == "block" and rule["by"] == "127.0.0.1"
        file_has(nginx, r'^block device_id="ApplSHARED1"  # eas_admin '
                        r'rule \d+\.\d{3} 127\.0\.0\.1$')
        assert lines(nginx, 0, 'rule of device_id "ApplSHARED1" set to '
                               'block by another gateway')
    # another device of the user is not concerned
    assert passes(b, "ApplOTHER")
    # the hash on Redis holds the rule
    value = redis.command("HGET", HASH, "dapplshared1").decode()
    assert re.match(r"^block \d+ 9 127\.0\.0\.1ApplSHARED1$", value), value


def test_allow_overrides_configured_and_runtime_blocks(nginx_factory,
                                                       redis, backend):
    """An allow made on B lets through, on A, a device the configuration
    blocks (eas_device_block) and one a runtime block on A refused; a
    user block on A is refused on B, and an allow of one of the user's
    devices overrides it there."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    assert blocked(a, "ApplSTATIC")
    admin(b, "POST", "rules?access=allow&device_id=ApplSTATIC")
    poll(lambda: passes(a, "ApplSTATIC"), "the allow on A")

    admin(a, "POST", "rules?access=block&device_id=ApplRUN")
    poll(lambda: blocked(b, "ApplRUN"), "the block on B")
    admin(b, "POST", "rules?access=allow&device_id=ApplRUN")
    poll(lambda: passes(a, "ApplRUN"), "the allow overriding it on A")
    assert rules(a)["ApplRUN"]["access"] == "allow"

    admin(a, "POST", "rules?access=block&user=amy")
    poll(lambda: blocked(b, "ApplAMY1", user="amy", password="apple"),
         "the user's block on B")
    admin(a, "POST", "rules?access=allow&device_id=ApplAMY2")
    poll(lambda: passes(b, "ApplAMY2", user="amy", password="apple"),
         "the device's allow over the user's block on B")
    assert blocked(b, "ApplAMY1", user="amy", password="apple")


def test_lost_mode_on_every_gateway(nginx_factory, redis, backend):
    """"lost" set on A: on B the device's Sync is answered "provision
    first" at the edge (nothing reaches the backend), its Provision goes
    through (a remote wipe pending at the backend reaches it)."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    admin(a, "POST", "rules?access=lost&device_id=ApplLOSTX")
    poll(lambda: device(b, "ApplLOSTX").sync().eas_status() == 142 or None,
         "provision first on B")
    before = len(through(backend, b, "ApplLOSTX"))
    assert device(b, "ApplLOSTX").sync().eas_status() == 142
    assert len(through(backend, b, "ApplLOSTX")) == before
    assert device(b, "ApplLOSTX").provision().status == 200
    assert [r.eas.command for r in through(backend, b, "ApplLOSTX")][
        before:] == ["Provision"]
    assert rules(b)["ApplLOSTX"]["access"] == "lost"
    file_has(b, "# eas_admin lost ")


def test_delete_on_one_gateway_lifts_on_the_other(nginx_factory, redis,
                                                  backend):
    """Blocked on A, removed on B (under another case): A lets the device
    through again, and its listing and file no longer have the rule (the
    file keeps the deletion as a comment)."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    admin(a, "POST", "rules?access=block&device_id=ApplDEL")
    poll(lambda: blocked(b, "ApplDEL"), "the block on B")
    admin(b, "DELETE", "rules?device_id=appldel")
    poll(lambda: passes(a, "ApplDEL"), "the block lifted on A")
    assert "ApplDEL" not in rules(a)
    file_has(a, r'^# deleted device_id="ApplDEL"  # eas_admin none '
                r'\d+\.\d{3} 127\.0\.0\.1$')
    text = rules_file(a)
    assert not re.search(r"^block ", text, re.M), text
    admin(a, "DELETE", "rules?device_id=ApplDEL", expect=404)
    value = redis.command("HGET", HASH, "dappldel").decode()
    assert value.startswith("none "), value


def test_a_gateway_started_later_gets_the_rules(nginx_factory, redis,
                                                backend):
    """Rules made on A before B existed: B refuses from its start, and
    writes them to its own file (so that it has them even if it is
    restarted while Redis is down)."""
    a, = gateways(nginx_factory, redis, backend, 1)
    admin(a, "POST", "rules?access=block&device_id=ApplEARLY")
    admin(a, "POST", "rules?access=block&user=amy")
    b = gateway(nginx_factory, redis, backend, "B")
    poll(lambda: "ApplEARLY" in rules(b) and "amy" in rules(b) or None,
         "the rules on B")
    assert blocked(b, "ApplEARLY")
    assert blocked(b, "ApplAMY", user="amy", password="apple")
    assert through(backend, b, "ApplEARLY") == []
    poll(lambda: 'device_id="ApplEARLY"' in rules_file(b), "B's file")

    # B restarted while Redis is down: its file has them
    redis.stop()
    b.stop()
    b.start(ports=(b.port,))
    assert blocked(b, "ApplEARLY")
    assert through(backend, b, "ApplEARLY") == []


def test_change_while_redis_is_down_reaches_the_others(nginx_factory,
                                                       redis, backend):
    """Redis killed; a block made on A is in force on A at once (a lost
    phone must be blocked now), A says it goes to the others later;
    Redis restarted empty: B converges, and the hash has the rule
    again."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    assert passes(b, "ApplDOWN")
    redis.stop()
    poll(lambda: lines(a, 0, "is down") or None, "A sees Redis down")
    mark = a.mark()
    # answered at once, saying the others do not have it yet
    assert admin(a, "POST", "rules?access=block&device_id=ApplDOWN") == \
        {"ok": True, "shared": False}
    assert blocked(a, "ApplDOWN")
    poll(lambda: lines(a, mark, 'shared state did not take the change of '
                                'device_id "ApplDOWN": in force on this '
                                'gateway, sent to the others when Redis is '
                                'back'), "the line saying so")
    assert passes(b, "ApplDOWN")       # B cannot know yet
    redis.start()
    poll(lambda: blocked(b, "ApplDOWN"), "the block on B after Redis")
    assert redis.command("HGET", HASH, "dappldown").decode().startswith(
        "block ")


def test_rule_deleted_while_a_gateway_was_away_does_not_come_back(
        nginx_factory, redis, backend):
    """B stopped with a block in its file; the rule is removed on A; B
    started again pushes what it has, but the deletion is newer: B drops
    the rule, and A does not get it back.  Then the same with Redis
    down and restarted empty meanwhile: the deletion A kept wins over
    the rule B kept."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    admin(a, "POST", "rules?access=block&device_id=ApplAWAY")
    poll(lambda: blocked(b, "ApplAWAY"), "the block on B")
    poll(lambda: 'device_id="ApplAWAY"' in rules_file(b), "B's file")
    b.stop()
    admin(a, "DELETE", "rules?device_id=ApplAWAY")
    assert passes(a, "ApplAWAY")
    assert rules_file(b).startswith("# eas_admin_rules")
    assert re.search(r'^block device_id="ApplAWAY"', rules_file(b), re.M)
    up(b, redis)
    poll(lambda: passes(b, "ApplAWAY"), "the rule dropped on B")
    assert "ApplAWAY" not in rules(b)
    assert passes(a, "ApplAWAY") and "ApplAWAY" not in rules(a)

    # the deletion lost by Redis: A's kept deletion still wins
    admin(a, "POST", "rules?access=block&device_id=ApplAWAY2")
    poll(lambda: blocked(b, "ApplAWAY2"), "the second block on B")
    file_has(b, '^block device_id="ApplAWAY2"')
    b.stop()
    redis.stop()
    admin(a, "DELETE", "rules?device_id=ApplAWAY2")
    redis.start()                      # empty: no deletion there
    up(b, redis)                       # B pushes its block first
    poll(lambda: subscribed(redis) >= 4 or None, "every worker back")
    poll(lambda: passes(b, "ApplAWAY2"), "the deletion on B")
    assert passes(a, "ApplAWAY2")
    assert redis.command("HGET", HASH, "dapplaway2").decode().startswith(
        "none ")


def publish(redis, field, value, zone="rules"):
    """An "R" message as a gateway "other" would send it."""
    redis.command("PUBLISH", CHANNEL, "R other 0 0 %d %d %s%s%s"
                  % (len(zone), len(field), zone, field, value))


JUNK_FIELDS = [
    ("dapplj1", "maybe 1 0 ApplJ1"),                    # no such access
    ("dapplj2", "block 9999999999999999 0 ApplJ2"),      # past any clock
    ("dapplj3", "block 1 0 ApplOTHER"),                  # not its key
    ("dapplj4", "block 1 1 \"ApplJ4"),                   # who unquotable
    ("d~pplj5", "block 1 0 ~pplj5"),                     # a pattern
    ("ujdoe", "lost 1 0 jdoe"),                          # lost for a user
    ("xapplj6", "block 1 0 ApplJ6"),                     # no such field
    ("dapplj7", "block 1 999 ApplJ7"),                   # who too long
    ("dapplj8", "block"),                                # cut short
    ("dapplj9", "block 1 0 appl\x01j9"),                 # control byte
]


def test_junk_in_the_hash_and_on_the_channel(nginx_factory, redis,
                                             backend):
    """Entries in the hash and "R" messages on the channel that the admin
    API would not take are refused, said once a minute per worker, and
    the gateways keep serving; an entry larger than a reply may be is
    left out without dropping the connection; a good rule written the
    same way still works (Redis is trusted, the shape is checked)."""
    for field, value in JUNK_FIELDS:
        redis.command("HSET", HASH, field, value)
    # larger than a reply may be: left out on Redis, not read whole
    redis.command("HSET", HASH, "dapplhuge", "block 1 0 " + "x" * 100000)
    now = int(time.time() * 1000)
    redis.command("HSET", HASH, "dapplgood", "block %d 5 adminApplGOOD"
                  % now)
    a, = gateways(nginx_factory, redis, backend, 1)
    poll(lambda: lines(a, 0, "the rules' hash refused") or None,
         "the junk in the hash refused")
    poll(lambda: blocked(a, "ApplGOOD"), "the good rule")
    for i in range(1, 10):
        assert passes(a, "ApplJ%d" % i)
    assert passes(a, "ApplOTHER")
    assert set(rules(a)) == {"ApplGOOD"}
    assert not lines(a, 0, "connection dropped")
    assert not lines(a, 0, "is down")

    mark = a.mark()
    for field, value in JUNK_FIELDS:
        publish(redis, field, value)
    redis.command("PUBLISH", CHANNEL, "R other 0 0 5 99 rules")
    redis.command("PUBLISH", CHANNEL, "R other 0 0 5 0 rules")
    publish(redis, "dapplj1", "block %d 0 ApplJ1" % now, zone="other")
    redis.command("HSET", HASH, "dapplj2", "block %d 0 ApplJ2" % now)
    publish(redis, "dapplj2", "none 1 0 ApplJ2")     # the hash's is read
    poll(lambda: blocked(a, "ApplJ2"), "the good message")
    for i in (1, 3, 4, 5, 6, 7, 8, 9):
        assert passes(a, "ApplJ%d" % i)
    assert set(rules(a)) == {"ApplGOOD", "ApplJ2"}
    # at most one line a minute per worker (two workers), junk or not
    assert 1 <= len(lines(a, 0, "refused")) <= 4
    assert device(a, "ApplANY").options().status == 200


def test_last_change_through_redis_wins_whatever_the_clocks(nginx_factory,
                                                            redis, backend):
    """A rule on Redis stamped half an hour ahead (a gateway whose clock
    runs fast made it): a removal made afterwards on A, whose clock is
    behind, is made newer by Redis, and wins on A and B alike."""
    ahead = int(time.time() * 1000) + 30 * 60 * 1000
    redis.command("HSET", HASH, "dapplfast", "block %d 4 fastApplFAST"
                  % ahead)
    a, b = gateways(nginx_factory, redis, backend, 2)
    for nginx in (a, b):
        poll(lambda: blocked(nginx, "ApplFAST"), "the rule on %s"
             % nginx.name)
    admin(a, "DELETE", "rules?device_id=ApplFAST")
    poll(lambda: passes(b, "ApplFAST"), "the removal on B")
    value = redis.command("HGET", HASH, "dapplfast").decode()
    assert value.startswith("none %d " % (ahead + 1)), value
    assert passes(a, "ApplFAST")
    # A's own zone took Redis's time silently: restarting the
    # reconciliation changes nothing
    mark = a.mark()
    a.stop()
    up(a, redis)
    assert passes(a, "ApplFAST")
    assert not lines(a, mark, "by another gateway")


def test_requests_never_ask_redis_about_rules(nginx_factory, redis,
                                              backend):
    """The warm path stays local: with rules in force (a user allowed, a
    device blocked), requests decided by them, their credentials cached,
    send no command to Redis (the gateway's own count of commands)."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    admin(a, "POST", "rules?access=allow&user=amy")
    admin(a, "POST", "rules?access=block&device_id=ApplWARM2")
    poll(lambda: {"amy", "ApplWARM2"} <= set(rules(b)) or None,
         "the rules on B")
    for device_id in ("ApplWARM1", "ApplWARM2"):     # credentials cached
        on_both_workers(b, lambda: device(b, device_id, user="amy",
                                          password="apple").sync())
    before = commands(b)
    for _ in range(10):
        assert passes(b, "ApplWARM1", user="amy", password="apple")
        assert blocked(b, "ApplWARM2", user="amy", password="apple")
    assert commands(b) == before


def commands(nginx):
    with urllib.request.urlopen("http://127.0.0.1:%d/eas/status"
                                % nginx.port, timeout=10) as reply:
        return json.loads(reply.read())["shared_state"]["commands"]


def test_a_message_never_written_to_the_hash_changes_nothing(
        nginx_factory, redis, backend):
    """A forged "R" message removing a block, stamped far ahead, that no
    gateway wrote to the hash: B reads the rule from the hash and keeps
    the block; A's re-block, and every later change, reaches B; a
    resubscription does not push any forged removal into Redis."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    # answered once Redis took and published it
    assert admin(a, "POST", "rules?access=block&device_id=ApplFORGE") == \
        {"ok": True, "shared": True}
    poll(lambda: blocked(b, "ApplFORGE"), "the block on B")
    ahead = int(time.time() * 1000) + 20 * 60 * 1000
    publish(redis, "dapplforge", "none %d 0 ApplFORGE" % ahead)
    publish(redis, "dapplnew", "block %d 0 ApplNEW" % ahead)
    # a real change sent after them: they were handled when it is there
    admin(a, "POST", "rules?access=block&device_id=ApplMARK")
    poll(lambda: blocked(b, "ApplMARK"), "the later change on B")
    assert blocked(b, "ApplFORGE")
    assert passes(b, "ApplNEW")
    assert "ApplNEW" not in rules(b) and "ApplNEW" not in rules(a)
    admin(a, "POST", "rules?access=allow&device_id=ApplFORGE")
    poll(lambda: passes(b, "ApplFORGE"), "the next change on B")
    b.stop()
    up(b, redis)
    poll(lambda: subscribed(redis) >= 4 or None, "every worker back")
    assert redis.command("HGET", HASH, "dapplforge").decode().startswith(
        "allow ")
    assert redis.command("HGET", HASH, "dapplnew") is None


def test_a_flood_of_forged_messages_changes_nothing(nginx_factory, redis,
                                                    backend):
    """Thousands of well-formed "R" messages for rules no gateway wrote,
    many naming the same key: nothing is applied, the rules file and
    listing stay as they were, a real change made after the flood
    reaches the other gateway, and no worker dies."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    admin(a, "POST", "rules?access=block&device_id=ApplKEEP")
    poll(lambda: blocked(b, "ApplKEEP"), "the block on B")
    ahead = int(time.time() * 1000) + 3600 * 1000
    script = ("for i = 1, tonumber(ARGV[2]) do "
              "  local f = 'dapplf' .. (i % 3000) "
              "  redis.call('PUBLISH', ARGV[1], 'R other 0 0 5 ' .. #f .. "
              "    ' rules' .. f .. 'block ' .. ARGV[3] .. ' 0 ApplF' .. "
              "    (i % 3000)) "
              "  redis.call('PUBLISH', ARGV[1], 'R other 0 0 5 9 "
              "rulesdapplkeepnone ' .. ARGV[3] .. ' 0 ApplKEEP') "
              "end return 1")
    redis.command("EVAL", script, "0", CHANNEL, "6000", str(ahead))
    admin(a, "POST", "rules?access=block&device_id=ApplAFTER")
    poll(lambda: blocked(b, "ApplAFTER"), "the change after the flood",
         timeout=60)
    assert blocked(b, "ApplKEEP")
    assert passes(b, "ApplF7")
    assert set(rules(b)) == {"ApplKEEP", "ApplAFTER"}
    poll(lambda: 'device_id="ApplAFTER"' in rules_file(b), "B's file")
    assert "ApplF" not in rules_file(b)


def test_a_change_made_after_seeing_a_clock_ahead_wins(nginx_factory,
                                                       redis, backend):
    """A rule stamped half an hour ahead (made by a gateway whose clock
    runs fast, within the hour allowed) is taken by every gateway; Redis
    goes down; on A, which saw that rule, "lost" for one device and a
    removal for another are stamped above it (a hybrid logical clock);
    Redis comes back empty and B pushes its older rules first: A's later
    changes win on Redis and on B."""
    ahead = int(time.time() * 1000) + 30 * 60 * 1000
    for key, value in (("dapplhlc1", "allow %d 1 CApplHLC1"),
                       ("dapplhlc2", "block %d 1 CApplHLC2")):
        redis.command("HSET", HASH, key, value % ahead)
    a, b = gateways(nginx_factory, redis, backend, 2)
    for nginx in (a, b):
        poll(lambda: blocked(nginx, "ApplHLC2"), "the rules on %s"
             % nginx.name)
    b.stop()
    redis.stop()
    assert admin(a, "POST", "rules?access=lost&device_id=ApplHLC1") == \
        {"ok": True, "shared": False}
    admin(a, "DELETE", "rules?device_id=ApplHLC2")
    assert device(a, "ApplHLC1").sync().eas_status() == 142
    assert passes(a, "ApplHLC2")
    redis.start()                      # empty
    up(b, redis)                       # B pushes its older rules
    poll(lambda: subscribed(redis) >= 4 or None, "every worker back")
    poll(lambda: device(b, "ApplHLC1").sync().eas_status() == 142 or None,
         "A's lost on B")
    poll(lambda: passes(b, "ApplHLC2"), "A's removal on B")
    lost = redis.command("HGET", HASH, "dapplhlc1").decode().split()
    assert lost[0] == "lost" and int(lost[1]) > ahead, lost
    assert redis.command("HGET", HASH, "dapplhlc2").decode().startswith(
        "none ")
    assert device(a, "ApplHLC1").sync().eas_status() == 142
    assert passes(a, "ApplHLC2")




def test_user_rules_fold_as_requests_do(nginx_factory, redis, backend):
    """A user block given with non-ASCII capitals, a compatibility form
    or a domain is kept as the identity requests are folded to (the
    listing, the file and the hash say so): every spelling of that user
    is refused on the gateway that took it and on the other, nothing of
    it reaches the backend; removed under another spelling, it is
    lifted; a user that is no identity is refused."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    for given, identity, _, _ in confs.FOLDED_USERS:
        admin(a, "POST", "rules?access=block&user=" + given)
    poll(lambda: {f[1] for f in confs.FOLDED_USERS} <= set(rules(b)) or None,
         "the rules on B")
    assert {f[1] for f in confs.FOLDED_USERS} == set(rules(a)) == set(rules(b))
    for _, identity, spellings, password in confs.FOLDED_USERS:
        for nginx in (a, b):
            for i, sent in enumerate(spellings):
                device_id = "ApplFOLD%s%d" % (nginx.name, i)
                assert blocked(nginx, device_id, user=sent,
                               password=password), (nginx.name, sent)
        assert redis.command("HGET", HASH, "u" + identity) is not None
    assert not [r for r in backend.requests
                if r.eas.device_id.startswith("ApplFOLD")]
    file_has(b, '^block user="strasse"')
    admin(b, "DELETE", "rules?user=%C3%B6ZiL")
    poll(lambda: passes(a, "ApplFOLDX", user="\u00d6ZIL",
                        password="pw-ozil"), "the removal on A")
    admin(a, "POST", "rules?access=block&user=%FF%FE", expect=400)


FILL = ("for i = 1, tonumber(ARGV[1]) do "
        "  redis.call('HSET', KEYS[1], 'dapplfill' .. i, "
        "    'none ' .. ARGV[2] .. ' 0 ApplFILL' .. i) "
        "  redis.call('HSET', KEYS[1], 'djunk' .. i, 'junk ' .. i) "
        "end return 1")


def test_removals_never_take_the_place_of_a_rule(nginx_factory, redis,
                                                 backend):
    """A hash holding thousands of removals (more than the zone holds)
    and as many junk entries: the gateway reads it without one line per
    entry (no slab allocator line; the junk said once a minute), and a
    rule made then still gets its place (the oldest removals make room);
    a removal older than keep_removals (30 days by default) is no
    longer kept: dropped from the hash, not taken into the zone."""
    now = int(time.time() * 1000)
    redis.command("EVAL", FILL, "1", HASH, "1500", str(now - 60000))
    old = now - 31 * 86400 * 1000
    redis.command("HSET", HASH, "dapplold", "none %d 0 ApplOLD" % old)
    a, = gateways(nginx_factory, redis, backend, 1)
    poll(lambda: lines(a, 0, "the rules' hash refused") or None,
         "the junk refused")
    poll(lambda: redis.command("HGET", HASH, "dapplold") is None or None,
         "the old removal dropped from the hash")
    assert admin(a, "POST", "rules?access=lost&device_id=ApplROOM") \
        == {"ok": True, "shared": True}
    assert device(a, "ApplROOM").sync().eas_status() == 142
    assert admin(a, "POST", "rules?access=block&user=amy") == \
        {"ok": True, "shared": True}
    assert blocked(a, "ApplAMY", user="amy", password="apple")
    assert not lines(a, 0, "ngx_slab_alloc() failed")
    assert len(lines(a, 0, "refused")) <= 4
    file_has(a, 'device_id="ApplROOM"')
    assert "ApplOLD" not in rules_file(a)


def test_a_change_made_while_redis_is_paused_wins_over_a_clock_ahead(
        nginx_factory, redis, backend):
    """A rule set through B, stamped half an hour ahead (B's clock runs
    fast), reaches A; Redis pauses its writers (CLIENT PAUSE) longer
    than the gateways wait: "lost" set on A then is answered as not
    shared yet, and retried; after the pause A's later change, stamped
    above the rule it saw, is on Redis and on B."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    ahead = int(time.time() * 1000) + 30 * 60 * 1000
    redis.command("HSET", HASH, "dapplpause", "allow %d 1 BApplPAUSE"
                  % ahead)
    publish(redis, "dapplpause", "")
    for nginx in (a, b):
        poll(lambda: "ApplPAUSE" in rules(nginx) or None,
             "the allow on %s" % nginx.name)
    redis.command("CLIENT", "PAUSE", "2000", "WRITE")
    assert admin(a, "POST", "rules?access=lost&device_id=ApplPAUSE") == \
        {"ok": True, "shared": False}
    poll(lambda: device(b, "ApplPAUSE").sync().eas_status() == 142 or None,
         "A's lost on B after the pause")
    value = redis.command("HGET", HASH, "dapplpause").decode().split()
    assert value[0] == "lost" and int(value[1]) > ahead, value
    assert device(a, "ApplPAUSE").sync().eas_status() == 142


BURST = ("for i = 1, tonumber(ARGV[2]) do "
         "  local f = 'dapplburst' .. i "
         "  redis.call('PUBLISH', ARGV[1], 'R other 0 0 5 ' .. #f .. "
         "    ' rules' .. f .. 'block 1 0 ApplBURST' .. i) "
         "end return 1")


def test_a_burst_of_forged_messages_and_a_huge_entry_keep_redis_up(
        nginx_factory, redis, backend):
    """Hundreds of forged "R" messages for keys not in the hash (read
    together, many keys a command), and one naming an entry of 1 MiB:
    the reads' replies stay within what the reader takes, so no worker
    drops its connection, the admin API's changes are shared, and a
    change made after them reaches the other gateway."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    redis.command("HSET", HASH, "dapplmib", "block 1 0 " + "x" * (1 << 20))
    marks = [a.mark(), b.mark()]
    for _ in range(3):
        redis.command("EVAL", BURST, "0", CHANNEL, "400")
        publish(redis, "dapplmib", "")
        assert admin(a, "POST", "rules?access=block&device_id=ApplBURST") \
            == {"ok": True, "shared": True}
        poll(lambda: blocked(b, "ApplBURST"), "the change after the burst")
        assert admin(b, "DELETE", "rules?device_id=ApplBURST") \
            == {"ok": True, "shared": True}
        poll(lambda: passes(a, "ApplBURST"), "the removal on A")
    for nginx, mark in zip((a, b), marks):
        assert not lines(nginx, mark, "is down"), nginx.name
        assert not lines(nginx, mark, "connection dropped"), nginx.name
        assert not lines(nginx, mark, "ApplBURST1")
    assert passes(b, "ApplBURST7")
    assert passes(b, "ApplMIB")


KEEP_2S = NGINX_CONFIG.replace("zone=rules:64k",
                               "zone=rules:64k keep_removals=2s")


def test_a_stamp_years_ahead_pins_nothing(nginx_factory, redis, backend):
    """A rule on Redis stamped eleven years ahead (forged, or a clock run
    wild) is taken like any other: the admin API still overrides it on
    every gateway; a removal made after it (stamped above it) is kept
    for keep_removals by the gateway's own clock, then expires from the
    zone and file; the listing's since is the wall clock's."""
    ahead = int(time.time() * 1000) + 11 * 366 * 86400 * 1000
    redis.command("HSET", HASH, "dapplyears", "block %d 5 adminApplYEARS"
                  % ahead)
    a, b = [gateway(nginx_factory, redis, backend, name, config=KEEP_2S)
            for name in "AB"]
    poll(lambda: subscribed(redis) >= 4 or None, "every worker")
    for nginx in (a, b):
        poll(lambda: blocked(nginx, "ApplYEARS"), "the forged rule on %s"
             % nginx.name)
        since = rules(nginx)["ApplYEARS"]["since"]
        assert abs(since - time.time()) < 3600, since
    assert admin(a, "DELETE", "rules?device_id=ApplYEARS") == \
        {"ok": True, "shared": True}
    poll(lambda: passes(b, "ApplYEARS"), "the removal on B")
    # a time far ahead is no real change: the removal has the clock's
    value = redis.command("HGET", HASH, "dapplyears").decode()
    assert value.startswith("none ")
    assert abs(int(value.split()[1]) - time.time() * 1000) < 3600 * 1000
    for nginx in (a, b):
        file_has(nginx, r'^# deleted device_id="ApplYEARS"')
    # a later change makes each gateway write its file: the removal,
    # kept 2 s by the gateways' clocks, is gone from it then
    n = [0]

    def expired(nginx):
        n[0] += 1
        admin(a, "POST", "rules?access=block&device_id=ApplTICK%d" % n[0])
        return "ApplYEARS" not in rules_file(nginx)

    for nginx in (a, b):
        poll(lambda: expired(nginx), "the removal expired on %s"
             % nginx.name, timeout=30, interval=1)
    assert passes(a, "ApplYEARS") and passes(b, "ApplYEARS")
    poll(lambda: blocked(b, "ApplTICK%d" % n[0]), "a later change on B")


GONE = ("for i = 1, tonumber(ARGV[2]) do "
        "  local f = 'dapplgone' .. i "
        "  redis.call('HSET', KEYS[1], f, 'none ' .. ARGV[3] .. ' 0 ApplGONE'"
        "    .. i) "
        "  redis.call('PUBLISH', ARGV[1], 'R other 0 0 5 ' .. #f .. "
        "    ' rules' .. f) "
        "end return 1")


def test_removals_of_rules_not_held_say_nothing(nginx_factory, redis,
                                                backend):
    """A hundred removals, on Redis and announced, of rules the
    gateway never had: kept (a late block of the same key stays older),
    but not one line each; the removal of a rule it held is still said
    once.  More removals than the zone holds: the line says the zone is
    full of removals, and a rule still gets its place."""
    a, = gateways(nginx_factory, redis, backend, 1)
    admin(a, "POST", "rules?access=block&device_id=ApplHELD")
    mark = a.mark()
    now = int(time.time() * 1000)
    redis.command("EVAL", GONE, "1", HASH, CHANNEL, "100", str(now))
    redis.command("HSET", HASH, "dapplheld", "none %d 1 BApplHELD"
                  % (now + 1000))
    publish(redis, "dapplheld", "")
    poll(lambda: passes(a, "ApplHELD"), "the removal of a rule held")
    file_has(a, r'^# deleted device_id="ApplGONE100"')
    assert len(lines(a, mark, "removed by another gateway")) == 1
    publish(redis, "dapplgone7", "block %d 0 ApplGONE7" % (now - 1000))
    assert passes(a, "ApplGONE7")
    # more removals than the zone holds: what is full is said
    redis.command("EVAL", GONE, "1", HASH, CHANNEL, "400", str(now))
    poll(lambda: lines(a, mark, "no room to keep a removal"),
         "the zone full of removals said")
    assert not lines(a, mark, "even without the removals kept")
    assert admin(a, "POST", "rules?access=block&device_id=ApplROOM2") == \
        {"ok": True, "shared": True}


def test_a_gateway_away_past_keep_removals_agrees_with_the_others(
        nginx_factory, redis, backend):
    """keep_removals=2s: a block reaches B; B stops; the block is removed
    on A; B comes back after the removal expired.  The fleet agrees:
    the removal still on Redis (expired, dropped from the hash as it is
    read) makes B drop its older block, as A and the hash did.  Then the
    removal already gone from the hash and from A's file: B's block
    comes back everywhere, and is removable anywhere.  (B's two workers
    reconcile each: the second may push the block after the first read
    the expired removal; then it is back everywhere, as consistent.)"""
    a, b = [gateway(nginx_factory, redis, backend, name, config=KEEP_2S)
            for name in "AB"]
    poll(lambda: subscribed(redis) >= 4 or None, "every worker")
    for device_id, field in (("ApplPAST", "dapplpast"),
                             ("ApplPAST2", "dapplpast2")):
        admin(a, "POST", "rules?access=block&device_id=%s" % device_id)
        poll(lambda: blocked(b, device_id), "the block on B")
        file_has(b, '^block device_id="%s"' % device_id)
        b.stop()
        admin(a, "DELETE", "rules?device_id=%s" % device_id)
        gone = time.time() + 2.5
        poll(lambda: time.time() > gone, "keep_removals past")
        if device_id == "ApplPAST2":
            # the hash dropped the removal (A reconciled), A's file too
            redis.command("HDEL", HASH, field)
            admin(a, "POST", "rules?access=block&device_id=ApplTOUCH")
            poll(lambda: device_id not in rules_file(a), "A's file")
        up(b, redis)
        poll(lambda: subscribed(redis) >= 4 or None, "every worker back")
        if device_id == "ApplPAST":
            # dropped by B as the removal is read; or, if B's other
            # worker pushed the rule after the hash dropped the removal,
            # back everywhere: the fleet agrees either way
            def agreed():
                held = [device_id in rules(n) for n in (a, b)]
                entry = redis.command("HGET", HASH, field)
                on_redis = entry is not None \
                    and entry.decode().startswith("block ")
                return held[0] == held[1] == on_redis and [on_redis]

            back, = poll(agreed, "the fleet agreeing")
            if not back:
                assert passes(b, device_id) and passes(a, device_id)
            else:
                assert blocked(a, device_id)
                admin(a, "DELETE", "rules?device_id=%s" % device_id)
                poll(lambda: passes(b, device_id), "the removal on B")
        else:
            poll(lambda: blocked(a, device_id), "the rule back on A")
            assert device_id in rules(a) and device_id in rules(b)
            assert redis.command("HGET", HASH, field).decode() \
                .startswith("block ")
            assert admin(a, "DELETE", "rules?device_id=%s" % device_id) \
                == {"ok": True, "shared": True}
            poll(lambda: passes(b, device_id), "the removal on B")


def test_a_change_made_newer_by_redis_lists_alike_everywhere(
        nginx_factory, redis, backend):
    """An entry on Redis stamped half an hour ahead that A never heard
    of: A's block of the same device is made newer than it by Redis, and
    A's zone takes that time too; every gateway lists the block since
    the same wall-clock time (when it was made), not the stamp."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    ahead = int(time.time() * 1000) + 30 * 60 * 1000
    redis.command("HSET", HASH, "dapplstamp", "allow %d 1 BApplSTAMP"
                  % ahead)
    assert admin(a, "POST", "rules?access=block&device_id=ApplSTAMP") == \
        {"ok": True, "shared": True}
    value = redis.command("HGET", HASH, "dapplstamp").decode().split()
    assert value[0] == "block" and int(value[1]) == ahead + 1, value
    poll(lambda: blocked(b, "ApplSTAMP"), "the block on B")
    since = [rules(nginx)["ApplSTAMP"]["since"] for nginx in (a, b)]
    assert abs(since[0] - since[1]) <= 2, since
    assert abs(since[1] - time.time()) < 60, since
    stamp = "%d.%03d" % divmod(ahead + 1, 1000)
    n = [0]

    def written():
        n[0] += 1
        admin(a, "POST", "rules?access=block&device_id=ApplNEXT%d" % n[0])
        return stamp in rules_file(a)

    poll(written, "Redis's time in A's file", interval=0.5)


def test_a_rule_forged_at_the_largest_time_is_lifted_anywhere(
        nginx_factory, redis, backend):
    """A rule forged on Redis at the largest time a gateway takes (15
    digits): every later change of every other rule is still stamped by
    the clock and shared, both ways (a clock per rule: the forged time
    moves that rule's times only).  The forged rule itself is no real
    change (more than an hour ahead of Redis's clock and of the
    gateways'): in force on A and B, said once as a time far ahead, and
    lifted from A's admin API, answered as shared: the device goes
    through A and B again (the backend's own record), Redis holds the
    removal at a real time, and a later block of it is shared too."""
    top = 999999999999999
    redis.command("HSET", HASH, "dapplpin", "block %d 5 adminApplPIN" % top)
    a, b = gateways(nginx_factory, redis, backend, 2)
    for nginx in (a, b):
        poll(lambda: blocked(nginx, "ApplPIN"), "the forged rule on %s"
             % nginx.name)
    assert admin(a, "POST", "rules?access=block&device_id=ApplAFTER") == \
        {"ok": True, "shared": True}
    poll(lambda: blocked(b, "ApplAFTER"), "a later rule on B")
    value = redis.command("HGET", HASH, "dapplafter").decode()
    assert int(value.split()[1]) < top
    assert admin(b, "DELETE", "rules?device_id=ApplAFTER") == \
        {"ok": True, "shared": True}
    poll(lambda: passes(a, "ApplAFTER"), "its removal on A")
    assert admin(a, "DELETE", "rules?device_id=ApplPIN") == \
        {"ok": True, "shared": True}
    for nginx in (a, b):
        poll(lambda: passes(nginx, "ApplPIN"), "the lift on %s" % nginx.name)
        assert "ApplPIN" not in rules(nginx)
        assert through(backend, nginx, "ApplPIN"), nginx.name
    value = redis.command("HGET", HASH, "dapplpin").decode().split()
    assert value[0] == "none", value
    assert abs(int(value[1]) - time.time() * 1000) < 3600 * 1000, value
    for nginx in (a, b):
        assert lines(nginx, 0, 'the rule of device_id "ApplPIN" on Redis '
                               'has a time'), nginx.name
    assert lines(a, 0, "older than any real change, overwritten")
    # and it is the rule's time from now on, both ways
    assert admin(b, "POST", "rules?access=block&device_id=ApplPIN") == \
        {"ok": True, "shared": True}
    poll(lambda: blocked(a, "ApplPIN"), "the block again on A")
    before = len(through(backend, a, "ApplPIN"))
    assert blocked(a, "ApplPIN")
    assert len(through(backend, a, "ApplPIN")) == before
    assert admin(a, "DELETE", "rules?device_id=ApplPIN") == \
        {"ok": True, "shared": True}
    poll(lambda: passes(b, "ApplPIN"), "the lift again on B")
    for nginx in (a, b):
        assert not lines(nginx, 0, "refused"), nginx.name


def test_every_answer_of_a_change_says_if_redis_took_it(nginx_factory,
                                                        redis, backend):
    """A's rules file cannot be written (a directory in its place): a
    change is still in force, and answered 500 saying so and whether
    Redis took it: "shared" true with Redis up (B refuses the device),
    false with Redis down.  A change refused for a full zone (507) says
    "shared" false: nothing went to Redis."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    path = os.path.join(a.dir, "admin.rules")
    if os.path.exists(path):
        os.remove(path)
    os.mkdir(path)
    reply = admin(a, "POST", "rules?access=block&device_id=ApplNOFILE",
                  expect=500)
    assert reply["shared"] is True, reply
    assert "could not be written" in reply["error"], reply
    assert blocked(a, "ApplNOFILE")
    poll(lambda: blocked(b, "ApplNOFILE"), "the block on B")
    assert lines(a, 0, "could not be written: see the error log, shared: "
                       "true, answered 500")

    redis.stop()
    poll(lambda: lines(a, 0, "is down") or None, "A sees Redis down")
    reply = admin(a, "DELETE", "rules?device_id=ApplNOFILE", expect=500)
    assert reply["shared"] is False, reply
    assert passes(a, "ApplNOFILE")
    redis.start()
    poll(lambda: passes(b, "ApplNOFILE"), "the removal on B after Redis")

    os.rmdir(path)
    for i in range(3000):
        request = urllib.request.Request(
            "http://127.0.0.1:%d/eas/admin/rules?access=block&device_id="
            "ApplFULL%d" % (a.port, i), method="POST",
            headers={"X-EAS-Admin": "1"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert json.loads(reply.read())["ok"]
        except urllib.error.HTTPError as err:
            assert err.code == 507, err.code
            assert json.loads(err.read()) == {
                "error": "the eas_admin_rules zone is full",
                "shared": False}
            break
    else:
        pytest.fail("the zone never full")


def test_a_removal_stamped_far_ahead_is_not_kept_longer(nginx_factory,
                                                        redis, backend):
    """Removals on the hash are dropped by Redis's clock: one stamped more
    than an hour ahead of it (forged, or of a clock run wild) is no real
    change and goes with the first page read, as one past keep_removals;
    one up to an hour ahead, and a recent one, stay; a gateway does not
    keep the far one either, and a late block of its key is taken."""
    now = int(time.time() * 1000)
    redis.command("HSET", HASH, "dapplfar", "none %d 0 ApplFAR"
                  % (now + 3 * 3600 * 1000))
    redis.command("HSET", HASH, "dapplnear", "none %d 0 ApplNEAR"
                  % (now + 1800 * 1000))
    redis.command("HSET", HASH, "dapplnow", "none %d 0 ApplNOW" % now)
    a, = gateways(nginx_factory, redis, backend, 1)
    poll(lambda: redis.command("HGET", HASH, "dapplfar") is None or None,
         "the far removal dropped from the hash")
    assert redis.command("HGET", HASH, "dapplnear") is not None
    assert redis.command("HGET", HASH, "dapplnow") is not None
    file_has(a, r'^# deleted device_id="ApplNOW"')
    assert "ApplFAR" not in rules_file(a)
    publish_at = int(time.time() * 1000) - 60000
    redis.command("HSET", HASH, "dapplfar", "block %d 0 ApplFAR"
                  % publish_at)
    publish(redis, "dapplfar", "")
    poll(lambda: blocked(a, "ApplFAR"), "a block older than the far time")


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.mark.skipif(not os.path.exists(FAKETIME),
                    reason="libfaketime (Debian package libfaketime)")
def test_a_gateway_whose_clock_runs_far_ahead_still_takes_later_changes(
        nginx_factory, redis, backend, monkeypatch):
    """Gateway A's clock runs two hours ahead of Redis's (libfaketime):
    its block is stamped by Redis's clock instead, A takes that time
    back and says its clock is off; a removal made later on B, whose
    clock is right, is then newer on A too, and lifts the block there
    (the backend's own record shows the device through A again)."""
    b, = gateways(nginx_factory, redis, backend, 1)
    a = gateway(nginx_factory, redis, backend, "A", start=False)
    monkeypatch.setenv("LD_PRELOAD", FAKETIME)
    monkeypatch.setenv("FAKETIME", "+2h")
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    up(a, redis)
    monkeypatch.delenv("LD_PRELOAD")
    assert admin(a, "POST", "rules?access=block&device_id=ApplSKEW") == \
        {"ok": True, "shared": True}
    value = redis.command("HGET", HASH, "dapplskew").decode().split()
    assert abs(int(value[1]) - time.time() * 1000) < 600 * 1000, value
    poll(lambda: blocked(b, "ApplSKEW"), "the block on B")
    assert lines(a, 0, "this gateway's time of a rule is more than 3600s "
                       "ahead of Redis's clock")
    assert blocked(a, "ApplSKEW")
    assert admin(b, "DELETE", "rules?device_id=ApplSKEW") == \
        {"ok": True, "shared": True}
    poll(lambda: passes(a, "ApplSKEW"), "the removal on A")
    assert through(backend, a, "ApplSKEW")


def release(fifos, deadline=20.0):
    """Each FIFO opened for reading (a writer blocked opening it goes on)
    and read until its writer closes it, or until the deadline."""
    end = time.monotonic() + deadline
    for path in fifos:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            while time.monotonic() < end:
                try:
                    if os.read(fd, 65536) == b"" and not os.path.exists(
                            path):
                        break
                except BlockingIOError:
                    time.sleep(0.02)
        finally:
            os.close(fd)


def opening_fifo(pids):
    """Some thread of these processes waits to open a FIFO."""
    for pid in pids:
        try:
            tids = os.listdir("/proc/%s/task" % pid)
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open("/proc/%s/task/%s/wchan" % (pid, tid)) as f:
                    if f.read().strip() in ("fifo_open",
                                            "wait_for_partner"):
                        return True
            except OSError:
                continue
    return False


def test_the_file_is_written_out_of_the_event_loop(nginx_factory, redis,
                                                   backend):
    """Gateway B's rules file is written for A's changes without holding
    B's workers: its temporary files are FIFOs nobody reads (a disk that
    does not answer), yet both of B's workers keep deciding requests by
    the rules A makes (nothing of the blocked device reaches the
    backend); once the disk answers, B's file has every rule."""
    a, b = gateways(nginx_factory, redis, backend, 2)
    pids = {r.header("X-Worker") for r in on_both_workers(
        b, lambda: device(b, "ApplFIFO0").options())}
    fifos = [os.path.join(b.dir, "admin.rules.tmp.%s" % pid) for pid in pids]
    for path in fifos:
        os.mkfifo(path)
    try:
        admin(a, "POST", "rules?access=block&device_id=ApplFIFO1")
        poll(lambda: blocked(b, "ApplFIFO1"), "the block on B")
        poll(lambda: opening_fifo(pids) or None,
             "B's write waiting on the FIFO")
        admin(a, "POST", "rules?access=block&device_id=ApplFIFO2")
        poll(lambda: blocked(b, "ApplFIFO2"), "the second block on B")
        before = len(through(backend, b, "ApplFIFO1"))
        replies = on_both_workers(
            b, lambda: device(b, "ApplFIFO1").sync())
        assert {(r.status, r.eas_status()) for r in replies} == {(200, 129)}
        assert len(through(backend, b, "ApplFIFO1")) == before
    finally:
        release(fifos)
    path = os.path.join(b.dir, "admin.rules")

    def written():
        admin(a, "POST", "rules?access=block&device_id=ApplFIFO3")
        return os.path.exists(path) \
            and stat.S_ISREG(os.stat(path).st_mode) \
            and "ApplFIFO3" in rules_file(b)

    poll(written, "B's file written again", interval=0.5)
    for device_id in ("ApplFIFO1", "ApplFIFO2"):
        assert 'block device_id="%s"' % device_id in rules_file(b)
