"""Directory pre-authentication through a real nginx against a real
OpenLDAP slapd started by the test on loopback: DN-template bind,
search-then-bind as a service account, a required group, LDAPS and
StartTLS with a throwaway CA (and a wrong CA refused), injection attempts
in user names, the empty password, the directory killed and restarted, a
directory that never answers (timeouts), failover to a second server, the
grace time, and the user's device lists from the directory."""

import os
import threading

import pytest

from eastest import ldap as directory
from eastest.certs import make_ca_and_cert
from eastest.client import EasClient
from eastest.nginx import free_port, start_gateway
from eastest.waiting import SEQ_FIELD, poll, tag, tag_header
from eastest.waiting import logged as logged_by_tag

EAS = "/Microsoft-Server-ActiveSync"
V141 = [("MS-ASProtocolVersion", "14.1")]
BASE = directory.SUFFIX
PEOPLE = "ou=people," + BASE

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

LOG_FORMAT = ("log_format ldap escape=json '{\"status\":\"$status\","
              "\"auth\":\"$eas_auth\",\"user\":\"$eas_auth_user\","
              "\"reason\":\"$eas_reason\",\"access\":\"$eas_access\","
              "\"uri\":\"$uri\"," + SEQ_FIELD + "}';")

SEARCH = ("base=" + BASE + " filter=(sAMAccountName=%u) bind_dn="
          + directory.SERVICE_DN + " bind_password="
          + directory.SERVICE_PASSWORD)

NGINX_CONFIG = """
http {
    ${temp_paths}
    """ + LOG_FORMAT + """

    eas_preauth_zone zone=auth:1m;
    eas_preauth_zone zone=down:1m;
    eas_preauth_zone zone=grace:1m;

    eas_ldap_server dn url=${url} bind=uid=%u,ou=people,""" + BASE + """;
    eas_ldap_server search url=${url} """ + SEARCH + """;
    eas_ldap_server group url=${url} """ + SEARCH + """
                    group=""" + directory.GROUP_DN + """;
    eas_ldap_server ldaps url=${ldaps_url} ca=${ca}
                    bind=uid=%u,ou=people,""" + BASE + """;
    eas_ldap_server starttls url=${url} starttls ca=${ca}
                    bind=uid=%u,ou=people,""" + BASE + """;
    eas_ldap_server wrongca url=${ldaps_url} ca=${wrong_ca}
                    bind=uid=%u,ou=people,""" + BASE + """;
    eas_ldap_server restart url=${url} """ + SEARCH + """ retry=1s;
    eas_ldap_server hung url=${hole_url} """ + SEARCH + """
                    connect_timeout=1s timeout=1s retry=1h;
    eas_ldap_server hungslow url=${hole_url} """ + SEARCH + """
                    connect_timeout=10s timeout=1h retry=1h;
    eas_ldap_server failover url=${dead_url} url=${hole_url} url=${url}
                    """ + SEARCH + """ connect_timeout=1s timeout=1s;
    eas_ldap_server grace url=${url} """ + SEARCH + """ retry=1s grace=1h;
    eas_ldap_server devices url=${url} """ + SEARCH + """;
    eas_ldap_server devicesdn url=${url} bind=uid=%u,ou=people,""" + BASE \
    + """;

    upstream backend {
        server 127.0.0.1:${backend_port};
    }

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/eas.log ldap;

        eas_preauth "ActiveSync";
        eas_preauth_cache zone=auth;
        eas_device_block_status 403;
        eas_preauth_lockout user=off address=off;
        eas_preauth_ldap search;

        location /dn/ {
            eas on;
            eas_preauth_ldap dn;
            proxy_pass http://backend/;
        }

        location /search/ {
            eas on;
            eas_preauth_ldap search;
            proxy_pass http://backend/;
        }

        location /group/ {
            eas on;
            eas_preauth_ldap group;
            proxy_pass http://backend/;
        }

        location /ldaps/ {
            eas on;
            eas_preauth_ldap ldaps;
            proxy_pass http://backend/;
        }

        location /starttls/ {
            eas on;
            eas_preauth_ldap starttls;
            proxy_pass http://backend/;
        }

        location /wrongca/ {
            eas on;
            eas_preauth_ldap wrongca;
            proxy_pass http://backend/;
        }

        location /restart/ {
            eas on;
            eas_preauth_cache zone=down valid=0 invalid=0;
            eas_preauth_ldap restart;
            proxy_pass http://backend/;
        }

        location /hung/ {
            eas on;
            eas_preauth_ldap hung;
            proxy_pass http://backend/;
        }

        location /hungslow/ {
            eas on;
            eas_preauth_ldap hungslow;
            proxy_pass http://backend/;
        }

        location /failover/ {
            eas on;
            eas_preauth_ldap failover;
            proxy_pass http://backend/;
        }

        location /grace/ {
            eas on;
            eas_preauth_cache zone=grace valid=1s;
            eas_preauth_ldap grace;
            proxy_pass http://backend/;
        }

        location /devices/ {
            eas on;
            eas_preauth_ldap devices;
            eas_device_user_lists directory;
            proxy_pass http://backend/;
        }

        location /devicesdn/ {
            eas on;
            eas_preauth_ldap devicesdn;
            eas_device_user_lists directory;
            proxy_pass http://backend/;
        }
    }
}
"""

PEOPLE_ENTRIES = [
    directory.person("jdoe", "secret", allowed=["ApplALLOW1"],
                     blocked=["ApplBLOCK1", "androidBAD"]),
    directory.person("amy", "apple"),
    directory.person("restart", "restart-pw"),
    directory.person("grace", "grace-pw", allowed=["GraceDev"]),
    directory.person("boss", "boss-pw", ou="admins"),
]


slapd = directory.slapd_fixture(PEOPLE_ENTRIES)


@pytest.fixture(scope="module")
def hole():
    server = directory.BlackHole(hold=60)
    yield server
    server.close()


@pytest.fixture
def gateway(nginx_factory, backend, slapd, hole, certs, tmp_path_factory):
    wrong = make_ca_and_cert(str(tmp_path_factory.mktemp("wrong-ca")))
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         url=slapd.url, ldaps_url=slapd.ldaps_url,
                         hole_url=hole.url,
                         dead_url="ldap://127.0.0.1:%d" % free_port(),
                         ca=certs.ca, wrong_ca=wrong.ca,
                         backend_port=backend.port)


def auth(user, password):
    import base64
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8"))
    return ("Authorization", "Basic " + token.decode())


def send(nginx, prefix, user, password, device="DEV1", timeout=30):
    """One request, tagged with a number its access log line carries:
    two workers write the log, so lines need not be in request order."""
    client = EasClient("http://127.0.0.1:%d" % nginx.port)
    query = "?Cmd=Sync&User=u&DeviceId=%s&DeviceType=iPhone" % device
    seq = tag()
    headers = ([auth(user, password)] + V141 + [("Content-Length", "0"),
                                                tag_header(seq)])
    reply = client.raw("POST", "/" + prefix + EAS + query, headers,
                       timeout=timeout)
    reply.seq = seq
    return reply


def logged(nginx, *replies):
    """The access log entries of these replies, in the order given,
    waiting until all are written."""
    return logged_by_tag(nginx, "eas.log", [reply.seq for reply in replies])


def eas_lines(nginx, mark):
    return [line for line in nginx.error_lines_since(mark)
            if "eas: " in line]


# Binding -------------------------------------------------------------------

CREDENTIALS = [
    # location, user, password, status, $eas_auth_user or reason
    ("dn", "jdoe", "secret", 200, "jdoe"),
    ("dn", "jdoe", "wrong", 401, "auth_invalid"),
    ("dn", "nobody", "secret", 401, "auth_invalid"),
    ("dn", "CONTOSO\\jdoe", "secret", 200, "jdoe"),
    ("dn", "jdoe@example.org", "secret", 200, "jdoe"),
    ("search", "jdoe", "secret", 200, "jdoe"),
    ("search", "EXAMPLE\\amy", "apple", 200, "amy"),
    ("search", "amy", "secret", 401, "auth_invalid"),
    ("search", "nobody", "x", 401, "auth_invalid"),
    ("group", "jdoe", "secret", 200, "jdoe"),
    ("group", "amy", "apple", 401, "auth_invalid"),
    ("ldaps", "jdoe", "secret", 200, "jdoe"),
    ("ldaps", "jdoe", "nope", 401, "auth_invalid"),
    ("starttls", "amy", "apple", 200, "amy"),
    ("starttls", "amy", "pear", 401, "auth_invalid"),
    ("failover", "jdoe", "secret", 200, "jdoe"),
]


@pytest.mark.parametrize("prefix,user,password,status,expect", CREDENTIALS,
                         ids=["%s-%s-%d" % (c[0], c[1], c[3])
                              for c in CREDENTIALS])
def test_directory_answers(gateway, backend, prefix, user, password, status,
                           expect):
    reply = send(gateway, prefix, user, password)

    assert reply.status == status
    entry = logged(gateway, reply)[0]
    if status == 200:
        assert entry["auth"] == "ok"
        assert entry["user"] == expect
        assert len(backend.wait_for(1)) == 1
    else:
        assert entry["reason"] == expect
        assert reply.header("WWW-Authenticate") == 'Basic realm="ActiveSync"'
        assert backend.requests == []


def test_refusals_name_the_reason_in_one_line(gateway):
    mark = gateway.mark()
    assert send(gateway, "group", "amy", "apple").status == 401
    assert send(gateway, "search", "nobody", "x").status == 401
    assert send(gateway, "search", "jdoe", "bad").status == 401

    lines = poll(lambda: (lambda l: l if len(l) >= 3 else None)(
        eas_lines(gateway, mark)), "log lines")
    assert len(lines) == 3
    assert 'not in the required group: user "amy"' in lines[0]
    assert 'unknown user "nobody"' in lines[1]
    assert 'invalid password for user "jdoe"' in lines[2]
    assert all("[notice]" in line for line in lines)
    assert not any("secret" in line or "bad" in line.split('"jdoe"')[-1]
                   for line in lines)


def test_the_cache_answers_a_second_time(gateway):
    one = send(gateway, "search", "jdoe", "secret")
    two = send(gateway, "search", "jdoe", "secret")
    assert (one.status, two.status) == (200, 200)
    first, second = logged(gateway, one, two)
    assert (first["auth"], second["auth"]) == ("ok", "cached")


# Injection and empty passwords --------------------------------------------

INJECTIONS = [
    # location, user, password: never accepted, never "directory down"
    ("search", "j*", "secret"),
    ("search", "*", "secret"),
    ("search", "jdoe)(sAMAccountName=*", "secret"),
    ("search", "jdoe)(|(uid=*", "secret"),
    ("search", "a\\b\\c", "secret"),
    ("dn", "*", "secret"),
    ("dn", "jdoe,ou=people", "secret"),
    ("dn", "boss,ou=admins", "boss-pw"),
    ("dn", "jdoe+cn=x", "secret"),
    ("dn", "#jdoe", "secret"),
    ("group", "j*", "secret"),
]


@pytest.mark.parametrize("prefix,user,password", INJECTIONS,
                         ids=["%s-%s" % (c[0], c[1]) for c in INJECTIONS])
def test_injection_attempts_are_refused(gateway, backend, prefix, user,
                                        password):
    mark = gateway.mark()
    reply = send(gateway, prefix, user, password)

    assert reply.status == 401
    assert backend.requests == []
    assert not any("is down" in line for line in eas_lines(gateway, mark))


def test_nul_in_a_user_name_is_malformed(gateway, backend):
    reply = send(gateway, "search", "jdoe\0", "secret")

    assert reply.status == 401
    assert logged(gateway, reply)[0]["reason"] != "auth_invalid"
    assert backend.requests == []


@pytest.mark.parametrize("prefix", ["dn", "search", "ldaps"])
def test_an_empty_password_is_never_an_anonymous_bind(gateway, backend,
                                                      prefix):
    reply = send(gateway, prefix, "jdoe", "")

    assert reply.status == 401
    assert logged(gateway, reply)[0]["reason"] == "auth_invalid"
    assert backend.requests == []


# TLS ------------------------------------------------------------------------

def test_a_wrong_ca_is_refused(gateway, backend):
    mark = gateway.mark()
    reply = send(gateway, "wrongca", "jdoe", "secret")

    assert reply.status == 503
    assert reply.header("Retry-After") == "10"
    assert backend.requests == []
    lines = eas_lines(gateway, mark)
    down = [line for line in lines
            if 'eas: directory "wrongca" is down' in line]
    assert len(down) == 1 and "[error]" in down[0]
    assert logged(gateway, reply)[0]["auth"] == "down"


# Down, slow, back up -------------------------------------------------------

def test_directory_killed_and_restarted(gateway, backend, slapd):
    assert send(gateway, "restart", "restart", "restart-pw").status == 200

    mark = gateway.mark()
    slapd.kill()
    try:
        replies = [send(gateway, "restart", "restart", "restart-pw")
                   for _ in range(5)]
    finally:
        slapd.start()

    assert [r.status for r in replies] == [503] * 5
    assert all(r.header("Retry-After") == "1" for r in replies)

    # after "retry", one request asks again and finds it up
    poll(lambda: send(gateway, "restart", "restart", "restart-pw").status
         == 200, "recovery")

    lines = eas_lines(gateway, mark)
    down = [l for l in lines if 'eas: directory "restart" is down' in l]
    assert len(down) == 1 and "[error]" in down[0]
    up = [l for l in lines if 'eas: directory "restart" is up again' in l]
    assert len(up) == 1 and "[notice]" in up[0]
    refused = [l for l in lines if "preauth refused: directory" in l]
    assert len(refused) >= 5 and all("[notice]" in l for l in refused)


def test_a_hung_directory_times_out(gateway, backend, hole):
    mark = gateway.mark()
    accepted = hole.accepted

    # bounded by connect + operation timeouts (1 s each): a hang would
    # run into the client's own timeout
    reply = send(gateway, "hung", "jdoe", "secret", timeout=20)

    assert reply.status == 503
    assert hole.accepted > accepted

    # while it is down (retry=1h), requests are answered without asking
    accepted = hole.accepted
    reply = send(gateway, "hung", "amy", "apple", timeout=20)

    assert reply.status == 503
    assert hole.accepted == accepted
    lines = eas_lines(gateway, mark)
    assert len([l for l in lines if 'directory "hung" is down:' in l]) == 1
    assert any('preauth refused: directory "hung" is down, user "amy"' in l
               for l in lines)


def test_the_event_loop_serves_while_a_bind_hangs(gateway, backend, hole):
    result = {}
    accepted = hole.accepted

    def hung():
        result["hung"] = send(gateway, "hungslow", "jdoe", "secret",
                              timeout=60).status

    thread = threading.Thread(target=hung)
    thread.start()
    try:
        poll(lambda: hole.accepted > accepted,
             "connection to the hung directory")
        # new connections land on either worker: several, so that one at
        # least meets the worker whose thread waits for the hung
        # directory; each is answered while that bind still waits
        for _ in range(6):
            assert send(gateway, "search", "jdoe", "secret").status == 200
            assert thread.is_alive() and "hung" not in result
    finally:
        hole.release()
        thread.join(30)
    assert result["hung"] == 503


def test_failover_skips_dead_and_hung_servers(gateway, backend, hole):
    mark = gateway.mark()

    assert send(gateway, "failover", "amy", "apple").status == 200
    assert send(gateway, "failover", "amy", "pear").status == 401

    assert not any("is down" in line for line in eas_lines(gateway, mark))


def test_grace_keeps_known_credentials_while_down(gateway, backend, slapd):
    assert send(gateway, "grace", "grace", "grace-pw").status == 200

    def answered_in_grace():
        # "cached" until valid=1s has passed, then asked: down, grace
        reply = send(gateway, "grace", "grace", "grace-pw", device="GraceDev")
        entry = logged(gateway, reply)[0]
        assert reply.status == 200, entry
        return entry["auth"] == "grace"

    slapd.kill()
    try:
        poll(answered_in_grace, "an answer in the grace time")
        other = send(gateway, "grace", "grace", "other-pw")
        stranger = send(gateway, "grace", "amy", "apple")
    finally:
        slapd.start()

    assert other.status == 503
    assert stranger.status == 503
    last = logged(gateway, other, stranger)
    assert [e["auth"] for e in last] == ["down", "down"]


# Device lists from the directory -------------------------------------------

DEVICES = [
    # location, device, status, $eas_reason
    ("devices", "ApplBLOCK1", 403, "directory:blocked"),
    ("devices", "applblock1", 403, "directory:blocked"),
    ("devices", "androidBAD", 403, "directory:blocked"),
    ("devices", "ApplALLOW1", 200, "directory:allowed"),
    ("devices", "Other", 200, "eas_device_default"),
    ("devicesdn", "ApplBLOCK1", 403, "directory:blocked"),
    ("devicesdn", "ApplALLOW1", 200, "directory:allowed"),
]


@pytest.mark.parametrize("prefix,device,status,reason", DEVICES,
                         ids=["%s-%s" % (c[0], c[1]) for c in DEVICES])
def test_device_lists_from_the_directory(gateway, backend, prefix, device,
                                         status, reason):
    first = send(gateway, prefix, "jdoe", "secret", device=device)
    second = send(gateway, prefix, "jdoe", "secret", device=device)

    assert (first.status, second.status) == (status, status)
    one, two = logged(gateway, first, second)
    assert (one["auth"], two["auth"]) == ("ok", "cached")
    assert one["reason"] == two["reason"] == reason


def test_another_users_lists_do_not_apply(gateway, backend):
    reply = send(gateway, "devices", "amy", "apple", device="ApplBLOCK1")
    assert reply.status == 200
    assert logged(gateway, reply)[0]["reason"] == "eas_device_default"


# Configuration mistakes ----------------------------------------------------

BAD_CONFIGS = [
    ("eas_ldap_server d url=http://x bind=uid=%u;", "invalid url"),
    ("eas_ldap_server d url=ldapi:///x bind=uid=%u;", "url must be ldap://"),
    ("eas_ldap_server d bind=uid=%u;", 'must have "url" parameter'),
    ("eas_ldap_server d url=ldap://x;", 'needs either "bind"'),
    ("eas_ldap_server d url=ldap://x bind=uid=x;", 'invalid "bind" template'),
    ("eas_ldap_server d url=ldap://x filter=(uid=%u);", '"filter" needs'),
    ("eas_ldap_server d url=ldap://x base=o filter=(uid=%u) bind_dn=cn=a;",
     '"bind_dn" needs "bind_password"'),
    ("eas_ldap_server d url=ldaps://x starttls bind=uid=%u;",
     '"starttls" with the ldaps:// url'),
    ("eas_ldap_server d url=ldap://x bind=uid=%u timeout=soon;",
     "invalid time"),
    ("eas_ldap_server d url=ldap://x bind=uid=%u colour=blue;",
     "invalid parameter"),
]


@pytest.mark.parametrize("line,message", BAD_CONFIGS,
                         ids=[m for _, m in BAD_CONFIGS])
def test_configuration_mistakes_fail_nginx_t(nginx_factory, line, message):
    nginx = nginx_factory("http {\n ${temp_paths}\n %s\n}\n" % line,
                          start=False)
    nginx.expected_alerts.append(r"\[emerg\]")
    code, output = nginx.test_config()
    assert code != 0
    assert "[emerg]" in output and message in output
    assert "eas_ldap_server" in output


def test_an_unknown_directory_fails_nginx_t(nginx_factory):
    nginx = nginx_factory("http {\n ${temp_paths}\n server {\n"
                          " eas_preauth_ldap nowhere;\n }\n}\n", start=False)
    nginx.expected_alerts.append(r"\[emerg\]")
    code, output = nginx.test_config()
    assert code != 0
    assert 'unknown directory "nowhere"' in output


# conf.example ----------------------------------------------------------------

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "conf.example",
                       "eas-ldap-ad.conf")

EXAMPLE_CONFIG = """
http {
    ${temp_paths}
    eas_preauth_zone zone=eas_auth:1m;
    include ${dir}/eas-ldap-ad.conf;

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=eas_auth;
            eas_preauth_ldap ad;
            eas_device_user_lists directory;
            proxy_pass http://127.0.0.1:${backend_port};
        }
    }
}
"""


def test_the_active_directory_example_works(nginx_factory, backend, slapd,
                                            certs):
    with open(EXAMPLE) as f:
        text = f.read()
    swaps = [
        ("ldap://dc1.corp.example.com", "ldap://127.0.0.1:%d"
         % free_port()),
        ("ldap://dc2.corp.example.com", slapd.url),
        ("/etc/nginx/eas/corp-ca.pem", certs.ca),
        ("cn=eas-gateway,ou=service,dc=corp,dc=example,dc=com",
         directory.SERVICE_DN),
        ("/etc/nginx/eas/ldap-bind.secret", "${dir}/ldap-bind.secret"),
        ("dc=corp,dc=example,dc=com", BASE),
    ]
    for old, new in swaps:
        assert old in text, "conf.example/eas-ldap-ad.conf has no " + old
        text = text.replace(old, new)
    port = free_port()
    nginx = nginx_factory(EXAMPLE_CONFIG, start=False, port=port,
                          backend_port=backend.port)
    with open(os.path.join(nginx.dir, "eas-ldap-ad.conf"), "w") as f:
        f.write(text.replace("${dir}", nginx.dir))
    with open(os.path.join(nginx.dir, "ldap-bind.secret"), "w") as f:
        f.write(directory.SERVICE_PASSWORD + "\n")
    nginx.start(ports=(port,))
    nginx.port = port

    client = EasClient("http://127.0.0.1:%d" % port)
    query = "?Cmd=Sync&User=u&DeviceId=%s&DeviceType=iPhone"

    def post(user, password, device="DEV1"):
        return client.raw("POST", EAS + query % device,
                          [auth(user, password)] + V141
                          + [("Content-Length", "0")]).status

    assert post("CORP\\jdoe", "secret") == 200      # group member, failover
    # blocked as Exchange blocks a 14.1 device: Sync Status 129
    blocked = client.raw("POST", EAS + query % "ApplBLOCK1",
                         [auth("jdoe@corp.example.com", "secret")] + V141
                         + [("Content-Length", "0")])
    assert (blocked.status, blocked.eas_status()) == (200, 129)
    assert post("amy", "apple") == 401              # not in the group


def test_directory_lists_need_a_directory_source(nginx_factory):
    nginx = nginx_factory("http {\n ${temp_paths}\n eas_preauth_zone "
                          "zone=a:1m;\n server {\n location / {\n eas on;\n"
                          " eas_preauth x;\n eas_preauth_cache zone=a;\n"
                          " eas_preauth_request /auth;\n"
                          " eas_device_user_lists directory;\n }\n }\n}\n",
                          start=False)
    nginx.expected_alerts.append(r"\[emerg\]")
    code, output = nginx.test_config()
    assert code != 0
    assert ('"eas_device_user_lists directory" needs "eas_preauth" with '
            '"eas_preauth_ldap"') in output


def test_reload_keeps_the_directory_state(gateway, backend, slapd):
    assert send(gateway, "wrongca", "jdoe", "secret").status == 503
    mark = gateway.mark()

    gateway.reload()

    # still down after the reload: no second "is down" line, and the
    # other directories answer through the new workers' connections
    assert send(gateway, "wrongca", "jdoe", "secret").status == 503
    assert send(gateway, "search", "jdoe", "secret").status == 200
    assert not any('eas: directory "wrongca" is down' in line
                   for line in eas_lines(gateway, mark))
