"""Every nginx configuration an admin can copy from README.md, docs/*.md
and conf.example/ passes "nginx -t", used the way its text says (issue
11.8, 13.7).  The test reads the files as they are when it runs, so a
snippet added tomorrow is checked tomorrow.

How a snippet is used is written next to it:

* in Markdown, an HTML comment on the line(s) before the code block
  (fenced or indented), invisible on a rendered page:

      <!-- nginx-t: CONTEXT [needs=NEED,NEED...] -->

  CONTEXT is where the text tells the reader to put the snippet:
  "main" (a whole nginx.conf), "http-block" (the http { } block of
  nginx.conf: load_module and events are added), "http" (inside
  http { }), "server"
  (inside a server { }), "location" (inside the ActiveSync location:
  "eas on" and a proxy_pass are there unless the snippet has its own),
  "upstream" (inside upstream eas_backend { }), or "skip REASON" for a
  block that is not meant to be used as is (a fragment with "...").
  NEEDS (table below) are what the surrounding text says must be there
  already, such as a zone declared in the http block.

* conf.example/ files: the table CONF_EXAMPLE below, taken from each
  file's header comment.

A code block that looks like nginx configuration (a line ending in ";"
or "{") without a marker fails the test: mark it.

What an admin changes (marked CHANGE) is swapped for throwaway values
by SUBSTITUTIONS: certificates, log and include paths under the work
directory, listen addresses on 127.0.0.1, the backend host name.
"""

import base64
import hashlib
import pathlib
import re
import shutil

import pytest

from eastest.nginx import Nginx, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "conf.example"

MARKER = re.compile(r"^\s*<!--\s*nginx-t:\s*(.*?)\s*-->\s*$")
CONFIG_LINE = re.compile(r"^\s*[a-z_][a-z0-9_]*\b[^;{}]*[;{]\s*(#.*)?$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
CONTEXTS = ("main", "http-block", "http", "server", "location", "upstream")

# how each conf.example file is used, per its header comment
CONF_EXAMPLE = {
    "nginx.conf": ("main", ()),
    "eas-log-formats.conf": ("http", ()),
    "eas-fail2ban.conf": ("http", ()),
    "tls-modern.conf": ("server", ("tls",)),
    "tls-legacy.conf": ("server", ("tls",)),
    "eas-proxy.conf": ("location", ()),
    "eas-devices.conf": ("location", ("device_zone", "devices", "auth_zone",
                                      "preauth", "user_file")),
    "eas-preauth.conf": ("location", ("auth_zone", "preauth_location",
                                      "source")),
    "eas-legacy-server.conf": ("http", ("log_formats", "auth_zone",
                                        "device_zone", "upstream")),
    # http, then "include eas-preauth.conf; eas_preauth_ldap ad;
    # eas_device_user_lists directory;" in the location
    "eas-ldap-ad.conf": ("http", ("auth_zone", "ldap_location")),
    # the backend recipes: a server { } each, in nginx.conf's http block
    "eas-exchange.conf": ("http", ("log_formats", "auth_zone",
                                   "device_zone")),
    "eas-sogo.conf": ("http", ("log_formats", "auth_zone", "device_zone")),
    "eas-zpush.conf": ("http", ("log_formats", "auth_zone", "device_zone")),
}

# what a snippet's text says is there already; (context, text)
NEEDS = {
    "upstream": ("http", "upstream eas_backend { server 127.0.0.1:${backend}; }"),
    "auth_zone": ("http", "eas_preauth_zone zone=eas_auth:1m;"),
    "device_zone": ("http", "eas_device_zone zone=eas_devices:1m;"),
    "log_formats": ("http", "include ${dir}/eas-log-formats.conf;"),
    "ldap": ("http", "eas_ldap_server ad url=ldap://127.0.0.1:${backend} "
                     "bind=uid=%u,ou=people,dc=example,dc=org;"),
    "tls": ("server", "listen 127.0.0.1:${tls_port} ssl;\n"
                      "ssl_certificate ${cert};\n"
                      "ssl_certificate_key ${key};"),
    "preauth_location": ("server",
                         "location = /_eas_preauth {\n    internal;\n"
                         "    proxy_pass http://127.0.0.1:${backend}"
                         "/Microsoft-Server-ActiveSync;\n}"),
    "preauth": ("location", 'eas_preauth "ActiveSync";\n'
                            "eas_preauth_cache zone=eas_auth;"),
    "realm": ("location", 'eas_preauth "ActiveSync";'),
    "source": ("location", "eas_preauth_request /_eas_preauth;"),
    "user_file": ("location",
                  "eas_preauth_user_file ${dir}/eas-users.htpasswd;"),
    "devices": ("location", "eas_devices eas_devices;"),
    "ldap_location": ("location", "include ${dir}/eas-preauth.conf;\n"
                                  "eas_preauth_ldap ad;\n"
                                  "eas_device_user_lists directory;"),
}

# the files snippets name that an admin would have made
DATA_FILES = {
    "eas-users.htpasswd": "jdoe:{SHA}%s\n" % base64.b64encode(
        hashlib.sha1(b"secret").digest()).decode(),
    "device-rules.txt": "block device_id=ApplLOST0001\n",
    "device-users.txt": "jdoe block ApplLOST0001\n",
    "known-devices.txt": "allow device_id=ApplC39ZH2VJJCM3\n",
    "blocked.txt": "block device_id=ApplLOST0001\n",
    "users.txt": "jdoe block ApplLOST0001\n",
    "ldap-bind.secret": "the-service-password\n",
    "redis-password.txt": "the-redis-password\n",
}


def substitutions(env):
    """(regex, replacement) pairs: the CHANGE values an admin swaps."""
    return [
        (r"/usr/lib/nginx/modules/ngx_http_eas_module\.so",
         env["module"]),
        (r"/etc/nginx/ssl/[\w.-]+\.crt", env["cert"]),
        (r"/etc/nginx/ssl/[\w.-]+\.key", env["key"]),
        (r"/etc/nginx/eas-users\.htpasswd",
         env["dir"] + "/eas-users.htpasswd"),
        (r"/etc/nginx/eas/([\w.-]+\.pem)", env["ca"]),
        (r"/etc/nginx/eas/([\w.-]+\.txt)", env["dir"] + r"/\1"),
        (r"/etc/nginx/eas/(ldap-bind\.secret)", env["dir"] + r"/\1"),
        (r"/etc/ssl/certs/example-ca\.pem", env["ca"]),
        (r"/etc/nginx/((?!mime\.types)[\w.-]+\.conf)", env["dir"] + r"/\1"),
        (r"/var/log/nginx/", env["dir"] + "/"),
        (r"(proxy_pass https?://)exchange\.internal\.example\.org",
         r"\1localhost"),
    ]


def adapt(text, env):
    for pattern, replacement in substitutions(env):
        text = re.sub(pattern, replacement, text)
    # every listen on its own free port of 127.0.0.1
    text = re.sub(r"\blisten\s+(\S+:)?(443|80)\b",
                  lambda _: "listen 127.0.0.1:%d" % free_port(), text)
    return listen_everywhere(text)


def listen_everywhere(text):
    """A server { } without "listen" would bind *:80 even under nginx -t
    (and collide with a parallel run): give it a port of its own."""
    out = []
    pos = 0
    for match in re.finditer(r"(?m)^(\s*)server\s*\{", text):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        if re.search(r"(?m)^\s*listen\s", text[match.end():end]):
            continue
        out.append(text[pos:match.end()])
        out.append("\n%s    listen 127.0.0.1:%d;"
                   % (match.group(1).strip("\n"), free_port()))
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def fill(text, env):
    return re.sub(r"\$\{(\w+)\}", lambda m: str(env[m.group(1)]), text)


def code_blocks(text):
    """(line number, body, marker or None) of each fenced or indented
    code block of a Markdown text."""
    lines = text.split("\n")
    found = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        start = i
        if fence:
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(
                    fence.group(2)):
                body.append(lines[i][len(fence.group(1)):])
                i += 1
            i += 1
        elif (line.startswith("    ") and line.strip()
              and (i == 0 or not lines[i - 1].strip())):
            body = []
            while i < len(lines) and (lines[i].startswith("    ")
                                      or not lines[i].strip()):
                body.append(lines[i])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            indent = min(len(l) - len(l.lstrip()) for l in body if l.strip())
            body = [l[indent:] for l in body]
        else:
            i += 1
            continue
        marker = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and MARKER.match(lines[j]):
            marker = MARKER.match(lines[j]).group(1)
        found.append((start + 1, "\n".join(body), marker))
    return found


def looks_like_nginx(body):
    code = [l for l in body.split("\n")
            if l.strip() and not l.strip().startswith("#")]
    if not code or code[0].lstrip().startswith("Syntax:"):
        return False
    return any(CONFIG_LINE.match(l) for l in code)


def parse_marker(marker):
    words = marker.split()
    context = words[0]
    needs = ()
    for word in words[1:]:
        if word.startswith("needs="):
            needs = tuple(n for n in word[len("needs="):].split(",") if n)
    return context, needs


def doc_snippets():
    cases = []
    for path in [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")):
        for line, body, marker in code_blocks(path.read_text()):
            if marker is None and not looks_like_nginx(body):
                continue
            name = "%s:%d" % (path.relative_to(ROOT), line)
            cases.append(pytest.param(name, body, marker, id=name))
    return cases


def example_snippets():
    return [pytest.param("conf.example/" + path.name, path.read_text(),
                         "%s needs=%s" % (CONF_EXAMPLE[path.name][0],
                                          ",".join(CONF_EXAMPLE[path.name][1]))
                         if path.name in CONF_EXAMPLE else None,
                         id="conf.example/" + path.name)
            for path in sorted(EXAMPLE.iterdir()) if path.is_file()]


def compose(context, needs, body, env):
    """A whole nginx.conf that uses body the way its context says."""
    if context == "main":
        return body
    if context == "http-block":
        http = [fill(NEEDS[need][1], env) for need in needs
                if NEEDS[need][0] == "http"]
        assert len(http) == len(needs), "http-block takes http needs only"
        body = re.sub(r"(?m)^(\s*http\s*\{)",
                      lambda m: m.group(1) + "\n" + "\n".join(http), body,
                      count=1)
        return "load_module %s;\nevents { }\n\n%s\n" % (env["module"], body)
    parts = {name: [] for name in CONTEXTS}
    for need in needs:
        assert need in NEEDS, "unknown need %r (see NEEDS)" % need
        where, text = NEEDS[need]
        parts[where].append(fill(text, env))
    parts[context].append(body)

    def block(lines, depth):
        pad = "    " * depth
        return "\n".join(pad + l for text in lines for l in text.split("\n"))

    location = ""
    if context == "location":
        inner = list(parts["location"])
        if not re.search(r"(?m)^\s*eas\s+(on|off)\s*;", body):
            inner.insert(0, "eas on;")
        if not re.search(r"(?m)^\s*proxy_pass\s", body):
            inner.append("proxy_pass http://127.0.0.1:%s;" % env["backend"])
        location = ("location /Microsoft-Server-ActiveSync {\n%s\n}"
                    % block(inner, 1))
    server = ""
    if context in ("server", "location") or parts["server"]:
        lines = []
        if "tls" not in needs:
            lines.append("listen 127.0.0.1:%d;" % free_port())
        lines += parts["server"]
        if location:
            lines.append(location)
        server = "server {\n%s\n}" % block(lines, 1)
    upstream = ""
    if context == "upstream":
        upstream = ("upstream eas_backend {\n    server 127.0.0.1:%s;\n%s\n}"
                    % (env["backend"], block(parts["upstream"], 1)))
    http = parts["http"] + [t for t in (upstream, server) if t]
    return ("load_module %s;\nevents { }\n\nhttp {\n%s\n}\n"
            % (env["module"], block(http, 1)))


@pytest.fixture
def env(tmp_path, module_path, certs):
    # (subdirectories hold other programs' files, not nginx's)
    nginx_files = [path for path in EXAMPLE.iterdir() if path.is_file()]
    for path in nginx_files:
        shutil.copy(path, tmp_path / path.name)
    for name, text in DATA_FILES.items():
        (tmp_path / name).write_text(text)
    values = dict(module=str(module_path), dir=str(tmp_path),
                  cert=certs.cert, key=certs.key, ca=certs.ca,
                  backend=free_port(), tls_port=free_port())
    # the copies an "include /etc/nginx/X.conf" reaches, adapted too
    for path in nginx_files:
        target = tmp_path / path.name
        target.write_text(adapt(path.read_text(), values))
    return values


@pytest.mark.parametrize("name, body, marker",
                         doc_snippets() + example_snippets())
def test_snippet_passes_nginx_t(env, name, body, marker):
    assert marker is not None, (
        "%s looks like nginx configuration but says nowhere how it is "
        "used: put <!-- nginx-t: CONTEXT [needs=...] --> before it (see "
        "tests/integration/test_shipped_snippets.py)" % name)
    context, needs = parse_marker(marker)
    if context == "skip":
        assert marker.split(None, 1)[1:], "%s: skip needs a reason" % name
        pytest.skip(marker)
    assert context in CONTEXTS, "%s: unknown context %r" % (name, context)

    nginx = Nginx(env["dir"], pathlib.Path(env["module"]))
    text = compose(context, needs, adapt(body, env), env)
    with open(nginx.conf_path, "w") as conf:
        conf.write(text)

    rc, output = nginx.test_config()

    assert rc == 0 and "test is successful" in output, (
        "%s used as %s fails nginx -t:\n%s\n--- nginx.conf:\n%s"
        % (name, marker, output, text))


def test_every_example_file_says_how_it_is_used():
    # subdirectories hold other programs' files (fail2ban, Prometheus),
    # checked by their own tools in test_operations_files.py
    shipped = {path.name for path in EXAMPLE.iterdir() if path.is_file()}
    assert shipped == set(CONF_EXAMPLE)
