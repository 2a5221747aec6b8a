
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin.h"


/*
 * What every resource of the admin API (ngx_http_eas_admin.c) shares:
 * the parameters of the query checked and read, the admin named,
 * the audit line of a change, and the JSON answers, errors included.
 */


#define NGX_HTTP_EAS_ADMIN_PARAMS    16      /* in one query */


char  *ngx_http_eas_admin_none[] = { NULL };


/*
 * Every parameter of the query (and of the JSON body, read into it) is
 * one of "names", given once, with a value, but "empty" (if not NULL)
 * may be empty.  NGX_DECLINED: go on; anything else is the 400 made.
 */

ngx_int_t
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

ngx_int_t
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

ngx_int_t
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


ngx_int_t
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

ngx_int_t
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

ngx_int_t
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

ngx_int_t
ngx_http_eas_admin_audit_value(ngx_http_request_t *r, ngx_str_t *value,
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


void
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

ngx_int_t
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


ngx_int_t
ngx_http_eas_admin_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    static ngx_str_t  json = ngx_string("application/json");

    if (ngx_http_eas_answer_private(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_send(r, status, &json, data, len);
}
