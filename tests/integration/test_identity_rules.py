"""User rules and devices of the admin API where a directory of several
domains names users by an attribute (identity=uid, docs/operations.md
"Which user a rule names"): a request is keyed by the attribute's value
("jdoe-c", as "GET devices" lists it), so "POST rules?user=jdoe-c"
decides that user on every gateway of the shared state, "GET/DELETE
devices?user=jdoe-c" agree, and a "name@domain" no request there is
keyed by is refused 400 instead of storing a rule that matches nobody;
"nginx -t" refuses such a configured rule the same way.  Against a real
slapd, real nginx gateways and a real redis-server; what got through is
read from the backend's own record."""

import os
import urllib.parse

import pytest

from eastest import ldap as directory
from eastest.nginx import free_port
from eastest.waiting import poll
from test_forest_rules import NGINX_CONFIG, synced, up, user_rules
from test_forest_rules import slapd  # noqa: F401 (fixture)
from test_lift_domains import SHARED, admin
from test_shared_rules import through

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

IDENTITY_CONFIG = NGINX_CONFIG.replace(
    "domain=fabrikam.com,FABRIKAM,fabrikam.local",
    "domain=fabrikam.com,FABRIKAM,fabrikam.local identity=uid")


def start(nginx_factory, slapd, backend, name, redis=None, config=None):
    port = free_port()
    nginx = nginx_factory((config or IDENTITY_CONFIG).replace(
        "${shared}", SHARED if redis else ""), start=False, port=port,
        url=slapd.url, backend_port=backend.port, name=name,
        redis_url=redis.url if redis else "")
    nginx.port = port
    nginx.name = name
    return nginx


def q(value):
    return urllib.parse.quote(value, safe="")


def test_block_by_identity_on_every_gateway(nginx_factory, slapd, backend,
                                            redis):
    a = start(nginx_factory, slapd, backend, "A", redis)
    up(a, redis)
    b = start(nginx_factory, slapd, backend, "B", redis)
    up(b, redis)

    assert synced(a, "contoso", "IDRC1")[0] == 200
    assert through(backend, a, "IDRC1")
    listed = poll(lambda: [d for d in admin(a, "GET", "devices")[1]
                           ["devices"] if d["device_id"] == "IDRC1"] or None,
                  "IDRC1 listed")
    assert listed[0]["user"] == "jdoe-c"

    # the identity as listed: no 409, no domain candidates
    status, answer = admin(a, "POST", "rules?access=block&user=jdoe-c")
    assert status == 200, answer
    for gateway in (a, b):
        poll(lambda: user_rules(gateway).get("jdoe-c") == "block" or None,
             "the rule on %s" % gateway.name)
        assert user_rules(gateway) == {"jdoe-c": "block"}

    for gateway in (a, b):
        device = "IDRC2" + gateway.name
        assert synced(gateway, "contoso", device) == (200, 129)
        assert through(backend, gateway, device) == []
        # the same name in the other domain is another identity
        device = "IDRF2" + gateway.name
        status, eas = synced(gateway, "fabrikam", device)
        assert status == 200 and eas != 129
        assert through(backend, gateway, device)

    # devices?user= takes the same key, both ways
    status, answer = admin(a, "GET", "devices?user=jdoe-c")
    assert status == 200, answer
    assert "IDRC1" in [d["device_id"] for d in answer["devices"]]
    status, answer = admin(a, "DELETE",
                           "devices?user=jdoe-c&device_id=IDRC1")
    assert status == 200 and answer["deleted"] == 1, answer

    status, answer = admin(a, "DELETE", "rules?user=JDoe-C")
    assert status == 200, answer
    poll(lambda: user_rules(b) == {} or None, "the rule gone on B")


@pytest.mark.parametrize("typed", ["jdoe-c@contoso.com", "CONTOSO\\jdoe-c",
                                   "jdoe-c@fabrikam.local"])
def test_domain_form_refused(nginx_factory, slapd, backend, typed):
    a = start(nginx_factory, slapd, backend, "A")
    up(a, None)
    assert synced(a, "contoso", "IDRD1")[0] == 200

    for method, path in (("POST", "rules?access=block&user="),
                         ("GET", "devices?user="),
                         ("DELETE", "devices?device_id=IDRD1&user=")):
        status, answer = admin(a, method, path + q(typed))
        assert status == 400, (method, path, answer)
        assert "$eas_auth_user" in answer["error"], answer

    assert user_rules(a) == {}
    assert admin(a, "GET", "devices?user=jdoe-c")[1]["total"] == 1


def test_lockout_lift_still_named_as_typed(nginx_factory, slapd, backend):
    """Lockouts count before the directory names anybody: their keys are
    the names as typed, so a bare name there is still the name in each
    domain."""
    a = start(nginx_factory, slapd, backend, "A")
    up(a, None)
    status, answer = admin(a, "DELETE", "lockouts?user=jdoe")
    assert status == 409, answer
    assert sorted(answer["candidates"]) == ["jdoe@contoso.com",
                                            "jdoe@fabrikam.com"]


@pytest.mark.parametrize("value", ["jdoe-c@contoso.com", "CONTOSO\\jdoe-c",
                                   "JDoe-C@Fabrikam.Local"])
def test_configured_rule_never_matching_fails(nginx_factory, slapd, backend,
                                              value):
    config = IDENTITY_CONFIG.replace(
        "eas_device_block device_id=ApplSTATIC;",
        "eas_device_block user=" + value + ";")
    nginx = start(nginx_factory, slapd, backend, "A", config=config)
    out = nginx.config_error()
    assert "eas_device_block" in out and "identity=uid" in out, out
    assert "$eas_auth_user" in out, out


def test_configured_rule_by_identity_blocks(nginx_factory, slapd, backend):
    config = IDENTITY_CONFIG.replace(
        "eas_device_block device_id=ApplSTATIC;",
        "eas_device_block user=jdoe-c;")
    nginx = start(nginx_factory, slapd, backend, "A", config=config)
    code, out = nginx.test_config()
    assert code == 0, out
    up(nginx, None)
    assert synced(nginx, "contoso", "IDRK1") == (200, 129)
    assert through(backend, nginx, "IDRK1") == []
    status, eas = synced(nginx, "fabrikam", "IDRK2")
    assert status == 200 and eas != 129


@pytest.mark.parametrize("user,fails", [("jdoe-c@contoso.com", True),
                                        ("CONTOSO\\jdoe-c", True),
                                        ("JDoe-C", False)])
def test_list_file_name_never_matching_fails(nginx_factory, slapd, backend,
                                             user, fails):
    config = IDENTITY_CONFIG.replace(
        "eas_device_block device_id=ApplSTATIC;",
        "eas_device_user_lists ${dir}/lists;")
    nginx = start(nginx_factory, slapd, backend, "A", config=config)
    with open(os.path.join(nginx.dir, "lists"), "w", encoding="utf-8") as f:
        f.write(user + " block IDRL1\n")
    if not fails:
        assert nginx.test_config()[0] == 0
        return
    out = nginx.config_error()
    assert ('user "%s" in "%s" at line 1 can never match: the "identity" '
            'attribute never holds it' % (user, os.path.join(nginx.dir,
                                                            "lists"))) in out
    assert "$eas_auth_user" in out, out
