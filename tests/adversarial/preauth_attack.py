"""What the pre-authentication attacks of this directory share: a gateway
whose credential source logs every question it is asked (nginx's own
auth_basic in a second server, the "directory"), and a client that sends
from any loopback address (127.0.0.x stands in for many clients)."""

import base64
import http.client
import json
import os
import subprocess

from eastest import confs
from eastest.nginx import start_gateway
from eastest.waiting import poll

EAS = "/Microsoft-Server-ActiveSync"

# the gateway's log, one JSON line a request
PREAUTH_LOG = """
log_format preauth escape=json '{"status":"$status","auth":"$eas_auth",'
    '"user":"$eas_auth_user","reason":"$eas_reason",'
    '"addr":"$remote_addr","device":"$arg_DeviceId"}';
"""

# the "directory": each question it is asked is a line of its log
DIRECTORY_LOG = """
log_format directory escape=json '{"status":"$status",'
    '"user":"$remote_user"}';
"""
DIRECTORY = confs.server(
    "access_log ${dir}/directory.log directory;",
    confs.location("/mailbox/", """
        auth_basic "directory";
        auth_basic_user_file ${dir}/directory-users;
        alias ${dir}/www/;
    """), listen="127.0.0.1:${dir_port}")

# the subrequest that asks it (eas_preauth_request /_directory)
ASK_DIRECTORY = confs.location("= /_directory", """
    internal;
    proxy_pass http://127.0.0.1:${dir_port}/mailbox/;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
""")


def gateway_config(preauth, zones=confs.AUTH_ZONE, directory=True,
                   listen="127.0.0.1:${port}"):
    """The gateway of these attacks: preauth (the server's
    pre-authentication directives), its log, ActiveSync forwarded to the
    backend; with directory, the directory as its source."""
    return confs.gateway(
        "access_log ${dir}/eas.log preauth;", preauth,
        confs.eas_location(), ASK_DIRECTORY if directory else "",
        http=[PREAUTH_LOG, DIRECTORY_LOG if directory else ""],
        zones=zones, listen=listen,
        servers=[DIRECTORY] if directory else [])


def start_with_directory(nginx_factory, config, directory_users,
                         **variables):
    """config started with the directory's users (htpasswd lines) and the
    page it serves to those it lets in."""
    return start_gateway(nginx_factory, config,
                         files={"directory-users":
                                "\n".join(directory_users) + "\n",
                                "www/index.html": "mailbox\n"},
                         more_ports=("dir_port",), **variables)


def auth(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8"))
    return "Basic " + token.decode()


def htpasswd_line(user, password):
    return subprocess.run(["htpasswd", "-nbB", "-C", "4", user, password],
                          stdout=subprocess.PIPE,
                          check=True).stdout.decode().strip()


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def send(port, user, password, device="PHONE1", source="127.0.0.1",
         prefix=""):
    """One Sync from source (a 127.0.0.x address, or ::1) as device;
    returns (status, headers)."""
    query = "?Cmd=Sync&User=%s&DeviceId=%s&DeviceType=iPhone" % (
        "x", device)
    host = "::1" if ":" in source else "127.0.0.1"
    connection = http.client.HTTPConnection(host, port, timeout=10,
                                            source_address=(source, 0))
    try:
        connection.request("POST", prefix + EAS + query, body=b"", headers={
            "Authorization": auth(user, password),
            "MS-ASProtocolVersion": "14.1",
            "Content-Length": "0"})
        reply = connection.getresponse()
        reply.read()
        return reply.status, dict(reply.getheaders())
    finally:
        connection.close()


def log_entries(nginx, name="eas.log"):
    return [json.loads(line) for line in nginx.access_log(name)]


def wait_entries(nginx, count, name="eas.log"):
    return [json.loads(line)
            for line in nginx.wait_for_access_log(count, name)[:count]]


def last_entry(nginx, device):
    """The access log line of the last request of device (nginx logs
    after it answers, and two workers' lines may come in either order:
    waited for).  The tests give each request looked at its own
    device."""
    def logged():
        entries = [e for e in log_entries(nginx) if e["device"] == device]
        return entries[-1] if entries else None
    return poll(logged, "the log line of %s" % device)


def report(name, text):
    """An attack figure: printed (pytest -s) and kept in the work
    directory's parent for the closing note."""
    print("\n[figure] %s: %s" % (name, text))
    path = os.environ.get("EAS_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write("%s: %s\n" % (name, text))
