"""One identity model (docs/authentication.md, "Identity"): the user a
lockout counter, a device count, a per-user list and $eas_auth_user
belong to.  With a directory that serves several domains (domain=
parameters), CONTOSO\\jdoe and FABRIKAM\\jdoe are two accounts and two
identities, %d is the directory's name of the domain and a domain it
does not serve is refused before it is asked; list files name users
the way the credential source makes identities, and a name that can
never match fails nginx -t; without pre-authentication the identity is
the query's User= normalised the same way.  Against a real slapd."""

import os

import pytest

from eastest import confs
from eastest import ldap as directory
from eastest.client import EasClient
from eastest.nginx import start_gateway
from eastest.waiting import logged

BASE = directory.SUFFIX

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

LOG_FORMAT = ("log_format id escape=json '{\"status\":\"$status\","
              "\"auth\":\"$eas_auth\",\"user\":\"$eas_auth_user\","
              "\"reason\":\"$eas_reason\",\"seq\":\"$http_x_test_seq\"}';")

# two accounts named jdoe, one in each domain, told apart by mail
MULTI = ("base=" + BASE + " filter=(mail=%u@%d) bind_dn="
         + directory.SERVICE_DN + " bind_password="
         + directory.SERVICE_PASSWORD
         + " domain=contoso.com,CONTOSO domain=fabrikam.com,FABRIKAM")

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/id.log id;",
    confs.PREAUTH_UNCACHED, "eas_preauth_ldap multi;",
    confs.eas_location(path="/multi/", proxy_pass=confs.DIRECT + "/"),
    confs.eas_location("""
        eas_preauth_cache zone=locks valid=0 invalid=0;
        eas_preauth_lockout user=2 address=off window=1h time=1h;
        """, path="/locks/", proxy_pass=confs.DIRECT + "/"),
    confs.eas_location("eas_devices devices;", "eas_device_max 1;",
                       path="/max/", proxy_pass=confs.DIRECT + "/"),
    confs.eas_location("eas_device_user_lists ${dir}/multi-lists;",
                       path="/lists/", proxy_pass=confs.DIRECT + "/"),
    confs.ldap_location("readback",
                        "eas_preauth_cache zone=auth valid=1h invalid=0;",
                        "eas_device_user_lists ${dir}/readback-lists;"),
    confs.ldap_location("readbackdn"),
    confs.ldap_location("pinned"),
    http=[confs.PLAIN_REFUSALS, LOG_FORMAT],
    zones=[confs.ZONES, "eas_preauth_zone zone=locks:1m;", """
    eas_ldap_server multi url=${url} """ + MULTI + """;
    eas_ldap_server pinned url=${url} bind=uid=%u,ou=people,""" + BASE + """
                    domain=example.org,EXAMPLE;
    eas_ldap_server readback url=${url} base=""" + BASE + """
                    filter=(uid=%u) bind_dn=""" + directory.SERVICE_DN + """
                    bind_password=""" + directory.SERVICE_PASSWORD + """
                    identity=mail;
    eas_ldap_server readbackdn url=${url} bind=uid=%u,ou=people,""" + BASE \
    + """ identity=sAMAccountName;
    """], upstream=None)

# no directory with domains here: what a password file and no
# pre-authentication make of user names
FILE_CONFIG = confs.gateway(
    "access_log ${dir}/id.log id;",
    confs.eas_location(confs.PREAUTH_UNCACHED, """
        eas_preauth_user_file ${dir}/users plain;
        eas_device_user_lists ${dir}/file-lists;
        """, path="/file/", proxy_pass=confs.DIRECT + "/"),
    confs.eas_location("eas_devices devices;",
                       "eas_device_user_lists ${dir}/file-lists;",
                       path="/open/", proxy_pass=confs.DIRECT + "/"),
    http=[confs.PLAIN_REFUSALS, LOG_FORMAT], upstream=None)

PEOPLE_ENTRIES = [
    directory.person("jdoe-c", "contoso-pw", mail="jdoe@contoso.com"),
    directory.person("jdoe-f", "fabrikam-pw", mail="jdoe@fabrikam.com"),
    directory.person("amy", "apple"),
    directory.person("jsmith", "smith-pw", sam="JSmith.Sales",
                     mail="John.Smith@Contoso.com"),
]

MULTI_LISTS = "CONTOSO\\jdoe block ApplLOST\njdoe@fabrikam.com allow Any\n"
FILE_LISTS = "CONTOSO\\jdoe block ApplLOST\nAmy@Example.org block Old1\n"


slapd = directory.slapd_fixture(PEOPLE_ENTRIES, members=["amy"],
                                stats=True)


def write(nginx, name, text):
    with open(os.path.join(nginx.dir, name), "w") as f:
        f.write(text)


def start(nginx_factory, config, backend, **variables):
    nginx = start_gateway(
        nginx_factory, config, backend_port=backend.port,
        files={"multi-lists": MULTI_LISTS, "file-lists": FILE_LISTS,
               "readback-lists": "John.Smith@contoso.com block ApplLOST\n",
               "users": "jdoe:{PLAIN}file-pw\n"}, **variables)
    nginx.seq = 0
    return nginx


@pytest.fixture
def gateway(nginx_factory, slapd, backend):
    return start(nginx_factory, NGINX_CONFIG, backend, url=slapd.url)


@pytest.fixture
def plain(nginx_factory, backend):
    return start(nginx_factory, FILE_CONFIG, backend)


def send(nginx, prefix, user, password, device="DEV1", query_user="u"):
    """One request; returns (status, its access log entry)."""
    import base64
    nginx.seq += 1
    headers = [("MS-ASProtocolVersion", "14.1"), ("Content-Length", "0"),
               ("X-Test-Seq", str(nginx.seq))]
    if user is not None:
        token = base64.b64encode(("%s:%s" % (user, password)).encode())
        headers.append(("Authorization", "Basic " + token.decode()))
    client = EasClient("http://127.0.0.1:%d" % nginx.port)
    reply = client.raw("POST", "/%s/Microsoft-Server-ActiveSync?Cmd=Sync"
                       "&User=%s&DeviceId=%s&DeviceType=iPhone"
                       % (prefix, query_user, device), headers, timeout=30)
    (entry,) = logged(nginx, "id.log", [str(nginx.seq)])
    return reply.status, entry


# Two domains, one name: two accounts, two identities ------------------------

IDENTITIES = [
    # user as sent, password, status, $eas_auth_user
    ("CONTOSO\\jdoe", "contoso-pw", 200, "jdoe@contoso.com"),
    ("contoso\\JDoe", "contoso-pw", 200, "jdoe@contoso.com"),
    ("jdoe@CONTOSO.COM", "contoso-pw", 200, "jdoe@contoso.com"),
    ("jdoe", "contoso-pw", 200, "jdoe@contoso.com"),      # the first domain
    ("FABRIKAM\\jdoe", "fabrikam-pw", 200, "jdoe@fabrikam.com"),
    ("jdoe@fabrikam.com", "fabrikam-pw", 200, "jdoe@fabrikam.com"),
    ("FABRIKAM\\jdoe", "contoso-pw", 401, ""),
    ("CONTOSO\\jdoe", "fabrikam-pw", 401, ""),
]


@pytest.mark.parametrize("user,password,status,identity", IDENTITIES,
                         ids=["%s-%d" % (c[0], c[2]) for c in IDENTITIES])
def test_two_domains_same_name_are_two_identities(gateway, user, password,
                                                  status, identity):
    got, entry = send(gateway, "multi", user, password)

    assert got == status
    assert entry["user"] == identity


def test_a_lockout_in_one_domain_leaves_the_other_alone(gateway, backend):
    for _ in range(2):
        assert send(gateway, "locks", "FABRIKAM\\jdoe", "bad")[0] == 401
    status, entry = send(gateway, "locks", "FABRIKAM\\jdoe", "fabrikam-pw")
    assert (status, entry["reason"]) == (401, "auth_user_locked")

    status, entry = send(gateway, "locks", "CONTOSO\\jdoe", "contoso-pw")
    assert (status, entry["user"]) == (200, "jdoe@contoso.com")


def test_device_counts_are_per_domain(gateway, backend):
    assert send(gateway, "max", "CONTOSO\\jdoe", "contoso-pw",
                device="PhoneC")[0] == 200
    assert send(gateway, "max", "FABRIKAM\\jdoe", "fabrikam-pw",
                device="PhoneF")[0] == 200
    # the same account's second device is over eas_device_max 1
    assert send(gateway, "max", "jdoe@contoso.com", "contoso-pw",
                device="PhoneC2")[0] == 403


def test_list_names_are_identities_of_the_directory(gateway, backend):
    # "CONTOSO\jdoe block ApplLOST": contoso's jdoe, whatever form
    assert send(gateway, "lists", "CONTOSO\\jdoe", "contoso-pw",
                device="ApplLOST")[0] == 403
    assert send(gateway, "lists", "jdoe@contoso.com", "contoso-pw",
                device="ApplLOST")[0] == 403
    assert send(gateway, "lists", "FABRIKAM\\jdoe", "fabrikam-pw",
                device="ApplLOST")[0] == 200


def test_an_unknown_domain_is_refused_without_asking(gateway, backend,
                                                     slapd):
    mark = gateway.mark()
    ldap_mark = slapd.log_size()

    status, entry = send(gateway, "multi", "NORTHWIND\\jdoe", "contoso-pw")

    assert status == 401
    assert (entry["auth"], entry["reason"]) == ("invalid",
                                                "auth_unknown_domain")
    lines = [l for l in gateway.error_lines_since(mark) if "eas: " in l]
    assert len(lines) == 1 and "[notice]" in lines[0]
    assert ('the domain of user "NORTHWIND\\jdoe" is not one of directory '
            '"multi"' in lines[0])
    assert "contoso-pw" not in lines[0]
    assert slapd.operations_since(ldap_mark, what="BIND") == []
    assert backend.requests == []


PINNED = [
    # one domain: %d is never what the client wrote
    ("EXAMPLE\\amy", 200, "amy"),
    ("amy@example.org", 200, "amy"),
    ("amy", 200, "amy"),
    ("OTHER\\amy", 401, ""),
]


@pytest.mark.parametrize("user,status,identity", PINNED,
                         ids=[c[0] for c in PINNED])
def test_a_pinned_domain(gateway, user, status, identity):
    got, entry = send(gateway, "pinned", user, "apple")

    assert got == status
    assert entry["user"] == identity


# identity=: what the directory says --------------------------------------

def test_the_identity_is_the_attribute_the_directory_gives(gateway,
                                                           backend):
    first = send(gateway, "readback", "CONTOSO\\jsmith", "smith-pw")
    again = send(gateway, "readback", "CONTOSO\\jsmith", "smith-pw")
    other = send(gateway, "readback", "jsmith", "smith-pw")

    assert (first[0], first[1]["auth"]) == (200, "ok")
    assert (again[0], again[1]["auth"]) == (200, "cached")
    assert other[0] == 200
    assert first[1]["user"] == again[1]["user"] == other[1]["user"] \
        == "john.smith@contoso.com"

    # and list lines name that identity
    assert send(gateway, "readback", "jsmith", "smith-pw",
                device="ApplLOST")[0] == 403


def test_a_dn_bind_reads_the_identity_from_the_entry(gateway, backend):
    status, entry = send(gateway, "readbackdn", "jsmith", "smith-pw")

    assert (status, entry["user"]) == (200, "jsmith.sales")


def test_no_identity_attribute_is_a_refusal(gateway, backend):
    mark = gateway.mark()

    # amy's entry has no mail
    status, entry = send(gateway, "readback", "amy", "apple")

    assert (status, entry["reason"]) == (401, "auth_invalid")
    lines = [l for l in gateway.error_lines_since(mark) if "eas: " in l]
    assert len(lines) == 1
    assert 'no identity attribute in the directory entry of user "amy"' \
        in lines[0]
    assert backend.requests == []


# Password file and no pre-authentication: the name part --------------------

def test_a_list_line_with_a_domain_matches_a_password_file_user(plain,
                                                                backend):
    gateway = plain
    # the password file's identity is the name part: "CONTOSO\jdoe" in
    # a list file is jdoe, as "CONTOSO\jdoe" in the password file is
    status, entry = send(gateway, "file", "jdoe", "file-pw",
                         device="ApplLOST")
    assert (status, entry["user"]) == (403, "jdoe")
    assert send(gateway, "file", "OTHER\\jdoe", "file-pw",
                device="ApplLOST")[0] == 403
    assert send(gateway, "file", "jdoe", "file-pw",
                device="ApplOK")[0] == 200


def test_without_preauth_the_identity_is_user_normalised(plain, backend):
    gateway = plain
    assert send(gateway, "open", None, None, device="PhoneA",
                query_user="CONTOSO%5CJDoe")[0] == 200
    # every spelling is one identity: the list line
    # "CONTOSO\jdoe block ApplLOST" is this user's (eas_device_max needs
    # an authenticated identity, so it is not used here)
    for query_user in ("jdoe%40contoso.com", "CONTOSO%5CJDoe", "jdoe"):
        assert send(gateway, "open", None, None, device="ApplLOST",
                    query_user=query_user)[0] == 403


# Names that can never match fail nginx -t -----------------------------------

BAD_LISTS = [
    # list file, source of the location, message
    ("a\\b\\c block X\n", "eas_preauth_user_file ${dir}/users plain;",
     'user "a\\b\\c" in "%s" at line 1 can never match: not a user name'),
    ("jdoe@ block X\n", "", 'user "jdoe@" in "%s" at line 1 can never '
     "match"),
    ("NORTHWIND\\jdoe block X\n", "eas_preauth_ldap multi;",
     'user "NORTHWIND\\jdoe" in "%s" at line 1 can never match: its domain '
     'is none of the "domain" parameters of directory "multi"'),
]


@pytest.mark.parametrize("lists,source,message", BAD_LISTS,
                         ids=["two-backslashes", "empty-domain",
                              "unknown-domain"])
def test_unmatchable_list_names_fail_nginx_t(nginx_factory, lists, source,
                                             message):
    config = """
http {
    eas_device_block_status 403;
    ${temp_paths}
    eas_preauth_zone zone=auth:1m;
    """ + ("eas_ldap_server multi url=ldap://127.0.0.1:1 " + MULTI + ";"
           if "multi" in source else "") + """
    server {
        eas_preauth_cache zone=auth;
        location / {
            eas on;
            """ + (source and 'eas_preauth "ActiveSync"; ' + source) + """
            eas_device_user_lists ${dir}/lists;
        }
    }
}
"""
    nginx = nginx_factory(config, start=False)
    write(nginx, "lists", lists)
    write(nginx, "users", "jdoe:{PLAIN}pw\n")
    output = nginx.config_error()

    assert message % os.path.join(nginx.dir, "lists") in output


def test_one_list_file_for_two_identity_models_fails_nginx_t(nginx_factory):
    config = """
http {
    eas_device_block_status 403;
    ${temp_paths}
    eas_preauth_zone zone=auth:1m;
    eas_ldap_server multi url=ldap://127.0.0.1:1 """ + MULTI + """;
    server {
        eas_preauth_cache zone=auth;
        eas_device_user_lists ${dir}/lists;
        location /a/ {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_ldap multi;
        }
        location /b/ {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_user_file ${dir}/users plain;
        }
    }
}
"""
    nginx = nginx_factory(config, start=False)
    write(nginx, "lists", "CONTOSO\\jdoe block X\n")
    write(nginx, "users", "jdoe:{PLAIN}pw\n")
    output = nginx.config_error()

    assert "user names stand for different identities" in output


def test_percent_d_needs_the_domains(nginx_factory):
    nginx = nginx_factory("http {\n ${temp_paths}\n eas_ldap_server d "
                          "url=ldap://x bind=%u@%d;\n}\n", start=False)
    output = nginx.config_error()

    assert '%d in a template of "eas_ldap_server" "d" needs "domain"' \
        in output


@pytest.mark.parametrize("params,message", [
    ("domain=a,,b", "invalid domain"),
    ("domain=a\\b", "invalid domain"),
    ("domain=contoso.com,CONTOSO domain=CONTOSO", "domain named twice"),
], ids=["empty", "backslash", "twice"])
def test_bad_domains_fail_nginx_t(nginx_factory, params, message):
    nginx = nginx_factory("http {\n ${temp_paths}\n eas_ldap_server d "
                          "url=ldap://x bind=uid=%u " + params + ";\n}\n",
                          start=False)
    output = nginx.config_error()

    assert message in output and "eas_ldap_server" in output
