"""conf.example/ is what admins copy: it must pass "nginx -t" as shipped
(only paths, addresses and certificates swapped for throwaway ones) and
must actually publish ActiveSync: modern TLS for phones, the legacy TLS 1.0
server for Windows Mobile 6 era devices, the log formats."""

import base64
import json
import pathlib
import re
import resource
import shutil
import socket
import ssl

import pytest

from eastest import wbxml
from eastest.backends import EasBackend
from eastest.client import EasClient, raw_http
from eastest.nginx import Nginx, free_port
from eastest.waiting import log_line, logged

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "conf.example"


def adapt(texts, work, module_path, certs, ports, legacy):
    """The substitutions an admin makes (marked CHANGE in the files), plus
    what a test run needs: everything under work/, only 127.0.0.1."""
    swaps = [
        (r"load_module \S+;",
         "load_module %s;\n"
         "daemon off;\npid %s/nginx.pid;\n"
         "error_log %s/error.log info;" % (module_path, work, work)),
        (r"(?m)^user www-data;", "user root;"),
        (r"worker_processes auto;", "worker_processes 2;"),
        # a test machine may not let even root raise the hard limit
        (r"worker_rlimit_nofile \d+;", "worker_rlimit_nofile %d;"
         % resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        (r"(?m)^http \{",
         "http {\n    client_body_temp_path %s/body;\n"
         "    proxy_temp_path %s/proxy;\n    fastcgi_temp_path %s/fastcgi;\n"
         "    uwsgi_temp_path %s/uwsgi;\n    scgi_temp_path %s/scgi;"
         % ((work,) * 5)),
        (r"/etc/nginx/ssl/\S+\.crt", certs.cert),
        (r"/etc/nginx/ssl/\S+\.key", certs.key),
        (r"/etc/nginx/((?!mime)[\w.-]+\.conf)", r"%s/\1" % work),
        (r"/var/log/nginx/", "%s/" % work),
        (r"listen 443 ", "listen 127.0.0.1:%d " % ports["modern"]),
        (r"listen 192\.0\.2\.20:443 ", "listen 127.0.0.1:%d "
         % ports["legacy"]),
        (r"server 192\.0\.2\.10:443;", "server 127.0.0.1:%d;"
         % ports["backend"]),
        (r"/etc/ssl/certs/ca-certificates\.crt", certs.ca),
        (r"exchange\.internal\.example\.org", "localhost"),
    ]
    if legacy:
        swaps.append((r"# (include \S+eas-legacy-server\.conf;)", r"\1"))
    for pattern, replacement in swaps:
        found = 0
        for name in texts:
            texts[name], count = re.subn(pattern, replacement, texts[name])
            found += count
        assert found, "conf.example no longer has %r" % pattern
    return texts


@pytest.fixture
def example(tmp_path, module_path, certs):
    def make(legacy):
        work = tmp_path / ("legacy" if legacy else "modern")
        work.mkdir()
        ports = dict(modern=free_port(), legacy=free_port(),
                     backend=free_port())
        texts = {path.name: path.read_text()
                 for path in EXAMPLE.glob("*.conf")}
        adapt(texts, work, module_path, certs, ports, legacy)
        for name, text in texts.items():
            (work / name).write_text(text)
        nginx = Nginx(work, module_path)
        nginx.ports = ports
        return nginx

    instances = []

    def tracked(legacy=False):
        instances.append(make(legacy))
        return instances[-1]

    yield tracked
    for nginx in instances:
        nginx.stop()
        nginx.check_no_alerts()


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "+legacy"])
def test_example_passes_nginx_t(example, legacy):
    nginx = example(legacy)

    rc, output = nginx.test_config()

    assert rc == 0, output
    assert "test is successful" in output


def tls_handshake(port, version, ciphers=None, cafile=None):
    """Handshake like an old device: one protocol version, no SNI."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile)
    context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(sock)


# TLS 1.0 is what the old devices speak: the deprecation is the point
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_example_publishes_activesync(example, certs, shared_backend):
    nginx = example(legacy=True)
    backend = shared_backend(nginx.ports["backend"])
    nginx.start(ports=(nginx.ports["modern"], nginx.ports["legacy"]))

    # a current phone over TLS 1.2+, to an HTTPS backend whose
    # certificate nginx verifies
    phone = EasClient("https://localhost:%d" % nginx.ports["modern"],
                      user="jdoe", password="secret", protocol="16.1",
                      cafile=certs.ca)
    assert phone.options().status == 200
    assert phone.foldersync().eas_status() == 1

    # no credentials: refused at the edge, the backend never sees it
    stranger = EasClient("https://localhost:%d" % nginx.ports["modern"],
                         protocol="16.1", cafile=certs.ca)
    refused = stranger.options()
    assert refused.status == 401
    assert refused.header("WWW-Authenticate") == 'Basic realm="ActiveSync"'

    # the modern server offers nothing below TLS 1.2
    with pytest.raises(ssl.SSLError):
        tls_handshake(nginx.ports["modern"], ssl.TLSVersion.TLSv1,
                      "AES128-SHA:@SECLEVEL=0", certs.ca)

    # a Windows Mobile 6 device: TLS 1.0, RSA key exchange, AES128-SHA,
    # no SNI, to the legacy server
    with tls_handshake(nginx.ports["legacy"], ssl.TLSVersion.TLSv1,
                       "AES128-SHA:@SECLEVEL=0", certs.ca) as tls:
        assert tls.version() == "TLSv1"
        assert tls.cipher()[0] == "AES128-SHA"
        body = wbxml.encode(("FolderHierarchy:FolderSync",
                             [("FolderHierarchy:SyncKey", "0")]))
        tls.sendall(b"POST /Microsoft-Server-ActiveSync?Cmd=FolderSync"
                    b"&User=jdoe&DeviceId=WM6DEVICE01&DeviceType=PocketPC "
                    b"HTTP/1.1\r\nHost: legacy\r\n"
                    b"MS-ASProtocolVersion: 12.1\r\n"
                    b"User-Agent: MSFT-PPC/5.2.1301\r\n"
                    b"Authorization: Basic amRvZTpzZWNyZXQ=\r\n"
                    b"Content-Type: application/vnd.ms-sync.wbxml\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(body), body))
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")

    # the first OPTIONS is the pre-authentication check, the phone's
    # FolderSync is answered from the cache; the legacy server shares the
    # zone, not the answers: its own check comes before its FolderSync
    # (issue 10.7, a source is the server and the Host, not the URI)
    assert [r.eas.command for r in backend.wait_for(5)] == \
        [None, None, "FolderSync", None, "FolderSync"]
    assert backend.requests[0].header("Authorization") == \
        backend.requests[1].header("Authorization")
    assert backend.requests[3].method == "OPTIONS"

    # the phone's FolderSync line, found by what it carries: two workers
    # write the logs, in either order
    line = log_line(nginx, "eas.log", lambda line: "cmd=FolderSync" in line,
                    "cmd=FolderSync")
    assert "cmd=FolderSync user=jdoe" in line
    assert "ver=16.1 form=plain" in line
    (entry,) = logged(nginx, "eas.json", ["FolderSync"],
                      key=lambda entry: entry["eas_cmd"])
    assert entry["status"] == 200
    legacy_log = nginx.wait_for_access_log(1, name="eas-legacy.log")
    assert "device=WM6DEVICE01 type=PocketPC ver=12.1" in legacy_log[0]

    # eas-devices.conf: an iOS 6.1 build is stopped at the edge, as
    # Exchange's device access answers it (FolderSync Status 129)
    looping = EasClient("https://localhost:%d" % nginx.ports["modern"],
                        user="jdoe", password="secret", protocol="14.1",
                        device_id="ApplLOOP0001", cafile=certs.ca,
                        user_agent="Apple-iPhone4C1/1002.141")
    blocked = looping.foldersync()
    assert (blocked.status, blocked.eas_status()) == (200, 129)
    assert blocked.header("MS-Server-ActiveSync")
    assert len(backend.requests) == 5

    # one inventory for both servers, readable from 127.0.0.1
    inventory = phone.raw("GET", "/eas/devices")
    assert inventory.status == 200
    devices = {device["device_id"]: device
               for device in json.loads(inventory.body)["devices"]}
    assert set(devices) == {"ApplC39ZH2VJJCM3", "WM6DEVICE01", "ApplLOOP0001"}
    assert devices["WM6DEVICE01"]["protocol_version"] == "12.1"
    assert devices["ApplLOOP0001"]["access"] == "blocked"
    assert devices["ApplC39ZH2VJJCM3"]["user_devices"] == 2


@pytest.fixture
def shared_backend(certs):
    started = []

    def start(port):
        backend = EasBackend(port=port, tls_cert=certs.cert,
                             tls_key=certs.key)
        backend.start()
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


def test_example_files_are_all_tested():
    shipped = {path.name for path in EXAMPLE.iterdir()}
    assert shipped == {"nginx.conf", "eas-log-formats.conf",
                       "tls-modern.conf", "tls-legacy.conf",
                       "eas-proxy.conf", "eas-legacy-server.conf",
                       "eas-devices.conf", "eas-preauth.conf",
                       "eas-ldap-ad.conf", "eas-exchange.conf",
                       "eas-sogo.conf", "eas-zpush.conf",
                       # test_operations_files.py: fail2ban, promtool
                       "eas-fail2ban.conf", "fail2ban", "prometheus"}
    assert shutil.which("nginx") or pathlib.Path("/usr/sbin/nginx").exists()


class CheckingBackend(EasBackend):
    """The shipped pre-authentication asks the backend with an OPTIONS:
    this one accepts only USER / PASSWORD, as Exchange's IIS would."""

    def _answer(self, request):
        if (request.method == "OPTIONS"
                and request.header("Authorization") != "Basic " + TOKEN):
            return 401, [("WWW-Authenticate", 'Basic realm="mail"')], b""
        return super()._answer(request)


USER, PASSWORD = "jdoe", "Tr0ub4dor&3-horse"
TOKEN = base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()


def test_shipped_error_log_holds_no_credentials(example, certs):
    """Issue 10.14: the shipped error_log level shows the module's
    refusals, and none of nginx's own lines that quote request headers
    whole (a duplicate, over-long or invalid Authorization line)."""
    nginx = example(legacy=False)
    port = nginx.ports["modern"]
    backend = CheckingBackend(port=nginx.ports["backend"],
                              tls_cert=certs.cert, tls_key=certs.key)
    backend.start()
    try:
        nginx.start(ports=(port,))
        target = (b"POST /Microsoft-Server-ActiveSync?Cmd=FolderSync"
                  b"&User=jdoe&DeviceId=ApplLOG00001&DeviceType=iPhone "
                  b"HTTP/1.1\r\nHost: localhost\r\n"
                  b"MS-ASProtocolVersion: 14.1\r\n")
        auth = b"Authorization: Basic " + TOKEN.encode() + b"\r\n"
        long_token = base64.b64encode(
            ("%s:%s" % (USER, PASSWORD + "x" * 9000)).encode())
        attempts = [
            target + auth + auth + b"Content-Length: 0\r\n\r\n",
            target + b"Authorization: Basic " + long_token
            + b"\r\nContent-Length: 0\r\n\r\n",
            target + b"Authorization: Basic " + TOKEN.encode()
            + b"\x00\r\nContent-Length: 0\r\n\r\n",
        ]
        for data in attempts:
            reply = raw_http("127.0.0.1", port, data, tls=True,
                             cafile=certs.ca, server_hostname="localhost")
            assert reply.startswith(b"HTTP/1.1 400"), reply[:100]

        wrong = EasClient("https://localhost:%d" % port, user=USER,
                          password="wrong-password", protocol="14.1",
                          cafile=certs.ca)
        assert wrong.foldersync().status == 401
    finally:
        nginx.stop()
        backend.stop()

    log = (pathlib.Path(nginx.dir) / "eas-error.log").read_text()
    # the module's refusal is where admins read it...
    assert re.search(r'\[notice\] .*eas: preauth refused: invalid password '
                     r'for user "jdoe"', log), log
    # ...and no part of the credentials is
    for secret in (PASSWORD, TOKEN, TOKEN[:12], long_token[:12].decode(),
                   "Authorization"):
        assert secret not in log, "%r in the shipped error log" % secret
