"""Several gateways sharing one Redis (eas_shared_state, docs/scale-out.md):
a lockout reached by failures spread over the gateways, and by tries sent
side by side to all of them, verifies no more tries than one gateway
would (read from the directory's own record); a lock started on one
gateway refuses on the others; a lockout lifted on one is lifted on all
within a second; a new Ping on one gateway ends the device's Ping held by
another; Redis killed, restarted, made slow (DEBUG SLEEP) or asking for
another password: no request hangs, the gateway falls back to its own
counts, and logs one line per change.  Every gateway is a real nginx with
two workers, Redis a real redis-server on a loopback port."""

import os
import threading
import time

import pytest

from eastest.backends import CredentialBackend, EasBackend
from eastest import confs
from eastest.client import EasClient
from eastest.nginx import free_port
from eastest.redis import RedisServer, RogueRedis
from eastest.waiting import poll

LIMIT = 3
HANG = 45           # bounds a hang, not a speed: held Pings ask for 60 s

NGINX_CONFIG = """
http {
    ${temp_paths}
    log_format shared escape=json '{"status":"$status","auth":"$eas_auth",'
        '"reason":"$eas_reason","cmd":"$eas_cmd","pid":"$pid"}';

    eas_shared_state ${redis_url} prefix=t: timeout=300ms
                     connect_timeout=300ms retry=200ms ${shared_extra};

    eas_preauth_zone zone=auth:1m;
    eas_device_zone zone=devices:1m;

    upstream backend {
        server 127.0.0.1:${backend_port};
        eas_upstream_timeouts;
    }

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/eas.log shared;

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_devices devices;
            eas_longpoll on;
            eas_heartbeat_min 2s;
            eas_heartbeat_max 120s;
            proxy_read_timeout 1s;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_request /_directory;
            eas_preauth_lockout user=${limit} address=100 window=1m time=1h;
            ${device_max}
            proxy_pass http://backend;
        }

""" + confs.SHARED_DIRECTORY + """
""" + confs.SHARED_STATUS_ADMIN + """    }
}
"""


@pytest.fixture
def directory():
    """The credential source: every verification is one request here."""
    with CredentialBackend({None: {"jdoe": "secret", "amy": "apple"}}) \
            as server:
        yield server


@pytest.fixture
def backend():
    with EasBackend(supersede=False) as server:
        yield server


def start_gateways(nginx_factory, redis, directory, backend, count=2,
                   shared_extra="", limit=LIMIT, device_max=""):
    gateways = []
    for _ in range(count):
        port = free_port()
        nginx = nginx_factory(NGINX_CONFIG, listen=(port,), port=port,
                              redis_url=redis.url, dir_port=directory.port,
                              backend_port=backend.port, limit=limit,
                              shared_extra=shared_extra,
                              device_max=device_max)
        nginx.port = port
        gateways.append(nginx)
    for nginx in gateways:
        poll(lambda: redis_clients(redis) >= 4 * len(gateways) or None,
             "connections of every worker to Redis")
    return gateways


def redis_clients(redis):
    info = redis.command("INFO", "clients").decode()
    for line in info.splitlines():
        if line.startswith("connected_clients:"):
            return int(line.split(":")[1]) - 1      # less ours
    return 0


def device(nginx, device_id="DEV1", user="jdoe", password="secret"):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user, password=password,
                     device_id=device_id, timeout=20)


def verified(directory, user="jdoe"):
    """Verifications the directory saw for user."""
    import base64
    count = 0
    for request in directory.requests:
        value = request.header("Authorization", "")
        if value.startswith("Basic ") and base64.b64decode(
                value[6:]).decode().partition(":")[0] == user:
            count += 1
    return count


def admin(nginx, method, path):
    import urllib.request
    import urllib.error
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/%s" % (nginx.port, path),
        method=method, headers={"X-EAS-Admin": "1"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def lockouts(nginx):
    import json
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/eas/admin/lockouts"
                                % nginx.port, timeout=10) as reply:
        return json.loads(reply.read().decode())["lockouts"]


def status(nginx, fmt="json"):
    import json
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/eas/status?format=%s"
                                % (nginx.port, fmt), timeout=10) as reply:
        body = reply.read().decode()
    return json.loads(body) if fmt == "json" else body


def lines(nginx, mark, text):
    return [line for line in nginx.error_lines_since(mark) if text in line]


def test_lockout_spread_over_three_gateways(nginx_factory, redis,
                                            directory, backend):
    """Wrong passwords sent in turn to three gateways: the directory
    verifies LIMIT of them, then the user is locked on every gateway,
    the right password of a new device included (one gateway alone
    would have let 3 x LIMIT through)."""
    gateways = start_gateways(nginx_factory, redis, directory, backend, 3)
    for i in range(3 * LIMIT + 3):
        reply = device(gateways[i % 3], password="wrong%d" % i).options()
        assert reply.status == 401
    assert verified(directory) == LIMIT
    for nginx in gateways:
        assert device(nginx, device_id="NEW").options().status == 401
    assert verified(directory) == LIMIT
    notices = [line for nginx in gateways
               for line in lines(nginx, 0, "is locked out")]
    assert notices


def test_tries_side_by_side_on_two_gateways(nginx_factory, redis,
                                            directory, backend):
    """Wrong passwords sent all at once to two gateways: no more than
    LIMIT reach the directory."""
    gateways = start_gateways(nginx_factory, redis, directory, backend, 2)
    replies = []

    def guess(i):
        replies.append(device(gateways[i % 2],
                              password="guess%d" % i).options().status)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(replies) == 16
    assert set(replies) <= {401, 503}
    assert verified(directory) <= LIMIT


def test_unlock_on_one_gateway_lifts_it_on_the_others(nginx_factory, redis,
                                                      directory, backend):
    """A lockout lifted through the admin API of gateway A: gateway B
    takes the right password again within a second or so (polled)."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    for i in range(LIMIT):
        assert device(a, password="bad%d" % i).options().status == 401
    poll(lambda: device(b, device_id="B1").options().status == 401,
         "the lock on gateway B")
    before = verified(directory)
    assert device(b, device_id="B2").options().status == 401
    assert verified(directory) == before          # refused on B itself
    assert admin(a, "DELETE", "lockouts?user=jdoe") == 200
    poll(lambda: device(b, device_id="B3").options().status == 200,
         "the lock lifted on gateway B", timeout=5, interval=0.1)
    assert not redis.keys("t:ul:*")


def test_lock_from_another_gateway_refuses_cached_credentials(
        nginx_factory, redis, directory, backend):
    """A lock heard from the channel is a lock of this gateway's zone too:
    credentials this gateway has cached as valid are refused from a new
    device without asking anyone, while the device that verified here
    before the lock keeps working (read from the directory's record)."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    assert device(b, device_id="B0").foldersync().status == 200
    assert device(b, device_id="B0").foldersync().status == 200
    for i in range(LIMIT):
        assert device(a, password="bad%d" % i).options().status == 401
    # a new DeviceId each try: one let through before the lock arrived
    # would be known-good on B, and rightly keep passing
    tries = iter(range(1000))
    poll(lambda: device(b, device_id="B1-%d" % next(tries))
         .foldersync().status == 401, "the lock on gateway B", timeout=10)
    before = verified(directory)
    assert device(b, device_id="B2").foldersync().status == 401
    assert device(b, device_id="B0").foldersync().status == 200
    assert verified(directory) == before          # decided on B itself


def test_db_apart_clusters_do_not_hear_each_other(nginx_factory, redis,
                                                  directory, backend):
    """Two gateways on one Redis, one with db=1 and one with db=2 (two
    clusters): a user locked on the first is not locked on the second."""
    a, c = start_gateways(nginx_factory, redis, directory, backend, 2,
                          shared_extra="db=1")
    b, = start_gateways(nginx_factory, redis, directory, backend, 1,
                        shared_extra="db=2")
    poll(lambda: redis_clients(redis) >= 12 or None, "both clusters")
    for i in range(LIMIT):
        assert device(a, password="bad%d" % i).options().status == 401
    assert device(a, device_id="A1").options().status == 401
    # C, of A's cluster, hears the lock; B heard the same message or none
    poll(lambda: lockouts(c) or None, "the lock on gateway C")
    assert not lockouts(b)
    assert device(b, device_id="B1").options().status == 200


def test_junk_on_the_channel_said_once_a_minute(nginx_factory, redis,
                                                directory, backend):
    """Messages on the gateways' channel that no gateway sent (junk from
    anyone who can publish): each worker says so once a minute, not once
    a message, and keeps serving."""
    nginx, = start_gateways(nginx_factory, redis, directory, backend, 1)
    for i in range(20):
        redis.command("PUBLISH", "t:db0:events", "junk %d" % i)
    redis.command("PUBLISH", "t:db0:events", "Z x 0 0 0 0 ")
    poll(lambda: lines(nginx, 0, "not understood") or None,
         "the junk noticed")
    assert device(nginx).options().status == 200
    assert 1 <= len(lines(nginx, 0, "not understood")) <= 2


def test_unlock_on_a_gateway_without_the_counter(nginx_factory, redis,
                                                directory, backend):
    """The failures all went to gateway B; the admin of gateway A, which
    never saw the user, lifts the lockout under another spelling of the
    name ("JDoe"): A answers 200 from Redis's view and audits it, and B
    takes the right password again (the keys are the folded identity)."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    for i in range(LIMIT):
        assert device(b, password="bad%d" % i).options().status == 401
    assert device(b, device_id="B1").options().status == 401
    # the failure that locks is counted on Redis after the 401 is sent
    poll(lambda: redis.keys("t:ul:*") or None, "the lock key written",
         timeout=5, interval=0.1)
    mark = a.mark()
    assert admin(a, "DELETE", "lockouts?user=JDoe") == 200
    assert lines(a, mark, "lift lockout of user")
    poll(lambda: device(b, device_id="B2").options().status == 200,
         "the lock lifted on gateway B", timeout=5, interval=0.1)
    assert not redis.keys("t:ul:*")
    # nothing locked anywhere: not found, from either gateway
    assert admin(a, "DELETE", "lockouts?user=nobody") == 404


def test_unlock_refused_by_redis_is_an_error(nginx_factory, redis,
                                            directory, backend):
    """Redis refuses the unlock (here its set of locks holds the wrong
    type; an out-of-memory refusal answers the same way): the admin API
    answers 503 with the reason in the error log, not 200."""
    a, = start_gateways(nginx_factory, redis, directory, backend, 1)
    for i in range(LIMIT):
        assert device(a, password="bad%d" % i).options().status == 401
    redis.command("SET", "t:locks:auth", "not a set")
    mark = a.mark()
    assert admin(a, "DELETE", "lockouts?user=jdoe") == 503
    assert lines(a, mark, "lifting the lockout of \"jdoe\" failed")


def test_lift_all_on_a_gateway_reaches_the_others(nginx_factory, redis,
                                                  directory, backend):
    """Every lockout lifted on gateway A, which served no request: the
    user locked on gateway B takes the right password again."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    for i in range(LIMIT):
        assert device(b, password="bad%d" % i).options().status == 401
    assert device(b, device_id="B1").options().status == 401
    assert admin(a, "DELETE", "lockouts?all=1") == 200
    poll(lambda: device(b, device_id="B2").options().status == 200,
         "every lock lifted on gateway B", timeout=5, interval=0.1)


def test_ping_superseded_across_gateways(nginx_factory, redis, directory,
                                         backend):
    """A device's Ping held by gateway A; its new Ping goes to gateway B:
    A answers the older one at once (Status 1, ping_superseded), the
    newer one stays held; the backend saw both."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    result = {}

    def held():
        result["reply"] = device(a, device_id="PHONE").ping(heartbeat=60)

    thread = threading.Thread(target=held)
    thread.start()
    backend.wait_for(1)
    newer = {}

    def second():
        newer["reply"] = device(b, device_id="PHONE").ping(heartbeat=4)

    started = time.monotonic()
    thread2 = threading.Thread(target=second)
    thread2.start()
    thread.join(HANG)
    assert not thread.is_alive(), "the held Ping was not ended"
    assert time.monotonic() - started < HANG
    assert result["reply"].status == 200
    assert result["reply"].eas_status() == 1
    thread2.join(HANG)
    assert newer["reply"].eas_status() == 1
    pings = [r for r in backend.requests if r.eas.command == "Ping"]
    assert len(pings) == 2
    assert poll(lambda: lines(a, 0, "superseded by a newer Ping"),
                "the superseded line on gateway A")


def test_redis_killed_and_back(nginx_factory, redis, directory, backend):
    """Redis killed: requests are still answered (counted on each
    gateway), one "down" line per gateway; Redis back on its port: one
    "up" line, and the shared lockout works again."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    mark_a, mark_b = a.mark(), b.mark()
    redis.stop()
    for i in range(2 * LIMIT):
        nginx = (a, b)[i % 2]
        assert device(nginx, password="x%d" % i).options().status == 401
    # each gateway counted its own: LIMIT each
    assert verified(directory) == 2 * LIMIT
    for nginx, mark in ((a, mark_a), (b, mark_b)):
        poll(lambda: lines(nginx, mark, "is down"), "a down line")
    state = status(a)["shared_state"]
    assert state["up"] == 0 and state["downs"] == 1
    assert state["fallbacks"] >= 1
    assert "\nnginx_eas_shared_state_up 0\n" in status(a, "prometheus")
    redis.start()
    for nginx, mark in ((a, mark_a), (b, mark_b)):
        poll(lambda: lines(nginx, mark, "is up again"), "an up line")
        assert len(lines(nginx, mark, "is down")) == 1
        assert len(lines(nginx, mark, "is up again")) == 1
    poll(lambda: status(a)["shared_state"]["up"] == 1, "up in eas_status")
    # shared again: a new user's failures spread over both lock at LIMIT
    before = verified(directory, "amy")
    for i in range(2 * LIMIT):
        device((a, b)[i % 2], user="amy", password="y%d" % i).options()
    assert verified(directory, "amy") - before == LIMIT


def test_slow_redis_never_hangs_a_request(nginx_factory, redis, directory,
                                          backend):
    """DEBUG SLEEP 3 on Redis: a verification waits at most the timeout
    (300 ms) for it, then the gateway decides alone; one down line and
    one up line per gateway."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    mark = a.mark()
    sleeper = redis.sleep_in_background(3)
    poll(lambda: lines_since_sleep(redis), "Redis asleep", timeout=10)
    reply = device(a, device_id="S1").options()
    assert reply.status == 200
    assert lines(a, mark, "did not answer in time") or \
        lines(a, mark, "is down")
    sleeper.join(30)
    poll(lambda: lines(a, mark, "is up again"), "an up line")
    assert len(lines(a, mark, "is down")) == 1


def lines_since_sleep(redis):
    """True once Redis is inside DEBUG SLEEP (a PING goes unanswered)."""
    try:
        redis.command("PING", timeout=0.2)
        return False
    except OSError:
        return True


def test_wrong_redis_password(nginx_factory, tmp_path, directory, backend):
    """Redis with requirepass, the gateway with another password: a
    clear error line, the down line, and requests answered on the
    gateway's own counts."""
    with RedisServer(tmp_path / "redis", password="right") as redis:
        port = free_port()
        nginx = nginx_factory(NGINX_CONFIG, start=False, port=port,
                              redis_url=redis.url, dir_port=directory.port,
                              backend_port=backend.port, limit=LIMIT,
                              shared_extra="password_file=redis.pw",
                              device_max="")
        with open(os.path.join(nginx.dir, "redis.pw"), "w") as f:
            f.write("wrong\n")
        nginx.start(ports=(port,))
        nginx.port = port
        poll(lambda: lines(nginx, 0, "is down"), "a down line")
        refused = lines(nginx, 0, "refused the connection's setup")
        assert refused and "password" in refused[0].lower()
        assert "wrong" not in refused[0].replace("wrongpass", "")
        assert device(nginx).options().status == 200
        for i in range(LIMIT + 2):
            device(nginx, password="z%d" % i).options()
        assert verified(directory) == 1 + LIMIT


@pytest.mark.parametrize("directive, message", [
    ("eas_shared_state rediss://127.0.0.1:6379;",
     'TLS ("rediss://") is not supported'),
    ("eas_shared_state http://127.0.0.1:6379;",
     'is not a "redis://host:port" address'),
    ("eas_shared_state redis://127.0.0.1:6379 db=x;",
     'invalid parameter "db=x"'),
    ("eas_shared_state redis://127.0.0.1:6379 gateway=edge/1;",
     'invalid parameter "gateway=edge/1"'),
    ("eas_shared_state redis://127.0.0.1:6379 gateway=%s;" % ("g" * 65),
     'invalid parameter "gateway=ggg'),
    ("eas_shared_state redis://127.0.0.1:6379 password_file=/nonexistent;",
     'open() "/nonexistent" failed, "password_file" of "eas_shared_state"'),
    ("eas_shared_state redis://127.0.0.1:6379 password_file=/etc;",
     '"password_file" of "eas_shared_state": "/etc" is not a file'),
])
def test_config_errors(nginx_factory, directive, message):
    nginx = nginx_factory("http {\n    ${temp_paths}\n    " + directive
                          + "\n}\n", start=False)
    error = nginx.config_error()
    assert message in error and "eas_shared_state" in error


def test_reload_and_stop_leave_no_socket_open(nginx_factory, redis,
                                              directory, backend):
    """A reload: the old workers close their Redis connections as they
    exit (nginx alerts "open socket left" otherwise: the teardown fails
    on any alert), the new ones connect."""
    a, = start_gateways(nginx_factory, redis, directory, backend, 1)
    mark = a.mark()
    a.reload()
    poll(lambda: len(lines(a, mark, "exit")) >= 2, "the old workers' exit")
    poll(lambda: redis_clients(redis) == 4, "4 connections of new workers")
    assert not lines(a, mark, "open socket")
    assert device(a).options().status == 200


def test_lockout_fallback_refuse(nginx_factory, redis, directory, backend):
    """lockout_fallback=refuse: while Redis is down, a try that needs the
    credential source is refused 503 (busy) and never reaches it; a
    password the cache knows still passes."""
    a, = start_gateways(nginx_factory, redis, directory, backend, 1,
                        shared_extra="lockout_fallback=refuse")
    assert device(a).options().status == 200            # cached now
    before = verified(directory, "amy")
    redis.stop()
    poll(lambda: lines(a, 0, "is down"), "a down line")
    reply = device(a, user="amy", password="apple").options()
    assert reply.status == 503
    assert reply.header("Retry-After")
    assert verified(directory, "amy") == before
    assert device(a).options().status == 200


def test_device_max_across_gateways(nginx_factory, redis, directory,
                                    backend):
    """eas_device_max 1 on two gateways: the user's phone counted on A
    takes the place; a second phone on B is refused there (never reaches
    the backend); the first phone is welcome on B too."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2,
                          device_max="eas_device_max 1;")
    assert device(a, device_id="PHONE1").foldersync().status == 200
    mark = b.mark()
    device(b, device_id="PHONE2").foldersync()
    assert device(b, device_id="PHONE1").foldersync().status == 200
    assert {r.eas.device_id for r in backend.requests} == {"PHONE1"}
    assert poll(lambda: lines(b, mark, "blocked by eas_device_max"),
                "the refusal line on B")
    assert redis.command("SMEMBERS", "t:d:devices:jdoe") == [b"phone1"]
    # deleted through the admin API: the place on Redis goes too
    assert admin(a, "DELETE", "devices?user=jdoe&device_id=PHONE1") == 200
    poll(lambda: redis.command("SMEMBERS", "t:d:devices:jdoe") == [],
         "the place given back on Redis")


def rogue_gateway(nginx_factory, rogue, directory, backend):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, listen=(port,), port=port,
                          redis_url=rogue.url, dir_port=directory.port,
                          backend_port=backend.port, limit=LIMIT,
                          shared_extra="", device_max="")
    nginx.port = port
    return nginx


ROGUE_SHAPES = [
    b"*1\r\n$7\r\nmessage\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b":1\r\n",
    b"-ERR boom\r\n",
    b"+OK\r\n",
    b"*3\r\n:1\r\n:2\r\n:3\r\n",
    b"*2\r\n$7\r\nmessage\r\n$12\r\nt:db0:events\r\n",
    b"*3\r\n$7\r\nmessage\r\n*2\r\n:1\r\n:2\r\n$3\r\nabc\r\n",
    b"*3\r\n$7\r\nmessage\r\n$12\r\nt:db0:events\r\n:5\r\n",
    b"*3\r\n$7\r\nmessage\r\n$12\r\nt:db0:events\r\n$-1\r\n",
    b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$12\r\nt:db0:events\r\n$3\r\nabc\r\n",
    b"*3\r\n$11\r\nunsubscribe\r\n$12\r\nt:db0:events\r\n:0\r\n",
    b"*1\r\n" * 1000 + b":1\r\n",
]


def test_rogue_redis_replies_kill_no_worker(nginx_factory, directory,
                                            backend):
    """A rogue Redis (or a man in the middle) answers the subscription
    with replies of every wrong shape, one per connection: no worker
    dies (the teardown reads the error log for a worker killed by a
    signal), each such connection is dropped and made again, the gateway
    keeps serving, and says so once a minute, not once a reply."""
    with RogueRedis(ROGUE_SHAPES) as rogue:
        nginx = rogue_gateway(nginx_factory, rogue, directory, backend)
        poll(lambda: len(rogue.subscriptions) >= len(ROGUE_SHAPES) + 2
             or None, "every shape sent", timeout=60)
        assert device(nginx).options().status == 200
        assert all(s["closed"] for s in rogue.subscriptions[:-2])
        said = lines(nginx, 0, "connection dropped (said once a minute)")
        assert 1 <= len(said) <= 2                 # one per worker


def test_rogue_redis_huge_reply_dropped(nginx_factory, directory, backend):
    """A bulk string announced as 2 GB and streamed: the worker drops
    the connection after a small part of it, instead of buffering it."""
    megabyte = b"A" * (1 << 20)
    stream = [b"*3\r\n$7\r\nmessage\r\n$12\r\nt:db0:events\r\n"
              b"$2000000000\r\n"] + [megabyte] * 48
    with RogueRedis([stream]) as rogue:
        nginx = rogue_gateway(nginx_factory, rogue, directory, backend)
        poll(lambda: any(s["closed"] for s in rogue.subscriptions) or None,
             "a subscription dropped", timeout=60)
        closed = [s for s in rogue.subscriptions if s["closed"]]
        assert max(s["sent"] for s in closed) < 8 << 20
        assert device(nginx).options().status == 200


ORDINARY_CONFIG = """
http {
    ${temp_paths}
    log_format shared escape=json '{"status":"$status","auth":"$eas_auth",'
        '"reason":"$eas_reason","addr":"$remote_addr"}';

    eas_preauth_zone zone=eas_auth:1m;
    eas_device_zone zone=eas_devices:1m;
    eas_shared_state ${redis_url} ${shared_extra};

    upstream eas_backend {
        server 127.0.0.1:${backend_port};
        keepalive 8;
    }

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/eas.log shared;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=eas_auth valid=5m invalid=5m;
            eas_preauth_user_file ${dir}/users;
            eas_preauth_lockout user=${limit} address=50 window=60s time=60s;
            eas_devices eas_devices;
            eas_longpoll on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://eas_backend;
        }

        location = /eas/status {
            eas_status;
        }
    }
}
"""


def ordinary_gateways(nginx_factory, redis, backend, count,
                      shared_extra=""):
    import subprocess
    line = subprocess.run(["htpasswd", "-nbB", "-C", "4", "jdoe", "secret"],
                          check=True, capture_output=True,
                          text=True).stdout.strip()
    gateways = []
    for _ in range(count):
        port = free_port()
        nginx = nginx_factory(ORDINARY_CONFIG, listen=(port,), port=port,
                              start=False, redis_url=redis.url,
                              backend_port=backend.port, limit=LIMIT,
                              shared_extra=shared_extra)
        with open(os.path.join(nginx.dir, "users"), "w") as users:
            users.write(line + "\n")
        nginx.start(ports=(port,))
        nginx.port = port
        gateways.append(nginx)
    return gateways


def test_ordinary_config_refuses_while_redis_is_down(nginx_factory, redis,
                                                     backend):
    """The same configuration with lockout_fallback=refuse, Redis
    stopped: wrong passwords and a first sign-in with the right one are
    all refused 503 unverified, the refusals are counted as fallbacks,
    and nothing reached the backend."""
    nginx, = ordinary_gateways(nginx_factory, redis, backend, 1,
                               shared_extra="lockout_fallback=refuse")
    redis.stop()
    poll(lambda: status(nginx)["shared_state"]["up"] == 0 or None,
         "Redis seen down")
    for i in range(2 * LIMIT):
        assert device(nginx, password="guess-%d" % i).options().status \
            == 503
    assert device(nginx, device_id="NEW").options().status == 503
    assert status(nginx)["shared_state"]["fallbacks"] >= 2 * LIMIT + 1
    assert not backend.requests


def test_ordinary_config_shares_the_lockout(nginx_factory, redis, backend,
                                            tmp_path):
    """The configuration an administrator writes from the docs: zones
    before eas_shared_state, a bcrypt user file, cached refusals, the
    client address from X-Forwarded-For, two workers.  Wrong passwords
    from ever new addresses sent in turn to three gateways: LIMIT of them
    are verified in all (read from the gateways' logs), Redis counted
    them, and nothing reached the backend."""
    import json
    gateways = ordinary_gateways(nginx_factory, redis, backend, 3)
    poll(lambda: redis_clients(redis) >= 12 or None,
         "connections of every worker to Redis")
    for i in range(3 * LIMIT + 3):
        client = device(gateways[i % 3], password="guess-%d" % i)
        headers = client._common_headers()
        headers.append(("X-Forwarded-For", "10.1.0.%d" % (i + 1)))
        assert client.raw("OPTIONS", client.path, headers).status == 401
    verified = 0
    for nginx in gateways:
        with open(os.path.join(nginx.dir, "eas.log")) as log:
            verified += sum(json.loads(entry)["auth"] == "invalid"
                            for entry in log)
    assert verified == LIMIT
    assert sum(status(nginx)["shared_state"]["commands"]
               for nginx in gateways) >= LIMIT
    assert not backend.requests


def test_redis_speaking_first_is_read_once(nginx_factory, directory,
                                           backend):
    """A Redis that writes before it is asked and hangs up (as a full
    Redis does: "max number of clients reached"): each connection is
    read and dropped, the workers keep serving, none spins on it."""
    with RogueRedis([], greeting=b"-ERR max number of clients reached\r\n"
                    + b"+OK\r\n" * 100) as rogue:
        nginx = rogue_gateway(nginx_factory, rogue, directory, backend)
        poll(lambda: len(rogue.subscriptions) >= 8 or None,
             "connections made again", timeout=60)
        for _ in range(4):
            assert device(nginx).options().status == 200
        assert status(nginx)["shared_state"]["up"] == 0


def test_lock_from_the_channel_capped_to_own_lockout_time(
        nginx_factory, redis, directory, backend):
    """A lock forged on the channel by anyone who can publish ("L" with
    ~31 years left): each gateway keeps it no longer than its own
    lockout time (time=1h), and a lock with no time left is junk."""
    nginx, = start_gateways(nginx_factory, redis, directory, backend, 1)
    redis.command("PUBLISH", "t:db0:events",
                  "L x 1 999999999 4 4 authjdoe")
    redis.command("PUBLISH", "t:db0:events", "L x 1 0 4 3 authamy")
    found = poll(lambda: lockouts(nginx) or None, "the forged lock")
    assert len(found) == 1 and found[0]["left"] <= 3600, found
    assert device(nginx, user="amy", password="apple").options() \
        .status == 200
    poll(lambda: lines(nginx, 0, "not understood") or None,
         "the lock with no time noticed")


def test_redis_out_of_memory_said_once_a_minute(nginx_factory, redis,
                                                directory, backend):
    """Redis full (maxmemory with noeviction) refuses every write with
    OOM: each verification falls back to the local count (and is
    answered), and the refusal is logged once a minute per worker, not
    once a request."""
    nginx, = start_gateways(nginx_factory, redis, directory, backend, 1)
    redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    redis.command("CONFIG", "SET", "maxmemory", "1")
    try:
        mark = nginx.mark()
        for i in range(12):
            assert device(nginx, device_id="OOM%d" % i, user="u%d" % i,
                          password="bad").options().status == 401
        poll(lambda: lines(nginx, mark, "failed: OOM") or None,
             "the refusal logged")
        assert len(lines(nginx, mark, "failed: OOM")) <= 4   # 2 workers
    finally:
        redis.command("CONFIG", "SET", "maxmemory", "0")


class SpeakingFirstRedis(RogueRedis):
    """A Redis impostor (rogue, or a man in the middle) that writes
    replies nobody asked for as soon as a gateway connects, then
    answers every command as Redis would and keeps the connection."""

    GREETING = (b"+OK\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$12\r\nt:db0:events"
                b"\r\n$3\r\nabc\r\n")

    def __init__(self):
        super().__init__([])
        self.connections = 0

    def _client(self, conn):
        from eastest.redis import _read
        with self.lock:
            self.connections += 1
        conn.settimeout(10)
        reader = conn.makefile("rb")
        try:
            conn.sendall(self.GREETING)
            while not self.stopping:
                command = _read(reader)
                if not isinstance(command, list) or not command:
                    return
                name = command[0].upper()
                if name == b"SUBSCRIBE":
                    conn.sendall(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n"
                                 b":1\r\n" % (len(command[1]), command[1]))
                elif name == b"PING":
                    conn.sendall(b"+PONG\r\n")
                else:
                    conn.sendall(b"+OK\r\n")
        except (OSError, ValueError):
            pass
        finally:
            reader.close()
            conn.close()


def test_redis_speaking_first_never_counts_as_up(nginx_factory, directory,
                                                 backend):
    """A Redis that speaks first: its replies answer no setup command
    as Redis would, so the link is never taken for up (no "up again"
    line per connection, at most one "down" line), the backoff is not
    reset by it, and the gateway keeps serving."""
    with SpeakingFirstRedis() as rogue:
        nginx = rogue_gateway(nginx_factory, rogue, directory, backend)
        poll(lambda: rogue.connections >= 16 or None,
             "connections made again", timeout=60)
        assert device(nginx).options().status == 200
        assert status(nginx)["shared_state"]["up"] == 0
        assert not lines(nginx, 0, "is up again")
        assert len(lines(nginx, 0, "is down")) <= 1


def test_lift_all_without_the_set_of_locks(nginx_factory, redis, directory,
                                           backend):
    """The set listing a zone's locks on Redis is gone (evicted, or
    deleted): lifting every lockout still finds the lock keys (SCAN)
    and deletes them, so no gateway finds the user locked on Redis."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    for i in range(LIMIT):
        assert device(b, password="bad%d" % i).options().status == 401
    # the failure that locks is counted on Redis after the 401 is sent
    poll(lambda: redis.keys("t:ul:*") or None, "the lock key written",
         timeout=5, interval=0.1)
    redis.command("DEL", "t:locks:auth")
    lift_all(redis, a, b)


def lift_all(redis, a, b):
    """Every lockout lifted through A: gone from Redis, lifted on B."""
    assert admin(a, "DELETE", "lockouts?all=1") == 200
    poll(lambda: not redis.keys("t:ul:*") or None, "every lock deleted",
         timeout=20, interval=0.1)
    poll(lambda: device(b, device_id="B2").options().status == 200,
         "every lock lifted on gateway B", timeout=10, interval=0.1)


LOCKS = ("for i = 1, tonumber(ARGV[1]) do "
         "  redis.call('SET', 't:ul:auth:fake' .. i, '1') "
         "  redis.call('HSET', 't:u:auth:fake' .. i, 'f', '1') "
         "  if i % 2 == 0 then "
         "    redis.call('SADD', 't:locks:auth', 't:ul:auth:fake' .. i) "
         "  end "
         "end return 1")

SLOW_US = 50000


def test_lift_all_in_a_large_database_keeps_redis_serving(
        nginx_factory, redis, directory, backend):
    """Every lockout lifted in a database of 200,000 unrelated keys and
    hundreds of locks (half of them listed in the set of locks, half
    found by SCAN only): the walk is made of steps of a bounded size
    driven by the gateway, so that no script of it runs long enough to
    enter Redis's slow log at 50 ms (one walking the whole database
    did); every lock goes, and gateway B lets the user in again."""
    a, b = start_gateways(nginx_factory, redis, directory, backend, 2)
    redis.command("DEBUG", "POPULATE", "200000", "junk")
    redis.command("EVAL", LOCKS, "0", "700")
    for i in range(LIMIT):
        assert device(b, password="bad%d" % i).options().status == 401
    poll(lambda: redis.keys("t:ul:auth:jdoe") or None, "the lock written",
         timeout=5, interval=0.1)
    assert device(b, device_id="B1").options().status == 401
    redis.command("CONFIG", "SET", "slowlog-log-slower-than", str(SLOW_US))
    redis.command("SLOWLOG", "RESET")
    lift_all(redis, a, b)
    assert not redis.keys("t:u:auth:fake*")
    assert redis.command("SCARD", "t:locks:auth") == 0
    slow = [entry for entry in redis.command("SLOWLOG", "GET", "100")
            if entry[3] and entry[3][0].upper() == b"EVAL"]
    assert slow == [], [(entry[2], entry[3][:1]) for entry in slow]
    assert redis.command("DBSIZE") >= 200000
