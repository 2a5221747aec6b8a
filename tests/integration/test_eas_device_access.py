"""Step 3 of the request flow through a real nginx: device access rules
at the edge.  Per-user block list, per-user allow list, rules (first
match wins), default; the max-devices limit; a blocked request gets 403
(or the configured status), one log line naming device, user and rule,
$eas_access / $eas_reason, and never reaches the backend."""

import base64
import http.client
import json
import os
import re

import pytest

from eastest import wbxml
from eastest.client import EasClient
from eastest import confs
from eastest.nginx import free_port, start_gateway
from eastest.waiting import logged

LOG_FORMAT = ("log_format dev escape=json '{\"status\":\"$status\","
              "\"access\":\"$eas_access\",\"reason\":\"$eas_reason\","
              "\"device\":\"$eas_device_id\",\"user\":\"$eas_user\"}';")

NGINX_CONFIG = confs.gateway(
    """
    access_log ${dir}/dev.log dev;

    eas on;
    # these tests look at decisions; test_edge_answers.py at the
    # default answer (Status 129 from protocol 14.0 on)
    eas_device_block_status 403;

    # server level: inherited by every location without rules
    eas_device_user_lists ${dir}/users.txt;
    eas_device_rules ${dir}/rules.txt;
    eas_device_block device_type=~*^blackberry;
    """,
    confs.location(confs.EAS, "proxy_pass http://backend;"),
    confs.location("/known" + confs.EAS, """
        eas_device_default block;
        eas_device_rules ${dir}/known.txt;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    """),
    confs.location("/status" + confs.EAS, """
        eas_device_block_status 449;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    """),
    confs.location("/custom" + confs.EAS, """
        error_page 403 = @blocked;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    """),
    confs.location("@blocked", 'return 403 "device blocked: $eas_reason\\n";'),
    # the limit counts the devices of authenticated users
    confs.location("/limited" + confs.EAS, """
        eas_preauth "ActiveSync";
        eas_preauth_cache zone=auth;
        eas_preauth_user_file ${dir}/passwords plain;
        eas_devices devices;
        eas_device_max 2;
        proxy_pass http://backend/Microsoft-Server-ActiveSync;
    """),
    confs.location("= /inventory", """
        eas off;
        eas_devices devices;
        eas_device_inventory;
    """),
    http=LOG_FORMAT + """

    # http level: inherited by the second server, which has no rules
    eas_device_block device_id=HttpLevelBlocked;
    """,
    servers=[confs.server("access_log ${dir}/dev.log dev;",
                          confs.eas_location("eas_device_block_status 403;"),
                          listen="127.0.0.1:${port2}")])

RULES = r"""# general rules, first match wins
block device_id=ApplLOST0001
allow device_id=ApplVIP0001
block user_agent=Apple-iPhone5C2/1002.329
block user_agent=~^Apple-iPad\d+C\d+/1002\.329$
block device_type=WindowsMail
block user=mallory
allow user=ceo device_type=~^iPhone$   # two conditions: both must match
block user=ceo
block user_agent="Android-Mail/7.5 (bad build)"
block device_id=A81F31E18BC6F962B3674D98788A7C9A
"""

USERS = """# user allow|block DeviceId ...
jdoe block ApplJDOEOLD
jdoe allow ApplLOST0001
jdoe block ApplBOTH
jdoe allow ApplBOTH
"""

KNOWN = """allow device_id=ApplKNOWN1
"""

EAS = "/Microsoft-Server-ActiveSync"


pytestmark = pytest.mark.backend(hold_cap=0)


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(
        nginx_factory, NGINX_CONFIG, more_ports=("port2",),
        files={"rules.txt": RULES, "users.txt": USERS, "known.txt": KNOWN,
               "passwords": confs.password_file({"max": "max-pw",
                                                 "other": "other-pw"})},
        backend_port=backend.port)


def write(nginx, name, text):
    with open(os.path.join(nginx.dir, name), "w") as handle:
        handle.write(text)


def conf_line(nginx, text):
    with open(nginx.conf_path) as conf:
        for number, line in enumerate(conf, 1):
            if text in line:
                return number
    raise AssertionError("%r not in nginx.conf" % text)


def request(nginx, path=EAS, port=None, user="jane", device_id="ApplNEW",
            device_type="iPhone", user_agent="Apple-iPhone13C4/2307.71",
            form="plain", password=None):
    client = EasClient("http://127.0.0.1:%d%s" % (port or nginx.port, path),
                       user=user, device_id=device_id, form=form,
                       password=password,
                       device_type=device_type, user_agent=user_agent)
    return client.foldersync()


def expand(reason, nginx):
    reason = reason.replace("{dir}", nginx.dir)
    return re.sub(r"\{line:(.*?)\}",
                  lambda m: str(conf_line(nginx, m.group(1))), reason)


# name, request arguments, status, $eas_access, $eas_reason ({dir}: the
# nginx directory, {line:text}: the nginx.conf line holding text)

CASES = [
    ("default allow", dict(device_id="ApplNEW"),
     200, "allowed", "eas_device_default"),
    ("lost phone by DeviceId", dict(device_id="ApplLOST0001"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:2"),
    ("DeviceId without case", dict(device_id="appllost0001"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:2"),
    ("an earlier allow wins over a later block",
     dict(device_id="ApplVIP0001", user_agent="Apple-iPhone5C2/1002.329"),
     200, "allowed", "eas_device_rules:{dir}/rules.txt:3"),
    ("bad build by exact User-Agent",
     dict(user_agent="Apple-iPhone5C2/1002.329"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:4"),
    ("exact User-Agent keeps case",
     dict(user_agent="apple-iphone5c2/1002.329"),
     200, "allowed", "eas_device_default"),
    ("bad build by User-Agent regex", dict(user_agent="Apple-iPad3C1/1002.329"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:5"),
    ("~ is case-sensitive", dict(user_agent="apple-ipad3c1/1002.329"),
     200, "allowed", "eas_device_default"),
    ("DeviceType without case", dict(device_type="windowsmail"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:6"),
    ("user without case", dict(user="MALLORY"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:7"),
    ("two conditions, both match", dict(user="ceo", device_type="iPhone"),
     200, "allowed", "eas_device_rules:{dir}/rules.txt:8"),
    ("two conditions, one matches", dict(user="ceo", device_type="iPad"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:9"),
    ("quoted User-Agent with blanks",
     dict(user_agent="Android-Mail/7.5 (bad build)"),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:10"),
    ("binary DeviceId of the base64 form, as hex",
     dict(form="base64", device_type="WP",
          device_id=bytes.fromhex("a81f31e18bc6f962b3674d98788a7c9a")),
     403, "blocked", "eas_device_rules:{dir}/rules.txt:11"),
    ("~* is caseless, inline after the file",
     dict(device_type="BlackBerry"), 403, "blocked",
     "eas_device_block:{dir}/nginx.conf:{line:device_type=~*^blackberry}"),
    ("user's block list", dict(user="jdoe", device_id="ApplJDOEOLD"),
     403, "blocked", "eas_device_user_lists:{dir}/users.txt:2"),
    ("user's list without case", dict(user="JDoe", device_id="appljdoeold"),
     403, "blocked", "eas_device_user_lists:{dir}/users.txt:2"),
    ("user's allow list before the rules",
     dict(user="jdoe", device_id="ApplLOST0001"),
     200, "allowed", "eas_device_user_lists:{dir}/users.txt:3"),
    ("user's block list before the allow list",
     dict(user="jdoe", device_id="ApplBOTH"),
     403, "blocked", "eas_device_user_lists:{dir}/users.txt:4"),
    ("another user's list does not apply",
     dict(user="jane", device_id="ApplJDOEOLD"),
     200, "allowed", "eas_device_default"),
    ("own rules replace the inherited ones",
     dict(path="/known" + EAS, device_id="ApplLOST0001"),
     403, "blocked", "eas_device_default"),
    ("allow only known devices",
     dict(path="/known" + EAS, device_id="ApplKNOWN1"),
     200, "allowed", "eas_device_rules:{dir}/known.txt:1"),
    ("lists are inherited on their own",
     dict(path="/known" + EAS, user="jdoe", device_id="ApplLOST0001"),
     200, "allowed", "eas_device_user_lists:{dir}/users.txt:3"),
    ("configured status",
     dict(path="/status" + EAS, device_id="ApplLOST0001"),
     449, "blocked", "eas_device_rules:{dir}/rules.txt:2"),
    ("http-level rules reach a server without rules",
     dict(port="port2", device_id="HttpLevelBlocked"), 403, "blocked",
     "eas_device_block:{dir}/nginx.conf:{line:device_id=HttpLevelBlocked}"),
    ("server-level rules stay in their server",
     dict(port="port2", device_id="ApplLOST0001"),
     200, "allowed", "eas_device_default"),
]


@pytest.mark.parametrize("name,args,status,access,reason", CASES,
                         ids=[case[0] for case in CASES])
def test_decision(gateway, backend, name, args, status, access, reason):
    args = dict(args)
    if args.get("port") == "port2":
        args["port"] = gateway.port2
    mark = gateway.mark()

    reply = request(gateway, **args)

    assert reply.status == status, reply
    entry = json.loads(gateway.wait_for_access_log(1, name="dev.log")[-1])
    reason = expand(reason, gateway)
    assert (entry["access"], entry["reason"]) == (access, reason)

    refusals = [line for line in gateway.error_lines_since(mark)
                if "eas: device" in line]
    if access == "blocked":
        assert len(refusals) == 1, refusals
        # the identity: User= normalised as a verified name would be
        user = args.get("user", "jane").lower()
        device = args.get("device_id", "ApplNEW")
        if isinstance(device, bytes):
            device = device.hex().upper()
        assert ('[notice]' in refusals[0] and 'eas: device "%s" of user "%s" '
                'blocked by %s' % (device, user, reason) in refusals[0]), \
            refusals
        assert backend.requests == []
    else:
        assert refusals == []
        assert len(backend.requests) == 1


def test_options_is_not_subject_to_device_rules(gateway, backend):
    client = EasClient("http://127.0.0.1:%d/known%s" % (gateway.port, EAS),
                       user="jane", device_id="ApplLOST0001")
    assert client.options().status == 200
    entry = json.loads(gateway.wait_for_access_log(1, name="dev.log")[-1])
    assert (entry["access"], entry["reason"]) == ("", "")
    assert len(backend.requests) == 1


def test_no_user_agent_and_no_user_meet_regexes_as_empty(nginx_factory,
                                                          backend):
    # regexes on fields the request does not carry see an empty string
    port = free_port()
    nginx = nginx_factory(CHECK_CONFIG.replace(
        "return 204;", "proxy_pass http://127.0.0.1:${backend_port};"),
        listen=(port,), port=port, backend_port=backend.port,
        directive="eas_device_block user_agent=~^$ user=~^$; "
                  "add_header X-Reason $eas_reason always;")
    client = EasClient("http://127.0.0.1:%d%s" % (port, EAS),
                       device_id="ApplANON", user=None)
    body = wbxml.encode(("FolderHierarchy:FolderSync",
                         [("FolderHierarchy:SyncKey", "0")]))
    reply = client.raw("POST", client.target("FolderSync"),
                       [("MS-ASProtocolVersion", "14.1"),
                        ("Content-Length", str(len(body)))], body)
    assert reply.status == 403
    assert reply.header("X-Reason").startswith("eas_device_block:")

    reply = client.raw("POST", client.target("FolderSync"),
                       [("MS-ASProtocolVersion", "14.1"),
                        ("User-Agent", "Apple-iPhone13C4/2307.71"),
                        ("Content-Length", str(len(body)))], body)
    assert reply.status == 200
    assert reply.header("X-Reason") == "eas_device_default"
    assert len(backend.requests) == 1


def test_files_are_read_again_on_reload(gateway, backend):
    assert request(gateway, device_id="ApplRELOAD").status == 200
    assert request(gateway, user="jdoe", device_id="ApplJDOEOLD").status \
        == 403

    write(gateway, "rules.txt", RULES + "block device_id=ApplRELOAD\n")
    write(gateway, "users.txt", "jdoe allow ApplJDOEOLD\n")
    gateway.reload()

    assert request(gateway, device_id="ApplRELOAD").status == 403
    assert request(gateway, user="jdoe", device_id="ApplJDOEOLD").status \
        == 200
    # the lines of the last two requests, found by what they carry (two
    # workers write the log, in either order)
    entries = logged(gateway, "dev.log",
                     [("ApplRELOAD", "403"), ("ApplJDOEOLD", "200")],
                     key=lambda entry: (entry["device"], entry["status"]))
    assert [entry["reason"] for entry in entries] == [
        "eas_device_rules:%s/rules.txt:12" % gateway.dir,
        "eas_device_user_lists:%s/users.txt:1" % gateway.dir]
    assert len(backend.requests) == 2


def test_a_blocked_device_can_get_a_page_of_its_own(gateway, backend):
    reply = request(gateway, "/custom" + EAS, device_id="ApplLOST0001")

    assert reply.status == 403
    assert reply.body == ("device blocked: eas_device_rules:%s/rules.txt:2\n"
                          % gateway.dir).encode()
    entry = json.loads(gateway.wait_for_access_log(1, name="dev.log")[-1])
    assert (entry["status"], entry["access"]) == ("403", "blocked")
    assert backend.requests == []


def inventory(nginx):
    reply = EasClient("http://127.0.0.1:%d/" % nginx.port).raw(
        "GET", "/inventory", [("Host", "localhost")])
    assert reply.status == 200
    return {(d["user"], d["device_id"]): d
            for d in json.loads(reply.body)["devices"]}


def limited(gateway, user, device_id):
    """A request to the location with eas_device_max, authenticated."""
    return request(gateway, "/limited" + EAS, user=user, device_id=device_id,
                   password=user.lower() + "-pw")


def test_max_devices_blocks_a_new_device_past_the_limit(gateway, backend):
    # a device blocked by a rule takes no place
    assert limited(gateway, "max", "ApplLOST0001").status == 403
    assert limited(gateway, "max", "ApplA").status == 200
    assert limited(gateway, "Max", "ApplB").status == 200

    mark = gateway.mark()
    assert limited(gateway, "max", "ApplC").status == 403
    refusal = [line for line in gateway.error_lines_since(mark)
               if "eas: device" in line]
    assert len(refusal) == 1 and ('eas: device "ApplC" of user "max" '
                                  'blocked by eas_device_max') in refusal[0]

    # known devices go on, another user is not counted with this one
    assert limited(gateway, "max", "ApplA").status == 200
    assert limited(gateway, "max", "ApplC").status == 403
    assert limited(gateway, "other", "ApplC").status == 200

    devices = inventory(gateway)
    assert devices[("max", "ApplC")]["access"] == "blocked"
    assert devices[("max", "ApplC")]["reason"] == "eas_device_max"
    assert devices[("max", "ApplLOST0001")]["reason"] == (
        "eas_device_rules:%s/rules.txt:2" % gateway.dir)
    assert devices[("max", "ApplA")]["user_devices"] == 2
    assert devices[("other", "ApplC")]["user_devices"] == 1
    forwarded = sorted((r.eas.user, r.eas.device_id)
                       for r in backend.requests)
    assert forwarded == [("Max", "ApplB"), ("max", "ApplA"), ("max", "ApplA"),
                         ("other", "ApplC")]


USER_MATCH_CONFIG = confs.gateway(
    confs.eas_location("""
        eas_device_block_status 403;
        ${preauth}
        eas_device_user_match on;
        add_header X-Access $eas_access always;
        add_header X-Reason $eas_reason always;
        """, proxy_pass="http://127.0.0.1:${backend_port}"),
    zones="${preauth_zone}", upstream=None)

PREAUTH = ('eas_preauth "ActiveSync"; eas_preauth_cache zone=auth; '
           'eas_preauth_user_file users plain;')


def test_user_match_without_pre_authentication_compares_nothing(
        nginx_factory, backend):
    # The identity is the query's User= when no pre-authentication ran,
    # so there is nothing else to compare it with: every device passes.
    port = free_port()
    nginx = nginx_factory(USER_MATCH_CONFIG, listen=(port,), port=port,
                          backend_port=backend.port, preauth="",
                          preauth_zone="")
    nginx.port = port
    reply = request(nginx, user="CONTOSO\\jane")
    assert reply.status == 200
    assert reply.header("X-Access") == "allowed"
    assert reply.header("X-Reason") == "eas_device_default"


# Basic user, query User= (None: none), status, $eas_reason
USER_MATCH = [
    ("jdoe", "jdoe", 200, "eas_device_default"),
    ("jdoe", "CONTOSO\\JDoe", 200, "eas_device_default"),
    ("jdoe", "jdoe@contoso.com", 200, "eas_device_default"),
    ("jdoe", "mallory", 403, "eas_device_user_match"),
    ("jdoe", "CONTOSO\\mallory", 403, "eas_device_user_match"),
    ("jdoe", None, 200, "eas_device_default"),
]


@pytest.mark.parametrize("basic,query_user,status,reason", USER_MATCH)
def test_user_match_with_pre_authentication(nginx_factory, backend, basic,
                                            query_user, status, reason):
    port = free_port()
    nginx = nginx_factory(USER_MATCH_CONFIG, start=False, port=port,
                          backend_port=backend.port, preauth=PREAUTH,
                          preauth_zone="eas_preauth_zone zone=auth:1m;")
    write(nginx, "users", "jdoe:{PLAIN}secret\n")
    rc, output = nginx.test_config()
    if 'unknown directive "eas_preauth_zone"' in output:
        nginx.expected_alerts.append(r"unknown directive")
        pytest.skip("pre-authentication is not in this build")
    assert rc == 0, output
    nginx.start(ports=(port,))

    client = EasClient("http://127.0.0.1:%d%s" % (port, EAS),
                       user=query_user, device_id="ApplMATCH",
                       form="plain" if query_user else "base64")
    token = base64.b64encode(("%s:secret" % basic).encode()).decode()
    body = wbxml.encode(("FolderHierarchy:FolderSync",
                         [("FolderHierarchy:SyncKey", "0")]))
    reply = client.raw("POST", client.target("FolderSync"),
                       [("Authorization", "Basic " + token),
                        ("MS-ASProtocolVersion", "14.1"),
                        ("Content-Type", "application/vnd.ms-sync.wbxml"),
                        ("Content-Length", str(len(body)))], body)

    assert reply.status == status
    assert reply.header("X-Reason") == reason
    assert len(backend.requests) == (1 if status == 200 else 0)


CHECK_CONFIG = confs.gateway(
    confs.eas_location("eas_device_block_status 403;", "${directive}",
                       "return 204;", proxy_pass=None),
    zones=None, upstream=None)

# file contents that fail nginx -t, and the message naming file and line

FILE_MISTAKES = [
    ("eas_device_rules", "block device_id=a\nallow\n",
     'rule without a condition in "{file}" at line 2'),
    ("eas_device_rules", "# ok\n\ndeny device_id=a\n",
     'invalid rule "deny" in "{file}" at line 3: a rule starts with '
     '"allow" or "block"'),
    ("eas_device_rules", "block model=X\n",
     'unknown device field in "model=X": use device_id, device_type, user '
     'or user_agent in "{file}" at line 1'),
    ("eas_device_rules", "block device_id\n",
     'invalid device condition "device_id": use field=value in "{file}" at '
     'line 1'),
    ("eas_device_rules", "block device_id=a device_id=b\n",
     'duplicate field in "device_id=b" in one device rule in "{file}" at '
     'line 1'),
    ("eas_device_rules", "allow device_id=a\nblock user_agent=~^(iPhone\n",
     'pcre2_compile() failed: missing closing parenthesis in "^(iPhone" in '
     '"user_agent=~^(iPhone" in "{file}" at line 2'),
    ("eas_device_rules", 'block user_agent="Android\n',
     'unterminated quote in "{file}" at line 1'),
    ("eas_device_user_lists", "jdoe block\n",
     'invalid entry in "{file}" at line 1: use "user allow|block DeviceId '
     '..."'),
    ("eas_device_user_lists", "jdoe allow a\njdoe permit b\n",
     'invalid list "permit" in "{file}" at line 2: use "allow" or "block"'),
]


@pytest.mark.parametrize("directive,text,message", FILE_MISTAKES)
def test_bad_file_fails_nginx_t(nginx_factory, directive, text, message):
    nginx = nginx_factory(CHECK_CONFIG, start=False, port=1,
                          directive="%s list.txt;" % directive)
    write(nginx, "list.txt", text)
    nginx.expected_alerts.append(r"\[emerg\]")

    rc, output = nginx.test_config()

    assert rc != 0
    expected = "[emerg] " + message.format(
        file=os.path.join(nginx.dir, "list.txt"))
    assert expected in output, output


def test_missing_file_fails_nginx_t(nginx_factory):
    nginx = nginx_factory(CHECK_CONFIG, start=False, port=1,
                          directive="eas_device_rules none.txt;")
    nginx.expected_alerts.append(r"\[emerg\]")

    rc, output = nginx.test_config()

    assert rc != 0
    assert ('[emerg] "eas_device_rules": open() "%s/none.txt" failed '
            '(2: No such file or directory)' % nginx.dir) in output, output


def test_a_large_rules_file_loads(nginx_factory, backend):
    port = free_port()
    nginx = nginx_factory(CHECK_CONFIG.replace(
        "return 204;", "proxy_pass http://127.0.0.1:${backend_port};"),
        start=False, port=port, backend_port=backend.port,
        directive="eas_device_rules big.txt;")
    write(nginx, "big.txt", "".join("block device_id=Dev%06d\n" % i
                                    for i in range(100000)))
    nginx.start(ports=(port,))
    nginx.port = port

    assert request(nginx, device_id="Dev099999").status == 403
    assert request(nginx, device_id="Dev000000").status == 403
    assert request(nginx, device_id="Dev100000").status == 200
    assert len(backend.requests) == 1


# one keep-alive connection: each request differs from the one before in
# one field, or repeats it (the connection's memo of the rules' decision)
SAME_CONNECTION = [
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_default"),
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_default"),
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_default"),
    ("jane", "ApplLOST0001", "iPhone", "Apple-iPhone13C4/2307.71", 403,
     "eas_device_rules:{dir}/rules.txt:2"),
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_default"),
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone5C2/1002.329", 403,
     "eas_device_rules:{dir}/rules.txt:4"),
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_default"),
    ("jane", "ApplNEW", "WindowsMail", "Apple-iPhone13C4/2307.71", 403,
     "eas_device_rules:{dir}/rules.txt:6"),
    ("mallory", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 403,
     "eas_device_rules:{dir}/rules.txt:7"),
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_default"),
    ("jane", "applLOST0001", "iPhone", "Apple-iPhone13C4/2307.71", 403,
     "eas_device_rules:{dir}/rules.txt:2"),
    ("ceo", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_rules:{dir}/rules.txt:8"),
    ("ceo", "ApplNEW", "iPad", "Apple-iPhone13C4/2307.71", 403,
     "eas_device_rules:{dir}/rules.txt:9"),
    ("ceo", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_rules:{dir}/rules.txt:8"),
    ("jane", "ApplNEW", "iPhone", "Apple-iPhone13C4/2307.71", 200,
     "eas_device_default"),
]


def test_same_connection_decides_each_request(gateway, backend):
    """A phone's connection sends request after request: each is decided
    on its own fields, whichever came before on the connection (read from
    $eas_reason and the backend's own record)."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        statuses = []
        for n, (user, device, kind, agent, _, _) in \
                enumerate(SAME_CONNECTION):
            conn.request("POST", "%s?Cmd=Sync&User=%s&DeviceId=%s"
                         "&DeviceType=%s" % (EAS, user, device, kind), b"",
                         {"User-Agent": agent, "MS-ASProtocolVersion": "14.1",
                          "Content-Length": "0", "X-Seq": str(n)})
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
            assert not reply.will_close
    finally:
        conn.close()

    assert statuses == [step[4] for step in SAME_CONNECTION]
    logged = [json.loads(line) for line in gateway.wait_for_access_log(
        len(SAME_CONNECTION), name="dev.log")]
    assert [entry["reason"] for entry in logged] == \
        [expand(step[5], gateway) for step in SAME_CONNECTION]
    passed = [n for n, step in enumerate(SAME_CONNECTION) if step[4] == 200]
    backend.wait_for(len(passed))
    assert sorted(int(r.header("X-Seq")) for r in backend.requests) == passed
