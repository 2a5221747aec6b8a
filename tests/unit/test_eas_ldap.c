
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Unit tests for the LDAP strings of the protocol core
 * (docs/authentication.md, "Directory"): RFC 4515 filter values,
 * RFC 4514 DN values and the %u / %d templates.  Inputs are copied
 * into malloc() blocks of exactly their size so AddressSanitizer sees
 * a read past the end; outputs go into blocks of exactly the size
 * given, to catch a write past it.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_ldap.h"
#include "../common/eas_test.h"


typedef struct {
    unsigned               kind;
    const char            *in;
    size_t                 len;         /* 0: strlen(in) */
    const char            *out;         /* NULL: refused */
} eas_test_escape_t;


typedef struct {
    unsigned               kind;
    const char            *tmpl;
    const char            *user;        /* as sent */
    size_t                 size;        /* 0: EAS_LDAP_STRING_MAX */
    const char            *out;         /* NULL: refused */
} eas_test_expand_t;


typedef struct {
    const char            *tmpl;
    int                    rc;
    int                    domain;      /* holds %d */
} eas_test_template_t;


static eas_test_escape_t  eas_test_escapes[] = {
    { EAS_LDAP_FILTER, "jdoe", 0, "jdoe" },
    { EAS_LDAP_FILTER, "*", 0, "\\2a" },
    { EAS_LDAP_FILTER, "j*)(uid=*", 0, "j\\2a\\29\\28uid=\\2a" },
    { EAS_LDAP_FILTER, "a\\b", 0, "a\\5cb" },
    { EAS_LDAP_FILTER, "a\0b", 3, "a\\00b" },
    { EAS_LDAP_FILTER, "x)(|(objectClass=*)", 0,
      "x\\29\\28|\\28objectClass=\\2a\\29" },
    { EAS_LDAP_FILTER, "a,b+c", 0, "a,b+c" },
    { EAS_LDAP_FILTER, "\x7f\x01", 2, "\\7f\\01" },
    { EAS_LDAP_FILTER, "J\xc3\xa9r\xc3\xb4me", 0, "J\xc3\xa9r\xc3\xb4me" },
    { EAS_LDAP_FILTER, "", 0, "" },
    { EAS_LDAP_DN, "jdoe", 0, "jdoe" },
    { EAS_LDAP_DN, "a,ou=admins", 0, "a\\2cou\\3dadmins" },
    { EAS_LDAP_DN, "a+cn=b", 0, "a\\2bcn\\3db" },
    { EAS_LDAP_DN, "\"<>;\\", 0, "\\22\\3c\\3e\\3b\\5c" },
    { EAS_LDAP_DN, "#x", 0, "\\23x" },
    { EAS_LDAP_DN, "x#", 0, "x#" },
    { EAS_LDAP_DN, " x ", 0, "\\20x\\20" },
    { EAS_LDAP_DN, "a b", 0, "a b" },
    { EAS_LDAP_DN, " ", 0, "\\20" },
    { EAS_LDAP_DN, "a\0", 2, "a\\00" },
    { EAS_LDAP_DN, "*()", 0, "*()" },
};


static eas_test_template_t  eas_test_templates[] = {
    { "uid=%u,ou=people,dc=example,dc=org", EAS_OK, 0 },
    { "%u@example.org", EAS_OK, 0 },
    { "%d\\%u", EAS_OK, 1 },
    { "(sAMAccountName=%u)", EAS_OK, 0 },
    { "100%%=%u", EAS_OK, 0 },
    { "%%d=%u", EAS_OK, 0 },
    { "%%%d=%u", EAS_OK, 1 },
    { "(mail=%u@%d)", EAS_OK, 1 },
    { "uid=x,dc=org", EAS_ERROR, 0 },
    { "%d", EAS_ERROR, 1 },
    { "%u%", EAS_ERROR, 0 },
    { "%x%u", EAS_ERROR, 0 },
    { "", EAS_ERROR, 0 },
};


static eas_test_expand_t  eas_test_expands[] = {
    { EAS_LDAP_DN, "uid=%u,ou=people", "jdoe", 0, "uid=jdoe,ou=people" },
    { EAS_LDAP_DN, "uid=%u,ou=people", "CONTOSO\\jdoe", 0,
      "uid=jdoe,ou=people" },
    { EAS_LDAP_DN, "%u@%d", "jdoe@contoso.com", 0, "jdoe@contoso.com" },
    { EAS_LDAP_DN, "%u@%d", "jdoe", 0, "jdoe@example.org" },
    { EAS_LDAP_DN, "%u@%d", "CONTOSO\\jdoe", 0, "jdoe@CONTOSO" },
    { EAS_LDAP_DN, "uid=%u,ou=people", "a,ou=admins", 0,
      "uid=a\\2cou\\3dadmins,ou=people" },
    { EAS_LDAP_FILTER, "(sAMAccountName=%u)", "*", 0,
      "(sAMAccountName=\\2a)" },
    { EAS_LDAP_FILTER, "(&(uid=%u)(o=%d))", "x)(uid=*@a)(b", 0,
      "(&(uid=x\\29\\28uid=\\2a)(o=a\\29\\28b))" },
    { EAS_LDAP_FILTER, "(uid=%u)%%", "jdoe", 0, "(uid=jdoe)%" },
    { EAS_LDAP_FILTER, "(uid=%u)", "jdoe", 10 + 1, "(uid=jdoe)" },
    { EAS_LDAP_FILTER, "(uid=%u)", "jdoe", 10, NULL },
    { EAS_LDAP_FILTER, "(uid=%u)", "***", 11, NULL },
    { EAS_LDAP_FILTER, "(uid=%u)", "***", 16, "(uid=\\2a\\2a\\2a)" },
};


int
main(void)
{
    int                   rc;
    char                  name[64];
    size_t                i, len, n, size;
    eas_str_t             domain;
    eas_user_t            user;
    unsigned char        *in, *out;
    eas_test_expand_t    *x;
    eas_test_escape_t    *e;
    eas_test_template_t  *t;

    for (i = 0; i < sizeof(eas_test_escapes) / sizeof(eas_test_escapes[0]);
         i++)
    {
        e = &eas_test_escapes[i];
        len = e->len ? e->len : strlen(e->in);
        snprintf(name, sizeof(name), "escape %zu", i);

        in = malloc(len + 1);
        out = malloc(EAS_LDAP_STRING_MAX);
        memcpy(in, e->in, len);

        rc = eas_ldap_escape(e->kind, in, len, out, EAS_LDAP_STRING_MAX, &n);

        eas_test_check(rc == EAS_OK && n == strlen(e->out)
                       && memcmp(out, e->out, n) == 0 && out[n] == '\0',
                       name, e->out);

        /* one byte short of the escaped form and its NUL is refused */

        size = strlen(e->out);
        rc = eas_ldap_escape(e->kind, in, len, out, size, &n);
        eas_test_check(rc == EAS_ERROR, name, "short buffer accepted");

        free(in);
        free(out);
    }

    for (i = 0;
         i < sizeof(eas_test_templates) / sizeof(eas_test_templates[0]);
         i++)
    {
        t = &eas_test_templates[i];
        snprintf(name, sizeof(name), "template %zu", i);
        len = strlen(t->tmpl);

        in = malloc(len + 1);
        memcpy(in, t->tmpl, len);

        eas_test_check(eas_ldap_template_check(in, len) == t->rc, name,
                       t->tmpl);
        eas_test_check(eas_ldap_template_has(in, len, 'd') == t->domain,
                       name, t->tmpl);
        free(in);
    }

    domain.data = (const unsigned char *) "example.org";
    domain.len = 11;

    for (i = 0; i < sizeof(eas_test_expands) / sizeof(eas_test_expands[0]);
         i++)
    {
        x = &eas_test_expands[i];
        snprintf(name, sizeof(name), "expand %zu", i);
        size = x->size ? x->size : EAS_LDAP_STRING_MAX;

        in = malloc(strlen(x->user) + 1);
        memcpy(in, x->user, strlen(x->user));

        if (eas_user_split(in, strlen(x->user), &user) != EAS_OK) {
            eas_test_check(0, name, "user not split");
            free(in);
            continue;
        }

        out = malloc(size);

        rc = eas_ldap_expand(x->kind, (const unsigned char *) x->tmpl,
                             strlen(x->tmpl), &user, &domain, out, size, &n);

        if (x->out == NULL) {
            eas_test_check(rc == EAS_ERROR, name, "accepted");

        } else {
            eas_test_check(rc == EAS_OK && n == strlen(x->out)
                           && memcmp(out, x->out, n) == 0 && out[n] == '\0',
                           name, x->out);
        }

        free(in);
        free(out);
    }

    return eas_test_report("test_eas_ldap");
}
