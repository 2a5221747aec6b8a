#!/bin/sh
# The mechanical part of the code style (CONTRIBUTING.md): 80 columns,
# no tabs, no trailing spaces, no // comments in C, no nginx headers in
# the pure core; and the project carries its own documents: no file
# cites notes kept outside the repository, no Markdown link points to a
# file or a heading that is not in it.

set -u

cd "$(dirname "$0")/.."

status=0

report() {
    echo "lint: $1" >&2
    status=1
}

c_files=$(git ls-files -co --exclude-standard \
          'ngx_eas_module/*.[ch]' 'tests/*.c' 'bench/*.c')

for f in $c_files; do
    [ -f "$f" ] || continue

    awk -v f="$f" 'length($0) > 80 { printf "%s:%d: longer than 80 columns\n", f, NR }' "$f"
    grep -n "$(printf '\t')" "$f" | sed "s|^|$f:|; s|$| (tab)|" | cut -c1-120
    grep -n ' $' "$f" | sed "s|^|$f:|; s|$| (trailing space)|" | cut -c1-120
    grep -n '^[^"]*//' "$f" | grep -v 'http://\|https://' \
        | sed "s|^|$f:|; s|$| (// comment)|" | cut -c1-120
done > build-lint.txt 2>/dev/null || true

for f in ngx_eas_module/proto/*.[ch]; do
    grep -n '#include *[<"]ngx_' "$f" | sed "s|^|$f:|; s|$| (nginx include in proto/)|"
done >> build-lint.txt

if [ -s build-lint.txt ]; then
    cat build-lint.txt >&2
    status=1
fi

rm -f build-lint.txt

other=$(git ls-files -co --exclude-standard \
        '*.py' '*.sh' 'Makefile' 'config' 'tools/*' 'docs/*.md' \
        'conf.example/*' 'README.md')

for f in $other; do
    [ -f "$f" ] || continue
    if grep -q ' $' "$f"; then
        report "$f: trailing spaces"
    fi
done

# the protocol notes, the design and the style are docs/protocol.md,
# docs/design.md and CONTRIBUTING.md; the patterns are bracketed so that
# this file does not match itself

outside='EAS-PROTOCOL[.]md|DESIGN[.]md|STYLE[.]md'
outside="$outside|(^|[^[:alnum:]_.-])share[d]/|project brie[f]"

git ls-files -co --exclude-standard -z \
    | xargs -0 grep -InE "$outside" -- 2>/dev/null | cut -c1-120 \
    > build-lint.txt

if [ -s build-lint.txt ]; then
    sed 's|$| (cites a document outside the repository)|' build-lint.txt >&2
    status=1
fi

rm -f build-lint.txt

# relative Markdown links, [text](path) or [text](path#anchor): the
# file is in the repository and, in a Markdown file, so is the heading
# (its GitHub anchor: lower case, punctuation dropped, spaces to "-")

git ls-files -co --exclude-standard | /usr/bin/python3 -c '
import os, re, sys

files = set(sys.stdin.read().split())

def anchors(path):
    seen, out, code = {}, set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            code = not code
        m = None if code else re.match(r"(#{1,6})\s+(.*?)\s*$", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(2).lower()).replace(" ", "-")
            n = seen.get(a, 0)
            seen[a] = n + 1
            out.add(a if n == 0 else "%s-%d" % (a, n))
    return out

for f in sorted(x for x in files if x.endswith(".md") and os.path.isfile(x)):
    text = open(f, encoding="utf-8").read()
    for target in sorted(set(re.findall(r"\]\(([^)\s]*)", text))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(f), path)) \
            if path else f
        path = path.rstrip("/")
        while path.startswith("./"):
            path = path[2:]
        if path not in files and not any(x.startswith(path + "/")
                                         for x in files):
            print("lint: %s: link to %s: no such file in the repository"
                  % (f, target))
        elif anchor and path.endswith(".md") and path in files \
                and anchor not in anchors(path):
            print("lint: %s: link to %s: no such heading" % (f, target))
' > build-lint.txt

if [ -s build-lint.txt ]; then
    cat build-lint.txt >&2
    status=1
fi

rm -f build-lint.txt

[ $status = 0 ] && echo "lint: ok"
exit $status
