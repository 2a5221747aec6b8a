
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_ldap.h"


static int eas_ldap_special(unsigned kind, const unsigned char *src,
    size_t len, size_t i);


static const unsigned char  eas_ldap_hex[] = "0123456789abcdef";


/*
 * Every byte that could end or change the value is written as \XX:
 * RFC 4515 asks this of "*", "(", ")", "\" and NUL; RFC 4514 of the
 * DN specials, a leading "#" or space and a trailing space.  Control
 * bytes and DEL are escaped in both.  The output is NUL-terminated.
 */

int
eas_ldap_escape(unsigned kind, const unsigned char *src, size_t len,
    unsigned char *dst, size_t size, size_t *out)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {

        if (eas_ldap_special(kind, src, len, i)) {
            if (n + 3 >= size) {
                return EAS_ERROR;
            }

            dst[n++] = '\\';
            dst[n++] = eas_ldap_hex[src[i] >> 4];
            dst[n++] = eas_ldap_hex[src[i] & 0x0f];
            continue;
        }

        if (n + 1 >= size) {
            return EAS_ERROR;
        }

        dst[n++] = src[i];
    }

    if (n >= size) {
        return EAS_ERROR;
    }

    dst[n] = '\0';
    *out = n;

    return EAS_OK;
}


static int
eas_ldap_special(unsigned kind, const unsigned char *src, size_t len,
    size_t i)
{
    unsigned char  c;

    c = src[i];

    if (c < 0x20 || c == 0x7f || c == '\\') {
        return 1;
    }

    if (kind == EAS_LDAP_FILTER) {
        return c == '*' || c == '(' || c == ')';
    }

    switch (c) {

    case '"':
    case '+':
    case ',':
    case ';':
    case '<':
    case '>':
    case '=':
        return 1;

    case '#':
        return i == 0;

    case ' ':
        return i == 0 || i == len - 1;

    default:
        return 0;
    }
}


/* a template may hold %u, %d and %%, and must hold %u */

int
eas_ldap_template_check(const unsigned char *tmpl, size_t len)
{
    size_t  i;
    int     user;

    user = 0;

    for (i = 0; i < len; i++) {

        if (tmpl[i] == '\0') {
            return EAS_ERROR;
        }

        if (tmpl[i] != '%') {
            continue;
        }

        if (++i == len) {
            return EAS_ERROR;
        }

        switch (tmpl[i]) {

        case 'u':
            user = 1;
            break;

        case 'd':
        case '%':
            break;

        default:
            return EAS_ERROR;
        }
    }

    return user ? EAS_OK : EAS_ERROR;
}


/* whether a checked template holds %c */

int
eas_ldap_template_has(const unsigned char *tmpl, size_t len, unsigned char c)
{
    size_t  i;

    for (i = 0; i + 1 < len; i++) {
        if (tmpl[i] == '%') {
            if (tmpl[i + 1] == c) {
                return 1;
            }

            i++;
        }
    }

    return 0;
}


int
eas_ldap_expand(unsigned kind, const unsigned char *tmpl, size_t tlen,
    const eas_user_t *user, const eas_str_t *domain, unsigned char *dst,
    size_t size, size_t *out)
{
    size_t            i, n, m;
    const eas_str_t  *v;

    n = 0;

    for (i = 0; i < tlen; i++) {

        if (tmpl[i] != '%' || i + 1 == tlen || tmpl[i + 1] == '%') {
            if (n + 1 >= size) {
                return EAS_ERROR;
            }

            dst[n++] = tmpl[i];
            i += (tmpl[i] == '%');
            continue;
        }

        i++;

        if (tmpl[i] == 'u') {
            v = &user->name;

        } else if (tmpl[i] == 'd') {
            v = user->domain.len ? &user->domain : domain;

        } else {
            return EAS_ERROR;
        }

        if (eas_ldap_escape(kind, v->data, v->len, dst + n, size - n, &m)
            != EAS_OK)
        {
            return EAS_ERROR;
        }

        n += m;
    }

    if (n >= size) {
        return EAS_ERROR;
    }

    dst[n] = '\0';
    *out = n;

    return EAS_OK;
}
