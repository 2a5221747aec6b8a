
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin.h"
#include "ngx_http_eas_ldap.h"


/*
 * The user lockout "DELETE lockouts?user=NAME" lifts
 * (ngx_http_eas_admin_lockouts.c, docs/operations.md): the key as
 * "GET lockouts" lists it, or the name as a user types it, made the
 * identity requests are keyed by.  With a directory of several domains
 * that is "name@domain" (ngx_http_eas_user_identity()), which only the
 * directory's domain= parameters make of "CORP\\jdoe": the directories
 * of the configuration are asked, as the admin location has none of
 * its own.  A bare name stands for the name in each of their
 * domains: nothing is lifted and the admin is told which keys to
 * choose from (as Exchange answers a name that matches several
 * mailboxes), whatever this gateway holds, as a user rule is
 * (ngx_http_eas_admin_user_key()): which of them are locked is known
 * for the whole fleet only to Redis, and a gateway just restarted
 * holds none, so a lift of the one lock found here could be another
 * person's than the one meant.
 */


#define NGX_HTTP_EAS_ADMIN_CANDIDATES_MAX  64


typedef struct {
    ngx_str_t                key[NGX_HTTP_EAS_ADMIN_CANDIDATES_MAX];
    ngx_uint_t               n;
    ngx_str_t               *primary;     /* as a request would be keyed */
    ngx_http_eas_lockout_t  *locks;
    ngx_uint_t               nlocks;
    ngx_uint_t               forests;     /* directories of several domains */
    ngx_uint_t               resolved;    /* of them, serve the name's */
    ngx_uint_t               bare;        /* no domain typed */
    ngx_uint_t               keyed;       /* identity= names the user */
    ngx_uint_t               identities;  /* directories with identity= */
    ngx_uint_t               refused;     /* of them, never so named */
} ngx_http_eas_admin_candidates_t;


static ngx_int_t ngx_http_eas_admin_user_candidates(ngx_http_request_t *r,
    ngx_str_t *value, ngx_http_eas_admin_candidates_t *c);
static ngx_int_t ngx_http_eas_admin_candidate(ngx_http_request_t *r,
    ngx_http_eas_admin_candidates_t *c, u_char *data, size_t len);
static ngx_int_t ngx_http_eas_admin_candidate_domains(ngx_http_request_t *r,
    ngx_http_eas_admin_candidates_t *c, ngx_http_eas_ldap_t *ldap,
    ngx_str_t *name);
static ngx_int_t ngx_http_eas_admin_locked(
    ngx_http_eas_admin_candidates_t *c, u_char *data, size_t len);
static ngx_int_t ngx_http_eas_admin_candidates_json(ngx_http_request_t *r,
    ngx_http_eas_admin_candidates_t *c, ngx_uint_t locked, ngx_str_t *json);
static void ngx_http_eas_admin_candidates_named(
    ngx_http_eas_admin_candidates_t *c, ngx_str_t *key);


/*
 * NGX_OK: *key is the lockout to lift (locked here, or the key a request
 * of that name has, for Redis and the other gateways to lift);
 * NGX_BUSY: a bare name with a directory of several domains, or several
 * locks match: *json lists the keys to choose from, *here those of them
 * locked on this gateway, none is lifted; NGX_DECLINED: the value is no
 * user name (lifted as it is: a key listed with "raw"); NGX_ERROR: no
 * memory.
 */

ngx_int_t
ngx_http_eas_admin_lockout_user(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    ngx_str_t *value, ngx_str_t *key, ngx_str_t *json, ngx_str_t *here)
{
    size_t                            n;
    ngx_int_t                         rc;
    ngx_str_t                        *found;
    ngx_uint_t                        i, nfound;
    ngx_http_eas_admin_candidates_t  *c;
    u_char                            id[EAS_USER_MAX];

    c = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_admin_candidates_t));
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->locks = ngx_palloc(r->pool, NGX_HTTP_EAS_ADMIN_LIST_MAX
                                   * sizeof(ngx_http_eas_lockout_t));
    if (c->locks == NULL) {
        return NGX_ERROR;
    }

    c->nlocks = ngx_http_eas_cache_lockouts(zone, c->locks,
                                            NGX_HTTP_EAS_ADMIN_LIST_MAX);

    /* the key as listed, as it is or in another case or width */

    if (ngx_http_eas_admin_locked(c, value->data, value->len)) {
        *key = *value;
        return NGX_OK;
    }

    if (ngx_http_eas_fold(value->data, value->len, id, sizeof(id), &n)
        == NGX_OK
        && ngx_http_eas_admin_locked(c, id, n))
    {
        key->data = ngx_pnalloc(r->pool, n);
        if (key->data == NULL) {
            return NGX_ERROR;
        }

        key->len = ngx_cpymem(key->data, id, n) - key->data;

        return NGX_OK;
    }

    rc = ngx_http_eas_admin_user_candidates(r, value, c);
    if (rc != NGX_OK) {
        return rc;
    }

    if (c->forests && c->bare) {
        ngx_http_eas_admin_candidates_named(c, key);

        return ngx_http_eas_admin_candidates_json(r, c, 0, json) == NGX_OK
               && ngx_http_eas_admin_candidates_json(r, c, 1, here) == NGX_OK
               ? NGX_BUSY : NGX_ERROR;
    }

    found = NULL;
    nfound = 0;

    for (i = 0; i < c->n; i++) {
        if (ngx_http_eas_admin_locked(c, c->key[i].data, c->key[i].len)) {
            found = &c->key[i];
            nfound++;
        }
    }

    if (nfound > 1) {
        if (ngx_http_eas_admin_candidates_json(r, c, 1, json) != NGX_OK) {
            return NGX_ERROR;
        }

        *here = *json;

        return NGX_BUSY;
    }

    *key = found ? *found : *c->primary;

    return NGX_OK;
}


/*
 * A user= of a rule ("POST rules", ngx_http_eas_admin_devices.c) or of
 * a device ("GET/DELETE devices"): the key requests of that name are
 * keyed by, and the admin API stores and lists.  With a directory of
 * several domains, "CONTOSO\\jdoe", "jdoe@contoso.local" (an alias) or
 * the name in full width is "jdoe@contoso.com"; a bare "jdoe" there is
 * the name in each domain, so nothing is decided and *json lists the
 * keys to choose from (NGX_BUSY, *key the name alone: what may remove
 * a rule or record kept so before), as Exchange answers a name that
 * matches several mailboxes; a domain none of those directories serves
 * is NGX_ABORT (it would decide nobody).  With identity= a request is
 * keyed by the attribute's value (ngx_http_eas_identity_value()): the
 * name typed is that value, folded, and no domain is offered for it;
 * one the attribute never holds, and no other directory keys so, is
 * NGX_DONE.  Without such directories: the name alone.  NGX_DECLINED:
 * no user name.
 */

ngx_int_t
ngx_http_eas_admin_user_key(ngx_http_request_t *r, ngx_str_t *value,
    ngx_str_t *key, ngx_str_t *json)
{
    ngx_int_t                         rc;
    ngx_http_eas_admin_candidates_t  *c;

    c = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_admin_candidates_t));
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->keyed = 1;

    rc = ngx_http_eas_admin_user_candidates(r, value, c);
    if (rc != NGX_OK) {
        return rc;
    }

    if (c->refused && c->refused == c->identities && c->resolved == 0) {
        return NGX_DONE;
    }

    if (c->forests == 0) {
        *key = *c->primary;
        return NGX_OK;
    }

    if (c->bare) {
        ngx_http_eas_admin_candidates_named(c, key);

        return ngx_http_eas_admin_candidates_json(r, c, 0, json) == NGX_OK
               ? NGX_BUSY : NGX_ERROR;
    }

    if (c->resolved == 0) {
        return NGX_ABORT;
    }

    *key = *c->primary;

    return NGX_OK;
}


/* the answer to a user= ngx_http_eas_admin_user_key() made no key of */

ngx_int_t
ngx_http_eas_admin_user_refused(ngx_http_request_t *r, ngx_int_t rc,
    ngx_str_t *json)
{
    static ngx_str_t  text = ngx_string("the name is a user in several "
                                        "domains: give it with its domain, "
                                        "as one of the candidates");

    if (rc == NGX_DONE) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid user: the directory names "
                                        "users by its identity= attribute, "
                                        "which never holds this: give the "
                                        "identity as $eas_auth_user and "
                                        "GET devices show it");
    }

    if (rc == NGX_ABORT) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid user: its domain is none "
                                        "of the domain= of a directory of "
                                        "several domains");
    }

    if (rc == NGX_BUSY) {
        return ngx_http_eas_admin_conflict(r, &text, json);
    }

    return rc == NGX_ERROR ? NGX_HTTP_INTERNAL_SERVER_ERROR
                           : ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                      "invalid user");
}


/* 409: {"error":"...","candidates":["jdoe@a","jdoe@b"]} */

ngx_int_t
ngx_http_eas_admin_conflict(ngx_http_request_t *r, ngx_str_t *error,
    ngx_str_t *keys)
{
    u_char  *buf, *p;

    buf = ngx_pnalloc(r->pool, sizeof("{\"error\":\"\",\"candidates\":}\n")
                               + error->len + keys->len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"error\":\"%V\",\"candidates\":%V}\n", error,
                    keys);

    return ngx_http_eas_admin_send(r, NGX_HTTP_CONFLICT, buf, p - buf);
}


/*
 * The identities a name typed stands for, the one requests are keyed
 * by first: of every directory of several domains (a bare name: the
 * name in each of their domains), and of a password file or a
 * directory of one domain (the name alone).  NGX_DECLINED: no user
 * name.
 */

static ngx_int_t
ngx_http_eas_admin_user_candidates(ngx_http_request_t *r, ngx_str_t *value,
    ngx_http_eas_admin_candidates_t *c)
{
    size_t                n;
    ngx_int_t             rc;
    ngx_str_t             name;
    ngx_uint_t            i;
    eas_user_t            u;
    ngx_list_part_t      *part;
    ngx_shm_zone_t       *shm;
    ngx_http_eas_ldap_t  *ldap;
    u_char                id[EAS_USER_MAX];

    if (ngx_http_eas_user_identity(NULL, value->data, value->len, id,
                                   sizeof(id), &n)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    name.data = ngx_pnalloc(r->pool, n);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    name.len = ngx_cpymem(name.data, id, n) - name.data;

    (void) eas_user_split(value->data, value->len, &u);
    c->bare = (u.form == EAS_USER_FORM_BARE);

    part = &((ngx_cycle_t *) ngx_cycle)->shared_memory.part;
    shm = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            shm = part->elts;
            i = 0;
        }

        ldap = ngx_http_eas_ldap_of_zone(&shm[i]);

        /* a rule's or device's user with identity=: the value, whole */

        if (ldap != NULL && ldap->identity.len && c->keyed) {
            c->identities++;

            rc = ngx_http_eas_identity_value(ldap, value->data, value->len,
                                             id, sizeof(id), &n);

            if (rc == NGX_DECLINED) {
                c->refused++;

            } else if (rc == NGX_OK
                       && ngx_http_eas_admin_candidate(r, c, id, n) != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (ldap == NULL || ldap->aliases == NULL || ldap->ndomains < 2) {
            continue;
        }

        c->forests++;

        if (ngx_http_eas_user_identity(ldap, value->data, value->len, id,
                                       sizeof(id), &n)
            == NGX_OK)
        {
            c->resolved++;

            if (ngx_http_eas_admin_candidate(r, c, id, n) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        if (u.form == EAS_USER_FORM_BARE
            && ngx_http_eas_admin_candidate_domains(r, c, ldap, &name)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* a password file, a directory of one domain: the name alone */

    if (ngx_http_eas_admin_candidate(r, c, name.data, name.len) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "DELETE credentials?user=" (ngx_http_eas_admin_lockouts.c): the
 * name as $eas_auth_user shows it, in any case or width, and every
 * identity it stands for (a dropped credential only costs one more
 * verification; the answer lists them).  NGX_DECLINED: no user name.
 */

ngx_int_t
ngx_http_eas_admin_user_identities(ngx_http_request_t *r, ngx_str_t *value,
    ngx_str_t **keys, ngx_uint_t *n)
{
    size_t                            len;
    ngx_int_t                         rc;
    ngx_http_eas_admin_candidates_t  *c;
    u_char                            id[EAS_USER_MAX];

    c = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_admin_candidates_t));
    if (c == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_eas_admin_user_candidates(r, value, c);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ngx_http_eas_fold(value->data, value->len, id, sizeof(id), &len)
        == NGX_OK
        && ngx_http_eas_admin_candidate(r, c, id, len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    *keys = c->key;
    *n = c->n;

    return c->n ? NGX_OK : NGX_DECLINED;
}


/* one key more, once; the first is the one a request is keyed by */

static ngx_int_t
ngx_http_eas_admin_candidate(ngx_http_request_t *r,
    ngx_http_eas_admin_candidates_t *c, u_char *data, size_t len)
{
    ngx_uint_t  i;

    for (i = 0; i < c->n; i++) {
        if (c->key[i].len == len && ngx_memcmp(c->key[i].data, data, len) == 0)
        {
            return NGX_OK;
        }
    }

    if (c->n == NGX_HTTP_EAS_ADMIN_CANDIDATES_MAX) {
        return NGX_OK;
    }

    c->key[c->n].data = ngx_pnalloc(r->pool, len);
    if (c->key[c->n].data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(c->key[c->n].data, data, len);
    c->key[c->n].len = len;

    if (c->primary == NULL) {
        c->primary = &c->key[c->n];
    }

    c->n++;

    return NGX_OK;
}


/* a bare name: "name@domain" in every domain of a directory */

static ngx_int_t
ngx_http_eas_admin_candidate_domains(ngx_http_request_t *r,
    ngx_http_eas_admin_candidates_t *c, ngx_http_eas_ldap_t *ldap,
    ngx_str_t *name)
{
    u_char                     *p;
    ngx_uint_t                  i;
    ngx_http_eas_ldap_alias_t  *a;
    u_char                      id[EAS_USER_MAX];

    a = ldap->aliases->elts;

    for (i = 0; i < ldap->aliases->nelts; i++) {
        if (name->len + 1 + a[i].domain->len > sizeof(id)) {
            continue;
        }

        p = ngx_cpymem(id, name->data, name->len);
        *p++ = '@';
        ngx_strlow(p, a[i].domain->data, a[i].domain->len);

        if (ngx_http_eas_admin_candidate(r, c, id,
                                         p + a[i].domain->len - id)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_admin_locked(ngx_http_eas_admin_candidates_t *c, u_char *data,
    size_t len)
{
    ngx_uint_t  i;

    for (i = 0; i < c->nlocks; i++) {
        if (c->locks[i].kind == NGX_HTTP_EAS_CACHE_USER
            && c->locks[i].len == len
            && ngx_memcmp(c->locks[i].key, data, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * A bare name in a forest: the last candidate is the name alone, no key
 * of a forest: *key, for a rule or a record an older version keyed so;
 * the others are the keys to choose from.
 */

static void
ngx_http_eas_admin_candidates_named(ngx_http_eas_admin_candidates_t *c,
    ngx_str_t *key)
{
    *key = c->key[c->n - 1];

    if (ngx_strlchr(key->data, key->data + key->len, '@') == NULL) {
        c->n--;
    }
}


/*
 * The candidates, or those of them locked here: ["jdoe@a","jdoe@b"]
 */

static ngx_int_t
ngx_http_eas_admin_candidates_json(ngx_http_request_t *r,
    ngx_http_eas_admin_candidates_t *c, ngx_uint_t locked, ngx_str_t *json)
{
    u_char      *p;
    size_t       size;
    ngx_uint_t   i, first;

    size = sizeof("[]");

    for (i = 0; i < c->n; i++) {
        size += 9 * c->key[i].len + sizeof("\"\",");
    }

    json->data = ngx_pnalloc(r->pool, size);
    if (json->data == NULL) {
        return NGX_ERROR;
    }

    p = json->data;
    *p++ = '[';
    first = 1;

    for (i = 0; i < c->n; i++) {
        if (locked
            && !ngx_http_eas_admin_locked(c, c->key[i].data, c->key[i].len))
        {
            continue;
        }

        if (!first) {
            *p++ = ',';
        }

        first = 0;
        *p++ = '"';
        p = ngx_http_eas_json_escape(p, c->key[i].data, c->key[i].len, NULL);
        *p++ = '"';
    }

    *p++ = ']';
    json->len = p - json->data;

    return NGX_OK;
}
