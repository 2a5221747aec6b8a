
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * libFuzzer harness for the Basic credentials core: the whole input is
 * an Authorization header value for eas_basic_parse(), and the same
 * bytes go to eas_user_split() and eas_user_normalize().  The input is
 * copied into a malloc() block of exactly its size and the scratch
 * buffer is exactly EAS_BASIC_BUFFER_SIZE bytes.  Besides sanitizer
 * errors the harness aborts when a result breaks the contract of
 * eas_basic.h.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_basic.h"

#define EAS_FUZZ_NAME  "fuzz_eas_basic"
#include "../common/eas_fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void eas_fuzz_user(const unsigned char *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    size_t          i;
    unsigned char  *value, *buf;
    eas_basic_t     out;

    value = malloc(size ? size : 1);
    buf = malloc(EAS_BASIC_BUFFER_SIZE);
    eas_fuzz_assert(value != NULL && buf != NULL, "out of memory");

    if (size) {
        memcpy(value, data, size);
    }

    memset(&out, 0xA5, sizeof(eas_basic_t));

    rc = eas_basic_parse(value, size, buf, EAS_BASIC_BUFFER_SIZE, &out);

    if (rc == EAS_OK) {
        eas_fuzz_assert(out.reason == EAS_BASIC_OK, "reason on success");
        eas_fuzz_assert(out.user.len > 0
                        && out.user.len <= EAS_BASIC_USER_MAX,
                        "user length");
        eas_fuzz_assert(out.password.len <= EAS_BASIC_PASSWORD_MAX,
                        "password length");
        eas_fuzz_assert(out.user.data == buf
                        && out.password.data == buf + out.user.len + 1
                        && buf[out.user.len] == ':',
                        "slices are not user:password in the buffer");
        eas_fuzz_assert(memchr(out.user.data, ':', out.user.len) == NULL,
                        "colon in user");

        for (i = 0; i < out.user.len; i++) {
            eas_fuzz_assert(out.user.data[i] >= 0x20
                            && out.user.data[i] != 0x7f,
                            "control byte in user");
        }

        eas_fuzz_assert(out.password.len == 0
                        || memchr(out.password.data, '\0',
                                  out.password.len) == NULL,
                        "NUL in password");

        eas_fuzz_user(out.user.data, out.user.len);

    } else {
        eas_fuzz_assert(rc == EAS_ERROR, "rc is neither EAS_OK nor EAS_ERROR");
        eas_fuzz_assert(out.reason > EAS_BASIC_MISSING
                        && out.reason < EAS_BASIC_LAST,
                        "reason out of range");
        eas_fuzz_assert(out.user.len == 0 && out.password.len == 0,
                        "slices on refusal");
        eas_fuzz_assert(eas_basic_reason_name(out.reason) != NULL
                        && eas_basic_reason_text(out.reason) != NULL,
                        "reason without a name");
    }

    eas_fuzz_user(value, size);

    free(value);
    free(buf);

    return 0;
}


static void
eas_fuzz_user(const unsigned char *p, size_t len)
{
    int             rc;
    size_t          n, i;
    eas_user_t      u;
    unsigned char  *id;

    rc = eas_user_split(p, len, &u);

    id = malloc(len ? len : 1);
    eas_fuzz_assert(id != NULL, "out of memory");

    n = eas_user_normalize(p, len, id, len);

    if (rc != EAS_OK) {
        eas_fuzz_assert(n == 0, "identity of a refused name");
        free(id);
        return;
    }

    eas_fuzz_assert(u.name.len > 0 && n == u.name.len,
                    "identity length is not the name length");
    eas_fuzz_assert(u.name.data >= p && u.name.data + u.name.len <= p + len,
                    "name outside the input");
    eas_fuzz_assert(memchr(u.name.data, '\\', u.name.len) == NULL,
                    "backslash in name");

    if (u.form == EAS_USER_FORM_BARE) {
        eas_fuzz_assert(u.domain.len == 0 && u.name.len == len,
                        "bare form with a domain");

    } else {
        eas_fuzz_assert(u.domain.len > 0
                        && u.domain.len + u.name.len + 1 == len,
                        "split loses bytes");
    }

    for (i = 0; i < n; i++) {
        eas_fuzz_assert(id[i] < 'A' || id[i] > 'Z', "upper case in identity");
    }

    free(id);
}
