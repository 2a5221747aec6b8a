"""Issue 11.1: the long-poll read timeout works with every balancer, in
any order of directives, with and without keepalive and zone.
Balancers {round robin, hash, ip_hash, least_conn, random} x
"eas_upstream_timeouts" {before the balancer, after it, absent} x
keepalive {on, off} x zone {on, off}: one upstream and one location per
combination, proxy_read_timeout 1s, and a Ping held 3 s through each;
every one must be answered by the backend (Status 1), none cut with
504.  One nginx, all Pings at once."""

import itertools
import threading

import pytest

from eastest.backends import EasBackend
from eastest.client import EasClient
from eastest.nginx import free_port

BALANCERS = {
    "rr": "",
    "hash": "hash $arg_DeviceId;",
    "iphash": "ip_hash;",
    "leastconn": "least_conn;",
    "random": "random;",
}
ORDERS = ("before", "after", "absent")
COMBINATIONS = list(itertools.product(BALANCERS, ORDERS, (False, True),
                                      (False, True)))
HELD = 3


def name(balancer, order, keepalive, zone):
    return "%s_%s%s%s" % (balancer, order, "_ka" if keepalive else "",
                          "_zone" if zone else "")


def upstream_block(balancer, order, keepalive, zone):
    lines = []
    if zone:
        lines.append("zone %s 64k;" % name(balancer, order, keepalive, zone))
    if order == "before":
        lines.append("eas_upstream_timeouts;")
    if BALANCERS[balancer]:
        lines.append(BALANCERS[balancer])
    lines.append("server 127.0.0.1:${backend_port};")
    if keepalive:
        lines.append("keepalive 4;")
    if order == "after":
        lines.append("eas_upstream_timeouts;")
    return "    upstream %s {\n        %s\n    }\n" % (
        name(balancer, order, keepalive, zone), "\n        ".join(lines))


def location(combination):
    return ("        location /%s/Microsoft-Server-ActiveSync {\n"
            "            proxy_pass http://%s/Microsoft-Server-ActiveSync;\n"
            "        }\n" % (name(*combination), name(*combination)))


NGINX_CONFIG = """
http {
    ${temp_paths}
""" + "".join(upstream_block(*c) for c in COMBINATIONS) + """
    server {
        listen 127.0.0.1:${port};

        eas on;
        eas_longpoll on;
        eas_heartbeat_min 2s;
        eas_heartbeat_max 120s;
        eas_longpoll_margin 2s;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        # shorter than the hold: only the module's timeout lets it live
        proxy_read_timeout 1s;

""" + "".join(location(c) for c in COMBINATIONS) + """
    }
}
"""


@pytest.fixture
def gateway(nginx_factory, backend):
    port = free_port()
    nginx = nginx_factory(NGINX_CONFIG, listen=(port,), port=port,
                          backend_port=backend.port)
    nginx.port = port
    return nginx


def test_config_has_no_warning(gateway):
    """nginx -t says nothing about the order of the directives."""
    code, output = gateway.test_config()
    assert code == 0, output
    assert "[warn]" not in output, output


def test_every_balancer_holds_the_ping(gateway, backend):
    results = {}

    def ping(combination):
        client = EasClient("http://127.0.0.1:%d/%s/Microsoft-Server-"
                           "ActiveSync" % (gateway.port, name(*combination)),
                           user="jdoe", device_id=name(*combination),
                           timeout=20.0)
        try:
            results[combination] = client.ping(heartbeat=HELD)
        except OSError as exc:
            results[combination] = exc

    threads = [threading.Thread(target=ping, args=(c,))
               for c in COMBINATIONS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    failed = {}
    for combination in COMBINATIONS:
        response = results.get(combination)
        if (getattr(response, "status", None) != 200
                or response.eas_status() != 1
                or response.elapsed < HELD - 0.2):
            failed[name(*combination)] = getattr(response, "status",
                                                 response)
    assert failed == {}, failed
    assert len(backend.requests) == len(COMBINATIONS)
