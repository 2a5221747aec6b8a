
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The identity a user name stands for (docs/authentication.md,
 * "Identity"), the one normalisation of pre-authentication, password
 * files and per-user list files: the name folded as directories compare
 * names, with the domain a directory's domain= declares for it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_ldap.h"


/* the domain %d stands for: of the name sent, or the first; NULL: none */

ngx_str_t *
ngx_http_eas_ldap_domain(ngx_http_eas_ldap_t *ldap, u_char *name, size_t len)
{
    ngx_uint_t                  i;
    ngx_http_eas_ldap_alias_t  *a;

    if (ldap->aliases == NULL) {
        return NULL;
    }

    if (len == 0) {
        return &ldap->domain;
    }

    a = ldap->aliases->elts;

    for (i = 0; i < ldap->aliases->nelts; i++) {
        if (a[i].name.len == len
            && ngx_strncasecmp(a[i].name.data, name, len) == 0)
        {
            return a[i].domain;
        }
    }

    return NULL;
}


/* spaces squeezed in place: none at either end, one for a run */

static size_t
ngx_http_eas_identity_spaces(u_char *name, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (name[i] == ' ' && (n == 0 || name[n - 1] == ' ')) {
            continue;
        }

        name[n++] = name[i];
    }

    if (n && name[n - 1] == ' ') {
        n--;
    }

    return n;
}


/*
 * The identity a user name stands for (docs/authentication.md,
 * "Identity"): the name part folded as directories compare names
 * (NFKC_Casefold, ngx_http_eas_fold()), as password files have it;
 * with a directory that serves several domains, "name@domain" with the
 * domain as its domain= declares it, in lower case, so that the same
 * name in two domains is two identities.  NGX_DECLINED: a domain the
 * directory does not serve; NGX_ERROR: a malformed or too long name,
 * one that is not UTF-8, or one that folds into another form (a full-
 * width "@" or "\\" in it) or into nothing.  The one normalisation of
 * pre-authentication, password files and per-user list files.
 */

ngx_int_t
ngx_http_eas_user_identity(ngx_http_eas_ldap_t *ldap, u_char *user,
    size_t len, u_char *dst, size_t size, size_t *n)
{
    u_char      *p;
    size_t       i;
    ngx_str_t   *domain;
    eas_user_t   u, folded;
    u_char       name[EAS_BASIC_USER_MAX];

    *n = eas_user_normalize(user, len, dst, size);

    if (*n == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < *n; i++) {
        if (dst[i] >= 0x80) {
            break;
        }
    }

    if (i < *n) {

        /* not ASCII: folded by ICU, and still a bare name after that */

        if (*n > sizeof(name)) {
            return NGX_ERROR;
        }

        ngx_memcpy(name, dst, *n);

        if (ngx_http_eas_fold(name, *n, dst, size, n) != NGX_OK
            || eas_user_split(dst, *n, &folded) != EAS_OK
            || folded.form != EAS_USER_FORM_BARE)
        {
            *n = 0;
            return NGX_ERROR;
        }
    }

    /*
     * spaces as directories compare them (RFC 4518, "insignificant
     * space"): none at either end, a run inside counts as one, so that
     * " jdoe" or "jdoe  " is not an identity (and a lockout) of its own
     */

    *n = ngx_http_eas_identity_spaces(dst, *n);

    if (*n == 0) {
        return NGX_ERROR;
    }

    if (ldap == NULL || ldap->aliases == NULL) {
        return NGX_OK;
    }

    (void) eas_user_split(user, len, &u);

    domain = ngx_http_eas_ldap_domain(ldap, (u_char *) u.domain.data,
                                      u.domain.len);
    if (domain == NULL) {
        return NGX_DECLINED;
    }

    if (ldap->ndomains == 1) {
        return NGX_OK;
    }

    if (*n + 1 + domain->len > size) {
        return NGX_ERROR;
    }

    p = dst + *n;
    *p++ = '@';
    ngx_strlow(p, domain->data, domain->len);

    *n += 1 + domain->len;

    return NGX_OK;
}


/*
 * Whether a user key is one requests can be keyed by, as it is: the
 * identity of itself (ngx_http_eas_user_identity() without a
 * directory), or of its name part followed by "@" and a domain in
 * lower case (a directory of several domains).  The one check of keys
 * that come from elsewhere: Redis locks and rules, the rules file.
 */

ngx_int_t
ngx_http_eas_user_key(u_char *data, size_t size)
{
    u_char  *at;
    size_t   i, n, len;
    u_char   id[EAS_USER_MAX];

    if (size == 0 || size > EAS_USER_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < size; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f) {
            return NGX_DECLINED;
        }
    }

    len = size;
    at = NULL;

    for ( ;; ) {
        if (ngx_http_eas_user_identity(NULL, data, len, id, sizeof(id), &n)
            == NGX_OK
            && n == len && ngx_memcmp(id, data, n) == 0)
        {
            break;
        }

        if (at != NULL) {
            return NGX_DECLINED;
        }

        at = ngx_strlchr(data, data + size, '@');

        if (at == NULL || at == data || at == data + size - 1) {
            return NGX_DECLINED;
        }

        len = at - data;
    }

    if (at == NULL) {
        return NGX_OK;
    }

    for (i = len + 1; i < size; i++) {
        if (data[i] <= 0x20 || data[i] >= 0x7f
            || data[i] == '@' || data[i] == '\\'
            || (data[i] >= 'A' && data[i] <= 'Z'))
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * With identity= a request is keyed by the attribute's value of the
 * entry that bound, folded whole (ngx_http_eas_ldap_identity_read()),
 * with no domain added: so is a user= an admin or a rule gives, as
 * $eas_auth_user and "GET devices" show it.  NGX_DECLINED: a value the
 * attribute never holds, an "@" or "\\" in an account name ("uid",
 * "userid", "sAMAccountName": "jdoe@contoso.com" is no uid, and no
 * request there is keyed so); NGX_ERROR: no user name once folded.
 */

ngx_int_t
ngx_http_eas_identity_value(ngx_http_eas_ldap_t *ldap, u_char *value,
    size_t len, u_char *dst, size_t size, size_t *n)
{
    size_t      i;
    ngx_str_t  *a;

    if (len == 0 || len > EAS_USER_MAX
        || ngx_http_eas_fold(value, len, dst, size, n) != NGX_OK
        || *n == 0 || *n > EAS_USER_MAX)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < *n; i++) {
        if (dst[i] < 0x20 || dst[i] == 0x7f) {
            return NGX_ERROR;
        }
    }

    a = &ldap->identity;

    if ((a->len == sizeof("uid") - 1
         && ngx_strncasecmp(a->data, (u_char *) "uid", a->len) == 0)
        || (a->len == sizeof("userid") - 1
            && ngx_strncasecmp(a->data, (u_char *) "userid", a->len) == 0)
        || (a->len == sizeof("sAMAccountName") - 1
            && ngx_strncasecmp(a->data, (u_char *) "sAMAccountName", a->len)
               == 0))
    {
        for (i = 0; i < *n; i++) {
            if (dst[i] == '@' || dst[i] == '\\') {
                return NGX_DECLINED;
            }
        }
    }

    return NGX_OK;
}
