"""The backend recipes of conf.example/ run against a backend on their
own path (issue 13.2): eas-sogo.conf against a SOGo-like backend that
serves ActiveSync only under /SOGo and checks credentials itself, and
eas-zpush.conf's Apache variant against PHP (php -S) reading the request
as Z-Push does.  The recipes are used as shipped: only what an admin
marks CHANGE (addresses, certificates, paths) is swapped."""

import contextlib
import dataclasses
import pathlib
import re
import shutil
import subprocess
import threading
import time

import pytest

from eastest.backends import CredentialBackend
from eastest.client import EasClient
from eastest.nginx import Nginx, free_port
from eastest.php import PhpBackend

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "conf.example"
USER, PASSWORD = "jdoe", "correct horse"
SOGO_PATH = "/SOGo/Microsoft-Server-ActiveSync"


class SogoLikeBackend(CredentialBackend):
    """ActiveSync under /SOGo only, credentials checked by the backend;
    an OPTIONS elsewhere gets SOGo's HTML page with 200 (CredentialBackend
    sogo_like).  Everything is recorded as received."""

    def _answer(self, request):
        if request.path.lower() != SOGO_PATH.lower():
            self.sogo_like = True
            try:
                return super()._answer(request)
            finally:
                self.sogo_like = False
        inner = dataclasses.replace(
            request, target=request.target[len("/SOGo"):])
        return super()._answer(inner)


def render(tmp_path, module_path, certs, recipe, swaps):
    """nginx.conf: the http block of conf.example/nginx.conf reduced to
    what the recipe's header says stays (log formats, zones), and the
    recipe included; returns (Nginx, public port)."""
    port = free_port()
    for path in EXAMPLE.glob("*.conf"):
        text = path.read_text()
        for pattern, replacement in swaps + [
                (r"listen 443 ", "listen 127.0.0.1:%d " % port),
                (r"/etc/nginx/ssl/\S+\.crt", certs.cert),
                (r"/etc/nginx/ssl/\S+\.key", certs.key),
                (r"/etc/nginx/eas-users\.htpasswd",
                 str(tmp_path / "users.htpasswd")),
                (r"/etc/nginx/((?!mime|fastcgi_params)[\w.-]+\.conf)",
                 r"%s/\1" % tmp_path),
                (r"/var/log/nginx/", "%s/" % tmp_path)]:
            text = re.sub(pattern, replacement, text)
        (tmp_path / path.name).write_text(text)
    nginx = Nginx(tmp_path, module_path)
    nginx.render("""
http {
    ${temp_paths}
    include ${dir}/eas-log-formats.conf;
    eas_preauth_zone zone=eas_auth:1m;
    eas_device_zone zone=eas_devices:1m;
    include ${dir}/%s;
}
""" % recipe)
    return nginx, port


def server_log(nginx):
    """The recipes' server { } logs to eas-error.log."""
    return (pathlib.Path(nginx.dir) / "eas-error.log").read_text()


def no_alerts(nginx):
    nginx.check_no_alerts()
    path = pathlib.Path(nginx.dir) / "eas-error.log"
    text = path.read_text() if path.exists() else ""
    assert not re.search(r"\[(alert|crit|emerg)\]", text), text


@contextlib.contextmanager
def serving(nginx, port, backend):
    """Start nginx; stop it and its backend at the end, whatever
    happened, then check both error logs."""
    try:
        nginx.start(ports=[port])
        yield nginx, backend, port
    finally:
        nginx.stop()
        backend.stop()
    no_alerts(nginx)


@pytest.fixture
def sogo(tmp_path, module_path, certs):
    backend = SogoLikeBackend({None: {USER: PASSWORD}})
    backend.start()
    nginx, port = render(tmp_path, module_path, certs, "eas-sogo.conf",
                         [(r"server 127\.0\.0\.1:20000;",
                           "server 127.0.0.1:%d;" % backend.port)])
    with serving(nginx, port, backend) as running:
        yield running


class Impostor(EasClient):
    """A device that also sends SOGo's trusted-proxy user header."""

    def __init__(self, *args, impostor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.impostor = impostor

    def _common_headers(self):
        headers = super()._common_headers()
        if self.impostor:
            headers.append(("x-webobjects-remote-user", self.impostor))
        return headers


def client(port, certs, password=PASSWORD, **kwargs):
    return Impostor("https://localhost:%d/Microsoft-Server-ActiveSync"
                     % port, user=USER, password=password, cafile=certs.ca,
                     **kwargs)


def test_sogo_recipe_reaches_sogos_path_with_its_headers(sogo, certs):
    nginx, backend, port = sogo
    # a phone (or an attacker) claiming to be someone else to SOGo
    phone = client(port, certs, impostor="ceo")
    reply = phone.foldersync()
    assert reply.status == 200, reply

    posts = [r for r in backend.requests if r.method == "POST"]
    assert len(posts) == 1
    post = posts[0]
    assert post.target.startswith(SOGO_PATH + "?"), post.target
    # the query travels untouched after the path is mapped
    assert post.target[len("/SOGo"):] == phone.target("FolderSync")
    assert post.header("Authorization") is not None
    assert post.header("x-webobjects-remote-user") is None
    assert post.header("x-webobjects-server-name") == "localhost"
    assert post.header("x-webobjects-server-port") == str(port)
    assert post.header("x-webobjects-server-url") == "https://localhost"
    assert post.header("x-webobjects-server-protocol") == "HTTP/1.0"
    assert post.header("x-webobjects-remote-host") == "127.0.0.1"
    # no keep-alive to sogod
    assert post.header("Connection") == "close"

    # the pre-authentication asked SOGo on SOGo's path, never the HTML
    # page of another path that answers 200 to anyone
    checks = [r for r in backend.requests if r.method == "OPTIONS"]
    assert checks and all(r.path == SOGO_PATH for r in checks)
    assert all(r.header("x-webobjects-remote-user") is None for r in checks)


def test_sogo_recipe_refuses_a_wrong_password_at_the_edge(sogo, certs):
    nginx, backend, port = sogo
    reply = client(port, certs, password="wrong").foldersync()
    assert reply.status == 401
    assert not [r for r in backend.requests if r.method == "POST"]
    assert 'eas: preauth refused: invalid password for user "jdoe"' \
        in server_log(nginx)


def test_sogo_recipe_holds_a_ping_woken_by_new_mail(sogo, certs):
    nginx, backend, port = sogo
    phone = client(port, certs)
    assert phone.foldersync().status == 200
    result = {}

    def held():
        result["reply"] = phone.ping(heartbeat=300, timeout=60)

    thread = threading.Thread(target=held)
    thread.start()
    # the Ping reached SOGo's path and is held; then new mail arrives
    deadline = time.monotonic() + 10
    while not any("Cmd=Ping" in r.target for r in backend.requests):
        assert time.monotonic() < deadline, "the Ping never reached SOGo"
        time.sleep(0.02)
    backend.notify("5")
    thread.join(60)
    assert not thread.is_alive()
    reply = result["reply"]
    assert reply.status == 200
    assert reply.eas_status() == 2


@pytest.fixture
def zpush(tmp_path, module_path, certs):
    php = PhpBackend(tmp_path / "php")
    php.start()
    (tmp_path / "users.htpasswd").write_text(
        "%s:%s\n" % (USER, _apr1(PASSWORD)))
    # the recipe's Apache variant: its commented proxy_pass replaces the
    # php-fpm lines, as the file tells the reader to do
    nginx, port = render(tmp_path, module_path, certs, "eas-zpush.conf", [
        (r"(?m)^(\s*)(fastcgi_\w+|client_max_body_size"
         r"|include /etc/nginx/fastcgi_params)\b.*$",
         r"\1# \2"),
        (r"(?m)^(\s*)# (include /etc/nginx/eas-proxy\.conf;)", r"\1\2"),
        (r"(?m)^(\s*)# proxy_pass http://127\.0\.0\.1:8080;",
         r"\1proxy_pass http://127.0.0.1:%d;" % php.port),
    ])
    with serving(nginx, port, php) as running:
        yield running


def _apr1(password):
    return subprocess.run(["openssl", "passwd", "-apr1", password],
                          check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def test_zpush_recipe_reaches_php_as_zpush_reads_it(zpush, certs):
    nginx, php, port = zpush
    phone = client(port, certs, device_id="androidc42",
                   device_type="Android")
    assert phone.foldersync().status == 200
    assert client(port, certs, password="wrong").foldersync().status == 401

    records = php.records()
    assert len(records) == 1, records
    assert records[0]["method"] == "POST"
    assert records[0]["fields"] == {"Cmd": "FolderSync", "User": USER,
                                    "DeviceId": "androidc42",
                                    "DeviceType": "Android"}


def test_zpush_recipe_as_shipped_uses_php_fpm():
    text = (EXAMPLE / "eas-zpush.conf").read_text()
    assert re.search(r"(?m)^\s*fastcgi_pass eas_zpush_fpm;", text)
    assert re.search(r"(?m)^\s*fastcgi_param SCRIPT_FILENAME "
                     r"/usr/share/z-push/index\.php;", text)
    assert shutil.which("php"), "php-cli is needed (tools/install-deps.sh)"


def test_exchange_recipe_over_verified_tls(tmp_path, module_path, certs):
    backend = CredentialBackend({None: {USER: PASSWORD}},
                                tls_cert=certs.cert, tls_key=certs.key)
    backend.start()
    nginx, port = render(tmp_path, module_path, certs, "eas-exchange.conf", [
        (r"server 192\.0\.2\.1[12]:443", "server 127.0.0.1:%d"
         % backend.port),
        (r"exchange\.internal\.example\.org", "localhost"),
        (r"/etc/ssl/certs/ca-certificates\.crt", certs.ca),
    ])
    with serving(nginx, port, backend):
        assert client(port, certs).foldersync().status == 200
        assert client(port, certs, password="wrong").foldersync().status \
            == 401
        posts = [r for r in backend.requests if r.method == "POST"]
        assert len(posts) == 1
        assert posts[0].path == "/Microsoft-Server-ActiveSync"
        # the pre-authentication asked Exchange with an OPTIONS
        assert [r.method for r in backend.requests].count("OPTIONS") == 2
