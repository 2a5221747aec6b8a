"""The admin API (eas_admin, eas_admin_rules): lockouts listed and lifted,
cached credentials dropped, devices listed, filtered, paged and deleted
(a deleted counted device frees its eas_device_max place), devices and
users blocked or allowed now, in every worker, kept across reload and
restart in a file that is also a valid eas_device_rules file, named in
$eas_reason; the lost-phone mode lets Provision through and nothing
else.  Every change is one notice line naming the action and the admin.
What got through is read from the backend's own record."""

import json
import os
import re
import time
import urllib.error
import urllib.request

import pytest

from eastest.client import EasClient
from eastest import confs
from eastest.nginx import free_port, start_gateway

NGINX_CONFIG = confs.gateway(
    """
    add_header X-Worker $pid always;
    add_header X-Auth $eas_auth always;
    """,
    confs.eas_location(
        "access_log ${dir}/eas.log admin;",
        confs.PREAUTH, """
        eas_preauth_lockout user=3 address=100 window=1m time=1h;
        eas_devices devices;
        eas_device_max 1;
        eas_device_block device_id=ApplSTATIC;
        """),
    confs.location("/eas/admin/", confs.ADMIN_ONLY,
                   "eas_admin preauth_zone=auth device_zone=devices;"),
    http="""
    log_format admin escape=json '{"device":"$eas_device_id",'
        '"status":"$status","access":"$eas_access","reason":"$eas_reason",'
        '"auth":"$eas_auth","pid":"$pid"}';
    eas_admin_rules zone=admin:64k file=${dir}/admin.rules;
    """,
    listen="127.0.0.1:${port} reuseport")

pytestmark = pytest.mark.backend(hold_cap=0)


def start(nginx_factory, backend, workdir=None):
    files = {"users": confs.password_file({"jdoe": "secret",
                                           "amy": "apple"}),
             "admins": confs.ADMINS}
    if workdir:
        with open(os.path.join(workdir, "admin.rules")) as src:
            files["admin.rules"] = src.read()
    return start_gateway(nginx_factory, NGINX_CONFIG, files=files,
                         backend_port=backend.port)


@pytest.fixture
def gateway(nginx_factory, backend):
    return start(nginx_factory, backend)


def admin(nginx, method, path, expect=200, body=None, headers=None):
    headers = dict({"Authorization": confs.ADMIN_AUTH},
                   **(headers or {}))
    if method in ("POST", "DELETE"):
        headers.setdefault("X-EAS-Admin", "1")  # the API's CSRF rule
    headers = {k: v for k, v in headers.items() if v is not None}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/%s" % (nginx.port, path),
        method=method, headers=headers, data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, body = reply.status, reply.read()
            kind = reply.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        status, body, kind = err.code, err.read(), err.headers["Content-Type"]
    assert status == expect, (status, body)
    assert kind == "application/json"
    return json.loads(body)


def device(nginx, device_id, user="jdoe", password="secret", **kw):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user, password=password,
                     device_id=device_id, **kw)


def on_both_workers(nginx, action):
    """Runs action() until two workers answered; returns the replies."""
    replies, workers = [], set()
    deadline = time.monotonic() + 20
    while len(workers) < 2 and time.monotonic() < deadline \
            and len(replies) < 200:
        reply = action()
        replies.append(reply)
        workers.add(reply.header("X-Worker"))
    assert len(workers) == 2, "never reached a second worker"
    return replies


def notices(nginx, mark):
    return [line for line in nginx.error_lines_since(mark)
            if "[notice]" in line and "eas admin:" in line]


def test_lockout_listed_lifted_in_every_worker(gateway, backend):
    # three different wrong passwords (a repeated one is not a new try)
    for i in range(3):
        assert device(gateway, "ApplA", password="wrong%d" % i).sync() \
            .status == 401
    assert device(gateway, "ApplA").sync().status == 401  # locked

    locks = admin(gateway, "GET", "lockouts")["lockouts"]
    assert [(l["kind"], l["key"]) for l in locks] == [("user", "jdoe")]
    assert locks[0]["failures"] == 3 and locks[0]["left"] > 3000

    mark = gateway.mark()
    assert admin(gateway, "DELETE", "lockouts?user=jdoe") == {"lifted": 1,
                                                              "key": "jdoe"}
    lines = notices(gateway, mark)
    assert len(lines) == 1 and ("eas admin: lift lockout of user: jdoe, by "
                                "127.0.0.1 user admin") in lines[0], lines

    before = len(backend.requests)
    replies = on_both_workers(gateway, lambda: device(gateway,
                                                      "ApplA").sync())
    assert {r.status for r in replies} == {200}
    assert len(backend.requests) == before + len(replies)
    assert admin(gateway, "GET", "lockouts")["lockouts"] == []
    admin(gateway, "DELETE", "lockouts?user=nobody", expect=404)


def test_lift_all_lockouts(gateway):
    for user in ("jdoe", "amy"):
        for i in range(3):
            device(gateway, "Appl" + user, user=user,
                   password="wrong%d" % i).sync()
    assert len(admin(gateway, "GET", "lockouts")["lockouts"]) == 2
    assert admin(gateway, "DELETE", "lockouts?all=1") == {"lifted": 2}
    assert device(gateway, "Appljdoe").sync().status == 200
    assert device(gateway, "Applamy", user="amy",
                  password="apple").sync().status == 200


def test_drop_cached_credentials(gateway):
    assert device(gateway, "ApplA").sync().status == 200
    on_both_workers(gateway, lambda: device(gateway, "ApplA").sync())
    dropped = admin(gateway, "DELETE", "credentials?all=1")["dropped"]
    assert dropped >= 1
    assert device(gateway, "ApplA").sync().status == 200
    last = json.loads(gateway.wait_for_access_log(1, name="eas.log")[-1])
    deadline = time.monotonic() + 5
    while last["auth"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.05)
        last = json.loads(gateway.access_log("eas.log")[-1])
    # verified by the password file again, not taken from the cache
    assert last["auth"] == "ok"


def test_drop_one_users_cached_credentials(gateway):
    """After a password change: one user's cached answers go, in every
    worker; everyone else's stay cached."""
    for user, password in (("jdoe", "secret"), ("amy", "apple")):
        on_both_workers(gateway, lambda: device(
            gateway, "ApplU", user=user, password=password).sync())

    mark = gateway.mark()
    assert admin(gateway, "DELETE", "credentials?user=jdoe") == {
        "dropped": "user", "identities": ["jdoe"]}
    assert any("eas admin: drop cached credentials of user: jdoe, by "
               "127.0.0.1" in line for line in notices(gateway, mark))

    def auth(user, password):
        return [reply.header("X-Auth") for reply in on_both_workers(
            gateway, lambda: device(gateway, "ApplU", user=user,
                                    password=password).sync())]

    # jdoe's first request is verified by the source again, wherever it
    # lands; amy's answers still come from the cache
    assert auth("jdoe", "secret")[0] == "ok"
    assert set(auth("amy", "apple")) == {"cached"}
    # and jdoe's new answer is cached again
    assert "cached" in auth("jdoe", "secret")


def test_drop_one_users_cached_credentials_in_any_case(gateway):
    """The user is named as an operator types it ("JDoe"): folded as
    identities are, the drop is jdoe's, not a silent no-op."""
    on_both_workers(gateway, lambda: device(gateway, "ApplU").sync())

    assert admin(gateway, "DELETE", "credentials?user=JDoe") == {
        "dropped": "user", "identities": ["jdoe"]}

    replies = on_both_workers(gateway, lambda: device(gateway,
                                                      "ApplU").sync())
    assert replies[0].header("X-Auth") == "ok"


def test_deleting_a_counted_device_frees_its_place(gateway, backend):
    assert device(gateway, "ApplOLD").sync().status == 200
    # eas_device_max 1: the replacement phone is refused, as Exchange
    # refuses a blocked device
    assert device(gateway, "ApplNEW").sync().eas_status() == 129
    assert not any("ApplNEW" in r.target for r in backend.requests)

    listing = admin(gateway, "GET", "devices?user=jdoe")
    ids = {d["device_id"] for d in listing["devices"]}
    assert "ApplOLD" in ids and listing["total"] == len(ids)

    mark = gateway.mark()
    assert admin(gateway, "DELETE",
                 "devices?user=jdoe&device_id=ApplOLD") == {"deleted": 1}
    assert any("eas admin: delete device: ApplOLD of jdoe, by 127.0.0.1"
               in line for line in notices(gateway, mark))

    assert device(gateway, "ApplNEW").sync().status == 200
    assert any("ApplNEW" in r.target for r in backend.requests)
    admin(gateway, "DELETE", "devices?user=jdoe&device_id=ApplOLD",
          expect=404)


def test_devices_filter_and_page(gateway):
    for i in range(5):
        device(gateway, "Appl%d" % i, user="amy", password="apple").sync()
    device(gateway, "ApplJ", user="jdoe").sync()
    everything = admin(gateway, "GET", "devices")
    assert everything["total"] >= 6
    amy = admin(gateway, "GET", "devices?user=AMY&per_page=2&page=1")
    assert amy["total"] == 5 and len(amy["devices"]) == 2
    page3 = admin(gateway, "GET", "devices?user=amy&per_page=2&page=3")
    assert len(page3["devices"]) == 1
    seen = set()
    for page in (1, 2, 3):
        seen |= {d["device_id"] for d in admin(
            gateway, "GET", "devices?user=amy&per_page=2&page=%d"
            % page)["devices"]}
    assert len(seen) == 5
    admin(gateway, "GET", "devices?per_page=0", expect=400)


def test_stale_devices(gateway):
    device(gateway, "ApplFRESH").sync()
    assert admin(gateway, "GET", "devices/stale?days=1")["devices"] == []
    assert admin(gateway, "DELETE", "devices/stale?days=30")["total"] == 0
    admin(gateway, "GET", "devices/stale", expect=400)


def test_block_now_in_every_worker_then_reload_and_restart(
        gateway, backend, nginx_factory):
    assert device(gateway, "ApplLOST1").sync().status == 200
    mark = gateway.mark()
    assert admin(gateway, "POST",
                 "rules?access=block&device_id=ApplLOST1") == {"ok": True}
    assert any('eas admin: set rule: device_id "ApplLOST1" block, by '
               "127.0.0.1 user admin" in l for l in notices(gateway, mark))

    before = len(backend.requests)
    replies = on_both_workers(gateway, lambda: device(gateway,
                                                      "ApplLOST1").sync())
    assert {r.eas_status() for r in replies} == {129}
    assert len(backend.requests) == before

    rules_file = os.path.join(gateway.dir, "admin.rules")
    text = open(rules_file).read()
    assert re.search(r'^block device_id="ApplLOST1"  # eas_admin rule \d+ '
                     r'127\.0\.0\.1 user admin$', text, re.M), text
    line = [i + 1 for i, l in enumerate(text.splitlines())
            if "ApplLOST1" in l][0]
    logged = [json.loads(l) for l in gateway.access_log("eas.log")]
    assert logged[-1]["reason"] == "eas_admin_rules:%s:%d" % (rules_file,
                                                             line)

    rules = admin(gateway, "GET", "rules")["rules"]
    assert rules[0]["device_id"] == "ApplLOST1"
    assert rules[0]["access"] == "block" and rules[0]["line"] == line

    gateway.reload()
    assert device(gateway, "ApplLOST1").sync().eas_status() == 129

    gateway.stop()
    again = start(nginx_factory, backend, workdir=gateway.dir)
    assert device(again, "ApplLOST1").sync().eas_status() == 129
    assert len(backend.requests) == before

    # removed: through again
    assert admin(again, "DELETE", "rules?device_id=ApplLOST1") == \
        {"ok": True}
    assert device(again, "ApplLOST1").sync().status == 200
    admin(again, "DELETE", "rules?device_id=ApplLOST1", expect=404)


def test_the_state_file_is_a_valid_rules_file(gateway, nginx_factory):
    admin(gateway, "POST", "rules?access=block&device_id=Appl%22Q%5C")
    admin(gateway, "POST", "rules?access=allow&user=CONTOSO%5Camy")
    admin(gateway, "POST", "rules?access=lost&device_id=ApplLOST2")
    path = os.path.join(gateway.dir, "admin.rules")
    check = nginx_factory(confs.gateway(
        confs.eas_location("eas_device_rules %s;" % path, proxy_pass=None),
        zones=None, upstream=None), start=False, port=free_port())
    code, output = check.test_config()
    assert code == 0, output


def test_allow_user_now_overrides_a_configured_block(gateway, backend):
    assert device(gateway, "ApplSTATIC").sync().eas_status() == 129
    admin(gateway, "POST", "rules?access=allow&user=jdoe")
    assert device(gateway, "ApplSTATIC").sync().status == 200
    assert any("ApplSTATIC" in r.target for r in backend.requests)


def test_lost_phone_lets_only_provision_through(gateway, backend):
    phone = device(gateway, "ApplLOST3")
    assert phone.foldersync().status == 200
    admin(gateway, "POST", "rules?access=lost&device_id=ApplLOST3")
    before = [r.target for r in backend.requests]

    # a command that carries mail: "not provisioned" at the edge
    reply = phone.sync()
    assert reply.status == 200 and reply.eas_status() == 142
    reply = phone.foldersync()
    assert reply.eas_status() == 142
    # GetAttachment has no top-level Status: HTTP 449
    assert phone.command("GetAttachment", b"",
                         params=[("AttachmentName", "1:1")]).status == 449
    # an old protocol: HTTP 449 for everything
    old = device(gateway, "ApplLOST3", protocol="12.1")
    assert old.sync().status == 449
    assert [r.target for r in backend.requests] == before

    # Provision reaches the backend: a pending remote wipe would too
    assert phone.provision().status == 200
    after = [r.target for r in backend.requests]
    assert len(after) == len(before) + 1 and "Cmd=Provision" in after[-1]

    admin(gateway, "POST", "rules?access=lost&user=jdoe", expect=400)


def test_bad_requests(gateway):
    admin(gateway, "POST", "rules?access=block&device_id=~^Appl", expect=400)
    admin(gateway, "POST", "rules?access=maybe&device_id=X", expect=400)
    admin(gateway, "POST", "rules?access=block", expect=400)
    admin(gateway, "GET", "nothing", expect=404)
    admin(gateway, "DELETE", "devices?user=jdoe", expect=400)


def test_json_input(gateway, backend):
    assert admin(gateway, "POST", "rules",
                 body={"access": "block", "device_id": "ApplJSON"}) == \
        {"ok": True}
    assert device(gateway, "ApplJSON").sync().eas_status() == 129
    rules = admin(gateway, "GET", "rules")["rules"]
    assert [(r["device_id"], r["access"]) for r in rules] == \
        [("ApplJSON", "block")]
    # a user with a backslash and a non-ASCII letter, as JSON escapes:
    # kept as the identity it stands for
    assert admin(gateway, "POST", "rules",
                 body=b'{"access":"allow","user":"CONTOSO\\\\J\\u00f6rg"}') \
        == {"ok": True}
    users = [r.get("user") for r in admin(gateway, "GET", "rules")["rules"]]
    assert "j\u00f6rg" in users
    assert admin(gateway, "DELETE", "rules",
                 body={"device_id": "ApplJSON"}) == {"ok": True}
    assert device(gateway, "ApplJSON").sync().status == 200
    admin(gateway, "DELETE", "lockouts", body={"user": "nobody"},
          expect=404)
    admin(gateway, "POST", "rules", body=b'{"access":"block",', expect=400)
    admin(gateway, "POST", "rules", body=b'{"access":["block"]}',
          expect=400)
    admin(gateway, "POST", "rules", body=b'{"Access":"block"}', expect=400)


def test_devices_decision_filter_and_last_seen_order(gateway, backend):
    for device_id in ("ApplFIRST", "ApplSECOND"):
        assert device(gateway, device_id, user="amy",
                      password="apple").sync().status == 200
    assert device(gateway, "ApplSTATIC").sync().eas_status() == 129
    newest = admin(gateway, "GET", "devices?user=amy")["devices"]
    oldest = admin(gateway, "GET", "devices?user=amy&sort=last_seen")
    assert [d["device_id"] for d in oldest["devices"]] == \
        [d["device_id"] for d in reversed(newest)]
    assert newest[0]["last_seen"] >= newest[-1]["last_seen"]
    blocked = admin(gateway, "GET", "devices?decision=blocked")
    assert {d["device_id"] for d in blocked["devices"]} >= {"ApplSTATIC"}
    assert all(d["access"] == "blocked" for d in blocked["devices"])
    assert blocked["total"] == len(blocked["devices"])
    allowed = admin(gateway, "GET", "devices?decision=allowed&per_page=1")
    assert allowed["total"] >= 1 and len(allowed["devices"]) == 1
    assert allowed["devices"][0]["access"] == "allowed"
    admin(gateway, "GET", "devices?decision=maybe", expect=400)
    admin(gateway, "GET", "devices?sort=user", expect=400)
    # a page past the end: empty, the total still counted
    past = admin(gateway, "GET", "devices?per_page=1000&page=99")
    assert past["devices"] == [] and past["total"] == \
        admin(gateway, "GET", "devices")["total"]


@pytest.mark.parametrize("headers", [
    {"X-EAS-Admin": None},                                 # a form post
    {"X-EAS-Admin": "yes"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
])
def test_a_change_needs_the_header_and_this_origin(gateway, backend,
                                                   headers):
    """CSRF: a POST or DELETE without "X-EAS-Admin: 1", or that a browser
    says comes from another site, changes nothing and is logged once."""
    mark = gateway.mark()
    reply = admin(gateway, "POST", "rules?access=block&device_id=ApplCSRF",
                  expect=403, headers=headers)
    assert "X-EAS-Admin" in reply["error"]
    admin(gateway, "DELETE", "lockouts", expect=403, headers=headers)
    refused = [l for l in gateway.error_lines_since(mark)
               if "eas admin: refused" in l]
    assert len(refused) == 2 and "[warn]" in refused[0], refused
    assert notices(gateway, mark) == []
    assert admin(gateway, "GET", "rules")["rules"] == []
    before = len(backend.requests)
    assert device(gateway, "ApplCSRF").sync().status == 200
    assert len(backend.requests) == before + 1


def test_a_change_from_this_origin_passes(gateway):
    origin = "http://127.0.0.1:%d" % gateway.port
    assert admin(gateway, "POST", "rules?access=block&device_id=ApplSAME",
                 headers={"Origin": origin,
                          "Sec-Fetch-Site": "same-origin"}) == {"ok": True}


def test_no_console_unless_enabled(gateway):
    for path in ("console/", "console/console.js", "console/config.json"):
        admin(gateway, "GET", path, expect=404)


def test_a_refused_change_with_a_body_keeps_the_connection_usable(gateway):
    """The body of a refused POST is read and dropped, not taken for the
    next request on the same keep-alive connection."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port,
                                            timeout=10)
    auth = {"Authorization": "Basic YWRtaW46YWRtaW5wdw=="}
    body = b'{"access":"block","device_id":"ApplBODY"}'
    connection.request("POST", "/eas/admin/rules", body=body,
                       headers=dict(auth, **{"Content-Type":
                                             "application/json"}))
    reply = connection.getresponse()
    assert reply.status == 403
    reply.read()
    connection.request("GET", "/eas/admin/rules", headers=auth)
    reply = connection.getresponse()
    assert reply.status == 200 and json.loads(reply.read()) == {
        "file": os.path.join(gateway.dir, "admin.rules"), "rules": []}
    connection.close()




def test_user_rules_fold_as_requests_do(nginx_factory, backend):
    """A user rule given with non-ASCII capitals, a compatibility form
    or a domain decides every spelling of that identity (nothing reaches
    the backend), is listed and written as the identity, and is read
    back so from a file of an older version that kept it as given."""
    users = {identity: password for _, identity, _, password in confs.FOLDED_USERS}
    users["jdoe"] = "secret"
    files = {"users": confs.password_file(users), "admins": confs.ADMINS,
             # as an older version wrote it: the name as given
             "admin.rules": 'block user="\u00d6ZIL"  # eas_admin rule '
                            '1796621432 127.0.0.1\n'}
    gateway = start_gateway(nginx_factory, NGINX_CONFIG, files=files,
                            backend_port=backend.port)
    for given, _, _, _ in confs.FOLDED_USERS[1:]:
        admin(gateway, "POST", "rules?access=block&user=" + given)
    listed = [r["user"] for r in admin(gateway, "GET", "rules")["rules"]]
    assert listed == [f[1] for f in confs.FOLDED_USERS]
    for n, (_, identity, spellings, password) in enumerate(confs.FOLDED_USERS):
        for sent in spellings:
            reply = device(gateway, "ApplFOLD%d" % n, user=sent,
                           password=password).sync()
            assert reply.eas_status() == 129, (sent, reply.status)
    assert not [r for r in backend.requests
                if r.eas.device_id.startswith("ApplFOLD")]
    with open(os.path.join(gateway.dir, "admin.rules"),
              encoding="utf-8") as f:
        assert 'block user="strasse"' in f.read()
    admin(gateway, "DELETE", "rules?user=%C3%B6ZiL")
    assert device(gateway, "ApplFOLD0", user="\u00d6ZIL",
                  password="pw-ozil").sync().status == 200
    admin(gateway, "POST", "rules?access=block&user=%FF%FE", expect=400)


@pytest.mark.parametrize("keep", ["0", "forever"])
def test_keep_removals_must_be_a_time(nginx_factory, keep):
    check = nginx_factory(NGINX_CONFIG.replace(
        "file=${dir}/admin.rules;",
        "file=${dir}/admin.rules keep_removals=%s;" % keep),
        start=False, port=free_port(), backend_port=1)
    check.expected_alerts.append(r"\[emerg\]")
    code, output = check.test_config()
    assert code != 0
    assert 'invalid keep_removals "%s" of "eas_admin_rules"' % keep \
        in output, output
