"""The admin console (eas_console), driven in a real browser: Debian's
chromium through chromium-driver and python3-selenium, headless, against a
running gateway and the recording backend.  The page is loaded, the
device table filtered, a device blocked (its next request is refused: the
backend's record shows nothing of it), a locked-out user unlocked (the
next login passes), a hostile User-Agent shown as text; the push screen
draws its charts from the status location.  The security headers are
checked on the wire, the CSRF rule from the page itself and from a page
of another origin.  Every wait is bounded (WebDriverWait); a screenshot
of each screen goes to the test's temporary directory.

Nothing is skipped: tools/install-deps.sh installs chromium, so a missing
browser fails the tests."""

import http.client
import json
import os
import re
import socket
import shutil
import tempfile
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from eastest.client import EasClient
from eastest import confs
from eastest.nginx import start_gateway

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 20                       # seconds, the bound of every wait

AUTH = confs.ADMIN_AUTH

USERS = {"jdoe": "secret", "amy": "apple", "mallory": "evil",
         "john smith": "space1", "john+smith": "plus22"}

HOSTILE_UA = ('<script>alert(1)</script><img src=x '
              'onerror="alert(2);window.pwned=1">')

EVIL_PAGE = """
default_type text/html;
return 200 '<!DOCTYPE html><title>evil</title>
<form id="f" method="post"
 action="http://127.0.0.1:${port}/eas/admin/rules?access=block&device_id=ApplFORM"></form>
<script>
fetch("http://127.0.0.1:${port}/eas/admin/rules?access=block&device_id=ApplFETCH",
      {method: "POST", headers: {"X-EAS-Admin": "1"}, credentials: "include"})
  .then(function () { document.title = "answered"; },
        function () { document.title = "refused"; })
  .then(function () { document.getElementById("f").submit(); });
</script>';
"""

NGINX_CONFIG = confs.gateway(
    confs.eas_location(
        confs.PREAUTH,
        "eas_preauth_lockout user=3 address=100 window=1m time=1h;",
        "eas_devices devices;"),
    confs.location("= /eas/status", confs.ADMIN_ONLY, "eas_status;"),
    confs.location("/eas/admin/", confs.ADMIN_ONLY, """
        eas_admin preauth_zone=auth device_zone=devices;
        eas_console status=/eas/status stale=${stale};
    """),
    http="eas_admin_rules zone=admin:64k file=${dir}/admin.rules;",
    servers=[
        # another origin: a page that tries to change the API from there
        confs.server(
            # no pre-authentication: a request that names no user is
            # recorded with an empty one
            confs.eas_location("eas_devices devices;"),
            confs.location("= /evil.html", EVIL_PAGE),
            listen="127.0.0.1:${other_port}")])

pytestmark = pytest.mark.backend(hold_cap=0)


@pytest.fixture
def gateway(nginx_factory, backend):
    return start(nginx_factory, backend, "30d")


def start(nginx_factory, backend, stale):
    nginx = start_gateway(nginx_factory, NGINX_CONFIG,
                          files={"users": confs.password_file(USERS),
                                 "admins": confs.ADMINS},
                          more_ports=("other_port",),
                          backend_port=backend.port, stale=stale)
    nginx.console = "http://127.0.0.1:%d/eas/admin/console/" % nginx.port
    return nginx


@pytest.fixture
def browser(tmp_path_factory):
    """A browser of its own for each test, set up after the gateway and so
    quit before it stops: no connection of it is left open in nginx."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail("%s is missing: run tools/install-deps.sh "
                        "(chromium chromium-driver python3-selenium)" % path,
                        pytrace=False)
    profile = tempfile.mkdtemp(prefix="chromium-",
                               dir=str(tmp_path_factory.getbasetemp()))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run",
                "--window-size=1500,1000", "--user-data-dir=" + profile):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER),
                              options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    # the admin's credentials on every request, as a browser that logged
    # in sends them (to any origin: the worst case for CSRF)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": AUTH}})
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def device(nginx, device_id, user="jdoe", password="secret", **kw):
    return EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                     % nginx.port, user=user, password=password,
                     device_id=device_id, **kw)


def seen(backend, device_id):
    return [r for r in backend.requests
            if "DeviceId=%s&" % device_id in r.query + "&"]


def notices(nginx, mark):
    return [line for line in nginx.error_lines_since(mark)
            if "[notice]" in line and "eas admin:" in line]


def wait(driver, condition, what):
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda d: condition(d), message=what)


def rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#device-rows tr")


def open_console(driver, nginx):
    driver.get(nginx.console)
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body")
         .get_attribute("data-devices-loaded"), "the device table loaded")


def reload_devices(driver):
    """Submits the filter form and waits for the table to be redrawn."""
    body = driver.find_element(By.TAG_NAME, "body")
    before = body.get_attribute("data-devices-loaded")
    driver.find_element(By.ID, "f-apply").click()
    wait(driver, lambda d: body.get_attribute("data-devices-loaded")
         != before, "the device table redrawn")


def confirm(driver, button):
    """Clicks an action, checks the question, confirms, and returns the
    result line the page shows."""
    result = driver.find_element(By.ID, "result")
    before = result.text
    button.click()
    dialog = driver.find_element(By.ID, "confirm")
    wait(driver, lambda d: dialog.is_displayed(), "the confirmation dialog")
    question = driver.find_element(By.ID, "confirm-text").text
    driver.find_element(By.ID, "confirm-ok").click()
    wait(driver, lambda d: result.text != before
         and not result.text.startswith("Cancelled"), "the action's result")
    return question, result.text, result.get_attribute("class")


def no_alert(driver):
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return True
    raise AssertionError("an alert opened: %r" % text)


def shot(driver, tmp_path, name):
    path = str(tmp_path / ("console-%s.png" % name))
    assert driver.save_screenshot(path)
    assert os.path.getsize(path) > 1000
    return path


def get(nginx, path, method="GET", headers=None):
    headers = dict({"Authorization": AUTH}, **(headers or {}))
    request = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (nginx.port, path), method=method,
        headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_security_headers_and_no_inline_code(gateway):
    status, headers, page = get(gateway, "/eas/admin/console/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    for part in ("default-src 'none'", "script-src 'self'",
                 "style-src 'self'", "connect-src 'self'",
                 "frame-ancestors 'none'", "form-action 'none'"):
        assert part in csp, csp
    assert "unsafe" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    # nothing inline the policy would have to allow
    text = page.decode()
    assert "<script src=\"console.js\"" in text and "<style" not in text
    assert not re.search(r"<[^>]*\s(on[a-z]+|style)\s*=", text)
    assert not re.search(r"<script(?![^>]*\ssrc=)", text)
    for name, kind in (("console.js", "text/javascript"),
                       ("console.css", "text/css")):
        status, headers, body = get(gateway, "/eas/admin/console/" + name)
        assert status == 200 and body
        assert headers["Content-Type"].startswith(kind)
        assert headers["Content-Security-Policy"] == csp
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = get(gateway, "/eas/admin/console/config.json")
    assert json.loads(body) == {"status": "/eas/status",
                                "stale_seconds": 30 * 86400}
    # relative names need the slash
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port,
                                            timeout=10)
    connection.request("GET", "/eas/admin/console",
                       headers={"Authorization": AUTH})
    reply = connection.getresponse()
    assert reply.status == 301 and reply.getheader("Location").endswith(
        "/eas/admin/console/")
    connection.close()
    assert get(gateway, "/eas/admin/console/nothing")[0] == 404
    assert get(gateway, "/eas/admin/console/", method="DELETE",
                headers={"X-EAS-Admin": "1"})[0] == 405
    # the console has the API's protection
    request = urllib.request.Request(
        "http://127.0.0.1:%d/eas/admin/console/" % gateway.port)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_filter_then_block_a_device(gateway, backend, browser, tmp_path):
    for user, password, device_id, kind in (
            ("jdoe", "secret", "ApplJDOE1", "iPhone"),
            ("amy", "apple", "ApplAMY1", "iPhone"),
            ("amy", "apple", "AndrAMY2", "Android")):
        assert device(gateway, device_id, user=user, password=password,
                      device_type=kind).sync().status == 200
    open_console(browser, gateway)
    wait(browser, lambda d: len(rows(d)) == 3, "three devices listed")
    assert "3 device(s)" in browser.find_element(By.ID,
                                                 "device-summary").text

    # filters run in the API: by user, then by type
    browser.find_element(By.ID, "f-user").send_keys("AMY")
    reload_devices(browser)
    assert sorted(r.get_attribute("data-device-id") for r in rows(browser)) \
        == ["AndrAMY2", "ApplAMY1"]
    browser.find_element(By.ID, "f-device-type").send_keys("android")
    reload_devices(browser)
    assert [r.get_attribute("data-device-id") for r in rows(browser)] == \
        ["AndrAMY2"]
    shot(browser, tmp_path, "devices")

    # block it now: asked, answered, audited, and refused at the edge
    mark = gateway.mark()
    row = rows(browser)[0]
    question, result, kind = confirm(
        browser, row.find_element(By.CSS_SELECTOR, "button.act-block"))
    assert question == "Block device AndrAMY2 of amy now?"
    assert kind == "ok" and result.startswith(
        "Block device AndrAMY2 of amy"), result
    lines = notices(gateway, mark)
    assert len(lines) == 1 and ('eas admin: set rule: device_id "AndrAMY2" '
                                'block, by 127.0.0.1 user admin') in lines[0]
    wait(browser, lambda d: "block" in rows(d)[0].text, "the rule shown")

    before = len(seen(backend, "AndrAMY2"))
    assert device(gateway, "AndrAMY2", user="amy", password="apple",
                  device_type="Android").sync().eas_status() == 129
    assert len(seen(backend, "AndrAMY2")) == before
    # the other device of the same user still passes
    assert device(gateway, "ApplAMY1", user="amy",
                  password="apple").sync().status == 200
    assert len(seen(backend, "ApplAMY1")) == 2

    # the blocked filter finds it
    browser.find_element(By.ID, "f-device-type").clear()
    browser.find_element(By.ID, "f-user").clear()
    browser.find_element(By.CSS_SELECTOR,
                         "#f-decision option[value=blocked]").click()
    reload_devices(browser)
    assert [r.get_attribute("data-device-id") for r in rows(browser)] == \
        ["AndrAMY2"]

    # a cancelled action changes nothing
    row = rows(browser)[0]
    row.find_element(By.CSS_SELECTOR, "button.act-delete").click()
    wait(browser, lambda d: d.find_element(By.ID, "confirm").is_displayed(),
         "the confirmation dialog")
    browser.find_element(By.ID, "confirm-cancel").click()
    wait(browser, lambda d: d.find_element(By.ID, "result").text
         .startswith("Cancelled"), "the cancellation shown")
    assert notices(gateway, mark)[1:] == []


def test_lost_phone_and_delete_from_the_page(gateway, backend, browser):
    assert device(gateway, "ApplLOST").sync().status == 200
    open_console(browser, gateway)
    wait(browser, lambda d: len(rows(d)) == 1, "one device listed")
    # the gateway that saw it: this one, by its host name
    assert socket.gethostname().lower()[:64] in rows(browser)[0].text
    mark = gateway.mark()
    _, result, kind = confirm(browser, rows(browser)[0].find_element(
        By.CSS_SELECTOR, "button.act-lost"))
    assert kind == "ok", result
    assert 'device_id "ApplLOST" lost' in notices(gateway, mark)[0]
    before = len(seen(backend, "ApplLOST"))
    assert device(gateway, "ApplLOST").sync().eas_status() == 142
    assert len(seen(backend, "ApplLOST")) == before
    wait(browser, lambda d: "lost" in rows(d)[0].text, "the rule shown")
    _, result, kind = confirm(browser, rows(browser)[0].find_element(
        By.CSS_SELECTOR, "button.act-delete"))
    assert kind == "ok", result
    wait(browser, lambda d: len(rows(d)) == 0, "the record deleted")
    assert "eas admin: delete device: ApplLOST of jdoe" in \
        notices(gateway, mark)[-1]


def test_hostile_user_agent_is_text(gateway, browser, tmp_path):
    assert device(gateway, "ApplEVIL", user="mallory", password="evil",
                  user_agent=HOSTILE_UA).sync().status == 200
    open_console(browser, gateway)
    wait(browser, lambda d: len(rows(d)) == 1, "the device listed")
    cell = rows(browser)[0].find_element(By.CSS_SELECTOR, "td.ua")
    assert cell.text == HOSTILE_UA
    assert browser.find_elements(By.CSS_SELECTOR, "#device-rows img") == []
    assert browser.find_elements(By.CSS_SELECTOR,
                                 "#device-rows script") == []
    assert browser.execute_script("return window.pwned") is None
    no_alert(browser)
    shot(browser, tmp_path, "hostile-user-agent")


def test_stale_devices_highlighted(nginx_factory, backend, browser):
    gateway = start(nginx_factory, backend, "1s")
    assert device(gateway, "ApplOLD").sync().status == 200
    open_console(browser, gateway)
    wait(browser, lambda d: len(rows(d)) == 1, "the device listed")

    def stale(d):
        reload_devices(d)
        return "stale" in rows(d)[0].get_attribute("class").split()

    wait(browser, stale, "the device shown stale after 1 s")
    assert "stale" in rows(browser)[0].text


def test_unlock_a_user(gateway, backend, browser, tmp_path):
    for i in range(3):
        assert device(gateway, "ApplLOCK", password="wrong%d" % i) \
            .sync().status == 401
    assert device(gateway, "ApplLOCK").sync().status == 401       # locked
    assert seen(backend, "ApplLOCK") == []

    open_console(browser, gateway)
    browser.find_element(By.ID, "tab-lockouts").click()
    lockout = wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#lockout-rows tr[data-key='jdoe']"),
        "jdoe listed as locked")[0]
    assert lockout.text.startswith("user jdoe 3 ")
    shot(browser, tmp_path, "lockouts")

    mark = gateway.mark()
    question, result, kind = confirm(browser, lockout.find_element(
        By.CSS_SELECTOR, "button.act-unlock"))
    assert question == "Unlock user jdoe?"
    assert kind == "ok" and result.startswith("Unlocked user jdoe"), result
    assert "eas admin: lift lockout of user: jdoe, by 127.0.0.1 user admin" \
        in notices(gateway, mark)[0]
    wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#lockout-rows td.empty"), "nobody locked")

    assert device(gateway, "ApplLOCK").sync().status == 200
    assert len(seen(backend, "ApplLOCK")) == 1

    # unlock all: two users locked, both pass after one action
    for user in ("amy", "mallory"):
        for i in range(3):
            device(gateway, "Appl" + user, user=user,
                   password="wrong%d" % i).sync()
    browser.find_element(By.ID, "lockouts-refresh").click()
    wait(browser, lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "#lockout-rows tr[data-key]")) == 2, "two locked")
    _, result, kind = confirm(browser,
                              browser.find_element(By.ID, "unlock-all"))
    assert kind == "ok" and '"lifted":2' in result, result
    assert device(gateway, "Applamy", user="amy",
                  password="apple").sync().status == 200


def test_push_health_charts(gateway, backend, browser, tmp_path):
    assert device(gateway, "ApplPUSH").ping(heartbeat=60).status == 200
    open_console(browser, gateway)
    browser.find_element(By.ID, "tab-push").click()
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body")
         .get_attribute("data-push-samples"), "a status sample")
    charts = browser.find_elements(By.CSS_SELECTOR, "#push-charts .chart")
    assert [c.get_attribute("data-chart") for c in charts] == \
        ["held", "completed", "superseded", "edge", "verdicts"]
    assert len(browser.find_elements(
        By.CSS_SELECTOR, "#push-charts svg polyline")) == 5
    tiles = [t.text.split("\n") for t in
             browser.find_elements(By.CSS_SELECTOR, "#push-tiles .tile")]
    labels = {label: value for value, label in tiles}
    status = json.loads(get(gateway, "/eas/status")[2])
    assert labels["held now"] == str(status["longpoll"]["held"])
    assert int(labels["completed"]) <= status["longpoll"]["completed"]
    assert "edge Ping Status 5" in labels
    shot(browser, tmp_path, "push")


def test_csrf_from_the_page_and_from_another_origin(gateway, browser):
    open_console(browser, gateway)
    fetch = """
        var done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: "POST", headers: arguments[1]})
            .then(function (r) { done(r.status); },
                  function (e) { done(String(e)); });
    """
    target = "../rules?access=block&device_id=ApplPAGE"
    # the page's own origin, without the header: refused by the server
    assert browser.execute_async_script(fetch, target, {}) == 403
    # with it: accepted
    assert browser.execute_async_script(
        fetch, target, {"X-EAS-Admin": "1"}) == 200

    # another origin: its fetch needs a preflight the API refuses, its
    # form post has no header; the browser sends the admin's credentials
    mark = gateway.mark()
    browser.get("http://127.0.0.1:%d/evil.html" % gateway.other_port)
    wait(browser, lambda d: d.execute_script(
        "return document.readyState") == "complete"
        and "rules" in d.current_url, "the form posted")
    assert "X-EAS-Admin" in browser.find_element(By.TAG_NAME, "body").text
    status, _, body = get(gateway, "/eas/admin/rules")
    assert [r["device_id"] for r in json.loads(body)["rules"]] == \
        ["ApplPAGE"]
    refused = [l for l in gateway.error_lines_since(mark)
               if "eas admin: refused POST" in l]
    assert len(refused) == 1, refused
    assert not [l for l in gateway.error_lines_since(mark)
                if "set rule" in l]


def api_users(gateway, target):
    status, _, body = get(gateway, "/eas/admin/" + target)
    assert status == 200, body
    reply = json.loads(body)
    return sorted(x.get("user", x.get("key")) for x in
                  reply.get("devices", reply.get("lockouts", [])))


def test_space_and_plus_users_acted_on_by_the_page(gateway, backend,
                                                   browser):
    """The page encodes with encodeURIComponent and the API decodes as a
    form does: "john smith" is never taken for "john+smith"."""
    for user, password in (("john smith", "space1"),
                           ("john+smith", "plus22")):
        assert device(gateway, "ApplTWIN", user=user,
                      password=password).sync().status == 200
        for i in range(3):
            device(gateway, "ApplLOCK", user=user,
                   password="wrong%d" % i).sync()
    assert api_users(gateway, "devices?device_id=ApplTWIN") == \
        ["john smith", "john+smith"]
    assert api_users(gateway, "lockouts") == ["john smith", "john+smith"]

    open_console(browser, gateway)
    for user, other in (("john smith", "john+smith"),
                        ("john+smith", None)):
        field = browser.find_element(By.CSS_SELECTOR,
                                     "#device-filter [name=user]")
        field.clear()
        field.send_keys(user)
        reload_devices(browser)
        listed = rows(browser)
        assert [r.find_element(By.TAG_NAME, "td").text for r in listed] == \
            [user], user
        _, result, kind = confirm(browser, listed[0].find_element(
            By.CSS_SELECTOR, "button.act-delete"))
        assert kind == "ok", result
        assert api_users(gateway, "devices?device_id=ApplTWIN") == \
            ([other] if other else [])

    browser.find_element(By.ID, "tab-lockouts").click()
    for user, left in (("john smith", ["john+smith"]), ("john+smith", [])):
        row = wait(browser, lambda d: d.find_elements(
            By.CSS_SELECTOR, "#lockout-rows tr[data-key='%s']" % user),
            user + " listed as locked")[0]
        _, result, kind = confirm(browser, row.find_element(
            By.CSS_SELECTOR, "button.act-unlock"))
        assert kind == "ok", result
        assert api_users(gateway, "lockouts") == left

    # what the page wrote: encodeURIComponent, never a form's "+"
    with open(os.path.join(gateway.dir, "access.log")) as log:
        asked = [l.split('"')[1] for l in log if "/eas/admin/" in l]
    assert any("devices?user=john%20smith&" in r for r in asked), asked
    assert any("device_id=ApplTWIN" in r and "user=john%2Bsmith" in r
               for r in asked), asked
    assert not [r for r in asked if "john+smith" in r], asked


def test_record_of_no_user_deleted_from_the_page(gateway, backend, browser):
    nobody = EasClient("http://127.0.0.1:%d/Microsoft-Server-ActiveSync"
                       % gateway.other_port, device_id="ApplNOUSER")
    assert nobody.sync().status == 200
    status, _, body = get(gateway, "/eas/admin/devices?device_id=ApplNOUSER")
    assert [d["user"] for d in json.loads(body)["devices"]] == [""]

    open_console(browser, gateway)
    row = wait(browser, lambda d: [r for r in rows(d)
                                   if "ApplNOUSER" in r.text],
               "the record listed")[0]
    mark = gateway.mark()
    _, result, kind = confirm(browser, row.find_element(
        By.CSS_SELECTOR, "button.act-delete"))
    assert kind == "ok", result
    status, _, body = get(gateway, "/eas/admin/devices?device_id=ApplNOUSER")
    assert json.loads(body)["devices"] == []
    assert "eas admin: delete device: ApplNOUSER of , by 127.0.0.1 user " \
        "admin" in notices(gateway, mark)[0]


def test_bidi_controls_shown_neutralised(gateway, backend, browser):
    ua = "Outlook\u202egpj.exe\u2066x\u2069".encode("utf-8")
    assert device(gateway, "ApplBIDI", user_agent=ua).sync().status == 200
    open_console(browser, gateway)
    row = wait(browser, lambda d: [r for r in rows(d)
                                   if "ApplBIDI" in r.text],
               "the record listed")[0]
    cell = row.find_element(By.CSS_SELECTOR, "td.ua")
    text = cell.get_attribute("textContent")
    assert text == "Outlook[U+202E]gpj.exe[U+2066]x[U+2069]", text
    assert cell.value_of_css_property("unicode-bidi") == "isolate"
