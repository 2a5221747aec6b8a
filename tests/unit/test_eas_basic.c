
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Unit tests for the Basic credentials part of the protocol core
 * (docs/authentication.md): eas_basic_parse(), eas_user_split() and
 * eas_user_normalize().
 *
 * A header case either spells the whole header value ("raw") or gives
 * a scheme prefix and the decoded credentials, which the test encodes
 * in base64 itself.  Every input is copied into a malloc() block of
 * exactly its size, and the scratch buffer is exactly
 * EAS_BASIC_BUFFER_SIZE bytes, so AddressSanitizer sees any access past
 * an end.  The seeds of tests/fuzz/corpus/basic/ are the same forms.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_basic.h"
#include "../common/eas_test.h"


#define EAS_TEST_HEADER_MAX  2048


typedef struct {
    const char            *name;
    const char            *raw;         /* whole header value, or NULL */
    const char            *prefix;      /* with creds: "Basic " etc. */
    const char            *creds;       /* decoded "user:password" */
    size_t                 creds_len;   /* 0: strlen(creds) */
    eas_basic_reason_e     reason;      /* EAS_BASIC_OK: accepted */
    const char            *user;
    const char            *password;
} eas_test_basic_t;


typedef struct {
    const char            *user;
    int                    rc;
    unsigned               form;
    const char            *domain;
    const char            *name;
    const char            *identity;    /* "" when refused */
} eas_test_user_t;


static size_t eas_test_b64(const unsigned char *src, size_t len,
    char *dst);
static void eas_test_headers(void);
static void eas_test_users(void);
static void eas_test_reasons(void);


static const eas_test_basic_t  eas_basic_tests[] = {

    /* accepted */
    { "plain user", NULL, "Basic ", "jdoe:secret", 0, EAS_BASIC_OK,
      "jdoe", "secret" },
    { "down-level user", NULL, "Basic ", "CONTOSO\\jdoe:p@ss:w0rd", 0,
      EAS_BASIC_OK, "CONTOSO\\jdoe", "p@ss:w0rd" },
    { "upn user", NULL, "Basic ", "jane@example.com:x", 0, EAS_BASIC_OK,
      "jane@example.com", "x" },
    { "scheme in upper case", NULL, "BASIC ", "jdoe:secret", 0,
      EAS_BASIC_OK, "jdoe", "secret" },
    { "scheme in mixed case, two spaces", NULL, "bAsIc  ", "jdoe:secret", 0,
      EAS_BASIC_OK, "jdoe", "secret" },
    { "tab after the scheme", NULL, "Basic\t", "jdoe:secret", 0,
      EAS_BASIC_OK, "jdoe", "secret" },
    { "empty password", NULL, "Basic ", "jdoe:", 0, EAS_BASIC_OK,
      "jdoe", "" },
    { "utf-8 user and password", NULL, "Basic ",
      "j\xc3\xb6rg:p\xc3\xa4ss", 0, EAS_BASIC_OK, "j\xc3\xb6rg",
      "p\xc3\xa4ss" },
    { "trailing spaces", "Basic amRvZTpzZWNyZXQ=  ", NULL, NULL, 0,
      EAS_BASIC_OK, "jdoe", "secret" },
    { "no padding", "Basic amRvZTpzZWNyZXQ", NULL, NULL, 0,
      EAS_BASIC_OK, "jdoe", "secret" },
    { "control byte in password", NULL, "Basic ", "jdoe:a\x01z", 0,
      EAS_BASIC_OK, "jdoe", "a\x01z" },
    { "user of 256 bytes",
      NULL, "Basic ",
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      ":pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp",
      0, EAS_BASIC_OK,
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu",
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp" },

    /* refused */
    { "empty value", "", NULL, NULL, 0, EAS_BASIC_SCHEME, NULL, NULL },
    { "scheme only", "Basic", NULL, NULL, 0, EAS_BASIC_SCHEME, NULL, NULL },
    { "scheme and spaces only", "Basic   ", NULL, NULL, 0, EAS_BASIC_SCHEME,
      NULL, NULL },
    { "no space after the scheme", "BasicamRvZTpzZWNyZXQ=", NULL, NULL, 0,
      EAS_BASIC_SCHEME, NULL, NULL },
    { "ntlm", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==",
      NULL, NULL, 0, EAS_BASIC_SCHEME, NULL, NULL },
    { "negotiate", "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIB",
      NULL, NULL, 0, EAS_BASIC_SCHEME, NULL, NULL },
    { "bearer", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", NULL, NULL, 0,
      EAS_BASIC_SCHEME, NULL, NULL },
    { "basicx", NULL, "Basicx ", "jdoe:secret", 0, EAS_BASIC_SCHEME,
      NULL, NULL },
    { "bad base64 character", "Basic amRvZ*pzZWNyZXQ=", NULL, NULL, 0,
      EAS_BASIC_BASE64, NULL, NULL },
    { "url-safe base64", "Basic _-_-", NULL, NULL, 0, EAS_BASIC_BASE64,
      NULL, NULL },
    { "base64 of one trailing character", "Basic amRvZTpzZWNyZXQ=a", NULL,
      NULL, 0, EAS_BASIC_BASE64, NULL, NULL },
    { "space inside the token", "Basic amRv ZTpzZWNyZXQ=", NULL, NULL, 0,
      EAS_BASIC_BASE64, NULL, NULL },
    { "three padding characters", "Basic amRvZTpzZWNyZX===", NULL, NULL, 0,
      EAS_BASIC_BASE64, NULL, NULL },
    { "no colon", NULL, "Basic ", "jdoesecret", 0, EAS_BASIC_NO_COLON,
      NULL, NULL },
    { "empty user", NULL, "Basic ", ":secret", 0, EAS_BASIC_EMPTY_USER,
      NULL, NULL },
    { "empty user and password", NULL, "Basic ", ":", 0,
      EAS_BASIC_EMPTY_USER, NULL, NULL },
    { "NUL in user", NULL, "Basic ", "jd\0oe:secret", 12, EAS_BASIC_NUL,
      NULL, NULL },
    { "NUL in password", NULL, "Basic ", "jdoe:sec\0ret", 12, EAS_BASIC_NUL,
      NULL, NULL },
    { "NUL and no colon", NULL, "Basic ", "jdoe\0secret", 11, EAS_BASIC_NUL,
      NULL, NULL },
    { "control byte in user", NULL, "Basic ", "jd\noe:secret", 0,
      EAS_BASIC_USER_INVALID, NULL, NULL },
    { "DEL in user", NULL, "Basic ", "jd\x7foe:secret", 0,
      EAS_BASIC_USER_INVALID, NULL, NULL },
    { "user of 257 bytes",
      NULL, "Basic ",
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      ":p", 0, EAS_BASIC_TOO_LONG, NULL, NULL },
    { "password of 257 bytes",
      NULL, "Basic ",
      "u:"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp",
      0, EAS_BASIC_TOO_LONG, NULL, NULL },
    { "token over the limit",
      NULL, "Basic ",
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
      ":pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppp",
      0, EAS_BASIC_TOO_LONG, NULL, NULL },
};


static const eas_test_user_t  eas_user_tests[] = {
    { "jdoe", EAS_OK, EAS_USER_FORM_BARE, "", "jdoe", "jdoe" },
    { "JDoe", EAS_OK, EAS_USER_FORM_BARE, "", "JDoe", "jdoe" },
    { "CONTOSO\\JDoe", EAS_OK, EAS_USER_FORM_DOWNLEVEL, "CONTOSO", "JDoe",
      "jdoe" },
    { "JDoe@Contoso.COM", EAS_OK, EAS_USER_FORM_UPN, "Contoso.COM", "JDoe",
      "jdoe" },
    { "a@b@example.com", EAS_OK, EAS_USER_FORM_UPN, "example.com", "a@b",
      "a@b" },
    { "j\xc3\x96rg", EAS_OK, EAS_USER_FORM_BARE, "", "j\xc3\x96rg",
      "j\xc3\x96rg" },
    { "jane.o'neil-2", EAS_OK, EAS_USER_FORM_BARE, "", "jane.o'neil-2",
      "jane.o'neil-2" },
    { "", EAS_ERROR, 0, "", "", "" },
    { "\\jdoe", EAS_ERROR, 0, "", "", "" },
    { "CONTOSO\\", EAS_ERROR, 0, "", "", "" },
    { "A\\B\\jdoe", EAS_ERROR, 0, "", "", "" },
    { "CONTOSO\\jdoe@contoso.com", EAS_ERROR, 0, "", "", "" },
    { "@contoso.com", EAS_ERROR, 0, "", "", "" },
    { "jdoe@", EAS_ERROR, 0, "", "", "" },
    { "jd\toe", EAS_ERROR, 0, "", "", "" },
};


int
main(void)
{
    eas_test_headers();
    eas_test_users();
    eas_test_reasons();

    return eas_test_report("test_eas_basic");
}


static void
eas_test_headers(void)
{
    int                      rc;
    char                     header[EAS_TEST_HEADER_MAX];
    size_t                   i, len, clen, n;
    unsigned char           *value, *buf;
    eas_basic_t              out;
    const eas_test_basic_t  *t;

    for (i = 0; i < sizeof(eas_basic_tests) / sizeof(eas_basic_tests[0]);
         i++)
    {
        t = &eas_basic_tests[i];

        if (t->raw) {
            len = strlen(t->raw);
            memcpy(header, t->raw, len);

        } else {
            clen = t->creds_len ? t->creds_len : strlen(t->creds);
            len = strlen(t->prefix);
            memcpy(header, t->prefix, len);
            len += eas_test_b64((const unsigned char *) t->creds, clen,
                                header + len);
        }

        value = malloc(len ? len : 1);
        buf = malloc(EAS_BASIC_BUFFER_SIZE);

        if (value == NULL || buf == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }

        memcpy(value, header, len);
        memset(&out, 0xA5, sizeof(eas_basic_t));

        rc = eas_basic_parse(value, len, buf, EAS_BASIC_BUFFER_SIZE, &out);

        if (t->reason == EAS_BASIC_OK) {
            eas_test_check(rc == EAS_OK && out.reason == EAS_BASIC_OK,
                           t->name, "accepted");

            n = strlen(t->user);
            eas_test_check(out.user.len == n
                           && memcmp(out.user.data, t->user, n) == 0,
                           t->name, "user");

            n = strlen(t->password);
            eas_test_check(out.password.len == n
                           && (n == 0
                               || memcmp(out.password.data, t->password, n)
                                  == 0),
                           t->name, "password");

        } else {
            eas_test_check(rc == EAS_ERROR, t->name, "refused");
            eas_test_check(out.reason == t->reason, t->name, "reason");
            eas_test_check(out.user.len == 0 && out.password.len == 0,
                           t->name, "no slices on refusal");
        }

        free(value);
        free(buf);
    }
}


static void
eas_test_users(void)
{
    int                     rc;
    size_t                  i, n;
    unsigned char           id[EAS_BASIC_USER_MAX];
    eas_user_t              u;
    const eas_test_user_t  *t;

    for (i = 0; i < sizeof(eas_user_tests) / sizeof(eas_user_tests[0]); i++) {
        t = &eas_user_tests[i];

        rc = eas_user_split((const unsigned char *) t->user,
                            strlen(t->user), &u);

        eas_test_check(rc == t->rc, t->user, "split rc");

        if (rc == EAS_OK) {
            eas_test_check(u.form == t->form, t->user, "form");
            eas_test_check(u.domain.len == strlen(t->domain)
                           && memcmp(u.domain.data ? u.domain.data
                                     : (const unsigned char *) "",
                                     t->domain, u.domain.len) == 0,
                           t->user, "domain");
            eas_test_check(u.name.len == strlen(t->name)
                           && memcmp(u.name.data, t->name, u.name.len) == 0,
                           t->user, "name");
        }

        n = eas_user_normalize((const unsigned char *) t->user,
                               strlen(t->user), id, sizeof(id));

        eas_test_check(n == strlen(t->identity)
                       && memcmp(id, t->identity, n) == 0,
                       t->user, "identity");

        /* an identity that does not fit is refused, not cut */

        if (n > 1) {
            eas_test_check(eas_user_normalize((const unsigned char *) t->user,
                                              strlen(t->user), id, n - 1)
                           == 0, t->user, "identity into a small buffer");
        }
    }
}


static void
eas_test_reasons(void)
{
    unsigned     r;
    const char  *name, *text;

    for (r = 0; r < EAS_BASIC_LAST; r++) {
        name = eas_basic_reason_name((eas_basic_reason_e) r);
        text = eas_basic_reason_text((eas_basic_reason_e) r);

        eas_test_check(name != NULL && strncmp(name, "auth_", 5) == 0
                       && text != NULL && text[0] != '\0',
                       "reasons", "name and text");
    }

    eas_test_check(eas_basic_reason_name(EAS_BASIC_LAST) == NULL,
                   "reasons", "past the end");
}


static size_t
eas_test_b64(const unsigned char *src, size_t len, char *dst)
{
    size_t           i, n;
    uint32_t         v;
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    n = 0;

    for (i = 0; i < len; i += 3) {
        v = (uint32_t) src[i] << 16;

        if (i + 1 < len) {
            v |= (uint32_t) src[i + 1] << 8;
        }

        if (i + 2 < len) {
            v |= src[i + 2];
        }

        dst[n++] = alphabet[(v >> 18) & 63];
        dst[n++] = alphabet[(v >> 12) & 63];
        dst[n++] = (i + 1 < len) ? alphabet[(v >> 6) & 63] : '=';
        dst[n++] = (i + 2 < len) ? alphabet[v & 63] : '=';
    }

    return n;
}


