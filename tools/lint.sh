#!/bin/sh
# The mechanical part of the code style (CONTRIBUTING.md): 80 columns,
# no tabs, no trailing spaces, no // comments in C, no nginx headers in
# the pure core; and the project carries its own documents: no file
# cites notes kept outside the repository, no Markdown link points to a
# file that is not in it.

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

# relative Markdown links: [text](path) or [text](path#anchor)

for f in $(git ls-files -co --exclude-standard '*.md'); do
    [ -f "$f" ] || continue
    dir=$(dirname "$f")

    grep -o '](\([^)]*\))' "$f" | sed 's/^](//; s/)$//; s/ .*//; s/#.*//' \
        | grep -v '^[a-z][a-z]*:' | sort -u \
        | while read -r target; do
            [ -n "$target" ] || continue
            path=$(realpath -m --relative-to=. "$dir/$target")
            if [ -z "$(git ls-files -co --exclude-standard -- "$path")" ]
            then
                echo "lint: $f: link to $target: no such file" \
                     "in the repository"
            fi
        done
done > build-lint.txt

if [ -s build-lint.txt ]; then
    cat build-lint.txt >&2
    status=1
fi

rm -f build-lint.txt

[ $status = 0 ] && echo "lint: ok"
exit $status
