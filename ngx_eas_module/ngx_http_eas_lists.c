
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


/*
 * Per-user device lists read from a file, one of the possible sources
 * behind ngx_http_eas_lists_t: each line names a user, "allow" or
 * "block", and DeviceIds,
 *
 *     jdoe block ApplLOST0001
 *     jdoe allow ApplC39ZH2VJJCM3 androidc42
 *
 * Both lists are hash tables keyed by lower-cased "user\0DeviceId".
 */


typedef struct {
    ngx_uint_t                  line;
} ngx_http_eas_lists_entry_t;


typedef struct {
    ngx_str_t                  *source;     /* "eas_device_user_lists:/p" */
    ngx_hash_t                  block;
    ngx_hash_t                  allow;
} ngx_http_eas_lists_file_t;


/* while the file is read */
typedef struct {
    ngx_hash_keys_arrays_t      keys[2];    /* block, allow */
    size_t                      max;        /* longest key */
} ngx_http_eas_lists_read_t;


static ngx_int_t ngx_http_eas_lists_file_line(ngx_conf_t *cf, void *data,
    ngx_str_t *file, ngx_uint_t line, ngx_array_t *tokens);
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
    ngx_http_eas_loc_conf_t *elcf = conf;

    ngx_str_t                  *value, path;
    ngx_uint_t                  i;
    ngx_http_eas_lists_t       *lists;
    ngx_http_eas_lists_file_t  *lf;
    ngx_http_eas_lists_read_t   rd;

    if (elcf->device_lists != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "directory") == 0) {
        elcf->device_lists = ngx_http_eas_ldap_lists(cf);
        return elcf->device_lists ? NGX_CONF_OK : NGX_CONF_ERROR;
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

    lf->source = ngx_http_eas_reason_source(cf, &cmd->name, &path);
    if (lf->source == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&rd, sizeof(ngx_http_eas_lists_read_t));

    for (i = 0; i < 2; i++) {
        rd.keys[i].pool = cf->pool;
        rd.keys[i].temp_pool = cf->temp_pool;

        if (ngx_hash_keys_array_init(&rd.keys[i], NGX_HASH_LARGE)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_eas_file_read(cf, &path, &cmd->name,
                               ngx_http_eas_lists_file_line, &rd)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eas_hash_build(cf, &lf->block, &rd.keys[0], rd.max,
                                "eas_device_user_lists_hash")
        != NGX_OK
        || ngx_http_eas_hash_build(cf, &lf->allow, &rd.keys[1], rd.max,
                                   "eas_device_user_lists_hash")
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    lists->lookup = ngx_http_eas_lists_file_lookup;
    lists->data = lf;

    elcf->device_lists = lists;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eas_lists_file_line(ngx_conf_t *cf, void *data, ngx_str_t *file,
    ngx_uint_t line, ngx_array_t *tokens)
{
    ngx_http_eas_lists_read_t *rd = data;

    u_char                      *p;
    ngx_int_t                    rc;
    ngx_str_t                   *token, key;
    ngx_uint_t                   i;
    ngx_hash_keys_arrays_t      *keys;
    ngx_http_eas_lists_entry_t  *entry;

    token = tokens->elts;

    if (tokens->nelts < 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid entry in \"%V\" at line %ui: use "
                           "\"user allow|block DeviceId ...\"", file, line);
        return NGX_ERROR;
    }

    if (token[1].len == 5 && ngx_strncmp(token[1].data, "block", 5) == 0) {
        keys = &rd->keys[0];

    } else if (token[1].len == 5
               && ngx_strncmp(token[1].data, "allow", 5) == 0)
    {
        keys = &rd->keys[1];

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

    entry = ngx_palloc(cf->pool, sizeof(ngx_http_eas_lists_entry_t));
    if (entry == NULL) {
        return NGX_ERROR;
    }

    entry->line = line;

    for (i = 2; i < tokens->nelts; i++) {

        if (token[i].len > EAS_DEVICE_ID_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "DeviceId \"%V\" too long in \"%V\" at "
                               "line %ui", &token[i], file, line);
            return NGX_ERROR;
        }

        key.len = token[0].len + 1 + token[i].len;
        key.data = ngx_pnalloc(cf->pool, key.len);
        if (key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_strlow(key.data, token[0].data, token[0].len);
        p = key.data + token[0].len;
        *p++ = '\0';
        ngx_strlow(p, token[i].data, token[i].len);

        /* NGX_BUSY: listed twice, the first line is kept */

        rc = ngx_hash_add_key(keys, &key, entry, NGX_HASH_READONLY_KEY);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        rd->max = ngx_max(rd->max, key.len);
    }

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
