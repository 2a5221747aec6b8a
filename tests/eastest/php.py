"""A PHP backend for differential tests: PHP's built-in web server
(`php -S 127.0.0.1:PORT router.php`, Debian's php-cli) whose router writes
what PHP itself read of each request, one JSON line per request, to a
record file: the request target, $_SERVER["QUERY_STRING"], and the
ActiveSync fields as Z-Push reads them from $_GET (Cmd, User, DeviceId,
DeviceType: names compared case-sensitively, the last occurrence wins,
"DeviceId[]" makes an array, which is recorded as a JSON list).

    with PhpBackend(workdir) as php:
        ... send requests through nginx to 127.0.0.1:php.port ...
        php.records()       # list of dicts, oldest first

arg_separator is "&" unless given: PhpBackend(workdir, separators="&;")
reads ";" as a separator too, as older Python (parse_qs before 3.9.2) and
some frameworks do.
"""

import json
import os
import pathlib
import shutil
import subprocess
import time

from .nginx import free_port
from .service import Service

ROUTER = r"""<?php
$fields = array();
foreach (array('Cmd', 'User', 'DeviceId', 'DeviceType') as $name) {
    $fields[$name] = isset($_GET[$name]) ? $_GET[$name] : null;
}
$record = array(
    'method' => $_SERVER['REQUEST_METHOD'],
    'target' => $_SERVER['REQUEST_URI'],
    'query' => isset($_SERVER['QUERY_STRING']) ? $_SERVER['QUERY_STRING']
                                               : '',
    'get_names' => array_map('strval', array_keys($_GET)),
    'fields' => $fields,
);
file_put_contents(getenv('EAS_PHP_RECORD'),
    json_encode($record, JSON_INVALID_UTF8_SUBSTITUTE
                         | JSON_UNESCAPED_SLASHES) . "\n",
    FILE_APPEND | LOCK_EX);
header('MS-Server-ActiveSync: 15.1');
header('Content-Type: text/plain');
echo "recorded\n";
return true;
"""


class PhpBackend(Service):
    """php -S on 127.0.0.1 with the recording router (module docstring)."""

    def __init__(self, workdir, separators="&"):
        self.workdir = pathlib.Path(workdir)
        self.separators = separators
        self.port = None
        self.record = self.workdir / "php-requests.jsonl"
        self.log = self.workdir / "php-server.log"
        self._process = None

    def start(self, timeout=30.0):
        binary = shutil.which("php")
        if binary is None:
            raise RuntimeError("php not found: install php-cli "
                               "(tools/install-deps.sh)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        router = self.workdir / "router.php"
        router.write_text(ROUTER)
        self.record.write_text("")
        env = dict(os.environ, EAS_PHP_RECORD=str(self.record))
        # a port taken by another process since free_port() handed it
        # out: another port, three tries in all
        for attempt in range(1, 4):
            self.port = free_port()
            with open(self.log, "wb") as log:
                self._process = subprocess.Popen(
                    [binary, "-n", "-d",
                     "arg_separator.input=" + self.separators,
                     "-d", "variables_order=EGPCS",
                     "-S", "127.0.0.1:%d" % self.port, str(router)],
                    cwd=str(self.workdir), env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT)
            # its own word that it listens: a connection could reach
            # another process that holds the port
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    break
                if ") started" in self.log.read_text(errors="replace"):
                    return self
                time.sleep(0.05)
            else:
                self.stop()
                raise TimeoutError("php -S did not listen on %d in %.0f s"
                                   % (self.port, timeout))
            output = self.log.read_text(errors="replace")
            self._process = None
            if "Address already in use" not in output or attempt == 3:
                raise RuntimeError("php -S exited: %s" % output)
        return self

    def stop(self):
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    def records(self):
        """What PHP read of each request so far, oldest first."""
        text = self.record.read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line]

    def wait_for(self, count, timeout=30.0):
        """Wait until at least count requests are recorded; return them."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            if len(records) >= count or time.monotonic() >= deadline:
                if len(records) < count:
                    raise TimeoutError("php recorded %d of %d requests: %s"
                                       % (len(records), count, records))
                return records
            time.sleep(0.02)
