"""The Debian package libnginx-mod-http-eas (make deb): built with
dh_nginx, lintian clean, installed with apt-get next to Debian's nginx,
loaded through the snippet dh_nginx enables in /etc/nginx/modules-enabled,
a request through it, then removed and purged without a trace."""

import glob
import json
import os
import subprocess

import pytest

from eastest.client import EasClient
from eastest.nginx import free_port

PACKAGE = "libnginx-mod-http-eas"
MODULE_SO = "/usr/lib/nginx/modules/ngx_http_eas_module.so"
AVAILABLE = "/usr/share/nginx/modules-available/mod-http-eas.conf"
ENABLED = "/etc/nginx/modules-enabled/50-mod-http-eas.conf"
EXAMPLES = "/usr/share/doc/%s/examples" % PACKAGE

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="installs a package: needs root")

# nginx.conf the way Debian's own includes module snippets (first, before
# "events"); the prefix directory gets Debian's "modules" link, as
# /usr/share/nginx has
LOAD_SNIPPETS = "include /etc/nginx/modules-enabled/50-mod-http-eas.conf;\n"

NGINX_CONFIG = """
http {
    ${temp_paths}
    include ${examples}/eas-log-formats.conf;

    server {
        listen 127.0.0.1:${port};
        access_log ${dir}/eas.log eas_text;

        location /Microsoft-Server-ActiveSync {
            eas on;
            proxy_pass http://127.0.0.1:${backend_port};
        }
    }
}
"""


def _run(*args, **kwargs):
    return subprocess.run(args, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=kwargs.pop("timeout", 600), **kwargs)


def _apt(*args):
    """apt-get that waits (up to 5 min) for another apt or dpkg holding
    the dpkg lock, rather than failing at once: the box may be busy."""
    return _run("apt-get", "-o", "DPkg::Lock::Timeout=300", *args)


def _installed():
    result = _run("dpkg-query", "-W", "-f=${Status}", PACKAGE)
    return b"install ok installed" in result.stdout


@pytest.fixture(scope="module")
def package(repo_root):
    """Build the package once; purge it after the module's tests, and
    leave the box as it was (a package installed before is put back)."""
    was_installed = _installed()
    result = _run("make", "-C", str(repo_root), "deb")
    assert result.returncode == 0, result.stdout.decode("utf-8", "replace")
    debs = glob.glob(str(repo_root / "build" / "deb" / (PACKAGE + "_*.deb")))
    assert len(debs) == 1, debs
    yield debs[0]
    _apt("purge", "-y", PACKAGE)
    if was_installed:
        _apt("install", "-y", debs[0])


def test_package_has_the_debian_module_shape(package):
    fields = _run("dpkg-deb", "-f", package, "Depends").stdout.decode()
    abi = [dep.strip() for dep in fields.split(",")
           if dep.strip().startswith("nginx-abi-")]
    # the ABI of the nginx the module was built against, exactly
    with open("/usr/share/nginx/src/debian/libnginx-mod.abisubstvars") as f:
        want = [line.split("=", 1)[1].strip() for line in f
                if line.startswith("nginx:abi=")]
    assert abi == want, fields

    files = _run("dpkg-deb", "-c", package).stdout.decode()
    for path in ("." + MODULE_SO, "." + AVAILABLE,
                 "./usr/share/doc/%s/copyright" % PACKAGE,
                 "./usr/share/doc/%s/README.md.gz" % PACKAGE,
                 "./usr/bin/eas-probe",
                 "./usr/share/libnginx-mod-http-eas/python/eastest/client.py",
                 "." + EXAMPLES + "/nginx.conf"):
        assert path in files, path


def test_install_load_request_remove_purge(package, nginx_factory, backend,
                                           tmp_path):
    result = _apt("install", "-y", package)
    assert result.returncode == 0, result.stdout.decode("utf-8", "replace")
    assert _installed()
    assert os.path.isfile(MODULE_SO)
    assert os.path.realpath(ENABLED) == AVAILABLE
    with open(AVAILABLE) as snippet:
        assert snippet.read().strip() == \
            "load_module modules/ngx_http_eas_module.so;"

    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, module=False, start=False,
                          port=port, backend_port=backend.port,
                          examples=EXAMPLES)
    os.symlink("/usr/lib/nginx/modules", os.path.join(nginx.dir, "modules"))
    with open(nginx.conf_path) as conf:
        text = conf.read()
    with open(nginx.conf_path, "w") as conf:
        conf.write(LOAD_SNIPPETS + text)
    code, output = nginx.test_config()
    assert code == 0, output
    nginx.start(ports=[port])

    client = EasClient("http://127.0.0.1:%d" % port, user="jdoe",
                       password="secret", device_id="DEB0001",
                       device_type="SmartPhone")
    folders = client.foldersync()
    assert folders.status == 200 and folders.eas_status() == 1
    assert backend.wait_for(1)[0].eas.device_id == "DEB0001"

    # the probe, as installed: this gateway has no pre-authentication,
    # and the probe says so
    result = _run("/usr/bin/eas-probe", "http://127.0.0.1:%d" % port,
                  "--json", timeout=60)
    report = json.loads(result.stdout)
    http = [c for c in report["checks"] if c["check"] == "http"][0]
    assert result.returncode == 2
    assert http["summary"].endswith("answers 200 without credentials")

    nginx.stop()
    with open(os.path.join(nginx.dir, "eas.log")) as log:
        assert "DEB0001" in log.read()

    result = _apt("remove", "-y", PACKAGE)
    assert result.returncode == 0, result.stdout.decode("utf-8", "replace")
    assert not os.path.exists(MODULE_SO)
    assert not os.path.exists("/usr/bin/eas-probe")
    assert not os.path.lexists(ENABLED)

    result = _apt("purge", "-y", PACKAGE)
    assert result.returncode == 0, result.stdout.decode("utf-8", "replace")
    assert not os.path.lexists(ENABLED + ".removed")
    assert not os.path.exists("/usr/share/doc/" + PACKAGE)
    assert not _installed()
