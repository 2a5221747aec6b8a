
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
 * Step 4 of the request flow (docs/directpush.md): a Ping or Sync body
 * is read and scanned for its interval, an out-of-range interval is
 * answered at the edge as Exchange answers it, and the upstream read
 * timeout of the request is set to what it needs (by the peer-init
 * wrapper of ngx_http_eas_upstream.c, see docs/longpoll-timeouts.md).
 * Held requests are listed per worker: a Ping is answered as expired
 * when the worker shuts down, when a newer Ping of the device
 * supersedes it, or when its backend outstays the time it was given.
 */


#define NGX_HTTP_EAS_LONGPOLL_READING  1
#define NGX_HTTP_EAS_LONGPOLL_DONE     2


static void ngx_http_eas_longpoll_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_longpoll_decide(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);
static ngx_int_t ngx_http_eas_longpoll_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_eas_longpoll_range(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, eas_longpoll_t *lp);
static void ngx_http_eas_longpoll_unknown(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_uint_t source);
static void ngx_http_eas_longpoll_remember(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);


static ngx_str_t  ngx_http_eas_heartbeat_sources[] = {
    ngx_null_string,
    ngx_string("body"),
    ngx_string("remembered"),
    ngx_string("default"),
    ngx_string("unread"),
    ngx_string("malformed"),
    ngx_string("out_of_range")
};


static ngx_str_t  ngx_http_eas_out_of_range_reason =
    ngx_string("heartbeat_out_of_range");


/*
 * A precontent-phase handler: access checks (pre-authentication, device
 * rules) have run, so an unauthenticated request never gets its body
 * read.  The body is read as the mirror module does: NGX_DONE now, the
 * body handler resumes the phases; r->preserve_body keeps it for
 * proxy_pass, which forwards it byte for byte.
 */

ngx_int_t
ngx_http_eas_longpoll_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_eas_ctx_t            *ctx;
    ngx_http_eas_loc_conf_t       *elcf;
    ngx_http_eas_longpoll_conf_t  *lpcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    lpcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_longpoll_module);

    if (!elcf->enable || !lpcf->longpoll || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->parsed
        || (ctx->request.command != EAS_CMD_PING
            && ctx->request.command != EAS_CMD_SYNC))
    {
        return NGX_DECLINED;
    }

    if (ctx->longpoll_state == NGX_HTTP_EAS_LONGPOLL_DONE) {
        return NGX_DECLINED;
    }

    if (ctx->longpoll_state == NGX_HTTP_EAS_LONGPOLL_READING) {
        return NGX_DONE;
    }

    ctx->longpoll = 1;

    /* a body over the cap is never read here: proxy_pass streams it */

    if (r->headers_in.content_length_n > (off_t) lpcf->longpoll_body_max) {
        ngx_http_eas_longpoll_unknown(r, ctx, NGX_HTTP_EAS_HB_UNREAD);
        ctx->longpoll_state = NGX_HTTP_EAS_LONGPOLL_DONE;

        return ngx_http_eas_longpoll_hold(r);
    }

    ctx->longpoll_state = NGX_HTTP_EAS_LONGPOLL_READING;

    rc = ngx_http_eas_body_read(r, lpcf->longpoll_body_max,
                                ngx_http_eas_longpoll_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_eas_longpoll_body_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    ctx->longpoll_state = NGX_HTTP_EAS_LONGPOLL_DONE;

    r->preserve_body = 1;

    rc = ngx_http_eas_longpoll_decide(r, ctx);

    if (rc == NGX_DECLINED && ctx->longpoll) {
        rc = ngx_http_eas_longpoll_hold(r);
    }

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/* NGX_DECLINED: forward; anything else: the request is answered here */

static ngx_int_t
ngx_http_eas_longpoll_decide(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx)
{
    ngx_int_t          rc;
    ngx_str_t          body;
    eas_longpoll_t     lp;
    eas_wbxml_root_e   root;

    rc = ngx_http_eas_longpoll_body(r, &body);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_eas_longpoll_unknown(r, ctx, NGX_HTTP_EAS_HB_UNREAD);
        return NGX_DECLINED;
    }

    if (body.len == 0) {
        /* an empty Ping or Sync replays the device's cached request */
        ngx_http_eas_longpoll_unknown(r, ctx, NGX_HTTP_EAS_HB_DEFAULT);
        return NGX_DECLINED;
    }

    root = (ctx->request.command == EAS_CMD_PING) ? EAS_WBXML_ROOT_PING
                                                  : EAS_WBXML_ROOT_SYNC;

    if (eas_wbxml_scan(body.data, body.len, root, &lp) != EAS_OK) {

        /*
         * The backend answers a malformed body at once (Ping Status 4,
         * Sync Status 4 or 400), as Exchange would: forward it, held
         * no longer than an unknown interval.
         */

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: %s body not understood (%s at byte %uz), "
                      "forwarded", ngx_http_eas_command(ctx),
                      eas_wbxml_error_name(lp.error), lp.offset);

        ngx_http_eas_longpoll_unknown(r, ctx, NGX_HTTP_EAS_HB_MALFORMED);
        return NGX_DECLINED;
    }

    if (!lp.has_heartbeat && !lp.has_wait) {

        if (ctx->request.command == EAS_CMD_SYNC) {
            /* a Sync with a body and no interval is an ordinary command */
            ctx->longpoll = 0;
            return NGX_DECLINED;
        }

        ngx_http_eas_longpoll_unknown(r, ctx, NGX_HTTP_EAS_HB_DEFAULT);
        return NGX_DECLINED;
    }

    return ngx_http_eas_longpoll_range(r, ctx, &lp);
}


/*
 * The body as one contiguous buffer: in place when it is one memory
 * buffer, else copied into one; a chunked HTTP/1.x body is the decoded
 * copy of its start (ngx_http_eas_body.c).  NGX_DECLINED when it was
 * written to a temporary file or is larger than the cap.
 */

static ngx_int_t
ngx_http_eas_longpoll_body(ngx_http_request_t *r, ngx_str_t *body)
{
    size_t                         len;
    u_char                        *p;
    ngx_buf_t                     *b;
    ngx_chain_t                   *cl;
    ngx_http_eas_longpoll_conf_t  *lpcf;

    ngx_str_null(body);

    switch (ngx_http_eas_body_peeked(r, body)) {

    case NGX_OK:
        return NGX_OK;

    case NGX_ABORT:
        return NGX_DECLINED;

    default: /* NGX_DECLINED */
        break;
    }

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    if (r->request_body->temp_file) {
        return NGX_DECLINED;
    }

    lpcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_longpoll_module);

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file && !ngx_buf_in_memory(b)) {
            return NGX_DECLINED;
        }

        len += b->last - b->pos;
    }

    if (len > lpcf->longpoll_body_max) {
        return NGX_DECLINED;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL) {
        body->data = cl->buf->pos;
        body->len = len;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for ( /* void */ ; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


/*
 * The range check of docs/protocol.md 5.3 and 6.2: HeartbeatInterval in
 * seconds against eas_heartbeat_min/max, Sync Wait in minutes against
 * the same bounds rounded inwards to whole minutes (1..59).
 */

static ngx_int_t
ngx_http_eas_longpoll_range(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    eas_longpoll_t *lp)
{
    size_t                         len;
    u_char                        *out;
    uint32_t                       value, min, max, bound;
    ngx_http_eas_longpoll_conf_t  *lpcf;

    lpcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_longpoll_module);

    if (lp->has_heartbeat) {
        value = lp->heartbeat;
        min = (uint32_t) lpcf->heartbeat_min;
        max = (uint32_t) lpcf->heartbeat_max;

    } else {
        value = lp->wait;
        min = (uint32_t) ((lpcf->heartbeat_min + 59) / 60);
        max = (uint32_t) (lpcf->heartbeat_max / 60);
        min = ngx_max(min, 1);
        max = ngx_min(ngx_max(max, 1), 59);
    }

    if (value >= min && value <= max) {
        ctx->heartbeat = lp->has_heartbeat ? (time_t) value
                                           : (time_t) value * 60;
        ctx->heartbeat_source = NGX_HTTP_EAS_HB_BODY;

        ngx_http_eas_longpoll_remember(r, ctx);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas %s held for %T s (body)",
                       ngx_http_eas_command(ctx), ctx->heartbeat);

        return NGX_DECLINED;
    }

    bound = (value < min) ? min : max;

    /* $eas_heartbeat is in seconds, a Wait in minutes */
    ctx->heartbeat = lp->has_heartbeat ? (time_t) value
                                       : (time_t) value * 60;
    ctx->heartbeat_source = NGX_HTTP_EAS_HB_OUT_OF_RANGE;
    ctx->reason = ngx_http_eas_out_of_range_reason;
    ctx->longpoll = 0;

    /* a body only peeked at is still unread: it must not stay behind */

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    out = ngx_pnalloc(r->pool, EAS_WBXML_RESPONSE_MAX);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->request.command == EAS_CMD_PING) {
        len = eas_wbxml_ping_response(EAS_PING_STATUS_OUT_OF_RANGE, bound,
                                      out, EAS_WBXML_RESPONSE_MAX);

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: Ping HeartbeatInterval %uD out of range "
                      "%uD..%uD, answered Status 5 with %uD",
                      value, min, max, bound);

    } else {
        len = eas_wbxml_sync_response(EAS_SYNC_STATUS_OUT_OF_RANGE, bound,
                                      out, EAS_WBXML_RESPONSE_MAX);

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: Sync %s %uD out of range %uD..%uD, "
                      "answered Status 14 with Limit %uD",
                      lp->has_heartbeat ? "HeartbeatInterval" : "Wait",
                      value, min, max, bound);
    }

    return ngx_http_eas_longpoll_answer(r, out, len);
}


/* 200, application/vnd.ms-sync.wbxml, the body: as Exchange answers */

ngx_int_t
ngx_http_eas_longpoll_answer(ngx_http_request_t *r, u_char *data,
    size_t len)
{
    return ngx_http_eas_answer_wbxml(r, data, len);
}


/*
 * No interval in the body: the backend replays the device's cached
 * request, so the interval is the one the device asked for last,
 * remembered in its record of the device zone (shared by every worker,
 * kept over reloads); unknown means the maximum for a Ping, and an
 * ordinary command for an empty Sync (nothing says it waits).  A
 * malformed or unread body is never assumed to replay anything: the
 * maximum.  What the backend replays is its own cache, which may hold
 * another interval than the one remembered here: the read timeout of
 * such a request covers the maximum (ngx_http_eas_longpoll_limit()).
 */

static void
ngx_http_eas_longpoll_unknown(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_uint_t source)
{
    ngx_str_t                      user, device_id;
    ngx_shm_zone_t                *zone;
    ngx_http_eas_device_t          dev;
    ngx_http_eas_longpoll_conf_t  *lpcf;

    lpcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_longpoll_module);
    zone = ngx_http_eas_devices_zone(r);

    ctx->heartbeat = lpcf->heartbeat_max;
    ctx->heartbeat_source = source;

    /* the record is copied onto the stack: nothing stays in the pool */

    if (source == NGX_HTTP_EAS_HB_DEFAULT && zone
        && ngx_http_eas_longpoll_device(r, ctx, &user, &device_id) == NGX_OK)
    {
        if (ngx_http_eas_device_lookup(zone, &user, &device_id, &dev)
            == NGX_OK
            && dev.heartbeat != 0)
        {
            /* remembered under other bounds: still within today's */

            ctx->heartbeat = ngx_max((time_t) dev.heartbeat,
                                     lpcf->heartbeat_min);
            ctx->heartbeat = ngx_min(ctx->heartbeat, lpcf->heartbeat_max);
            ctx->heartbeat_source = NGX_HTTP_EAS_HB_REMEMBERED;
        }
    }

    if (ctx->heartbeat_source == NGX_HTTP_EAS_HB_DEFAULT
        && ctx->request.command == EAS_CMD_SYNC)
    {
        ctx->heartbeat = 0;
        ctx->heartbeat_source = NGX_HTTP_EAS_HB_NONE;
        ctx->longpoll = 0;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas empty Sync with no remembered interval: "
                       "an ordinary command");
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas %s held for up to %T s (no interval in the body)",
                   ngx_http_eas_command(ctx), ctx->heartbeat);
}


static void
ngx_http_eas_longpoll_remember(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx)
{
    ngx_str_t        user, device_id;
    ngx_shm_zone_t  *zone;

    zone = ngx_http_eas_devices_zone(r);

    if (zone == NULL) {
        return;
    }

    if (ngx_http_eas_longpoll_device(r, ctx, &user, &device_id) != NGX_OK) {
        return;
    }

    if (ngx_http_eas_device_set_heartbeat(zone, &user, &device_id,
                                          (ngx_uint_t) ctx->heartbeat)
        != NGX_OK)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas heartbeat not remembered: no device record");
    }
}


/* the key of the device record: identity + DeviceId */

ngx_int_t
ngx_http_eas_longpoll_device(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_str_t *user, ngx_str_t *device_id)
{
    device_id->data = (u_char *) ctx->request.device_id.data;
    device_id->len = ctx->request.device_id.len;

    return ngx_http_eas_identity(r, ctx, user);
}


/*
 * The timeout the backend may stay silent for this request: a long-poll
 * its interval plus the margin, anything else eas_command_timeout.
 * A held Ping is answered as expired by the sweep at that limit; its
 * upstream read timeout comes two sweeps later, so the sweep always
 * answers first and the device never sees 504.  0: not an ActiveSync
 * request of an "eas_longpoll on" location, leave it alone.
 */

ngx_msec_t
ngx_http_eas_longpoll_read_timeout(ngx_http_request_t *r)
{
    ngx_msec_t                     timeout;
    ngx_http_eas_ctx_t            *ctx;
    ngx_http_eas_loc_conf_t       *elcf;
    ngx_http_eas_longpoll_conf_t  *lpcf;

    if (r != r->main) {
        return 0;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    lpcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_longpoll_module);

    if (!elcf->enable || !lpcf->longpoll) {
        return 0;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL) {
        return 0;
    }

    if (!ctx->longpoll) {
        return lpcf->command_timeout;
    }

    timeout = ngx_http_eas_longpoll_limit(ctx, lpcf);

    if (ctx->request.command == EAS_CMD_PING) {
        timeout += 2 * NGX_HTTP_EAS_SWEEP_INTERVAL;
    }

    return timeout;
}


/*
 * An interval the body states is the one the backend holds the request
 * for.  Without one the backend replays what it cached itself, which
 * may be another interval than the gateway remembered (SOGo refreshes
 * its cache only when the folder list changes); every interval it can
 * have cached went through the range check: the maximum covers it.
 */

ngx_msec_t
ngx_http_eas_longpoll_limit(ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_longpoll_conf_t *lpcf)
{
    time_t  interval;

    interval = (ctx->heartbeat_source == NGX_HTTP_EAS_HB_BODY)
               ? ctx->heartbeat : lpcf->heartbeat_max;

    return (ngx_msec_t) interval * 1000 + lpcf->longpoll_margin;
}


ngx_int_t
ngx_http_eas_heartbeat_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char              *p;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->heartbeat_source == NGX_HTTP_EAS_HB_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%T", ctx->heartbeat) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


ngx_int_t
ngx_http_eas_heartbeat_source_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t           *s;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->heartbeat_source == NGX_HTTP_EAS_HB_NONE
        || ctx->heartbeat_source > NGX_HTTP_EAS_HB_OUT_OF_RANGE)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    s = &ngx_http_eas_heartbeat_sources[ctx->heartbeat_source];

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}
