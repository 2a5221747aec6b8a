"""Issue 10, point 3: a full pre-authentication zone must not turn the
lockout off.  A spray of invented user names from many addresses fills a
small zone; counters already there are never dropped (a locked user stays
locked, a user part-way to a lock still locks), credentials give way to
counters, and once no counter can be kept the edge refuses new
verifications (503) with one alert, instead of letting them through
uncounted."""

import os
import re
import subprocess
import time

import pytest

from eastest.nginx import free_port
from preauth_attack import (auth, gateway_config, last_entry, report, send,
                            write_lines)

NGINX_CONFIG = gateway_config("""
    eas_preauth "ActiveSync";
    eas_preauth_cache zone=small valid=1h invalid=1h;
    eas_preauth_user_file ${dir}/users;
    eas_preauth_lockout user=3 address=50 window=10m time=10m;
""", zones="eas_preauth_zone zone=small:64k;", directory=False)

SPRAY_MAX = 5000
FULL_ALERT = r'\[alert\] .*eas: zone "small" is full'


def sha_line(user, password):
    return subprocess.run(["htpasswd", "-nbs", user, password],
                          stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()


@pytest.fixture
def gateway(nginx_factory, backend):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=port,
                          backend_port=backend.port)
    write_lines(os.path.join(nginx.dir, "users"),
                [sha_line("jdoe", "secret"), sha_line("amy", "apple"),
                 sha_line("user7", "pw7")])
    nginx.expected_alerts.append(FULL_ALERT)
    nginx.start(ports=(port,))
    nginx.port = port
    return nginx


def test_full_zone_keeps_every_counter_and_fails_closed(gateway, backend):
    port = gateway.port
    mark = gateway.mark()
    started = time.monotonic()

    # before the spray: a phone known good, a locked user, a user with
    # one failure
    assert send(port, "user7", "pw7", "PHONE7", "127.0.0.2")[0] == 200
    for i in range(3):
        assert send(port, "jdoe", "guess-%d" % i, "EVIL", "127.0.0.3")[0] \
            == 401
    assert send(port, "amy", "typo", "AMY1", "127.0.0.4")[0] == 401

    # the spray: invented names from a hundred addresses, until refused
    filled = None
    for i in range(SPRAY_MAX):
        status, headers = send(port, "ghost%d" % i, "x", "G%d" % i,
                               "127.0.1.%d" % (i % 100 + 1))
        if status == 503:
            filled = i + 1
            assert headers.get("Retry-After") == "600"
            break
        assert status == 401
    assert filled is not None, \
        "%d invented names and the zone never refused one" % SPRAY_MAX
    report("zone full",
           "64k zone: %d requests of invented names fill it; then new "
           "verifications are answered 503" % filled)

    # a new name is refused, without asking anyone
    assert send(port, "ghost-new", "x", "GN", "127.0.0.5")[0] == 503
    assert last_entry(gateway, "GN")["auth"] == "full"

    # the locked user is still locked: the right password from a new
    # device is refused
    assert send(port, "jdoe", "secret", "NEWDEV", "127.0.0.6")[0] == 401
    assert last_entry(gateway, "NEWDEV")["reason"] == "auth_user_locked"

    # the user with one failure before the spray locks at the third
    mark2 = gateway.mark()
    for i in range(2):
        assert send(port, "amy", "typo%d" % i, "AMY1", "127.0.0.4")[0] \
            == 401
    assert any('user "amy" locked out for 600 s after 3 failures' in line
               for line in gateway.error_lines_since(mark2))
    assert send(port, "amy", "apple", "AMY2", "127.0.0.7")[0] == 401
    assert last_entry(gateway, "AMY2")["reason"] == "auth_user_locked"

    # the known-good phone still syncs, and user7's credentials are still
    # in the cache: a new device of his is answered from it, no counter
    # needed
    assert send(port, "user7", "pw7", "PHONE7", "127.0.0.2")[0] == 200
    assert send(port, "user7", "pw7", "TABLET7", "127.0.0.8")[0] == 200
    assert last_entry(gateway, "TABLET7")["auth"] == "cached"

    elapsed = time.monotonic() - started
    alerts = [line for line in gateway.error_lines_since(mark)
              if re.search(FULL_ALERT, line)]
    assert 1 <= len(alerts) <= 1 + int(elapsed // 60), alerts
    # nothing but the phone got through
    assert [r.header("Authorization") for r in backend.requests] == \
        [auth("user7", "pw7")] * 3


def test_credentials_never_push_counters_out(gateway, backend):
    """Valid logins (one user, many spellings) beyond the credentials'
    budget push out only older credentials: a user part-way to a lock
    still locks.  (Main kept this too, by dropping credentials first;
    the budgets must not lose it.)"""
    port = gateway.port
    assert send(port, "amy", "typo", "AMY1", "127.0.0.4")[0] == 401
    assert send(port, "amy", "typo2", "AMY1", "127.0.0.4")[0] == 401

    for i in range(400):
        assert send(port, "D%d\\user7" % i, "pw7", "PHONE7",
                    "127.0.0.2")[0] == 200

    assert send(port, "amy", "typo3", "AMY1", "127.0.0.4")[0] == 401
    assert send(port, "amy", "apple", "AMY2", "127.0.0.7")[0] == 401
    assert last_entry(gateway, "AMY2")["reason"] == "auth_user_locked"
    assert len(backend.requests) == 400
