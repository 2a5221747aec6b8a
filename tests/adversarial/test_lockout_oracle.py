"""Issue 10, point 2: the cache must not be a password oracle during a
lockout, a device known good before the lockout keeps syncing through it,
and an attacker who knows a user name cannot stop that device.

The credential source is nginx's own auth_basic in a second server (the
"directory"), so its access log is the record of every question the
gateway asked; the recording backend is the record of what got through."""

import time

import pytest

from preauth_attack import (auth, gateway_config, htpasswd_line, last_entry,
                            log_entries, poll, report, send,
                            start_with_directory, wait_entries)

NGINX_CONFIG = gateway_config("""
    eas_preauth "ActiveSync";
    eas_preauth_cache zone=auth valid=1s invalid=1s;
    eas_preauth_request /_directory answer=status;
    eas_preauth_lockout user=3 address=10 window=10m time=10m;
""", listen=["127.0.0.1:${port}", "[::1]:${port}"])

PHONE = ("jdoe", "secret", "PHONE1", "127.0.0.2")


@pytest.fixture(scope="module")
def users():
    return [htpasswd_line("jdoe", "secret"), htpasswd_line("amy", "apple"),
            htpasswd_line("user7", "pw7")]


@pytest.fixture
def gateway(nginx_factory, backend, users):
    return start_with_directory(nginx_factory, NGINX_CONFIG, users,
                                backend_port=backend.port)


def asked(nginx, user=None, status=None):
    """The questions the directory answered (its own log)."""
    return [e for e in log_entries(nginx, "directory.log")
            if (user is None or e["user"] == user)
            and (status is None or e["status"] == status)]


def lock(nginx, user="jdoe", source="127.0.0.3", device="EVIL"):
    for i in range(3):
        status, _ = send(nginx.port, user, "guess-%d" % i, device, source)
        assert status == 401
    # the third failure locked the user: the source saw exactly three
    poll(lambda: len(asked(nginx, user, "401")) == 3, "three refusals")


def test_no_password_oracle_during_a_lockout(gateway, backend):
    """While jdoe is locked, guesses from new devices and addresses get the
    same answer whatever the password, the right one included, and none
    reaches the directory: the attacker's tries per window stay at the
    configured three."""
    assert send(gateway.port, *PHONE)[0] == 200
    lock(gateway)
    before = len(wait_entries(gateway, 4))      # the login, three guesses

    guesses, right = 300, set(range(25, 300, 50))
    started = time.monotonic()
    answers = []
    for i in range(guesses):
        password = "secret" if i in right else "guess-x%d" % i
        status, _ = send(gateway.port, "jdoe", password, "EVIL%d" % (i % 7),
                         "127.0.0.%d" % (3 + i % 20))
        answers.append(status)
    elapsed = time.monotonic() - started

    report("lockout guesses",
           "%d guesses in %.2f s (%.0f/s) during a lockout; right password "
           "answered %s, wrong ones %s; tries that reached the source "
           "per window: %d (limit 3)"
           % (guesses, elapsed, guesses / elapsed,
              sorted({answers[i] for i in right}),
              sorted({a for i, a in enumerate(answers) if i not in right}),
              len(asked(gateway, "jdoe", "401"))))

    assert set(answers) == {401}, "the answer depends on the password"
    logged = wait_entries(gateway, before + guesses)[before:]
    assert {(e["auth"], e["reason"]) for e in logged} == \
        {("locked", "auth_user_locked")}
    assert len(asked(gateway, "jdoe", "401")) == 3
    assert len(asked(gateway, "jdoe")) == 4        # three guesses, a login
    assert [r.header("Authorization") for r in backend.requests] == \
        [auth("jdoe", "secret")]


def test_the_users_own_logins_do_not_reset_the_count(gateway, backend):
    """An attacker interleaving guesses with the phone's logins gets no
    more than three tries a window: a success does not clear the count."""
    synced = []
    for i in range(4):
        send(gateway.port, "jdoe", "wrong-%d" % i, "EVIL%d" % i,
             "127.0.0.3")
        logins = len(asked(gateway, "jdoe", "200"))

        # the phone, until the directory itself verified it again (its
        # cached answer lives 1 s)
        def verified():
            assert send(gateway.port, *PHONE)[0] == 200
            synced.append(i)
            return len(asked(gateway, "jdoe", "200")) > logins

        poll(verified, "the phone verified by the directory")

    assert len(asked(gateway, "jdoe", "401")) == 3
    # each guess's own line (two workers log in either order)
    assert [last_entry(gateway, "EVIL%d" % i)["auth"] for i in range(4)] \
        == ["invalid", "invalid", "invalid", "locked"]
    assert len(backend.requests) == len(synced)


def test_known_good_phone_syncs_past_valid_during_a_lock(gateway, backend):
    """The phone that verified before the lock is verified again by the
    directory when its cached answer (valid=1s) runs out, and keeps
    syncing; a new device with the same password stays locked out."""
    assert send(gateway.port, *PHONE)[0] == 200
    lock(gateway)
    statuses = []

    def verified_again_during_the_lock():
        status, _ = send(gateway.port, *PHONE)
        statuses.append(status)
        assert status == 200, "the known-good phone was refused"
        return len(asked(gateway, "jdoe", "200")) >= 3

    poll(verified_again_during_the_lock, "two verifications past valid")
    assert send(gateway.port, "jdoe", "secret", "NEWPHONE",
                "127.0.0.4")[0] == 401
    assert last_entry(gateway, "NEWPHONE")["reason"] == "auth_user_locked"
    assert len(backend.requests) == 1 + len(statuses)
    assert {r.header("Authorization") for r in backend.requests} == \
        {auth("jdoe", "secret")}


def test_spraying_the_user_cannot_stop_the_known_good_phone(gateway,
                                                            backend):
    """Wrong passwords for jdoe from many addresses and devices, with and
    without DeviceIds the attacker makes up, before and during the lock:
    the phone syncs throughout, past its cached answer's lifetime."""
    assert send(gateway.port, *PHONE)[0] == 200
    sent = [0]

    def spray_then_sync():
        for _ in range(5):
            n = sent[0] = sent[0] + 1
            send(gateway.port, "jdoe", "spray-%d" % n, "X%d" % n,
                 "127.0.1.%d" % (n % 200 + 1))
        status, _ = send(gateway.port, *PHONE)
        assert status == 200, "the phone was stopped after %d" % sent[0]
        return len(asked(gateway, "jdoe", "200")) >= 3

    poll(spray_then_sync, "the phone verified twice past valid", 30)
    assert len(asked(gateway, "jdoe", "401")) == 3
    assert {r.header("Authorization") for r in backend.requests} == \
        {auth("jdoe", "secret")}


def test_a_guess_with_a_known_device_id_gets_no_answer(gateway, backend):
    """An attacker who also knows the phone's DeviceId gets no oracle
    either: a wrong password with it ends that device's exemption for the
    lock, so the right password after it is refused like any other."""
    assert send(gateway.port, *PHONE)[0] == 200
    lock(gateway)

    assert send(gateway.port, "jdoe", "guess", "PHONE1", "127.0.0.3")[0] \
        == 401
    assert send(gateway.port, "jdoe", "secret", "PHONE1", "127.0.0.3")[0] \
        == 401
    assert send(gateway.port, *PHONE)[0] == 401
    assert len(asked(gateway, "jdoe")) == 4
    assert len(backend.requests) == 1


def test_address_lock_spares_the_known_good_phones_behind_it(gateway,
                                                             backend):
    """Password spraying from a carrier NAT address locks the address; a
    phone behind it that verified before keeps syncing (past valid), a
    new login from it is refused."""
    nat = "127.0.0.9"
    assert send(gateway.port, "user7", "pw7", "PHONE7", nat)[0] == 200

    for i in range(10):
        assert send(gateway.port, "ghost%d" % i, "Spring2026!", "S%d" % i,
                    nat)[0] == 401
    assert send(gateway.port, "amy", "apple", "AMY1", nat)[0] == 401
    assert last_entry(gateway, "AMY1")["reason"] == "auth_address_locked"

    def phone_reverified():
        assert send(gateway.port, "user7", "pw7", "PHONE7", nat)[0] == 200
        return len(asked(gateway, "user7", "200")) >= 2

    poll(phone_reverified, "the phone verified again past valid")
    assert asked(gateway, "amy") == []
    assert {r.header("Authorization") for r in backend.requests} == \
        {auth("user7", "pw7")}


def test_ipv6_clients_are_counted_by_their_64(gateway, backend):
    """An IPv6 attacker has a whole /64 to send from: the address counter
    is the prefix's (here ::1's, "::/64"), and the log names it."""
    mark = gateway.mark()
    for i in range(10):
        assert send(gateway.port, "ghost%d" % i, "x", "S%d" % i,
                    "::1")[0] == 401
    assert send(gateway.port, "amy", "apple", "AMY6", "::1")[0] == 401
    assert last_entry(gateway, "AMY6")["reason"] == "auth_address_locked"
    lines = gateway.error_lines_since(mark)
    assert any('address "::/64" locked out for 600 s' in line
               for line in lines)
    assert any('address "::/64" is locked out for' in line
               and 'user "amy"' in line for line in lines)
    assert backend.requests == []
