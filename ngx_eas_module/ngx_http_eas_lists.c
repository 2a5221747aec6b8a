
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_ldap.h"


/*
 * Per-user device lists read from a file, one of the possible sources
 * behind ngx_http_eas_lists_t: each line names a user, "allow" or
 * "block", and DeviceIds,
 *
 *     jdoe block ApplLOST0001
 *     CONTOSO\jdoe allow ApplC39ZH2VJJCM3 androidc42
 *
 * A name is the identity it stands for (ngx_http_eas_user_identity(),
 * as for the user a device sends), so the tables are made at the merge
 * of the first location that uses the file, when its credential
 * source is known; a name that can never match fails "nginx -t".  Both
 * lists are hash tables keyed by "identity\0DeviceId", lower case.
 */


typedef struct {
    ngx_uint_t                  line;
} ngx_http_eas_lists_entry_t;


/* a line as read, until the tables are made */
typedef struct {
    ngx_str_t                   user;       /* as written */
    ngx_str_t                  *ids;        /* lower case */
    ngx_uint_t                  nids;
    ngx_uint_t                  allow;      /* else block */
    ngx_http_eas_lists_entry_t *entry;
} ngx_http_eas_lists_line_t;


typedef struct {
    ngx_str_t                  *source;     /* "eas_device_user_lists:/p" */
    ngx_str_t                   path;
    ngx_array_t                 lines;      /* ngx_http_eas_lists_line_t */
    ngx_http_eas_ldap_t        *ldap;       /* the identities made with */
    unsigned                    built:1;
    ngx_hash_t                  block;
    ngx_hash_t                  allow;
} ngx_http_eas_lists_file_t;


static ngx_int_t ngx_http_eas_lists_file_line(ngx_conf_t *cf, void *data,
    ngx_str_t *file, ngx_uint_t line, ngx_array_t *tokens);
static ngx_int_t ngx_http_eas_lists_build(ngx_conf_t *cf,
    ngx_http_eas_lists_file_t *lf, ngx_http_eas_ldap_t *ldap);
static ngx_int_t ngx_http_eas_lists_file_lookup(ngx_http_request_t *r,
    ngx_http_eas_lists_t *lists, ngx_http_eas_device_values_t *values,
    ngx_uint_t *access, ngx_str_t *reason);
static ngx_http_eas_lists_entry_t *ngx_http_eas_lists_find(ngx_hash_t *hash,
    ngx_str_t *key);


/* eas_device_user_lists file; */

char *
ngx_http_eas_device_user_lists(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eas_devices_conf_t *dcf = conf;

    ngx_str_t                  *value, path;
    ngx_http_eas_lists_t       *lists;
    ngx_http_eas_lists_file_t  *lf;

    if (dcf->device_lists != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "directory") == 0) {
        dcf->device_lists = ngx_http_eas_ldap_lists(cf);
        return dcf->device_lists ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    lists = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_lists_t));
    if (lists == NULL) {
        return NGX_CONF_ERROR;
    }

    lf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_lists_file_t));
    if (lf == NULL) {
        return NGX_CONF_ERROR;
    }

    lf->path = path;

    lf->source = ngx_http_eas_reason_source(cf, &cmd->name, &path);
    if (lf->source == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&lf->lines, cf->pool, 16,
                       sizeof(ngx_http_eas_lists_line_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eas_file_read(cf, &path, &cmd->name,
                               ngx_http_eas_lists_file_line, lf)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    lists->lookup = ngx_http_eas_lists_file_lookup;
    lists->data = lf;

    dcf->device_lists = lists;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eas_lists_file_line(ngx_conf_t *cf, void *data, ngx_str_t *file,
    ngx_uint_t line, ngx_array_t *tokens)
{
    ngx_http_eas_lists_file_t *lf = data;

    size_t                       n;
    ngx_str_t                   *token;
    ngx_uint_t                   i;
    ngx_http_eas_lists_line_t   *l;
    u_char                       id[EAS_BASIC_USER_MAX];

    token = tokens->elts;

    if (tokens->nelts < 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid entry in \"%V\" at line %ui: use "
                           "\"user allow|block DeviceId ...\"", file, line);
        return NGX_ERROR;
    }

    l = ngx_array_push(&lf->lines);
    if (l == NULL) {
        return NGX_ERROR;
    }

    if (token[1].len == 5 && ngx_strncmp(token[1].data, "block", 5) == 0) {
        l->allow = 0;

    } else if (token[1].len == 5
               && ngx_strncmp(token[1].data, "allow", 5) == 0)
    {
        l->allow = 1;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid list \"%V\" in \"%V\" at line %ui: use "
                           "\"allow\" or \"block\"", &token[1], file, line);
        return NGX_ERROR;
    }

    if (token[0].len > EAS_USER_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "user name too long in \"%V\" at line %ui",
                           file, line);
        return NGX_ERROR;
    }

    /* a name no device can send: "a\\b\\c", "jdoe@", a control byte */

    if (ngx_http_eas_user_identity(NULL, token[0].data, token[0].len, id,
                                   sizeof(id), &n)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "user \"%V\" in \"%V\" at line %ui can never "
                           "match: not a user name a device can send "
                           "(\"user\", \"DOMAIN\\user\" or "
                           "\"user@domain\")", &token[0], file, line);
        return NGX_ERROR;
    }

    l->user.data = ngx_pstrdup(cf->pool, &token[0]);
    if (l->user.data == NULL) {
        return NGX_ERROR;
    }

    l->user.len = token[0].len;

    l->entry = ngx_palloc(cf->pool, sizeof(ngx_http_eas_lists_entry_t));
    if (l->entry == NULL) {
        return NGX_ERROR;
    }

    l->entry->line = line;

    l->nids = tokens->nelts - 2;
    l->ids = ngx_palloc(cf->pool, l->nids * sizeof(ngx_str_t));
    if (l->ids == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < l->nids; i++) {

        if (token[i + 2].len > EAS_DEVICE_ID_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "DeviceId \"%V\" too long in \"%V\" at "
                               "line %ui", &token[i + 2], file, line);
            return NGX_ERROR;
        }

        l->ids[i].len = token[i + 2].len;
        l->ids[i].data = ngx_pnalloc(cf->pool, l->ids[i].len);
        if (l->ids[i].data == NULL) {
            return NGX_ERROR;
        }

        ngx_strlow(l->ids[i].data, token[i + 2].data, l->ids[i].len);
    }

    return NGX_OK;
}


/*
 * From the merge of a level with "eas on": the identities of that
 * level's credential source give the names their meaning (a directory
 * that serves several domains qualifies them).  A file is made into
 * tables once; a file used where identities are made two ways fails.
 */

ngx_int_t
ngx_http_eas_lists_check(ngx_conf_t *cf, ngx_http_eas_lists_t *lists,
    ngx_http_eas_preauth_conf_t *pcf)
{
    ngx_http_eas_ldap_t        *ldap;
    ngx_http_eas_lists_file_t  *lf;

    if (lists == NULL || lists->lookup != ngx_http_eas_lists_file_lookup) {
        return NGX_OK;
    }

    lf = lists->data;

    ldap = (pcf->realm.len && pcf->ldap
            && (pcf->ldap->aliases || pcf->ldap->identity.len))
           ? pcf->ldap : NULL;

    if (!lf->built) {
        return ngx_http_eas_lists_build(cf, lf, ldap);
    }

    if (lf->ldap != ldap) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_device_user_lists\" \"%V\" is used "
                           "where user names stand for different "
                           "identities (a directory with \"domain\" or "
                           "\"identity\" parameters, and another "
                           "source): use one file for each", &lf->path);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_lists_build(ngx_conf_t *cf, ngx_http_eas_lists_file_t *lf,
    ngx_http_eas_ldap_t *ldap)
{
    u_char                     *p;
    size_t                      n, max;
    ngx_int_t                   rc;
    ngx_str_t                   key;
    ngx_uint_t                  i, j;
    ngx_hash_keys_arrays_t      keys[2], *k;
    ngx_http_eas_lists_line_t  *l;
    u_char                      id[EAS_BASIC_USER_MAX];

    for (i = 0; i < 2; i++) {
        ngx_memzero(&keys[i], sizeof(ngx_hash_keys_arrays_t));

        keys[i].pool = cf->pool;
        keys[i].temp_pool = cf->temp_pool;

        if (ngx_hash_keys_array_init(&keys[i], NGX_HASH_LARGE) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    max = 0;
    l = lf->lines.elts;

    for (i = 0; i < lf->lines.nelts; i++) {

        if (ldap && ldap->identity.len) {

            /* identity=: the attribute's value, written whole, folded */

            rc = ngx_http_eas_identity_value(ldap, l[i].user.data,
                                             l[i].user.len, id, sizeof(id),
                                             &n);

        } else {
            rc = ngx_http_eas_user_identity(ldap, l[i].user.data,
                                            l[i].user.len, id, sizeof(id),
                                            &n);
        }

        if (rc != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "user \"%V\" in \"%V\" at line %ui can "
                               "never match: %s \"%V\"", &l[i].user,
                               &lf->path, l[i].entry->line,
                               rc == NGX_DECLINED && ldap->identity.len
                               ? "the \"identity\" attribute never holds "
                                 "it (write the identity as $eas_auth_user "
                                 "shows it) of directory"
                               : rc == NGX_DECLINED
                               ? "its domain is none of the \"domain\" "
                                 "parameters of directory"
                               : "not UTF-8, or too long once folded, for "
                                 "directory",
                               ngx_http_eas_ldap_name(ldap));
            return NGX_ERROR;
        }

        k = &keys[l[i].allow];

        for (j = 0; j < l[i].nids; j++) {
            key.len = n + 1 + l[i].ids[j].len;
            key.data = ngx_pnalloc(cf->pool, key.len);
            if (key.data == NULL) {
                return NGX_ERROR;
            }

            p = ngx_cpymem(key.data, id, n);
            *p++ = '\0';
            ngx_memcpy(p, l[i].ids[j].data, l[i].ids[j].len);

            /* NGX_BUSY: listed twice, the first line is kept */

            if (ngx_hash_add_key(k, &key, l[i].entry, NGX_HASH_READONLY_KEY)
                == NGX_ERROR)
            {
                return NGX_ERROR;
            }

            max = ngx_max(max, key.len);
        }
    }

    if (ngx_http_eas_hash_build(cf, &lf->block, &keys[0], max,
                                "eas_device_user_lists_hash")
        != NGX_OK
        || ngx_http_eas_hash_build(cf, &lf->allow, &keys[1], max,
                                   "eas_device_user_lists_hash")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    lf->ldap = ldap;
    lf->built = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_lists_file_lookup(ngx_http_request_t *r,
    ngx_http_eas_lists_t *lists, ngx_http_eas_device_values_t *values,
    ngx_uint_t *access, ngx_str_t *reason)
{
    ngx_http_eas_lists_file_t *lf = lists->data;

    u_char                      *p;
    ngx_str_t                    key, *user, *id;
    ngx_http_eas_lists_entry_t  *entry;

    *access = NGX_HTTP_EAS_ACCESS_NONE;

    user = &values->lower[NGX_HTTP_EAS_FIELD_USER];
    id = &values->lower[NGX_HTTP_EAS_FIELD_DEVICE_ID];

    key.len = user->len + 1 + id->len;

    /* the key is needed only here: the step's scratch space if it fits */

    if (key.len <= NGX_HTTP_EAS_VALUES_SCRATCH - values->used) {
        key.data = values->scratch + values->used;

    } else {
        key.data = ngx_pnalloc(r->pool, key.len);
        if (key.data == NULL) {
            return NGX_ERROR;
        }
    }

    p = ngx_cpymem(key.data, user->data, user->len);
    *p++ = '\0';
    ngx_memcpy(p, id->data, id->len);

    entry = ngx_http_eas_lists_find(&lf->block, &key);

    if (entry) {
        *access = NGX_HTTP_EAS_ACCESS_BLOCKED;

    } else {
        entry = ngx_http_eas_lists_find(&lf->allow, &key);

        if (entry == NULL) {
            return NGX_OK;
        }

        *access = NGX_HTTP_EAS_ACCESS_ALLOWED;
    }

    return ngx_http_eas_reason(r, lf->source, entry->line, reason);
}


static ngx_http_eas_lists_entry_t *
ngx_http_eas_lists_find(ngx_hash_t *hash, ngx_str_t *key)
{
    if (hash->buckets == NULL) {
        return NULL;
    }

    return ngx_hash_find(hash, ngx_hash_key(key->data, key->len), key->data,
                         key->len);
}
