"""Lifting every lockout with the shared state (docs/operations.md, admin
API; docs/scale-out.md): the answer of "DELETE lockouts?all=1" waits for
the walk on Redis and says what became of it ("shared"), 503 when Redis
does not answer; a client that goes away during a long walk leaves it to
finish.  And the locks read on the channel: a name no gateway locks
under (not UTF-8, not its own identity, no address) is refused, said
once a minute.  Real nginx gateways and a real redis-server."""

import json
import socket
import urllib.error
import urllib.request

from eastest.waiting import poll

from test_shared_state import (LIMIT, LOCKS, backend, device,  # noqa: F401
                               directory, lines, lines_since_sleep,
                               lockouts, start_gateways, verified)


def lift_all(nginx):
    """DELETE lockouts?all=1: (status, the JSON answer)."""
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/lockouts?all=1" % nginx.port,
        method="DELETE", headers={"X-EAS-Admin": "1"})
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status, json.loads(reply.read().decode())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


def lock_jdoe(redis, b):
    """jdoe locked by failures on gateway B, the lock written on Redis."""
    for i in range(LIMIT):
        assert device(b, password="bad%d" % i).options().status == 401
    poll(lambda: redis.keys("t:ul:auth:jdoe") or None, "the lock written",
         timeout=5, interval=0.1)
    assert device(b, device_id="B1").options().status == 401


def test_lift_all_answers_once_every_gateway_is_told(nginx_factory, redis,
                                                     directory, backend):
    """The lift-all of gateway A answers 200 with "shared":true once the
    walk on Redis ended and the gateways were told: the lock is gone from
    Redis when the answer comes, and gateway B lets jdoe's right
    password through to the directory again."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    lock_jdoe(redis, b)
    status, answer = lift_all(a)
    assert status == 200 and answer.get("shared") is True, answer
    assert not redis.keys("t:ul:*")
    before = verified(directory)
    poll(lambda: device(b, device_id="B2").options().status == 200,
         "the lock lifted on gateway B", timeout=5, interval=0.1)
    assert verified(directory) > before


def test_lift_all_while_redis_sleeps_is_no_done(nginx_factory, redis,
                                                directory, backend):
    """DEBUG SLEEP on Redis during a lift-all: the answer is not a 200
    "done" (503 when the walk's first step went unanswered, or "shared":
    false when Redis was already known down); once Redis answers again a
    lift-all is done everywhere."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    lock_jdoe(redis, b)
    mark = a.mark()
    sleeper = redis.sleep_in_background(2)
    poll(lambda: lines_since_sleep(redis), "Redis asleep", timeout=10)
    status, answer = lift_all(a)
    assert answer.get("shared") is not True, (status, answer)
    assert status == 503 or (status == 200
                             and answer.get("shared") is False), \
        (status, answer)
    if status == 503:
        assert "lifted on this gateway" in answer["error"], answer
        assert lines(a, mark, "lifting every lockout")
    sleeper.join(30)
    poll(lambda: lines(a, mark, "is up again"), "Redis up again on A")
    poll(lambda: lift_all(a) == (200, {"lifted": 0, "shared": True}),
         "a lift-all done everywhere", timeout=10, interval=0.2)
    assert not redis.keys("t:ul:*")
    poll(lambda: device(b, device_id="B2").options().status == 200,
         "the lock lifted on gateway B", timeout=5, interval=0.1)


def test_lift_all_client_gone_during_a_long_walk(nginx_factory, redis,
                                                 directory, backend):
    """A database of 200,000 keys and hundreds of locks: the admin client
    sends the lift-all and closes at once.  No worker dies (the fixture
    reads the error log for alerts), the walk goes on to its end (every
    lock deleted on Redis) and gateway B lets jdoe in again; a client
    that waits is answered 200 (ended) or 202 (under way)."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    redis.command("DEBUG", "POPULATE", "200000", "junk")
    redis.command("EVAL", LOCKS, "0", "700")
    lock_jdoe(redis, b)
    mark = a.mark()
    for i in range(3):
        with socket.create_connection(("127.0.0.1", a.port), timeout=10) \
                as sock:
            sock.sendall(b"DELETE /eas/admin/lockouts?all=1 HTTP/1.1\r\n"
                         b"Host: 127.0.0.1:%d\r\nX-EAS-Admin: 1\r\n\r\n"
                         % a.port)
            # closed once the walk started: the request waits for it
            poll(lambda: len(lines(a, mark, "lift all lockouts")) > i
                 or None, "the lift-all started")
    poll(lambda: not redis.keys("t:ul:*") or None, "every lock deleted",
         timeout=30, interval=0.2)
    poll(lambda: device(b, device_id="B2").options().status == 200,
         "the lock lifted on gateway B", timeout=10, interval=0.1)
    redis.command("EVAL", LOCKS, "0", "700")
    status, answer = lift_all(a)
    assert (status, answer.get("shared")) in ((200, True),
                                              (202, "in progress")), answer
    poll(lambda: not redis.keys("t:ul:*") or None, "every lock deleted",
         timeout=30, interval=0.2)
    assert device(a, device_id="A1").options().status == 200


MALFORMED = [
    b"L x 1 600 4 4 auth\xef\xbc\xb6\xef",      # "V" cut mid-UTF-8
    b"L x 1 600 4 4 authJDoe",                   # not folded
    b"L x 1 600 4 4 auth\xef\xbc\xb6x",          # full-width: folds to "vx"
    b"L x 1 600 4 5 authjd\x01oe",               # a control byte
    b"L x 1 600 4 4 auth a\tb",                  # a tab
    b"L x 2 600 4 5 authhello",                  # no address
    b"L x 2 600 4 9 auth10.0.0.1\xff",           # no address
    b"U x 1 0 4 4 auth\xef\xbc\xb6\xef",         # unlock of no identity
    b"L x 2 600 4 6 auth::1/64",                 # a /64 with host bits
    b"L x 2 600 4 13 auth2001:DB8::/64",         # not as a gateway writes
    b"L x 2 600 4 17 auth2001:db8:0:0::/64",     # not as a gateway writes
    b"L x 2 600 4 8 auth01.2.3.4",               # not as a gateway writes
    b"L x 2 600 4 3 auth::1",                    # keyed by its /64
    b"L x 2 600 4 16 auth::FFFF:127.0.0.1",      # not as a gateway writes
]


def test_lock_of_a_malformed_name_on_the_channel_refused(
        nginx_factory, redis, directory, backend):
    """Locks forged on the channel under names no gateway locks (a name
    cut mid-UTF-8, one that is not its own identity, a control byte, an
    address that is none) are not taken: gateway B does not list them,
    says so once a minute per worker, and takes jdoe's right password;
    well-formed locks (a user, "user@domain", an address) still are."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    mark = b.mark()
    for message in MALFORMED * 3:
        redis.command("PUBLISH", "t:db0:events", message)
    redis.command("PUBLISH", "t:db0:events", "L x 1 600 4 3 authamy")
    redis.command("PUBLISH", "t:db0:events",
                  "L x 1 600 4 16 authamy@corp.example")
    redis.command("PUBLISH", "t:db0:events", "L x 2 600 4 8 auth10.9.8.7")
    redis.command("PUBLISH", "t:db0:events",
                  "L x 2 600 4 13 auth2001:db8::/64")
    redis.command("PUBLISH", "t:db0:events",
                  "L x 2 600 4 15 auth::ffff:10.9.8.6")
    poll(lambda: len(lockouts(b)) >= 5 or None, "the well-formed locks")
    # each of B's two workers read every message, in order
    poll(lambda: len(lines(b, mark, "refused (said once a minute)")) >= 2
         or None, "the refusals said")
    assert len(lines(b, mark, "refused (said once a minute)")) == 2
    keys = sorted(lock["key"] for lock in lockouts(b))
    assert keys == ["10.9.8.7", "2001:db8::/64", "::ffff:10.9.8.6", "amy",
                    "amy@corp.example"], keys
    assert not [lock for lock in lockouts(b) if "raw" in lock]
    before = verified(directory)
    assert device(b, device_id="B3").options().status == 200
    assert verified(directory) > before
    assert device(b, user="amy", password="apple").options().status == 401
