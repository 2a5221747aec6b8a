
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
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


#define NGX_HTTP_EAS_ADMIN_PAGE      100     /* devices per page */
#define NGX_HTTP_EAS_ADMIN_PAGE_MAX  1000
#define NGX_HTTP_EAS_ADMIN_LIST_MAX  4096    /* lockouts, rules listed */
#define NGX_HTTP_EAS_ADMIN_BODY_MAX  4096    /* a JSON body */
#define NGX_HTTP_EAS_ADMIN_PAIRS     16
#define NGX_HTTP_EAS_ADMIN_PARAMS    16      /* in one query */


typedef struct {
    ngx_shm_zone_t               *preauth;
    ngx_shm_zone_t               *devices;
    ngx_array_t                  *origins;  /* of ngx_str_t, "origin=" */
} ngx_http_eas_admin_conf_t;


/* the parameters each resource takes; NULL-terminated */

static char  *ngx_http_eas_admin_none[] = { NULL };
static char  *ngx_http_eas_admin_lockout_args[] =
    { "user", "address", "all", NULL };
static char  *ngx_http_eas_admin_credential_args[] = { "user", "all", NULL };
static char  *ngx_http_eas_admin_list_args[] =
    { "user", "device_id", "device_type", "decision", "sort", "page",
      "per_page", NULL };
static char  *ngx_http_eas_admin_device_args[] = { "user", "device_id", NULL };
static char  *ngx_http_eas_admin_stale_args[] = { "days", NULL };
static char  *ngx_http_eas_admin_rule_args[] =
    { "access", "device_id", "user", NULL };


static ngx_int_t ngx_http_eas_admin_handler(ngx_http_request_t *r);
static void ngx_http_eas_admin_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_admin_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_admin_dispatch(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_admin_lockouts(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
static ngx_int_t ngx_http_eas_admin_credentials(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
static ngx_int_t ngx_http_eas_admin_devices(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
static ngx_int_t ngx_http_eas_admin_stale(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
static ngx_int_t ngx_http_eas_admin_rules_api(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_admin_device_list(ngx_http_request_t *r,
    ngx_http_eas_device_t *devices, ngx_uint_t n, ngx_uint_t total,
    ngx_uint_t page, ngx_uint_t per_page);
static ngx_int_t ngx_http_eas_admin_filter(ngx_http_request_t *r,
    ngx_http_eas_device_filter_t *f);
static ngx_int_t ngx_http_eas_admin_params(ngx_http_request_t *r,
    char **names, char *empty);
static ngx_int_t ngx_http_eas_admin_all(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_admin_quote(ngx_http_request_t *r,
    ngx_str_t *value, ngx_str_t *quoted);
static ngx_int_t ngx_http_eas_admin_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
static ngx_int_t ngx_http_eas_admin_number(ngx_http_request_t *r,
    char *name, ngx_uint_t dflt, ngx_uint_t max, ngx_uint_t *n);
static ngx_int_t ngx_http_eas_admin_value(ngx_str_t *value, size_t max);
static ngx_int_t ngx_http_eas_admin_who(ngx_http_request_t *r,
    ngx_str_t *who);
static void ngx_http_eas_admin_audit(ngx_http_request_t *r,
    const char *action, ngx_str_t *what);
static ngx_int_t ngx_http_eas_admin_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);
static ngx_int_t ngx_http_eas_admin_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);


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
    ngx_http_eas_loc_conf_t    *elcf;
    ngx_http_eas_admin_conf_t  *acf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST
                       |NGX_HTTP_DELETE)))
    {
        return NGX_HTTP_NOT_ALLOWED;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    acf = elcf->admin;

    /*
     * a change needs "X-EAS-Admin: 1", a Host of this server and no
     * other origin (CSRF, DNS rebinding)
     */

    if (ngx_http_eas_console_csrf(r, acf->origins, &why) != NGX_OK) {
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


static ngx_int_t
ngx_http_eas_admin_lockouts(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char                  *p, *buf;
    time_t                   now;
    size_t                   size;
    ngx_int_t                rc;
    ngx_str_t                key, what;
    ngx_uint_t               i, n, kind;
    ngx_http_eas_lockout_t  *locks;

    if (acf->preauth == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no preauth_zone in \"eas_admin\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_none, NULL);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        locks = ngx_palloc(r->pool, NGX_HTTP_EAS_ADMIN_LIST_MAX
                                    * sizeof(ngx_http_eas_lockout_t));
        if (locks == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_cache_lockouts(acf->preauth, locks,
                                        NGX_HTTP_EAS_ADMIN_LIST_MAX);

        size = sizeof("{\"lockouts\":[\n]}\n");

        for (i = 0; i < n; i++) {
            size += sizeof("{\"kind\":\"address\",\"key\":\"\",\"failures\":"
                           ",\"until\":,\"left\":},\n")
                    + 2 * NGX_TIME_T_LEN + NGX_INT_T_LEN + 6 * locks[i].len;
        }

        buf = ngx_pnalloc(r->pool, size);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        now = ngx_time();
        p = ngx_cpymem(buf, "{\"lockouts\":[\n",
                       sizeof("{\"lockouts\":[\n") - 1);

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "{\"kind\":\"%s\",\"key\":\"",
                            locks[i].kind == NGX_HTTP_EAS_CACHE_USER
                            ? "user" : "address");
            p = ngx_http_eas_json_escape(p, locks[i].key, locks[i].len, NULL);
            p = ngx_sprintf(p, "\",\"failures\":%ui,\"until\":%T,"
                            "\"left\":%T}%s\n", locks[i].failures,
                            locks[i].locked_until,
                            locks[i].locked_until - now,
                            i + 1 < n ? "," : "");
        }

        p = ngx_cpymem(p, "]}\n", 3);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
    }

    if (r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_lockout_args, NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_arg(r, "user", &key) == NGX_OK) {
        kind = NGX_HTTP_EAS_CACHE_USER;

    } else if (ngx_http_eas_admin_arg(r, "address", &key) == NGX_OK) {
        kind = NGX_HTTP_EAS_CACHE_ADDRESS;

    } else {
        rc = ngx_http_eas_admin_all(r);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        n = ngx_http_eas_cache_drop(acf->preauth, NGX_HTTP_EAS_CACHE_USER);

        buf = ngx_pnalloc(r->pool, sizeof("{\"lifted\":}\n") + NGX_INT_T_LEN
                                   + 32);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        what.data = buf;
        what.len = ngx_sprintf(buf, "%ui lockouts", n) - buf;
        ngx_http_eas_admin_audit(r, "lift all lockouts", &what);

        p = ngx_sprintf(buf, "{\"lifted\":%ui}\n", n);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
    }

    if (ngx_http_eas_admin_arg(r, "all", &what) == NGX_OK
        || (kind == NGX_HTTP_EAS_CACHE_USER
            && ngx_http_eas_admin_arg(r, "address", &what) == NGX_OK))
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give one of user=, address= "
                                        "or all=1");
    }

    if (ngx_http_eas_admin_value(&key, EAS_USER_MAX) != NGX_OK) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid user or address");
    }

    if (ngx_http_eas_cache_clear(acf->preauth, kind, &key) != NGX_OK) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such counter");
    }

    if (ngx_http_eas_admin_quote(r, &key, &what) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_eas_admin_audit(r, kind == NGX_HTTP_EAS_CACHE_USER
                                ? "lift lockout of user"
                                : "lift lockout of address", &what);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                   (u_char *) "{\"lifted\":1}\n",
                                   sizeof("{\"lifted\":1}\n") - 1);
}


/*
 * "?user=IDENTITY" drops that user's cached answers (after a password
 * change): the user's next request of each device is verified by the
 * source again.  Without it, every cached credential goes, and the
 * known-good devices, which remember a password.
 */

static ngx_int_t
ngx_http_eas_admin_credentials(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char      *buf, *p;
    size_t       len;
    ngx_int_t    rc;
    ngx_str_t    what, user;
    ngx_uint_t   n;
    u_char       folded[EAS_USER_MAX];

    if (acf->preauth == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no preauth_zone in \"eas_admin\"");
    }

    if (r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_credential_args,
                                   NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_arg(r, "user", &user) == NGX_OK) {

        if (ngx_http_eas_admin_arg(r, "all", &what) == NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "give user= or all=1");
        }

        /*
         * folded as identities are (ngx_http_eas_fold(), idempotent): a
         * drop of "JDoe" is one of "jdoe", never a silent no-op
         */

        if (ngx_http_eas_admin_value(&user, EAS_USER_MAX) != NGX_OK
            || ngx_http_eas_fold(user.data, user.len, folded,
                                 sizeof(folded), &len)
               != NGX_OK)
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid user");
        }

        user.data = folded;
        user.len = len;

        ngx_http_eas_cache_drop_user(acf->preauth, &user);

        if (ngx_http_eas_admin_quote(r, &user, &what) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_eas_admin_audit(r, "drop cached credentials of user",
                                 &what);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                       (u_char *) "{\"dropped\":\"user\"}\n",
                                       sizeof("{\"dropped\":\"user\"}\n")
                                       - 1);
    }

    rc = ngx_http_eas_admin_all(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    n = ngx_http_eas_cache_drop(acf->preauth,
                                NGX_HTTP_EAS_CACHE_CREDENTIALS);
    n += ngx_http_eas_cache_drop(acf->preauth, NGX_HTTP_EAS_CACHE_KNOWN);

    buf = ngx_pnalloc(r->pool, sizeof("{\"dropped\":}\n") + NGX_INT_T_LEN
                               + 32);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = buf;
    what.len = ngx_sprintf(buf, "%ui entries", n) - buf;
    ngx_http_eas_admin_audit(r, "drop cached credentials", &what);

    p = ngx_sprintf(buf, "{\"dropped\":%ui}\n", n);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
}


static ngx_int_t
ngx_http_eas_admin_devices(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    ngx_int_t                      rc;
    ngx_str_t                      user, device_id, what, qu, qd;
    ngx_uint_t                     n, total, page, per_page;
    ngx_http_eas_device_t         *devices;
    ngx_http_eas_device_filter_t   filter;

    if (acf->devices == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no device_zone in \"eas_admin\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_list_args, NULL);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        if (ngx_http_eas_admin_number(r, "page", 1, NGX_MAX_INT32_VALUE,
                                      &page) != NGX_OK
            || ngx_http_eas_admin_number(r, "per_page",
                                         NGX_HTTP_EAS_ADMIN_PAGE,
                                         NGX_HTTP_EAS_ADMIN_PAGE_MAX,
                                         &per_page) != NGX_OK
            || page == 0 || per_page == 0)
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid page or per_page");
        }

        if (ngx_http_eas_admin_filter(r, &filter) != NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "decision must be allowed, "
                                            "blocked or none; sort "
                                            "last_seen or -last_seen");
        }

        /* filtered and paged in the zone: only the page is copied */

        filter.skip = (page - 1) * per_page;

        devices = ngx_palloc(r->pool,
                             per_page * sizeof(ngx_http_eas_device_t));
        if (devices == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_device_select(acf->devices, &filter, devices,
                                       per_page, &total);

        return ngx_http_eas_admin_device_list(r, devices, n, total, page,
                                              per_page);
    }

    if (r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    /* user= may be empty: the record of a request that named no user */

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_device_args, "user");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_arg(r, "user", &user) != NGX_OK
        || ngx_http_eas_admin_arg(r, "device_id", &device_id) != NGX_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give user and device_id");
    }

    if (ngx_http_eas_device_delete(acf->devices, &user, &device_id)
        != NGX_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such device");
    }

    if (ngx_http_eas_admin_quote(r, &user, &qu) != NGX_OK
        || ngx_http_eas_admin_quote(r, &device_id, &qd) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = ngx_pnalloc(r->pool, qu.len + qd.len + sizeof(" of "));
    if (what.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.len = ngx_sprintf(what.data, "%V of %V", &qd, &qu) - what.data;
    ngx_http_eas_admin_audit(r, "delete device", &what);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                   (u_char *) "{\"deleted\":1}\n",
                                   sizeof("{\"deleted\":1}\n") - 1);
}


/*
 * The listing's filter: user=, device_id=, device_type= (equal, without
 * case), decision=allowed|blocked|none, sort=-last_seen (newest first,
 * the default) or last_seen (oldest first).
 */

static ngx_int_t
ngx_http_eas_admin_filter(ngx_http_request_t *r,
    ngx_http_eas_device_filter_t *f)
{
    ngx_str_t  v;

    ngx_memzero(f, sizeof(ngx_http_eas_device_filter_t));

    (void) ngx_http_eas_admin_arg(r, "user", &f->user);
    (void) ngx_http_eas_admin_arg(r, "device_id", &f->device_id);
    (void) ngx_http_eas_admin_arg(r, "device_type", &f->device_type);

    f->any_access = 1;

    if (ngx_http_eas_admin_arg(r, "decision", &v) == NGX_OK) {
        f->any_access = 0;

        if (v.len == 7 && ngx_strncmp(v.data, "allowed", 7) == 0) {
            f->access = NGX_HTTP_EAS_ACCESS_ALLOWED;

        } else if (v.len == 7 && ngx_strncmp(v.data, "blocked", 7) == 0) {
            f->access = NGX_HTTP_EAS_ACCESS_BLOCKED;

        } else if (v.len == 4 && ngx_strncmp(v.data, "none", 4) == 0) {
            f->access = NGX_HTTP_EAS_ACCESS_NONE;

        } else {
            return NGX_ERROR;
        }
    }

    if (ngx_http_eas_admin_arg(r, "sort", &v) == NGX_OK) {

        if (v.len == 9 && ngx_strncmp(v.data, "last_seen", 9) == 0) {
            f->oldest_first = 1;

        } else if (!(v.len == 10
                     && ngx_strncmp(v.data, "-last_seen", 10) == 0))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_admin_stale(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char                 *p;
    ngx_int_t               rc;
    ngx_str_t               what;
    ngx_uint_t              n, days, delete;
    ngx_http_eas_device_t  *devices;

    if (acf->devices == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no device_zone in \"eas_admin\"");
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_stale_args, NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_number(r, "days", 0, 36500, &days) != NGX_OK
        || days == 0)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give days=N, N at least 1");
    }

    delete = (r->method == NGX_HTTP_DELETE);

    n = ngx_http_eas_device_count(acf->devices);

    devices = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ngx_http_eas_device_t));
    if (devices == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = ngx_http_eas_device_stale(acf->devices,
                                  ngx_time() - (time_t) days * 86400,
                                  delete, devices, n);

    if (delete) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN * 2 + 64);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        what.data = p;
        what.len = ngx_sprintf(p, "%ui devices not seen for %ui days", n,
                               days)
                   - p;
        ngx_http_eas_admin_audit(r, "delete stale devices", &what);
    }

    return ngx_http_eas_admin_device_list(r, devices, n, n, 1, n);
}


static ngx_int_t
ngx_http_eas_admin_device_list(ngx_http_request_t *r,
    ngx_http_eas_device_t *devices, ngx_uint_t n, ngx_uint_t total,
    ngx_uint_t page, ngx_uint_t per_page)
{
    u_char      *buf, *p;
    size_t       size;
    ngx_uint_t   i;

    size = sizeof("{\"total\":,\"page\":,\"per_page\":,\"devices\":[\n]}\n")
           + 3 * NGX_INT_T_LEN;

    for (i = 0; i < n; i++) {
        size += ngx_http_eas_inventory_record_size(&devices[i]);
    }

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"total\":%ui,\"page\":%ui,\"per_page\":%ui,"
                    "\"devices\":[\n", total, page, per_page);

    for (i = 0; i < n; i++) {
        p = ngx_http_eas_inventory_record(p, &devices[i]);

        if (i + 1 < n) {
            *p++ = ',';
        }

        *p++ = '\n';
    }

    p = ngx_cpymem(p, "]}\n", 3);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
}


static ngx_int_t
ngx_http_eas_admin_rules_api(ngx_http_request_t *r)
{
    u_char                      *buf, *p;
    size_t                       size;
    ngx_int_t                    rc;
    ngx_str_t                    access, what, quoted;
    ngx_uint_t                   i, n;
    ngx_http_eas_main_conf_t    *emcf;
    ngx_http_eas_admin_rule_t    rule;
    ngx_http_eas_admin_entry_t  *rules;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_eas_module);

    if (emcf->admin_rules == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no \"eas_admin_rules\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_none, NULL);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        rules = ngx_palloc(r->pool, NGX_HTTP_EAS_ADMIN_LIST_MAX
                                    * sizeof(ngx_http_eas_admin_entry_t));
        if (rules == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_admin_list(emcf->admin_rules, rules,
                                    NGX_HTTP_EAS_ADMIN_LIST_MAX);

        size = sizeof("{\"file\":\"\",\"rules\":[\n]}\n")
               + 6 * ngx_http_eas_admin_file(emcf->admin_rules)->len;

        for (i = 0; i < n; i++) {
            size += sizeof("{\"device_id\":\"\",\"access\":\"block\","
                           "\"since\":,\"line\":,\"by\":\"\"},\n")
                    + NGX_TIME_T_LEN + NGX_INT_T_LEN
                    + 6 * (rules[i].value_len + rules[i].who_len);
        }

        buf = ngx_pnalloc(r->pool, size);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(buf, "{\"file\":\"", sizeof("{\"file\":\"") - 1);
        p = ngx_http_eas_json_escape(p,
                               ngx_http_eas_admin_file(emcf->admin_rules)->data,
                               ngx_http_eas_admin_file(emcf->admin_rules)->len,
                               NULL);
        p = ngx_cpymem(p, "\",\"rules\":[\n", sizeof("\",\"rules\":[\n") - 1);

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "{\"%s\":\"",
                            rules[i].field == 'd' ? "device_id" : "user");
            p = ngx_http_eas_json_escape(p, rules[i].value,
                                         rules[i].value_len, NULL);
            p = ngx_sprintf(p, "\",\"access\":\"%V\",\"since\":%T,"
                            "\"line\":%ui,\"by\":\"",
                            ngx_http_eas_admin_access_name(rules[i].access),
                            rules[i].since, rules[i].line);
            p = ngx_http_eas_json_escape(p, rules[i].who, rules[i].who_len,
                                         NULL);
            p = ngx_sprintf(p, "\"}%s\n", i + 1 < n ? "," : "");
        }

        p = ngx_cpymem(p, "]}\n", 3);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_rule_args, NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (r->method == NGX_HTTP_DELETE
        && ngx_http_eas_admin_arg(r, "access", &access) == NGX_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "a rule's delete takes no access=");
    }

    ngx_memzero(&rule, sizeof(ngx_http_eas_admin_rule_t));

    if (ngx_http_eas_admin_arg(r, "device_id", &rule.value) == NGX_OK) {
        if (ngx_http_eas_admin_arg(r, "user", &what) == NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "give device_id or user, not "
                                            "both");
        }

        rule.field = 'd';

        if (ngx_http_eas_admin_value(&rule.value, EAS_DEVICE_ID_MAX)
            != NGX_OK)
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid device_id");
        }

    } else if (ngx_http_eas_admin_arg(r, "user", &rule.value) == NGX_OK) {
        rule.field = 'u';

        if (ngx_http_eas_admin_value(&rule.value, EAS_USER_MAX) != NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid user");
        }

    } else {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give device_id or user");
    }

    if (r->method == NGX_HTTP_POST) {
        if (ngx_http_eas_admin_arg(r, "access", &access) != NGX_OK) {
            ngx_str_null(&access);
        }

        for (i = NGX_HTTP_EAS_ACCESS_ALLOWED;
             i <= NGX_HTTP_EAS_ADMIN_LOST_ACCESS;
             i++)
        {
            if (access.len == ngx_http_eas_admin_access_name(i)->len
                && ngx_strncmp(access.data,
                               ngx_http_eas_admin_access_name(i)->data,
                               access.len) == 0)
            {
                break;
            }
        }

        if (i > NGX_HTTP_EAS_ADMIN_LOST_ACCESS
            || (i == NGX_HTTP_EAS_ADMIN_LOST_ACCESS && rule.field != 'd'))
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "access must be allow, block or "
                                            "lost (lost: device_id only)");
        }

        rule.access = i;
    }

    if (ngx_http_eas_admin_who(r, &rule.who) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_eas_admin_change(emcf->admin_rules, &rule,
                                   r->connection->log);

    if (rc == NGX_DECLINED) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such rule");
    }

    if (rc == NGX_BUSY) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_INSUFFICIENT_STORAGE,
                                        "the eas_admin_rules zone is full");
    }

    if (ngx_http_eas_admin_quote(r, &rule.value, &quoted) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, quoted.len + sizeof("device_id \"\" lost"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = p;
    what.len = ngx_sprintf(p, "%s \"%V\" %V",
                           rule.field == 'd' ? "device_id" : "user",
                           &quoted,
                           ngx_http_eas_admin_access_name(rule.access))
               - p;

    ngx_http_eas_admin_audit(r, r->method == NGX_HTTP_POST ? "set rule"
                                                           : "remove rule",
                             &what);

    if (rc == NGX_ERROR) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "in force in every worker, but the "
                                        "file could not be written: see the "
                                        "error log");
    }

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                   (u_char *) "{\"ok\":true}\n",
                                   sizeof("{\"ok\":true}\n") - 1);
}


/*
 * Every parameter of the query (and of the JSON body, read into it) is
 * one of "names", given once, with a value, but "empty" (if not NULL)
 * may be empty.  NGX_DECLINED: go on; anything else is the 400 made.
 */

static ngx_int_t
ngx_http_eas_admin_params(ngx_http_request_t *r, char **names, char *empty)
{
    u_char      *p, *last, *end, *eq;
    ngx_str_t    name[NGX_HTTP_EAS_ADMIN_PARAMS];
    ngx_uint_t   i, k, n, known;

    p = r->args.data;
    last = p + r->args.len;
    n = 0;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        if (end == p) {
            p++;                        /* "a=1&&b=2": nothing there */
            continue;
        }

        eq = ngx_strlchr(p, end, '=');

        name[n].data = p;
        name[n].len = (eq ? eq : end) - p;

        known = 0;

        for (i = 0; names[i]; i++) {
            if (name[n].len == ngx_strlen(names[i])
                && ngx_strncmp(name[n].data, names[i], name[n].len) == 0)
            {
                known = 1;
                break;
            }
        }

        if (!known) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "unknown parameter \"%V\"",
                                            &name[n]);
        }

        for (k = 0; k < n; k++) {
            if (name[k].len == name[n].len
                && ngx_strncmp(name[k].data, name[n].data, name[n].len) == 0)
            {
                return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                                "parameter \"%V\" given "
                                                "twice", &name[n]);
            }
        }

        if ((eq == NULL || eq + 1 == end)
            && !(empty && name[n].len == ngx_strlen(empty)
                 && ngx_strncmp(name[n].data, empty, name[n].len) == 0))
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "empty value of \"%V\"",
                                            &name[n]);
        }

        if (++n == NGX_HTTP_EAS_ADMIN_PARAMS) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "too many parameters");
        }

        p = end + 1;
    }

    return NGX_DECLINED;
}


/* "everything" is asked for explicitly: all=1.  NGX_DECLINED: go on */

static ngx_int_t
ngx_http_eas_admin_all(ngx_http_request_t *r)
{
    ngx_str_t  all;

    if (ngx_http_eas_admin_arg(r, "all", &all) != NGX_OK) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "name what to act on, or give "
                                        "all=1 for everything");
    }

    if (all.len != 1 || all.data[0] != '1') {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "all= takes 1 only");
    }

    return NGX_DECLINED;
}


/*
 * A query argument (checked by ngx_http_eas_admin_params() first: the
 * name is given once, as written), decoded as a form decoder does: "+"
 * is a space, %XX a byte.  NGX_OK: given (maybe empty); NGX_DECLINED:
 * not given.
 */

static ngx_int_t
ngx_http_eas_admin_arg(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    u_char     *dst, *src, *plus;
    size_t      i;
    ngx_str_t   raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK) {
        return NGX_DECLINED;
    }

    value->data = (u_char *) "";
    value->len = 0;

    if (raw.len == 0) {
        return NGX_OK;
    }

    plus = ngx_pnalloc(r->pool, 2 * raw.len);
    if (plus == NULL) {
        return NGX_DECLINED;
    }

    for (i = 0; i < raw.len; i++) {
        plus[i] = (raw.data[i] == '+') ? ' ' : raw.data[i];
    }

    dst = plus + raw.len;
    src = plus;
    value->data = dst;

    ngx_unescape_uri(&dst, &src, raw.len, 0);

    value->len = dst - value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_admin_number(ngx_http_request_t *r, char *name,
    ngx_uint_t dflt, ngx_uint_t max, ngx_uint_t *n)
{
    ngx_int_t  v;
    ngx_str_t  value;

    if (ngx_http_eas_admin_arg(r, name, &value) != NGX_OK) {
        *n = dflt;
        return NGX_OK;
    }

    v = ngx_atoi(value.data, value.len);

    if (v == NGX_ERROR || (ngx_uint_t) v > max) {
        return NGX_ERROR;
    }

    *n = v;

    return NGX_OK;
}


/*
 * A DeviceId or user the rules file can hold as it is: printable, no
 * control byte, not starting with "~" (a regular expression there).
 */

static ngx_int_t
ngx_http_eas_admin_value(ngx_str_t *value, size_t max)
{
    size_t  i;

    if (value->len == 0 || value->len > max || value->data[0] == '~') {
        return NGX_ERROR;
    }

    for (i = 0; i < value->len; i++) {
        if (value->data[i] < 0x20 || value->data[i] == 0x7f) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * "192.0.2.7 user admin": who made a change, as the file keeps it.  The
 * user is named as verified only if this location's access phase read
 * the Authorization header (auth_basic does, and answers 401 when it
 * does not verify) under "satisfy all", so that nothing else could have
 * let the request in.  A name read here for the first time, or read
 * under "satisfy any" (allow may have let the request in, the password
 * unchecked), is "claimed user X": nobody verified it.
 */

static ngx_int_t
ngx_http_eas_admin_who(ngx_http_request_t *r, ngx_str_t *who)
{
    u_char                    *p;
    size_t                     i;
    ngx_str_t                 *user, name;
    ngx_uint_t                 verified;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    verified = (r->headers_in.user.data != NULL
                && clcf->satisfy == NGX_HTTP_SATISFY_ALL);

    user = NULL;

    if (ngx_http_auth_basic_user(r) == NGX_OK) {
        name = r->headers_in.user;
        user = &name;
    }

    if (!verified && clcf->satisfy == NGX_HTTP_SATISFY_ALL) {

        /* read here, not by the access phase: left unread for the next */

        ngx_str_null(&r->headers_in.user);
        ngx_str_null(&r->headers_in.passwd);
    }

    p = ngx_pnalloc(r->pool, NGX_HTTP_EAS_ADMIN_WHO_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    who->data = p;

    if (user) {
        p = ngx_snprintf(p, NGX_HTTP_EAS_ADMIN_WHO_LEN, "%V %suser %V",
                         &r->connection->addr_text,
                         verified ? "" : "claimed ", user);

    } else {
        p = ngx_snprintf(p, NGX_HTTP_EAS_ADMIN_WHO_LEN, "%V",
                         &r->connection->addr_text);
    }

    who->len = p - who->data;

    /* one line of the file: nothing that could end or quote it */

    for (i = 0; i < who->len; i++) {
        if (who->data[i] < 0x20 || who->data[i] >= 0x7f
            || who->data[i] == '"' || who->data[i] == '\\')
        {
            who->data[i] = '?';
        }
    }

    return NGX_OK;
}


/*
 * A value as the audit line shows it: '"' and '\' escaped with '\', a
 * control byte as \xNN, so that a value cannot end a quoted field or
 * forge a line.
 */

static ngx_int_t
ngx_http_eas_admin_quote(ngx_http_request_t *r, ngx_str_t *value,
    ngx_str_t *quoted)
{
    u_char  *p;
    size_t   i;
    u_char   c;

    p = ngx_pnalloc(r->pool, 4 * value->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    quoted->data = p;

    for (i = 0; i < value->len; i++) {
        c = value->data[i];

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;

        } else if (c < 0x20 || c == 0x7f) {
            p = ngx_sprintf(p, "\\x%02xd", c);

        } else {
            *p++ = c;
        }
    }

    quoted->len = p - quoted->data;

    return NGX_OK;
}


static void
ngx_http_eas_admin_audit(ngx_http_request_t *r, const char *action,
    ngx_str_t *what)
{
    ngx_str_t  who;

    if (ngx_http_eas_admin_who(r, &who) != NGX_OK) {
        ngx_str_set(&who, "?");
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "eas admin: %s: %V, by %V", action, what, &who);
}


/*
 * Every error answer of the admin API: {"error":"..."}, the text made
 * from fmt and JSON-escaped here, once; and one log line with it.
 */

static ngx_int_t
ngx_http_eas_admin_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...)
{
    u_char      *buf, *p;
    size_t       len;
    va_list      args;
    ngx_uint_t   level;
    u_char       text[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    p = ngx_vslprintf(text, text + sizeof(text), fmt, args);
    va_end(args);

    len = p - text;
    /* a client's mistake is "info", as nginx logs them; a refused change
     * "warn"; the server's own failure "error" */

    level = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_ERR
            : (status == NGX_HTTP_FORBIDDEN) ? NGX_LOG_WARN : NGX_LOG_INFO;

    ngx_log_error(level, r->connection->log, 0,
                  "eas admin: %*s, answered %ui", len, text, status);

    buf = ngx_pnalloc(r->pool, sizeof("{\"error\":\"\"}\n") + 6 * len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, "{\"error\":\"", sizeof("{\"error\":\"") - 1);
    p = ngx_http_eas_json_escape(p, text, len, NULL);
    p = ngx_cpymem(p, "\"}\n", sizeof("\"}\n") - 1);

    return ngx_http_eas_admin_send(r, status, buf, p - buf);
}


static ngx_int_t
ngx_http_eas_admin_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    static ngx_str_t  json = ngx_string("application/json");

    if (ngx_http_eas_answer_private(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_send(r, status, &json, data, len);
}
