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
