"""Throwaway TLS material for tests, made with the openssl command line.

make_ca_and_cert(dir) writes, in dir:

    ca.pem, ca.key          a self-signed CA (RSA 2048, 90 days)
    server.pem, server.key  a server certificate signed by it, CN = the
                            first name, subjectAltName = every name
                            (DNS: for host names, IP: for addresses)

and returns their paths.  Files already present are reused.

issue_cert(dir, stem, ca, ca_key, names, ...) issues one more certificate
from any CA (a leaf, an intermediate CA with is_ca=True, or one valid
only between two dates, for an expired certificate) and returns
(certificate, key) paths.
"""

import ipaddress
import os
import subprocess
from dataclasses import dataclass

OPENSSL = "openssl"
DAYS = "90"


@dataclass
class Certs:
    dir: str
    ca: str          # CA certificate, the cafile for clients
    ca_key: str
    cert: str        # server certificate
    key: str         # server private key


def make_ca_and_cert(dir, names=("localhost", "127.0.0.1")):
    dir = os.path.abspath(dir)
    os.makedirs(dir, exist_ok=True)
    certs = Certs(dir, *(os.path.join(dir, name) for name in
                         ("ca.pem", "ca.key", "server.pem", "server.key")))
    if all(os.path.exists(path)
           for path in (certs.ca, certs.ca_key, certs.cert, certs.key)):
        return certs

    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-days", DAYS, "-subj", "/CN=ngx_eas test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", certs.ca_key, "-out", certs.ca)

    csr = os.path.join(dir, "server.csr")
    extensions = os.path.join(dir, "server.ext")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-subj", "/CN=%s" % names[0], "-keyout", certs.key, "-out", csr)
    with open(extensions, "w") as ext:
        ext.write("basicConstraints = CA:FALSE\n"
                  "keyUsage = critical, digitalSignature, keyEncipherment\n"
                  "extendedKeyUsage = serverAuth\n"
                  "subjectAltName = %s\n" % ",".join(map(_san, names)))
    _openssl("x509", "-req", "-in", csr, "-CA", certs.ca,
             "-CAkey", certs.ca_key, "-set_serial", str(int.from_bytes(
                 os.urandom(8), "big")), "-days", DAYS, "-sha256",
             "-extfile", extensions, "-out", certs.cert)
    os.remove(csr)
    os.remove(extensions)
    return certs


def issue_cert(dir, stem, ca, ca_key, names=("localhost", "127.0.0.1"),
               is_ca=False, start=None, end=None):
    """Write dir/stem.pem and dir/stem.key, signed by ca / ca_key.
    start and end ("YYYYMMDDHHMMSSZ") set the validity; otherwise DAYS
    from now."""
    dir = os.path.abspath(dir)
    os.makedirs(dir, exist_ok=True)
    cert, key = (os.path.join(dir, stem + ext) for ext in (".pem", ".key"))
    csr, ext_path = (os.path.join(dir, stem + ext)
                     for ext in (".csr", ".ext"))
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-subj", "/CN=%s" % names[0], "-keyout", key, "-out", csr)
    with open(ext_path, "w") as ext:
        if is_ca:
            ext.write("basicConstraints = critical, CA:TRUE\n"
                      "keyUsage = critical, keyCertSign, cRLSign\n")
        else:
            ext.write("basicConstraints = CA:FALSE\n"
                      "keyUsage = critical, digitalSignature, "
                      "keyEncipherment\n"
                      "extendedKeyUsage = serverAuth\n"
                      "subjectAltName = %s\n" % ",".join(map(_san, names)))
    if start is None:
        _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                 "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
                 "-days", DAYS, "-sha256", "-extfile", ext_path,
                 "-out", cert)
    else:
        # "openssl x509" cannot back-date; "openssl ca" can
        ca_dir = os.path.join(dir, stem + ".ca")
        os.makedirs(ca_dir, exist_ok=True)
        open(os.path.join(ca_dir, "index.txt"), "w").close()
        config = os.path.join(ca_dir, "ca.cnf")
        with open(config, "w") as conf:
            conf.write("[ca]\ndefault_ca = own\n[own]\n"
                       "database = %s/index.txt\nnew_certs_dir = %s\n"
                       "rand_serial = yes\ndefault_md = sha256\n"
                       "policy = any\nunique_subject = no\n"
                       "[any]\ncommonName = supplied\n" % (ca_dir, ca_dir))
        _openssl("ca", "-batch", "-config", config, "-cert", ca,
                 "-keyfile", ca_key, "-in", csr, "-out", cert, "-notext",
                 "-startdate", start, "-enddate", end,
                 "-extfile", ext_path)
    os.remove(csr)
    os.remove(ext_path)
    return cert, key


def _san(name):
    try:
        ipaddress.ip_address(name)
        return "IP:" + name
    except ValueError:
        return "DNS:" + name


def _openssl(*args):
    result = subprocess.run([OPENSSL, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=60)
    if result.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (
            args[0], result.stdout.decode("utf-8", "replace")))
