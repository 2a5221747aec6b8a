"""Run a real redis-server for tests, on 127.0.0.1 and a free high port.

    with RedisServer(workdir) as redis:
        redis.command("GET", "key")
        redis.stop(); redis.start()         # killed and back, same port
        redis.sleep_in_background(3)        # DEBUG SLEEP: a slow Redis

Every wait is bounded; the server is killed when the block ends.  The
binary is $REDIS_SERVER, default /usr/bin/redis-server (Debian's
redis-server package).
"""

import os
import socket
import subprocess
import threading
import time

from eastest.nginx import free_port

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
POLL_INTERVAL = 0.02


class RedisError(Exception):
    pass


class RedisServer:
    def __init__(self, workdir, password=None, port=None):
        self.workdir = str(workdir)
        self.password = password
        self.port = port or free_port()
        self.process = None
        self.log = os.path.join(self.workdir, "redis.log")
        os.makedirs(self.workdir, exist_ok=True)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=20.0):
        args = [REDIS_SERVER, "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.workdir, "--logfile", self.log,
                "--daemonize", "no", "--enable-debug-command", "local"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited: %s"
                                   % _tail(self.log))
            try:
                if self.command("PING") == "PONG":
                    return self
            except (OSError, RedisError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer on %d"
                                   % self.port)
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout=10.0):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def command(self, *args, timeout=10.0):
        """One command on a new connection (AUTH first if needed)."""
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=timeout) as sock:
            reader = sock.makefile("rb")
            if self.password:
                sock.sendall(_encode(("AUTH", self.password)))
                _read(reader)
            sock.sendall(_encode(args))
            return _read(reader)

    def sleep_in_background(self, seconds):
        """DEBUG SLEEP: Redis answers nobody for that long."""
        thread = threading.Thread(
            target=self.command, args=("DEBUG", "SLEEP", str(seconds)),
            kwargs={"timeout": seconds + 10}, daemon=True)
        thread.start()
        return thread

    def keys(self, pattern="*"):
        return sorted(k.decode() for k in self.command("KEYS", pattern))


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read(reader):
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(reader) for _ in range(n)]
    raise OSError("unexpected reply %r" % line)


def _tail(path):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-10:])
    except OSError:
        return ""


class RogueRedis:
    """A Redis impostor on 127.0.0.1 (a rogue server or a man in the
    middle): it answers AUTH, SELECT, PING and commands as Redis would,
    and on each SUBSCRIBE confirms it, then sends ``payloads[k]`` (k the
    number of subscriptions before it, modulo their count), a raw RESP
    byte string or an iterable of chunks.  It counts the subscriptions,
    and per subscription the bytes it could send before the gateway
    closed the connection (``sent``, with ``closed`` true)."""

    def __init__(self, payloads, greeting=None):
        self.payloads = payloads
        self.greeting = greeting          # sent at once, then closed
        self.port = free_port()
        self.subscriptions = []           # dicts: sent, closed
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._client, args=(conn,),
                             daemon=True).start()

    def _client(self, conn):
        conn.settimeout(10)
        if self.greeting is not None:
            with self.lock:
                self.subscriptions.append({"sent": 0, "closed": True})
            try:
                conn.sendall(self.greeting)
            finally:
                conn.close()
            return
        reader = conn.makefile("rb")
        try:
            while not self.stopping:
                try:
                    command = _read(reader)
                except (OSError, ValueError):
                    return
                if not isinstance(command, list) or not command:
                    return
                name = command[0].upper()
                if name == b"SUBSCRIBE":
                    self._subscribed(conn, command[1])
                    return
                if name == b"PING":
                    conn.sendall(b"+PONG\r\n")
                elif name in (b"AUTH", b"SELECT"):
                    conn.sendall(b"+OK\r\n")
                else:
                    conn.sendall(b"*2\r\n:0\r\n:0\r\n")
        finally:
            reader.close()
            conn.close()

    def _subscribed(self, conn, channel):
        with self.lock:
            k = len(self.subscriptions)
            record = {"sent": 0, "closed": False}
            self.subscriptions.append(record)
        conn.sendall(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n"
                     % (len(channel), channel))
        payload = self.payloads[k % len(self.payloads)]
        chunks = [payload] if isinstance(payload, bytes) else payload
        try:
            for chunk in chunks:
                if self.stopping:
                    return
                conn.sendall(chunk)
                record["sent"] += len(chunk)
            # the rest of the connection: wait for the gateway to end it
            while not self.stopping:
                try:
                    if not conn.recv(4096):
                        break
                except socket.timeout:
                    continue
        except OSError:
            pass
        record["closed"] = True
