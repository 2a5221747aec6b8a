"""Self-check of the test helpers: EasClient against EasBackend directly,
the query codecs, raw_http, SilentBackend, and the pure parts of the nginx
harness.  No nginx process runs here."""

import base64
import concurrent.futures
import json
import urllib.request

import pytest

from eastest import wbxml
from eastest.backends import (OPTIONS_HEADERS, POLICY_KEY, EasBackend,
                              SilentBackend, parse_query)
from eastest.client import (IOS_ORDER, SPEC_ORDER, EasClient,
                            decode_base64_query, encode_base64_query,
                            policy_key_of, raw_http)
from eastest import waiting
from eastest.nginx import Nginx, free_port

# Bounds a hang, not a speed: a hold these tests expect to end early (a
# notify, a newer Ping, the hold cap, a 1 s heartbeat) would otherwise
# last the 60 s heartbeat they ask for, or forever; where it matters the
# answer's status says which way the hold ended.
HOLD_LIMIT = 30.0

# docs/protocol.md section 7.7, vectors W1 and W10.
W1 = bytes.fromhex("03016A00000D4548033438300001494A4B033500014C03456D61696C"
                   "0001014A4B03313000014C0343616C656E6461720001010101")
W10 = bytes.fromhex("03016A00000D45494A4B033500014C03456D61696C0001010101")


@pytest.fixture
def client(backend):
    return EasClient(backend.url, user="dom\\jdoe", password="secret")


@pytest.fixture
def pool():
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def ping_status(response):
    tree = response.tree()
    folders = wbxml.find_all(tree, "Ping:Ping/Ping:Folders/Ping:Folder")
    return response.eas_status(), folders


# OPTIONS, Provision, FolderSync -------------------------------------------

def test_options_headers(client, backend):
    response = client.options()
    assert response.status == 200
    assert response.body == b""
    assert response.header("Content-Length") == "0"
    for name, value in OPTIONS_HEADERS:
        assert response.header(name) == value
    recorded = backend.requests[0]
    assert recorded.method == "OPTIONS"
    assert recorded.target == "/Microsoft-Server-ActiveSync"


def test_provision_two_phases(client):
    first = client.provision()
    assert first.eas_status() == 1
    temporary = policy_key_of(first)
    assert temporary and temporary != POLICY_KEY
    assert client.policy_key is None
    second = client.provision(ack_key=temporary)
    assert second.eas_status() == 1
    assert client.policy_key == POLICY_KEY


def test_provision_wrong_ack_key(client):
    response = client.provision(ack_key="42")
    status = wbxml.find(response.tree(), "Provision:Provision/"
                        "Provision:Policies/Provision:Policy/Provision:Status")
    assert status == "5"
    assert client.policy_key is None


def test_foldersync(client):
    response = client.foldersync()
    assert response.status == 200
    assert response.header("Content-Type") == "application/vnd.ms-sync.wbxml"
    assert response.eas_status() == 1
    adds = wbxml.find_all(response.tree(), "FolderHierarchy:FolderSync/"
                          "FolderHierarchy:Changes/FolderHierarchy:Add")
    folders = [(dict(add)["FolderHierarchy:ServerId"],
                dict(add)["FolderHierarchy:Type"]) for add in adds]
    assert folders == [("5", "2"), ("10", "8")]


def test_foldersync_known_key_has_no_changes(client):
    response = client.foldersync(sync_key="1")
    count = wbxml.find(response.tree(), "FolderHierarchy:FolderSync/"
                       "FolderHierarchy:Changes/FolderHierarchy:Count")
    assert (response.eas_status(), count) == (1, "0")


def test_other_command_gets_empty_200(client):
    response = client.command("Settings")
    assert (response.status, response.body) == (200, b"")


def test_other_path_gets_404(client):
    assert client.raw("GET", "/owa/").status == 404


# Ping -----------------------------------------------------------------

def test_ping_held_for_heartbeat(client):
    response = client.ping(heartbeat=1)
    assert ping_status(response) == (1, [])
    assert 0.9 <= response.elapsed < HOLD_LIMIT


def test_ping_notify_answers_early(client, backend, pool):
    held = pool.submit(client.ping, heartbeat=60)
    backend.wait_for(1)
    backend.notify("5")
    response = held.result(timeout=HOLD_LIMIT)
    assert ping_status(response) == (2, ["5"])
    assert response.elapsed < HOLD_LIMIT


def test_ping_notify_through_control_api(client, backend, pool):
    held = pool.submit(client.ping, heartbeat=60)
    backend.wait_for(1)
    control = "http://127.0.0.1:%d/_sim/notify?folder=5" % backend.port
    with urllib.request.urlopen(urllib.request.Request(
            control, method="POST", data=b""), timeout=5) as reply:
        assert json.load(reply) == {"notified": ["5"]}
    assert ping_status(held.result(timeout=HOLD_LIMIT)) == (2, ["5"])
    assert len(backend.requests) == 1          # /_sim/ is not recorded


def test_ping_ignores_unwatched_folder(client, backend, pool):
    held = pool.submit(client.ping, heartbeat=1)
    backend.wait_for(1)
    backend.notify("10")                       # the Ping watches only 5
    assert ping_status(held.result(timeout=HOLD_LIMIT)) == (1, [])


def test_change_between_pings_answers_next_ping(client, backend):
    client.ping(heartbeat=1)
    backend.notify("5")
    response = client.ping(heartbeat=60)
    assert ping_status(response) == (2, ["5"])
    assert response.elapsed < HOLD_LIMIT


def test_empty_ping_reuses_heartbeat(client, backend):
    client.ping(heartbeat=1)
    response = client.ping(heartbeat=None, folders=None)
    assert backend.requests[-1].body == b""
    assert ping_status(response) == (1, [])
    assert 0.9 <= response.elapsed < HOLD_LIMIT


def test_folders_only_ping_reuses_heartbeat(client, backend):
    client.ping(heartbeat=1)
    response = client.ping(heartbeat=None)
    assert backend.requests[-1].body == W10
    assert 0.9 <= response.elapsed < HOLD_LIMIT


def test_empty_ping_without_cache_is_status_3(client):
    response = client.ping(heartbeat=None, folders=None)
    assert ping_status(response) == (3, [])


def test_bad_ping_body_is_status_4(client):
    response = client.command("Ping", b"not wbxml")
    assert ping_status(response) == (4, [])


def test_newer_ping_ends_older(client, backend, pool):
    older = pool.submit(client.ping, heartbeat=60)
    backend.wait_for(1)
    newer = pool.submit(client.ping, heartbeat=1)
    assert ping_status(older.result(timeout=HOLD_LIMIT)) == (1, [])
    assert older.result().elapsed < HOLD_LIMIT
    assert ping_status(newer.result(timeout=HOLD_LIMIT)) == (1, [])


def test_hold_cap():
    with EasBackend(hold_cap=0.2) as backend:
        response = EasClient(backend.url).ping(heartbeat=60)
        assert ping_status(response) == (1, [])
        assert response.elapsed < HOLD_LIMIT


# Sync -----------------------------------------------------------------

def test_sync_without_wait_is_empty_response(client):
    response = client.sync()
    assert (response.status, response.body) == (200, b"")
    assert response.elapsed < HOLD_LIMIT


def test_sync_with_heartbeat_is_held(client):
    response = client.sync(heartbeat=1)
    assert (response.status, response.body) == (200, b"")
    assert 0.9 <= response.elapsed < HOLD_LIMIT


def test_sync_notify_answers_early(client, backend, pool):
    held = pool.submit(client.sync, wait=5)
    backend.wait_for(1)
    backend.notify("5")
    response = held.result(timeout=HOLD_LIMIT)
    collection = "AirSync:Sync/AirSync:Collections/AirSync:Collection/"
    assert wbxml.find(response.tree(), collection + "AirSync:CollectionId") \
        == "5"
    assert wbxml.find(response.tree(), collection + "AirSync:Status") == "1"


def test_empty_sync_replays_cached_request(client, backend):
    client.sync(heartbeat=1)
    response = client.sync(collections=())
    assert backend.requests[-1].body == b""
    assert 0.9 <= response.elapsed < HOLD_LIMIT


# Recording ----------------------------------------------------------------

@pytest.mark.parametrize("form, order", [
    ("plain", SPEC_ORDER), ("plain", IOS_ORDER), ("base64", SPEC_ORDER)])
def test_recording_is_byte_exact(backend, form, order):
    client = EasClient(backend.url, user="jane@example.com", password="pw",
                       device_id="ApplC39ZH2VJJCM3", device_type="iPhone",
                       form=form, param_order=order, policy_key=POLICY_KEY,
                       user_agent="Apple-iPhone13C4/2307.71")
    expected_target = client.target("FolderSync")
    client.foldersync()
    recorded = backend.requests[-1]
    assert recorded.target == expected_target
    assert recorded.version == "HTTP/1.1"
    expected_headers = [
        ("Host", "127.0.0.1:%d" % backend.port),
        ("User-Agent", "Apple-iPhone13C4/2307.71"),
        ("Authorization",
         "Basic " + base64.b64encode(b"jane@example.com:pw").decode()),
    ]
    if form == "plain":
        expected_headers += [("MS-ASProtocolVersion", "14.1"),
                             ("X-MS-PolicyKey", POLICY_KEY)]
    expected_headers += [("Content-Type", "application/vnd.ms-sync.wbxml"),
                         ("Content-Length", "13")]
    assert recorded.headers == expected_headers
    assert recorded.body == bytes.fromhex("03016A00000756520330000101")
    assert recorded.eas.form == form
    assert recorded.eas.command == "FolderSync"
    assert recorded.eas.device_id == "ApplC39ZH2VJJCM3"
    assert recorded.eas.user == "jane@example.com"


@pytest.mark.parametrize("order, target", [
    (SPEC_ORDER, "/Microsoft-Server-ActiveSync?Cmd=Ping&User=dom%5Cjdoe"
                 "&DeviceId=ApplC39ZH2VJJCM3&DeviceType=iPhone"),
    (IOS_ORDER, "/Microsoft-Server-ActiveSync?User=dom%5Cjdoe"
                "&DeviceId=ApplC39ZH2VJJCM3&DeviceType=iPhone&Cmd=Ping"),
])
def test_plain_ping_target_and_body(order, target):
    with EasBackend(hold_cap=0) as backend:        # answer at once
        client = EasClient(backend.url, user="dom\\jdoe", password="secret",
                           param_order=order, policy_key=POLICY_KEY)
        client.ping(heartbeat=480,
                    folders=(("5", "Email"), ("10", "Calendar")))
        recorded = backend.requests[0]
    assert recorded.target == target
    assert recorded.body == W1
    assert recorded.header("X-MS-PolicyKey") is None   # never on Ping


def test_chunked_body_and_unusual_method_recorded(backend):
    request = (b"PROPFIND /Microsoft-Server-ActiveSync?Cmd=Ping&DeviceId=d1"
               b"&DeviceType=t HTTP/1.1\r\nHost: x\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
    reply = raw_http("127.0.0.1", backend.port, request)
    assert reply.startswith(b"HTTP/1.1 200 ")
    recorded = backend.requests[0]
    assert (recorded.method, recorded.body) == ("PROPFIND", b"abcde")
    assert recorded.headers[1] == ("Transfer-Encoding", "chunked")


def test_target_recorded_as_sent(backend):
    target = "//Microsoft-Server-ActiveSync?cmd=ping&DEVICEID=a%2Bb+c"
    raw_http("127.0.0.1", backend.port,
             b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n" % target.encode())
    recorded = backend.requests[0]
    assert recorded.target == target
    assert (recorded.eas.command, recorded.eas.device_id) == ("Ping", "a+b c")


def test_truncated_body_is_not_answered_nor_recorded(backend):
    reply = raw_http("127.0.0.1", backend.port,
                     b"POST /Microsoft-Server-ActiveSync?Cmd=Ping HTTP/1.1\r\n"
                     b"Host: x\r\nContent-Length: 5\r\n\r\nab",
                     half_close=True)
    assert reply == b""
    assert backend.requests == []


def test_pipelined_requests(backend):
    one = (b"OPTIONS /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: x\r\n"
           b"\r\n")
    last = one.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    reply = raw_http("127.0.0.1", backend.port, one + last)
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert len({r.client for r in backend.requests}) == 1


def test_control_api_requests_and_clear(client, backend):
    client.foldersync()
    base = "http://127.0.0.1:%d/_sim/" % backend.port
    with urllib.request.urlopen(base + "requests", timeout=5) as reply:
        listed = json.load(reply)
    assert [r["command"] for r in listed] == ["FolderSync"]
    assert base64.b64decode(listed[0]["body"]) == backend.requests[0].body
    with urllib.request.urlopen(urllib.request.Request(
            base + "clear", method="POST", data=b""), timeout=5) as reply:
        assert json.load(reply) == {"cleared": 1}
    assert backend.requests == []


def test_wait_for_times_out(backend):
    with pytest.raises(TimeoutError):
        backend.wait_for(1, timeout=0.1)


def test_tls_backend(certs):
    with EasBackend(tls_cert=certs.cert, tls_key=certs.key) as backend:
        assert backend.url.startswith("https://127.0.0.1:")
        client = EasClient(backend.url, cafile=certs.ca)
        assert client.foldersync().eas_status() == 1
        reply = raw_http("127.0.0.1", backend.port,
                         b"OPTIONS /Microsoft-Server-ActiveSync HTTP/1.0\r\n"
                         b"\r\n", tls=True, cafile=certs.ca)
        assert reply.startswith(b"HTTP/1.1 200 ")


def test_silent_backend_never_answers():
    with SilentBackend() as silent:
        reply = raw_http("127.0.0.1", silent.port, b"GET / HTTP/1.1\r\n\r\n",
                         timeout=0.5)
        assert reply == b""
        silent.wait_for_connections(1)
        assert silent.received == [b"GET / HTTP/1.1\r\n\r\n"]


# Query codecs -----------------------------------------------------------

def test_base64_vector_a_from_client(backend):
    client = EasClient(backend.url, device_id="v140Device",
                       device_type="SmartPhone", protocol="14.0",
                       form="base64")
    assert client.target("Sync") == ("/Microsoft-Server-ActiveSync?"
                                     "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l")
    client.sync()
    assert backend.requests[0].query == "jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l"
    assert backend.requests[0].header("MS-ASProtocolVersion") is None


def test_base64_vector_e():
    query = encode_base64_query(
        "14.1", "SmartReply", "ApplC39ZH2VJJCM3", "iPhone",
        policy_key=3769048351, params=[("CollectionId", "5"),
                                       ("ItemId", "5:12"),
                                       ("Options", b"\x01"),
                                       ("User", "jdoe")])
    assert query == ("jQMJBBBBcHBsQzM5WkgyVkpKQ00zBB8dp+AGaVBob25lAQE1AwQ1Oj"
                     "EyBwEBCARqZG9l")


def test_binary_device_id_in_base64_form(backend):
    guid = bytes.fromhex("a81f31e18bc6f962b3674d98788a7c9a")
    client = EasClient(backend.url, device_id=guid, device_type="WP",
                       form="base64", protocol="12.1")
    client.foldersync()
    assert backend.requests[0].eas.device_id == \
        "A81F31E18BC6F962B3674D98788A7C9A"
    assert decode_base64_query(backend.requests[0].query).device_id == guid


@pytest.mark.parametrize("query, fields", [
    ("jBMHBBCoHzHhi8b5YrNnTZh4inyaBAAAAAACV1AHAQI=",
     (140, "ItemOperations", 0x0407, "A81F31E18BC6F962B3674D98788A7C9A", 0,
      "WP", [(7, b"\x02")])),
    ("jAEECBBv8Usp+29k8LM6azAOecgZBAAAAAALV2luZG93c01haWz/AwEMAQ==",
     (140, "SendMail", 0x0804, "6FF14B29FB6F64F0B33A6B300E79C819", 0,
      "WindowsMail", [(0xFF, b"\x01\x0c\x01")])),
    ("jAAMBBBFO4PTgVN5IoizMDNebAlhBAAAAAALV2luZG93c01haWw=",
     (140, "Sync", 0x040C, "453B83D38153792288B330335E6C0961", 0,
      "WindowsMail", [])),
    ("jQMJBBBBcHBsQzM5WkgyVkpKQ00zBB8dp+AGaVBob25lAQE1AwQ1OjEyBwEBCARqZG9l",
     (141, "SmartReply", 0x0409, "ApplC39ZH2VJJCM3", 3769048351, "iPhone",
      [(1, b"5"), (3, b"5:12"), (7, b"\x01"), (8, b"jdoe")])),
    ("eRIHBBCoHzHhi8b5YrNnTZh4inyaAAJXUA==",
     (121, "Ping", 0x0407, "A81F31E18BC6F962B3674D98788A7C9A", None, "WP",
      [])),
])
def test_decode_base64_vectors(query, fields):
    decoded = decode_base64_query(query)
    assert (decoded.version, decoded.command, decoded.locale,
            decoded.device_id_text(), decoded.policy_key,
            decoded.device_type, decoded.params) == fields


@pytest.mark.parametrize("query", ["jAAJ", "jAAJBAp2MTQw", "!!!!",
                                   "jAAJBAF4AwECAwFY"])
def test_decode_base64_rejects_malformed(query):
    with pytest.raises(ValueError):
        decode_base64_query(query)


def test_base64_form_refused_for_old_protocols(backend):
    with pytest.raises(ValueError):
        EasClient(backend.url, protocol="12.0", form="base64")


@pytest.mark.parametrize("query, expected", [
    ("Cmd=Ping&User=dom%5Cjdoe&DeviceId=abc&DeviceType=iPhone",
     ("plain", "Ping", "abc", "iPhone", "dom\\jdoe")),
    ("user=a%40b&deviceid=x+y&DEVICETYPE=t&cmd=foldersync",
     ("plain", "FolderSync", "x y", "t", "a@b")),
    ("Cmd=Bogus&DeviceId=a&DeviceId=b&DeviceType=t",
     ("plain", None, "a", "t", None)),
    ("jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l",
     ("base64", "Sync", "v140Device", "SmartPhone", None)),
    ("jAEECBBv8Usp%2B29k8LM6azAOecgZBAAAAAALV2luZG93c01haWz%2FAwEMAQ%3D%3D",
     ("base64", "SendMail", "6FF14B29FB6F64F0B33A6B300E79C819",
      "WindowsMail", None)),
    ("", ("none", None, None, None, None)),
    ("jAAJ", ("invalid", None, None, None, None)),
])
def test_parse_query(query, expected):
    parsed = parse_query(query)
    assert (parsed.form, parsed.command, parsed.device_id,
            parsed.device_type, parsed.user) == expected


# nginx harness, pure parts ------------------------------------------------

def test_render_fills_only_braced_placeholders(tmp_path):
    nginx = Nginx(tmp_path, module_path="/x/ngx_http_eas_module.so")
    text = nginx.render("http { ${temp_paths} server { listen ${port}; "
                        "add_header X-A $host; add_header X-B ${host}x; "
                        "return 200 $$; } }", port=8080)
    assert text.startswith("load_module /x/ngx_http_eas_module.so;\n"
                           "daemon off;\nmaster_process on;\n")
    assert "pid %s/nginx.pid;" % tmp_path in text
    assert "error_log %s/error.log debug;" % tmp_path in text
    assert "proxy_temp_path %s/proxy_temp;" % tmp_path in text
    assert "listen 8080;" in text
    assert "$host; add_header X-B ${host}x; return 200 $$;" in text
    assert (tmp_path / "nginx.conf").read_text() == text


def test_check_no_alerts_and_marks(tmp_path):
    nginx = Nginx(tmp_path)
    log = tmp_path / "error.log"
    log.write_text("2026/01/01 00:00:00 [notice] 1#1: start worker "
                   "process 2\n")
    mark = nginx.mark()
    nginx.check_no_alerts()
    with log.open("a") as handle:
        handle.write("2026/01/01 00:00:01 [alert] 1#1: expected one\n"
                     "2026/01/01 00:00:02 [info] 1#1: partial")
    assert nginx.error_lines_since(mark) == [
        "2026/01/01 00:00:01 [alert] 1#1: expected one"]
    with pytest.raises(AssertionError, match="expected one"):
        nginx.check_no_alerts()
    nginx.check_no_alerts(skip=[r"expected one"])


# waiting, pure parts ------------------------------------------------------

def test_logged_finds_each_line_whatever_the_order(tmp_path):
    """Two workers log in either order, and the last line may be half
    written: logged() returns the tagged entries in the order asked,
    log_line() a line by content, only once complete."""
    nginx = Nginx(tmp_path)
    log = tmp_path / "eas.log"
    log.write_text('{"seq":"2","auth":"cached"}\n{"seq":"1","auth":"ok"}\n'
                   '{"seq":"3","au')
    one, two = waiting.logged(nginx, "eas.log", ["1", "2"])
    assert (one["auth"], two["auth"]) == ("ok", "cached")
    assert waiting.logged(nginx, "eas.log", ["cached"],
                          key=lambda entry: entry["auth"])[0]["seq"] == "2"
    with pytest.raises(AssertionError, match=r"eas.log entries for \['3'\]"):
        waiting.logged(nginx, "eas.log", ["3"], timeout=0.2)
    with pytest.raises(AssertionError, match="line with seq 3"):
        waiting.log_line(nginx, "eas.log", lambda line: '"3"' in line,
                         "seq 3", timeout=0.2)
    with log.open("a") as handle:
        handle.write('th":"invalid"}\n')
    assert waiting.logged(nginx, "eas.log", ["3"])[0]["auth"] == "invalid"
    assert nginx.access_log("eas.log")[-1] == '{"seq":"3","auth":"invalid"}'


def test_poll_returns_the_condition_or_names_what_is_missing():
    calls = []
    assert waiting.poll(lambda: calls.append(1) or len(calls) >= 3 and
                        "done", "three calls", interval=0) == "done"
    with pytest.raises(AssertionError, match="no never within 0 s"):
        waiting.poll(lambda: None, "never", timeout=0.1)


def test_tags_are_unique():
    assert len({waiting.tag() for _ in range(100)}) == 100


def test_free_ports_are_outside_the_ephemeral_range():
    """A port handed out is bound later: no outgoing connection may take
    it meanwhile, so it lies below the kernel's ephemeral range."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        low = int(ports.read().split()[0])
    handed = {free_port() for _ in range(50)}
    assert len(handed) == 50
    assert all(port < low for port in handed), sorted(handed)
