"""A real OpenLDAP directory for tests: Debian's slapd, started by the test
with its own configuration and database in a temporary directory, on
127.0.0.1 high ports, plain ldap:// (StartTLS offered) and ldaps://.

    Slapd(dir, certs).start()   loads the entries, starts slapd -d 0
                                (stats=True: -d 256, operations_since())
    .kill() / .restart()        SIGKILL, then start again on the same ports
    .stop()                     SIGTERM, then SIGKILL after a deadline
    .url / .ldaps_url           ldap://127.0.0.1:P, ldaps://127.0.0.1:Q

The schema is the stock core / cosine / inetorgperson plus a small one
for Exchange's two device list attributes and sAMAccountName, so that
filters and attribute names are those of an Active Directory.

slapd_fixture() makes the pytest fixture "slapd" of a test file: a started Slapd holding base_entries(people, members).

BlackHole() is a server that accepts TCP connections and never answers
(a hung directory): it holds each one for at most `hold` seconds, or
until release().
"""

import base64
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from .nginx import _bindable, free_port
from .service import Service

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"

SUFFIX = "dc=example,dc=org"
ADMIN_DN = "cn=admin," + SUFFIX
ADMIN_PASSWORD = "admin-secret"
SERVICE_DN = "cn=eas-gateway,ou=services," + SUFFIX
SERVICE_PASSWORD = "service-secret"
GROUP_DN = "cn=mobile,ou=groups," + SUFFIX

EAS_SCHEMA = """
attributetype ( 1.3.6.1.4.1.4203.666.11.77.1
    NAME 'msExchMobileAllowedDeviceIDs'
    EQUALITY caseIgnoreMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.4203.666.11.77.2
    NAME 'msExchMobileBlockedDeviceIDs'
    EQUALITY caseIgnoreMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.4203.666.11.77.3
    NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch
    SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.77.4
    NAME 'easMobileUser' AUXILIARY
    MAY ( msExchMobileAllowedDeviceIDs $ msExchMobileBlockedDeviceIDs $
          sAMAccountName ) )
"""

SLAPD_CONF = """
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {dir}/eas.schema

pidfile {dir}/slapd.pid
modulepath {modules}
moduleload back_mdb

TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}

sizelimit 500

database mdb
maxsize 1073741824
suffix "{suffix}"
rootdn "{admin}"
rootpw {admin_password}
directory {dir}/db

access to attrs=userPassword
    by anonymous auth
    by self read
    by * none
access to *
    by * read
"""


# search then bind as the service account: eas_ldap_server parameters
SEARCH_PARAMS = ("base=" + SUFFIX + " filter=(sAMAccountName=%u) bind_dn="
                 + SERVICE_DN + " bind_password=" + SERVICE_PASSWORD)


def sync(port, prefix, user, password, device="DEV1", timeout=30):
    """An empty Sync to /<prefix>/Microsoft-Server-ActiveSync on
    127.0.0.1:port with Basic credentials; the Response."""
    from .client import EasClient
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8"))
    client = EasClient("http://127.0.0.1:%d" % port)
    return client.raw(
        "POST", "/%s/Microsoft-Server-ActiveSync?Cmd=Sync&User=u"
        "&DeviceId=%s&DeviceType=iPhone" % (prefix, device),
        [("Authorization", "Basic " + token.decode("ascii")),
         ("MS-ASProtocolVersion", "14.1"), ("Content-Length", "0")],
        timeout=timeout)


def person(uid, password, cn=None, allowed=(), blocked=(), sam=None,
           ou="people", mail=None):
    """One user entry as LDIF lines."""
    lines = ["dn: uid=%s,ou=%s,%s" % (uid, ou, SUFFIX),
             "objectClass: inetOrgPerson", "objectClass: easMobileUser",
             "uid: %s" % uid, "cn: %s" % (cn or uid), "sn: %s" % uid,
             "userPassword: %s" % password,
             "sAMAccountName: %s" % (sam or uid)]
    lines += ["mail: %s" % mail] if mail else []
    lines += ["msExchMobileAllowedDeviceIDs: %s" % d for d in allowed]
    lines += ["msExchMobileBlockedDeviceIDs: %s" % d for d in blocked]
    return lines


def base_entries(people, members):
    """The tree: the suffix, people, services, groups and one group."""
    entries = [
        ["dn: " + SUFFIX, "objectClass: dcObject",
         "objectClass: organization", "o: example", "dc: example"],
        ["dn: ou=people," + SUFFIX, "objectClass: organizationalUnit",
         "ou: people"],
        ["dn: ou=admins," + SUFFIX, "objectClass: organizationalUnit",
         "ou: admins"],
        ["dn: ou=services," + SUFFIX, "objectClass: organizationalUnit",
         "ou: services"],
        ["dn: ou=groups," + SUFFIX, "objectClass: organizationalUnit",
         "ou: groups"],
        ["dn: " + SERVICE_DN, "objectClass: person", "cn: eas-gateway",
         "sn: gateway", "userPassword: " + SERVICE_PASSWORD],
        ["dn: " + GROUP_DN, "objectClass: groupOfNames", "cn: mobile"]
        + ["member: uid=%s,ou=people,%s" % (uid, SUFFIX) for uid in members],
    ]
    return entries + list(people)


def slapd_fixture(people=None, members=("jdoe",), stats=False, edit=None,
                  scope="module"):
    """A fixture "slapd" of that scope (it asks for certs and
    tmp_path_factory): a started Slapd holding people (default: jdoe,
    password secret) and the group of members; edit(entries), if given,
    changes the entries first.  In a test file:

        slapd = directory.slapd_fixture(stats=True)
    """
    @pytest.fixture(scope=scope)
    def slapd(tmp_path_factory, certs):
        entries = base_entries(people or [person("jdoe", "secret")],
                               members=list(members))
        if edit:
            edit(entries)
        with Slapd(str(tmp_path_factory.mktemp("slapd")), certs, entries,
                   stats=stats) as server:
            yield server
    return slapd


class Slapd(Service):
    def __init__(self, dir, certs, entries, stats=False):
        self.dir = os.path.abspath(dir)
        self.stats = stats
        self.certs = certs
        self.entries = entries
        self.port = free_port()
        self.ldaps_port = free_port()
        self.process = None
        self.url = "ldap://127.0.0.1:%d" % self.port
        self.ldaps_url = "ldaps://127.0.0.1:%d" % self.ldaps_port

    START_TRIES = 3

    def start(self, timeout=30.0):
        """Start slapd; return once both ports accept connections.  If a
        port was taken by another process after free_port() handed it
        out, wait for it to be free and start again (START_TRIES in all)."""
        conf = os.path.join(self.dir, "slapd.conf")
        if not os.path.exists(conf):
            self._configure(conf)
        log_path = os.path.join(self.dir, "slapd.log")
        for attempt in range(1, self.START_TRIES + 1):
            mark = os.path.getsize(log_path) if os.path.exists(log_path) \
                else 0
            log = open(log_path, "ab")
            self.process = subprocess.Popen(
                [SLAPD, "-d", "256" if self.stats else "0", "-f", conf,
                 "-h", "%s/ %s/" % (self.url, self.ldaps_url)],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.monotonic() + timeout
            probes = 0
            while True:
                up = _accepts(self.port)
                probes += up
                if up:
                    up = _accepts(self.ldaps_port)
                    probes += up
                if up:
                    self._wait_logged(log_path, mark, probes, deadline)
                    return self
                if self.process.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("slapd did not listen: " +
                                       self._log_tail())
                time.sleep(0.05)
            with open(log_path, "rb") as f:
                f.seek(mark)
                taken = (b"Address already in use" in f.read()
                         or not _bindable(self.port)
                         or not _bindable(self.ldaps_port))
            if not taken or attempt == self.START_TRIES:
                raise RuntimeError("slapd exited %s: %s" % (
                    self.process.returncode, self._log_tail()))
            self.process = None
            while not (_bindable(self.port) and _bindable(self.ldaps_port)):
                if time.monotonic() > deadline:
                    raise RuntimeError("slapd: ports %d, %d still taken"
                                       % (self.port, self.ldaps_port))
                time.sleep(0.05)
        return self

    def _wait_logged(self, log_path, mark, probes, deadline):
        """With stats, slapd logs the connections start() made to see its
        ports accept (ACCEPT, then closed) a moment after they are gone:
        wait for those lines, so that a log_size() taken after start()
        is past them and a test counting connections sees only its own."""
        if not self.stats:
            return
        while True:
            with open(log_path, "rb") as f:
                f.seek(mark)
                text = f.read()
            if (text.count(b" ACCEPT from ") >= probes
                    and text.count(b" closed") >= probes):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("slapd did not log its start: " +
                                   self._log_tail())
            time.sleep(0.05)

    def log_size(self):
        """Where slapd.log ends now: pass it to operations_since()."""
        return os.path.getsize(os.path.join(self.dir, "slapd.log"))

    def operations_since(self, mark, what="SRCH"):
        """With stats=True: the operations logged after mark, such as
        'SRCH base="..." scope=2 deref=0 filter="..."'."""
        with open(os.path.join(self.dir, "slapd.log"), "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        return [line.split(" " + what + " ", 1)[1]
                for line in text.splitlines() if " %s " % what in line]

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self):
        self.kill()
        return self.start()

    def stop(self, timeout=10.0):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def _configure(self, conf):
        os.makedirs(os.path.join(self.dir, "db"), exist_ok=True)
        with open(os.path.join(self.dir, "eas.schema"), "w") as f:
            f.write(EAS_SCHEMA)
        with open(conf, "w") as f:
            f.write(SLAPD_CONF.format(
                schema=SCHEMA_DIR, dir=self.dir, modules=MODULE_DIR,
                ca=self.certs.ca, cert=self.certs.cert, key=self.certs.key,
                suffix=SUFFIX, admin=ADMIN_DN,
                admin_password=ADMIN_PASSWORD))
        ldif = os.path.join(self.dir, "data.ldif")
        with open(ldif, "w") as f:
            f.write("\n\n".join("\n".join(e) for e in self.entries) + "\n")
        added = subprocess.run([SLAPADD, "-q", "-f", conf, "-l", ldif],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
        if added.returncode:
            raise RuntimeError("slapadd failed: %s" % added.stdout.decode(
                "utf-8", "replace")[-2000:])

    def _log_tail(self):
        try:
            with open(os.path.join(self.dir, "slapd.log"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""


class BlackHole:
    """Accepts connections and never says a word; each is closed after
    `hold` seconds at most, and all of them on close()."""

    def __init__(self, hold=30.0):
        self.hold = hold
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "ldap://127.0.0.1:%d" % self.port
        self.accepted = 0
        self.closing = threading.Event()
        self.held = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                self._expire()
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.held.append((time.monotonic() + self.hold, conn))
            self._expire()

    def _expire(self):
        now = time.monotonic()
        with self.lock:
            for item in list(self.held):
                if item[0] <= now:
                    item[1].close()
                    self.held.remove(item)

    def release(self):
        """Close the connections held now: a waiting client sees the
        server go away."""
        with self.lock:
            for _, conn in self.held:
                conn.close()
            self.held = []

    def close(self):
        self.closing.set()
        self.thread.join(5)
        for _, conn in self.held:
            conn.close()
        self.sock.close()


def _accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def available():
    return os.path.exists(SLAPD) and shutil.which("ldapwhoami") is not None
