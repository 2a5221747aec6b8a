"""Step 2 of the request flow through a real nginx: Basic pre-authentication
against password files made by htpasswd, openssl passwd and mkpasswd, and
against a subrequest to a "directory" (nginx's own auth_basic in a second
server); the shared cache, the lockouts, and the proof that nothing refused
reaches the backend and that slow hashing does not stall the event loop."""

import base64
import os
import re
import subprocess
import threading

import pytest

from eastest import confs
from eastest.client import EasClient
from eastest.nginx import free_port, start_gateway
from eastest.waiting import SEQ_FIELD, poll, tag, tag_header
from eastest.waiting import logged as logged_by_tag

EAS = "/Microsoft-Server-ActiveSync"
QUERY = "?Cmd=Sync&User=query-user&DeviceId=DEV1&DeviceType=iPhone"
V141 = [("MS-ASProtocolVersion", "14.1")]

LOG_FORMAT = ("log_format preauth escape=json '{\"status\":\"$status\","
              "\"auth\":\"$eas_auth\",\"user\":\"$eas_auth_user\","
              "\"reason\":\"$eas_reason\",\"query_user\":\"$eas_user\","
              "\"pid\":\"$pid\",\"case\":\"$http_x_case\","
              + SEQ_FIELD + "}';")

NGINX_CONFIG = confs.gateway(
    """
    access_log ${dir}/eas.log preauth;
    add_header X-Worker $pid always;

    eas_preauth "ActiveSync";
    eas_preauth_cache zone=auth;
    eas_preauth_user_file ${dir}/users;
    eas_preauth_lockout user=3 address=6 window=1m time=3s;

    location /Microsoft-Server-ActiveSync {
        eas on;
        proxy_pass http://backend;
    }

    location /plain/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_user_file ${dir}/plain-users plain;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /expiry/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_cache zone=short valid=1s invalid=1s;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /tiny/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_cache zone=tiny valid=1h;
        eas_preauth_lockout user=off address=off;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /inline/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_thread_pool off;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /slow/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_user_file ${dir}/slow-users;
        eas_preauth_lockout user=off address=off;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /dir/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_request /_directory answer=status;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /backend-options/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_request /_backend_options;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /broken/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_request /_broken;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /failing/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth_request /_failing;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location /custom/Microsoft-Server-ActiveSync {
        eas on;
        error_page 401 = @sign_in;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location @sign_in {
        return 401 "sign in\\n";
    }

    location /open/Microsoft-Server-ActiveSync {
        eas on;
        eas_preauth off;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    }

    location = /_directory {
        internal;
        proxy_pass http://127.0.0.1:${dir_port}/mailbox/;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }

    location = /_backend_options {
        internal;
        proxy_method OPTIONS;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }

    location = /_broken {
        internal;
        proxy_pass http://127.0.0.1:${dead_port};
    }

    location = /_failing {
        internal;
        proxy_pass http://127.0.0.1:${dir_port}/fail;
    }
    """,
    http=LOG_FORMAT,
    zones=[confs.AUTH_ZONE, "eas_preauth_zone zone=short:1m;",
           "eas_preauth_zone zone=tiny:32k;"],
    listen="127.0.0.1:${port} reuseport",
    # the "directory": nginx's own auth_basic, each check in its log
    servers=["""
    server {
        listen 127.0.0.1:${dir_port};
        access_log ${dir}/directory.log;

        location /mailbox/ {
            auth_basic "directory";
            auth_basic_user_file ${dir}/directory-users;
            alias ${dir}/www/;
        }

        location /fail {
            return 500;
        }
    }
    """])

# user, password, how the hash is made (argv, or a function of the work dir)
HASH_KINDS = [
    ("bcrypt-2y", "b2y-pw", ["htpasswd", "-nbB", "-C", "4"]),
    ("bcrypt-2b", "b2b-pw", ["mkpasswd", "-m", "bcrypt", "-R", "5"]),
    ("sha512", "s512-pw", ["openssl", "passwd", "-6"]),
    ("sha256", "s256-pw", ["openssl", "passwd", "-5"]),
    ("yescrypt", "yes-pw", ["mkpasswd", "-m", "yescrypt"]),
    ("apr1-htpasswd", "apr-pw", ["htpasswd", "-nbm"]),
    ("apr1-openssl", "apr2-pw", ["openssl", "passwd", "-apr1"]),
    ("md5crypt", "md5-pw", ["openssl", "passwd", "-1"]),
    ("sha1", "sha-pw", ["htpasswd", "-nbs"]),
    ("ssha", "ssha-pw", "ssha"),
]


def make_hash(user, password, how):
    """One htpasswd line "user:hash" made by the real tools."""
    if how == "ssha":
        salt = os.urandom(8)
        digest = subprocess.run(
            ["openssl", "dgst", "-sha1", "-binary"],
            input=password.encode() + salt, stdout=subprocess.PIPE,
            check=True).stdout
        return "%s:{SSHA}%s" % (user, base64.b64encode(digest + salt)
                                .decode())
    if how[0] == "htpasswd":
        out = subprocess.run(how + [user, password], stdout=subprocess.PIPE,
                             check=True).stdout.decode().strip()
        return out
    if how[0] == "mkpasswd":
        out = subprocess.run(how + [password], stdout=subprocess.PIPE,
                             check=True).stdout.decode().strip()
        return "%s:%s" % (user, out)
    out = subprocess.run(how + ["-stdin"], input=password.encode(),
                         stdout=subprocess.PIPE, check=True).stdout
    return "%s:%s" % (user, out.decode().strip())


def htpasswd_line(user, password, cost=4):
    return subprocess.run(["htpasswd", "-nbB", "-C", str(cost), user,
                           password], stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()


def write_lines(path, lines):
    """Write a new file and rename it over the old one, as an admin's
    tools do (a reader never sees half a file)."""
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


@pytest.fixture(scope="module")
def hash_lines():
    lines = {user: make_hash(user, password, how)
             for user, password, how in HASH_KINDS}
    lines["jdoe"] = htpasswd_line("jdoe", "secret")
    lines["amy"] = htpasswd_line("amy", "apple")
    for i in range(8):
        lines["user%d" % i] = htpasswd_line("user%d" % i, "pw%d" % i)
    lines["slow"] = htpasswd_line("slow", "slow-pw", cost=13)
    return lines


@pytest.fixture
def gateway(nginx_factory, backend, hash_lines, tmp_path_factory):
    def lines(*texts):
        return "\n".join(texts) + "\n"
    return start_gateway(
        nginx_factory, NGINX_CONFIG, more_ports=("dir_port",),
        files={"users": lines(*[line for user, line in hash_lines.items()
                                if user != "slow"]),
               "plain-users": lines(
                   "# plain text, allowed by the \"plain\" parameter",
                   "plainuser:{PLAIN}plain-pw"),
               "slow-users": lines(hash_lines["slow"]),
               "directory-users": lines(hash_lines["jdoe"],
                                        hash_lines["amy"]),
               "www/index.html": "mailbox\n"},
        dead_port=free_port(), backend_port=backend.port)


def auth(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8"))
    return ("Authorization", "Basic " + token.decode())


def send(nginx, headers=(), prefix="", method="POST", case="", query=QUERY):
    """One request, tagged so that entries() finds its own log line."""
    client = EasClient("http://127.0.0.1:%d" % nginx.port)
    seq = tag()
    headers = list(headers) + V141 + [("Content-Length", "0"),
                                      tag_header(seq)]
    if case:
        headers.append(("X-Case", case))
    nginx.__dict__.setdefault("sent", []).append(seq)
    reply = client.raw(method, prefix + EAS + query, headers)
    reply.seq = seq
    return reply


def entries(nginx, count):
    """The log entries of the first count requests send() made, in the
    order it made them: two workers write the log, in either order."""
    return logged_by_tag(nginx, "eas.log", nginx.sent[:count])


def eas_lines(nginx, mark):
    return [line for line in nginx.error_lines_since(mark)
            if "eas: " in line]


# Every kind of hash ------------------------------------------------------

@pytest.mark.parametrize("user,password,how", HASH_KINDS,
                         ids=[kind[0] for kind in HASH_KINDS])
def test_every_hash_kind_is_verified(gateway, backend, user, password, how):
    good = send(gateway, [auth(user, password)])
    bad = send(gateway, [auth(user, password + "x")])

    assert good.status == 200
    assert bad.status == 401
    assert bad.header("WWW-Authenticate") == 'Basic realm="ActiveSync"'
    forwarded = backend.wait_for(1)
    assert len(forwarded) == 1
    assert forwarded[0].header("Authorization") == auth(user, password)[1]
    first, second = entries(gateway, 2)
    assert (first["auth"], first["user"]) == ("ok", user)
    assert (second["auth"], second["reason"]) == ("invalid", "auth_invalid")


def test_inline_checks_give_the_same_answers(gateway, backend):
    assert send(gateway, [auth("jdoe", "secret")], "/inline").status == 200
    assert send(gateway, [auth("jdoe", "nope")], "/inline").status == 401
    assert len(backend.requests) == 1


def test_plain_text_only_with_the_plain_parameter(gateway, backend):
    ok = send(gateway, [auth("plainuser", "plain-pw")], "/plain")
    bad = send(gateway, [auth("plainuser", "plain-px")], "/plain")

    assert (ok.status, bad.status) == (200, 401)


# The flow ----------------------------------------------------------------

def test_valid_credentials_are_forwarded_intact_then_cached(gateway, backend):
    header = auth("CONTOSO\\jdoe", "secret")

    first = send(gateway, [header])
    second = send(gateway, [header])

    assert (first.status, second.status) == (200, 200)
    seen = backend.wait_for(2)
    assert [r.header("Authorization") for r in seen] == [header[1]] * 2
    one, two = entries(gateway, 2)
    assert (one["auth"], two["auth"]) == ("ok", "cached")
    assert one["user"] == two["user"] == "jdoe"
    assert one["query_user"] == "query-user"   # a log field only
    assert one["reason"] == ""


@pytest.mark.parametrize("sent,identity", [
    ("jdoe", "jdoe"),
    ("JDoe", "jdoe"),
    ("CONTOSO\\jdoe", "jdoe"),
    ("contoso\\JDOE", "jdoe"),
    ("jdoe@contoso.com", "jdoe"),
    ("JDoe@Contoso.COM", "jdoe"),
])
def test_user_name_forms_name_one_identity(gateway, backend, sent, identity):
    response = send(gateway, [auth(sent, "secret")])

    assert response.status == 200
    assert entries(gateway, 1)[0]["user"] == identity


def test_options_is_authenticated_too(gateway, backend):
    bare = send(gateway, [], method="OPTIONS")
    good = send(gateway, [auth("jdoe", "secret")], method="OPTIONS")

    assert bare.status == 401
    assert bare.header("WWW-Authenticate") == 'Basic realm="ActiveSync"'
    assert good.status == 200
    assert good.header("MS-ASProtocolVersions")
    assert [r.method for r in backend.wait_for(1)] == ["OPTIONS"]


def test_refusal_survives_an_error_page_redirect(gateway, backend):
    bare = send(gateway, [], "/custom")
    bad = send(gateway, [auth("jdoe", "wrong")], "/custom")

    assert (bare.status, bare.body) == (401, b"sign in\n")
    assert (bad.status, bad.body) == (401, b"sign in\n")
    assert [(e["auth"], e["reason"]) for e in entries(gateway, 2)] == \
        [("missing", "auth_missing"), ("invalid", "auth_invalid")]
    assert backend.requests == []


def test_a_location_with_preauth_off_is_open(gateway, backend):
    assert send(gateway, [], "/open").status == 200
    assert entries(gateway, 1)[0]["auth"] == ""


LONG_USER = "u" * 257

BAD_INPUT = [
    ("no header", [], "missing", "auth_missing", "no Authorization header"),
    ("NTLM", [("Authorization", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAA")],
     "malformed", "auth_scheme", "Authorization scheme is not Basic"),
    ("Negotiate", [("Authorization", "Negotiate YIIGhgYGKwYBBQUCoIIGejCC")],
     "malformed", "auth_scheme", "Authorization scheme is not Basic"),
    ("scheme only", [("Authorization", "Basic")], "malformed",
     "auth_scheme", "Authorization scheme is not Basic"),
    ("bad base64", [("Authorization", "Basic amRvZ*pzZWNyZXQ=")],
     "malformed", "auth_base64", "Basic credentials are not valid base64"),
    ("no colon", [("Authorization", "Basic " + base64.b64encode(
        b"jdoesecret").decode())], "malformed", "auth_no_colon",
     "no colon in Basic credentials"),
    ("empty user", [auth("", "secret")], "malformed", "auth_empty_user",
     "empty user in Basic credentials"),
    ("user too long", [auth(LONG_USER, "secret")], "malformed",
     "auth_too_long", "Basic credentials too long"),
    ("token too long", [("Authorization", "Basic " + "QUFB" * 400)],
     "malformed", "auth_too_long", "Basic credentials too long"),
    ("NUL in password", [("Authorization", "Basic " + base64.b64encode(
        b"jdoe:sec\x00ret").decode())], "malformed", "auth_nul",
     "NUL byte in Basic credentials"),
    ("NUL in user", [("Authorization", "Basic " + base64.b64encode(
        b"jd\x00oe:secret").decode())], "malformed", "auth_nul",
     "NUL byte in Basic credentials"),
    ("control byte in user", [auth("jd\noe", "secret")], "malformed",
     "auth_user_invalid", "invalid user name in Basic credentials"),
    ("two domains", [auth("A\\B\\jdoe", "secret")], "malformed",
     "auth_user_invalid", "invalid user name in Basic credentials"),
    ("domain and upn", [auth("CONTOSO\\jdoe@contoso.com", "secret")],
     "malformed", "auth_user_invalid",
     "invalid user name in Basic credentials"),
]


@pytest.mark.parametrize("name,headers,outcome,reason,text", BAD_INPUT,
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_refused_with_one_line(gateway, backend, name, headers,
                                            outcome, reason, text):
    mark = gateway.mark()

    response = send(gateway, headers)

    assert response.status == 401
    assert response.header("WWW-Authenticate") == 'Basic realm="ActiveSync"'
    entry = entries(gateway, 1)[0]
    assert (entry["auth"], entry["reason"]) == (outcome, reason)
    assert entry["user"] == ""
    lines = eas_lines(gateway, mark)
    assert len(lines) == 1, lines
    assert "[notice]" in lines[0]
    assert "eas: preauth refused: %s, client: 127.0.0.1" % text in lines[0]
    assert backend.requests == []


def test_passwords_and_headers_never_reach_the_log(gateway, backend):
    header = auth("jdoe", "Sup3r-Secret-Value")
    send(gateway, [header])
    send(gateway, [auth("nobody", "Other-Secret-Value")])
    entries(gateway, 2)

    # nginx's own debug log shows every header: levels info and up only
    log = "\n".join(line for line in gateway.error_log().splitlines()
                    if "[debug]" not in line)
    assert 'invalid password for user "jdoe"' in log
    assert 'unknown user "nobody"' in log
    for secret in ("Sup3r-Secret-Value", "Other-Secret-Value",
                   header[1].split()[1]):
        assert secret not in log


# The cache ---------------------------------------------------------------

def test_cache_is_shared_by_all_workers(gateway, backend):
    header = auth("jdoe", "secret")
    assert send(gateway, [header]).status == 200

    workers = {}

    def both_workers_answered_from_cache():
        response = send(gateway, [header])
        assert response.status == 200
        workers.setdefault(response.header("X-Worker"), 0)
        workers[response.header("X-Worker")] += 1
        return len(workers) == 2

    poll(both_workers_answered_from_cache, "answer from both workers")
    logged = entries(gateway, 1 + sum(workers.values()))
    assert logged[0]["auth"] == "ok"
    assert {e["auth"] for e in logged[1:]} == {"cached"}
    assert len({e["pid"] for e in logged[1:]}) == 2


def test_cache_entries_expire(gateway, backend):
    header = auth("jdoe", "secret")

    assert send(gateway, [header], "/expiry").status == 200

    def verified_again():
        reply = send(gateway, [header], "/expiry")
        (entry,) = logged_by_tag(gateway, "eas.log", [reply.seq])
        return entry["auth"] == "ok"

    poll(verified_again, "new verification after the 1 s lifetime")


def test_full_zone_evicts_the_least_recently_used(gateway, backend):
    """A 32 KB zone holds some two hundred credentials: 400 distinct valid
    ones (one user, 400 domain spellings) push the oldest out, while one
    kept in use stays; nothing is refused for want of room."""
    def spelling(i):
        return auth("D%d\\jdoe" % i, "secret")

    for i in range(400):
        assert send(gateway, [spelling(i)], "/tiny").status == 200
        if i % 20 == 0:
            assert send(gateway, [spelling(0)], "/tiny").status == 200

    assert send(gateway, [spelling(399)], "/tiny").status == 200
    assert send(gateway, [spelling(0)], "/tiny").status == 200
    assert send(gateway, [spelling(1)], "/tiny").status == 200
    logged = entries(gateway, 400 + 20 + 3)
    assert [e["auth"] for e in logged[-3:]] == ["cached", "cached", "ok"]


def test_changed_password_file_is_reloaded(gateway, backend, hash_lines):
    old, new = auth("amy", "apple"), auth("amy", "pear")
    assert send(gateway, [old]).status == 200
    mark = gateway.mark()

    lines = [line for user, line in hash_lines.items()
             if user not in ("amy", "slow")]
    write_lines(os.path.join(gateway.dir, "users"),
                lines + [htpasswd_line("amy", "pear")])

    poll(lambda: send(gateway, [new]).status == 200, "the new password")

    # each worker re-reads the file within a second of a request; once it
    # has, the old password's cache entry (it belonged to the old file)
    # no longer lets the old password through
    refused_by = set()

    def old_password_refused_by_both_workers():
        response = send(gateway, [old])
        if response.status == 401:
            refused_by.add(response.header("X-Worker"))
        return len(refused_by) == 2

    poll(old_password_refused_by_both_workers, "the old password refused")
    assert send(gateway, [old]).status == 401
    assert any('password file "%s/users" reloaded' % gateway.dir in line
               for line in gateway.error_lines_since(mark))


def test_broken_password_file_keeps_the_previous_table(gateway, backend):
    path = os.path.join(gateway.dir, "users")
    mark = gateway.mark()
    with open(path, "a") as f:
        f.write("broken line without colon\n")

    def reported():
        send(gateway, [auth("amy", "apple")])
        return any("eas_preauth_user_file \"%s:" % path in line
                   and "no colon, the previous contents stay in use" in line
                   for line in gateway.error_lines_since(mark))

    poll(reported, "the error about the broken line")
    assert send(gateway, [auth("user1", "pw1")]).status == 200


def test_nginx_reload_keeps_the_cache_and_rereads_the_file(gateway, backend):
    header = auth("jdoe", "secret")
    assert send(gateway, [header]).status == 200

    gateway.reload()

    assert send(gateway, [header]).status == 200
    assert [e["auth"] for e in entries(gateway, 2)] == ["ok", "cached"]


# Lockout -----------------------------------------------------------------

def test_repeated_wrong_password_is_answered_from_the_cache(gateway, backend):
    """The stale-password phone: the directory sees it once, and the user
    is not locked however often the phone retries."""
    stale = auth("jdoe", "last-years-password")

    for _ in range(10):
        assert send(gateway, [stale], "/dir").status == 401

    logged = entries(gateway, 10)
    assert [e["auth"] for e in logged] == ["invalid"] * 10
    assert len(gateway.wait_for_access_log(1, "directory.log")) == 1
    assert send(gateway, [auth("jdoe", "secret")], "/dir").status == 200
    assert len(gateway.wait_for_access_log(2, "directory.log")) == 2
    assert len(backend.requests) == 1


def test_user_lockout_spares_known_good_credentials(gateway, backend):
    good = auth("jdoe", "secret")
    assert send(gateway, [good]).status == 200           # now known good
    mark = gateway.mark()

    for i in range(3):
        assert send(gateway, [auth("jdoe", "guess%d" % i)]).status == 401

    lines = eas_lines(gateway, mark)
    assert len(lines) == 3
    assert "[notice]" in lines[2]
    assert 'user "jdoe" locked out for 3 s after 3 failures' in lines[2]

    # a new verification (another device) is refused without asking the
    # source, even with the right password ...
    mark = gateway.mark()
    locked = send(gateway, [auth("CONTOSO\\jdoe", "secret")],
                  query=QUERY.replace("DEV1", "NEWDEV"))
    assert locked.status == 401
    assert locked.header("WWW-Authenticate") == 'Basic realm="ActiveSync"'
    (line,) = eas_lines(gateway, mark)
    assert 'eas: preauth refused: user "jdoe" is locked out for' in line
    # ... while the phone that verified before the lock keeps working
    assert send(gateway, [good]).status == 200
    logged = entries(gateway, 6)
    assert [e["auth"] for e in logged] == \
        ["ok", "invalid", "invalid", "invalid", "locked", "cached"]
    assert logged[4]["reason"] == "auth_user_locked"
    assert len(backend.requests) == 2

    # the lockout ends by itself
    poll(lambda: send(gateway, [auth("CONTOSO\\jdoe", "secret")],
                      query=QUERY.replace("DEV1", "NEWDEV")).status
         == 200, "the end of the 3 s lockout")


def test_address_lockout_against_password_spraying(gateway, backend):
    known = auth("user7", "pw7")
    assert send(gateway, [known]).status == 200
    mark = gateway.mark()

    for i in range(6):
        assert send(gateway, [auth("user%d" % i, "Spring2026!")]).status \
            == 401

    assert 'address "127.0.0.1" locked out for 3 s' in \
        eas_lines(gateway, mark)[-1]
    refused = send(gateway, [auth("user6", "pw6")])
    assert refused.status == 401
    assert entries(gateway, 8)[-1]["reason"] == "auth_address_locked"
    assert send(gateway, [known]).status == 200
    assert len(backend.requests) == 2


def test_source_errors_never_count_as_failures(gateway, backend):
    mark = gateway.mark()

    for i in range(5):
        response = send(gateway, [auth("jdoe", "secret%d" % i)], "/broken")
        assert response.status == 503
    failing = send(gateway, [auth("jdoe", "other")], "/failing")

    assert failing.status == 503
    lines = eas_lines(gateway, mark)
    assert len(lines) == 6 and all("[error]" in line for line in lines)
    assert "eas: preauth failed: credential source answered 502 for user " \
        "\"jdoe\"" in lines[0]
    assert "answered 500" in lines[5]
    assert {e["auth"] for e in entries(gateway, 6)} == {"error"}
    assert send(gateway, [auth("jdoe", "secret")], "/dir").status == 200
    assert len(backend.requests) == 1


# Subrequest source -------------------------------------------------------

def test_subrequest_source_asks_the_directory(gateway, backend):
    assert send(gateway, [auth("amy", "apple")], "/dir").status == 200
    assert send(gateway, [auth("amy", "pear")], "/dir").status == 401
    assert send(gateway, [auth("amy", "apple")], "/dir").status == 200

    assert len(gateway.wait_for_access_log(2, "directory.log")) == 2
    assert [e["auth"] for e in entries(gateway, 3)] == \
        ["ok", "invalid", "cached"]
    assert len(backend.requests) == 2


def test_subrequest_source_can_be_the_backend_with_options(gateway, backend):
    header = auth("anyone", "whatever")

    assert send(gateway, [header], "/backend-options").status == 200

    check, forwarded = backend.wait_for(2)
    assert check.method == "OPTIONS"
    assert check.header("Authorization") == header[1]
    assert forwarded.method == "POST"


# The event loop ----------------------------------------------------------

DEBUG_LINE = re.compile(r"\[debug\] (\d+)#\d+: (?:\*(\d+) )?(.*)")


def answered_while_verifying(lines):
    """(pid, connection) of a request marked "X-Case: cached" that a
    worker finished while a verification that worker had posted to the
    thread pool was still running, or None.  Reads the debug error log,
    which both workers append to, so its order is the order of events."""
    running = {}
    cached = set()
    for line in lines:
        match = DEBUG_LINE.search(line)
        if not match:
            continue
        pid, connection, text = match.groups()
        if text.startswith("task #") and "added to thread pool" in text:
            running[pid] = running.get(pid, 0) + 1
        elif text.startswith("eas preauth thread done"):
            running[pid] -= 1
        elif text == 'http header: "X-Case: cached"':
            cached.add(connection)
        elif (text == "http log handler" and connection in cached
              and running.get(pid, 0) > 0):
            return pid, connection
    return None


def test_slow_hashes_do_not_block_the_event_loop(gateway, backend):
    """Six bcrypt cost-13 verifications run in the thread pool while
    cached requests keep being answered: a worker finishes a cached
    request while a verification it started is still running (a worker
    hashing in its event loop could not).  Shown by the order of events
    in the error log, not by timing, so a slow machine cannot fail it."""
    cached = auth("jdoe", "secret")
    assert send(gateway, [cached]).status == 200
    mark = gateway.mark()

    slow_done = []

    def slow(i):
        response = send(gateway, [auth("slow", "wrong-%d" % i)], "/slow")
        slow_done.append(response.status)

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()

    def cached_answer_during_a_verification():
        all_done = len(slow_done) == len(threads)
        assert send(gateway, [cached], case="cached").status == 200
        witness = answered_while_verifying(gateway.error_lines_since(mark))
        assert witness or not all_done, \
            "no cached request was answered while a verification ran"
        return witness

    try:
        poll(cached_answer_during_a_verification,
             "cached answer during a verification", interval=0)
    finally:
        for thread in threads:
            thread.join(60)
    assert slow_done == [401] * 6


# nginx -t ----------------------------------------------------------------

CONFIG_ERRORS = [
    ("no zone", "eas_preauth x; eas_preauth_user_file ${dir}/users;",
     '"eas_preauth" needs "eas_preauth_cache" with a zone defined by '
     '"eas_preauth_zone"'),
    ("unknown zone", "eas_preauth x; eas_preauth_cache zone=nope; "
     "eas_preauth_user_file ${dir}/users;",
     '"eas_preauth_cache" zone "nope" is unknown'),
    ("no source", "eas_preauth x; eas_preauth_cache zone=auth;",
     '"eas_preauth" needs a credential source: "eas_preauth_user_file", '
     '"eas_preauth_ldap" or "eas_preauth_request"'),
    ("two sources", "eas_preauth_user_file ${dir}/users; "
     "eas_preauth_request /auth;",
     '"eas_preauth_request" directive is duplicate, or another '
     'credential source is set'),
    ("quote in realm", "eas_preauth 'a\"b';",
     'invalid character in realm "a"b" of "eas_preauth"'),
    ("bad lockout", "eas_preauth_lockout user=many;",
     'invalid parameter "user=many" in "eas_preauth_lockout"'),
    ("lockout count over 65535", "eas_preauth_lockout address=70000;",
     'invalid parameter "address=70000" in "eas_preauth_lockout"'),
    ("no known time", "eas_preauth_lockout known=0;",
     'invalid parameter "known=0" in "eas_preauth_lockout"'),
    ("bad cache time", "eas_preauth_cache zone=auth valid=soon;",
     'invalid time "valid=soon"'),
    ("relative request uri", "eas_preauth_request auth;",
     '"eas_preauth_request" needs a URI starting with "/", not "auth"'),
    ("missing file", "eas_preauth_user_file ${dir}/none;",
     'open() "${dir}/none" failed'),
]

SHA_LINE = "jdoe:{SHA}qs67vlse11GdWHE+bbh7CYDxCOs=\n"

CONFIG_TEMPLATE = confs.gateway(
    confs.eas_location("%s", path="/", proxy_pass="http://127.0.0.1:9"),
    zones=confs.AUTH_ZONE, upstream=None)


def config_test(nginx_factory, body, users):
    nginx = nginx_factory(CONFIG_TEMPLATE % body, start=False,
                          port=free_port())
    with open(os.path.join(nginx.dir, "users"), "w") as f:
        f.write(users)
    nginx.expected_alerts.append(r"\[emerg\] ")
    return nginx, nginx.test_config()


@pytest.mark.parametrize("name,body,message", CONFIG_ERRORS,
                         ids=[case[0] for case in CONFIG_ERRORS])
def test_config_errors_fail_nginx_t(nginx_factory, name, body, message):
    nginx, (code, output) = config_test(nginx_factory, body, SHA_LINE)

    assert code != 0
    assert "[emerg] " + message.replace("${dir}", nginx.dir) in output


BAD_FILES = [
    ("no colon", "jdoe\n", 1, "no colon"),
    ("empty user", "ok:{SHA}qs67vlse11GdWHE+bbh7CYDxCOs=\n:x\n", 2,
     "invalid user name"),
    ("unknown hash", "# comment\n\njdoe:secret\n", 3,
     "unsupported password hash"),
    ("des crypt", "jdoe:abJnggxhB/yWI\n", 1, "unsupported password hash"),
    ("plain without parameter", "jdoe:{PLAIN}secret\n", 1,
     'plain text password without the "plain" parameter'),
    ("short bcrypt", "jdoe:$2y$04$Hb/XbMxXHbmVs7D1e2JlS.PykHtOw\n", 1,
     "invalid or unsupported password hash"),
    ("bad sha", "jdoe:{SHA}AAAA\n", 1, "invalid {SHA} hash"),
    ("duplicate after normalising",
     "jdoe:{SHA}qs67vlse11GdWHE+bbh7CYDxCOs=\n"
     "CONTOSO\\JDoe:{SHA}qs67vlse11GdWHE+bbh7CYDxCOs=\n", 2,
     'duplicate user "jdoe"'),
]


@pytest.mark.parametrize("name,text,line,message", BAD_FILES,
                         ids=[case[0] for case in BAD_FILES])
def test_malformed_password_file_fails_nginx_t(nginx_factory, name, text,
                                               line, message):
    body = ("eas_preauth x; eas_preauth_cache zone=auth; "
            "eas_preauth_user_file ${dir}/users;")
    nginx, (code, output) = config_test(nginx_factory, body, text)

    assert code != 0
    assert '[emerg] eas_preauth_user_file "%s/users:%d": %s' % (
        nginx.dir, line, message) in output


def test_good_password_file_passes_nginx_t(nginx_factory, hash_lines):
    body = ("eas_preauth x; eas_preauth_cache zone=auth; "
            "eas_preauth_user_file ${dir}/users;")
    users = "\r\n".join(hash_lines.values()) + "\r\n# the end\n"
    nginx, (code, output) = config_test(nginx_factory, body, users)

    assert code == 0, output
    assert re.search(r"test is successful", output)
