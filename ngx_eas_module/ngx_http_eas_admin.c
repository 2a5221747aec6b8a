
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin.h"
#include "eas_json.h"


/*
 * "eas_admin [preauth_zone=name] [device_zone=name]": the admin API
 * (docs/operations.md).  JSON out; the request names what it acts on
 * in the path after the location's name and its arguments in the query
 * string or, for POST and DELETE, in a flat JSON object as the body
 * ({"access":"block","device_id":"ApplX"}), which is read into query
 * arguments after those of the URI:
 *
 *     GET    lockouts                      users and addresses locked now
 *     DELETE lockouts?user=|?address=      lift one
 *     DELETE lockouts?all=1                lift all
 *     DELETE credentials?all=1             drop every cached credential
 *     DELETE credentials?user=U            drop user U's cached credentials
 *     GET    devices[?user=&device_id=&device_type=&decision=&sort=
 *                    &page=&per_page=]
 *     DELETE devices?user=&device_id=      delete a record, free its place
 *                                          (user= may be empty: a record
 *                                          of a request without a user)
 *     GET    devices/stale?days=N          not seen for N days
 *     DELETE devices/stale?days=N          ... deleted
 *     GET    rules                         runtime decisions
 *     POST   rules?access=allow|block|lost&device_id= (or &user=)
 *     DELETE rules?device_id= (or ?user=)
 *     GET    console/...                   the console page, if enabled
 *
 * Query values are read as a form decoder reads them ("+" is a space,
 * %XX a byte), as the edge and a browser's URLSearchParams write them.
 * A parameter the resource does not take, one given twice, or an empty
 * value (but user= of a device's delete) is refused with 400: a typo
 * never widens a change, and "everything" is asked for with all=1.
 *
 * A POST or DELETE needs the header "X-EAS-Admin: 1", a Host that is one
 * of the server's names, and, if the browser says where it comes from,
 * an origin the server is known as (ngx_http_eas_console.c): a plain
 * form post, a page of another site or a rebound DNS name cannot change
 * anything.
 *
 * Every change works on shared zones, so every worker sees it at once,
 * and is logged as one notice line naming the action and the admin's
 * address and user: "user X" when the location's own access phase read
 * the name under "satisfy all" (auth_basic checked it), else "claimed
 * user X": a name nobody verified (ngx_http_eas_admin_who()).  The
 * location is the admin's to protect (auth_basic or a client
 * certificate, not only allow): this handler trusts whoever reaches it.
 */


#define NGX_HTTP_EAS_ADMIN_BODY_MAX  4096    /* a JSON body */
#define NGX_HTTP_EAS_ADMIN_PAIRS     16


static ngx_int_t ngx_http_eas_admin_handler(ngx_http_request_t *r);
static void ngx_http_eas_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_admin_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_admin_dispatch(ngx_http_request_t *r);


/* eas_admin [preauth_zone=name] [device_zone=name]; */

char *
ngx_http_eas_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_loc_conf_t *elcf = conf;

    ngx_str_t                  *value, name, *origin;
    ngx_uint_t                  i;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_eas_admin_conf_t  *acf;

    if (elcf->admin) {
        return "is duplicate";
    }

    acf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_admin_conf_t));
    if (acf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "preauth_zone=", 13) == 0) {
            name.data = value[i].data + 13;
            name.len = value[i].len - 13;

            acf->preauth = ngx_http_eas_cache_add(cf, &name);
            if (acf->preauth == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "device_zone=", 12) == 0) {
            name.data = value[i].data + 12;
            name.len = value[i].len - 12;

            acf->devices = ngx_shared_memory_add(cf, &name, 0,
                                                 &ngx_http_eas_module);
            if (acf->devices == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "origin=", 7) == 0) {
            name.data = value[i].data + 7;
            name.len = value[i].len - 7;

            if (acf->origins == NULL) {
                acf->origins = ngx_array_create(cf->pool, 2,
                                                sizeof(ngx_str_t));
                if (acf->origins == NULL) {
                    return NGX_CONF_ERROR;
                }
            }

            origin = ngx_array_push(acf->origins);
            if (origin == NULL) {
                return NGX_CONF_ERROR;
            }

            if (ngx_http_eas_console_origin_conf(cf->pool, &name, origin)
                != NGX_OK)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid origin \"%V\" in \"%V\": "
                                   "give http[s]://host[:port], no path",
                                   &name, &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    elcf->admin = acf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_eas_admin_handler;

    return NGX_CONF_OK;
}


/* the zones named must be defined somewhere: checked once all is read */

ngx_int_t
ngx_http_eas_admin_check(ngx_conf_t *cf, ngx_http_eas_loc_conf_t *conf)
{
    ngx_http_eas_admin_conf_t  *acf;

    acf = conf->admin;

    if (acf == NULL) {
        return NGX_OK;
    }

    if (acf->names == NULL) {
        acf->names = ngx_http_eas_console_names(cf);
        if (acf->names == NULL) {
            return NGX_ERROR;
        }
    }

    if (acf->preauth && acf->preauth->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_admin\" preauth_zone \"%V\" is unknown",
                           &acf->preauth->shm.name);
        return NGX_ERROR;
    }

    if (acf->devices && acf->devices->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_admin\" device_zone \"%V\" is unknown",
                           &acf->devices->shm.name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    const char                 *why;
    ngx_table_elt_t            *allow;
    ngx_http_eas_loc_conf_t    *elcf;
    ngx_http_eas_admin_conf_t  *acf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST
                       |NGX_HTTP_DELETE)))
    {
        /* answered as every other refusal: JSON, nosniff, no-store */

        allow = ngx_list_push(&r->headers_out.headers);
        if (allow == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        allow->hash = 1;
        ngx_str_set(&allow->key, "Allow");
        ngx_str_set(&allow->value, "GET, HEAD, POST, DELETE");

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "method %V not allowed",
                                        &r->method_name);
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    acf = elcf->admin;

    /*
     * a change needs "X-EAS-Admin: 1", a Host of this server and no
     * other origin (CSRF, DNS rebinding)
     */

    if (ngx_http_eas_console_csrf(r, acf->names, acf->origins, &why)
        != NGX_OK)
    {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_eas_admin_error(r, NGX_HTTP_FORBIDDEN,
                                        "refused %V %s: a change needs "
                                        "the header X-EAS-Admin: 1, from "
                                        "an origin this server is known as",
                                        &r->method_name, why);
    }

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))
        && (r->headers_in.content_length_n > 0 || r->headers_in.chunked))
    {
        if (r->headers_in.content_length_n > NGX_HTTP_EAS_ADMIN_BODY_MAX) {
            rc = ngx_http_discard_request_body(r);

            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_eas_admin_error(r,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "the JSON body is larger than "
                                         "%d bytes",
                                         NGX_HTTP_EAS_ADMIN_BODY_MAX);
        }

        rc = ngx_http_read_client_request_body(r, ngx_http_eas_admin_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_eas_admin_dispatch(r);
}


static void
ngx_http_eas_admin_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_eas_admin_json(r);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_eas_admin_dispatch(r);
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * The JSON body read into query arguments, after those of the URI (a
 * name given in both is refused as given twice).  NGX_DECLINED: go on;
 * anything else is the answer already made.
 */

static ngx_int_t
ngx_http_eas_admin_json(ngx_http_request_t *r)
{
    u_char                   *args, *p;
    size_t                    len, size, i, n, k;
    ssize_t                   got;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    eas_json_pair_t           pairs[NGX_HTTP_EAS_ADMIN_PAIRS];
    ngx_http_request_body_t  *rb;
    u_char                    body[NGX_HTTP_EAS_ADMIN_BODY_MAX];
    u_char                    buf[NGX_HTTP_EAS_ADMIN_BODY_MAX];

    rb = r->request_body;

    if (rb == NULL || rb->bufs == NULL) {
        return NGX_DECLINED;
    }

    /*
     * the whole body, however it came (segments, chunks, a buffer or a
     * temporary file), up to NGX_HTTP_EAS_ADMIN_BODY_MAX bytes
     */

    len = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            size = b->last - b->pos;

            if (size > sizeof(body) - len) {
                goto too_large;
            }

            ngx_memcpy(body + len, b->pos, size);
            len += size;

            continue;
        }

        if (b->in_file) {
            size = (size_t) (b->file_last - b->file_pos);

            if (size > sizeof(body) - len) {
                goto too_large;
            }

            got = ngx_read_file(b->file, body + len, size, b->file_pos);

            if (got != (ssize_t) size) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "eas admin: the body's temporary file could "
                              "not be read");
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            len += size;
        }
    }

    if (len == 0) {
        return NGX_DECLINED;
    }

    if (eas_json_object(body, len, pairs, NGX_HTTP_EAS_ADMIN_PAIRS, &n,
                        buf, sizeof(buf))
        != EAS_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "the body is not one flat JSON "
                                        "object of strings and numbers");
    }

    size = r->args.len;

    for (i = 0; i < n; i++) {
        for (k = 0; k < pairs[i].name.len; k++) {
            if (!((pairs[i].name.data[k] >= 'a'
                   && pairs[i].name.data[k] <= 'z')
                  || pairs[i].name.data[k] == '_'))
            {
                return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                "invalid name in the body");
            }
        }

        size += 2 + pairs[i].name.len + 3 * pairs[i].value.len;
    }

    args = ngx_pnalloc(r->pool, size);
    if (args == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(args, r->args.data, r->args.len);

    for (i = 0; i < n; i++) {
        if (p != args) {
            *p++ = '&';
        }

        p = ngx_cpymem(p, pairs[i].name.data, pairs[i].name.len);
        *p++ = '=';
        p = (u_char *) ngx_escape_uri(p, (u_char *) pairs[i].value.data,
                                      pairs[i].value.len, NGX_ESCAPE_ARGS);
    }

    r->args.data = args;
    r->args.len = p - args;

    return NGX_DECLINED;

too_large:

    return ngx_http_eas_admin_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                    "the JSON body is larger than %d bytes",
                                    NGX_HTTP_EAS_ADMIN_BODY_MAX);
}


static ngx_int_t
ngx_http_eas_admin_dispatch(ngx_http_request_t *r)
{
    ngx_str_t                   path;
    ngx_http_eas_loc_conf_t    *elcf;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_eas_admin_conf_t  *acf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    acf = elcf->admin;

    /* what follows the location's name: "lockouts", "devices/stale" */

    path = r->uri;

    if (path.len >= clcf->name.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;
    }

    while (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    while (path.len && path.data[path.len - 1] == '/') {
        path.len--;
    }

    if (elcf->console && path.len >= 7
        && ngx_strncmp(path.data, "console", 7) == 0
        && (path.len == 7 || path.data[7] == '/'))
    {
        return ngx_http_eas_console_handler(r, &path);
    }

    if (path.len == 8 && ngx_strncmp(path.data, "lockouts", 8) == 0) {
        return ngx_http_eas_admin_lockouts(r, acf);
    }

    if (path.len == 11 && ngx_strncmp(path.data, "credentials", 11) == 0) {
        return ngx_http_eas_admin_credentials(r, acf);
    }

    if (path.len == 7 && ngx_strncmp(path.data, "devices", 7) == 0) {
        return ngx_http_eas_admin_devices(r, acf);
    }

    if (path.len == 13 && ngx_strncmp(path.data, "devices/stale", 13) == 0)
    {
        return ngx_http_eas_admin_stale(r, acf);
    }

    if (path.len == 5 && ngx_strncmp(path.data, "rules", 5) == 0) {
        return ngx_http_eas_admin_rules_api(r);
    }

    return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                    "no such resource: lockouts, "
                                    "credentials, devices, devices/stale, "
                                    "rules, console");
}
