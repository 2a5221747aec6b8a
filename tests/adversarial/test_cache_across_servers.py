"""Issue 10, point 7: credentials cached across servers.  The subrequest
source used to be identified by its URI text alone, so two servers (or
two Hosts of one server) sharing a zone and a URI accepted each other's
cached logins, as the shipped configuration shares them (nginx.conf and
eas-legacy-server.conf include one eas-preauth.conf).

Each backend keeps its own password store and checks it again; a login
cached on one side must not pass on the other: the other side's backend
must see only the credential check (OPTIONS, refused), never the
command."""

import pytest

from eastest import ldap as directory
from eastest.backends import CredentialBackend
from eastest.nginx import free_port
from preauth_client import send_basic

QUERY = "?Cmd=Settings&User=jdoe&DeviceId=DEV1&DeviceType=iPhone"

# one shared include, as conf.example's eas-preauth.conf
PREAUTH = """
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth valid=1h invalid=1s;
            eas_preauth_lockout user=off address=off;
            eas_preauth_request /_eas_preauth;
"""


def server(port, names, upstream, extra=""):
    """A server with an EAS location and its check location, both sent
    to upstream."""
    return """
    server {
        listen 127.0.0.1:${%s};
        server_name %s;
        access_log ${dir}/auth.log auth;
        location /Microsoft-Server-ActiveSync {%s%s
            proxy_pass http://%s;
        }
        location = /_eas_preauth {
            internal;
            proxy_method OPTIONS;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_pass http://%s/Microsoft-Server-ActiveSync;
        }
    }
""" % (port, names, PREAUTH, extra, upstream, upstream)


NGINX_CONFIG = """
http {
    ${temp_paths}
    log_format auth '$server_port $host $status $eas_auth';
    eas_preauth_zone zone=auth:1m;

    upstream a { server 127.0.0.1:${a_port}; }
    upstream b { server 127.0.0.1:${b_port}; }
    upstream t { server 127.0.0.1:${t_port}; }
""" + server("port", "a.test", "a") + """
    # another name on the same address
""" + server("port", "b.test", "b") + """
    # the same name on another address (a legacy server)
""" + server("port2", "a.test", "b") + """
    # one server, two tenants told apart by the Host the check forwards
""" + server("port3", "a.test b.test", "t",
             "            proxy_set_header Host $host;") + """
}
"""

# (first port, first Host, backend), then the other side's
CASES = {
    "server-names": (("port", "a.test", "a"), ("port", "b.test", "b")),
    "listen-addresses": (("port", "a.test", "a"), ("port2", "a.test", "b")),
    "hosts": (("port3", "a.test", "t"), ("port3", "b.test", "t")),
}


def send(port, host, user, password):
    return send_basic(port, user, password, QUERY, host)


@pytest.fixture
def backends():
    started = {
        "a": CredentialBackend({None: {"jdoe": "pass-a"}}),
        "b": CredentialBackend({None: {"jdoe": "pass-b"}}),
        "t": CredentialBackend({"a.test": {"jdoe": "pass-a"},
                                "b.test": {"jdoe": "pass-b"}}),
    }
    for backend in started.values():
        backend.start()
    yield started
    for backend in started.values():
        backend.stop()


def gateway(nginx_factory, backends):
    ports = {"port": free_port(), "port2": free_port(),
             "port3": free_port()}
    nginx = nginx_factory(NGINX_CONFIG, listen=tuple(ports.values()),
                          a_port=backends["a"].port,
                          b_port=backends["b"].port,
                          t_port=backends["t"].port, **ports)
    return nginx, ports


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_login_cached_on_one_side_does_not_pass_on_the_other(
        nginx_factory, backends, case):
    nginx, ports = gateway(nginx_factory, backends)
    (port1, host1, name1), (port2, host2, name2) = CASES[case]

    # a-side: checked, cached, forwarded, then from the cache
    for _ in range(2):
        assert send(ports[port1], host1, "jdoe", "pass-a").status == 200

    # the other side: the same credentials are not that side's
    for backend in backends.values():
        backend.clear()
    refused = send(ports[port2], host2, "jdoe", "pass-a")

    assert refused.status == 401
    record = backends[name2].requests
    assert [r.method for r in record] == ["OPTIONS"], \
        [r.summary() for r in record]

    # and the other side's own password still works there
    assert send(ports[port2], host2, "jdoe", "pass-b").status == 200

    # (two workers may write their lines in either order)
    log = nginx.wait_for_access_log(4, name="auth.log")
    assert sorted(line.split()[-1] for line in log[:4]) == \
        ["cached", "invalid", "ok", "ok"]


def test_the_source_identity_survives_a_reload(nginx_factory, backends):
    """The zone survives a reload, and so does a cached answer of a source
    that did not change: the identity is made of the server's names and
    addresses and the URI, not of anything a reload renews."""
    nginx, ports = gateway(nginx_factory, backends)
    assert send(ports["port"], "a.test", "jdoe", "pass-a").status == 200
    nginx.reload()
    backends["a"].clear()

    assert send(ports["port"], "a.test", "jdoe", "pass-a").status == 200
    assert [r.method for r in backends["a"].requests] == ["POST"]
    lines = nginx.wait_for_access_log(2, name="auth.log")
    assert sorted(line.split()[-1] for line in lines[:2]) == \
        ["cached", "ok"]


# The directory source: the answer depends on the servers asked and where
# the user is looked up, not only on the directory's name, bind template,
# filter and group, which were all the key held.

LDAP_CONFIG = """
http {
    ${temp_paths}
    log_format auth '$status $eas_auth';
    eas_preauth_zone zone=auth:1m;
    eas_ldap_server corp url=${url} bind=uid=%u,ou=people,${suffix}
                    connect_timeout=1s timeout=1s;

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/auth.log auth;
        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth valid=1h;
            eas_preauth_lockout user=off address=off;
            eas_preauth_ldap corp;
            proxy_pass http://127.0.0.1:${backend_port};
        }
    }
}
"""


@pytest.mark.skipif(not directory.available(), reason="slapd not installed")
def test_a_directory_moved_elsewhere_does_not_reuse_answers(
        nginx_factory, backend, certs, tmp_path_factory):
    server = directory.Slapd(
        str(tmp_path_factory.mktemp("slapd")), certs,
        directory.base_entries([directory.person("jdoe", "secret")],
                               members=["jdoe"]))
    server.start()
    try:
        port = free_port()
        nginx = nginx_factory(LDAP_CONFIG, listen=(port,), port=port,
                              url=server.url, suffix=directory.SUFFIX,
                              backend_port=backend.port)
        assert send_basic(port, "jdoe", "secret", QUERY).status == 200

        # the same name, template and filter, another server (down)
        nginx.render(LDAP_CONFIG, port=port, suffix=directory.SUFFIX,
                     url="ldap://127.0.0.1:%d" % free_port(),
                     backend_port=backend.port)
        nginx.reload()
        backend.clear()
        refused = send_basic(port, "jdoe", "secret", QUERY)
    finally:
        server.stop()

    assert refused.status == 503            # asked, and it is down
    assert backend.requests == []
