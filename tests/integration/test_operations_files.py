"""The ready-made operations files of conf.example/: the log formats name
every $eas_* variable; the fail2ban filter matches, with fail2ban's own
fail2ban-regex, the lines a real gateway writes for failed logins and
only those, banning the address that failed; the Prometheus scrape
config and alerting rules pass promtool check, and the rules pass their
unit tests (promtool test rules)."""

import base64
import http.client
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from eastest import wbxml
from eastest.backends import EasBackend
from eastest.nginx import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "conf.example"
HERE = pathlib.Path(__file__).resolve().parent


def variables_documented():
    text = (ROOT / "docs" / "variables.md").read_text()
    return set(re.findall(r"^\| `\$(eas_[a-z_]+)` \|", text, re.M))


def variables_defined():
    text = (ROOT / "ngx_eas_module" / "ngx_http_eas_variables.c").read_text()
    return set(re.findall(r'"(eas_[a-z_]+)"', text))


def test_log_formats_name_every_variable():
    defined = variables_defined()
    assert defined == variables_documented()
    text = (EXAMPLE / "eas-log-formats.conf").read_text()
    formats = re.split(r"^log_format ", text, flags=re.M)[1:]
    assert [f.split()[0] for f in formats] == ["eas_text", "eas_json"]
    for body in formats:
        used = set(re.findall(r"\$(eas_[a-z_]+)", body))
        assert used == defined, (body.split()[0], defined - used)


NGINX_CONFIG = """
http {
    ${temp_paths}

    include ${example}/eas-fail2ban.conf;

    eas_preauth_zone zone=auth:1m;

    server {
        listen 127.0.0.1:${port};
        listen 127.0.0.2:${port};

        access_log ${dir}/eas-auth-failures.log eas_fail2ban
                   if=$eas_auth_failed;

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file ${dir}/users plain;
            eas_preauth_lockout user=off address=2 window=1m time=1m;
            proxy_pass http://127.0.0.1:${backend_port};
        }
    }
}
"""


def login(port, source, user, password):
    conn = http.client.HTTPConnection(source, port, timeout=10,
                                      source_address=(source, 0))
    body = wbxml.encode(("FolderHierarchy:FolderSync", [
        ("FolderHierarchy:SyncKey", "0")]))
    headers = {"MS-ASProtocolVersion": "14.1",
               "Content-Type": "application/vnd.ms-sync.wbxml"}
    if password is not None:
        token = base64.b64encode(("%s:%s" % (user, password)).encode())
        headers["Authorization"] = "Basic " + token.decode()
    conn.request("POST", "/Microsoft-Server-ActiveSync?Cmd=FolderSync"
                 "&User=%s&DeviceId=Dev1&DeviceType=iPhone" % user,
                 body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.fixture
def gateway(nginx_factory):
    with EasBackend(hold_cap=0) as backend:
        port = free_port()
        nginx = nginx_factory(NGINX_CONFIG, start=False, port=port,
                              example=str(EXAMPLE),
                              backend_port=backend.port)
        with open(os.path.join(nginx.dir, "users"), "w") as f:
            f.write("jdoe:{PLAIN}secret\n")
        nginx.start(ports=(port,))
        nginx.port = port
        yield nginx


def test_fail2ban_bans_the_address_that_fails(gateway):
    # the attacker: wrong passwords, then refused as locked out
    statuses = [login(gateway.port, "127.0.0.2", "jdoe", "guess%d" % i)
                for i in range(4)]
    assert statuses == [401, 401, 401, 401]
    # a good user elsewhere, and a first request without credentials
    # (what every phone sends first): never a failure
    assert login(gateway.port, "127.0.0.1", "jdoe", "secret") == 200
    assert login(gateway.port, "127.0.0.1", "jdoe", None) == 401

    lines = gateway.wait_for_access_log(4, name="eas-auth-failures.log")
    assert len(lines) == 4, lines
    assert [l.split()[2] for l in lines] == ["eas_auth=invalid"] * 2 \
        + ["eas_auth=locked"] * 2

    fail2ban_regex = shutil.which("fail2ban-regex")
    assert fail2ban_regex, "fail2ban-regex missing: install Debian's fail2ban"
    run = subprocess.run(
        [fail2ban_regex, "--print-all-matched",
         os.path.join(gateway.dir, "eas-auth-failures.log"),
         str(EXAMPLE / "fail2ban" / "filter.d" / "nginx-eas.conf")],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^Failregex: 4 total", run.stdout, re.M), run.stdout
    assert re.search(r"^Lines: 4 lines, 0 ignored, 4 matched, 0 missed",
                     run.stdout, re.M), run.stdout
    assert re.findall(r"127\.0\.0\.\d", "\n".join(
        line for line in run.stdout.splitlines() if "eas_auth=" in line)) \
        == ["127.0.0.2"] * 4, run.stdout


def test_fail2ban_jail_names_the_filter_and_log():
    jail = (EXAMPLE / "fail2ban" / "jail.d" / "nginx-eas.conf").read_text()
    assert re.search(r"^filter\s*=\s*nginx-eas$", jail, re.M)
    assert re.search(r"^logpath\s*=\s*/var/log/nginx/eas-auth-failures.log$",
                     jail, re.M)



def test_fail2ban_reads_the_jail_and_filter(tmp_path):
    """fail2ban's own client parses Debian's configuration with our jail
    and filter added (-c a private copy, -d dumps what it would run)."""
    fail2ban_client = shutil.which("fail2ban-client")
    assert fail2ban_client, "fail2ban-client missing: install fail2ban"
    confdir = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", confdir)
    for kind in ("filter.d", "jail.d"):
        for path in (EXAMPLE / "fail2ban" / kind).iterdir():
            shutil.copy(path, confdir / kind / path.name)
    log = tmp_path / "eas-auth-failures.log"
    log.write_text("")
    jail = (confdir / "jail.d" / "nginx-eas.conf").read_text()
    (confdir / "jail.d" / "nginx-eas.conf").write_text(
        jail.replace("/var/log/nginx/eas-auth-failures.log", str(log)))
    # only our jail: Debian enables sshd by default
    (confdir / "jail.d" / "zz-only-eas.local").write_text(
        "[sshd]\nenabled = false\n")
    run = subprocess.run([fail2ban_client, "-c", str(confdir), "-d"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "'add', 'nginx-eas'" in run.stdout, run.stdout
    assert "eas_auth=(?:invalid|locked)" in run.stdout, run.stdout
    assert "'maxretry', 30" in run.stdout, run.stdout


def promtool(*args, cwd=None):
    binary = shutil.which("promtool")
    assert binary, "promtool missing: install Debian's prometheus"
    run = subprocess.run([binary] + list(args), capture_output=True,
                         text=True, timeout=60, cwd=cwd)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def test_alerting_rules_pass_promtool():
    out = promtool("check", "rules",
                   str(EXAMPLE / "prometheus" / "eas-alerts.yml"))
    assert "SUCCESS: 5 rules found" in out


def test_scrape_config_passes_promtool():
    out = promtool("check", "config", "prometheus-eas.yml",
                   cwd=str(EXAMPLE / "prometheus"))
    assert "is valid prometheus config file syntax" in out


def test_alerting_rules_pass_their_unit_tests():
    out = promtool("test", "rules", "eas-alerts.test.yml", cwd=str(HERE))
    assert "SUCCESS" in out
