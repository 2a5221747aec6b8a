"""Issue 10, point 10: user enumeration by timing.  An unknown user must
cost what the strongest hash in the password file costs, not the hash of
whichever entry sorts first (a legacy {SHA} or $apr1$ line first made an
unknown name answer 40 times faster than a known one).

The test asserts which hash the unknown-user path verified against (the
debug line names its line in the file), never a duration; the timings
themselves are measured by bench/user-enumeration.sh."""

import base64
import os
import subprocess

import pytest

from eastest import confs
from eastest.nginx import free_port
from preauth_client import send_basic

QUERY = "?Cmd=Sync&User=u&DeviceId=DEV1&DeviceType=iPhone"

NGINX_CONFIG = confs.gateway(
    confs.eas_location(confs.PREAUTH_CACHED, """
        eas_preauth_user_file ${dir}/users;
        eas_preauth_lockout user=off address=off;
        """, proxy_pass=confs.DIRECT),
    zones=confs.AUTH_ZONE, upstream=None)


def tool(argv, password):
    return subprocess.run(argv + [password], stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()


def sha1_line(user, password):
    digest = subprocess.run(["openssl", "dgst", "-sha1", "-binary"],
                            input=password.encode(), stdout=subprocess.PIPE,
                            check=True).stdout
    return "%s:{SHA}%s" % (user, base64.b64encode(digest).decode())


def send(port, user, password):
    return send_basic(port, user, password, QUERY)


# The file's lines, in file order; the legacy ones sort first by name.
FILES = {
    "bcrypt-strongest": [
        ("aaa-legacy", lambda: sha1_line("aaa-legacy", "x")),
        ("abe", lambda: "abe:" + tool(["openssl", "passwd", "-apr1"], "y")),
        ("mid", lambda: "mid:" + tool(["mkpasswd", "-m", "sha-512"], "z")),
        ("zed", lambda: "zed:" + tool(["mkpasswd", "-m", "bcrypt", "-R",
                                       "8"], "w")),
        ("zoe", lambda: "zoe:" + tool(["mkpasswd", "-m", "bcrypt", "-R",
                                       "5"], "v")),
    ],
    "rounds-strongest": [
        ("aaa-legacy", lambda: "aaa-legacy:" + tool(["openssl", "passwd",
                                                     "-1"], "x")),
        ("bob", lambda: "bob:" + tool(["mkpasswd", "-m", "bcrypt", "-R",
                                       "5"], "y")),
        ("yan", lambda: "yan:" + tool(["mkpasswd", "-m", "sha-512",
                                       "-R", "200000"], "z")),
        ("zak", lambda: "zak:" + tool(["mkpasswd", "-m", "yescrypt",
                                       "-R", "3"], "w")),
    ],
    "yescrypt-strongest": [
        ("aaa-legacy", lambda: sha1_line("aaa-legacy", "x")),
        ("bob", lambda: "bob:" + tool(["mkpasswd", "-m", "bcrypt", "-R",
                                       "5"], "y")),
        ("yan", lambda: "yan:" + tool(["mkpasswd", "-m", "yescrypt"], "z")),
        ("zak", lambda: "zak:" + tool(["openssl", "passwd", "-6"], "w")),
    ],
}

STRONGEST = {"bcrypt-strongest": 4, "rounds-strongest": 3,
             "yescrypt-strongest": 3}


@pytest.mark.parametrize("case", sorted(FILES))
def test_unknown_user_costs_the_strongest_hash(nginx_factory, backend, case):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=port,
                          backend_port=backend.port)
    with open(os.path.join(nginx.dir, "users"), "w") as f:
        f.write("\n".join(make() for _, make in FILES[case]) + "\n")
    nginx.start(ports=(port,))

    mark = nginx.mark()
    assert send(port, "no-such-user", "guess").status == 401
    assert send(port, "aaa-legacy", "wrong").status == 401

    lines = [line for line in nginx.error_lines_since(mark)
             if "unknown user verified against" in line]
    assert len(lines) == 1, lines
    assert lines[0].endswith("costliest hash, line %d" % STRONGEST[case])

    # and nothing of it reached the backend
    assert backend.requests == []
