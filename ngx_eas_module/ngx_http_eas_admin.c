
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
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
 *     DELETE lockouts[?user=|?address=]    lift one, or all
 *     DELETE credentials                   drop every cached credential
 *     DELETE credentials?user=U            drop user U's cached credentials
 *     GET    devices[?user=&device_id=&device_type=&page=&per_page=]
 *     DELETE devices?user=&device_id=      delete a record, free its place
 *     GET    devices/stale?days=N          not seen for N days
 *     DELETE devices/stale?days=N          ... deleted
 *     GET    rules                         runtime decisions
 *     POST   rules?access=allow|block|lost&device_id= (or &user=)
 *     DELETE rules?device_id= (or ?user=)
 *
 * Every change works on shared zones, so every worker sees it at once,
 * and is logged as one notice line naming the action and the admin's
 * address and user.  The location is the admin's to protect (allow,
 * deny, auth_basic): this handler trusts whoever reaches it.
 */


#define NGX_HTTP_EAS_ADMIN_PAGE      100     /* devices per page */
#define NGX_HTTP_EAS_ADMIN_PAGE_MAX  1000
#define NGX_HTTP_EAS_ADMIN_LIST_MAX  4096    /* lockouts, rules listed */
#define NGX_HTTP_EAS_ADMIN_BODY_MAX  4096    /* a JSON body */
#define NGX_HTTP_EAS_ADMIN_PAIRS     16


typedef struct {
    ngx_shm_zone_t               *preauth;
    ngx_shm_zone_t               *devices;
} ngx_http_eas_admin_conf_t;


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
static ngx_uint_t ngx_http_eas_admin_match(ngx_http_request_t *r,
    ngx_http_eas_device_t *d);
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
    ngx_uint_t status, const char *text);
static ngx_int_t ngx_http_eas_admin_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);


/* eas_admin [preauth_zone=name] [device_zone=name]; */

char *
ngx_http_eas_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_loc_conf_t *elcf = conf;

    ngx_str_t                  *value, name;
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
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST
                       |NGX_HTTP_DELETE)))
    {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))
        && (r->headers_in.content_length_n > 0 || r->headers_in.chunked))
    {
        r->request_body_in_single_buf = 1;

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
 * name given in both: the URI's wins).  NGX_DECLINED: go on; anything
 * else is the answer already made.
 */

static ngx_int_t
ngx_http_eas_admin_json(ngx_http_request_t *r)
{
    u_char                   *args, *p;
    size_t                    len, size, i, n, k;
    ngx_buf_t                *b;
    eas_json_pair_t           pairs[NGX_HTTP_EAS_ADMIN_PAIRS];
    ngx_http_request_body_t  *rb;
    u_char                    buf[NGX_HTTP_EAS_ADMIN_BODY_MAX];

    rb = r->request_body;

    if (rb == NULL || rb->bufs == NULL) {
        return NGX_DECLINED;
    }

    b = rb->bufs->buf;

    if (rb->temp_file || rb->bufs->next || !ngx_buf_in_memory(b)
        || (size_t) (b->last - b->pos) > NGX_HTTP_EAS_ADMIN_BODY_MAX)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "the JSON body is too large");
    }

    len = b->last - b->pos;

    if (len == 0) {
        return NGX_DECLINED;
    }

    if (eas_json_object(b->pos, len, pairs, NGX_HTTP_EAS_ADMIN_PAIRS, &n,
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
                                    "rules");
}


static ngx_int_t
ngx_http_eas_admin_lockouts(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char                  *p, *buf;
    time_t                   now;
    size_t                   size;
    ngx_str_t                key, what;
    ngx_uint_t               i, n, kind;
    ngx_http_eas_lockout_t  *locks;

    if (acf->preauth == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no preauth_zone in \"eas_admin\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
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

    if (ngx_http_eas_admin_arg(r, "user", &key) == NGX_OK) {
        kind = NGX_HTTP_EAS_CACHE_USER;

    } else if (ngx_http_eas_admin_arg(r, "address", &key) == NGX_OK) {
        kind = NGX_HTTP_EAS_CACHE_ADDRESS;

    } else {
        ngx_http_eas_redis_unlock(acf->preauth, NGX_HTTP_EAS_CACHE_USER, NULL);
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

    if (ngx_http_eas_admin_value(&key, EAS_USER_MAX) != NGX_OK) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid user or address");
    }

    ngx_http_eas_redis_unlock(acf->preauth, kind, &key);

    if (ngx_http_eas_cache_clear(acf->preauth, kind, &key) != NGX_OK) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such counter");
    }

    ngx_http_eas_admin_audit(r, kind == NGX_HTTP_EAS_CACHE_USER
                                ? "lift lockout of user"
                                : "lift lockout of address", &key);

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

    if (ngx_http_eas_admin_arg(r, "user", &user) == NGX_OK) {

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
        ngx_http_eas_admin_audit(r, "drop cached credentials of user",
                                 &user);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                       (u_char *) "{\"dropped\":\"user\"}\n",
                                       sizeof("{\"dropped\":\"user\"}\n")
                                       - 1);
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
    u_char                 *p;
    ngx_str_t               user, device_id, what;
    ngx_uint_t              i, n, k, page, per_page;
    ngx_http_eas_device_t  *devices;

    if (acf->devices == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no device_zone in \"eas_admin\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {

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

        n = ngx_http_eas_device_count(acf->devices);

        devices = ngx_palloc(r->pool,
                             (n ? n : 1) * sizeof(ngx_http_eas_device_t));
        if (devices == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_device_list(acf->devices, devices, n);

        /* filtered in place, then the page cut out */

        for (i = 0, k = 0; i < n; i++) {
            if (ngx_http_eas_admin_match(r, &devices[i])) {
                if (k != i) {
                    devices[k] = devices[i];
                }

                k++;
            }
        }

        i = (page - 1) * per_page;

        return ngx_http_eas_admin_device_list(r, devices + ngx_min(i, k),
                                              i < k ? ngx_min(per_page,
                                                              k - i) : 0,
                                              k, page, per_page);
    }

    if (r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_eas_admin_arg(r, "user", &user) != NGX_OK
        || ngx_http_eas_admin_arg(r, "device_id", &device_id) != NGX_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give user and device_id");
    }

    ngx_http_eas_redis_device_delete(acf->devices, &user, &device_id);

    if (ngx_http_eas_device_delete(acf->devices, &user, &device_id)
        != NGX_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such device");
    }

    p = ngx_pnalloc(r->pool, user.len + device_id.len + sizeof(" of "));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = p;
    what.len = ngx_sprintf(p, "%V of %V", &device_id, &user) - p;
    ngx_http_eas_admin_audit(r, "delete device", &what);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                   (u_char *) "{\"deleted\":1}\n",
                                   sizeof("{\"deleted\":1}\n") - 1);
}


/* a filter argument given and not equal (without case): no match */

static ngx_uint_t
ngx_http_eas_admin_match(ngx_http_request_t *r, ngx_http_eas_device_t *d)
{
    ngx_str_t  v;

    if (ngx_http_eas_admin_arg(r, "user", &v) == NGX_OK
        && (v.len != d->user_len
            || ngx_strncasecmp(v.data, d->user, v.len) != 0))
    {
        return 0;
    }

    if (ngx_http_eas_admin_arg(r, "device_id", &v) == NGX_OK
        && (v.len != d->device_id_len
            || ngx_strncasecmp(v.data, d->device_id, v.len) != 0))
    {
        return 0;
    }

    if (ngx_http_eas_admin_arg(r, "device_type", &v) == NGX_OK
        && (v.len != d->device_type_len
            || ngx_strncasecmp(v.data, d->device_type, v.len) != 0))
    {
        return 0;
    }

    return 1;
}


static ngx_int_t
ngx_http_eas_admin_stale(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char                 *p;
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
    ngx_str_t                    access, what;
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

    ngx_memzero(&rule, sizeof(ngx_http_eas_admin_rule_t));

    if (ngx_http_eas_admin_arg(r, "device_id", &rule.value) == NGX_OK) {
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

    p = ngx_pnalloc(r->pool, rule.value.len + sizeof("device_id \"\" lost"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = p;
    what.len = ngx_sprintf(p, "%s \"%V\" %V",
                           rule.field == 'd' ? "device_id" : "user",
                           &rule.value,
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


/* a query argument, percent-decoded into the request's pool */

static ngx_int_t
ngx_http_eas_admin_arg(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK
        || raw.len == 0)
    {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, raw.len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    value->data = dst;
    src = raw.data;

    ngx_unescape_uri(&dst, &src, raw.len, 0);

    value->len = dst - value->data;

    return value->len ? NGX_OK : NGX_DECLINED;
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


/* "192.0.2.7 user admin": who made a change, as the file keeps it */

static ngx_int_t
ngx_http_eas_admin_who(ngx_http_request_t *r, ngx_str_t *who)
{
    u_char      *p;
    size_t       i;
    ngx_str_t   *user;

    user = (ngx_http_auth_basic_user(r) == NGX_OK) ? &r->headers_in.user
                                                   : NULL;

    p = ngx_pnalloc(r->pool, NGX_HTTP_EAS_ADMIN_WHO_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    who->data = p;

    if (user) {
        p = ngx_snprintf(p, NGX_HTTP_EAS_ADMIN_WHO_LEN, "%V user %V",
                         &r->connection->addr_text, user);

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


static ngx_int_t
ngx_http_eas_admin_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *text)
{
    u_char  *buf, *p;
    size_t   len;

    len = ngx_strlen(text);

    buf = ngx_pnalloc(r->pool, sizeof("{\"error\":\"\"}\n") + len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"error\":\"%s\"}\n", text);

    return ngx_http_eas_admin_send(r, status, buf, p - buf);
}


static ngx_int_t
ngx_http_eas_admin_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    static ngx_str_t  json = ngx_string("application/json");

    return ngx_http_eas_send(r, status, &json, data, len);
}
