"""Nested membership of the required group (eas_ldap_server ...
group_nested=): a member of a member group passes.  slapd does not
implement AD's LDAP_MATCHING_RULE_IN_CHAIN (it answers "success, no
entry"), so against slapd "in_chain" finds direct members only and "on"
reaches nested ones through its level-by-level search, which the test
reads back from slapd's own log: bounded by group_depth, each group
asked once, so a cycle of groups ends."""

import pytest

from eastest import confs
from eastest import ldap as directory
from eastest.nginx import start_gateway

BASE = directory.SUFFIX
GROUPS = "ou=groups," + BASE
PEOPLE = "ou=people," + BASE

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

SEARCH = directory.SEARCH_PARAMS + " group=" + directory.GROUP_DN

NGINX_CONFIG = confs.gateway(
    confs.PREAUTH_UNCACHED, "eas_preauth_ldap flat;",
    *[confs.ldap_location(name)
      for name in ("flat", "nested", "inchain", "shallow", "dn")],
    zones=[confs.AUTH_ZONE, """
    eas_ldap_server flat url=${url} """ + SEARCH + """;
    eas_ldap_server nested url=${url} """ + SEARCH + """ group_nested=on;
    eas_ldap_server inchain url=${url} """ + SEARCH + """
                    group_nested=in_chain;
    eas_ldap_server shallow url=${url} """ + SEARCH + """ group_nested=on
                    group_depth=2;
    eas_ldap_server dn url=${url} bind=uid=%u,""" + PEOPLE + """
                    group=""" + directory.GROUP_DN + """ group_nested=on;
    """], upstream=None)


def group(cn, *members):
    return (["dn: cn=%s,%s" % (cn, GROUPS), "objectClass: groupOfNames",
             "cn: " + cn] + ["member: " + m for m in members])


def user(uid):
    return "uid=%s,%s" % (uid, PEOPLE)


def grp(cn):
    return "cn=%s,%s" % (cn, GROUPS)


# mobile (required) <- team <- sub <- deep; cyca <-> cycb; lonely
PEOPLE_ENTRIES = [
    directory.person(uid, uid + "-pw")
    for uid in ("direct", "nested2", "nested3", "nested4", "cyc",
                "outsider")
] + [
    group("team", user("nested2"), grp("sub")),
    group("sub", user("nested3"), grp("deep")),
    group("deep", user("nested4")),
    group("cyca", user("cyc"), grp("cycb")),
    group("cycb", grp("cyca")),
    group("lonely", user("outsider")),
]


def also_team(entries):
    # the required group also lists the group "team"
    entries[6] = entries[6] + ["member: " + grp("team")]


slapd = directory.slapd_fixture(PEOPLE_ENTRIES, members=["direct"],
                                stats=True, edit=also_team)


@pytest.fixture
def gateway(nginx_factory, slapd, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         url=slapd.url, backend_port=backend.port)


def sync(nginx, prefix, uid, password=None):
    return directory.sync(nginx.port, prefix, uid,
                          password or uid + "-pw").status


MEMBERSHIP = [
    # location, user, status
    ("flat", "direct", 200),
    ("flat", "nested2", 401),          # nested groups are not followed
    ("nested", "direct", 200),
    ("nested", "nested2", 200),        # team is in mobile
    ("nested", "nested3", 200),        # sub is in team
    ("nested", "nested4", 200),        # deep is in sub
    ("nested", "outsider", 401),
    ("nested", "cyc", 401),            # a cycle outside mobile
    ("shallow", "nested2", 200),       # depth 2
    ("shallow", "nested3", 401),       # depth 3 > group_depth=2
    ("inchain", "direct", 200),
    ("inchain", "nested2", 401),       # slapd has no in-chain rule
    ("dn", "nested3", 200),            # group_base: the group's parent
    ("dn", "outsider", 401),
]


@pytest.mark.parametrize("prefix,uid,status", MEMBERSHIP,
                         ids=["%s-%s" % (c[0], c[1]) for c in MEMBERSHIP])
def test_membership_of_the_required_group(gateway, backend, prefix, uid,
                                          status):
    assert sync(gateway, prefix, uid) == status

    assert len(backend.requests) == (status == 200)


def test_a_wrong_password_of_a_nested_member_is_refused(gateway):
    assert sync(gateway, "nested", "nested3", "wrong") == 401


def in_chain(op):
    # slapd logs a filter with a matching rule it does not know so
    return "1.2.840.113556.1.4.1941" in op or "(?=undefined)" in op


def nested_searches(ops):
    # the level-by-level searches: subtree (scope=2) under group_base,
    # here base=
    return [op for op in ops
            if op.startswith('base="%s" scope=2' % BASE) and "member=" in op]


def test_the_search_climbs_one_level_at_a_time(gateway, slapd):
    mark = slapd.log_size()

    assert sync(gateway, "nested", "nested4") == 200

    ops = slapd.operations_since(mark)
    assert len([op for op in ops if in_chain(op)]) == 1
    levels = nested_searches(ops)
    # groups of nested4, then of deep, then of sub: mobile lists team
    assert len(levels) == 3
    assert "(member=%s)" % user("nested4") in levels[0]
    assert "(member=%s)" % grp("deep") in levels[1]
    assert "(member=%s)" % grp("sub") in levels[2]


def test_a_cycle_of_groups_ends(gateway, slapd):
    mark = slapd.log_size()

    assert sync(gateway, "nested", "cyc") == 401

    levels = nested_searches(slapd.operations_since(mark))
    # cyc -> cyca -> cycb -> cyca (seen): three searches, not group_depth
    assert len(levels) == 3
    assert "(member=%s)" % grp("cycb") in levels[2]


def test_the_depth_limit_stops_the_search(gateway, slapd):
    mark = slapd.log_size()

    assert sync(gateway, "shallow", "nested4") == 401

    assert len(nested_searches(slapd.operations_since(mark))) == 1


def test_direct_members_cost_one_group_search(gateway, slapd):
    mark = slapd.log_size()

    assert sync(gateway, "nested", "direct") == 200

    ops = slapd.operations_since(mark)
    assert not any(in_chain(op) for op in ops)
    assert nested_searches(ops) == []


BAD = [
    ("group_nested=on", '"group_nested", "group_depth" and "group_base" '
     'need "group"'),
    ("group=cn=g group_nested=maybe", "invalid value"),
    ("group=cn=g group_depth=0", "invalid depth"),
    ("group=cn=g group_depth=33", "invalid depth"),
    ("group=cn=g group_nested=on group_nested=off", "duplicate parameter"),
]


@pytest.mark.parametrize("params,message", BAD, ids=[b[0] for b in BAD])
def test_nested_parameters_are_checked_at_nginx_t(nginx_factory, params,
                                                  message):
    nginx = nginx_factory("http {\n ${temp_paths}\n eas_ldap_server d "
                          "url=ldap://x bind=uid=%u " + params + ";\n}\n",
                          start=False)
    output = nginx.config_error()

    assert message in output and "eas_ldap_server" in output
