"""What the pre-authentication attacks of this directory share: a gateway
whose credential source logs every question it is asked (nginx's own
auth_basic in a second server, the "directory"), and a client that sends
from any loopback address (127.0.0.x stands in for many clients)."""

import base64
import http.client
import json
import os
import subprocess

from eastest.waiting import poll

EAS = "/Microsoft-Server-ActiveSync"

# the http{} block's start: the gateway's log, one JSON line a request
HTTP_PROLOGUE = """
http {
    ${temp_paths}
    log_format preauth escape=json '{"status":"$status","auth":"$eas_auth",'
        '"user":"$eas_auth_user","reason":"$eas_reason",'
        '"addr":"$remote_addr","device":"$arg_DeviceId"}';
"""


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
