"""Run a real nginx for tests, the way nginx-tests (lib/Test/Nginx.pm) does.

    nginx = Nginx(workdir, module_path)
    nginx.render(TEMPLATE, port=port, backend_port=backend.port)
    nginx.start(ports=[port])
    ...
    nginx.stop()
    nginx.check_no_alerts()

Templates are python strings holding the http {} (or stream {}) part of
nginx.conf.  Placeholders are written ``${name}`` and filled by
string.Template.safe_substitute semantics: ONLY the braced form is a
placeholder, so nginx variables (``$host``, ``$remote_addr``) and ``$$``
need no escaping, and a ``${name}`` that no value is given for is left as
is (nginx reads ``${var}`` as its own variable).  So do not give a
placeholder the name of an nginx variable the template writes as
``${...}``.  Always available:

    ${dir}          the work directory (absolute)
    ${temp_paths}   every *_temp_path under the work directory, plus
                    "access_log ${dir}/access.log;" so that nothing is
                    written outside it; put it in the http block

The harness prepends the main-context prologue (load_module, daemon off,
master_process on, worker_processes 2, pid, error_log debug, user root,
events), so templates must not repeat those.  The nginx binary is
$NGINX_BIN, default /usr/sbin/nginx.
"""

import os
import random
import re
import signal
import socket
import string
import subprocess
import time

NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")

ALERT_RE = re.compile(r"\[(alert|crit|emerg)\]|Sanitizer|runtime error")
POLL_INTERVAL = 0.02

_ports_handed_out = set()
_random = random.Random()

# A port handed out here is bound later (by nginx, slapd, php), so the
# kernel must not give it to anyone else meanwhile: ports are taken below
# the range the kernel picks from for outgoing connections and bind(0),
# where only another free_port() could pick the same one.
PORT_RANGE_SIZE = 12000


def _port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if low - PORT_RANGE_SIZE < 1024:
        return None
    return low - PORT_RANGE_SIZE, low


def _bindable(port, host="127.0.0.1"):
    """Whether a server could listen on host:port now (with SO_REUSEADDR,
    as nginx and slapd do: a closed connection's TIME_WAIT is no bar)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def start_gateway(nginx_factory, template, files=None, more_ports=(),
                  start=True, **variables):
    """The usual gateway of a test: nginx_factory's instance of template
    listening on a free port of its own, given to the template as
    ${port} and kept as .port.  files maps a name in the instance's
    directory (${dir}) to the text written there before nginx starts
    (a password file, a rules file).  more_ports names other ports the
    template listens on (["other_port"]: ${other_port}, .other_port),
    each a free port of its own.  start=False leaves it configured but
    not started (the test starts it)."""
    ports = {name: free_port() for name in ("port",) + tuple(more_ports)}
    variables.update(ports)
    nginx = nginx_factory(template, listen=tuple(ports.values()),
                          start=start and not files, **variables)
    for name, port in ports.items():
        setattr(nginx, name, port)
    if files:
        for name, text in files.items():
            path = os.path.join(nginx.dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        if start:
            nginx.start(ports=tuple(ports.values()))
    return nginx


def free_port(host="127.0.0.1"):
    """A TCP port free on host right now, never the same one twice per
    process (so two servers of one test cannot be given the same), and
    outside the kernel's ephemeral range where it can."""
    span = _port_range()
    for _ in range(100):
        if span:
            port = _random.randrange(*span)
            if port in _ports_handed_out or not _bindable(port, host):
                continue
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port
    raise RuntimeError("no free port found in 100 tries")


class _BracedTemplate(string.Template):
    """string.Template where only ${name} is a placeholder."""
    pattern = r"""
        \$(?:
            (?P<escaped>(?!))
          | (?P<named>(?!))
          | \{(?P<braced>[_a-z][_a-z0-9]*)\}
          | (?P<invalid>(?!))
        )
    """


class Nginx:
    """One nginx instance (master + 2 workers) living in workdir."""

    worker_processes = 2

    def __init__(self, workdir, module_path=None, binary=None):
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.module_path = (os.path.abspath(module_path) if module_path
                            else None)
        self.binary = binary or NGINX_BIN
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.pid_path = os.path.join(self.dir, "nginx.pid")
        self.error_log_path = os.path.join(self.dir, "error.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.process = None
        # Regexes of [alert]/[crit]/[emerg] lines a test provokes on
        # purpose; the conftest teardown passes them to check_no_alerts().
        self.expected_alerts = []

    # Configuration ------------------------------------------------------

    @property
    def temp_paths(self):
        lines = ["%s %s/%s;" % (directive, self.dir, name) for directive, name
                 in (("client_body_temp_path", "client_body_temp"),
                     ("proxy_temp_path", "proxy_temp"),
                     ("fastcgi_temp_path", "fastcgi_temp"),
                     ("uwsgi_temp_path", "uwsgi_temp"),
                     ("scgi_temp_path", "scgi_temp"))]
        lines.append("access_log %s/access.log;" % self.dir)
        return "\n    ".join(lines)

    def prologue(self):
        lines = []
        if self.module_path:
            lines.append("load_module %s;" % self.module_path)
        lines += [
            "daemon off;",
            "master_process on;",
            "worker_processes %d;" % self.worker_processes,
            "pid %s;" % self.pid_path,
            "error_log %s debug;" % self.error_log_path,
            "user root;",
            "events { worker_connections 1024; }",
        ]
        return "\n".join(lines) + "\n\n"

    def render(self, template, **variables):
        """Write nginx.conf = prologue + filled template; return the text."""
        values = {"dir": self.dir, "temp_paths": self.temp_paths}
        values.update(variables)
        text = self.prologue() + _BracedTemplate(template).safe_substitute(
            {name: str(value) for name, value in values.items()})
        with open(self.conf_path, "w") as conf:
            conf.write(text)
        return text

    def test_config(self, timeout=30):
        """Run nginx -t; return (exit code, stdout + stderr)."""
        result = subprocess.run(
            [self.binary, "-t", "-p", self.dir, "-c", self.conf_path,
             "-e", self.error_log_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=timeout)
        return result.returncode, result.stdout.decode("utf-8", "replace")

    def config_error(self):
        """Run nginx -t, which must fail with an [emerg]; return its
        output.  The [emerg] line is expected in the error log."""
        self.expected_alerts.append(r"\[emerg\]")
        code, output = self.test_config()
        assert code != 0 and "[emerg]" in output, output
        return output

    # Process control ------------------------------------------------------

    def start(self, ports=(), timeout=30.0):
        """Start nginx; return once the pid file names our master and every
        port in ports accepts connections.  If a listen port was taken by
        another process after free_port() handed it out (nginx exits with
        EADDRINUSE once its own retries are spent), wait for the port to
        be free again and start again, START_TRIES times in all."""
        if self.process is not None:
            raise RuntimeError("nginx in %s is already running" % self.dir)
        for attempt in range(1, self.START_TRIES + 1):
            marks = (self.mark(), _size(self.stderr_path))
            with open(self.stderr_path, "ab") as stderr:
                self.process = subprocess.Popen(
                    [self.binary, "-p", self.dir, "-c", self.conf_path,
                     "-e", self.error_log_path],
                    stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
            deadline = time.monotonic() + timeout
            try:
                self._poll_until(self._pid_file_is_ours, deadline,
                                 "the pid file")
                for port in ports:
                    self._poll_until(lambda: _accepts(port), deadline,
                                     "port %d to accept connections" % port)
                return
            except RuntimeError:
                busy = self._ports_in_use(*marks)
                if not busy or attempt == self.START_TRIES or self.running:
                    raise
            self.process = None
            for address in busy:
                self.expected_alerts += [
                    r"\[emerg\] .*bind\(\) to %s failed \(98: Address "
                    r"already in use\)" % re.escape(address),
                    r"\[emerg\] .*still could not bind\(\)"]
            self._poll_until(lambda: all(_bindable_address(address)
                                         for address in busy),
                             time.monotonic() + timeout,
                             "free port in %s" % ", ".join(busy))

    START_TRIES = 3

    def _ports_in_use(self, error_mark, stderr_mark):
        """host:port of every listen address nginx found taken since the
        marks."""
        lines = self.error_lines_since(error_mark)
        lines += _read_text(self.stderr_path)[stderr_mark:].splitlines()
        return sorted({match.group(1) for line in lines
                       for match in [_BIND_FAILED_RE.search(line)] if match})

    def reload(self, timeout=30.0):
        """SIGHUP; return once a new generation of workers has started and
        the old one is shutting down.  Raises RuntimeError with the
        [emerg] line if nginx refused the new configuration."""
        mark = self.mark()
        self.process.send_signal(signal.SIGHUP)

        def reloaded():
            lines = self.error_lines_since(mark)
            failed = [line for line in lines if "[emerg]" in line]
            if failed:
                raise RuntimeError("reload failed: %s" % failed[0])
            started = sum("start worker process " in line for line in lines)
            retiring = sum("gracefully shutting down" in line
                           for line in lines)
            return (started >= self.worker_processes
                    and retiring >= self.worker_processes)

        self._poll_until(reloaded, time.monotonic() + timeout,
                         "the new worker processes")

    def stop(self, timeout=10.0):
        """Graceful stop (SIGQUIT); SIGTERM then SIGKILL if it takes longer
        than timeout.  Returns the exit code (None if never started)."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 5.0),
                          (signal.SIGKILL, 5.0)):
            if process.poll() is not None:
                break
            process.send_signal(sig)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        return process.poll()

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    # Logs ---------------------------------------------------------------

    def mark(self):
        """Current size of error.log; pass it to error_lines_since()."""
        try:
            return os.path.getsize(self.error_log_path)
        except FileNotFoundError:
            return 0

    def error_log(self):
        return _read_text(self.error_log_path)

    def error_lines_since(self, mark):
        """Complete error.log lines written after mark()."""
        try:
            with open(self.error_log_path, "rb") as log:
                log.seek(mark)
                data = log.read()
        except FileNotFoundError:
            return []
        text = data.decode("utf-8", "replace")
        if not text.endswith("\n"):
            text = text[:text.rfind("\n") + 1]     # drop a half-written line
        return text.splitlines()

    def check_no_alerts(self, skip=()):
        """Raise AssertionError listing every [alert], [crit], [emerg],
        Sanitizer or "runtime error" line of error.log and of nginx's
        stderr, except those matched by a regex in skip."""
        skip_res = [re.compile(pattern) for pattern in skip]
        bad = []
        for path in (self.error_log_path, self.stderr_path):
            for line in _read_text(path).splitlines():
                if ALERT_RE.search(line) and not any(
                        pattern.search(line) for pattern in skip_res):
                    bad.append("%s: %s" % (os.path.basename(path), line))
        if bad:
            raise AssertionError("unexpected alerts in %s:\n%s"
                                 % (self.dir, "\n".join(bad[:50])))

    def access_log(self, name="access.log"):
        """Complete lines of an access log in the work directory (a line
        being written is left out)."""
        text = _read_text(os.path.join(self.dir, name))
        return text[:text.rfind("\n") + 1].splitlines()

    def wait_for_access_log(self, count, name="access.log", timeout=30.0):
        """Wait until the access log has at least count lines; return them.

        nginx logs after the response is sent, so a client can see the
        response before its log line exists."""
        deadline = time.monotonic() + timeout
        while len(self.access_log(name)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError("%s has %d of %d lines after %.1f s"
                                   % (name, len(self.access_log(name)), count,
                                      timeout))
            time.sleep(POLL_INTERVAL)
        return self.access_log(name)

    # Helpers --------------------------------------------------------------

    def _pid_file_is_ours(self):
        try:
            with open(self.pid_path) as pid_file:
                return int(pid_file.read().strip() or 0) == self.process.pid
        except (FileNotFoundError, ValueError):
            return False

    def _poll_until(self, condition, deadline, what):
        while not condition():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError("nginx exited with %s while waiting for "
                                   "%s:\n%s" % (self.process.returncode, what,
                                                self._log_tail()))
            if time.monotonic() > deadline:
                raise TimeoutError("nginx: no %s in time:\n%s"
                                   % (what, self._log_tail()))
            time.sleep(POLL_INTERVAL)

    def _log_tail(self, lines=20):
        tail = _read_text(self.stderr_path).splitlines()[-lines:]
        tail += _read_text(self.error_log_path).splitlines()[-lines:]
        return "\n".join(tail)


_BIND_FAILED_RE = re.compile(
    r"bind\(\) to (\S+) failed \(98: Address already in use\)")


def _bindable_address(address):
    host, _, port = address.rpartition(":")
    return _bindable(int(port), host.strip("[]"))


def _size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_text(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
