"""Shared pytest fixtures for the ngx_eas integration tests.

    repo_root       the repository (pathlib.Path)
    module_path     the built ngx_http_eas_module.so ($EAS_MODULE or
                    build/ngx_http_eas_module.so); fails if it is missing
    certs           CA + server certificate for 127.0.0.1/localhost, once
                    per session (eastest.certs.Certs)
    backend         a started EasBackend on a free port, per test; a
                    module or test marked backend(**options), e.g.
                    pytestmark = pytest.mark.backend(hold_cap=0), gets
                    EasBackend(**options)
    silent          a started SilentBackend (accepts, never answers)
    nginx_factory   nginx_factory(template, listen=(port,), module=True,
                    start=True, **vars) -> a running eastest.nginx.Nginx in
                    its own tmp directory; on teardown every instance is
                    stopped and its logs checked with check_no_alerts(),
                    skipping the regexes the test appended to
                    instance.expected_alerts
"""

import os
import pathlib
import stat

import pytest

from eastest.backends import EasBackend, SilentBackend
from eastest.certs import make_ca_and_cert
from eastest.nginx import Nginx
from eastest.redis import RedisServer

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def make_traversable(path, stop_at):
    """Add search permission (o+x, g+x) to path and its parents up to and
    including stop_at, so nginx workers can reach files below it whatever
    user they run as (pytest makes its base directory 0700)."""
    path = pathlib.Path(path).resolve()
    stop_at = pathlib.Path(stop_at).resolve()
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        directory.chmod(mode | stat.S_IXGRP | stat.S_IXOTH
                        | stat.S_IRGRP | stat.S_IROTH)
        if directory == stop_at:
            break


def traversable_tmp(tmp_path_factory, name):
    path = tmp_path_factory.mktemp(name)
    make_traversable(path, tmp_path_factory.getbasetemp().parent)
    return path


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def module_path(repo_root):
    path = pathlib.Path(os.environ.get(
        "EAS_MODULE", repo_root / "build" / "ngx_http_eas_module.so")
    ).resolve()
    if not path.is_file():
        pytest.fail("nginx module %s not found: build it first (make test "
                    "does), or point EAS_MODULE at it" % path, pytrace=False)
    return path


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_ca_and_cert(traversable_tmp(tmp_path_factory, "certs"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "backend(**options): the options of the backend "
        "fixture's EasBackend")


@pytest.fixture
def backend(request):
    marker = request.node.get_closest_marker("backend")
    with EasBackend(**(marker.kwargs if marker else {})) as server:
        yield server


@pytest.fixture
def silent():
    with SilentBackend() as server:
        yield server


@pytest.fixture
def redis(tmp_path):
    """A redis-server of the test's own on a loopback port (the shared
    state's tests)."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def nginx_factory(request, tmp_path_factory):
    instances = []

    def make(template, listen=(), module=True, start=True, **variables):
        module_so = request.getfixturevalue("module_path") if module else None
        workdir = traversable_tmp(tmp_path_factory, "nginx")
        instance = Nginx(workdir, module_so)
        instances.append(instance)
        instance.render(template, **variables)
        if start:
            instance.start(ports=listen)
        return instance

    yield make

    failures = []
    for instance in instances:
        instance.stop()
        try:
            instance.check_no_alerts(skip=instance.expected_alerts)
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
