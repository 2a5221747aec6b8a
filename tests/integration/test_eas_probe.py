"""tools/eas-probe against a real gateway: each broken setup gets the
verdict, the summary and the exit status an admin should see.

The gateway is nginx with the module (TLS, Basic pre-authentication from
an htpasswd file, DirectPush with a short heartbeat range so the held Ping
takes seconds), in front of the backend simulator; the probe runs as the
admin would run it, as a command, with --json."""

import json
import os
import subprocess
import sys

import pytest

from eastest.backends import EasBackend
from eastest.certs import issue_cert
from eastest.nginx import free_port

EAS = "/Microsoft-Server-ActiveSync"

GATEWAY = """
http {
    ${temp_paths}
    eas_preauth_zone zone=auth:1m;

    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${cert};
        ssl_certificate_key ${key};

        location /Microsoft-Server-ActiveSync {
            eas on;
            eas_preauth "ActiveSync";
            eas_preauth_cache zone=auth;
            eas_preauth_user_file ${dir}/users;
            eas_longpoll on;
            eas_heartbeat_min 2s;
            eas_heartbeat_max 30s;
            proxy_read_timeout ${read_timeout};
            proxy_pass http://127.0.0.1:${backend_port};
        }
    }
}
"""

# a second nginx in front that cuts every request after a few seconds,
# as a load balancer with a short idle timeout does
CUTTING_FRONT = """
http {
    ${temp_paths}

    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${cert};
        ssl_certificate_key ${key};

        location / {
            proxy_read_timeout 4s;
            proxy_ssl_verify off;
            proxy_pass https://127.0.0.1:${gateway_port};
        }
    }
}
"""


def probe(port, *args, host="localhost", timeout=120):
    command = [sys.executable, os.path.join(
        os.path.dirname(__file__), os.pardir, os.pardir, "tools",
        "eas-probe"), "https://%s:%d" % (host, port), "--json", *args]
    result = subprocess.run(command, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout)
    assert result.stderr == b"", result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["exit_status"] == result.returncode
    return report


def verdicts(report):
    return {check["check"]: check["verdict"] for check in report["checks"]}


def check(report, name):
    return next(c for c in report["checks"] if c["check"] == name)


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text("secret\n")
    return str(path)


@pytest.fixture
def gateway(nginx_factory, backend, certs):
    """Start a gateway; returns start(cert=..., key=...) -> port."""

    def start(cert=certs.cert, key=certs.key, read_timeout="60s",
              backend_port=None):
        port = free_port()
        nginx = nginx_factory(
            GATEWAY, start=False, port=port, cert=cert, key=key,
            read_timeout=read_timeout,
            backend_port=backend_port or backend.port)
        users = subprocess.run(
            ["htpasswd", "-nbB", "-C", "4", "jdoe", "secret"],
            stdout=subprocess.PIPE, check=True).stdout
        with open(os.path.join(nginx.dir, "users"), "wb") as f:
            f.write(users.strip() + b"\n")
        nginx.start(ports=[port])
        return port

    return start


def test_healthy_setup_is_all_good(gateway, certs, password_file, backend):
    port = gateway()
    report = probe(port, "--ca", certs.ca, "--user", "jdoe",
                   "--password-file", password_file, "--heartbeat", "3")

    got = verdicts(report)
    assert report["exit_status"] == 0, json.dumps(report["checks"], indent=1)
    for name in ("dns", "tcp", "tls", "certificate", "expiry", "name",
                 "http", "options", "provision", "foldersync", "sync",
                 "base64-form", "push-range", "push"):
        assert got[name] in ("ok", "info"), (name, report)
    assert check(report, "push-range")["details"] == {"minimum": 2,
                                                      "maximum": 30}
    assert check(report, "push")["details"]["held"] >= 3
    assert check(report, "options")["details"]["protocol"] == "16.1"
    # the probe spoke both query forms and went all the way to the Ping
    commands = [r.eas.command for r in backend.requests]
    assert {"Provision", "FolderSync", "Sync", "Ping"} <= set(commands)
    assert any(r.eas.form == "base64" for r in backend.requests)


def test_incomplete_chain(gateway, certs, tmp_path):
    intermediate, intermediate_key = issue_cert(
        tmp_path, "intermediate", certs.ca, certs.ca_key,
        names=("ngx_eas test intermediate",), is_ca=True)
    leaf, leaf_key = issue_cert(tmp_path, "leaf", intermediate,
                                intermediate_key)
    port = gateway(cert=leaf, key=leaf_key)     # the leaf alone

    report = probe(port, "--ca", certs.ca)

    assert report["exit_status"] == 2
    chain = check(report, "certificate")
    assert chain["verdict"] == "failure"
    assert chain["summary"].startswith("incomplete chain")
    assert "intermediate" in chain["fix"]

    # the same certificate with its intermediate appended passes
    full = tmp_path / "fullchain.pem"
    full.write_text(open(leaf).read() + open(intermediate).read())
    report = probe(gateway(cert=str(full), key=leaf_key), "--ca", certs.ca)
    assert check(report, "certificate")["verdict"] in ("ok", "info")


def test_expired_certificate(gateway, certs, tmp_path):
    cert, key = issue_cert(tmp_path, "expired", certs.ca, certs.ca_key,
                           start="20200101000000Z", end="20200201000000Z")
    report = probe(gateway(cert=cert, key=key), "--ca", certs.ca)

    expiry = check(report, "expiry")
    assert report["exit_status"] == 2
    assert expiry["verdict"] == "failure"
    assert "expired on 2020-02-01" in expiry["summary"]
    assert "0x80072F05" in expiry["fix"]


def test_wrong_name(gateway, certs, tmp_path):
    cert, key = issue_cert(tmp_path, "other", certs.ca, certs.ca_key,
                           names=("mail.other.example",))
    report = probe(gateway(cert=cert, key=key), "--ca", certs.ca)

    name = check(report, "name")
    assert report["exit_status"] == 2
    assert name["verdict"] == "failure"
    assert "not valid for localhost" in name["summary"]
    assert check(report, "certificate")["verdict"] in ("ok", "info")


def test_proxy_that_cuts_long_requests(gateway, certs, password_file,
                                       nginx_factory):
    gateway_port = gateway()
    front_port = free_port()
    nginx_factory(CUTTING_FRONT, listen=[front_port], port=front_port,
                  gateway_port=gateway_port, cert=certs.cert, key=certs.key)

    report = probe(front_port, "--ca", certs.ca, "--user", "jdoe",
                   "--password-file", password_file, "--heartbeat", "10")

    push = check(report, "push")
    assert report["exit_status"] == 2
    assert push["verdict"] == "failure"
    assert push["summary"].startswith("a Ping of 10 s was cut after")
    assert "HTTP 504" in push["summary"]
    assert 3.5 <= push["details"]["cut_after"] < 9, push
    # everything short still worked through the same front
    assert verdicts(report)["foldersync"] == "ok"


def test_wrong_credentials(gateway, certs, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    report = probe(gateway(), "--ca", certs.ca, "--user", "jdoe",
                   "--password-file", str(wrong), "--no-push")

    options = check(report, "options")
    assert report["exit_status"] == 2
    assert options["verdict"] == "failure"
    assert options["summary"] == "credentials refused (401)"
    assert verdicts(report)["http"] == "ok"


class ProvisionLoopBackend(EasBackend):
    """A backend that answers 449 to every command but Provision, even
    with the policy key it handed out."""

    def _answer(self, request):
        if request.method == "POST" and request.eas.command != "Provision":
            return 449, [], b""
        return super()._answer(request)


def test_backend_that_wants_provisioning_forever(gateway, certs,
                                                  password_file):
    with ProvisionLoopBackend() as looping:
        port = gateway(backend_port=looping.port)
        report = probe(port, "--ca", certs.ca, "--user", "jdoe",
                       "--password-file", password_file)

        foldersync = check(report, "foldersync")
        assert report["exit_status"] == 2
        assert verdicts(report)["provision"] == "ok"
        assert foldersync["verdict"] == "failure"
        assert "449" in foldersync["summary"]
        assert "right after a complete Provision exchange" in \
            foldersync["summary"]
        # the policy key the backend gave went with the FolderSync
        folder_syncs = [r for r in looping.requests
                        if r.eas.command == "FolderSync"]
        assert folder_syncs and folder_syncs[0].header("X-MS-PolicyKey")


def test_human_report_and_exit_status(gateway, certs):
    port = gateway()
    result = subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), os.pardir,
                                      os.pardir, "tools", "eas-probe"),
         "https://localhost:%d" % port, "--ca", certs.ca],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, timeout=60)
    text = result.stdout.decode()
    assert result.returncode == 0, text
    assert "[ok  ] http" in text
    assert "asks for credentials: 401" in text
    assert text.rstrip().endswith("all good")
