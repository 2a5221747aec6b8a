"""A small HTTP/2 client for the tests, on Debian's python3-h2.

H2Client(port, tls=True, cafile=...) speaks h2 over TLS (ALPN "h2");
tls=False speaks h2c with prior knowledge.  Several requests may be open
at once on the one connection (one stream each); a reader thread feeds
the connection and keeps each stream's answer:

    client = H2Client(port, tls=False)
    sid = client.request("POST", target, headers, body)
    status, headers, body = client.response(sid, timeout=10)

Every wait has a deadline; close() ends the connection.
"""

import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class H2Client:

    def __init__(self, port, host="127.0.0.1", tls=False, cafile=None,
                 server_hostname="localhost", timeout=10.0):
        self.scheme = "https" if tls else "http"
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            context = ssl.create_default_context(cafile=cafile)
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname=server_hostname)
            if sock.selected_alpn_protocol() != "h2":
                sock.close()
                raise ConnectionError("the server did not choose h2")
        sock.settimeout(0.1)
        self.sock = sock
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True,
                                             header_encoding="utf-8"))
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.streams = {}
        self.terminated = None      # the GOAWAY event, if any
        self.closed = False
        with self.lock:
            self.conn.initiate_connection()
            self._flush()
        self.reader = threading.Thread(target=self._read_loop, daemon=True,
                                       name="h2client")
        self.reader.start()

    # Requests ---------------------------------------------------------

    def request(self, method, target, headers=(), body=b"",
                content_length=True, end=True):
        """Open a stream; body sent at once (end=False leaves it open for
        send()).  Returns the stream id."""
        fields = [(":method", method), (":scheme", self.scheme),
                  (":authority", "localhost"), (":path", target)]
        fields += [(name.lower(), value) for name, value in headers]
        if content_length and body is not None:
            fields.append(("content-length", str(len(body))))
        with self.lock:
            sid = self.conn.get_next_available_stream_id()
            with self.cond:
                self.streams[sid] = {"status": None, "headers": [],
                                     "body": bytearray(), "ended": False,
                                     "reset": None}
            self.conn.send_headers(sid, fields,
                                   end_stream=end and not body)
            self._flush()
        if body:
            self.send(sid, body, end=end)
        return sid

    def send(self, sid, data, end=False, timeout=10.0):
        """Send data on a stream as the flow-control window allows."""
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while True:
            with self.lock:
                window = min(self.conn.local_flow_control_window(sid),
                             self.conn.max_outbound_frame_size)
                size = min(window, len(view))
                if size or not view:
                    last = end and size == len(view)
                    self.conn.send_data(sid, bytes(view[:size]),
                                        end_stream=last)
                    self._flush()
                    view = view[size:]
                    if not view:
                        return
            with self.cond:
                if time.monotonic() > deadline:
                    raise TimeoutError("no flow-control window on stream %d"
                                       % sid)
                self.cond.wait(0.05)

    def response(self, sid, timeout=10.0):
        """(status, headers dict, body) once the stream has ended."""
        with self.cond:
            if not self.cond.wait_for(
                    lambda: self.streams[sid]["ended"]
                    or self.streams[sid]["reset"] is not None
                    or self.closed, timeout):
                raise TimeoutError("no answer on stream %d" % sid)
            stream = self.streams[sid]
            if not stream["ended"]:
                raise ConnectionError("stream %d reset (%r) or closed"
                                      % (sid, stream["reset"]))
            return (stream["status"], dict(stream["headers"]),
                    bytes(stream["body"]))

    def pending(self, sid):
        with self.cond:
            return not self.streams[sid]["ended"]

    def close(self):
        with self.lock:
            try:
                self.conn.close_connection()
                self._flush()
            except Exception:
                pass
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.reader.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # Internals --------------------------------------------------------

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _read_loop(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ValueError):
                break
            if not data:
                break
            with self.lock:
                try:
                    events = self.conn.receive_data(data)
                except Exception:
                    break
                for event in events:
                    self._event(event)
                try:
                    self._flush()
                except OSError:
                    break
            with self.cond:
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _event(self, event):
        with self.cond:
            stream = self.streams.get(getattr(event, "stream_id", None))
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
                stream["status"] = int(headers[":status"])
                stream["headers"] = [(k, v) for k, v in event.headers
                                     if not k.startswith(":")]
            elif isinstance(event, h2.events.DataReceived):
                stream["body"] += event.data
                try:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id)
                except h2.exceptions.StreamClosedError:
                    pass
            elif isinstance(event, h2.events.StreamEnded):
                stream["ended"] = True
            elif isinstance(event, h2.events.StreamReset):
                stream["reset"] = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event
