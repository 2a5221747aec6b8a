"""Issue 11, point 6: the password-file permission trap.  The master reads
eas_preauth_user_file as root at start; a worker re-reads it as the
configured user when it changes.  A file only root can read kept its old
contents (the old password kept working) with nothing but a log line.
Now: nginx -t warns that the worker user cannot read it, the failure to
re-read is logged once per change, $eas_auth_source_state says "stale",
and fixing the mode (a chmod alone) is noticed."""

import grp
import os
import subprocess
import time

import pytest

from eastest.client import EasClient
from eastest import confs
from eastest.nginx import free_port

EAS = "/Microsoft-Server-ActiveSync"

NGINX_CONFIG = confs.gateway(
    "access_log ${dir}/auth.log auth;",
    confs.eas_location("""
        eas_preauth "ActiveSync";
        eas_preauth_cache zone=auth valid=1s invalid=1s;
        eas_preauth_user_file ${dir}/users;
        eas_preauth_lockout user=off address=off;
        """, proxy_pass=confs.DIRECT),
    http="log_format auth '$status $eas_auth ${state}';",
    zones=confs.AUTH_ZONE, upstream=None)

WARNING = ('eas_preauth_user_file "%s" cannot be read by the worker user '
           '"nobody"')


def htpasswd(user, password):
    return subprocess.run(["htpasswd", "-nbB", "-C", "4", user, password],
                          stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()


def write_users(path, line, mode):
    """A new file renamed over the old one, as an admin's tools do."""
    with open(path + ".tmp", "w") as f:
        f.write(line + "\n")
    os.chown(path + ".tmp", 0, 0)
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)


@pytest.fixture
def unprivileged(request, nginx_factory, backend):
    """nginx whose workers run as nobody, as Debian's run as www-data."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run workers as another user")
    # the nginx -t test runs on the code before the variable too
    state = ("-" if "nginx_t" in request.node.name
             else "$eas_auth_source_state")
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=port,
                          backend_port=backend.port, state=state)
    with open(nginx.conf_path) as f:
        text = f.read()
    with open(nginx.conf_path, "w") as f:
        f.write(text.replace("user root;", "user nobody nogroup;"))
    nginx.port = port
    nginx.users = os.path.join(nginx.dir, "users")
    return nginx


def send(nginx, password):
    client = EasClient("http://127.0.0.1:%d%s" % (nginx.port, EAS),
                       user="jdoe", password=password)
    return client.command("Settings", b"").status


def test_nginx_t_warns_when_the_worker_user_cannot_read_it(unprivileged):
    write_users(unprivileged.users, htpasswd("jdoe", "old"), 0o600)

    code, output = unprivileged.test_config()
    assert code == 0, output
    assert "[warn]" in output and WARNING % unprivileged.users in output
    assert "group \"nogroup\", mode 0640" in output

    # owned by the worker user's group, mode 0640: no warning
    os.chown(unprivileged.users, 0, grp.getgrnam("nogroup").gr_gid)
    os.chmod(unprivileged.users, 0o640)
    code, output = unprivileged.test_config()
    assert code == 0, output
    assert "cannot be read by the worker user" not in output


def test_a_file_that_cannot_be_read_again_is_visible(unprivileged, backend):
    nginx = unprivileged
    write_users(nginx.users, htpasswd("jdoe", "old"), 0o600)
    nginx.start(ports=(nginx.port,))
    assert send(nginx, "old") == 200

    mark = nginx.mark()
    write_users(nginx.users, htpasswd("jdoe", "new"), 0o600)

    # each worker tries once a second; the old table stays in use, and
    # says so in $eas_auth_source_state
    def states():
        return [line.split()[-1] for line in nginx.access_log("auth.log")]

    deadline = time.monotonic() + 30
    while "stale" not in states():
        assert time.monotonic() < deadline, "never stale: %s" % states()
        assert send(nginx, "old") in (200, 401)
        time.sleep(0.05)

    # more requests over more than two re-read periods: no more errors
    until = time.monotonic() + 2.5
    while time.monotonic() < until:
        send(nginx, "old")
        time.sleep(0.1)
    errors = [line for line in nginx.error_lines_since(mark)
              if nginx.users in line and "[error]" in line]
    assert 1 <= len(errors) <= nginx.worker_processes, errors
    assert all("Permission denied" in line
               and "keeps the previous contents" in line for line in errors)

    # the admin fixes the mode (a chmod changes no byte of it): seen
    os.chown(nginx.users, 0, grp.getgrnam("nogroup").gr_gid)
    os.chmod(nginx.users, 0o640)
    deadline = time.monotonic() + 30
    while send(nginx, "new") != 200:
        assert time.monotonic() < deadline, "the fixed file was not re-read"
        time.sleep(0.1)
    while states()[-1] != "ok":
        assert time.monotonic() < deadline, states()[-5:]
        send(nginx, "new")
        time.sleep(0.05)
