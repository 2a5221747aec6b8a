"""One directory account, many identities: Unicode spellings of a name.

A directory compares names its own way: OpenLDAP folds case and applies
Unicode compatibility normalization, and Active Directory compares
width-insensitively, so the full-width "ｊｄｏｅ" (U+FF4A U+FF44 U+FF4F
U+FF45) binds as jdoe.  Were each spelling an identity of its own at
the edge (the name with only ASCII letters in lower case):

* the lockout would count each spelling apart: with user=3 the
  directory would be asked three times per spelling, and a name of n
  letters has 2^n of them, so it would count failures for jdoe far past
  the gateway's limit, and lock the account the lockout exists to
  protect;
* device rules keyed on the user would see another name: a device
  blocked for jdoe (`eas_device_block user=jdoe ...`, a per-user list
  line, eas_device_max) would reach the backend when jdoe's credentials
  are sent as "ｊｄｏｅ".

The identity is the name folded as directories compare names
(docs/authentication.md, "Identity").  The directory is a real slapd
with a DN template (bind=uid=%u,...); its stats log is the record of
every bind, the recording backend the record of what got through."""

import json

import pytest

from eastest import ldap as directory
from eastest.client import basic_sync
from eastest import confs
from eastest.nginx import start_gateway

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

BASE = directory.SUFFIX
USER_LIMIT = 3

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/eas.log ident;",
    confs.eas_location(confs.PREAUTH_CACHED, """
        eas_preauth_ldap people;
        eas_preauth_lockout user=""" + str(USER_LIMIT) + """ address=1000;
        eas_device_block user=jdoe device_id=ApplLOST1;
        """),
    http="""
    log_format ident escape=json '{"status":"$status","auth":"$eas_auth",'
        '"user":"$eas_auth_user","reason":"$eas_reason"}';
    """ + confs.PLAIN_REFUSALS,
    zones=confs.AUTH_ZONE + """
    eas_ldap_server people url=${url} bind=uid=%u,ou=people,""" + BASE + """;
    """)

# jdoe, a letter at a time in full width (U+FF41 is "a")
SPELLINGS = ["jdoe"] + [
    "".join(chr(0xFF41 + ord(c) - ord("a")) if mask & (1 << i) else c
            for i, c in enumerate("jdoe"))
    for mask in range(1, 8)] + [
    # spaces a directory does not count (RFC 4518): at the ends, a no-
    # break space, a run; slapd binds each of them as jdoe
    " jdoe", "jdoe ", "  jdoe  ", "jdoe\u00a0", "\u3000jdoe"]


slapd = directory.slapd_fixture(stats=True, scope="function")


@pytest.fixture
def gateway(nginx_factory, backend, slapd):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         url=slapd.url, backend_port=backend.port)


def sync(port, user, password, device):
    return basic_sync(port, user, password, device)


def user_binds(slapd, mark):
    return [op for op in slapd.operations_since(mark, "BIND")
            if "ou=people" in op]


def test_spellings_share_the_lockout(gateway, backend, slapd):
    mark = slapd.log_size()
    for i, name in enumerate(SPELLINGS):
        for k in range(USER_LIMIT):
            assert sync(gateway.port, name, "guess-%d-%d" % (i, k),
                        "EVIL%d%d" % (i, k)) == 401

    binds = user_binds(slapd, mark)
    assert backend.requests == []
    assert len(binds) <= USER_LIMIT, (
        "the directory tried %d passwords of jdoe for a user limit of %d"
        % (len(binds), USER_LIMIT))


def test_a_device_blocked_for_the_user_stays_blocked(gateway, backend):
    statuses = [sync(gateway.port, name, "secret", "ApplLOST1")
                for name in ("jdoe", SPELLINGS[-1])]

    entries = [json.loads(line) for line in gateway.access_log("eas.log")]
    assert [r.target for r in backend.requests] == [], (
        "the blocked device reached the backend as user %r"
        % entries[-1]["user"])
    assert statuses == [403, 403]
