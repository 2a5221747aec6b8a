"""Request bodies for the body-reading tests (ngx_http_eas_body.c).

chunked() / dechunk()   HTTP/1.1 chunked framing, both ways
ping_body(), sync_body()
                        Ping with a HeartbeatInterval; Sync with an
                        optional Wait and a large item whose text starts
                        with FIRST- and ends with -LAST, so that the bytes
                        a backend has recorded can be placed in the body
temp_files(nginx)       what is in the instance's client_body_temp
wait_until(cond, what)  poll a condition with a deadline
"""

import os
import time

from . import wbxml

LAST_CHUNK = b"0\r\n\r\n"


def chunked(data, size, extension=b""):
    """data as chunks of size bytes (without the last chunk)."""
    out = bytearray()
    for start in range(0, len(data), size):
        part = data[start:start + size]
        out += b"%x%s\r\n%s\r\n" % (len(part), extension, part)
    return bytes(out)


def dechunk(data):
    """The body of a chunked message body; None if it is not complete."""
    body, pos = bytearray(), 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(data[pos:end].split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            return bytes(body) if data[pos:pos + 2] == b"\r\n" else None
        if len(data) < pos + size + 2:
            return None
        body += data[pos:pos + size]
        pos += size + 2


def ping_body(heartbeat):
    return wbxml.encode(("Ping:Ping", [
        ("Ping:HeartbeatInterval", str(heartbeat)),
        ("Ping:Folders", [("Ping:Folder", [("Ping:Id", "5"),
                                           ("Ping:Class", "Email")])])]))


def sync_body(wait=None, filler=0):
    collection = [("AirSync:SyncKey", "1"), ("AirSync:CollectionId", "5")]
    if filler:
        # Commands / Change / ServerId (MS-ASWBXML code page 0)
        collection.append(("AirSync:0x16", [("AirSync:0x08", [
            ("AirSync:0x0D", "FIRST-" + "x" * filler + "-LAST")])]))
    children = [("AirSync:Collections", [("AirSync:Collection",
                                          collection)])]
    if wait is not None:
        children.append(("AirSync:Wait", str(wait)))
    return wbxml.encode(("AirSync:Sync", children))


def temp_files(nginx):
    found = []
    for root, _, files in os.walk(os.path.join(nginx.dir,
                                               "client_body_temp")):
        found += [os.path.join(root, name) for name in files]
    return found


def wait_until(condition, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)
