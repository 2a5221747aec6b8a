
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Unit tests for eas_json_object(), the admin API's JSON input.  Every
 * case of eas_json_tests[] is a body and the line the reader must make
 * of it: "name=value;..." or "error".  Each body is read from a
 * malloc() block of exactly its size (AddressSanitizer sees an
 * over-read), and every proper prefix of an accepted body must be
 * refused.  tests/fuzz/corpus/json/ holds these bodies as seeds.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_json.h"


#define EAS_TEST_LINE   256
#define EAS_TEST_PAIRS  4


typedef struct {
    const char          *name;
    const char          *body;
    const char          *expect;
} eas_json_test_t;


static const eas_json_test_t  eas_json_tests[] = {

    { "two strings", "{\"access\":\"block\",\"device_id\":\"ApplX\"}",
      "access=block;device_id=ApplX;" },
    { "blanks everywhere", " \n{ \"a\" : \"b\" ,\t\"c\":\"d\" }\r\n",
      "a=b;c=d;" },
    { "empty object", "{}", "" },
    { "numbers", "{\"days\":90,\"x\":-1.5e3,\"y\":0,\"z\":2E+1}",
      "days=90;x=-1.5e3;y=0;z=2E+1;" },
    { "true refused", "{\"device_id\":true}", "error" },
    { "false refused", "{\"device_id\":false}", "error" },
    { "leading zero refused", "{\"days\":007}", "error" },
    { "number then letters refused", "{\"days\":1abc}", "error" },
    { "bare minus refused", "{\"days\":-}", "error" },
    { "bare exponent refused", "{\"days\":1e}", "error" },
    { "escapes", "{\"u\":\"CONTOSO\\\\amy \\\"q\\\" \\/\"}",
      "u=CONTOSO\\amy \"q\" /;" },
    { "unicode", "{\"u\":\"J\\u00f6rg \\ud83d\\ude00\"}",
      "u=J\xc3\xb6rg \xf0\x9f\x98\x80;" },
    { "raw UTF-8 passes", "{\"u\":\"J\xc3\xb6rg\"}", "u=J\xc3\xb6rg;" },
    { "empty string", "{\"u\":\"\"}", "u=;" },
    { "null refused", "{\"u\":null}", "error" },
    { "nested refused", "{\"u\":{\"a\":\"b\"}}", "error" },
    { "array refused", "{\"u\":[1]}", "error" },
    { "not an object", "[\"a\"]", "error" },
    { "trailing comma", "{\"a\":\"b\",}", "error" },
    { "two objects", "{}{}", "error" },
    { "control byte", "{\"a\":\"b\nc\"}", "error" },
    { "NUL escape", "{\"a\":\"\\u0000\"}", "error" },
    { "lone low surrogate", "{\"a\":\"\\udc00\"}", "error" },
    { "lone high surrogate", "{\"a\":\"\\ud83dx\"}", "error" },
    { "bad escape", "{\"a\":\"\\x41\"}", "error" },
    { "bad hex", "{\"a\":\"\\u00g0\"}", "error" },
    { "unquoted name", "{a:\"b\"}", "error" },
    { "bare word", "{\"a\":yes}", "error" },
    { "too many pairs", "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}",
      "error" },
    { "empty input", "", "error" },

    { NULL, NULL, NULL }
};


static unsigned  eas_test_passed;
static unsigned  eas_test_failed;


static void
eas_test_read(const char *body, size_t len, char *line)
{
    int               rc;
    size_t            i, n, used;
    unsigned char    *copy;
    eas_json_pair_t   pairs[EAS_TEST_PAIRS];
    unsigned char     buf[EAS_TEST_LINE];

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    memcpy(copy, body, len);

    rc = eas_json_object(copy, len, pairs, EAS_TEST_PAIRS, &n, buf,
                         sizeof(buf));

    if (rc != EAS_OK) {
        snprintf(line, EAS_TEST_LINE, "error");
        free(copy);
        return;
    }

    used = 0;
    line[0] = '\0';

    for (i = 0; i < n; i++) {
        used += snprintf(line + used, EAS_TEST_LINE - used, "%.*s=%.*s;",
                         (int) pairs[i].name.len,
                         (const char *) pairs[i].name.data,
                         (int) pairs[i].value.len,
                         (const char *) pairs[i].value.data);
    }

    free(copy);
}


int
main(void)
{
    size_t                  len, k;
    const eas_json_test_t  *t;
    char                    line[EAS_TEST_LINE];

    for (t = eas_json_tests; t->name; t++) {
        len = strlen(t->body);

        eas_test_read(t->body, len, line);

        if (strcmp(line, t->expect) == 0) {
            eas_test_passed++;

        } else {
            eas_test_failed++;
            printf("FAIL %s\n  expected: %s\n  got:      %s\n", t->name,
                   t->expect, line);
        }

        if (strcmp(t->expect, "error") == 0) {
            continue;
        }

        /* a prefix of an object is never one (but for trailing blanks) */

        for (k = 0; k < len; k++) {
            eas_test_read(t->body, k, line);

            if (strcmp(line, "error") == 0
                || strspn(t->body + k, " \t\r\n") == len - k)
            {
                eas_test_passed++;

            } else {
                eas_test_failed++;
                printf("FAIL %s: prefix %zu accepted\n", t->name, k);
            }
        }
    }

    printf("test_eas_json: %u passed, %u failed\n", eas_test_passed,
           eas_test_failed);

    return eas_test_failed ? 1 : 0;
}
