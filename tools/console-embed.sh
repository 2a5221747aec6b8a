#!/bin/sh
# Writes the C header that holds the admin console's files, one byte
# array each, named after the file: ngx_eas_module/console/console.js
# becomes ngx_http_eas_console_console_js[].  The sources stay readable
# in ngx_eas_module/console/; the module's "config" runs this when nginx
# is configured and tools/build-module.sh before each build.  The header
# is rewritten only when it changes, so make recompiles only then.
#
#   tools/console-embed.sh OUT.h FILE...

set -eu

out=$1
shift
tmp="$out.tmp.$$"

{
    echo "/* made by tools/console-embed.sh from ngx_eas_module/console/ */"
    for f in "$@"; do
        name=$(basename "$f" | tr '.-' '__')
        echo "static u_char  ngx_http_eas_console_$name[] = {"
        od -An -v -tx1 "$f" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g; s/^/    /'
        echo "};"
    done
} > "$tmp"

if cmp -s "$tmp" "$out"; then
    rm -f "$tmp"
else
    mv "$tmp" "$out"
fi
