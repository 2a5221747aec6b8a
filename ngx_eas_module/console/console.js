/*
 * ngx_eas console: talks only to the admin API of the location it is
 * served from (../) and reads the eas_status location config.json names.
 * Every value from a device or the API is written with textContent,
 * never as markup; every change asks first, shows the answer, and sends
 * "X-EAS-Admin: 1", which the API requires of a POST or DELETE.
 */

"use strict";

(function () {

    var API = new URL("../", document.baseURI);

    /* fetch() refuses a URL with user:password@, which a login may leave */
    API.username = "";
    API.password = "";
    var POLL = 10000;               /* status, milliseconds */
    var HISTORY = 3600;             /* seconds kept for the charts */

    var config = { status: "", stale_seconds: 30 * 86400 };
    var state = { page: 1, pages: 1, rules: {} };
    var samples = [];

    function $(id) {
        return document.getElementById(id);
    }

    /*
     * Text as shown: a bidirectional control (which could make "gpj.exe"
     * read "exe.jpg", or reorder a row) is replaced by a visible marker
     */
    function visible(text) {
        return String(text).replace(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
                                    function (c) {
            return "[U+" + c.charCodeAt(0).toString(16).toUpperCase() + "]";
        });
    }

    /* an element with text, never markup */
    function el(tag, text, cls) {
        var e = document.createElement(tag);
        if (text !== undefined && text !== null) {
            e.textContent = visible(text);
        }
        if (cls) {
            e.className = cls;
        }
        return e;
    }

    function clear(node) {
        while (node.firstChild) {
            node.removeChild(node.firstChild);
        }
    }

    /*
     * params: a value undefined (or "", unless keepEmpty) is not sent;
     * each is encoded with encodeURIComponent ("+" as %2B, a space as
     * %20), never as a form would ("+" for a space), so that no reader
     * of the query can take one for the other
     */
    function api(method, path, params, keepEmpty) {
        var url = new URL(path, API), query = [];
        var headers = { "Accept": "application/json" };

        Object.keys(params || {}).forEach(function (k) {
            var v = params[k];
            if (v === undefined || v === null || (v === "" && !keepEmpty)) {
                return;
            }
            query.push(encodeURIComponent(k) + "="
                       + encodeURIComponent(String(v)));
        });
        url.search = query.join("&");

        if (method !== "GET") {
            headers["X-EAS-Admin"] = "1";
        }

        return fetch(url, { method: method, headers: headers,
                            credentials: "same-origin", cache: "no-store" })
            .then(function (reply) {
                return reply.text().then(function (text) {
                    var body;
                    try {
                        body = JSON.parse(text);
                    } catch (e) {
                        body = { error: reply.status + " " + reply.statusText };
                    }
                    return { ok: reply.ok, status: reply.status, body: body };
                });
            }, function (err) {
                return { ok: false, status: 0, body: { error: String(err) } };
            });
    }

    function show(ok, text) {
        var r = $("result");
        r.textContent = visible(text);
        r.className = ok ? "ok" : "error";
    }

    /* asks, then runs action(); shows the API's answer */
    function confirmThen(question, done, action) {
        var dialog = $("confirm");

        $("confirm-text").textContent = visible(question);
        dialog.returnValue = "";

        dialog.addEventListener("close", function onclose() {
            dialog.removeEventListener("close", onclose);
            if (dialog.returnValue !== "ok") {
                show(true, "Cancelled: " + question);
                return;
            }
            action().then(function (reply) {
                if (reply.ok) {
                    show(true, done + " (" + JSON.stringify(reply.body) + ")");
                } else {
                    show(false, "Failed: " + done + ": HTTP " + reply.status
                         + " " + (reply.body.error || ""));
                }
                refresh();
            });
        });

        dialog.showModal();
    }

    function when(t) {
        if (!t) {
            return "";
        }
        return new Date(t * 1000).toISOString().replace("T", " ")
            .replace(/\.\d+Z$/, " UTC");
    }

    function duration(s) {
        if (s % 86400 === 0) {
            return s / 86400 + " days";
        }
        if (s % 3600 === 0) {
            return s / 3600 + " hours";
        }
        if (s % 60 === 0) {
            return s / 60 + " minutes";
        }
        return s + " seconds";
    }

    function ago(t) {
        var s = Math.max(0, Math.round(Date.now() / 1000 - t));
        if (s < 120) {
            return s + " s ago";
        }
        if (s < 7200) {
            return Math.round(s / 60) + " min ago";
        }
        if (s < 172800) {
            return Math.round(s / 3600) + " h ago";
        }
        return Math.round(s / 86400) + " days ago";
    }

    /* ---- devices ---- */

    function filter() {
        var f = $("device-filter");
        return {
            user: f.elements.user.value.trim(),
            device_id: f.elements.device_id.value.trim(),
            device_type: f.elements.device_type.value.trim(),
            decision: f.elements.decision.value,
            sort: f.elements.sort.value,
            per_page: f.elements.per_page.value,
            page: state.page
        };
    }

    function loadRules() {
        return api("GET", "rules").then(function (reply) {
            state.rules = {};
            if (reply.ok) {
                reply.body.rules.forEach(function (rule) {
                    if (rule.device_id !== undefined) {
                        state.rules["d:" + rule.device_id.toLowerCase()] = rule;
                    } else {
                        state.rules["u:" + rule.user.toLowerCase()] = rule;
                    }
                });
            }
        });
    }

    function button(text, cls, handler) {
        var b = el("button", text, cls);
        b.type = "button";
        b.addEventListener("click", handler);
        return b;
    }

    function decide(d, access, verb) {
        var what = "device " + d.device_id + " of " + d.user;
        confirmThen(verb + " " + what + " now?", verb + " " + what,
                    function () {
                        return api("POST", "rules",
                                   { access: access, device_id: d.device_id });
                    });
    }

    function deviceRow(d, now) {
        var tr = el("tr"), td, rule, stale;

        rule = state.rules["d:" + d.device_id.toLowerCase()]
               || state.rules["u:" + d.user.toLowerCase()];
        stale = d.last_seen < now - config.stale_seconds;

        tr.dataset.deviceId = d.device_id;
        if (stale) {
            tr.classList.add("stale");
        }

        tr.appendChild(el("td", d.user));
        tr.appendChild(el("td", d.device_id, "device-id"));
        tr.appendChild(el("td", d.device_type));
        tr.appendChild(el("td", d.user_agent, "ua"));
        tr.appendChild(el("td", d.protocol_version));

        td = el("td", when(d.last_seen), "when");
        td.title = ago(d.last_seen);
        if (stale) {
            td.appendChild(document.createTextNode(" "));
            td.appendChild(el("span", "stale", "badge stale"));
        }
        tr.appendChild(td);

        td = el("td");
        td.appendChild(el("span", d.access || "none", "badge " + d.access));
        tr.appendChild(td);

        td = el("td");
        if (rule) {
            td.appendChild(el("span", rule.access, "badge " + rule.access));
            td.appendChild(el("div", (rule.device_id !== undefined
                                      ? "this device" : "user " + rule.user)
                                     + ", by " + rule.by, "by"));
        }
        tr.appendChild(td);

        tr.appendChild(el("td", d.reason));
        tr.appendChild(el("td", d.gateway || ""));

        td = el("td", null, "actions");
        td.appendChild(button("Block", "danger act-block", function () {
            decide(d, "block", "Block");
        }));
        td.appendChild(button("Allow", "act-allow", function () {
            decide(d, "allow", "Allow");
        }));
        td.appendChild(button("Lost", "danger act-lost", function () {
            decide(d, "lost", "Lost-phone mode for");
        }));
        if (rule && rule.device_id !== undefined) {
            td.appendChild(button("Clear rule", "act-clear", function () {
                var what = "the runtime rule of device " + d.device_id;
                confirmThen("Remove " + what + "?", "Removed " + what,
                            function () {
                                return api("DELETE", "rules",
                                           { device_id: d.device_id });
                            });
            }));
        }
        td.appendChild(button("Delete", "danger act-delete", function () {
            var what = "device " + d.device_id + " of " + d.user;
            confirmThen("Delete the record of " + what + "? Its place under "
                        + "eas_device_max is freed.", "Deleted " + what,
                        function () {
                            /* user "" too: a request that named none */
                            return api("DELETE", "devices",
                                       { user: d.user,
                                         device_id: d.device_id }, true);
                        });
        }));
        tr.appendChild(td);

        return tr;
    }

    function loadDevices() {
        var f = filter();

        return Promise.all([api("GET", "devices", f), loadRules()])
            .then(function (replies) {
                var reply = replies[0], rows = $("device-rows"), now;

                clear(rows);

                if (!reply.ok) {
                    $("device-summary").textContent = "Devices: HTTP "
                        + reply.status + " " + (reply.body.error || "");
                    return;
                }

                now = Date.now() / 1000;
                reply.body.devices.forEach(function (d) {
                    rows.appendChild(deviceRow(d, now));
                });

                state.pages = Math.max(1, Math.ceil(reply.body.total
                                                    / reply.body.per_page));
                $("device-summary").textContent = reply.body.total
                    + " device(s) match";
                $("page-info").textContent = "page " + reply.body.page
                    + " of " + state.pages;
                $("page-prev").disabled = state.page <= 1;
                $("page-next").disabled = state.page >= state.pages;
                document.body.dataset.devicesLoaded = String(Date.now());
            });
    }

    /* ---- lockouts ---- */

    function loadLockouts() {
        return api("GET", "lockouts").then(function (reply) {
            var rows = $("lockout-rows");

            clear(rows);

            if (!reply.ok) {
                rows.appendChild(el("tr")).appendChild(
                    el("td", "Lockouts: HTTP " + reply.status + " "
                       + (reply.body.error || "")));
                return;
            }

            if (reply.body.lockouts.length === 0) {
                rows.appendChild(el("tr")).appendChild(
                    el("td", "Nobody is locked out.", "empty"));
            }

            reply.body.lockouts.forEach(function (l) {
                var tr = el("tr"), td;

                tr.dataset.key = l.key;
                tr.appendChild(el("td", l.kind));
                tr.appendChild(el("td", l.key, "key"));
                tr.appendChild(el("td", l.failures));
                tr.appendChild(el("td", when(l.until)));
                tr.appendChild(el("td", Math.max(0, l.left) + " s"));

                td = el("td", null, "actions");
                td.appendChild(button("Unlock", "act-unlock", function () {
                    var p = {}, what = l.kind + " " + l.key;
                    p[l.kind === "user" ? "user" : "address"] = l.key;
                    confirmThen("Unlock " + what + "?", "Unlocked " + what,
                                function () {
                                    return api("DELETE", "lockouts", p);
                                });
                }));
                tr.appendChild(td);
                rows.appendChild(tr);
            });

            document.body.dataset.lockoutsLoaded = String(Date.now());
        });
    }

    /* ---- push health ---- */

    function sum(o) {
        return Object.keys(o || {}).reduce(function (a, k) {
            return a + o[k];
        }, 0);
    }

    function poll() {
        if (!config.status) {
            $("push-summary").textContent = "No status location: name it "
                + "with eas_console status=/path/of/eas_status.";
            return Promise.resolve();
        }

        return fetch(new URL(config.status, API),
                     { headers: { "Accept": "application/json" },
                       credentials: "same-origin", cache: "no-store" })
            .then(function (reply) {
                if (!reply.ok) {
                    throw new Error("HTTP " + reply.status);
                }
                return reply.json();
            })
            .then(function (s) {
                var lp = s.longpoll, b = s.backend;

                samples.push({
                    t: s.now,
                    held: lp.held,
                    completed: lp.completed,
                    superseded: lp.superseded,
                    edge: lp.ping_status_5 + lp.sync_status_14,
                    verdicts: sum(b.verdicts),
                    status: s
                });

                while (samples.length
                       && samples[0].t < s.now - HISTORY) {
                    samples.shift();
                }

                drawPush();
            })
            .catch(function (err) {
                $("push-summary").textContent = "Status " + config.status
                    + ": " + err.message;
            });
    }

    function tile(label, value) {
        var t = el("div", null, "tile");
        t.appendChild(el("div", value, "value"));
        t.appendChild(el("div", label, "label"));
        return t;
    }

    var SVG = "http://www.w3.org/2000/svg";

    function svg(tag, attrs) {
        var e = document.createElementNS(SVG, tag);
        Object.keys(attrs).forEach(function (k) {
            e.setAttribute(k, attrs[k]);
        });
        return e;
    }

    /* a line over the last hour; rate: per minute between samples */
    function chart(title, key, rate) {
        var box = el("div", null, "chart"), W = 300, H = 80, pts = [],
            now = samples[samples.length - 1].t, max = 0, s, i, v, g,
            line;

        for (i = 0; i < samples.length; i++) {
            s = samples[i];
            if (rate) {
                if (i === 0 || s.t <= samples[i - 1].t) {
                    continue;
                }
                v = Math.max(0, (s[key] - samples[i - 1][key]) * 60
                                / (s.t - samples[i - 1].t));
            } else {
                v = s[key];
            }
            pts.push([s.t, v]);
            max = Math.max(max, v);
        }

        box.dataset.chart = key;
        box.appendChild(el("h3", title));

        g = svg("svg", { viewBox: "0 0 " + W + " " + (H + 12),
                         role: "img", "aria-label": title });
        g.appendChild(svg("line", { x1: 0, y1: H, x2: W, y2: H,
                                    "class": "axis" }));
        line = pts.map(function (p) {
            var x = W - (now - p[0]) * W / HISTORY;
            var y = H - (max ? p[1] * (H - 4) / max : 0);
            return x.toFixed(1) + "," + y.toFixed(1);
        }).join(" ");
        g.appendChild(svg("polyline", { points: line, "class": "line" }));
        v = svg("text", { x: 2, y: 10, "class": "max" });
        v.textContent = "max " + (Math.round(max * 10) / 10)
            + (rate ? "/min" : "");
        g.appendChild(v);
        v = svg("text", { x: 2, y: H + 11, "class": "max" });
        v.textContent = "-60 min";
        g.appendChild(v);
        box.appendChild(g);

        return box;
    }

    function drawPush() {
        var last = samples[samples.length - 1], s = last.status,
            tiles = $("push-tiles"), charts = $("push-charts"),
            rows = $("verdict-rows");

        $("push-summary").textContent = samples.length + " sample(s) since "
            + when(samples[0].t) + "; last " + when(last.t);

        clear(tiles);
        tiles.appendChild(tile("held now", s.longpoll.held));
        tiles.appendChild(tile("completed", s.longpoll.completed));
        tiles.appendChild(tile("Pings superseded", s.longpoll.superseded));
        tiles.appendChild(tile("edge Ping Status 5",
                               s.longpoll.ping_status_5));
        tiles.appendChild(tile("edge Sync Status 14",
                               s.longpoll.sync_status_14));
        tiles.appendChild(tile("backend limit out of range",
                               s.backend.limit_outside_range));

        clear(charts);
        charts.appendChild(chart("Held now", "held", false));
        charts.appendChild(chart("Completed per minute", "completed", true));
        charts.appendChild(chart("Superseded per minute", "superseded",
                                 true));
        charts.appendChild(chart("Edge Status 5/14 per minute", "edge",
                                 true));
        charts.appendChild(chart("Backend verdicts per minute", "verdicts",
                                 true));

        clear(rows);
        Object.keys(s.backend.verdicts).forEach(function (k) {
            var tr = el("tr");
            tr.appendChild(el("td", "HTTP " + k));
            tr.appendChild(el("td", s.backend.verdicts[k]));
            rows.appendChild(tr);
        });
        Object.keys(s.backend.eas_status).forEach(function (k) {
            var tr = el("tr");
            tr.appendChild(el("td", "EAS Status " + k));
            tr.appendChild(el("td", s.backend.eas_status[k]));
            rows.appendChild(tr);
        });

        document.body.dataset.pushSamples = String(samples.length);
    }

    /* ---- screens ---- */

    var current = "devices";

    function refresh() {
        if (current === "devices") {
            return loadDevices();
        }
        if (current === "lockouts") {
            return loadLockouts();
        }
        return poll();
    }

    function screen(name) {
        current = name;
        document.querySelectorAll(".screen").forEach(function (s) {
            s.hidden = (s.id !== name);
        });
        document.querySelectorAll("nav .tab").forEach(function (t) {
            t.classList.toggle("active", t.dataset.screen === name);
        });
        if (name !== "push") {
            refresh();
        } else if (samples.length) {
            drawPush();
        }
    }

    function start() {
        document.querySelectorAll("nav .tab").forEach(function (t) {
            t.addEventListener("click", function () {
                screen(t.dataset.screen);
            });
        });

        $("device-filter").addEventListener("submit", function (e) {
            e.preventDefault();
            state.page = 1;
            loadDevices();
        });
        $("device-filter").addEventListener("reset", function () {
            state.page = 1;
            setTimeout(loadDevices, 0);
        });
        $("page-prev").addEventListener("click", function () {
            state.page = Math.max(1, state.page - 1);
            loadDevices();
        });
        $("page-next").addEventListener("click", function () {
            state.page = Math.min(state.pages, state.page + 1);
            loadDevices();
        });
        $("lockouts-refresh").addEventListener("click", loadLockouts);
        $("unlock-all").addEventListener("click", function () {
            confirmThen("Unlock every user and address locked now?",
                        "Unlocked all", function () {
                            return api("DELETE", "lockouts", { all: "1" });
                        });
        });

        api("GET", "console/config.json").then(function (reply) {
            if (reply.ok) {
                config = reply.body;
            }
            $("stale-for").textContent = duration(config.stale_seconds);
            screen("devices");
            poll();
            setInterval(poll, POLL);
        });
    }

    document.addEventListener("DOMContentLoaded", start);
}());
