"""Issue 11, point 7 (the pre-authentication part): resources held by long
requests.  A password check's task data (its 32 KiB crypt_data) is freed
when the task ends, not with the request (a held Ping lives up to an
hour); a check waits in the thread pool no longer than
eas_preauth_timeout, and a full queue is not a 500: both are answered
503 with Retry-After, and the late task completes safely after its
request moved on."""

import os
import re
import subprocess
import threading
import time

import pytest

from eastest.client import EasClient
from eastest.nginx import free_port

EAS = "/Microsoft-Server-ActiveSync"
QUERY = "?Cmd=Settings&User=u&DeviceId=DEV1&DeviceType=iPhone"

NGINX_CONFIG = """
thread_pool one threads=1 max_queue=1;

http {
    ${temp_paths}
    log_format auth '$status $eas_auth $eas_reason $sent_http_retry_after';
    eas_preauth_zone zone=auth:1m;

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/auth.log auth;

        eas_preauth "ActiveSync";
        eas_preauth_cache zone=auth invalid=1s;
        eas_preauth_user_file ${dir}/users;
        eas_preauth_lockout user=off address=off;

        location /Microsoft-Server-ActiveSync {
            eas on;
            proxy_pass http://127.0.0.1:${backend_port};
        }

        location /queue/Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth_thread_pool one;
            proxy_pass http://127.0.0.1:${backend_port}${eas};
        }

        location /deadline/Microsoft-Server-ActiveSync {
            eas on;
            ${deadline}
            proxy_pass http://127.0.0.1:${backend_port}${eas};
        }
    }
}
"""


def htpasswd(user, password, cost):
    return subprocess.run(["htpasswd", "-nbB", "-C", str(cost), user,
                           password], stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()


@pytest.fixture(scope="module")
def users():
    # a cost-14 bcrypt takes most of a second: far longer than 100 ms
    return [htpasswd("fast", "fast-pw", 4), htpasswd("slow", "slow-pw", 14)]


@pytest.fixture
def gateway(request, nginx_factory, backend, users):
    # only the deadline test needs the new directive: the others run on
    # the code before it too, and fail there for their own reason
    deadline = ("eas_preauth_timeout 100ms;" if "deadline" in
                request.node.name else "")
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=port, eas=EAS,
                          backend_port=backend.port, deadline=deadline)
    with open(os.path.join(nginx.dir, "users"), "w") as f:
        f.write("\n".join(users) + "\n")
    nginx.start(ports=(port,))
    nginx.port = port
    return nginx


def client(nginx, prefix, user, password):
    return EasClient("http://127.0.0.1:%d%s%s" % (nginx.port, prefix, EAS),
                     user=user, password=password)


def settings(nginx, prefix, user, password):
    return client(nginx, prefix, user, password).command("Settings", b"")


def poll_log(nginx, mark, pattern, what, timeout=30.0):
    lines = []

    def found():
        lines[:] = [line for line in nginx.error_lines_since(mark)
                    if re.search(pattern, line)]
        return lines

    deadline = time.monotonic() + timeout
    while not found():
        if time.monotonic() > deadline:
            raise AssertionError("no %s within %.0f s" % (what, timeout))
        time.sleep(0.05)
    return lines


def test_a_full_queue_is_a_503_with_retry_after(gateway, backend):
    mark = gateway.mark()
    replies = []

    def attempt(i):
        replies.append(settings(gateway, "/queue", "slow", "wrong-%d" % i))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(reply.status for reply in replies)
    # two workers, each one thread and one place in the queue
    assert len(statuses) == 8 and statuses.count(503) >= 4, statuses
    assert set(statuses) <= {401, 503}
    assert all(reply.header("Retry-After") == "30"
               for reply in replies if reply.status == 503)
    log = gateway.wait_for_access_log(8, name="auth.log")
    assert sorted(line for line in log if line.startswith("503")) == \
        ["503 busy auth_queue_full 30"] * statuses.count(503)

    ours = [line for line in gateway.error_lines_since(mark)
            if "the thread pool's queue is full" in line]
    assert 1 <= len(ours) <= gateway.worker_processes
    assert "[error]" in ours[0] and 'user "slow"' in ours[0]
    assert backend.requests == []


def test_a_check_past_its_deadline_is_a_503_and_ends_safely(gateway,
                                                            backend):
    mark = gateway.mark()

    late = settings(gateway, "/deadline", "slow", "wrong")

    assert late.status == 503
    assert late.header("Retry-After") == "1"
    assert gateway.wait_for_access_log(1, name="auth.log") == \
        ["503 busy auth_timeout 1"]
    assert poll_log(gateway, mark, r"credential check not done within "
                    r"eas_preauth_timeout, user \"slow\"", "deadline line")

    # the task ends later, after its request: freed, nothing else
    poll_log(gateway, mark, r"eas preauth thread done after its request",
             "late completion")

    # and the worker is still fine
    assert settings(gateway, "", "fast", "fast-pw").status == 200
    assert [r.eas.command for r in backend.requests] == ["Settings"]


def test_the_check_data_is_freed_while_the_request_is_held(gateway,
                                                           backend):
    mark = gateway.mark()
    phone = client(gateway, "", "fast", "fast-pw")
    replies = []
    held = threading.Thread(
        target=lambda: replies.append(phone.ping(heartbeat=600, timeout=30)))
    held.start()
    try:
        backend.wait_for(1, timeout=10)
        freed = poll_log(gateway, mark,
                         r"eas preauth task data freed: \d+ bytes",
                         "freed task data")
        size = int(re.search(r"freed: (\d+) bytes", freed[0]).group(1))
        assert size >= 32 * 1024            # crypt_data went with it
    finally:
        backend.notify("5")
        held.join(timeout=30)

    assert replies and replies[0].status == 200


def test_a_reload_waits_for_a_check_under_way(gateway, backend):
    """A worker shutting down (a reload) answers the check under way; it
    does not leave its connection open and exit ("open socket left")."""
    mark = gateway.mark()
    replies = []
    errors = []

    def attempt():
        try:
            replies.append(settings(gateway, "", "slow", "slow-pw"))
        except Exception as e:             # the connection reset
            errors.append(e)

    thread = threading.Thread(target=attempt)
    thread.start()
    try:
        poll_log(gateway, mark, r"task #\d+ added to thread pool",
                 "check under way")
        gateway.reload()
    finally:
        thread.join(timeout=60)

    assert not errors, errors
    assert replies and replies[0].status == 200
    assert [r.eas.command for r in backend.requests] == ["Settings"]
    assert not [line for line in gateway.error_lines_since(mark)
                if "open socket" in line or "[alert]" in line]
