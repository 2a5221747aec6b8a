"""The admin's pages name every value the code can give (issue 13.6):
each $eas_reason token and each $eas_auth value set anywhere in the
module appears in docs/variables.md.  The lists are read from the code
when the test runs, so a token added tomorrow without its line in the
docs fails here."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
CODE = ROOT / "ngx_eas_module"
VARIABLES = (ROOT / "docs" / "variables.md").read_text()

# names in the tables that a request never carries as $eas_reason
NEVER_SET = {"none", "unknown", "auth_ok"}


def quoted(path, pattern):
    # a path or a glob: a concern's files together
    text = "".join(f.read_text() for f in sorted(CODE.glob(path)))
    return set(re.findall(pattern, text))


def reason_tokens():
    tokens = quoted("proto/eas_reason.c", r'\{\s*"([a-z0-9_]+)",')
    tokens |= quoted("proto/eas_basic.c", r'\{\s*"(auth_[a-z_]+)",')
    # the glue files of the step that names them: pre-auth, device access,
    # long-poll, parse, the directory
    for name in ("ngx_http_eas_preauth*.c", "ngx_http_eas_access.c",
                 "ngx_http_eas_longpoll*.c", "ngx_http_eas_parse.c",
                 "ngx_http_eas_ldap*.c"):
        text = "".join(f.read_text() for f in sorted(CODE.glob(name)))
        tokens |= set(re.findall(r'"(auth_[a-z_]+)"', text))
        for block in re.findall(r"ngx_str_t\s+ngx_http_eas_\w*reason\w*\s*="
                                r"\s*ngx_string\(([^)]*)\)", text):
            literal = re.match(r'"(.*)"', block)
            if literal:
                tokens.add(literal.group(1))
    header = (CODE / "ngx_http_eas_module.h").read_text()
    tokens |= set(re.findall(r'#define NGX_HTTP_EAS_REASON_\w+\s+"([^"]+)"',
                             header))
    return tokens - NEVER_SET


def test_reason_tokens_are_read_from_the_code():
    tokens = reason_tokens()
    # the reader found every source, not an empty set that passes
    for sample in ("query_missing", "buffer_too_small", "auth_scheme",
                   "auth_zone_full", "heartbeat_expired", "method_not_allowed",
                   "directory:blocked", "eas_device_max",
                   "eas_device_zone_full", "eas_device_default"):
        assert sample in tokens, sample


def test_every_reason_token_is_in_variables_md():
    missing = sorted(t for t in reason_tokens()
                     if "`%s`" % t not in VARIABLES)
    assert not missing, "not in docs/variables.md: %s" % missing


def test_every_auth_value_is_in_variables_md():
    values = quoted("ngx_http_eas_preauth*.c",
                    r'ngx_http_eas_auth_\w+ = ngx_string\("(\w+)"\)')
    assert {"ok", "down", "grace", "busy"} <= values
    row = next(line for line in VARIABLES.split("\n")
               if line.startswith("| `$eas_auth` |"))
    missing = sorted(v for v in values if "`%s`" % v not in row)
    assert not missing, "not in the $eas_auth row: %s" % missing


def test_every_directive_is_in_the_index_of_directives_md():
    text = (ROOT / "docs" / "directives.md").read_text()
    index = text.split("## Index by task", 1)[1].split("\n### ", 1)[0]
    headings = re.findall(r"(?m)^### (.+)$", text)
    names = {name.strip() for heading in headings
             for name in heading.split(",")}
    assert "eas_longpoll" in names and "eas_device_block" in names
    missing = sorted(n for n in names if "[`%s`]" % n not in index
                     and "`%s`" % n not in index)
    assert not missing, "not in the index of directives.md: %s" % missing


def test_every_directive_of_the_code_has_a_heading():
    # each module of the shared object has its own table
    table = "".join(f.read_text()
                    for f in sorted(CODE.glob("ngx_http_eas*_module.c")))
    directives = set(re.findall(r'ngx_string\("(eas[a-z_]*)"\)', table))
    # variables are named in the same file's neighbours, not this table
    text = (ROOT / "docs" / "directives.md").read_text()
    headings = {name.strip() for heading in re.findall(r"(?m)^### (.+)$",
                                                        text)
                for name in heading.split(",")}
    assert "eas_preauth" in directives and "eas_longpoll" in directives
    missing = sorted(d for d in directives if d not in headings)
    assert not missing, "directives without a heading: %s" % missing


def test_every_auth_value_is_in_the_table_of_authentication_md():
    values = quoted("ngx_http_eas_preauth*.c",
                    r'ngx_http_eas_auth_\w+ = ngx_string\("(\w+)"\)')
    text = (ROOT / "docs" / "authentication.md").read_text()
    rows = {line.split("|")[1].strip().strip("`")
            for line in text.split("\n") if line.startswith("| `")}
    missing = sorted(values - rows)
    assert not missing, "no row in authentication.md's table: %s" % missing
