"""The service account's password read from a file
(eas_ldap_server ... bind_password_file=), so that nginx.conf, which
Debian leaves world-readable, need not hold it: read by the master at
start and at every reload, the line end stripped, checked at nginx -t,
never written to a log.  Against a real slapd on loopback."""

import os

import pytest

from eastest import confs
from eastest import ldap as directory
from eastest.nginx import free_port
from eastest.waiting import poll

BASE = directory.SUFFIX

pytestmark = pytest.mark.skipif(not directory.available(),
                                reason="slapd not installed: make deps")

NGINX_CONFIG = confs.gateway(
    confs.eas_location(confs.PREAUTH_UNCACHED, "eas_preauth_ldap ad;",
                       path="/s/", proxy_pass=confs.DIRECT + "/"),
    zones=[confs.AUTH_ZONE, """
    eas_ldap_server ad url=${url} base=""" + BASE + """
                    filter=(sAMAccountName=%u)
                    bind_dn=""" + directory.SERVICE_DN + """
                    bind_password_file=${dir}/bind.secret retry=1s;
    """], upstream=None)


slapd = directory.slapd_fixture()


def write_secret(nginx, data):
    path = os.path.join(nginx.dir, "bind.secret")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def gateway(nginx_factory, slapd, backend, secret):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=port, url=slapd.url,
                          backend_port=backend.port)
    write_secret(nginx, secret)
    nginx.port = port
    return nginx


def sync(nginx, user="jdoe", password="secret"):
    return directory.sync(nginx.port, "s", user, password)


@pytest.mark.parametrize("secret", [
    directory.SERVICE_PASSWORD.encode() + b"\n",
    directory.SERVICE_PASSWORD.encode() + b"\r\n",
    directory.SERVICE_PASSWORD.encode(),
], ids=["lf", "crlf", "no-line-end"])
def test_the_service_account_binds_with_the_password_from_the_file(
        nginx_factory, slapd, backend, secret):
    nginx = gateway(nginx_factory, slapd, backend, secret)
    nginx.start(ports=(nginx.port,))

    assert sync(nginx).status == 200
    assert sync(nginx, password="wrong").status == 401
    assert len(backend.requests) == 1
    assert directory.SERVICE_PASSWORD not in nginx.error_log()


def test_a_reload_reads_the_file_again(nginx_factory, slapd, backend):
    nginx = gateway(nginx_factory, slapd, backend, b"not-the-password\n")
    nginx.start(ports=(nginx.port,))

    # the service account cannot bind: the directory is down
    assert sync(nginx).status == 503
    assert backend.requests == []

    write_secret(nginx, directory.SERVICE_PASSWORD.encode() + b"\n")
    nginx.reload()

    # a reload keeps the directory's "down" state: it is asked again
    # after retry=1s, with the password the reload read
    poll(lambda: sync(nginx).status == 200, "200 after the reload",
         interval=0.2)
    assert "not-the-password" not in nginx.error_log()
    assert directory.SERVICE_PASSWORD not in nginx.error_log()


BAD_FILES = [
    # file contents (None: no file), message
    (None, 'open() "%s" failed'),
    (b"", "must hold the password on one line"),
    (b"\n", "must hold the password on one line"),
    (b"one\ntwo\n", "must hold the password on one line"),
    (b"nul\0byte\n", "must hold the password on one line"),
    (b"x" * 1025, "must hold the password on one line"),
]


@pytest.mark.parametrize("content,message", BAD_FILES,
                         ids=["missing", "empty", "empty-line", "two-lines",
                              "nul", "too-long"])
def test_an_unusable_file_fails_nginx_t(nginx_factory, slapd, backend,
                                        content, message):
    nginx = gateway(nginx_factory, slapd, backend, b"")
    path = os.path.join(nginx.dir, "bind.secret")
    os.unlink(path)
    if content is not None:
        write_secret(nginx, content)
    output = nginx.config_error()

    assert (message % path if "%s" in message else message) in output
    assert "bind_password_file" in output or "eas_ldap_server" in output


TWO_PASSWORDS = [
    "bind_password=inline-secret bind_password_file=${dir}/bind.secret",
    "bind_password_file=${dir}/bind.secret bind_password=inline-secret",
]


@pytest.mark.parametrize("params", TWO_PASSWORDS,
                         ids=["text-then-file", "file-then-text"])
def test_two_passwords_fail_nginx_t_without_showing_them(nginx_factory,
                                                         params):
    config = ("http {\n ${temp_paths}\n eas_ldap_server d url=ldap://x "
              "base=o filter=(uid=%u) bind_dn=cn=a " + params + ";\n}\n")
    nginx = nginx_factory(config, start=False)
    write_secret(nginx, b"file-secret\n")
    output = nginx.config_error()

    assert "duplicate bind password" in output
    assert "eas_ldap_server" in output
    assert "inline-secret" not in output and "file-secret" not in output


def test_bind_dn_without_any_password_fails_nginx_t(nginx_factory):
    nginx = nginx_factory("http {\n ${temp_paths}\n eas_ldap_server d "
                          "url=ldap://x base=o filter=(uid=%u) "
                          "bind_dn=cn=a;\n}\n", start=False)
    output = nginx.config_error()

    assert ('"bind_dn" needs "bind_password" or "bind_password_file"'
            in output)
