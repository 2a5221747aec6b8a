"""The identity is folded as directories compare names (docs/
authentication.md, "Identity"): Unicode NFKC_Casefold.  Each case sends
a spelling with the password of one entry of a plain password file and
reads the identity back from $eas_auth_user in the access log; the
file's names and a device rule's user= are folded the same way.  A name
that is not UTF-8, or that folds to nothing or into another form, is
401 auth_user_invalid and never reaches the backend."""

import json
import os

import pytest

from eastest.client import basic_sync
from eastest import confs
from eastest.nginx import free_port, start_gateway

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/eas.log ident;",
    confs.eas_location(confs.PREAUTH, "eas_device_rules ${dir}/rules;"),
    http="""
    log_format ident escape=json '{"status":"$status","auth":"$eas_auth",'
        '"user":"$eas_auth_user","reason":"$eas_reason"}';
    """ + confs.PLAIN_REFUSALS,
    zones=confs.AUTH_ZONE)

# the file's own spellings: upper case, full width, a decomposed accent
USERS = [
    ("JDoe", "pw-jdoe"),
    ("\uff26\uff49\uff4f\uff4e\uff41", "pw-fiona"),      # Ｆｉｏｎａ
    ("JOSE\u0301", "pw-jose"),                           # JOSÉ, decomposed
    ("STRASSE", "pw-strasse"),
    ("idoe", "pw-idoe"),
    ("\u0131doe", "pw-dotless"),                         # ıdoe
]

# a rule written in full width blocks the folded identity
RULES = "block user=\uff2a\uff24\uff2f\uff25 device_id=LOST1\n"   # ＪＤＯＥ


@pytest.fixture
def gateway(nginx_factory, backend, tmp_path):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         files={"users": confs.password_file(dict(USERS)),
                                "rules": RULES},
                         backend_port=backend.port)


def sync(nginx, user, password, device="Dev1"):
    return basic_sync(nginx.port, user, password, device)


def last_entry(nginx, count):
    return json.loads(nginx.wait_for_access_log(count, name="eas.log")[-1])


FOLDS = [
    ("case", "JDOE", "pw-jdoe", "jdoe"),
    ("full-width", "\uff4a\uff44\uff4f\uff45", "pw-jdoe", "jdoe"),
    ("full-width-mixed", "\uff4adoe", "pw-jdoe", "jdoe"),
    ("zero-width-space", "jdo\u200be", "pw-jdoe", "jdoe"),
    ("soft-hyphen", "j\u00addoe", "pw-jdoe", "jdoe"),
    ("ligature-fi", "\ufb01ona", "pw-fiona", "fiona"),
    ("composed-accent", "jos\u00e9", "pw-jose", "jos\u00e9"),
    ("decomposed-accent", "Jose\u0301", "pw-jose", "jos\u00e9"),
    ("sharp-s", "Stra\u00dfe", "pw-strasse", "strasse"),
    ("dotless-i", "\u0131DOE", "pw-dotless", "\u0131doe"),
    ("dotted-capital-I", "IDOE", "pw-idoe", "idoe"),
    ("domain-forms", "CONTOSO\\\uff2aDoe", "pw-jdoe", "jdoe"),
]


@pytest.mark.parametrize("sent, password, identity",
                         [f[1:] for f in FOLDS], ids=[f[0] for f in FOLDS])
def test_spelling_folds_to_one_identity(gateway, backend, sent, password,
                                        identity):
    assert sync(gateway, sent, password) == 200
    entry = last_entry(gateway, 1)
    assert (entry["auth"], entry["user"]) == ("ok", identity)
    assert len(backend.requests) == 1


def test_dotless_i_stays_distinct(gateway, backend):
    # ı is a letter of its own: ıdoe is not idoe, and idoe's password
    # does not open it (nor the other way round)
    assert sync(gateway, "\u0131doe", "pw-idoe") == 401
    assert sync(gateway, "idoe", "pw-dotless") == 401
    entry = last_entry(gateway, 2)
    assert entry["auth"] == "invalid"
    assert backend.requests == []


def test_device_rule_on_user_is_folded(gateway, backend):
    statuses = [sync(gateway, name, "pw-jdoe", "LOST1")
                for name in ("jdoe", "\uff4a\uff44\uff4f\uff45")]
    assert statuses == [403, 403]
    assert backend.requests == []


INVALID = [
    ("latin-1", b"j\xf6rg"),
    ("overlong-slash", b"jdoe\xc0\xaf"),
    ("surrogate", b"jd\xed\xa0\x80oe"),
    ("truncated", b"jdoe\xe2\x82"),
    ("only-ignorable", "\u200b\u00ad".encode("utf-8")),
    ("full-width-at", "jdoe\uff20contoso.com".encode("utf-8")),
    ("full-width-backslash", "CONTOSO\uff3cjdoe".encode("utf-8")),
]


@pytest.mark.parametrize("sent", [i[1] for i in INVALID],
                         ids=[i[0] for i in INVALID])
def test_name_that_cannot_be_folded_is_refused(gateway, backend, sent):
    mark = gateway.mark()

    assert sync(gateway, sent, "pw-jdoe") == 401

    entry = last_entry(gateway, 1)
    assert (entry["auth"], entry["reason"]) == ("malformed",
                                                "auth_user_invalid")
    assert backend.requests == []
    lines = [line for line in gateway.error_lines_since(mark)
             if "eas: " in line]
    assert len(lines) == 1, lines


def test_names_that_fold_alike_in_a_file_are_a_duplicate(nginx_factory):
    nginx = nginx_factory(NGINX_CONFIG.replace(
        "eas_device_rules ${dir}/rules;", ""), port=free_port(),
        backend_port=free_port(), start=False)
    with open(os.path.join(nginx.dir, "users"), "wb") as users:
        users.write("jdoe:{PLAIN}a\n\uff2a\uff24\uff2f\uff25:{PLAIN}b\n"
                    .encode("utf-8"))

    assert "duplicate user" in nginx.config_error()


def test_rule_value_that_is_not_utf8_fails_nginx_t(nginx_factory):
    nginx = nginx_factory(NGINX_CONFIG, port=free_port(),
                          backend_port=free_port(), start=False)
    with open(os.path.join(nginx.dir, "users"), "wb") as users:
        users.write(b"jdoe:{PLAIN}a\n")
    with open(os.path.join(nginx.dir, "rules"), "wb") as rules:
        rules.write(b"block user=j\xf6rg\n")

    assert "can never match" in nginx.config_error()
