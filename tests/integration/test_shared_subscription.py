"""Each worker's subscription to the gateways' channel stays alive
(eas_shared_state, docs/scale-out.md#failure-behaviour): a storm of
CLIENT KILL TYPE pubsub leaves every worker subscribed again within
seconds, and a block made on A is in force on B afterwards (the
backend's own record shows nothing got through B); a reply and the end
of the connection read in one event are both seen (the cause of the
deaf worker: its socket stayed in CLOSE-WAIT); a subscription that stops
answering is found by its PING, dropped, made again, and logged;
eas_status tells how many workers are subscribed.  Redis refusing the
setup (NOAUTH, WRONGPASS) is named as such, once per worker, even after
a reload while the gateway was down.  Real nginx (two workers), real
redis-server."""

import os
import random
import signal
import socket
import time

import pytest

from eastest.backends import EasBackend
from eastest.nginx import free_port
from eastest.redis import RedisServer, RogueRedis
from eastest.waiting import poll

# the gateways of the shared rules' tests: config, requests, records
from test_shared_rules import (CHANNEL, NGINX_CONFIG, admin, blocked,
                               device, gateway, lines, subscribed, through)

WORKERS = 2
STORM_ROUNDS = 8            # bounded: on main, 4 runs of 4 failed at
STORM_KILLS = 300           # storm 1, 1, 4 or 5


@pytest.fixture
def backend():
    with EasBackend(hold_cap=0) as server:
        yield server


def all_subscribed(redis, count, timeout=10, gateways=(), what=""):
    try:
        poll(lambda: subscribed(redis) == count or None,
             "%d subscriptions on Redis%s" % (count, what), timeout=timeout)
    except AssertionError as err:
        raise AssertionError("%s: it has %d; workers' sockets to it in "
                             "CLOSE-WAIT: %d" % (
                                 err, subscribed(redis),
                                 close_wait(redis, gateways)))


def close_wait(redis, gateways):
    """Sockets of the gateways' workers to Redis that Redis closed and
    the worker never did (CLOSE-WAIT)."""
    inodes = set()
    for nginx in gateways:
        for pid in workers(nginx):
            fds = "/proc/%d/fd" % pid
            for fd in os.listdir(fds):
                try:
                    target = os.readlink(os.path.join(fds, fd))
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if fields[3] == "08" and remote_port == redis.port \
                    and fields[9] in inodes:
                count += 1
    return count


def workers(nginx):
    """The pids of nginx's workers (children of its master)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == nginx.process.pid:
            out.append(int(name))
    return out


def status(nginx):
    import json
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/eas/status"
                                % nginx.port, timeout=10) as reply:
        return json.loads(reply.read().decode())["shared_state"]


def prometheus(nginx):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/eas/status?format="
                                "prometheus" % nginx.port,
                                timeout=10) as reply:
        return reply.read().decode()


class Killer:
    """One connection to Redis sending CLIENT KILL TYPE pubsub."""

    def __init__(self, redis):
        self.sock = socket.create_connection(("127.0.0.1", redis.port),
                                             timeout=10)
        self.reader = self.sock.makefile("rb")

    def kill(self):
        self.sock.sendall(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n"
                          b"$4\r\nTYPE\r\n$6\r\npubsub\r\n")
        return self.reader.readline()

    def close(self):
        self.reader.close()
        self.sock.close()


def test_storm_of_kills_leaves_every_worker_subscribed(nginx_factory,
                                                       redis, backend):
    """Rounds of 300 CLIENT KILL TYPE pubsub, spaced at random by up to
    a few milliseconds (so that some land while a worker's subscription
    is being made and its confirmation is in flight): after each round,
    within seconds, Redis counts every worker of both gateways
    subscribed again.  Then a block made on A refuses the device on B,
    and the backend's own record shows nothing of it got through B."""
    a = gateway(nginx_factory, redis, backend, "A")
    b = gateway(nginx_factory, redis, backend, "B")
    all_subscribed(redis, 2 * WORKERS)
    assert not blocked(b, "ApplSTORM")
    rng = random.Random(16)
    killer = Killer(redis)
    try:
        for round_ in range(STORM_ROUNDS):
            for _ in range(STORM_KILLS):
                killer.kill()
                if rng.random() < 0.5:
                    time.sleep(rng.random() * 0.004)
            all_subscribed(redis, 2 * WORKERS, gateways=(a, b),
                           what=" after storm %d" % (round_ + 1))
    finally:
        killer.close()
    for nginx in (a, b):
        poll(lambda: status(nginx)["subscribed"] == WORKERS,
             "every worker of %s subscribed in eas_status" % nginx.name)
    assert admin(a, "POST", "rules?access=block&device_id=ApplSTORM") \
        == {"ok": True, "shared": True}
    poll(lambda: blocked(b, "ApplSTORM"), "the block on B", interval=0.02)
    before = len(through(backend, b, "ApplSTORM"))
    for _ in range(4 * WORKERS):
        assert blocked(b, "ApplSTORM")
    assert len(through(backend, b, "ApplSTORM")) == before


def test_reply_and_end_of_stream_in_one_read(nginx_factory, redis,
                                             backend):
    """The exact condition behind the deaf worker: a message and the end
    of the connection reach the subscribed socket before the worker
    reads (its workers are stopped meanwhile).  Edge-triggered epoll
    tells that once: the worker must read to the end of the stream, see
    that Redis closed it and subscribe again at once, not leave the
    socket in CLOSE-WAIT (nor wait for its health check to find it)."""
    a = gateway(nginx_factory, redis, backend, "A",
                config=NGINX_CONFIG.replace("retry=200ms", "retry=30s"))
    all_subscribed(redis, WORKERS)
    mark = a.mark()
    pids = workers(a)
    assert len(pids) == WORKERS
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        # a message (of a zone nobody has: ignored), written to both
        # sockets before Redis answers the PUBLISH; then both closed
        assert redis.command("PUBLISH", CHANNEL,
                             "P ffff 0 0 4 0 nope") == WORKERS
        assert redis.command("CLIENT", "KILL", "TYPE", "pubsub") == WORKERS
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    all_subscribed(redis, WORKERS, timeout=20, gateways=(a,))
    # made again because the close was read, not by the health check
    # (it would run only after retry=30s)
    assert not lines(a, mark, "did not answer PING")
    # Redis counts a subscription before the worker reads its confirmation
    poll(lambda: status(a)["subscribed"] == WORKERS, "subscribed workers")


def test_subscription_that_stops_answering_is_made_again(nginx_factory,
                                                         backend):
    """A Redis (impostor) that confirms SUBSCRIBE and then never answers
    on the subscribed connection, the socket left open: each worker's
    PING goes unanswered for "timeout", the subscription is dropped and
    made again, and that is logged (once a minute per worker)."""
    with RogueRedis([b""]) as rogue:
        a = gateway(nginx_factory, rogue, backend, "A", start=False)
        a.start(ports=(a.port,))
        poll(lambda: len(rogue.subscriptions) >= 3 * WORKERS or None,
             "subscriptions made again")
        poll(lambda: sum(1 for s in rogue.subscriptions if s["closed"])
             >= 2 * WORKERS or None, "mute subscriptions closed")
        said = lines(a, 0, "did not answer PING in 300 ms: made again")
        assert 1 <= len(said) <= WORKERS
        assert "the subscription of worker" in said[0]
        a.stop()


def test_status_tells_subscribed_workers(nginx_factory, redis, backend):
    """eas_status: "subscribed" (workers whose subscription is up) and
    "workers", apart from "up" (the command connection); Prometheus:
    nginx_eas_shared_state_subscribed and _workers.  Redis gone: 0
    subscribed; back: every worker again."""
    a = gateway(nginx_factory, redis, backend, "A")
    poll(lambda: status(a)["subscribed"] == WORKERS, "subscribed workers")
    state = status(a)
    assert state["workers"] == WORKERS and state["up"] == 1
    text = prometheus(a)
    assert "\nnginx_eas_shared_state_subscribed %d\n" % WORKERS in text
    assert "\nnginx_eas_shared_state_workers %d\n" % WORKERS in text
    redis.stop()
    poll(lambda: status(a)["subscribed"] == 0, "no subscribed worker")
    redis.start()
    poll(lambda: status(a)["subscribed"] == WORKERS, "subscribed again")


def auth_failures(redis):
    """Failed AUTHs Redis counted (its ACL log)."""
    total = 0
    for entry in redis.command("ACL", "LOG") or []:
        fields = dict(zip(entry[::2], entry[1::2]))
        if fields.get(b"reason") == b"auth":
            total += int(fields.get(b"count", 1))
    return total


def test_wrong_password_after_reload_said_by_each_worker(nginx_factory,
                                                         tmp_path,
                                                         backend):
    """Redis asks for a password the gateway does not have: each worker
    names the refusal (NOAUTH), never "a reply nothing asked for".  A
    reload with a wrong password_file while the gateway is down: each
    new worker says WRONGPASS once, however often it tries again."""
    port = free_port()
    with RedisServer(tmp_path / "r1", port=port) as redis:
        a = gateway(nginx_factory, redis, backend, "A")
        mark = a.mark()
    with RedisServer(tmp_path / "r2", port=port, password="right") as redis:
        poll(lambda: len(lines(a, mark, "NOAUTH")) >= WORKERS,
             "a NOAUTH line of each worker")
        assert not lines(a, mark, "nothing asked for")
        said = lines(a, mark, "refused the connection's setup: NOAUTH")
        assert len(said) == WORKERS, said
        assert "password_file" in said[0]
        # the gateway is down; its configuration gets a wrong password
        with open(os.path.join(a.dir, "redis.pw"), "w") as f:
            f.write("wrong\n")
        os.chmod(os.path.join(a.dir, "redis.pw"), 0o600)
        with open(a.conf_path) as f:
            text = f.read()
        with open(a.conf_path, "w") as f:
            f.write(text.replace("retry=200ms;", "retry=200ms "
                                 "password_file=redis.pw;"))
        mark = a.mark()
        a.reload()
        poll(lambda: len(lines(a, mark, "WRONGPASS")) >= WORKERS,
             "a WRONGPASS line of each new worker")
        # many more tries, still one line per worker
        tried = auth_failures(redis)
        poll(lambda: auth_failures(redis) >= tried + 10 or None,
             "ten more refused tries")
        said = lines(a, mark, "refused the connection's setup: WRONGPASS")
        assert len(said) == WORKERS, said
        assert "wrong" not in said[0].replace("WRONGPASS", "").lower() \
            .replace("wrongpass", "")
        assert not lines(a, mark, "nothing asked for")
        assert device(a, "ApplPW").options().status == 200
