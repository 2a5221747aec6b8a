"""Loopback backends for ngx_eas tests: an EAS server simulator and a
server that never answers.

EasBackend answers at /Microsoft-Server-ActiveSync (path compared
case-insensitively, as IIS does):

    OPTIONS     200 with the MS-AS* capability headers, empty body
    Provision   phase 1 -> temporary key TEMPORARY_POLICY_KEY; phase 2
                (acknowledging that key) -> POLICY_KEY; wrong key ->
                Policy Status 5
    FolderSync  SyncKey 0 -> Status 1, Inbox (5, type 2) and Calendar
                (10, type 8); any other key -> Status 1, no changes
    Ping        held for HeartbeatInterval seconds, then Status 1; a
                notify() of a watched folder ends it early with Status 2
                and the folder list.  An empty body (or one without a
                heartbeat) reuses the values cached for the DeviceId; no
                cache -> Status 3; undecodable body -> Status 4.  A newer
                Ping of the same device ends the older one with Status 1
                (not with supersede=False: each is held for its own
                interval, as a backend that leaves it to the gateway).
    Sync        no Wait/HeartbeatInterval -> the empty Sync response (200,
                no body); with one (Wait in minutes), held like Ping; a
                notify() of a listed collection ends it early with a Sync
                response for that collection.  An empty Sync replays the
                cached request of the device.
    other Cmd   200, empty body

Other paths get 404.  Every request except the /_sim/ control API is
recorded (target exactly as on the wire, headers in wire order, body after
removing any chunked framing).  A device hears of the changes notified
after its first Ping (or Sync): they end its held poll at once, or answer
its next one immediately.

Control API (for the command-line tools):

    POST /_sim/notify?folder=5      like notify("5"); folder may repeat
    GET  /_sim/requests             JSON list (body in base64)
    POST /_sim/clear                like clear()

CredentialBackend is an EasBackend with its own password store: it
answers 401 to every request whose Basic credentials are not in it (the
store may depend on the Host header, as a multi-tenant backend's does);
with sogo_like=True it answers any OPTIONS 200 with an HTML page and no
ActiveSync headers, whatever the credentials, as SOGo does for a path
outside /SOGo.

SilentBackend accepts connections and reads forever without answering.
"""

import base64
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from . import wbxml
from .client import canonical_command, decode_base64_query
from .service import Service

EAS_PATH = "/Microsoft-Server-ActiveSync"
CONTROL_PREFIX = "/_sim/"

TEMPORARY_POLICY_KEY = "1307199584"
POLICY_KEY = "3769048351"

OPTIONS_HEADERS = (
    ("MS-ASProtocolVersions", "2.5,12.0,12.1,14.0,14.1,16.0,16.1"),
    ("MS-ASProtocolCommands",
     "Sync,SendMail,SmartForward,SmartReply,GetAttachment,GetHierarchy,"
     "CreateCollection,DeleteCollection,MoveCollection,FolderSync,"
     "FolderCreate,FolderDelete,FolderUpdate,MoveItems,GetItemEstimate,"
     "MeetingResponse,Search,Settings,Ping,ItemOperations,Provision,"
     "ResolveRecipients,ValidateCert,Find"),
    ("MS-Server-ActiveSync", "15.1"),
    ("Allow", "OPTIONS,POST"),
    ("Public", "OPTIONS,POST"),
)

# (ServerId, ParentId, DisplayName, Type) of the simulated mailbox.
FOLDERS = (("5", "0", "Inbox", "2"), ("10", "0", "Calendar", "8"))

WBXML_CONTENT_TYPE = "application/vnd.ms-sync.wbxml"
MAX_BODY = 64 * 1024 * 1024


@dataclass
class EasQuery:
    """What a request's query says: form is "plain", "base64", "none"
    (no query) or "invalid" (base64 that does not decode)."""
    form: str
    command: Optional[str] = None     # canonical name if known
    device_id: Optional[str] = None   # binary base64 ids as upper-case hex
    device_type: Optional[str] = None
    user: Optional[str] = None


def parse_query(query):
    """Read Cmd, DeviceId, DeviceType and User from either query form.

    The rules follow docs/requests.md: base64 when there is no "&" and
    any "=" is trailing padding (after percent-decoding); plain names are
    case-insensitive, the first occurrence wins, "+" is a space.
    """
    if not query:
        return EasQuery("none")
    decoded = urllib.parse.unquote(query)
    if "&" not in decoded and "=" not in decoded.rstrip("="):
        try:
            fields = decode_base64_query(decoded)
        except ValueError:
            return EasQuery("invalid")
        user = fields.param("User")
        return EasQuery("base64", canonical_command(fields.command),
                        fields.device_id_text(), fields.device_type,
                        user.decode("utf-8", "replace") if user else None)

    values = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name:
            values.setdefault(name.lower(), urllib.parse.unquote_plus(value))
    cmd = values.get("cmd")
    return EasQuery("plain", canonical_command(cmd) if cmd else None,
                    values.get("deviceid"), values.get("devicetype"),
                    values.get("user"))


@dataclass
class RecordedRequest:
    """One request as the backend received it."""
    method: str
    target: str                # path and query exactly as on the wire
    version: str               # "HTTP/1.1"
    headers: list              # (name, value) pairs in wire order
    body: bytes                # chunked framing removed
    time: float                # time.time() when the body was complete
    client: tuple              # (host, port) of the peer connection
    eas: EasQuery = field(default_factory=lambda: EasQuery("none"))

    @property
    def path(self):
        return self.target.partition("?")[0]

    @property
    def query(self):
        return self.target.partition("?")[2]

    def header(self, name, default=None):
        """First value of a header, name matched case-insensitively."""
        return next((v for n, v in self.headers if n.lower() == name.lower()),
                    default)

    def summary(self):
        """One line for logs: 'POST Cmd=Ping device=abc 37 bytes'."""
        words = [self.method]
        words.append("Cmd=%s" % self.eas.command if self.eas.command
                     else self.path)
        if self.eas.device_id:
            words.append("device=%s" % self.eas.device_id)
        if self.eas.form == "base64":
            words.append("(base64 query)")
        words.append("%d bytes" % len(self.body))
        return " ".join(words)

    def to_json(self):
        return {
            "method": self.method, "target": self.target,
            "version": self.version, "headers": self.headers,
            "body": base64.b64encode(self.body).decode("ascii"),
            "time": self.time, "client": list(self.client),
            "form": self.eas.form, "command": self.eas.command,
            "device_id": self.eas.device_id,
        }


class EasBackend(Service):
    """EAS backend simulator on 127.0.0.1 (see the module docstring).

    port        None picks a free port (read it back from .port)
    tls_cert, tls_key
                PEM files; both given -> HTTPS
    hold_cap    upper bound in seconds for any Ping/Sync hold (None: the
                requested heartbeat is honoured as is)
    on_request  callable(RecordedRequest), called as each request arrives
    supersede   a newer Ping/Sync of a device ends its older one (False:
                both are held for their intervals)
    """

    def __init__(self, port=None, host="127.0.0.1", tls_cert=None,
                 tls_key=None, hold_cap=None, on_request=None,
                 supersede=True):
        self.host = host
        self.requested_port = port or 0
        self.port = None
        self.tls = bool(tls_cert and tls_key)
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.hold_cap = hold_cap
        self.on_request = on_request
        self.supersede = supersede
        self._cond = threading.Condition()
        self._requests = []
        self._stopping = False
        # Long-poll state, all guarded by _cond:
        self._generation = 0        # bumped by every notify()
        self._changes = {}          # folder id -> generation of its change
        self._seen = {}             # (cmd, device) -> generation told
        self._poll_seq = {}         # (cmd, device) -> number of latest poll
        self._ping_cache = {}       # device -> (heartbeat, folder ids)
        self._sync_cache = {}       # device -> (hold seconds, collection ids)
        self._server = None
        self._thread = None

    # Life cycle ---------------------------------------------------------

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://%s:%d%s" % (scheme, self.host, self.port, EAS_PATH)

    def start(self):
        context = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls_cert, self.tls_key)
        self._stopping = False
        self._server = _Server((self.host, self.requested_port), _Handler,
                               self, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="eas-backend", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Answer held polls, close every connection, stop listening."""
        if self._server is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        self._server = None

    # Recording ----------------------------------------------------------

    @property
    def requests(self):
        """A copy of the requests recorded so far, oldest first."""
        with self._cond:
            return list(self._requests)

    def clear(self):
        """Forget the recorded requests (long-poll state is kept)."""
        with self._cond:
            count = len(self._requests)
            self._requests.clear()
            return count

    def wait_for(self, count, timeout=30.0):
        """Wait until at least count requests are recorded; return them.

        Raises TimeoutError naming what did arrive.
        """
        with self._cond:
            if self._cond.wait_for(lambda: len(self._requests) >= count,
                                   timeout):
                return list(self._requests)
            seen = [r.summary() for r in self._requests]
        raise TimeoutError("backend got %d of %d requests in %.1f s: %s"
                           % (len(seen), count, timeout, seen))

    # Mailbox changes ------------------------------------------------------

    def notify(self, *folders):
        """Simulate new items in these folders: held Pings/Syncs watching
        one of them answer now, later ones of the same devices at once."""
        with self._cond:
            self._generation += 1
            for folder in folders:
                self._changes[str(folder)] = self._generation
            self._cond.notify_all()

    # Request handling (called by _Handler) --------------------------------

    def handle(self, request):
        """Record a request and return (status, headers, body); blocks
        while a Ping/Sync is held."""
        if self.on_request is not None:
            self.on_request(request)
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()
            # Still under the lock: a poll is registered before anyone
            # can see it recorded, so a notify() after wait_for() is
            # never missed.
            return self._answer(request)

    def _answer(self, request):
        if request.path.lower() != EAS_PATH.lower():
            return 404, [], b""
        if request.method == "OPTIONS":
            return 200, list(OPTIONS_HEADERS), b""
        if request.method != "POST":
            return 200, [], b""
        command = request.eas.command
        device = request.eas.device_id or ""
        if command == "Ping":
            return self._ping(device, request.body)
        if command == "Sync":
            return self._sync(device, request.body)
        if command == "FolderSync":
            return self._foldersync(request.body)
        if command == "Provision":
            return self._provision(request.body)
        return 200, [], b""

    def _ping(self, device, body):
        heartbeat, folders = None, []
        if body:
            try:
                tree = wbxml.decode(body)
                if tree[0] != "Ping:Ping":
                    raise wbxml.WbxmlError("root is %s" % tree[0])
                text = wbxml.find(tree, "Ping:Ping/Ping:HeartbeatInterval")
                if text is not None:
                    heartbeat = _positive_int(text)
            except (wbxml.WbxmlError, ValueError):
                return _wbxml_reply(("Ping:Ping", [("Ping:Status", "4")]))
            folders = wbxml.find_all(
                tree, "Ping:Ping/Ping:Folders/Ping:Folder/Ping:Id")
        cached_heartbeat, cached_folders = self._ping_cache.get(device,
                                                                (None, []))
        heartbeat = heartbeat or cached_heartbeat
        folders = folders or cached_folders
        if heartbeat is None:
            return _wbxml_reply(("Ping:Ping", [("Ping:Status", "3")]))
        self._ping_cache[device] = (heartbeat, folders)

        changed = self._hold(("Ping", device), heartbeat, folders)
        if not changed:
            return _wbxml_reply(("Ping:Ping", [("Ping:Status", "1")]))
        return _wbxml_reply(("Ping:Ping", [
            ("Ping:Status", "2"),
            ("Ping:Folders", [("Ping:Folder", f) for f in changed])]))

    def _sync(self, device, body):
        if body:
            try:
                tree = wbxml.decode(body)
                if tree[0] != "AirSync:Sync":
                    raise wbxml.WbxmlError("root is %s" % tree[0])
                wait = wbxml.find(tree, "AirSync:Sync/AirSync:Wait")
                heartbeat = wbxml.find(
                    tree, "AirSync:Sync/AirSync:HeartbeatInterval")
                hold = (_positive_int(heartbeat) if heartbeat is not None
                        else _positive_int(wait) * 60 if wait is not None
                        else None)
            except (wbxml.WbxmlError, ValueError):
                return _wbxml_reply(("AirSync:Sync",
                                     [("AirSync:Status", "4")]))
            collections = wbxml.find_all(
                tree, "AirSync:Sync/AirSync:Collections/AirSync:Collection/"
                      "AirSync:CollectionId")
            keys = wbxml.find_all(
                tree, "AirSync:Sync/AirSync:Collections/AirSync:Collection/"
                      "AirSync:SyncKey")
            if "0" in keys:
                # the first Sync of a folder: a new SyncKey, at once
                return _wbxml_reply(("AirSync:Sync", [("AirSync:Collections", [
                    ("AirSync:Collection", [
                        ("AirSync:SyncKey", "1"),
                        ("AirSync:CollectionId", collection),
                        ("AirSync:Status", "1")])
                    for collection in collections])]))
            if wbxml.find_all(tree, "AirSync:Sync/AirSync:Partial"):
                # <Partial/>: what is not given is as in the cached request.
                cached_hold, cached_collections = self._sync_cache.get(
                    device, (None, []))
                hold = hold or cached_hold
                collections = collections or cached_collections
            self._sync_cache[device] = (hold, collections)
        else:
            hold, collections = self._sync_cache.get(device, (None, []))

        if not hold:
            return 200, [], b""
        changed = self._hold(("Sync", device), hold, collections)
        if not changed:
            return 200, [], b""
        return _wbxml_reply(("AirSync:Sync", [("AirSync:Collections", [
            ("AirSync:Collection", [
                ("AirSync:SyncKey", str(self._generation)),
                ("AirSync:CollectionId", collection),
                ("AirSync:Status", "1")])
            for collection in changed])]))

    def _hold(self, poll, seconds, folders):
        """Wait up to seconds for a change in folders (all if empty).

        Returns the changed folders, or [] when the time ran out, a newer
        poll of the same device took over (if supersede), or the backend
        is stopping.
        """
        if self.hold_cap is not None:
            seconds = min(seconds, self.hold_cap)
        sequence = self._poll_seq.get(poll, 0) + 1
        self._poll_seq[poll] = sequence
        seen = self._seen.setdefault(poll, self._generation)

        def changed():
            return sorted((f for f, generation in self._changes.items()
                           if generation > seen
                           and (not folders or f in folders)), key=_folder_key)

        self._cond.wait_for(lambda: (changed() or self._stopping
                                     or (self.supersede
                                         and self._poll_seq[poll]
                                         != sequence)),
                            timeout=seconds)
        result = changed()
        if result:
            self._seen[poll] = self._generation
        return result

    def _foldersync(self, body):
        try:
            tree = wbxml.decode(body)
            sync_key = wbxml.find(tree, "FolderHierarchy:FolderSync/"
                                        "FolderHierarchy:SyncKey")
        except wbxml.WbxmlError:
            return 400, [], b""
        changes = []
        if sync_key == "0":
            changes = [("FolderHierarchy:Count", str(len(FOLDERS)))]
            changes += [("FolderHierarchy:Add", [
                ("FolderHierarchy:ServerId", server_id),
                ("FolderHierarchy:ParentId", parent_id),
                ("FolderHierarchy:DisplayName", name),
                ("FolderHierarchy:Type", folder_type)])
                for server_id, parent_id, name, folder_type in FOLDERS]
        else:
            changes = [("FolderHierarchy:Count", "0")]
        return _wbxml_reply(("FolderHierarchy:FolderSync", [
            ("FolderHierarchy:Status", "1"),
            ("FolderHierarchy:SyncKey", "1"),
            ("FolderHierarchy:Changes", changes)]))

    def _provision(self, body):
        try:
            tree = wbxml.decode(body)
        except wbxml.WbxmlError:
            return 400, [], b""
        policy_path = ("Provision:Provision/Provision:Policies/"
                       "Provision:Policy/")
        policy_type = wbxml.find(tree, policy_path + "Provision:PolicyType")
        ack_key = wbxml.find(tree, policy_path + "Provision:PolicyKey")
        policy = [("Provision:PolicyType", policy_type or "")]
        if ack_key is None:
            policy += [
                ("Provision:Status", "1"),
                ("Provision:PolicyKey", TEMPORARY_POLICY_KEY),
                ("Provision:Data", [("Provision:EASProvisionDoc", [
                    ("Provision:DevicePasswordEnabled", "0")])])]
        elif ack_key == TEMPORARY_POLICY_KEY:
            policy += [("Provision:Status", "1"),
                       ("Provision:PolicyKey", POLICY_KEY)]
        else:
            policy += [("Provision:Status", "5")]
        return _wbxml_reply(("Provision:Provision", [
            ("Provision:Status", "1"),
            ("Provision:Policies", [("Provision:Policy", policy)])]))

    def control(self, method, path, query):
        """The /_sim/ API; returns (status, headers, body)."""
        params = urllib.parse.parse_qs(query)
        if method == "POST" and path == CONTROL_PREFIX + "notify":
            folders = params.get("folder", [])
            self.notify(*folders)
            result = {"notified": folders}
        elif method == "GET" and path == CONTROL_PREFIX + "requests":
            result = [request.to_json() for request in self.requests]
        elif method == "POST" and path == CONTROL_PREFIX + "clear":
            result = {"cleared": self.clear()}
        else:
            return 404, [], b""
        body = (json.dumps(result, indent=1) + "\n").encode("utf-8")
        return 200, [("Content-Type", "application/json")], body


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise ValueError("not a positive integer: %r" % text)
    return value


def _folder_key(folder_id):
    """Sort numeric folder ids numerically, before any others."""
    if folder_id.isdigit():
        return (0, int(folder_id), "")
    return (1, 0, folder_id)


def _wbxml_reply(tree):
    return 200, [("Content-Type", WBXML_CONTENT_TYPE)], wbxml.encode(tree)


class _Server(ThreadingHTTPServer):
    """One thread per connection; TLS handshakes happen in that thread;
    open connections are tracked so stop() can close them."""

    daemon_threads = True
    # socketserver's default backlog is 5: sixty Pings opened at once
    # would wait for SYN retries, seconds, and outlive their heartbeat
    request_queue_size = 128

    def __init__(self, address, handler, backend, ssl_context):
        self.backend = backend
        self.ssl_context = ssl_context
        self._connections = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self):
        sock, address = super().get_request()
        # Headers and body go out in separate writes; without NODELAY,
        # Nagle + delayed ACK adds 40 ms to some responses (TLS ones).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self):
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        """Peers that vanish (or fail TLS) are normal here; report the
        rest as socketserver does."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "EasBackend/1.0"

    def __getattr__(self, name):
        # BaseHTTPRequestHandler looks up do_<METHOD>; answering every
        # method here means unusual ones (PROPFIND, ...) are recorded too.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format, *args):
        """Quiet: callers see requests through on_request."""

    def _dispatch(self):
        # self.path may have been normalised ("//" -> "/"); the request
        # line has the target as sent.
        target = self.requestline.split()[1]
        path, _, query = target.partition("?")
        body = self._read_body()
        if body is None:
            self.close_connection = True
            return
        backend = self.server.backend
        if path.startswith(CONTROL_PREFIX):
            status, headers, reply = backend.control(self.command, path, query)
        else:
            request = RecordedRequest(
                self.command, target, self.request_version,
                list(self.headers.items()), body, time.time(),
                tuple(self.client_address[:2]), parse_query(query))
            status, headers, reply = backend.handle(request)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    def _read_body(self):
        """The request body, or None if the peer closed mid-body."""
        encoding = self.headers.get("Transfer-Encoding", "")
        if "chunked" in encoding.lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def _read_chunked(self):
        body = bytearray()
        while len(body) <= MAX_BODY:
            size_line = self.rfile.readline(1024)
            if not size_line:
                return None
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            chunk = self.rfile.read(size + 2)      # data and its CRLF
            if len(chunk) != size + 2:
                return None
            body += chunk[:-2]
        else:
            return None
        for _ in range(100):                       # trailers, then CRLF
            line = self.rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                break
        return bytes(body)


class CredentialBackend(EasBackend):
    """An EasBackend that checks Basic credentials itself.

    stores      {host or None: {user: password}}; the Host header picks a
                store, None is the store of any other host
    sogo_like   OPTIONS answers 200 text/html whatever the credentials
    """

    def __init__(self, stores, sogo_like=False, **kwargs):
        super().__init__(**kwargs)
        self.stores = stores
        self.sogo_like = sogo_like

    def valid(self, request):
        value = request.header("Authorization", "")
        if not value.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(
                value[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        host = (request.header("Host") or "").partition(":")[0].lower()
        store = self.stores.get(host, self.stores.get(None, {}))
        return user in store and store[user] == password

    def _answer(self, request):
        if request.method == "OPTIONS" and self.sogo_like:
            return (200, [("Content-Type", "text/html")],
                    b"<html><body>SOGo</body></html>\n")
        if not self.valid(request):
            return (401, [("WWW-Authenticate", 'Basic realm="backend"')],
                    b"")
        return super()._answer(request)


class SilentBackend(Service):
    """Accepts connections on 127.0.0.1 and reads whatever arrives, but
    never answers; connections stay open until the peer or stop() closes
    them.  Use it to check that nginx gives up on a dead backend."""

    def __init__(self, port=None, host="127.0.0.1"):
        self.host = host
        self.requested_port = port or 0
        self.port = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._received = []          # one bytearray per connection
        self._sockets = []
        self._threads = []
        self._listener = None

    def start(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, self.requested_port))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self):
        if self._listener is None:
            return
        self._stop.set()
        with self._cond:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()
        self._listener = None

    @property
    def connections(self):
        """Number of connections accepted so far."""
        with self._cond:
            return len(self._received)

    @property
    def received(self):
        """Bytes read so far, one bytes object per connection."""
        with self._cond:
            return [bytes(data) for data in self._received]

    def wait_for_connections(self, count, timeout=30.0):
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count,
                                       timeout):
                raise TimeoutError("silent backend got %d of %d connections"
                                   % (len(self._received), count))

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name="silent-backend")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            data = bytearray()
            with self._cond:
                self._sockets.append(sock)
                self._received.append(data)
                self._cond.notify_all()
            self._spawn(self._read_loop, sock, data)

    def _read_loop(self, sock, data):
        sock.settimeout(0.1)
        try:
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                with self._cond:
                    data += chunk
        except OSError:
            return
        finally:
            sock.close()
