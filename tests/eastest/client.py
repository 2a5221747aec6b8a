"""EAS device simulator, query-string codecs and a raw-socket HTTP helper.

EasClient speaks to an ActiveSync URL the way a phone does: plain query
(``Cmd=Ping&User=jdoe&DeviceId=...&DeviceType=iPhone``, any parameter
order) or base64 query (MS-ASHTTP 2.2.1.1.1.1), Basic authorization, the
version and policy-key headers only in plain form, WBXML bodies.  Every
request uses a new connection and returns a Response; the exact target and
header list sent are predictable so tests can compare them byte for byte
with what the backend recorded.

encode_base64_query / decode_base64_query implement docs/protocol.md
section 2.1 (locale and policy key little-endian).  raw_http sends any
bytes over a fresh TCP or TLS connection, for malformed-request tests.
"""

import base64
import http.client
import socket
import ssl
import struct
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

from . import wbxml

# Command codes of the base64 query (docs/protocol.md section 2.3).
COMMAND_CODES = {
    "Sync": 0, "SendMail": 1, "SmartForward": 2, "SmartReply": 3,
    "GetAttachment": 4, "FolderSync": 9, "FolderCreate": 10,
    "FolderDelete": 11, "FolderUpdate": 12, "MoveItems": 13,
    "GetItemEstimate": 14, "MeetingResponse": 15, "Search": 16,
    "Settings": 17, "Ping": 18, "ItemOperations": 19, "Provision": 20,
    "ResolveRecipients": 21, "ValidateCert": 22, "Find": 23,
}
COMMANDS_BY_CODE = {code: name for name, code in COMMAND_CODES.items()}

# Commands that exist only in the plain form.
LEGACY_COMMANDS = ("GetHierarchy", "CreateCollection", "DeleteCollection",
                   "MoveCollection")

# Parameter tags of the base64 query (docs/protocol.md section 2.4).
PARAM_TAGS = {
    "AttachmentName": 0, "CollectionId": 1, "CollectionName": 2,
    "ItemId": 3, "LongId": 4, "ParentId": 5, "Occurrence": 6,
    "Options": 7, "User": 8,
}
PARAMS_BY_TAG = {tag: name for name, tag in PARAM_TAGS.items()}

# Parameter orders of the plain query: the specification's (and Android's)
# and the one iOS Mail sends, with Cmd last.
SPEC_ORDER = ("Cmd", "User", "DeviceId", "DeviceType")
IOS_ORDER = ("User", "DeviceId", "DeviceType", "Cmd")

PROTOCOL_VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")
WBXML_CONTENT_TYPE = "application/vnd.ms-sync.wbxml"
EAS_PROVISIONING = "MS-EAS-Provisioning-WBXML"


def canonical_command(name):
    """Return the canonical spelling of a command name, or None if unknown.

    Names are matched case-insensitively ("ping" -> "Ping").
    """
    for known in (*COMMAND_CODES, *LEGACY_COMMANDS):
        if known.lower() == name.lower():
            return known
    return None


def base64_version_byte(protocol):
    """Map "14.1" to 141; refuse versions that have no base64 form."""
    if protocol not in PROTOCOL_VERSIONS or protocol in ("2.5", "12.0"):
        raise ValueError("protocol %r cannot use the base64 query" % protocol)
    major, minor = protocol.split(".")
    return int(major) * 10 + int(minor)


def encode_base64_query(protocol, command, device_id, device_type,
                        locale=0x0409, policy_key=None, params=()):
    """Build a base64 query string.

    device_id is a str (sent as ASCII) or bytes (sent raw, e.g. a 16-byte
    GUID); policy_key an int, a decimal string or None (length 0);
    params a sequence of (name or tag number, str or bytes) pairs.
    """
    if isinstance(device_id, str):
        device_id = device_id.encode("ascii")
    out = bytearray([base64_version_byte(protocol), COMMAND_CODES[command]])
    out += struct.pack("<H", locale)
    out += _length_prefixed(device_id)
    if policy_key is None:
        out.append(0)
    else:
        out += _length_prefixed(struct.pack("<I", int(policy_key)))
    out += _length_prefixed(device_type.encode("ascii"))
    for name, value in params:
        tag = PARAM_TAGS[name] if isinstance(name, str) else name
        if isinstance(value, str):
            value = value.encode("utf-8")
        out.append(tag)
        out += _length_prefixed(value)
    return base64.b64encode(bytes(out)).decode("ascii")


def _length_prefixed(value):
    if len(value) > 255:
        raise ValueError("base64 query field longer than 255 bytes")
    return bytes([len(value)]) + value


@dataclass
class Base64Query:
    """A decoded base64 query; device_id stays bytes (it may be binary)."""
    version: int
    command_code: int
    command: str
    locale: int
    device_id: bytes
    policy_key: Optional[int]
    device_type: str
    params: list = field(default_factory=list)   # (tag, bytes) pairs

    def param(self, name):
        """Value of the first parameter with this name, or None."""
        tag = PARAM_TAGS[name]
        return next((value for t, value in self.params if t == tag), None)

    def device_id_text(self):
        """The DeviceId as docs/requests.md shows it: ASCII as sent, binary
        ids as upper-case hex."""
        if all(0x21 <= octet <= 0x7E for octet in self.device_id):
            return self.device_id.decode("ascii")
        return self.device_id.hex().upper()


def decode_base64_query(query):
    """Decode a base64 query string; raise ValueError if malformed.

    Unknown parameter tags are kept (Windows Mail sends tag 0xFF).
    """
    try:
        raw = base64.b64decode(query, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64: %s" % exc) from None
    pos = 0

    def take(count):
        nonlocal pos
        if count > len(raw) - pos:
            raise ValueError("field runs past the end at byte %d" % pos)
        chunk = raw[pos:pos + count]
        pos += count
        return chunk

    version, command_code = take(2)
    (locale,) = struct.unpack("<H", take(2))
    device_id = take(take(1)[0])
    policy_field = take(take(1)[0])
    if len(policy_field) not in (0, 4):
        raise ValueError("policy key length %d" % len(policy_field))
    policy_key = struct.unpack("<I", policy_field)[0] if policy_field else None
    device_type = take(take(1)[0]).decode("ascii", "replace")
    params = []
    while pos < len(raw):
        tag = take(1)[0]
        params.append((tag, take(take(1)[0])))
    command = COMMANDS_BY_CODE.get(command_code, "#%d" % command_code)
    return Base64Query(version, command_code, command, locale, device_id,
                       policy_key, device_type, params)


@dataclass
class Response:
    """What came back: status, headers in wire order, body, time taken."""
    status: int
    reason: str
    headers: list
    body: bytes
    elapsed: float          # seconds, from connect to the last body byte

    def header(self, name, default=None):
        """First value of a header, name matched case-insensitively."""
        return next((v for n, v in self.headers if n.lower() == name.lower()),
                    default)

    def tree(self):
        """The decoded WBXML body, or None when the body is empty."""
        return wbxml.decode(self.body) if self.body else None

    def eas_status(self):
        """The integer Status child of the WBXML root element, or None
        (also when the body is not WBXML, e.g. an HTML error page)."""
        try:
            tree = self.tree()
        except wbxml.WbxmlError:
            return None
        if tree is None or not isinstance(tree[1], list):
            return None
        for tag, content in tree[1]:
            if tag.endswith(":Status") and isinstance(content, str):
                return int(content) if content.isdigit() else None
        return None


class EasClient:
    """An ActiveSync device.

    base_url    "http[s]://host:port/Microsoft-Server-ActiveSync"
    user, password
                Basic credentials; user also goes into the query (User=
                in plain form, tag 8 in base64 form).  Without a password
                no Authorization header is sent.
    device_id   str, or bytes for a binary id (base64 form; plain form
                sends bytes as upper-case hex)
    form        "plain" or "base64"
    param_order order of Cmd/User/DeviceId/DeviceType in the plain query;
                SPEC_ORDER or IOS_ORDER (Cmd last)
    policy_key  sent as X-MS-PolicyKey (plain) or in the base64 query on
                every command except Ping; set by provision()
    cafile      CA bundle for https:// (system trust when None)
    """

    def __init__(self, base_url, user=None, password=None,
                 device_id="ApplC39ZH2VJJCM3", device_type="iPhone",
                 protocol="14.1", form="plain", cafile=None,
                 user_agent="Apple-iPhone13C4/2307.71", locale=0x0409,
                 policy_key=None, param_order=SPEC_ORDER, timeout=30.0):
        if form not in ("plain", "base64"):
            raise ValueError("form must be 'plain' or 'base64'")
        if form == "base64":
            base64_version_byte(protocol)   # refuse 2.5 / 12.0 early
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https"):
            raise ValueError("unsupported URL scheme %r" % url.scheme)
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.path = url.path or "/Microsoft-Server-ActiveSync"
        self.user = user
        self.password = password
        self.device_id = device_id
        self.device_type = device_type
        self.protocol = protocol
        self.form = form
        self.user_agent = user_agent
        self.locale = locale
        self.policy_key = policy_key
        self.param_order = param_order
        self.timeout = timeout
        self.last_heartbeat = None
        self.ssl_context = (ssl.create_default_context(cafile=cafile)
                            if url.scheme == "https" else None)

    # Requests ---------------------------------------------------------

    def options(self):
        """OPTIONS on the path, no query (capability discovery)."""
        headers = self._common_headers()
        return self.raw("OPTIONS", self.path, headers)

    def provision(self, ack_key=None):
        """Provision, phase 1 (ask for the policy) or, with the temporary
        ack_key from phase 1, phase 2 (acknowledge it with Status 1).

        A successful acknowledgement stores the final key in policy_key.
        """
        policy = [("Provision:PolicyType", EAS_PROVISIONING)]
        if ack_key is not None:
            policy += [("Provision:PolicyKey", str(ack_key)),
                       ("Provision:Status", "1")]
        body = wbxml.encode(("Provision:Provision", [
            ("Provision:Policies", [("Provision:Policy", policy)])]))
        response = self.command("Provision", body)
        if ack_key is not None and response.status == 200:
            key = policy_key_of(response)
            if key is not None:
                self.policy_key = key
        return response

    def foldersync(self, sync_key="0"):
        body = wbxml.encode(("FolderHierarchy:FolderSync", [
            ("FolderHierarchy:SyncKey", sync_key)]))
        return self.command("FolderSync", body)

    def ping(self, heartbeat=None, folders=(("5", "Email"),), timeout=None):
        """Ping; heartbeat in seconds.  With no heartbeat and no folders
        the body is empty (the server reuses its cached values).

        The read timeout defaults to the heartbeat (or the last one sent)
        plus the client's timeout.
        """
        children = []
        if heartbeat is not None:
            children.append(("Ping:HeartbeatInterval", str(heartbeat)))
            self.last_heartbeat = heartbeat
        if folders:
            children.append(("Ping:Folders", [
                ("Ping:Folder", [("Ping:Id", folder_id),
                                 ("Ping:Class", folder_class)])
                for folder_id, folder_class in folders]))
        body = wbxml.encode(("Ping:Ping", children)) if children else b""
        if timeout is None:
            timeout = (self.last_heartbeat or 0) + self.timeout
        return self.command("Ping", body, timeout=timeout)

    def sync(self, collections=(("1", "5"),), wait=None, heartbeat=None,
             partial=False, timeout=None):
        """Sync of (sync_key, collection_id) pairs; wait in minutes,
        heartbeat in seconds.  Nothing at all gives the empty Sync."""
        children = []
        if collections:
            children.append(("AirSync:Collections", [
                ("AirSync:Collection", [("AirSync:SyncKey", sync_key),
                                        ("AirSync:CollectionId", cid)])
                for sync_key, cid in collections]))
        if wait is not None:
            children.append(("AirSync:Wait", str(wait)))
        if heartbeat is not None:
            children.append(("AirSync:HeartbeatInterval", str(heartbeat)))
        if partial:
            children.append(("AirSync:Partial", None))
        body = wbxml.encode(("AirSync:Sync", children)) if children else b""
        if timeout is None:
            hold = heartbeat if heartbeat is not None else (wait or 0) * 60
            timeout = hold + self.timeout
        return self.command("Sync", body, timeout=timeout)

    def command(self, cmd, body=b"", params=(), timeout=None):
        """POST any command with a ready body.

        params are extra (name, value) query parameters; in base64 form the
        names must be those of PARAM_TAGS (or tag numbers).
        """
        headers = self._common_headers()
        if self.form == "plain":
            headers.append(("MS-ASProtocolVersion", self.protocol))
            if self._sends_policy_key(cmd):
                headers.append(("X-MS-PolicyKey", str(self.policy_key)))
        if body:
            headers.append(("Content-Type", WBXML_CONTENT_TYPE))
        headers.append(("Content-Length", str(len(body))))
        return self.raw("POST", self.target(cmd, params), headers, body,
                        timeout=timeout)

    def target(self, cmd, params=()):
        """The request target (path and query) for a command."""
        if self.form == "base64":
            query_params = list(params)
            if self.user:
                query_params.append(("User", self.user))
            policy_key = (self.policy_key if self._sends_policy_key(cmd)
                          else None)
            query = encode_base64_query(self.protocol, cmd, self.device_id,
                                        self.device_type, self.locale,
                                        policy_key, query_params)
            return "%s?%s" % (self.path, query)

        device_id = self.device_id
        if isinstance(device_id, bytes):
            device_id = device_id.hex().upper()
        values = {"Cmd": cmd, "User": self.user, "DeviceId": device_id,
                  "DeviceType": self.device_type}
        pairs = [(name, values[name]) for name in self.param_order
                 if values[name] is not None]
        pairs += list(params)
        query = "&".join("%s=%s" % (name, urllib.parse.quote(value, safe=""))
                         for name, value in pairs)
        return "%s?%s" % (self.path, query)

    def raw(self, method, target, headers=(), body=b"", timeout=None):
        """Send one request exactly as given and return the Response.

        headers is a sequence of (name, value) pairs sent in that order;
        Host is added first unless present.  Nothing else is added: set
        Content-Length yourself when the method needs one.
        """
        headers = list(headers)
        has_host = any(name.lower() == "host" for name, _ in headers)
        connection = self._connection(timeout or self.timeout)
        started = time.monotonic()
        try:
            connection.putrequest(method, target, skip_host=has_host,
                                  skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders(body or None)
            reply = connection.getresponse()
            reply_body = reply.read()
            return Response(reply.status, reply.reason, reply.getheaders(),
                            reply_body, time.monotonic() - started)
        finally:
            connection.close()

    # Helpers ------------------------------------------------------------

    def _common_headers(self):
        headers = [("User-Agent", self.user_agent)]
        if self.user is not None and self.password is not None:
            token = base64.b64encode(
                ("%s:%s" % (self.user, self.password)).encode("utf-8"))
            headers.append(("Authorization", "Basic " + token.decode("ascii")))
        return headers

    def _sends_policy_key(self, cmd):
        """Devices send the policy key on every command but Ping."""
        return self.policy_key is not None and cmd != "Ping"

    def _connection(self, timeout):
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port,
                                               timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)


def policy_key_of(response):
    """The PolicyKey of a Provision response (str), or None."""
    tree = response.tree() if response.body else None
    if tree is None:
        return None
    return wbxml.find(tree, "Provision:Provision/Provision:Policies/"
                            "Provision:Policy/Provision:PolicyKey")


def raw_http(host, port, data, tls=False, cafile=None, timeout=5.0,
             server_hostname=None, half_close=False):
    """Send raw bytes and return everything received until close or timeout.

    data is bytes, or a list of bytes each sent on its own.  timeout bounds the whole exchange.  half_close shuts down the sending
    side after the data (the server then sees end of input).  With tls,
    the server certificate is checked against cafile and server_hostname
    (default: host).
    """
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if tls:
            context = ssl.create_default_context(cafile=cafile)
            sock = context.wrap_socket(
                sock, server_hostname=server_hostname or host)
        for part in ([data] if isinstance(data, (bytes, bytearray))
                     else data):
            sock.sendall(part)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
        return bytes(received)
    finally:
        sock.close()


def basic_sync(port, user, password, device, timeout=10.0):
    """A Sync with Basic credentials whose user name is any bytes (str is
    sent as UTF-8), as the Authorization header carries them; returns
    the status."""
    if isinstance(user, str):
        user = user.encode("utf-8")
    token = base64.b64encode(user + b":" + password.encode("utf-8"))
    request = ("POST /Microsoft-Server-ActiveSync?Cmd=Sync&DeviceId=%s"
               "&DeviceType=iPhone HTTP/1.1\r\nHost: mail.example.org\r\n"
               "MS-ASProtocolVersion: 14.1\r\nAuthorization: Basic %s\r\n"
               "Content-Length: 0\r\nConnection: close\r\n\r\n"
               % (device, token.decode())).encode()
    return int(raw_http("127.0.0.1", port, request, timeout=timeout)[9:12])
