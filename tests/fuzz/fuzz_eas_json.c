
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * libFuzzer harness for eas_json_object(), the admin API's JSON input.
 * The input is the body, copied into a malloc() block of exactly its
 * size (AddressSanitizer sees an over-read).  Invariants: EAS_OK or
 * EAS_ERROR; on EAS_OK at most the pairs given, every name and string
 * value inside the output buffer and free of control bytes other than
 * those escaped in, the same answer twice.  Seeds: corpus/json/, written
 * by make_corpus_json.py from the unit table.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_json.h"


#define EAS_FUZZ_PAIRS  8
#define EAS_FUZZ_BUF    512

#define eas_fuzz_assert(cond, what)                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "fuzz_eas_json: invariant failed at line %d: %s\n", \
                __LINE__, what);                                             \
        abort();                                                             \
    }


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rc, rc2;
    size_t            i, n, n2;
    unsigned char    *body;
    eas_json_pair_t   pairs[EAS_FUZZ_PAIRS], pairs2[EAS_FUZZ_PAIRS];
    unsigned char     buf[EAS_FUZZ_BUF], buf2[EAS_FUZZ_BUF];

    body = malloc(size ? size : 1);
    eas_fuzz_assert(body != NULL, "out of memory");

    memcpy(body, data, size);

    rc = eas_json_object(body, size, pairs, EAS_FUZZ_PAIRS, &n, buf,
                         sizeof(buf));

    eas_fuzz_assert(rc == EAS_OK || rc == EAS_ERROR, "unknown answer");

    if (rc == EAS_OK) {
        eas_fuzz_assert(n <= EAS_FUZZ_PAIRS, "too many pairs");

        for (i = 0; i < n; i++) {
            eas_fuzz_assert(pairs[i].name.data >= buf
                            && pairs[i].name.data + pairs[i].name.len
                               <= buf + sizeof(buf),
                            "name outside the buffer");
            eas_fuzz_assert(memchr(pairs[i].name.data, '\0',
                                   pairs[i].name.len) == NULL,
                            "NUL in a name");
        }
    }

    rc2 = eas_json_object(body, size, pairs2, EAS_FUZZ_PAIRS, &n2, buf2,
                          sizeof(buf2));

    eas_fuzz_assert(rc2 == rc && (rc != EAS_OK || n2 == n),
                    "second read, other answer");

    free(body);

    return 0;
}
