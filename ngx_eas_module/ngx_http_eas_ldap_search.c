
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * What one verification reads from the directory (docs/authentication.md),
 * in a pool thread: the user's entry found and bound as, its group
 * membership (direct or nested), its identity and device list
 * attributes.  Touches only its task, the connection it is given and
 * the read-only configuration (ngx_http_eas_ldap.c has the rest).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_ldap.h"
#include "eas_ldap.h"


static ngx_uint_t ngx_http_eas_ldap_find(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, eas_user_t *user, char **dn);
static ngx_uint_t ngx_http_eas_ldap_read(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, char *dn);
static ngx_uint_t ngx_http_eas_ldap_member(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, char *dn);
static ngx_uint_t ngx_http_eas_ldap_group_has(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, const char *rule, char **dns, ngx_uint_t n);
static u_char *ngx_http_eas_ldap_or_filter(ngx_str_t *attr, const char *rule,
    char **dns, ngx_uint_t n);
static int ngx_http_eas_ldap_search(LDAP *ld, ngx_http_eas_ldap_task_t *t,
    char *base, int scope, char *filter, int limit, LDAPMessage **res);
static void ngx_http_eas_ldap_lists_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t);
static void ngx_http_eas_ldap_identity_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t);
static void ngx_http_eas_ldap_values(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t, ngx_str_t *attr, u_char kind);


ngx_uint_t
ngx_http_eas_ldap_check_user(LDAP *ld, ngx_http_eas_ldap_task_t *t)
{
    int                   rc;
    char                 *dn;
    size_t                n;
    ngx_str_t            *d;
    ngx_uint_t            kind;
    eas_user_t            user;
    eas_str_t             domain;
    ngx_http_eas_ldap_t  *ldap;
    u_char                buf[EAS_LDAP_STRING_MAX];

    ldap = t->ldap;

    /* never an anonymous bind that "succeeds" */

    if (t->password_len == 0) {
        return NGX_HTTP_EAS_LDAP_INVALID;
    }

    if (eas_user_split(t->user, t->user_len, &user) != EAS_OK) {
        return NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    /*
     * %d: the directory's name of the domain sent (checked before the
     * task was posted), never the client's spelling of it
     */

    if (ldap->aliases) {
        d = ngx_http_eas_ldap_domain(ldap, (u_char *) user.domain.data,
                                     user.domain.len);
        if (d == NULL) {
            return NGX_HTTP_EAS_LDAP_UNKNOWN;
        }

        user.domain.data = d->data;
        user.domain.len = d->len;
    }

    domain.data = ldap->domain.data;
    domain.len = ldap->domain.len;

    if (ldap->bind.len == 0) {

        /* search then bind: the service account finds the entry */

        kind = ngx_http_eas_ldap_find(ld, t, &user, &dn);

        if (kind != NGX_HTTP_EAS_LDAP_OK) {
            return kind;
        }

        if (ldap->group.len) {
            kind = ngx_http_eas_ldap_member(ld, t, dn);

            if (kind != NGX_HTTP_EAS_LDAP_OK) {
                ldap_memfree(dn);
                return kind;
            }
        }

        rc = ngx_http_eas_ldap_bind(ld, dn, t->password, t->password_len);

        ldap_memfree(dn);

        if (rc == LDAP_INVALID_CREDENTIALS) {
            return NGX_HTTP_EAS_LDAP_INVALID;
        }

        if (rc != LDAP_SUCCESS) {
            return ngx_http_eas_ldap_error(ld, t, rc, "bind");
        }

        goto identity;
    }

    /* a DN template: the user binds, then reads its own entry */

    if (eas_ldap_expand(EAS_LDAP_DN, ldap->bind.data, ldap->bind.len, &user,
                        &domain, buf, sizeof(buf), &n)
        != EAS_OK)
    {
        return NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    rc = ngx_http_eas_ldap_bind(ld, (char *) buf, t->password,
                                t->password_len);

    if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INVALID_DN_SYNTAX) {
        return NGX_HTTP_EAS_LDAP_INVALID;
    }

    if (rc != LDAP_SUCCESS) {
        return ngx_http_eas_ldap_error(ld, t, rc, "bind");
    }

    if (ldap->filter.len) {
        kind = ngx_http_eas_ldap_find(ld, t, &user, &dn);

        if (kind != NGX_HTTP_EAS_LDAP_OK) {
            return kind;
        }

    } else {
        dn = (char *) buf;

        if (ldap->devices || ldap->identity.len) {
            kind = ngx_http_eas_ldap_read(ld, t, dn);

            if (kind != NGX_HTTP_EAS_LDAP_OK) {
                return kind;
            }
        }
    }

    kind = NGX_HTTP_EAS_LDAP_OK;

    if (ldap->group.len) {
        kind = ngx_http_eas_ldap_member(ld, t, dn);
    }

    if (dn != (char *) buf) {
        ldap_memfree(dn);
    }

    if (kind != NGX_HTTP_EAS_LDAP_OK) {
        return kind;
    }

identity:

    /* identity=: the directory names the user, or nobody passes */

    if (ldap->identity.len && !t->identity) {
        return NGX_HTTP_EAS_LDAP_NO_IDENTITY;
    }

    return NGX_HTTP_EAS_LDAP_OK;
}


/* the filter finds exactly one entry, read with the device lists */

static ngx_uint_t
ngx_http_eas_ldap_find(LDAP *ld, ngx_http_eas_ldap_task_t *t,
    eas_user_t *user, char **dn)
{
    int                   rc, count;
    size_t                n;
    eas_str_t             domain;
    LDAPMessage          *res, *e;
    ngx_http_eas_ldap_t  *ldap;
    u_char                filter[EAS_LDAP_STRING_MAX];

    ldap = t->ldap;

    domain.data = ldap->domain.data;
    domain.len = ldap->domain.len;

    if (eas_ldap_expand(EAS_LDAP_FILTER, ldap->filter.data, ldap->filter.len,
                        user, &domain, filter, sizeof(filter), &n)
        != EAS_OK)
    {
        return NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    if (ldap->bind.len == 0) {
        rc = ngx_http_eas_ldap_bind(ld, (char *) ldap->bind_dn.data,
                                    ldap->bind_password.data,
                                    ldap->bind_password.len);
        if (rc != LDAP_SUCCESS) {
            return ngx_http_eas_ldap_error(ld, t, rc,
                                           "bind of the service account");
        }
    }

    rc = ngx_http_eas_ldap_search(ld, t, (char *) ldap->base.data,
                                  ldap->scope, (char *) filter, 2, &res);

    if (rc == LDAP_SIZELIMIT_EXCEEDED) {
        ldap_msgfree(res);
        return NGX_HTTP_EAS_LDAP_AMBIGUOUS;
    }

    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, rc, "search");
    }

    count = ldap_count_entries(ld, res);

    if (count != 1) {
        ldap_msgfree(res);
        return count ? NGX_HTTP_EAS_LDAP_AMBIGUOUS
                     : NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    e = ldap_first_entry(ld, res);

    *dn = ldap_get_dn(ld, e);

    if (*dn == NULL) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, LDAP_NO_MEMORY, "entry");
    }

    ngx_http_eas_ldap_lists_read(ld, e, t);

    ldap_msgfree(res);

    return NGX_HTTP_EAS_LDAP_OK;
}


/* the device lists of the entry the user bound as */

static ngx_uint_t
ngx_http_eas_ldap_read(LDAP *ld, ngx_http_eas_ldap_task_t *t, char *dn)
{
    int           rc;
    LDAPMessage  *res, *e;

    rc = ngx_http_eas_ldap_search(ld, t, dn, LDAP_SCOPE_BASE,
                                  "(objectClass=*)", 1, &res);

    if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_INVALID_DN_SYNTAX) {
        /* a UPN or down-level bind name is not an entry: no lists */
        ldap_msgfree(res);
        return NGX_HTTP_EAS_LDAP_OK;
    }

    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, rc, "reading the entry");
    }

    e = ldap_first_entry(ld, res);

    if (e) {
        ngx_http_eas_ldap_lists_read(ld, e, t);
    }

    ldap_msgfree(res);

    return NGX_HTTP_EAS_LDAP_OK;
}


/*
 * The required group: its entry lists the user's DN in its member
 * attribute (a direct member).  With group_nested=, a member of a
 * member group counts too: first AD's LDAP_MATCHING_RULE_IN_CHAIN
 * (one search; other directories find nothing with it, slapd answers
 * success with no entry), then, with "on", a search that any directory
 * answers: the groups that list the user, then the groups that list
 * those, level by level up to group_depth=, each group once (a cycle
 * ends), asking at each level whether the required group lists one of
 * them.  Anything over the bounds is "not a member": fail closed.
 */

static ngx_uint_t
ngx_http_eas_ldap_member(LDAP *ld, ngx_http_eas_ldap_task_t *t, char *dn)
{
    int                   rc;
    char                **members, *d;
    char                 *attrs[2];
    u_char               *filter;
    ngx_uint_t            kind, depth, i, n, first, nvisited, over;
    LDAPMessage          *res, *e;
    struct timeval        tv;
    ngx_http_eas_ldap_t  *ldap;
    char                 *visited[NGX_HTTP_EAS_LDAP_GROUPS_MAX];

    ldap = t->ldap;

    kind = ngx_http_eas_ldap_group_has(ld, t, "", &dn, 1);

    if (kind != NGX_HTTP_EAS_LDAP_NOT_MEMBER
        || ldap->nested == NGX_HTTP_EAS_LDAP_NESTED_OFF)
    {
        return kind;
    }

    kind = ngx_http_eas_ldap_group_has(ld, t, ":1.2.840.113556.1.4.1941:",
                                       &dn, 1);

    if (kind != NGX_HTTP_EAS_LDAP_NOT_MEMBER
        || ldap->nested == NGX_HTTP_EAS_LDAP_NESTED_IN_CHAIN)
    {
        return kind;
    }

    attrs[0] = LDAP_NO_ATTRS;
    attrs[1] = NULL;

    /* visited[first .. nvisited) is the level found last */

    nvisited = 0;
    first = 0;
    over = 0;

    for (depth = 2; depth <= ldap->group_depth; depth++) {

        if (depth == 2) {
            members = &dn;
            n = 1;

        } else {
            members = &visited[first];
            n = nvisited - first;
        }

        filter = ngx_http_eas_ldap_or_filter(&ldap->member, "", members, n);
        if (filter == NULL) {
            break;
        }

        ngx_http_eas_ldap_timeval(ldap->timeout, &tv);

        res = NULL;

        rc = ldap_search_ext_s(ld, (char *) ldap->group_base.data,
                               LDAP_SCOPE_SUBTREE, (char *) filter, attrs, 0,
                               NULL, NULL, &tv, NGX_HTTP_EAS_LDAP_GROUPS_MAX,
                               &res);
        free(filter);

        if (rc == LDAP_SIZELIMIT_EXCEEDED) {
            ldap_msgfree(res);
            break;
        }

        if (rc != LDAP_SUCCESS) {
            ldap_msgfree(res);
            kind = ngx_http_eas_ldap_error(ld, t, rc, "nested group search");
            break;
        }

        first = nvisited;

        for (e = ldap_first_entry(ld, res); e; e = ldap_next_entry(ld, e)) {

            d = ldap_get_dn(ld, e);
            if (d == NULL) {
                continue;
            }

            /* each group once: a cycle ends here */

            for (i = 0; i < nvisited; i++) {
                if (ngx_strcasecmp((u_char *) visited[i], (u_char *) d)
                    == 0)
                {
                    break;
                }
            }

            if (i < nvisited) {
                ldap_memfree(d);
                continue;
            }

            if (nvisited == NGX_HTTP_EAS_LDAP_GROUPS_MAX) {
                ldap_memfree(d);
                over = 1;
                break;
            }

            visited[nvisited++] = d;
        }

        ldap_msgfree(res);

        if (over || nvisited == first) {
            break;
        }

        kind = ngx_http_eas_ldap_group_has(ld, t, "", &visited[first],
                                           nvisited - first);

        if (kind != NGX_HTTP_EAS_LDAP_NOT_MEMBER) {
            break;
        }
    }

    for (i = 0; i < nvisited; i++) {
        ldap_memfree(visited[i]);
    }

    return kind;
}


/* whether the group lists one of the DNs, with the matching rule */

static ngx_uint_t
ngx_http_eas_ldap_group_has(LDAP *ld, ngx_http_eas_ldap_task_t *t,
    const char *rule, char **dns, ngx_uint_t n)
{
    int                   rc, count;
    char                 *attrs[2];
    u_char               *filter;
    LDAPMessage          *res;
    struct timeval        tv;
    ngx_http_eas_ldap_t  *ldap;

    ldap = t->ldap;

    filter = ngx_http_eas_ldap_or_filter(&ldap->member, rule, dns, n);
    if (filter == NULL) {
        return NGX_HTTP_EAS_LDAP_NOT_MEMBER;
    }

    attrs[0] = LDAP_NO_ATTRS;
    attrs[1] = NULL;

    ngx_http_eas_ldap_timeval(ldap->timeout, &tv);

    res = NULL;

    rc = ldap_search_ext_s(ld, (char *) ldap->group.data, LDAP_SCOPE_BASE,
                           (char *) filter, attrs, 0, NULL, NULL, &tv, 1,
                           &res);
    free(filter);

    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, rc, "group search");
    }

    count = ldap_count_entries(ld, res);

    ldap_msgfree(res);

    return count == 1 ? NGX_HTTP_EAS_LDAP_OK : NGX_HTTP_EAS_LDAP_NOT_MEMBER;
}


/*
 * "(attr<rule>=dn)", or "(|(attr<rule>=dn1)(attr<rule>=dn2)...)", each
 * DN escaped per RFC 4515 by libldap; from libc, freed by the caller.
 */

static u_char *
ngx_http_eas_ldap_or_filter(ngx_str_t *attr, const char *rule, char **dns,
    ngx_uint_t n)
{
    size_t          size, rlen;
    u_char         *filter, *p, *last;
    ngx_uint_t      i;
    struct berval   in, value;

    rlen = ngx_strlen(rule);
    size = sizeof("(|)");

    for (i = 0; i < n; i++) {
        size += sizeof("(=)") + attr->len + rlen + 3 * ngx_strlen(dns[i]);
    }

    filter = malloc(size);
    if (filter == NULL) {
        return NULL;
    }

    p = filter;
    last = filter + size - 1;

    if (n > 1) {
        *p++ = '(';
        *p++ = '|';
    }

    for (i = 0; i < n; i++) {
        in.bv_val = dns[i];
        in.bv_len = ngx_strlen(dns[i]);

        if (ldap_bv2escaped_filter_value(&in, &value) != 0) {
            free(filter);
            return NULL;
        }

        p = ngx_snprintf(p, last - p, "(%V%s=%*s)", attr, rule,
                         value.bv_len, value.bv_val);

        ber_memfree(value.bv_val);
    }

    if (n > 1) {
        *p++ = ')';
    }

    *p = '\0';

    return filter;
}


/* the device list attributes are asked for with every user entry */

static int
ngx_http_eas_ldap_search(LDAP *ld, ngx_http_eas_ldap_task_t *t, char *base,
    int scope, char *filter, int limit, LDAPMessage **res)
{
    char                 *attrs[4];
    ngx_uint_t            n;
    struct timeval        tv;
    ngx_http_eas_ldap_t  *ldap;

    ldap = t->ldap;

    n = 0;

    if (ldap->devices) {
        attrs[n++] = (char *) ldap->allowed.data;
        attrs[n++] = (char *) ldap->blocked.data;
    }

    if (ldap->identity.len) {
        attrs[n++] = (char *) ldap->identity.data;
    }

    if (n == 0) {
        attrs[n++] = LDAP_NO_ATTRS;
    }

    attrs[n] = NULL;

    ngx_http_eas_ldap_timeval(ldap->timeout, &tv);

    *res = NULL;

    return ldap_search_ext_s(ld, base, scope, filter, attrs, 0, NULL, NULL,
                             &tv, limit, res);
}


static void
ngx_http_eas_ldap_lists_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t)
{
    ngx_http_eas_ldap_t  *ldap;

    ldap = t->ldap;

    if (ldap->identity.len) {
        ngx_http_eas_ldap_identity_read(ld, e, t);
    }

    if (!ldap->devices) {
        return;
    }

    ngx_http_eas_ldap_values(ld, e, t, &ldap->blocked,
                             NGX_HTTP_EAS_LDAP_BLOCKED);
    ngx_http_eas_ldap_values(ld, e, t, &ldap->allowed,
                             NGX_HTTP_EAS_LDAP_ALLOWED);
}


/*
 * identity=: the attribute's first value, folded as a user name is
 * (ngx_http_eas_fold()), as the first record of the encoded lists; a
 * value that is no user name (empty, too long, a control byte, not
 * UTF-8) is none.
 */

static void
ngx_http_eas_ldap_identity_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t)
{
    u_char          *p;
    size_t           i, len, n;
    struct berval  **vals;
    u_char           id[EAS_BASIC_USER_MAX];

    if (t->identity) {
        return;
    }

    vals = ldap_get_values_len(ld, e, (char *) t->ldap->identity.data);

    if (vals == NULL) {
        return;
    }

    len = vals[0] ? vals[0]->bv_len : 0;

    if (len == 0 || len > EAS_USER_MAX
        || ngx_http_eas_fold((u_char *) vals[0]->bv_val, len, id, sizeof(id),
                             &n)
           != NGX_OK)
    {
        ldap_value_free_len(vals);
        return;
    }

    ldap_value_free_len(vals);

    if (n > EAS_USER_MAX || n > 255
        || t->extra_len + 2 + n > NGX_HTTP_EAS_LDAP_EXTRA_MAX)
    {
        return;
    }

    for (i = 0; i < n; i++) {
        if (id[i] < 0x20 || id[i] == 0x7f) {
            return;
        }
    }

    p = t->extra + t->extra_len;

    p[0] = NGX_HTTP_EAS_LDAP_IDENTITY;
    p[1] = (u_char) n;
    ngx_memcpy(p + 2, id, n);

    t->extra_len += 2 + n;
    t->identity = 1;
}


static void
ngx_http_eas_ldap_values(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t, ngx_str_t *attr, u_char kind)
{
    u_char          *p;
    ngx_uint_t       i;
    struct berval  **vals;

    vals = ldap_get_values_len(ld, e, (char *) attr->data);

    if (vals == NULL) {
        return;
    }

    for (i = 0; vals[i]; i++) {

        if (vals[i]->bv_len == 0 || vals[i]->bv_len > EAS_DEVICE_ID_MAX) {
            continue;
        }

        if (t->extra_len + 2 + vals[i]->bv_len > NGX_HTTP_EAS_LDAP_EXTRA_MAX)
        {
            t->truncated = 1;
            break;
        }

        p = t->extra + t->extra_len;
        *p++ = kind;
        *p++ = (u_char) vals[i]->bv_len;
        ngx_memcpy(p, vals[i]->bv_val, vals[i]->bv_len);

        t->extra_len += 2 + vals[i]->bv_len;
    }

    ldap_value_free_len(vals);
}
