"""Issue 10, point 5: a refusal of the edge (a blocked device, a request
without good credentials, a locked-out user, a malformed request) holds
whatever else an admin puts in the location: "satisfy any" with allow,
auth_basic or auth_request, error_page with "=" to a named location or a
URI, proxy_intercept_errors, "rewrite ... last", try_files fallback, a
location without "eas on" reached by a redirect.  Asserted from the
backend's own record: no refused request reached it.  And pre-auth
composes like auth_basic: under "satisfy any" good credentials are
enough on their own."""

import base64
import os

import pytest

from eastest.client import EasClient
from eastest.nginx import free_port

EAS = "/Microsoft-Server-ActiveSync"
LOST = "ApplLOST0001"

NGINX_CONFIG = """
http {
    # decisions as plain statuses (the 200 + Status 129 answer of
    # protocol 14.0+ is tested in test_edge_answers.py)
    eas_device_block_status 403;
    ${temp_paths}

    eas_preauth_zone zone=auth:1m;

    upstream backend {
        server 127.0.0.1:${backend_port};
    }

    server {
        listen 127.0.0.1:${port};

        # a plain location: the fallback an admin points error pages at
        location /fallback/ {
            proxy_pass http://backend/;
        }

        location @forward {
            proxy_pass http://backend;
        }

        location @forward_eas {
            eas on;
            proxy_pass http://backend;
        }

        location @page {
            return 403 "blocked\\n";
        }

        location = /blocked.html {
            root ${dir};
        }

        location = /_yes {
            internal;
            return 204;
        }

        # device blocks ---------------------------------------------------

        location /any-allow/ {
            eas on;
            satisfy any;
            allow 127.0.0.1;
            deny all;
            eas_device_block device_id=${lost};
            proxy_pass http://backend/;
        }

        location /any-basic/ {
            eas on;
            satisfy any;
            auth_basic "basic";
            auth_basic_user_file ${dir}/basic-users;
            eas_device_block device_id=${lost};
            proxy_pass http://backend/;
        }

        location /any-request/ {
            eas on;
            satisfy any;
            auth_request /_yes;
            eas_device_block device_id=${lost};
            proxy_pass http://backend/;
        }

        location /named/ {
            eas on;
            eas_device_block device_id=${lost};
            error_page 403 = @forward;
            proxy_pass http://backend/;
        }

        location /named-eas/ {
            eas on;
            eas_device_block device_id=${lost};
            error_page 403 = @forward_eas;
            proxy_pass http://backend/;
        }

        location /uri/ {
            eas on;
            eas_device_block device_id=${lost};
            error_page 403 =200 /fallback/Microsoft-Server-ActiveSync;
            proxy_pass http://backend/;
        }

        location /intercept/ {
            eas on;
            eas_device_block device_id=${lost};
            proxy_intercept_errors on;
            error_page 403 502 = @forward;
            proxy_pass http://backend/;
        }

        location /rewrite/ {
            eas on;
            eas_device_block device_id=${lost};
            rewrite ^/rewrite(/.*)$ /fallback$1 last;
        }

        location /tryfiles/ {
            eas on;
            eas_device_block device_id=${lost};
            try_files /nothing-here /fallback/Microsoft-Server-ActiveSync?$args;
        }

        location /page/ {
            eas on;
            eas_device_block device_id=${lost};
            error_page 403 /blocked.html;
            proxy_pass http://backend/;
        }

        location /return/ {
            eas on;
            eas_device_block device_id=${lost};
            error_page 403 = @page;
            proxy_pass http://backend/;
        }

        location /status/ {
            eas on;
            satisfy any;
            allow all;
            eas_device_block device_id=${lost};
            eas_device_block_status 449;
            error_page 449 = @forward;
            proxy_pass http://backend/;
        }

        # an application answers X-Accel-Redirect into a stricter
        # location: its rules decide again
        location /xaccel/ {
            eas on;
            eas_device_default allow;
            proxy_pass http://127.0.0.1:${app_port};
        }

        location /strict/ {
            internal;
            eas on;
            eas_device_block device_id=${lost};
            proxy_pass http://backend/;
        }

        # malformed requests ---------------------------------------------

        location /malformed/ {
            eas on;
            error_page 400 405 = @forward;
            proxy_pass http://backend/;
        }

        # pre-authentication ---------------------------------------------

        eas_preauth_cache zone=auth;
        eas_preauth_user_file ${dir}/users plain;
        eas_preauth_lockout user=2 address=off window=1m time=1h;

        location /pa-any/ {
            eas on;
            eas_preauth "ActiveSync";
            satisfy any;
            allow 127.0.0.2;
            deny all;
            proxy_pass http://backend/;
        }

        location /pa-any-allowed/ {
            eas on;
            eas_preauth "ActiveSync";
            satisfy any;
            allow 127.0.0.1;
            deny all;
            proxy_pass http://backend/;
        }

        location /pa-any-basic/ {
            eas on;
            eas_preauth "ActiveSync";
            satisfy any;
            auth_basic "basic";
            auth_basic_user_file ${dir}/basic-users;
            proxy_pass http://backend/;
        }

        location /pa-named/ {
            eas on;
            eas_preauth "ActiveSync";
            error_page 401 = @forward;
            proxy_pass http://backend/;
        }

        location /pa-named-eas/ {
            eas on;
            eas_preauth "ActiveSync";
            error_page 401 = @forward_eas;
            proxy_pass http://backend/;
        }
    }

    server {
        listen 127.0.0.1:${app_port};

        location / {
            add_header X-Accel-Redirect
                       /strict/Microsoft-Server-ActiveSync?$args;
            return 200;
        }
    }
}
"""


@pytest.fixture
def gateway(nginx_factory, backend):
    port, app_port = free_port(), free_port()
    nginx = nginx_factory(NGINX_CONFIG, start=False, port=port, lost=LOST,
                          app_port=app_port, backend_port=backend.port)
    write(nginx, "users", "jdoe:{PLAIN}secret\nvictim:{PLAIN}victim-pw\n")
    # auth_basic's own file: the same user, another password
    write(nginx, "basic-users", "jdoe:{PLAIN}basic-pw\n")
    write(nginx, "blocked.html", "custom blocked page\n")
    nginx.start(ports=(port, app_port))
    nginx.port = port
    return nginx


def write(nginx, name, text):
    with open(os.path.join(nginx.dir, name), "w") as handle:
        handle.write(text)


def client(nginx, prefix, device_id=LOST, user="jdoe", password=None):
    return EasClient("http://127.0.0.1:%d/%s%s" % (nginx.port, prefix, EAS),
                     user=user, password=password, device_id=device_id)


def reached(backend, device_id):
    """The requests of that DeviceId the backend got, after a request of
    another device went through: anything sent before it has arrived."""
    marker = "ApplMARK%04d" % len(backend.requests)
    EasClient(backend.url, user="mark", device_id=marker).foldersync()
    backend.wait_for(1)
    return [r for r in backend.requests if device_id in r.target]


def basic(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode())
    return ("Authorization", "Basic " + token.decode())


BLOCKED = [
    ("any-allow", 403),
    ("any-basic", 403),
    ("any-request", 403),
    ("named", 403),
    ("named-eas", 403),
    ("uri", 403),
    ("intercept", 403),
    ("rewrite", 403),
    ("tryfiles", 403),
    ("status", 449),
    ("xaccel", 403),
]


@pytest.mark.parametrize("prefix,status", BLOCKED,
                         ids=[case[0] for case in BLOCKED])
def test_blocked_device_never_reaches_the_backend(gateway, backend, prefix,
                                                  status):
    device = client(gateway, prefix, password="basic-pw")
    assert device.foldersync().status == status
    assert reached(backend, LOST) == []


@pytest.mark.parametrize("prefix", [case[0] for case in BLOCKED
                                    if case[0] != "rewrite"])
def test_allowed_device_still_passes(gateway, backend, prefix):
    device = client(gateway, prefix, device_id="ApplGOOD0001",
                    password="basic-pw")
    assert device.foldersync().status == 200
    assert len(reached(backend, "ApplGOOD0001")) == 1


def test_static_error_page_and_return_still_answer(gateway, backend):
    page = client(gateway, "page").foldersync()
    ret = client(gateway, "return").foldersync()
    assert (page.status, page.body) == (403, b"custom blocked page\n")
    assert (ret.status, ret.body) == (403, b"blocked\n")
    assert reached(backend, LOST) == []


@pytest.mark.parametrize("target", [
    "/malformed" + EAS + "?Cmd=FolderSync&User=a&DeviceId=%s&DeviceId=x"
    "&DeviceType=iPhone" % LOST,
    "/malformed" + EAS + "?Cmd=NoSuchCommand&User=a&DeviceId=%s"
    "&DeviceType=iPhone" % LOST,
])
def test_malformed_request_is_not_forwarded_by_error_page(gateway, backend,
                                                          target):
    device = client(gateway, "malformed")
    answer = device.raw("POST", target, [("MS-ASProtocolVersion", "14.1"),
                                         ("Content-Length", "0")])
    assert answer.status == 400
    assert reached(backend, LOST) == []


def test_method_refusal_is_not_forwarded_by_error_page(gateway, backend):
    device = client(gateway, "malformed")
    answer = device.raw("PUT", device.target("FolderSync"),
                        [("Content-Length", "0")])
    assert answer.status == 405
    assert reached(backend, LOST) == []


# pre-authentication -----------------------------------------------------

def test_good_credentials_are_enough_under_satisfy_any(gateway, backend):
    # allow 127.0.0.2 does not match: pre-auth alone admits the user
    device = client(gateway, "pa-any", device_id="ApplGOOD0001",
                    password="secret")
    assert device.foldersync().status == 200
    assert len(reached(backend, "ApplGOOD0001")) == 1


def test_no_credentials_under_satisfy_any_without_allow(gateway, backend):
    device = client(gateway, "pa-any", device_id="ApplNOAUTH01")
    answer = device.foldersync()
    assert answer.status == 401
    assert answer.header("WWW-Authenticate") == 'Basic realm="ActiveSync"'
    assert reached(backend, "ApplNOAUTH01") == []


def test_satisfy_any_is_either(gateway, backend):
    # the address is allowed: no credentials needed, as with auth_basic
    device = client(gateway, "pa-any-allowed", device_id="ApplADDR0001")
    answer = device.foldersync()
    assert answer.status == 200
    assert answer.header("WWW-Authenticate") is None
    assert len(reached(backend, "ApplADDR0001")) == 1


def test_lockout_holds_under_satisfy_any(gateway, backend):
    for guess in ("guess1", "guess2"):
        wrong = client(gateway, "pa-any", user="victim", password=guess,
                       device_id="ApplGUESS001")
        assert wrong.foldersync().status == 401
    # the allowed address and even the right password: locked is locked
    for prefix in ("pa-any-allowed", "pa-any-basic"):
        right = client(gateway, prefix, user="victim", password="victim-pw",
                       device_id="ApplGUESS001")
        assert right.foldersync().status == 401
    assert reached(backend, "ApplGUESS001") == []


@pytest.mark.parametrize("prefix", ["pa-named", "pa-named-eas"])
def test_refused_credentials_not_forwarded_by_error_page(gateway, backend,
                                                         prefix):
    nothing = client(gateway, prefix, device_id="ApplNOAUTH02")
    wrong = client(gateway, prefix, device_id="ApplNOAUTH02",
                   password="wrong")
    assert nothing.foldersync().status == 401
    assert wrong.foldersync().status == 401
    assert reached(backend, "ApplNOAUTH02") == []
