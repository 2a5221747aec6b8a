"""Issue 10, point 9: a PCRE runtime error (the match limit, reached by a
subject crafted to backtrack) counted as "no match", so a crafted
User-Agent slipped past a block rule.  A block rule that cannot be
evaluated now blocks ($eas_reason says regex_error:...); an allow rule
that cannot be evaluated does not allow.  Asserted from the backend's
record."""

import pytest

from eastest import confs
from eastest.client import EasClient
from eastest.nginx import start_gateway

EAS = "/Microsoft-Server-ActiveSync"

# (a+)+$ backtracks exponentially on a's followed by something else:
# far past PCRE's default match limit
EVIL_RULE = r"^(a+)+$"
CRAFTED = "a" * 40 + "!"

NGINX_CONFIG = confs.gateway(
    "add_header X-Reason $eas_reason always;",
    confs.eas_location("eas_device_block user_agent=~${rule};",
                       path="/block/", proxy_pass="http://backend/"),
    # the other condition rules the request out: no block
    confs.eas_location(
        "eas_device_block user_agent=~${rule} device_type=Never;",
        path="/block-two/", proxy_pass="http://backend/"),
    confs.eas_location("eas_device_allow user_agent=~${rule};",
                       "eas_device_default block;",
                       path="/allow/", proxy_pass="http://backend/"),
    http=confs.PLAIN_REFUSALS, zones=None)


@pytest.fixture
def gateway(nginx_factory, backend):
    return start_gateway(nginx_factory, NGINX_CONFIG,
                         rule=EVIL_RULE, backend_port=backend.port)


def sync(nginx, prefix, user_agent, device_id):
    client = EasClient("http://127.0.0.1:%d/%s%s" % (nginx.port, prefix, EAS),
                       user="jdoe", device_id=device_id,
                       user_agent=user_agent)
    return client.foldersync()


def test_block_rule_that_cannot_be_evaluated_blocks(gateway, backend):
    mark = gateway.mark()
    reply = sync(gateway, "block", CRAFTED, "ApplCRAFT01")
    assert reply.status == 403
    assert reply.header("X-Reason").startswith("regex_error:eas_device_block:")
    lines = [line for line in gateway.error_lines_since(mark)
             if "eas:" in line]
    assert len(lines) == 1 and "blocked by regex_error:" in lines[0]
    # an ordinary User-Agent is not affected
    assert sync(gateway, "block", "Apple-iPhone13C4/2307.71",
                "ApplPLAIN01").status == 200
    assert [r for r in backend.requests if "ApplCRAFT01" in r.target] == []


def test_other_conditions_still_rule_a_request_out(gateway, backend):
    reply = sync(gateway, "block-two", CRAFTED, "ApplCRAFT02")
    assert reply.status == 200


def test_allow_rule_that_cannot_be_evaluated_does_not_allow(gateway,
                                                            backend):
    mark = gateway.mark()
    reply = sync(gateway, "allow", CRAFTED, "ApplCRAFT03")
    assert reply.status == 403
    assert reply.header("X-Reason") == "eas_device_default"
    lines = [line for line in gateway.error_lines_since(mark)
             if "not applied" in line]
    assert len(lines) == 1
    assert sync(gateway, "allow", "a" * 10, "ApplPLAIN03").status == 200
    assert [r for r in backend.requests if "ApplCRAFT03" in r.target] == []
