#!/bin/sh
# The mechanical part of STYLE.md: 80 columns, no tabs, no trailing
# spaces, no // comments in C, no nginx headers in the pure core.

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

[ $status = 0 ] && echo "lint: ok"
exit $status
