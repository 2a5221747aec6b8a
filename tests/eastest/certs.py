"""Throwaway TLS material for tests, made with the openssl command line.

make_ca_and_cert(dir) writes, in dir:

    ca.pem, ca.key          a self-signed CA (RSA 2048, 30 days)
    server.pem, server.key  a server certificate signed by it, CN = the
                            first name, subjectAltName = every name
                            (DNS: for host names, IP: for addresses)

and returns their paths.  Files already present are reused.
"""

import ipaddress
import os
import subprocess
from dataclasses import dataclass

OPENSSL = "openssl"
DAYS = "30"


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
