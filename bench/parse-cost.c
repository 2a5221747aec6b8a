/*
 * What the parse of bench/cpu.sh's request costs in the protocol core
 * alone: eas_target_check() of its target, then eas_request_parse() of
 * its query and headers, as ngx_http_eas_parse.c calls them (with a
 * scratch buffer, which the query does not use, so that builds from
 * before the clean query's reading compare).
 *
 *   cc -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
 *       -I ngx_eas_module/proto -o /tmp/parse-cost bench/parse-cost.c \
 *       ngx_eas_module/proto/eas_*.c
 *   for n in 1000 2000; do
 *       valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *           /tmp/parse-cost $n 2>&1 | grep refs
 *   done
 *
 * (refs(2000) - refs(1000)) / 1000 is one parse.  Add -DEAS_NO_SIMD for
 * the word-at-a-time reading other CPUs than x86-64 get.
 */

#include <stdio.h>
#include <stdlib.h>

#include "eas_proto.h"


static const char  target[] =
    "/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=jdoe"
    "&DeviceId=ApplC39ZH2VJJCM3&DeviceType=iPhone";


static int parse(void);


int
main(int argc, char **argv)
{
    int  i, n, sum;

    n = (argc > 1) ? atoi(argv[1]) : 1000;
    sum = 0;

    for (i = 0; i < n; i++) {
        sum += parse();
    }

    printf("%d parses, command %d\n", n, n ? sum / n : 0);

    return 0;
}


static int __attribute__((noinline))
parse(void)
{
    size_t         path;
    eas_str_t      t, uri;
    eas_input_t    in;
    eas_reason_e   reason;
    eas_request_t  req;

    static unsigned char  buf[eas_request_buffer_size(sizeof(target))];

    t.data = (const unsigned char *) target;
    t.len = sizeof(target) - 1;

    path = sizeof("/Microsoft-Server-ActiveSync") - 1;
    uri.data = t.data;
    uri.len = path;

    if (eas_target_check(&t, &uri, &reason) != EAS_OK) {
        abort();
    }

    memset(&in, 0, sizeof(eas_input_t));

    in.query.data = t.data + path + 1;
    in.query.len = t.len - path - 1;
    in.version.data = (const unsigned char *) "14.1";
    in.version.len = 4;
    in.has_version = 1;
    in.policy_key.data = (const unsigned char *) "3769048351";
    in.policy_key.len = 10;
    in.has_policy_key = 1;

    if (eas_request_parse(&in, &req, buf, sizeof(buf)) != EAS_OK) {
        abort();
    }

    return (int) req.command;
}
