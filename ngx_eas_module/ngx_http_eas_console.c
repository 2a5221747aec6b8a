
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"

/* made from ngx_eas_module/console/ by tools/console-embed.sh */
#include "ngx_http_eas_console_files.h"


/*
 * "eas_console [status=URI] [stale=TIME]", in an "eas_admin" location:
 * the admin console (docs/operations.md#the-admin-console), a static
 * page and its script and style sheet, compiled in, served under
 * "console/" of the admin API's location.  The page only calls that API
 * (and reads the eas_status location named) from the browser, so it has
 * exactly the API's protection: the location's allow/deny/auth_basic.
 *
 * The answers carry a Content-Security-Policy that allows scripts,
 * styles and requests of this origin only (nothing inline), no framing,
 * no form posts; and nosniff.  The script writes every value with
 * textContent, never as markup.
 *
 * Also here: the API's rule against cross-site requests, for POST and
 * DELETE, console or not (ngx_http_eas_console_csrf()).
 */


#define NGX_HTTP_EAS_CONSOLE_STALE  (30 * 86400)    /* by default */


typedef struct {
    ngx_str_t                     status;       /* an eas_status URI */
    time_t                        stale;        /* seconds */
} ngx_http_eas_console_conf_t;


typedef struct {
    ngx_str_t                     name;
    ngx_str_t                     type;
    u_char                       *data;
    size_t                        len;
} ngx_http_eas_console_file_t;


static ngx_int_t ngx_http_eas_console_config(ngx_http_request_t *r,
    ngx_http_eas_console_conf_t *ccf);
static ngx_int_t ngx_http_eas_console_redirect(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_console_send(ngx_http_request_t *r,
    ngx_str_t *type, u_char *data, size_t len);
static ngx_int_t ngx_http_eas_console_header(ngx_http_request_t *r,
    char *key, char *value);
static ngx_int_t ngx_http_eas_console_origin(ngx_http_request_t *r,
    ngx_str_t *origin, ngx_array_t *origins);
static ngx_int_t ngx_http_eas_console_port(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_console_known(ngx_http_request_t *r,
    ngx_str_t *host, ngx_array_t *origins);


static ngx_http_eas_console_file_t  ngx_http_eas_console_files[] = {

    { ngx_string("index.html"), ngx_string("text/html; charset=utf-8"),
      ngx_http_eas_console_index_html,
      sizeof(ngx_http_eas_console_index_html) },

    { ngx_string("console.js"),
      ngx_string("text/javascript; charset=utf-8"),
      ngx_http_eas_console_console_js,
      sizeof(ngx_http_eas_console_console_js) },

    { ngx_string("console.css"), ngx_string("text/css; charset=utf-8"),
      ngx_http_eas_console_console_css,
      sizeof(ngx_http_eas_console_console_css) },

    { ngx_null_string, ngx_null_string, NULL, 0 }
};


/*
 * Scripts, styles, images and requests of this origin only; nothing
 * inline, no plug-ins, no framing, no base or form target elsewhere.
 */

#define NGX_HTTP_EAS_CONSOLE_CSP                                             \
    "default-src 'none'; script-src 'self'; style-src 'self'; "              \
    "img-src 'self'; connect-src 'self'; base-uri 'none'; "                  \
    "form-action 'none'; frame-ancestors 'none'"


/* eas_console [status=URI] [stale=TIME]; */

char *
ngx_http_eas_console(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_loc_conf_t *elcf = conf;

    size_t                        k;
    ngx_int_t                     n;
    ngx_str_t                    *value, name;
    ngx_uint_t                    i;
    ngx_http_eas_console_conf_t  *ccf;

    if (elcf->console) {
        return "is duplicate";
    }

    ccf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_console_conf_t));
    if (ccf == NULL) {
        return NGX_CONF_ERROR;
    }

    ccf->stale = NGX_HTTP_EAS_CONSOLE_STALE;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "status=", 7) == 0) {
            ccf->status.data = value[i].data + 7;
            ccf->status.len = value[i].len - 7;

            /* a path of this server, as the page's policy allows */

            for (k = 0; k < ccf->status.len; k++) {
                if (ccf->status.data[k] <= 0x20
                    || ccf->status.data[k] >= 0x7f)
                {
                    break;
                }
            }

            if (ccf->status.len == 0 || ccf->status.data[0] != '/'
                || (ccf->status.len > 1 && ccf->status.data[1] == '/')
                || k < ccf->status.len)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"status=\" in \"%V\": a path "
                                   "of this server, like /eas/status",
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "stale=", 6) == 0) {
            name.data = value[i].data + 6;
            name.len = value[i].len - 6;

            n = ngx_parse_time(&name, 1);

            if (n == NGX_ERROR || n < 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"stale=\" in \"%V\": a time, "
                                   "like 30d", &cmd->name);
                return NGX_CONF_ERROR;
            }

            ccf->stale = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    elcf->console = ccf;

    return NGX_CONF_OK;
}


/* the page lives in the admin API's location, and only there */

ngx_int_t
ngx_http_eas_console_check(ngx_conf_t *cf, ngx_http_eas_loc_conf_t *conf)
{
    if (conf->console && conf->admin == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_console\" needs \"eas_admin\" in the "
                           "same location: the page is served under its "
                           "\"console/\" and has its protection");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* path: "console" or "console/NAME", what follows the admin location */

ngx_int_t
ngx_http_eas_console_handler(ngx_http_request_t *r, ngx_str_t *path)
{
    ngx_str_t                     name;
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_console_file_t  *f;
    ngx_http_eas_console_conf_t  *ccf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    ccf = elcf->console;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    name.data = path->data + 7;
    name.len = path->len - 7;

    while (name.len && name.data[0] == '/') {
        name.data++;
        name.len--;
    }

    if (name.len == 0) {

        /* "console": relative names need "console/" */

        if (r->uri.len == 0 || r->uri.data[r->uri.len - 1] != '/') {
            return ngx_http_eas_console_redirect(r);
        }

        ngx_str_set(&name, "index.html");
    }

    if (name.len == 11 && ngx_strncmp(name.data, "config.json", 11) == 0) {
        return ngx_http_eas_console_config(r, ccf);
    }

    for (f = ngx_http_eas_console_files; f->data; f++) {
        if (name.len == f->name.len
            && ngx_strncmp(name.data, f->name.data, name.len) == 0)
        {
            return ngx_http_eas_console_send(r, &f->type, f->data, f->len);
        }
    }

    return NGX_HTTP_NOT_FOUND;
}


/* what the page needs: {"status":"/eas/status","stale_seconds":2592000} */

static ngx_int_t
ngx_http_eas_console_config(ngx_http_request_t *r,
    ngx_http_eas_console_conf_t *ccf)
{
    u_char     *buf, *p;
    ngx_str_t   json = ngx_string("application/json");

    buf = ngx_pnalloc(r->pool,
                      sizeof("{\"status\":\"\",\"stale_seconds\":}\n")
                      + 6 * ccf->status.len + NGX_TIME_T_LEN);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, "{\"status\":\"", sizeof("{\"status\":\"") - 1);
    p = ngx_http_eas_json_escape(p, ccf->status.data, ccf->status.len, NULL);
    p = ngx_sprintf(p, "\",\"stale_seconds\":%T}\n", ccf->stale);

    return ngx_http_eas_console_send(r, &json, buf, p - buf);
}


static ngx_int_t
ngx_http_eas_console_redirect(ngx_http_request_t *r)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, r->uri.len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, r->uri.data, r->uri.len);
    p[r->uri.len] = '/';

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Location");
    h->value.data = p;
    h->value.len = r->uri.len + 1;

    r->headers_out.location = h;

    return NGX_HTTP_MOVED_PERMANENTLY;
}


static ngx_int_t
ngx_http_eas_console_send(ngx_http_request_t *r, ngx_str_t *type,
    u_char *data, size_t len)
{
    if (ngx_http_eas_console_header(r, "Content-Security-Policy",
                                    NGX_HTTP_EAS_CONSOLE_CSP)
           != NGX_OK
        || ngx_http_eas_console_header(r, "X-Content-Type-Options",
                                       "nosniff")
           != NGX_OK
        || ngx_http_eas_console_header(r, "X-Frame-Options", "DENY")
           != NGX_OK
        || ngx_http_eas_console_header(r, "Referrer-Policy", "no-referrer")
           != NGX_OK
        || ngx_http_eas_console_header(r, "Cache-Control", "no-store")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_send(r, NGX_HTTP_OK, type, data, len);
}


static ngx_int_t
ngx_http_eas_console_header(ngx_http_request_t *r, char *key, char *value)
{
    ngx_str_t  name, text;

    name.data = (u_char *) key;
    name.len = ngx_strlen(key);
    text.data = (u_char *) value;
    text.len = ngx_strlen(value);

    return ngx_http_eas_answer_header(r, &name, &text);
}


/*
 * The API's rule against cross-site request forgery and DNS rebinding:
 * a POST or DELETE needs "X-EAS-Admin: 1", a header no form and no page
 * of another origin can send without the API's consent (a browser asks
 * first with OPTIONS, which the API refuses); a Host that is a name the
 * server is known as (a rebound name sends its own); and a browser's
 * own word on where the request comes from (Sec-Fetch-Site, Origin)
 * must name this server, never compared with Host, which the client
 * writes.  NGX_DECLINED: refused, *why says why.
 */

ngx_int_t
ngx_http_eas_console_csrf(ngx_http_request_t *r, ngx_array_t *origins,
    const char **why)
{
    ngx_str_t         name;
    ngx_table_elt_t  *h;

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))) {
        return NGX_OK;
    }

    ngx_str_set(&name, "X-EAS-Admin");
    h = ngx_http_eas_header_find(&r->headers_in.headers, &name);

    if (h == NULL || h->value.len != 1 || h->value.data[0] != '1') {
        *why = "without the header \"X-EAS-Admin: 1\"";
        return NGX_DECLINED;
    }

    ngx_str_set(&name, "Sec-Fetch-Site");
    h = ngx_http_eas_header_find(&r->headers_in.headers, &name);

    if (h && !(h->value.len == 11
               && ngx_strncasecmp(h->value.data, (u_char *) "same-origin",
                                  11) == 0)
          && !(h->value.len == 4
               && ngx_strncasecmp(h->value.data, (u_char *) "none", 4) == 0))
    {
        *why = "from another site (Sec-Fetch-Site)";
        return NGX_DECLINED;
    }

    if (r->headers_in.server.len
        && ngx_http_eas_console_known(r, &r->headers_in.server, origins)
           != NGX_OK)
    {
        *why = "for a host name the server is not known as (Host)";
        return NGX_DECLINED;
    }

    ngx_str_set(&name, "Origin");
    h = ngx_http_eas_header_find(&r->headers_in.headers, &name);

    if (h && ngx_http_eas_console_origin(r, &h->value, origins) != NGX_OK) {
        *why = "from another origin (Origin)";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * An Origin the server is known as: one of "eas_admin origin=" as it is
 * written, or the connection's scheme (https if and only if TLS), a host
 * that is one of the server's exact server_name or the local address the
 * connection came in on, and the local port (absent if the scheme's
 * default).
 */

static ngx_int_t
ngx_http_eas_console_origin(ngx_http_request_t *r, ngx_str_t *origin,
    ngx_array_t *origins)
{
    u_char      *p, *last, *colon;
    ngx_str_t    host, *o;
    ngx_int_t    port;
    ngx_uint_t   i, tls, dflt;

    if (origins) {
        o = origins->elts;

        for (i = 0; i < origins->nelts; i++) {
            if (o[i].len == origin->len
                && ngx_strncasecmp(o[i].data, origin->data, origin->len) == 0)
            {
                return NGX_OK;
            }
        }
    }

    tls = 0;

#if (NGX_HTTP_SSL)
    tls = (r->connection->ssl != NULL);
#endif

    p = origin->data;
    last = origin->data + origin->len;

    if (tls && origin->len > 8
        && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
    {
        p += 8;
        dflt = 443;

    } else if (!tls && origin->len > 7
               && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0)
    {
        p += 7;
        dflt = 80;

    } else {
        return NGX_DECLINED;   /* "null", a file, the other scheme */
    }

    /* host, [v6] or name, then :port */

    colon = NULL;

    if (*p == '[') {
        colon = ngx_strlchr(p, last, ']');
        if (colon == NULL) {
            return NGX_DECLINED;
        }

        colon++;

        if (colon < last && *colon != ':') {
            return NGX_DECLINED;
        }

        if (colon == last) {
            colon = NULL;
        }

    } else {
        colon = ngx_strlchr(p, last, ':');
    }

    host.data = p;
    host.len = (colon ? colon : last) - p;

    if (colon) {
        port = ngx_atoi(colon + 1, last - colon - 1);

        if (port == NGX_ERROR) {
            return NGX_DECLINED;
        }

    } else {
        port = dflt;
    }

    if (port != ngx_http_eas_console_port(r)) {
        return NGX_DECLINED;
    }

    return ngx_http_eas_console_known(r, &host, NULL);
}


/* the local port of the connection */

static ngx_int_t
ngx_http_eas_console_port(ngx_http_request_t *r)
{
    if (ngx_connection_local_sockaddr(r->connection, NULL, 0) != NGX_OK) {
        return -1;
    }

    return ngx_inet_get_port(r->connection->local_sockaddr);
}


/*
 * A host (as in Host, without its port) the server is known as: one of
 * its exact server_name (no wildcard, no regular expression), the local
 * address the connection came in on, or the host of an "origin=".
 */

static ngx_int_t
ngx_http_eas_console_known(ngx_http_request_t *r, ngx_str_t *host,
    ngx_array_t *origins)
{
    u_char                    *p, *last;
    size_t                     len;
    ngx_str_t                  h, *o;
    ngx_uint_t                 i;
    ngx_http_server_name_t    *sn;
    ngx_http_core_srv_conf_t  *cscf;
    u_char                     addr[NGX_SOCKADDR_STRLEN];

    h = *host;

    if (h.len > 2 && h.data[0] == '[' && h.data[h.len - 1] == ']') {
        h.data++;
        h.len -= 2;
    }

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    sn = cscf->server_names.elts;

    for (i = 0; i < cscf->server_names.nelts; i++) {
#if (NGX_PCRE)
        if (sn[i].regex) {
            continue;
        }
#endif

        if (sn[i].name.len == 0
            || ngx_strlchr(sn[i].name.data,
                           sn[i].name.data + sn[i].name.len, '*')
            || sn[i].name.data[0] == '.')
        {
            continue;
        }

        if (sn[i].name.len == host->len
            && ngx_strncasecmp(sn[i].name.data, host->data, host->len) == 0)
        {
            return NGX_OK;
        }
    }

    if (ngx_connection_local_sockaddr(r->connection, NULL, 0) == NGX_OK) {
        len = ngx_sock_ntop(r->connection->local_sockaddr,
                            r->connection->local_socklen, addr,
                            NGX_SOCKADDR_STRLEN, 0);

        if (len == h.len && ngx_strncasecmp(addr, h.data, len) == 0) {
            return NGX_OK;
        }
    }

    if (origins == NULL) {
        return NGX_DECLINED;
    }

    o = origins->elts;

    for (i = 0; i < origins->nelts; i++) {

        /* "scheme://host[:port]", checked by ..._origin_conf() */

        p = ngx_strlchr(o[i].data, o[i].data + o[i].len, '/') + 2;
        last = o[i].data + o[i].len;

        if (*p == '[') {
            last = ngx_strlchr(p, last, ']') + 1;

        } else if (ngx_strlchr(p, last, ':')) {
            last = ngx_strlchr(p, last, ':');
        }

        if ((size_t) (last - p) == host->len
            && ngx_strncasecmp(p, host->data, host->len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * "origin=URL" of eas_admin: http[s]://host[:port], a trailing "/"
 * allowed, nothing else; kept lower case, the scheme's default port
 * dropped, as a browser writes Origin.
 */

ngx_int_t
ngx_http_eas_console_origin_conf(ngx_pool_t *pool, ngx_str_t *url,
    ngx_str_t *origin)
{
    u_char     *p, *last, *host, *colon, *out;
    size_t      scheme;
    ngx_int_t   port;

    p = url->data;
    last = url->data + url->len;

    if (last > p && last[-1] == '/') {
        last--;
    }

    if (url->len > 8 && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0) {
        scheme = 8;

    } else if (url->len > 7
               && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0)
    {
        scheme = 7;

    } else {
        return NGX_ERROR;
    }

    host = p + scheme;
    colon = NULL;

    if (host < last && *host == '[') {
        for (p = host + 1; p < last && *p != ']'; p++) {
            if (!((*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a'
                  && (*p | 0x20) <= 'f') || *p == ':' || *p == '.'))
            {
                return NGX_ERROR;
            }
        }

        if (p == last || p == host + 1) {
            return NGX_ERROR;
        }

        p++;

    } else {
        for (p = host; p < last && *p != ':'; p++) {
            if (!((*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a'
                  && (*p | 0x20) <= 'z') || *p == '.' || *p == '-'))
            {
                return NGX_ERROR;
            }
        }

        if (p == host) {
            return NGX_ERROR;
        }
    }

    if (p < last) {
        if (*p != ':') {
            return NGX_ERROR;
        }

        colon = p;
        port = ngx_atoi(p + 1, last - p - 1);

        if (port < 1 || port > 65535) {
            return NGX_ERROR;
        }

        if (port == (scheme == 8 ? 443 : 80)) {
            last = colon;            /* a browser leaves it out */
        }
    }

    out = ngx_pnalloc(pool, last - url->data);
    if (out == NULL) {
        return NGX_ERROR;
    }

    origin->data = out;
    origin->len = last - url->data;

    ngx_strlow(out, url->data, origin->len);

    return NGX_OK;
}
