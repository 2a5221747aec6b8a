"""The admin API against what a black-box attack found (issue 19): query
values read as a form decoder reads them ("+" a space, %2B a plus), so
that "john smith" and "john+smith" are never taken for each other; an
unknown, repeated or empty parameter refused with 400 and one log line,
never widened into "everything" (which is asked for with all=1); a change
needs a Host and an Origin the server is known as (DNS rebinding), or an
"eas_admin origin="; the audit line names a user only as verified when
the location's auth_basic checked it ("claimed user" otherwise), and
escapes what it quotes; a JSON body read whole however it arrives;
strings and numbers only; every answer valid JSON, nosniff, no-store.
What changed is read from the API's own state and the error log."""

import base64
import json

import pytest

from eastest.client import EasClient, raw_http
from eastest import confs
from eastest.nginx import free_port, start_gateway

ADMIN = confs.ADMIN_AUTH

ADMIN_API = "eas_admin preauth_zone=auth device_zone=devices;"

NGINX_CONFIG = confs.gateway(
    "server_name gw.example.test *.wild.example.test;",
    confs.eas_location(
        confs.PREAUTH,
        "eas_preauth_lockout user=3 address=100 window=1m time=1h;",
        "eas_devices devices;"),
    confs.location("/eas/admin/", confs.ADMIN_ONLY, ADMIN_API),
    # what the brief warns against: an address rule only
    confs.location("/ip/admin/", "allow 127.0.0.1;", "deny all;",
                   ADMIN_API),
    # "satisfy any": allow lets the request in, the password unchecked
    confs.location("/any/admin/", "satisfy any;", confs.ADMIN_ONLY,
                   ADMIN_API),
    http="eas_admin_rules zone=admin:64k file=${dir}/admin.rules;")

PROXIED_CONFIG = confs.gateway(
    # behind a reverse proxy that the browser knows by another name
    confs.location("/proxied/admin/", """
        auth_basic "eas admin";
        auth_basic_user_file ${dir}/admins;
        eas_admin device_zone=devices origin=https://admin.example.net
                  origin=http://Console.Example.ORG:8443/;
    """),
    http="eas_admin_rules zone=admin:64k file=${dir}/admin.rules;",
    zones="eas_device_zone zone=devices:1m;", upstream=None)

USERS = {"john smith": "space1", "john+smith": "plus22", "jdoe": "secret"}


pytestmark = pytest.mark.backend(hold_cap=0)


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         files={"users": confs.password_file(USERS),
                                "admins": confs.ADMINS},
                         backend_port=backend.port)


def call(nginx, method, target, body=None, headers=None, auth=ADMIN,
         host=None):
    """One request on its own connection, the target sent as written (no
    client library re-encodes it); returns (status, headers, bytes)."""
    hdrs = {"Host": host or "127.0.0.1:%d" % nginx.port,
            "Connection": "close"}
    if auth:
        hdrs["Authorization"] = auth
    if method in ("POST", "DELETE"):
        hdrs["X-EAS-Admin"] = "1"
    if body is not None:
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, target) + "".join(
        "%s: %s\r\n" % kv for kv in hdrs.items() if kv[1] is not None)
    return exchange(nginx, [head.encode() + b"\r\n" + (body or b"")])


def exchange(nginx, parts):
    data = raw_http("127.0.0.1", nginx.port, parts, timeout=10)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def api(nginx, method, target, expect=200, **kw):
    status, headers, body = call(nginx, method, "/eas/admin/" + target, **kw)
    assert status == expect, (status, body)
    assert headers["content-type"] == "application/json"
    return json.loads(body)


def device(nginx, device_id, user, password=None):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user,
                     password=USERS[user] if password is None else password,
                     device_id=device_id)


def lock_out(nginx, user):
    # three different wrong passwords (a repeated one is not a new try)
    for i in range(3):
        device(nginx, "ApplLOCK", user, password="wrong%d" % i).foldersync()


def locked(nginx):
    return sorted(l["key"] for l in api(nginx, "GET", "lockouts")["lockouts"])


def records(nginx, device_id):
    return sorted(d["user"] for d in api(
        nginx, "GET", "devices?device_id=" + device_id)["devices"])


def lines(nginx, mark, what):
    return [l for l in nginx.error_lines_since(mark) if what in l]


def test_plus_is_a_space_and_2b_a_plus_for_every_parameter(gateway):
    for user in ("john smith", "john+smith"):
        assert device(gateway, "ApplTWIN", user).foldersync().status == 200
    assert records(gateway, "ApplTWIN") == ["john smith", "john+smith"]

    # the listing's filter: "+" is the space
    assert [d["user"] for d in api(gateway, "GET", "devices?user=john+smith")
            ["devices"]] == ["john smith"]
    assert [d["user"] for d in api(
        gateway, "GET", "devices?user=john%2Bsmith")["devices"]] == \
        ["john+smith"]

    # a delete hits the record named, and only it
    api(gateway, "DELETE", "devices?user=john%2Bsmith&device_id=ApplTWIN")
    assert records(gateway, "ApplTWIN") == ["john smith"]
    api(gateway, "DELETE", "devices?user=john+smith&device_id=ApplTWIN")
    assert records(gateway, "ApplTWIN") == []

    # lockouts: "+" lifts the space's, %2B the plus's
    lock_out(gateway, "john smith")
    lock_out(gateway, "john+smith")
    assert locked(gateway) == ["john smith", "john+smith"]
    mark = gateway.mark()
    assert api(gateway, "DELETE", "lockouts?user=john+smith") == \
        {"lifted": 1, "key": "john smith"}
    assert locked(gateway) == ["john+smith"]
    assert len(lines(gateway, mark,
                     "lift lockout of user: john smith, by")) == 1
    api(gateway, "DELETE", "lockouts?user=john%2Bsmith")
    assert locked(gateway) == []

    # a rule and a credential drop decode the same way
    api(gateway, "POST", "rules?access=block&user=john+smith")
    assert [r.get("user") for r in api(gateway, "GET", "rules")["rules"]] \
        == ["john smith"]
    mark = gateway.mark()
    api(gateway, "DELETE", "credentials?user=john+smith")
    assert lines(gateway, mark, "drop cached credentials of user: "
                 "john smith, by")


def test_unknown_repeated_or_empty_parameter_is_refused(gateway):
    assert device(gateway, "ApplKEEP", "jdoe").foldersync().status == 200
    lock_out(gateway, "jdoe")
    lock_out(gateway, "john smith")

    for method, target, why in [
            ("DELETE", "lockouts?username=x", 'unknown parameter "username"'),
            ("DELETE", "lockouts?user=", 'empty value of "user"'),
            ("DELETE", "lockouts?user", 'empty value of "user"'),
            ("DELETE", "lockouts?address=", 'empty value of "address"'),
            ("DELETE", "lockouts", "give all=1"),
            ("DELETE", "lockouts?all=yes", "all= takes 1 only"),
            ("DELETE", "lockouts?all=", 'empty value of "all"'),
            ("DELETE", "lockouts?user=jdoe&user=x", "given twice"),
            ("DELETE", "lockouts?USER=jdoe", 'unknown parameter "USER"'),
            ("DELETE", "lockouts?user=jdoe&all=1", "give one of"),
            ("DELETE", "credentials", "give all=1"),
            ("DELETE", "credentials?usr=jdoe", 'unknown parameter "usr"'),
            ("DELETE", "credentials?user=", 'empty value of "user"'),
            ("DELETE", "devices?device_id=ApplKEEP", "give user"),
            ("DELETE", "devices?user=jdoe&device_id=", "empty value"),
            ("DELETE", "devices?user=jdoe&device=ApplKEEP", "unknown"),
            ("DELETE", "devices/stale?days=1&all=1", "unknown"),
            ("GET", "devices?usr=jdoe", 'unknown parameter "usr"'),
            ("GET", "devices?user=", 'empty value of "user"'),
            ("GET", "lockouts?x=1", "unknown"),
            ("DELETE", "rules?device=ApplKEEP", "unknown"),
            ("DELETE", "rules?device_id=", "empty value")]:
        mark = gateway.mark()
        reply = api(gateway, method, target, expect=400)
        assert why in reply["error"], (target, reply)
        logged = lines(gateway, mark, "eas admin:")
        assert len(logged) == 1 and "answered 400" in logged[0], logged

    # the same in a JSON body
    reply = api(gateway, "DELETE", "lockouts", body={"username": "x"},
                expect=400)
    assert reply["error"] == 'unknown parameter "username"'
    api(gateway, "DELETE", "lockouts?user=jdoe", body={"user": "jdoe"},
        expect=400)

    # nothing was lifted, dropped or deleted by any of them
    assert locked(gateway) == ["jdoe", "john smith"]
    assert records(gateway, "ApplKEEP") == ["jdoe"]

    # everything, asked for
    assert api(gateway, "DELETE", "lockouts?all=1") == {"lifted": 2}
    assert locked(gateway) == []
    assert api(gateway, "DELETE", "credentials",
               body={"all": 1})["dropped"] >= 1


def test_a_change_needs_a_host_and_origin_the_server_is_known_as(gateway):
    port = gateway.port
    target = "/eas/admin/rules?access=block&device_id=ApplREBIND"

    # DNS rebinding: the attacker's name now points here; the browser
    # sends its Host and Origin, which match each other
    for host, origin in [
            ("evil.example:%d" % port, "http://evil.example:%d" % port),
            ("evil.example:%d" % port, None),
            ("x.wild.example.test:%d" % port,
             "http://x.wild.example.test:%d" % port),
            ("127.0.0.1:%d" % port, "http://evil.example:%d" % port),
            ("127.0.0.1:%d" % port, "https://127.0.0.1:%d" % port),
            ("127.0.0.1:%d" % port, "http://127.0.0.1:%d" % (port + 1)),
            ("127.0.0.1:%d" % port, "http://127.0.0.1"),
            ("127.0.0.1:%d" % port, "null"),
            ("127.0.0.1:%d" % port, "http://127.0.0.1:%d/x" % port)]:
        mark = gateway.mark()
        status, _, body = call(gateway, "POST", target, host=host,
                               headers={"Origin": origin})
        assert status == 403, (host, origin, body)
        json.loads(body)
        assert len(lines(gateway, mark, "eas admin: refused POST")) == 1
    assert api(gateway, "GET", "rules")["rules"] == []

    # its own names, exact, and the local address with the local port
    for host, origin in [
            ("127.0.0.1:%d" % port, "http://127.0.0.1:%d" % port),
            ("gw.example.test:%d" % port, "http://GW.example.test:%d" % port),
            ("gw.example.test", None)]:
        status, _, body = call(gateway, "POST", target, host=host,
                               headers={"Origin": origin})
        assert status == 200, (host, origin, body)


def test_origin_named_for_a_reverse_proxy(nginx_factory):
    gateway = start_gateway(nginx_factory, PROXIED_CONFIG,
                            files={"admins": confs.ADMINS})
    port = gateway.port

    # the origins named, exactly
    proxied = "/proxied/admin/rules?access=block&device_id=ApplPROXY"
    for host, origin, expect in [
            ("admin.example.net", "https://admin.example.net", 200),
            ("127.0.0.1:%d" % port, "https://admin.example.net", 200),
            ("console.example.org:8443", "http://console.example.org:8443",
             200),
            ("admin.example.net", "http://admin.example.net", 403),
            ("admin.example.net", "https://admin.example.net:8443", 403),
            ("evil.example", "https://admin.example.net", 403)]:
        status, _, body = call(gateway, "POST", proxied, host=host,
                               headers={"Origin": origin})
        assert status == expect, (host, origin, body)

    # an error answer is JSON too, with what it quotes escaped
    status, headers, body = call(gateway, "GET", "/proxied/admin/lockouts")
    assert status == 404
    assert json.loads(body)["error"] == 'no preauth_zone in "eas_admin"'
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize("origin", ["ftp://admin.example.net",
                                    "https://admin.example.net/console/",
                                    "https://user@admin.example.net",
                                    "https://admin.example.net:0",
                                    "https://", "admin.example.net"])
def test_origin_is_checked_by_nginx_t(nginx_factory, origin):
    nginx = nginx_factory(confs.gateway(
        confs.location("/eas/admin/",
                       "eas_admin device_zone=devices origin=%s;" % origin),
        zones="eas_device_zone zone=devices:1m;", upstream=None),
        start=False, port=free_port())
    output = nginx.config_error()
    assert 'invalid origin "%s" in "eas_admin"' % origin in output, output


def test_audit_names_a_user_only_as_auth_basic_verified_it(gateway):
    ceo = "Basic " + base64.b64encode(b"ceo:not-checked").decode()
    for path, auth, who in [
            ("/ip/admin/", ceo, "by 127.0.0.1 claimed user ceo"),
            ("/any/admin/", ceo, "by 127.0.0.1 claimed user ceo"),
            ("/ip/admin/", None, "by 127.0.0.1"),
            ("/eas/admin/", ADMIN, "by 127.0.0.1 user admin")]:
        mark = gateway.mark()
        status, _, body = call(gateway, "POST", path + "rules?access=block"
                               "&device_id=ApplAUDIT", auth=auth)
        assert status == 200, (path, body)
        logged = lines(gateway, mark, "eas admin: set rule")
        assert len(logged) == 1 and who + ", client:" in logged[0], logged
        rule = api(gateway, "GET", "rules")["rules"][0]
        assert rule["by"] == who[3:], rule


def test_audit_line_escapes_what_it_quotes(gateway):
    mark = gateway.mark()
    api(gateway, "POST", "rules", body={"access": "block",
                                        "device_id": 'Ab"c\\d, by x'})
    logged = lines(gateway, mark, "eas admin: set rule")
    assert len(logged) == 1
    assert 'set rule: device_id "Ab\\"c\\\\d, by x" block, by 127.0.0.1 ' \
        'user admin' in logged[0], logged


def test_json_body_read_whole_however_it_arrives(gateway):
    body = b'{"access":"block","device_id":"ApplSPLIT"}'
    head = ("POST /eas/admin/rules HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Authorization: %s\r\nX-EAS-Admin: 1\r\nConnection: close\r\n"
            % (gateway.port, ADMIN)).encode()

    # chunked, in three chunks
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c)
                      for c in (body[:5], body[5:20], body[20:])) + b"0\r\n\r\n"
    status, _, reply = exchange(
        gateway, [head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks])
    assert status == 200, reply
    # and in segments: the headers, then the body in two writes
    status, _, reply = exchange(
        gateway, [head + b"Content-Length: %d\r\n\r\n" % len(body),
                  body[:10], body[10:]])
    assert status == 200, reply
    assert api(gateway, "GET", "rules")["rules"][0]["device_id"] == \
        "ApplSPLIT"

    # larger than 4 KB: refused, whichever way
    big = json.dumps({"device_id": "x" * 5000}).encode()
    status, _, reply = exchange(
        gateway, [head + b"Content-Length: %d\r\n\r\n" % len(big) + big])
    assert status == 413 and json.loads(reply)["error"]
    status, _, reply = exchange(
        gateway, [head + b"Transfer-Encoding: chunked\r\n\r\n"
                  + b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)])
    assert status == 413 and json.loads(reply)["error"]


@pytest.mark.parametrize("body", [b'{"device_id":true,"access":"block"}',
                                  b'{"device_id":false,"access":"block"}',
                                  b'{"device_id":1x,"access":"block"}'])
def test_json_body_strings_and_numbers_only(gateway, body):
    api(gateway, "POST", "rules", body=body, expect=400)
    assert api(gateway, "GET", "rules")["rules"] == []


def test_every_answer_is_json_nosniff_no_store(gateway):
    for method, target in [("GET", "/eas/admin/lockouts"),
                           ("GET", "/eas/admin/devices"),
                           ("GET", "/eas/admin/nothing"),
                           ("DELETE", "/eas/admin/lockouts?x=\"y\""),
                           ("POST", "/eas/admin/rules"),
                           ("PUT", "/eas/admin/rules"),
                           ("OPTIONS", "/eas/admin/rules")]:
        status, headers, body = call(gateway, method, target)
        assert json.loads(body) and status != 500, (target, status)
        assert headers["x-content-type-options"] == "nosniff", target
        assert headers["cache-control"] == "no-store", target
        if method in ("PUT", "OPTIONS"):
            assert status == 405
            assert headers["allow"] == "GET, HEAD, POST, DELETE"


def test_server_names_hold_with_many_servers(nginx_factory):
    """nginx keeps a server's server_name list only while it reads its
    configuration: the names are the module's own copy, so with many
    servers each admin location knows its server's names (not refused,
    no worker lost: check_no_alerts at teardown) and no other's."""
    admin = confs.location("/eas/admin/", "eas_admin device_zone=devices;")
    gateway = start_gateway(nginx_factory, confs.gateway(
        "server_name s0.example.test alias0.example.test;", admin,
        servers=[confs.server("server_name s%d.example.test "
                              "alias%d.example.test;" % (i, i), admin)
                 for i in range(1, 10)],
        http="eas_admin_rules zone=admin:64k file=${dir}/admin.rules;",
        zones="eas_device_zone zone=devices:1m;", upstream=None))
    port = gateway.port

    for i in range(10):
        for name in ("s%d" % i, "alias%d" % i):
            host = "%s.example.test:%d" % (name, port)
            target = "/eas/admin/rules?access=block&device_id=Appl%s" % name
            status, _, body = call(gateway, "POST", target, host=host,
                                   headers={"Origin": "http://" + host},
                                   auth=None)
            assert status == 200, (host, body)
        # another server's name is not this one's
        other = "s%d.example.test:%d" % ((i + 1) % 10, port)
        status, _, body = call(
            gateway, "POST", "/eas/admin/rules?access=block&device_id=X",
            host="s%d.example.test:%d" % (i, port),
            headers={"Origin": "http://" + other}, auth=None)
        assert status == 403, (i, body)
