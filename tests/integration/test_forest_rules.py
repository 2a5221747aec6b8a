"""User rules of the admin API in a forest (docs/operations.md,
docs/devices.md): with a directory that serves several domains a
request is keyed "name@domain", so "POST rules?user=" stores the name
as typed made that key ("FABRIKAM\\jdoe", "jdoe@fabrikam.local", the
name in full width: "jdoe@fabrikam.com"), which decides that user's
devices on every gateway of the shared state while the same name in
the other domain still passes; a bare name there is refused with 409
and the keys to choose from.  The rules file keeps the key across a
restart, and "GET/DELETE devices?user=" take the same forms.  Against
a real slapd, real nginx gateways and a real redis-server; what got
through is read from the backend's own record."""

import os
import re

import pytest

from eastest import confs
from eastest import ldap as directory
from eastest.client import EasClient
from eastest.nginx import free_port
from eastest.waiting import poll
from test_lift_domains import FOREST, PEOPLE, SHARED, admin
from test_shared_rules import CHANNEL, subscribed, through

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

NGINX_CONFIG = """
http {
    ${temp_paths}
    ${shared}

    eas_preauth_zone zone=auth:1m;
    eas_device_zone zone=devices:1m;
    eas_admin_rules zone=rules:64k file=${dir}/admin.rules;
    eas_ldap_server forest url=${url} """ + FOREST + """;

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_ldap forest;
            eas_preauth_cache zone=auth;
            eas_devices devices;
            eas_device_block device_id=ApplSTATIC;
            proxy_set_header X-Gateway ${name};
            proxy_pass http://127.0.0.1:${backend_port};
        }

""" + confs.SHARED_STATUS_ADMIN + """    }
}
"""

LOGINS = {"contoso": ("CONTOSO\\jdoe", "contoso-pw"),
          "fabrikam": ("FABRIKAM\\jdoe", "fabrikam-pw")}

slapd = directory.slapd_fixture(PEOPLE, members=["jdoe-c"], stats=True)

# user= as typed (URL-encoded) for FABRIKAM's jdoe, and the key it is
TYPED = [
    "FABRIKAM%5Cjdoe",                          # down-level
    "jdoe@fabrikam.com",                        # the key itself
    "JDoe@Fabrikam.Local",                      # a UPN suffix alias
    "%EF%BD%8A%EF%BD%84%EF%BD%8F%EF%BD%85@FABRIKAM.com",   # full width
]
KEY = "jdoe@fabrikam.com"


def start(nginx_factory, slapd, backend, name, redis=None, rules=None):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG.replace(
        "${shared}", SHARED if redis else ""), start=False, port=port,
        url=slapd.url, backend_port=backend.port, name=name,
        redis_url=redis.url if redis else "")
    nginx.port = port
    nginx.name = name
    if rules is not None:
        with open(os.path.join(nginx.dir, "admin.rules"), "w",
                  encoding="utf-8") as f:
            f.write(rules)
    up(nginx, redis)
    return nginx


def up(nginx, redis):
    """Started; with Redis, both its workers subscribed to the channel."""
    before = subscribed(redis) if redis else 0
    nginx.start(ports=(nginx.port,))
    if redis:
        poll(lambda: subscribed(redis) >= before + 2 or None,
             "the subscriptions of %s" % nginx.name)


def user_rules(nginx):
    """{key: access} of the user rules the listing shows."""
    return {r["user"]: r["access"]
            for r in admin(nginx, "GET", "rules")[1]["rules"]
            if "user" in r}


def synced(nginx, domain, device_id):
    user, password = LOGINS[domain]
    reply = EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                      % nginx.port, user=user, password=password,
                      device_id=device_id, timeout=20).sync()
    return reply.status, reply.eas_status()


def refused(nginx, backend, domain, device_id):
    """The device refused (Status 129), nothing of it at the backend."""
    return (synced(nginx, domain, device_id) == (200, 129)
            and through(backend, nginx, device_id) == [])


def passes(nginx, backend, domain, device_id):
    status, eas = synced(nginx, domain, device_id)
    return (status == 200 and eas != 129
            and through(backend, nginx, device_id) != [])


def ruled(a, b, typed, access):
    """access for the user typed, given on A: listed under the key on A,
    and on B once the shared state brought it."""
    status, answer = admin(a, "POST", "rules?access=%s&user=%s"
                           % (access, typed))
    assert status == 200, answer
    assert user_rules(a) == {KEY: access}
    poll(lambda: user_rules(b) == {KEY: access} or None, "the rule on B",
         timeout=10, interval=0.1)


@pytest.fixture
def pair(nginx_factory, slapd, backend, redis):
    return (start(nginx_factory, slapd, backend, "A", redis),
            start(nginx_factory, slapd, backend, "B", redis))


@pytest.mark.parametrize("typed", TYPED)
def test_a_block_by_each_typed_form_refuses_the_user_on_both_gateways(
        pair, backend, typed):
    """A block of FABRIKAM's jdoe, given on A in any form a user types,
    is stored and listed as the key requests have, and refuses that
    user's device on A and on B (the backend saw nothing of it), while
    CONTOSO's jdoe still passes on both."""
    a, b = pair
    ruled(a, b, typed, "block")
    for nginx in (a, b):
        assert refused(nginx, backend, "fabrikam", "FabPhone" + nginx.name)
        assert passes(nginx, backend, "contoso", "ConPhone" + nginx.name)


@pytest.mark.parametrize("typed", ["FABRIKAM%5Cjdoe", "JDoe@Fabrikam.Local"])
def test_an_allow_by_a_typed_form_lets_only_that_user_through(
        pair, backend, typed):
    """An allow of FABRIKAM's jdoe comes before the configured block of
    ApplSTATIC on A and B; CONTOSO's jdoe is still blocked there."""
    a, b = pair
    for nginx in (a, b):
        assert refused(nginx, backend, "fabrikam", "ApplSTATIC")
    ruled(a, b, typed, "allow")
    for nginx in (a, b):
        assert passes(nginx, backend, "fabrikam", "ApplSTATIC")
        assert synced(nginx, "contoso", "ApplSTATIC") == (200, 129)
    assert len([r for r in backend.requests
                if r.eas.device_id == "ApplSTATIC"]) == 2


def test_a_bare_name_in_a_forest_is_refused_with_its_candidates(
        nginx_factory, slapd, backend):
    """"jdoe" is a user in both domains: 409, the keys to choose from,
    and no rule; both still pass.  The same for the device listing."""
    a = start(nginx_factory, slapd, backend, "A")
    status, answer = admin(a, "POST", "rules?access=block&user=JDoe")
    assert status == 409, answer
    assert sorted(answer["candidates"]) == ["jdoe@contoso.com",
                                            "jdoe@fabrikam.com"]
    assert user_rules(a) == {}
    assert passes(a, backend, "fabrikam", "FabPhone")
    assert passes(a, backend, "contoso", "ConPhone")

    status, answer = admin(a, "GET", "devices?user=jdoe")
    assert status == 409, answer
    status, answer = admin(a, "DELETE", "devices?user=jdoe&device_id=x")
    assert status == 409, answer

    status, answer = admin(a, "POST",
                           "rules?access=block&user=jdoe@elsewhere.com")
    assert status == 400, answer
    assert user_rules(a) == {}


def test_a_bare_rule_of_an_older_version_is_removed_by_its_name(
        nginx_factory, slapd, backend):
    """A file an older version wrote keeps a user rule as the bare name:
    it decides nobody in a forest, and "DELETE rules?user=jdoe" removes
    it; once gone, the bare name is 409 with its candidates again."""
    a = start(nginx_factory, slapd, backend, "A",
              rules='block user="jdoe"  # eas_admin rule 1796621432 '
                    '127.0.0.1\n')
    assert user_rules(a) == {"jdoe": "block"}
    status, answer = admin(a, "DELETE", "rules?user=jdoe")
    assert status == 200, answer
    assert user_rules(a) == {}
    status, answer = admin(a, "DELETE", "rules?user=jdoe")
    assert status == 409, answer
    assert sorted(answer["candidates"]) == ["jdoe@contoso.com",
                                            "jdoe@fabrikam.com"]


def test_the_rules_file_keeps_the_key_across_a_restart(
        nginx_factory, slapd, backend):
    """The key is written to the rules file and read back as it is."""
    a = start(nginx_factory, slapd, backend, "A")
    status, answer = admin(a, "POST",
                           "rules?access=block&user=FABRIKAM%5Cjdoe")
    assert status == 200, answer
    with open(os.path.join(a.dir, "admin.rules")) as f:
        assert re.search(r'^block user="jdoe@fabrikam\.com"', f.read(),
                         re.M)
    a.stop()
    up(a, None)
    assert user_rules(a) == {KEY: "block"}
    assert refused(a, backend, "fabrikam", "FabPhone")
    assert passes(a, backend, "contoso", "ConPhone")


def test_devices_are_listed_and_deleted_by_a_typed_form(
        nginx_factory, slapd, backend):
    """"GET devices?user=FABRIKAM\\jdoe" lists that user's device under
    its key, not CONTOSO's; DELETE by the alias form removes it."""
    a = start(nginx_factory, slapd, backend, "A")
    assert passes(a, backend, "fabrikam", "FabPhone")
    assert passes(a, backend, "contoso", "ConPhone")
    status, answer = admin(a, "GET", "devices?user=FABRIKAM%5Cjdoe")
    assert status == 200, answer
    assert [(d["user"], d["device_id"]) for d in answer["devices"]] \
        == [(KEY, "FabPhone")]
    status, answer = admin(a, "DELETE",
                           "devices?user=JDoe@Fabrikam.Local"
                           "&device_id=FabPhone")
    assert status == 200, answer
    status, answer = admin(a, "GET", "devices")
    assert [(d["user"], d["device_id"]) for d in answer["devices"]] \
        == [("jdoe@contoso.com", "ConPhone")]


# configured rules: an exact user= is the identity, else nginx -t fails
RULE_USERS = [
    ("CONTOSO\\\\jdoe", 'write the identity, "user=jdoe@contoso.com"'),
    ("jdoe", 'write the identity, "user=jdoe@contoso.com"'),
    ("JDoe@Fabrikam.Local", 'write the identity, "user=jdoe@fabrikam.com"'),
    ("jdoe@northwind.com", 'its domain is none of the "domain" parameters'),
]


@pytest.mark.parametrize("value,message", RULE_USERS,
                         ids=["down-level", "bare", "alias", "unknown"])
def test_a_configured_user_rule_names_the_identity_or_fails_nginx_t(
        nginx_factory, slapd, backend, value, message):
    """In a forest, "eas_device_block user=CONTOSO\\jdoe" would match no
    request (they are "jdoe@contoso.com"): nginx -t fails with the
    identity to write; written so, it refuses that user only."""
    config = NGINX_CONFIG.replace("${shared}", "").replace(
        "eas_device_block device_id=ApplSTATIC;",
        "eas_device_block user=${rule_user};")
    nginx = nginx_factory(config.replace("${rule_user}", value), start=False, port=free_port(),
                          url=slapd.url, backend_port=backend.port, name="A")
    output = nginx.config_error()
    assert "eas_device_block" in output
    assert message in output

    port = free_port()
    good = nginx_factory(config.replace("${rule_user}", "jdoe@fabrikam.com"), start=False,
                         port=port, url=slapd.url, backend_port=backend.port,
                         name="A")
    good.port, good.name = port, "A"
    up(good, None)
    assert refused(good, backend, "fabrikam", "FabPhone")
    assert passes(good, backend, "contoso", "ConPhone")
