"""The connections the pool threads keep to a directory end with an
LDAP unbind when a worker exits (graceful stop, reload), not with the
socket dropped: read back from slapd's own log, where a connection that
was unbound logs UNBIND before it is closed and one that was dropped is
"closed (connection lost)"."""

import re
import time

import pytest

from eastest import confs
from eastest import ldap as directory
from eastest.nginx import start_gateway

BASE = directory.SUFFIX

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

NGINX_CONFIG = confs.gateway(
    confs.PREAUTH_UNCACHED, "eas_preauth_ldap search;",
    confs.eas_location(path="/search/", proxy_pass=confs.DIRECT + "/"),
    confs.eas_location("eas_preauth_ldap dn;", path="/dn/",
                       proxy_pass=confs.DIRECT + "/"),
    zones=[confs.AUTH_ZONE, """
    eas_ldap_server search url=${url} """ + directory.SEARCH_PARAMS + """;
    eas_ldap_server dn url=${url} bind=uid=%u,ou=people,""" + BASE + """;
    """], upstream=None)


slapd = directory.slapd_fixture(stats=True)


def sync(port, prefix):
    return directory.sync(port, prefix, "jdoe", "secret").status


def connections(slapd, mark):
    """conn id -> what slapd logged for it after mark."""
    conns = {}
    with open(slapd.dir + "/slapd.log", "rb") as f:
        f.seek(mark)
        text = f.read().decode("utf-8", "replace")
    for line in text.splitlines():
        m = re.search(r"\bconn=(\d+) ", line)
        if m:
            conns.setdefault(m.group(1), []).append(line)
    return conns


def wait_all_closed(slapd, mark, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        conns = connections(slapd, mark)
        opened = {c: lines for c, lines in conns.items()
                  if any(" ACCEPT " in l for l in lines)}
        if opened and all(any(" closed" in l for l in lines)
                          for lines in opened.values()):
            return opened
        assert time.monotonic() < deadline, "connections not closed: %r" % (
            conns,)
        time.sleep(0.1)


def unbound_before_closed(lines):
    closed = [l for l in lines if " closed" in l]
    return (any(" UNBIND" in l for l in lines)
            and not any("connection lost" in l for l in closed))


def test_connections_are_unbound_when_the_workers_stop(nginx_factory,
                                                       backend, slapd):
    mark = slapd.log_size()
    nginx = start_gateway(nginx_factory, NGINX_CONFIG, url=slapd.url,
                          backend_port=backend.port)
    port = nginx.port

    # two directories, several requests: connections in both workers'
    # threads, most likely
    for _ in range(4):
        assert sync(port, "search") == 200
        assert sync(port, "dn") == 200

    nginx.stop()

    opened = wait_all_closed(slapd, mark)
    assert len(opened) >= 2
    dropped = {c: lines for c, lines in opened.items()
               if not unbound_before_closed(lines)}
    assert dropped == {}


def test_a_reload_unbinds_the_old_workers_connections(nginx_factory,
                                                      backend, slapd):
    nginx = start_gateway(nginx_factory, NGINX_CONFIG, url=slapd.url,
                          backend_port=backend.port)
    port = nginx.port
    mark = slapd.log_size()

    for _ in range(4):
        assert sync(port, "search") == 200

    nginx.reload()

    # the old workers exit after the reload: their connections end with
    # an unbind; the new workers have none yet
    opened = wait_all_closed(slapd, mark)
    dropped = {c: lines for c, lines in opened.items()
               if not unbound_before_closed(lines)}
    assert dropped == {}
    assert sync(port, "search") == 200
