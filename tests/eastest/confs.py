"""Builders of the nginx configurations the tests start.

Every gateway of the tests repeats the same frame: an http block with
the instance's temporary paths, the eas zones, the recording backend as
upstream "backend", a server listening on ${port}, an ActiveSync location
that ends in proxy_pass.  The frame is written here once; a test writes
only the directives that make its configuration its own, and hands the
text to start_gateway() (eastest.nginx) as it would a template: the
${...} placeholders are filled there.

    NGINX_CONFIG = confs.gateway(
        confs.eas_location(confs.PREAUTH, "eas_devices devices;"),
        http="eas_device_block_status 403;")

nginx does not care how the text is indented; the builders indent each
level by four spaces so that a rendered nginx.conf reads well.
"""

import textwrap

EAS = "/Microsoft-Server-ActiveSync"

# the zones most tests name: "auth" for pre-authentication, "devices"
ZONES = """
    eas_preauth_zone zone=auth:1m;
    eas_device_zone zone=devices:1m;
"""

# pre-authentication cached in the zone "auth", its source not named
PREAUTH_CACHED = """
    eas_preauth "ActiveSync";
    eas_preauth_cache zone=auth;
"""

# pre-authentication against the password file ${dir}/users (plain)
PREAUTH = PREAUTH_CACHED + """
    eas_preauth_user_file ${dir}/users plain;
"""

# pre-authentication that asks its source every time, never locking out
PREAUTH_UNCACHED = """
    eas_preauth "ActiveSync";
    eas_preauth_cache zone=auth valid=0 invalid=0;
    eas_preauth_lockout user=off address=off;
"""

# the zone of PREAUTH_CACHED and PREAUTH alone
AUTH_ZONE = "eas_preauth_zone zone=auth:1m;"

# refusals of a device as plain statuses (the 200 + Status 129 answer
# of protocol 14.0+ is tested in test_edge_answers.py)
PLAIN_REFUSALS = "eas_device_block_status 403;"

# a location only the admin's address and password reach
ADMIN_ONLY = """
    allow 127.0.0.1;
    deny all;
    auth_basic "eas admin";
    auth_basic_user_file ${dir}/admins;
"""

# the backend without an upstream block
DIRECT = "http://127.0.0.1:${backend_port}"

UPSTREAM = """
    upstream backend {
        server 127.0.0.1:${backend_port};
    }
"""


def _lines(parts):
    """The non-empty parts, each dedented and stripped, in order."""
    texts = []
    for part in parts:
        if part:
            text = textwrap.dedent(part).strip("\n")
            if text.strip():
                texts.append(text)
    return texts


def block(head, *parts, gap="\n"):
    """'head { parts }', each part a string of one or more lines, the
    parts apart by gap."""
    body = gap.join(_lines(parts))
    return "%s {\n%s\n}" % (head, textwrap.indent(body, "    "))


def location(path, *parts):
    return block("location " + path, *parts)


def eas_location(*parts, path=EAS, proxy_pass="http://backend"):
    """An ActiveSync location: eas on, parts, then proxy_pass (None: the
    parts say where the request goes)."""
    tail = "proxy_pass %s;" % proxy_pass if proxy_pass else ""
    return location(path, "eas on;", *parts, tail)


def eas_under(prefix, *parts, upstream="backend"):
    """An ActiveSync location under prefix ("/tiny"), whose requests go
    to upstream under the usual path."""
    return eas_location(*parts, path=prefix + EAS,
                        proxy_pass="http://%s%s" % (upstream, EAS))


def server(*parts, listen="127.0.0.1:${port}"):
    """A server listening on listen (a string, or several), then parts."""
    if isinstance(listen, str):
        listen = (listen,)
    return block("server", "\n".join("listen %s;" % address
                                     for address in listen), *parts,
                 gap="\n\n")


def gateway(*parts, http="", zones=ZONES, upstream=UPSTREAM,
            servers=(), listen="127.0.0.1:${port}"):
    """The whole http block: the temporary paths, http (directives of the
    http level), the zones, the backend's upstream, one server on
    ${port} holding parts, then any other servers (whole blocks).  http,
    zones and upstream are strings or lists of strings."""
    http, zones, upstream = ("\n".join(_lines(value))
                             if isinstance(value, (list, tuple)) else value
                             for value in (http, zones, upstream))
    return block("http", "${temp_paths}", http, zones, upstream,
                 server(*parts, listen=listen), *servers,
                 gap="\n\n") + "\n"


def password_file(users):
    """eas_preauth_user_file / auth_basic_user_file lines of users, a dict
    of name to password, stored in the clear ({PLAIN})."""
    return "".join("%s:{PLAIN}%s\n" % pair for pair in users.items())


# the admin of ADMIN_ONLY, and the Authorization header it sends
ADMINS = password_file({"admin": "adminpw"})
ADMIN_AUTH = "Basic YWRtaW46YWRtaW5wdw=="


# the device zone of the long-poll tests
LONGPOLL_ZONE = "eas_device_zone zone=eas_devices:1m;"

# connections to the backend kept open (an upstream's "keepalive")
KEEPALIVE = """
    proxy_http_version 1.1;
    proxy_set_header Connection "";
"""


def timed_upstream(name, port, *parts):
    """An upstream on 127.0.0.1:${port} whose read timeout the module
    sets per request (eas_upstream_timeouts), parts before it."""
    return block("upstream " + name, "server 127.0.0.1:${%s};" % port,
                 *parts, "eas_upstream_timeouts;")


def longpoll(margin="2s", command_timeout="1s", body_max=None):
    """Long-poll on, in LONGPOLL_ZONE, heartbeats from 2 s to 120 s."""
    return "\n".join([
        "eas on;",
        "eas_devices eas_devices;",
        "eas_longpoll on;",
        "eas_heartbeat_min 2s;",
        "eas_heartbeat_max 120s;",
        "eas_longpoll_margin %s;" % margin,
        "eas_command_timeout %s;" % command_timeout]
        + (["eas_longpoll_body_max %s;" % body_max] if body_max else []))


def json_log(name, **fields):
    """log_format name writing one JSON object a request: fields maps
    each key to the nginx variable written there."""
    return "log_format %s escape=json '{%s}';" % (name, ",".join(
        '"%s":"%s"' % pair for pair in fields.items()))


# what the long-poll tests log of a request
LONGPOLL_LOG = dict(status="$status", cmd="$eas_cmd",
                    heartbeat="$eas_heartbeat",
                    source="$eas_heartbeat_source", reason="$eas_reason")


def ldap_location(name, *parts):
    """A location /name/ pre-authenticated against the eas_ldap_server
    name, forwarding to the backend without an upstream block."""
    return eas_location("eas_preauth_ldap %s;" % name, *parts,
                        path="/%s/" % name, proxy_pass=DIRECT + "/")


# a user= given to the admin API (URL-encoded), the identity it is kept
# as, and spellings a device may send for it, with its password
FOLDED_USERS = [
    ("%C3%96ZIL", "\u00f6zil", ["\u00d6ZIL", "\u00f6zil"], "pw-ozil"),
    ("Stra%C3%9Fe", "strasse", ["Stra\u00dfe", "strasse"], "pw-strasse"),
    ("%EF%BC%AAane", "jane", ["\uff2aane", "jane"], "pw-jane"),
    ("CORP%5CMaxi", "maxi", ["CORP\\Maxi", "maxi"], "pw-maxi"),
    ("sam@Corp.Example", "sam", ["sam", "SAM@corp.example"], "pw-sam"),
]


# the gateways sharing state on Redis: status and admin from 127.0.0.1
SHARED_STATUS_ADMIN = """        location = /eas/status {
            eas_status;
        }

        location /eas/admin/ {
            allow 127.0.0.1;
            deny all;
            eas_admin preauth_zone=auth device_zone=devices;
        }
"""

# their credential source: a subrequest to ${dir_port}, one per verification
SHARED_DIRECTORY = """        location = /_directory {
            internal;
            proxy_method OPTIONS;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_pass http://127.0.0.1:${dir_port}/Microsoft-Server-ActiveSync;
        }
"""
