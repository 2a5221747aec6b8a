
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * libFuzzer harness for the LDAP strings of the core: the input is a
 * user name, escaped as a filter value and as a DN value and put into
 * a template.  Besides sanitizer errors the harness aborts when an
 * escaped value holds a byte that could end it ("*", "(", ")", NUL, a
 * DN special) or when unescaping it does not give the input back.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_ldap.h"

#define EAS_FUZZ_NAME  "fuzz_eas_ldap"
#include "../common/eas_fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void eas_fuzz_value(unsigned kind, const unsigned char *in,
    size_t len, const unsigned char *out, size_t n);
static int eas_fuzz_hex(unsigned char c);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          n;
    unsigned        kind;
    eas_str_t       domain;
    eas_user_t      user;
    unsigned char  *in, *out;

    in = malloc(size ? size : 1);
    out = malloc(EAS_LDAP_STRING_MAX);
    eas_fuzz_assert(in != NULL && out != NULL, "out of memory");

    if (size) {
        memcpy(in, data, size);
    }

    for (kind = EAS_LDAP_FILTER; kind <= EAS_LDAP_DN; kind++) {
        if (eas_ldap_escape(kind, in, size, out, EAS_LDAP_STRING_MAX, &n)
            == EAS_OK)
        {
            eas_fuzz_assert(n < EAS_LDAP_STRING_MAX && out[n] == '\0',
                            "not terminated");
            eas_fuzz_value(kind, in, size, out, n);

        } else {
            eas_fuzz_assert(size * 3 + 1 > EAS_LDAP_STRING_MAX,
                            "refused a short value");
        }
    }

    /* the input as a template: %d found only where a check sees it */

    if (eas_ldap_template_has(in, size, 'd')) {
        eas_fuzz_assert(size >= 2, "%d in a short template");
    }

    domain.data = (const unsigned char *) "example.org";
    domain.len = 11;

    if (eas_user_split(in, size, &user) == EAS_OK
        && eas_ldap_expand(EAS_LDAP_FILTER,
                           (const unsigned char *) "(&(uid=%u)(o=%d))", 17,
                           &user, &domain, out, EAS_LDAP_STRING_MAX, &n)
           == EAS_OK)
    {
        eas_fuzz_assert(n >= 13 && out[n] == '\0', "expansion length");
        eas_fuzz_assert(memchr(out + 7, '*', n - 7) == NULL,
                        "wildcard in expansion");
        eas_fuzz_assert(memchr(out, '\0', n) == NULL, "NUL in expansion");
    }

    free(in);
    free(out);

    return 0;
}


static void
eas_fuzz_value(unsigned kind, const unsigned char *in, size_t len,
    const unsigned char *out, size_t n)
{
    size_t         i, j;
    unsigned char  c;

    j = 0;

    for (i = 0; i < n; i++) {
        c = out[i];

        eas_fuzz_assert(c >= 0x20 && c != 0x7f, "control byte");

        if (c == '\\') {
            eas_fuzz_assert(i + 2 < n + 1 && eas_fuzz_hex(out[i + 1]) >= 0
                            && eas_fuzz_hex(out[i + 2]) >= 0, "bad escape");
            c = (unsigned char) (eas_fuzz_hex(out[i + 1]) * 16
                                 + eas_fuzz_hex(out[i + 2]));
            i += 2;

        } else if (kind == EAS_LDAP_FILTER) {
            eas_fuzz_assert(c != '*' && c != '(' && c != ')',
                            "filter special");

        } else {
            eas_fuzz_assert(strchr("\"+,;<>=", c) == NULL, "DN special");
            eas_fuzz_assert(!(i == 0 && (c == '#' || c == ' '))
                            && !(i == n - 1 && c == ' '), "DN edge");
        }

        eas_fuzz_assert(j < len && in[j] == c, "does not unescape");
        j++;
    }

    eas_fuzz_assert(j == len, "unescaped length");
}


static int
eas_fuzz_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
