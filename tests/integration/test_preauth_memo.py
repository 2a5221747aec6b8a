"""The connection's digest memo (docs/authentication.md, "The digest
memo"): a keep-alive or HTTP/2 connection that sends the same credentials
again has their digests taken from the connection instead of hashed; any
other credentials on that connection are verified as ever.  Asserted from
the backend's own record: exactly the requests with the right password
reached it, each with its own Authorization header."""

import base64
import http.client
import subprocess

import pytest

from eastest.h2client import H2Client
from eastest import confs
from eastest.nginx import start_gateway

EAS = "/Microsoft-Server-ActiveSync"

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/eas.log memo;",
    "keepalive_requests 1000;",
    confs.PREAUTH_CACHED, """
    eas_preauth_user_file ${dir}/users;
    eas_preauth_lockout user=20 address=50 window=1m time=60s;
    """,
    confs.eas_location(),
    confs.eas_under("/second", "eas_preauth_cache zone=other;",
                    "eas_preauth_user_file ${dir}/second-users;"),
    http=confs.json_log("memo", status="$status", auth="$eas_auth",
                        user="$eas_auth_user", device="$eas_device_id"),
    zones=[confs.AUTH_ZONE, "eas_preauth_zone zone=other:1m;"],
    listen=["127.0.0.1:${port}", "127.0.0.1:${h2c_port} http2"])

USERS = {"alice": "alice-right-1", "bob": "bob-right-22"}


def htpasswd(user, password):
    out = subprocess.run(["htpasswd", "-nbB", "-C", "4", user, password],
                         check=True, capture_output=True, text=True,
                         timeout=30).stdout
    return out.strip()


@pytest.fixture
def gateway(nginx_factory, backend):
    users = "".join(htpasswd(user, password) + "\n"
                    for user, password in USERS.items())
    # alice has another password at the second location
    second = htpasswd("alice", "alice-second") + "\n"
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         files={"users": users, "second-users": second},
                         more_ports=("h2c_port",), backend_port=backend.port)


def basic(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode())
    return "Basic " + token.decode()


def target(device="MEMO1", prefix=""):
    return ("%s%s?Cmd=Sync&User=u&DeviceId=%s&DeviceType=iPhone"
            % (prefix, EAS, device))


def headers(user, password, n):
    return {"Authorization": basic(user, password),
            "MS-ASProtocolVersion": "14.1", "Content-Length": "0",
            "X-Memo-Seq": str(n)}


def received(backend):
    """(sequence number, Authorization) of what reached the backend."""
    return sorted((int(r.header("X-Memo-Seq")), r.header("Authorization"))
                  for r in backend.requests)


# Each step: user, password, device, location prefix, expected status.
# The right password is sent three times first (the memo is made on a
# connection's second request and used from its third), then every
# neighbour of it: one character changed (same length), longer, shorter,
# another user, another device, another location and zone.
STEPS = [
    ("alice", "alice-right-1", "MEMO1", "", 200),
    ("alice", "alice-right-1", "MEMO1", "", 200),
    ("alice", "alice-right-1", "MEMO1", "", 200),
    ("alice", "alice-right-2", "MEMO1", "", 401),
    ("alice", "alice-right-1", "MEMO1", "", 200),
    ("alice", "alice-right-1x", "MEMO1", "", 401),
    ("alice", "alice-right-", "MEMO1", "", 401),
    ("alice", "alice-right-1", "MEMO1", "", 200),
    ("bob", "alice-right-1", "MEMO1", "", 401),
    ("bob", "bob-right-22", "MEMO1", "", 200),
    ("alice", "alice-right-1", "MEMO2", "", 200),
    ("alice", "alice-right-1", "MEMO2", "/second", 401),
    ("alice", "alice-second", "MEMO2", "/second", 200),
    ("alice", "alice-second", "MEMO2", "", 401),
    ("alice", "alice-right-1", "MEMO1", "", 200),
]


def expected(steps):
    return sorted((n, basic(user, password))
                  for n, (user, password, _, _, status) in enumerate(steps)
                  if status == 200)


def test_keepalive_connection_verifies_every_other_credential(gateway,
                                                              backend):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        statuses = []
        for n, (user, password, device, prefix, _) in enumerate(STEPS):
            conn.request("POST", target(device, prefix), b"",
                         headers(user, password, n))
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
            # one connection throughout: nginx keeps it open
            assert not reply.will_close
    finally:
        conn.close()

    assert statuses == [step[4] for step in STEPS]
    backend.wait_for(len(expected(STEPS)))
    assert received(backend) == expected(STEPS)


def test_same_credentials_spelled_otherwise_are_read_again(gateway,
                                                          backend):
    """The header memo keys on the header's bytes: the same user and
    password in another spelling of the header are decoded anew, and a
    header differing only in its scheme's case or spacing is no key to
    another's credentials."""
    token = basic("alice", "alice-right-1").split(" ", 1)[1]
    wrong = basic("alice", "alice-right-2").split(" ", 1)[1]
    sent = [("Basic " + token, 200), ("Basic " + token, 200),
            ("basic " + token, 200), ("Basic  " + token, 200),
            ("BASIC " + wrong, 401), ("BASIC " + token, 200),
            ("Basic " + wrong, 401), ("Basic " + token, 200)]
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        statuses = []
        for n, (value, _) in enumerate(sent):
            fields = headers("alice", "x", n)
            fields["Authorization"] = value
            conn.request("POST", target(), b"", fields)
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        conn.close()

    assert statuses == [status for _, status in sent]
    passed = [(n, value) for n, (value, status) in enumerate(sent)
              if status == 200]
    backend.wait_for(len(passed))
    assert received(backend) == sorted(passed)


def test_http2_streams_with_other_credentials_are_verified(gateway,
                                                           backend):
    with H2Client(gateway.h2c_port, tls=False) as client:
        statuses = []
        for n, (user, password, device, prefix, _) in enumerate(STEPS):
            sid = client.request("POST", target(device, prefix),
                                 list(headers(user, password, n).items())
                                 [:-2] + [("x-memo-seq", str(n))],
                                 body=b"")
            statuses.append(client.response(sid, timeout=30)[0])

        assert statuses == [step[4] for step in STEPS]

        # streams open at once on the memo's connection, right and wrong
        # credentials interleaved
        base = len(STEPS)
        mixed = [("alice", "alice-right-1", 200), ("alice", "wrong", 401),
                 ("bob", "bob-right-22", 200), ("bob", "alice-right-1", 401),
                 ("alice", "alice-right-1", 200)]
        sids = [client.request("POST", target(),
                               list(headers(user, password, base + i)
                                    .items())[:-2]
                               + [("x-memo-seq", str(base + i))], body=b"")
                for i, (user, password, _) in enumerate(mixed)]
        assert [client.response(sid, timeout=30)[0] for sid in sids] == \
            [status for _, _, status in mixed]

    steps = STEPS + [(u, p, "MEMO1", "", s) for u, p, s in mixed]
    backend.wait_for(len(expected(steps)))
    assert received(backend) == expected(steps)


def test_the_devices_key_follows_the_deviceid_through_a_lockout(gateway,
                                                               backend):
    """One header, its three digests taken from the connection at once:
    the known-good device's key is of the DeviceId sent, so that the same
    header naming another device on that connection is no known-good
    device and stays locked out, while the device that verified before
    the lockout keeps working, before and after the other."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        def send(device, n, user="alice", password="alice-right-1"):
            conn.request("POST", target(device), b"",
                         headers(user, password, n))
            reply = conn.getresponse()
            reply.read()
            return reply.status

        # MEMO1 known good, and remembered whole from the third request
        assert [send("MEMO1", n) for n in range(3)] == [200] * 3

        # twenty wrong passwords lock alice out (user=20), from another
        # connection
        other = http.client.HTTPConnection("127.0.0.1", gateway.port,
                                           timeout=30)
        try:
            for i in range(20):
                other.request("POST", target("GUESS"), b"",
                              headers("alice", "wrong-%d" % i, 100 + i))
                reply = other.getresponse()
                reply.read()
                assert reply.status == 401
        finally:
            other.close()

        assert send("MEMO1", 3) == 200
        assert send("MEMO1", 4) == 200
        assert send("MEMO2", 5) == 401
        assert send("MEMO1", 6) == 200
        assert send("MEMO3", 7) == 401
        assert send("MEMO1", 8) == 200
    finally:
        conn.close()

    passed = [0, 1, 2, 3, 4, 6, 8]
    backend.wait_for(len(passed))
    assert received(backend) == [(n, basic("alice", "alice-right-1"))
                                 for n in passed]
