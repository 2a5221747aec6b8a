"""Guesses sent in parallel are not bounded by the lockout.

docs/authentication.md, "The lockout model", promises that no user gets
more than `user` password tries per `window`.  The lock is checked when a
request arrives and a failure is counted when the credential source
answers, so every guess that arrives while the first ones are still being
verified is checked against a count that does not hold them yet: thirty
guesses sent at once all pass the check, and the source (here nginx's own
auth_basic in a second server, with a bcrypt cost that an Active
Directory's round trip stands for) is asked far more than three times.
An attacker gets as many tries per window as he can keep in flight, and
the directory account that the lockout exists to protect is locked by
the directory itself.

The record is the directory's own access log: one line per question.
Now a try is reserved on the user's and the address's counters when the
source is asked, and a request that finds as many tries under way (and
failures counted) as the limit is answered 503 (busy) without asking;
a try whose client leaves before the answer counts as a failure."""

import http.server
import json
import socket
import subprocess
import threading

import pytest

from eastest.nginx import free_port
from preauth_attack import (EAS, auth, gateway_config, log_entries, poll,
                            send, start_with_directory)

NGINX_CONFIG = gateway_config("""
    eas_preauth "ActiveSync";
    eas_preauth_cache zone=auth valid=5m invalid=5m;
    eas_preauth_request /_directory;
    eas_preauth_lockout user=3 address=50 window=10m time=10m;
""")

GUESSES = 30
USER_LIMIT = 3


@pytest.fixture
def gateway(nginx_factory, backend):
    # a slow hash: each question takes the directory a while, as a real
    # directory's round trip does
    line = subprocess.run(["htpasswd", "-nbB", "-C", "11", "jdoe", "secret"],
                          stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()
    return start_with_directory(nginx_factory, NGINX_CONFIG, [line],
                                backend_port=backend.port)


def in_parallel(function, count):
    """function(i) for i in range(count), all released at once."""
    results = [None] * count
    barrier = threading.Barrier(count)

    def worker(i):
        barrier.wait(timeout=30)
        results[i] = function(i)

    threads = [threading.Thread(target=worker, args=(i,))
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_parallel_guesses_stay_within_the_user_limit(gateway, backend):
    statuses = in_parallel(
        lambda i: send(gateway.port, "jdoe", "guess-%d" % i, "EVIL%d" % i,
                       "127.0.0.%d" % (2 + i))[0], GUESSES)
    poll(lambda: len(log_entries(gateway)) == GUESSES, "every log line")

    asked = [json.loads(line) for line in
             gateway.access_log("directory.log")]
    assert [r.target for r in backend.requests] == []
    assert len(asked) <= USER_LIMIT, (
        "the directory was asked %d times for a user limit of %d"
        % (len(asked), USER_LIMIT))

    # the tries past the limit were not verified: busy while the first
    # ones were under way, locked once they were answered
    answers = [(e["status"], e["reason"]) for e in log_entries(gateway)]
    assert set(answers) <= {("401", "auth_invalid"),
                            ("503", "auth_user_busy"),
                            ("401", "auth_user_locked")}
    assert answers.count(("401", "auth_invalid")) == len(asked)
    assert ("503", "auth_user_busy") in answers
    assert sorted(set(statuses)) == [401, 503]

    # once they are answered the user is locked: the right password from
    # a new device is refused like any other
    assert send(gateway.port, "jdoe", "secret", "NEW", "127.0.0.99")[0] \
        == 401
    assert len(gateway.access_log("directory.log")) == len(asked)


def test_source_errors_give_their_tries_back(nginx_factory, backend):
    """A try whose source fails is not counted: its reserved place is
    given back, so that errors never make a user busy."""
    # the subrequest goes to a port nobody listens on: 502, a source error
    config = NGINX_CONFIG.replace(
        "proxy_pass http://127.0.0.1:${dir_port}/mailbox/;",
        "proxy_pass http://127.0.0.1:${dead_port}/mailbox/;")
    gateway = start_with_directory(nginx_factory, config, ["x:x"],
                                   dead_port=free_port(),
                                   backend_port=backend.port)
    port = gateway.port

    for i in range(USER_LIMIT + 2):
        status, _ = send(port, "jdoe", "pw-%d" % i, "PHONE", "127.0.0.2")
        assert status == 503
    poll(lambda: len(log_entries(gateway)) == USER_LIMIT + 2,
         "every log line")
    assert {e["reason"] for e in log_entries(gateway)} == {"auth_error"}
    assert backend.requests == []


HANG_UPS = 10


class HeldDirectory:
    """A directory that records each question when it arrives and
    answers it (401) only when the test lets it: the test hangs up the
    client in between."""

    def __init__(self):
        self.questions = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.questions.append(self.headers.get("Authorization"))
                outer.release.wait(timeout=10)
                try:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held_directory():
    with HeldDirectory() as directory:
        yield directory


def test_guesses_whose_client_hangs_up_are_counted(nginx_factory, backend,
                                                  held_directory):
    """A client that hangs up as soon as its guess is sent learns nothing
    but still has the directory try the password.  Such a try was never
    counted (the request ended before the answer came back), so a
    stream of hang-ups made the directory count failures without end,
    which locks the directory account, the very thing the lockout is
    there to prevent.  A try that ends without its answer now counts as
    a failure."""
    config = NGINX_CONFIG.replace(
        "proxy_pass http://127.0.0.1:${dir_port}/mailbox/;",
        "proxy_pass http://127.0.0.1:${held_port}/mailbox/;")
    gateway = start_with_directory(nginx_factory, config, ["x:x"],
                                   held_port=held_directory.port,
                                   backend_port=backend.port)
    port = gateway.port

    for i in range(HANG_UPS):
        before = len(log_entries(gateway))
        asked = len(held_directory.questions)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(("POST %s?Cmd=Sync&DeviceId=GONE%d&DeviceType=x "
                      "HTTP/1.1\r\nHost: x\r\nMS-ASProtocolVersion: 14.1"
                      "\r\nAuthorization: %s\r\nContent-Length: 0\r\n\r\n"
                      % (EAS, i, auth("jdoe", "gone-%d" % i))).encode())
        # the guess is at the directory, not yet answered: hang up
        try:
            poll(lambda: len(held_directory.questions) > asked
                 or len(log_entries(gateway)) > before,
                 "guess %d at the directory or answered" % i, 5.0)
        finally:
            sock.close()
        poll(lambda: len(log_entries(gateway)) > before,
             "the log line of hang-up %d" % i)

    assert len(held_directory.questions) <= USER_LIMIT, (
        "the directory was asked %d times for a user limit of %d"
        % (len(held_directory.questions), USER_LIMIT))
    assert backend.requests == []


@pytest.mark.xfail(strict=True, reason="the same credentials in flight "
                   "side by side are each asked of the source (counted once "
                   "since, see the next test)")
def test_a_stale_password_sent_side_by_side_is_asked_once(gateway, backend):
    """docs/authentication.md: a repeated wrong password "does not count
    again while that answer lives ... it is what keeps a stale phone from
    locking its user".  A phone sends its Ping, Sync and FolderSync on
    connections of their own; with a stale password, each one that
    arrives before the first answer is asked and counted, so one burst
    of a stale phone counts as many failures as it has requests."""
    statuses = in_parallel(
        lambda i: send(gateway.port, "jdoe", "stale", "PHONE",
                       "127.0.0.2")[0], USER_LIMIT)
    poll(lambda: len(log_entries(gateway)) == USER_LIMIT, "every log line")

    asked = gateway.access_log("directory.log")
    assert backend.requests == []
    assert len(asked) == 1, (
        "one stale password was asked and counted %d times" % len(asked))
    assert 200 not in statuses


def test_a_stale_password_sent_side_by_side_counts_once(gateway, backend):
    """The same burst: however many of its requests the source answers,
    they are one try, counted once, so the user is not locked by it and
    has USER_LIMIT - 1 tries left."""
    in_parallel(lambda i: send(gateway.port, "jdoe", "stale", "PHONE",
                               "127.0.0.2")[0], USER_LIMIT)
    poll(lambda: len(log_entries(gateway)) == USER_LIMIT, "every log line")

    for i in range(USER_LIMIT - 1):
        assert send(gateway.port, "jdoe", "other-%d" % i, "EVIL%d" % i,
                    "127.0.0.3")[0] == 401
    poll(lambda: len(log_entries(gateway)) == 2 * USER_LIMIT - 1,
         "the log lines of the guesses")
    answers = [e["reason"] for e in log_entries(gateway)]
    assert answers[USER_LIMIT:] == ["auth_invalid"] * (USER_LIMIT - 1), \
        "the burst of one stale password counted more than one failure"
    assert send(gateway.port, "jdoe", "secret", "LATE", "127.0.0.4")[0] \
        == 401
    poll(lambda: len(log_entries(gateway)) == 2 * USER_LIMIT,
         "the log line of the right password")
    assert log_entries(gateway)[-1]["reason"] == "auth_user_locked"
    assert backend.requests == []
