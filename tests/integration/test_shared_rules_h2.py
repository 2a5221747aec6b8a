"""A rule's change of the admin API over HTTP/2 whose client leaves
while the answer waits for Redis (issue 16): the stream is ended then
(499), and Redis's answer, when it comes, goes to nobody.  Before, the
stream and its connection stayed for good: the worker's descriptors
grew with each one, and the graceful exit of a reload said "open socket
... left in connection" and aborted.  Redis is paused (SIGSTOP) so that
the answer waits; the client closes its connection (with and without a
GOAWAY) or resets the stream; the change is in force all the same.
The lifts of lockouts, which wait for Redis as well, are held to the
same."""

import os
import signal

from eastest.h2client import H2Client
from eastest.nginx import free_port
from eastest.waiting import poll

# the gateways of the shared rules' tests: config, requests
from test_shared_rules import (HASH, NGINX_CONFIG, USERS,  # noqa: F401
                               admin, backend, subscribed)
from test_shared_subscription import workers

# the answer waits for Redis up to "timeout": long enough here that
# every client leaves while its answer still waits; the h2 client's
# :authority is "localhost", a name the server must be known as
H2_CONFIG = NGINX_CONFIG.replace(
    "prefix=t: timeout=300ms", "prefix=t: timeout=10s").replace(
    "        listen 127.0.0.1:${port};\n",
    "        listen 127.0.0.1:${port};\n"
    "        listen 127.0.0.1:${h2c_port} http2;\n"
    "        server_name localhost;\n")

ADMIN = [("x-eas-admin", "1")]
LEFT = ("reset", "goaway", "dropped")
ROUNDS = 3                  # of each way to leave, each a change


def gateway_h2(nginx_factory, redis, backend):
    port, h2c_port = free_port(), free_port()
    nginx = nginx_factory(H2_CONFIG, start=False, port=port,
                          h2c_port=h2c_port, redis_url=redis.url,
                          backend_port=backend.port, name="A")
    nginx.port, nginx.h2c_port, nginx.name = port, h2c_port, "A"
    with open(os.path.join(nginx.dir, "users"), "w", encoding="utf-8") as f:
        f.write(USERS)
    nginx.start(ports=(port, h2c_port))
    poll(lambda: subscribed(redis) >= 2 or None, "both workers subscribed")
    return nginx


def descriptors(nginx):
    return sum(len(os.listdir("/proc/%d/fd" % pid))
               for pid in workers(nginx))


def in_file(nginx, device_id):
    """The rule is in the rules' file (a deleted one is a comment)."""
    try:
        with open(os.path.join(nginx.dir, "admin.rules"),
                  encoding="utf-8") as f:
            return ('block device_id="%s"' % device_id) in f.read()
    except FileNotFoundError:
        return False


def change(nginx, method, path, left):
    """The change sent over h2c; once it waits for Redis, the client
    leaves.  It waits once a request sent after it on the connection
    (a listing, answered at once) is answered and it is not."""
    client = H2Client(nginx.h2c_port, tls=False)
    try:
        sid = client.request(method, "/eas/admin/" + path, ADMIN)
        status, _, _ = client.response(
            client.request("GET", "/eas/admin/rules", ADMIN))
        assert status == 200
        assert client.pending(sid), client.response(sid)
        if left == "reset":
            with client.lock:
                client.conn.reset_stream(sid)
                client._flush()
        elif left == "dropped":
            client.sock.close()
    finally:
        client.close()


def test_h2_rule_change_client_gone_while_redis_paused(nginx_factory,
                                                      redis, backend):
    nginx = gateway_h2(nginx_factory, redis, backend)

    # the baseline: one change over h2 answered, its connection closed
    with H2Client(nginx.h2c_port, tls=False) as client:
        sid = client.request(
            "POST", "/eas/admin/rules?access=block&device_id=H2FIRST", ADMIN)
        status, _, body = client.response(sid)
        assert status == 200, body
    poll(lambda: descriptors(nginx) > 0 or None, "the workers' descriptors")
    baseline = descriptors(nginx)

    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        for n in range(ROUNDS):
            for left in LEFT:
                change(nginx, "POST", "rules?access=block&device_id=H2%s%d"
                       % (left.upper(), n), left)
        # a deletion waits the same way, and so do the lifts (siblings)
        for left in LEFT:
            change(nginx, "DELETE", "rules?device_id=H2%s0" % left.upper(),
                   left)
            change(nginx, "DELETE", "lockouts?user=jdoe", left)
            change(nginx, "DELETE", "lockouts?all=1", left)
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)

    # every connection gone, nothing kept: as many descriptors as before
    poll(lambda: descriptors(nginx) <= baseline or None,
         "the descriptors back to %d (now %d)"
         % (baseline, descriptors(nginx)), timeout=30)
    # each ended when its client left; the change reached Redis all the
    # same once it was back (its answer to nobody)
    ended = [line for line in nginx.access_log()
             if "HTTP/2.0\" 499 " in line]
    assert len(ended) == ROUNDS * len(LEFT) + 3 * len(LEFT), ended
    poll(lambda: any(b"h2dropped2" in key.lower()
                     for key in redis.command("HKEYS", HASH)) or None,
         "the last change on Redis")
    # the changes in force here, and written
    rules = str(admin(nginx, "GET", "rules")).upper()
    assert "H2DROPPED2" in rules and "H2RESET0" not in rules, rules
    assert in_file(nginx, "H2DROPPED2") and not in_file(nginx, "H2RESET0")

    # a graceful exit leaves no connection behind
    old = workers(nginx)
    mark = nginx.mark()
    nginx.reload()
    poll(lambda: not set(old) & set(workers(nginx)) or None,
         "the old workers' exit", timeout=30)
    lines = nginx.error_lines_since(mark)
    assert not [line for line in lines
                if "left in connection" in line or "aborting" in line], lines
