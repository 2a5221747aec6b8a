"""Lifting one user's lockout in a forest (docs/operations.md, admin API):
with a directory that serves several domains the lockout key is
"name@domain"; "DELETE lockouts?user=" lifts the key the listing shows
and any form a user types for it (DOMAIN\\name, name@alias, another
case or width); a bare name is a user in each domain, so it lifts
nothing and answers 409 with the keys to choose from, whatever this
gateway holds (a gateway just restarted holds nothing, a lock may be on
Redis only); with eas_shared_state the lift reaches the other
gateways.  And the drop of
cached credentials ("DELETE credentials?user=CONTOSO\\jdoe") reaches the
identity "jdoe@contoso.com".  Against a real
slapd, real nginx gateways and a real redis-server; that the user's
right password gets through again is read from slapd's own log."""

import base64
import json
import urllib.error
import urllib.request

import pytest

from eastest import confs
from eastest import ldap as directory
from eastest.client import EasClient
from eastest.nginx import free_port
from eastest.waiting import poll
from test_shared_rules import subscribed

BASE = directory.SUFFIX

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

LIMIT = 2

FOREST = ("base=" + BASE + " filter=(mail=%u@%d) bind_dn="
          + directory.SERVICE_DN + " bind_password="
          + directory.SERVICE_PASSWORD
          + " domain=contoso.com,CONTOSO"
          + " domain=fabrikam.com,FABRIKAM,fabrikam.local")

NGINX_CONFIG = """
http {
    ${temp_paths}
    ${shared}

    eas_preauth_zone zone=auth:1m;
    eas_device_zone zone=devices:1m;
    eas_ldap_server forest url=${url} """ + FOREST + """;

    server {
        listen 127.0.0.1:${port};

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_ldap forest;
            eas_preauth_cache zone=auth valid=0 invalid=0;
            eas_preauth_lockout user=""" + str(LIMIT) + """ address=off
                                window=1h time=1h;
            proxy_pass http://127.0.0.1:${backend_port};
        }

        location /cached/ {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_ldap forest;
            eas_preauth_cache zone=auth valid=1h invalid=0;
            eas_preauth_lockout user=off address=off;
            proxy_pass http://127.0.0.1:${backend_port}/;
        }

""" + confs.SHARED_STATUS_ADMIN + """    }
}
"""

SHARED = ("eas_shared_state ${redis_url} prefix=t: timeout=300ms "
          "connect_timeout=300ms retry=200ms;")

PEOPLE = [
    directory.person("jdoe-c", "contoso-pw", mail="jdoe@contoso.com"),
    directory.person("jdoe-f", "fabrikam-pw", mail="jdoe@fabrikam.com"),
]

PASSWORDS = {"contoso": "contoso-pw", "fabrikam": "fabrikam-pw"}

slapd = directory.slapd_fixture(PEOPLE, members=["jdoe-c"], stats=True)


def start(nginx_factory, slapd, backend, redis=None):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG.replace(
        "${shared}", SHARED if redis else ""), listen=(port,), port=port,
        url=slapd.url, backend_port=backend.port,
        redis_url=redis.url if redis else "")
    nginx.port = port
    return nginx


@pytest.fixture
def gateway(nginx_factory, slapd, backend):
    return start(nginx_factory, slapd, backend)


def send(nginx, user, password, device="DEV1", prefix=""):
    client = EasClient("http://127.0.0.1:%d%s/Microsoft-Server-ActiveSync"
                       % (nginx.port, prefix), user=user, password=password,
                       device_id=device, timeout=20)
    return client.options().status


def admin(nginx, method, path):
    """(status, the JSON answer) of the admin API."""
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/%s" % (nginx.port, path),
        method=method, headers={"X-EAS-Admin": "1"})
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status, json.loads(reply.read().decode())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


def locked_keys(nginx):
    return sorted(lock["key"] for lock in
                  admin(nginx, "GET", "lockouts")[1]["lockouts"]
                  if lock["kind"] == "user")


def lock(nginx, domain):
    """DOMAIN\\jdoe locked by wrong passwords; its key listed."""
    for i in range(LIMIT):
        assert send(nginx, "%s\\jdoe" % domain.upper(), "bad%d" % i) == 401
    key = "jdoe@%s.com" % domain
    poll(lambda: key in locked_keys(nginx) or None, "the lock of " + key,
         timeout=10, interval=0.1)


def binds(slapd, mark, uid):
    """Binds slapd logged for uid since mark: its own record of what
    reached it."""
    return [op for op in slapd.operations_since(mark, what="BIND")
            if "uid=%s," % uid in op]


def passes(nginx, slapd, backend, domain):
    """DOMAIN\\jdoe's right password: reaches slapd and the backend."""
    mark, seen = slapd.log_size(), len(backend.requests)
    status = send(nginx, "%s\\jdoe" % domain.upper(), PASSWORDS[domain],
                  device="AFTER")
    return (status == 200 and len(backend.requests) > seen
            and binds(slapd, mark, "jdoe-" + domain[0]) != [])


def refused_unasked(nginx, slapd, domain):
    """DOMAIN\\jdoe's right password is refused, slapd never asked."""
    mark = slapd.log_size()
    status = send(nginx, "%s\\jdoe" % domain.upper(), PASSWORDS[domain],
                  device="STILL")
    return status == 401 and binds(slapd, mark, "jdoe-" + domain[0]) == []


# user= as typed (URL-encoded): the listed key, the forms a user types
TYPED = [
    "jdoe@fabrikam.com",                        # as listed
    "FABRIKAM%5Cjdoe",                          # down-level
    "JDoe@Fabrikam.Local",                      # a UPN suffix alias
    "%EF%BD%8A%EF%BD%84%EF%BD%8F%EF%BD%85@FABRIKAM.com",   # full width
]

CANDIDATES = ["jdoe@contoso.com", "jdoe@fabrikam.com"]


@pytest.mark.parametrize("typed", TYPED)
def test_a_lock_in_a_domain_is_lifted_by_each_form(gateway, slapd, backend,
                                                   typed):
    lock(gateway, "fabrikam")
    assert refused_unasked(gateway, slapd, "fabrikam")

    status, answer = admin(gateway, "DELETE", "lockouts?user=" + typed)
    assert (status, answer) == (200, {"lifted": 1,
                                      "key": "jdoe@fabrikam.com"})
    assert locked_keys(gateway) == []
    assert passes(gateway, slapd, backend, "fabrikam")


def ambiguous(nginx, typed, here):
    """A bare name lifts nothing: 409, both domains' keys to choose
    from, here those this gateway holds."""
    status, answer = admin(nginx, "DELETE", "lockouts?user=" + typed)
    assert status == 409, answer
    assert sorted(answer["candidates"]) == CANDIDATES
    assert sorted(answer["locked_here"]) == here


def test_a_bare_name_locked_in_one_domain_lifts_nothing(gateway, slapd,
                                                        backend):
    """FABRIKAM\\jdoe alone locked here: "user=jdoe" still names no
    one (the other domain's jdoe may be locked elsewhere), 409."""
    lock(gateway, "fabrikam")

    ambiguous(gateway, "jdoe", ["jdoe@fabrikam.com"])
    assert locked_keys(gateway) == ["jdoe@fabrikam.com"]
    assert refused_unasked(gateway, slapd, "fabrikam")


def test_a_bare_name_locked_in_two_domains_lifts_nothing(gateway, slapd,
                                                         backend):
    """jdoe locked in both domains: "user=jdoe" answers 409 with both
    keys and lifts neither; each is lifted by its own name."""
    lock(gateway, "contoso")
    lock(gateway, "fabrikam")

    ambiguous(gateway, "JDOE", CANDIDATES)
    assert locked_keys(gateway) == ["jdoe@contoso.com", "jdoe@fabrikam.com"]
    assert refused_unasked(gateway, slapd, "contoso")
    assert refused_unasked(gateway, slapd, "fabrikam")

    status, answer = admin(gateway, "DELETE", "lockouts?user=CONTOSO%5Cjdoe")
    assert (status, answer) == (200, {"lifted": 1,
                                      "key": "jdoe@contoso.com"})
    assert passes(gateway, slapd, backend, "contoso")
    assert refused_unasked(gateway, slapd, "fabrikam")

    # a name of no domain the directory serves lifts nothing
    status, _ = admin(gateway, "DELETE", "lockouts?user=NORTHWIND%5Cjdoe")
    assert status == 404
    assert locked_keys(gateway) == ["jdoe@fabrikam.com"]


def test_the_lift_of_a_domain_user_reaches_the_other_gateway(
        nginx_factory, slapd, backend, redis):
    """With eas_shared_state: FABRIKAM\\jdoe locked through gateway B,
    lifted by that name on gateway A; B lets the right password reach
    slapd again, and the lock is gone from Redis."""
    a = start(nginx_factory, slapd, backend, redis)
    b = start(nginx_factory, slapd, backend, redis)

    lock(b, "fabrikam")
    poll(lambda: redis.keys("t:ul:auth:jdoe@fabrikam.com") or None,
         "the lock written on Redis", timeout=10, interval=0.1)
    poll(lambda: "jdoe@fabrikam.com" in locked_keys(a) or None,
         "the lock told to gateway A", timeout=10, interval=0.1)
    assert refused_unasked(b, slapd, "fabrikam")

    status, answer = admin(a, "DELETE", "lockouts?user=FABRIKAM%5Cjdoe")
    assert (status, answer) == (200, {"lifted": 1,
                                      "key": "jdoe@fabrikam.com"})
    assert redis.keys("t:ul:auth:jdoe@fabrikam.com") == []
    poll(lambda: passes(b, slapd, backend, "fabrikam") or None,
         "the lock lifted on gateway B", timeout=10, interval=0.1)


def shared_pair(nginx_factory, slapd, backend, redis):
    """Gateways A and B of one Redis, every worker subscribed."""
    before = subscribed(redis)
    a = start(nginx_factory, slapd, backend, redis)
    b = start(nginx_factory, slapd, backend, redis)
    poll(lambda: subscribed(redis) >= before + 4 or None,
         "the subscriptions of both gateways")
    return a, b


def restarted(a, redis):
    """Gateway A stopped and started: it holds no lock."""
    before = subscribed(redis)
    a.stop()
    poll(lambda: subscribed(redis) <= before - 2 or None,
         "gateway A unsubscribed")
    a.start(ports=(a.port,))
    poll(lambda: subscribed(redis) >= before or None,
         "gateway A subscribed again")
    assert locked_keys(a) == []


def lock_on_b(b, a, redis, domain, told=True):
    """DOMAIN\\jdoe locked through gateway B, on Redis (and on A when
    told, A running)."""
    key = "jdoe@%s.com" % domain
    lock(b, domain)
    poll(lambda: redis.keys("t:ul:auth:" + key) or None,
         "the lock of %s on Redis" % key, timeout=10, interval=0.1)
    if told:
        poll(lambda: key in locked_keys(a) or None,
             "the lock of %s told to A" % key, timeout=10, interval=0.1)


def nothing_lifted(a, b, redis, slapd):
    """Both locks still on Redis, and each domain's right password
    refused by both gateways without a bind at slapd."""
    assert sorted(redis.keys("t:ul:auth:*")) == ["t:ul:auth:" + key
                                                 for key in CANDIDATES]
    for nginx in (a, b):
        for domain in ("contoso", "fabrikam"):
            assert refused_unasked(nginx, slapd, domain), (nginx.port,
                                                           domain)


def test_a_bare_name_on_a_restarted_gateway_lifts_nothing(
        nginx_factory, slapd, backend, redis):
    """Both domains' jdoe locked everywhere, then gateway A restarted
    (it lists nothing): "user=jdoe" on A answers 409 and lifts neither
    lock, on Redis nor on B; a fully qualified name then lifts exactly
    its key everywhere."""
    a, b = shared_pair(nginx_factory, slapd, backend, redis)
    lock_on_b(b, a, redis, "contoso")
    lock_on_b(b, a, redis, "fabrikam")
    restarted(a, redis)

    ambiguous(a, "jdoe", [])
    nothing_lifted(a, b, redis, slapd)
    assert locked_keys(b) == CANDIDATES

    status, answer = admin(a, "DELETE", "lockouts?user=jdoe@contoso.com")
    assert (status, answer) == (200, {"lifted": 1,
                                      "key": "jdoe@contoso.com"})
    assert redis.keys("t:ul:auth:*") == ["t:ul:auth:jdoe@fabrikam.com"]
    poll(lambda: locked_keys(b) == ["jdoe@fabrikam.com"] or None,
         "the lift told to B", timeout=10, interval=0.1)
    assert passes(b, slapd, backend, "contoso")
    assert refused_unasked(b, slapd, "fabrikam")
    assert refused_unasked(a, slapd, "fabrikam")


def test_a_bare_name_with_one_lock_here_and_one_on_redis_lifts_nothing(
        nginx_factory, slapd, backend, redis):
    """CONTOSO\\jdoe locked while gateway A was away (on Redis only for
    A), FABRIKAM\\jdoe locked after (A holds it): "user=jdoe" on A
    answers 409, neither is lifted anywhere."""
    a, b = shared_pair(nginx_factory, slapd, backend, redis)
    lock_on_b(b, a, redis, "contoso")
    restarted(a, redis)
    lock_on_b(b, a, redis, "fabrikam")
    assert locked_keys(a) == ["jdoe@fabrikam.com"]

    ambiguous(a, "jdoe", ["jdoe@fabrikam.com"])
    nothing_lifted(a, b, redis, slapd)


def test_a_bare_name_with_both_locks_on_redis_only_lifts_nothing(
        nginx_factory, slapd, backend, redis):
    """Both locks made while gateway A was away: "user=jdoe" on A
    answers 409, neither is lifted anywhere."""
    a, b = shared_pair(nginx_factory, slapd, backend, redis)
    a.stop()
    lock_on_b(b, a, redis, "contoso", told=False)
    lock_on_b(b, a, redis, "fabrikam", told=False)
    a.start(ports=(a.port,))
    poll(lambda: subscribed(redis) >= 4 or None, "gateway A subscribed")
    assert locked_keys(a) == []

    ambiguous(a, "jdoe", [])
    nothing_lifted(a, b, redis, slapd)


def test_cached_credentials_of_a_domain_user_are_dropped_by_its_name(
        gateway, slapd, backend):
    """After a password change, "DELETE credentials?user=CONTOSO\\jdoe"
    drops the answers cached for the identity jdoe@contoso.com: its next
    request binds to slapd again."""
    def binds_of(user, password):
        mark = slapd.log_size()
        assert send(gateway, user, password, prefix="/cached") == 200
        return len(binds(slapd, mark, "jdoe-c"))

    assert binds_of("CONTOSO\\jdoe", "contoso-pw") > 0
    poll(lambda: binds_of("CONTOSO\\jdoe", "contoso-pw") == 0 or None,
         "the answer cached", timeout=10, interval=0.1)

    status, answer = admin(gateway, "DELETE",
                           "credentials?user=CONTOSO%5Cjdoe")
    assert status == 200
    assert binds_of("CONTOSO\\jdoe", "contoso-pw") > 0
    assert answer["dropped"] == "user"
    assert "jdoe@contoso.com" in answer["identities"]
