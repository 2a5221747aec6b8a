
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_longpoll.h"
#include "ngx_http_eas_metrics.h"
#include "eas_wbxml.h"


/*
 * What the backend answered (docs/operations.md "Backend verdicts"):
 * its HTTP verdict (449 provisioning needed, 401, 403, 451 redirect,
 * 503) and, for a WBXML response of a command whose response has one,
 * the top-level EAS Status, read as the first bytes go by.  A copy of
 * at most NGX_HTTP_EAS_VERDICT_PEEK bytes is kept until the status is
 * known; every buffer goes on to the next filter at once, unchanged:
 * nothing is held back, nothing delayed.  $eas_backend_status and
 * $eas_backend_status_name show it, the metrics count it.
 *
 * A backend's own Ping Status 5 or Sync Status 14 names its heartbeat
 * limit; one outside the gateway's eas_heartbeat_min..max makes devices
 * go back and forth between the two limits for ever: that is logged as
 * a warning naming both settings, once per worker and limit an hour.
 */


#define NGX_HTTP_EAS_VERDICT_PEEK  64

/* a warning repeats after this many seconds for the same limit */
#define NGX_HTTP_EAS_VERDICT_WARN  3600


typedef struct {
    ngx_uint_t                http;          /* the backend's status */
    eas_wbxml_status_t        st;
    size_t                    len;
    unsigned                  peeking:1;
    unsigned                  counted:1;
    u_char                    prefix[NGX_HTTP_EAS_VERDICT_PEEK];
} ngx_http_eas_verdict_t;


static ngx_int_t ngx_http_eas_verdict_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_verdict_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_eas_verdict_read(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_verdict_t *v, ngx_buf_t *b);
static void ngx_http_eas_verdict_limit(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_verdict_t *v);
static ngx_http_eas_verdict_t *ngx_http_eas_verdict_get(
    ngx_http_request_t *r);
static const char *ngx_http_eas_verdict_http_name(ngx_uint_t status);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/* the HTTP verdicts, indexed like the metrics' "verdict" counters */
static ngx_uint_t  ngx_http_eas_verdict_codes[NGX_HTTP_EAS_M_VERDICTS] = {
    449, 401, 403, 451, 503
};


ngx_int_t
ngx_http_eas_verdict_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_eas_verdict_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_eas_verdict_body_filter;

    return NGX_OK;
}


/* only an answer a backend sent: not nginx's own 502, not the edge's */

static ngx_int_t
ngx_http_eas_verdict_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                i, status, peeking;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_verdict_t   *v;
    ngx_http_eas_loc_conf_t  *elcf;

    if (r != r->main || r->upstream == NULL
        || r->upstream->headers_in.status_n == 0)
    {
        return ngx_http_next_header_filter(r);
    }

    status = r->upstream->headers_in.status_n;

    /* a compressed body cannot be read on the fly: not peeked at */

    peeking = (status == NGX_HTTP_OK && !r->header_only
               && r->headers_out.content_encoding == NULL
               && r->headers_out.content_type.len
                  >= sizeof("application/vnd.ms-sync.wbxml") - 1
               && ngx_strncasecmp(r->headers_out.content_type.data,
                                  (u_char *) "application/vnd.ms-sync.wbxml",
                                  sizeof("application/vnd.ms-sync.wbxml") - 1)
                  == 0);

    /*
     * a record only for what it can tell: a body to read or one of the
     * verdicts; any other answer has no backend status to show or count
     */

    if (!peeking) {
        /* every verdict is 401 or above */

        if (status < NGX_HTTP_UNAUTHORIZED) {
            return ngx_http_next_header_filter(r);
        }

        for (i = 0; i < NGX_HTTP_EAS_M_VERDICTS; i++) {
            if (status == ngx_http_eas_verdict_codes[i]) {
                break;
            }
        }

        if (i == NGX_HTTP_EAS_M_VERDICTS) {
            return ngx_http_next_header_filter(r);
        }
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    ctx = ngx_http_eas_get_ctx(r);

    if (!elcf->enable || ctx == NULL || !ctx->parsed) {
        return ngx_http_next_header_filter(r);
    }

    v = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_verdict_t));
    if (v == NULL) {
        return NGX_ERROR;
    }

    v->http = status;
    v->peeking = peeking;
    ctx->verdict = v;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_eas_verdict_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t             *cl;
    ngx_http_eas_ctx_t      *ctx;
    ngx_http_eas_verdict_t  *v;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_eas_module);

    if (ctx == NULL || ctx->verdict == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    v = ctx->verdict;

    for (cl = in; cl && v->peeking; cl = cl->next) {
        ngx_http_eas_verdict_read(r, ctx, v, cl->buf);
    }

    return ngx_http_next_body_filter(r, in);
}


static void
ngx_http_eas_verdict_read(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_verdict_t *v, ngx_buf_t *b)
{
    size_t     n;
    ngx_int_t  rc;

    if (!ngx_buf_in_memory(b)) {

        /* a body gone to a temporary file is not read back for this */

        if (ngx_buf_size(b)) {
            v->peeking = 0;
        }

        return;
    }

    n = ngx_min((size_t) (b->last - b->pos),
                NGX_HTTP_EAS_VERDICT_PEEK - v->len);

    if (n) {
        ngx_memcpy(v->prefix + v->len, b->pos, n);
        v->len += n;
    }

    rc = eas_wbxml_top_status(v->prefix, v->len, ctx->request.command,
                              &v->st);

    if (rc == EAS_AGAIN && v->len < NGX_HTTP_EAS_VERDICT_PEEK
        && !b->last_buf && !b->last_in_chain)
    {
        return;
    }

    v->peeking = 0;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas backend status: %i, %uD after %uz bytes", rc,
                   v->st.has_status ? v->st.status : 0, v->len);

    if (rc == EAS_ERROR) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas backend response not read: %s at byte %uz",
                       eas_wbxml_error_name(v->st.error), v->st.offset);
        v->st.has_status = 0;
    }

    if (v->st.has_limit) {
        ngx_http_eas_verdict_limit(r, ctx, v);
    }
}


/*
 * The backend refused a heartbeat and named its own limit: if the
 * gateway's range does not reach it, a device told "at least min" by
 * one and "at most limit" by the other can never settle.
 */

static void
ngx_http_eas_verdict_limit(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_verdict_t *v)
{
    const char                    *cmd;
    ngx_http_eas_longpoll_conf_t  *lpcf;

    static time_t                  warned;
    static uint32_t                warned_limit;

    lpcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_longpoll_module);

    if ((time_t) v->st.limit >= lpcf->heartbeat_min
        && (time_t) v->st.limit <= lpcf->heartbeat_max)
    {
        return;
    }

    ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_BACKEND_LIMIT);

    if (v->st.limit == warned_limit
        && ngx_time() - warned < NGX_HTTP_EAS_VERDICT_WARN)
    {
        return;
    }

    warned = ngx_time();
    warned_limit = v->st.limit;

    cmd = (ctx->request.command == EAS_CMD_PING) ? "Ping" : "Sync";

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "eas: the backend answered %s Status %uD with its own "
                  "heartbeat limit %uD s, outside \"eas_heartbeat_min\" "
                  "%T s .. \"eas_heartbeat_max\" %T s: devices will go "
                  "back and forth between the two limits; set the "
                  "gateway's range to include %uD s, or the backend's "
                  "limit within it", cmd, v->st.status, v->st.limit,
                  lpcf->heartbeat_min, lpcf->heartbeat_max, v->st.limit);
}


/* the metrics of one request, from the log phase */

void
ngx_http_eas_verdict_count(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx)
{
    ngx_uint_t               i;
    ngx_http_eas_verdict_t  *v;

    v = ctx->verdict;

    if (v == NULL || v->counted) {
        return;
    }

    v->counted = 1;

    for (i = 0; i < NGX_HTTP_EAS_M_VERDICTS; i++) {
        if (v->http == ngx_http_eas_verdict_codes[i]) {
            ngx_http_eas_metrics_add(verdict[i], 1);
            break;
        }
    }

    if (v->st.has_status) {
        ngx_http_eas_metrics_add(eas_status[ngx_min(v->st.status,
                                            NGX_HTTP_EAS_M_EAS_STATUSES)], 1);
    }
}


ngx_uint_t
ngx_http_eas_verdict_code(ngx_uint_t i)
{
    return ngx_http_eas_verdict_codes[i];
}


static ngx_http_eas_verdict_t *
ngx_http_eas_verdict_get(ngx_http_request_t *r)
{
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    return ctx ? ctx->verdict : NULL;
}


/*
 * $eas_backend_status: the top-level EAS Status when the response had
 * one, else the HTTP status when it is one of the verdicts; its name:
 * MS-ASCMD's for a common status, a word for an HTTP verdict.
 */

ngx_int_t
ngx_http_eas_backend_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *vv, uintptr_t data)
{
    u_char                  *p;
    ngx_uint_t               i, status;
    const char              *name;
    ngx_http_eas_verdict_t  *v;

    v = ngx_http_eas_verdict_get(r);

    vv->not_found = 1;

    if (v == NULL) {
        return NGX_OK;
    }

    if (v->st.has_status) {
        status = v->st.status;
        name = eas_status_name(status);

    } else {
        for (i = 0; i < NGX_HTTP_EAS_M_VERDICTS; i++) {
            if (v->http == ngx_http_eas_verdict_codes[i]) {
                break;
            }
        }

        if (i == NGX_HTTP_EAS_M_VERDICTS) {
            return NGX_OK;
        }

        status = v->http;
        name = ngx_http_eas_verdict_http_name(status);
    }

    if (data == 1) {
        if (name == NULL) {
            return NGX_OK;
        }

        vv->data = (u_char *) name;
        vv->len = ngx_strlen(name);

    } else {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        vv->data = p;
        vv->len = ngx_sprintf(p, "%ui", status) - p;
    }

    vv->valid = 1;
    vv->no_cacheable = 1;
    vv->not_found = 0;

    return NGX_OK;
}


/* MS-ASHTTP's meaning of each, as one word */

static const char *
ngx_http_eas_verdict_http_name(ngx_uint_t status)
{
    switch (status) {

    case 449:
        return "ProvisioningRequired";

    case 401:
        return "Unauthorized";

    case 403:
        return "Forbidden";

    case 451:
        return "Redirect";

    case 503:
        return "ServiceUnavailable";

    default:
        return NULL;
    }
}
