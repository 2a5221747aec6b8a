
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"
#include "eas_wbxml.h"


/*
 * Step 4 of the request flow (docs/directpush.md): a Ping or Sync body
 * is read and scanned for its interval, an out-of-range interval is
 * answered at the edge as Exchange answers it, and the upstream read
 * timeout of the request is set to what it needs (see
 * docs/longpoll-timeouts.md for why a per-request copy of the upstream
 * settings, made by a peer-init wrapper, is the mechanism).
 */


#define NGX_HTTP_EAS_LONGPOLL_READING  1
#define NGX_HTTP_EAS_LONGPOLL_DONE     2

/* the canonical command name is static and NUL-terminated */
#define ngx_http_eas_command(ctx)  ((char *) (ctx)->request.command_name.data)


/*
 * Held long-polls of this worker, so that a worker that is shutting
 * down (reload, SIGQUIT) can answer them at once, and a Ping superseded
 * by a newer one of the same device (on any worker) is ended.  Per
 * process: each worker has its own copy after fork; the timer is armed
 * lazily.
 */
typedef struct {
    ngx_queue_t                       held;
    ngx_event_t                       sweep;
    ngx_uint_t                        sweeps;     /* counted */
    unsigned                          initialized:1;
} ngx_http_eas_longpoll_worker_t;


typedef struct {
    ngx_queue_t                       queue;
    ngx_http_request_t               *request;
} ngx_http_eas_held_t;


typedef struct {
    ngx_flag_t                        enabled;
    ngx_http_upstream_init_pt         original_init_upstream;
    ngx_http_upstream_init_peer_pt    original_init_peer;
} ngx_http_eas_upstream_srv_conf_t;


static void ngx_http_eas_longpoll_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_longpoll_decide(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_loc_conf_t *elcf);
static ngx_int_t ngx_http_eas_longpoll_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_eas_longpoll_range(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_loc_conf_t *elcf,
    eas_longpoll_t *lp);
static ngx_int_t ngx_http_eas_longpoll_answer(ngx_http_request_t *r,
    u_char *data, size_t len);
static void ngx_http_eas_longpoll_unknown(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_loc_conf_t *elcf,
    ngx_uint_t source);
static ngx_int_t ngx_http_eas_longpoll_hold(ngx_http_request_t *r);
static void ngx_http_eas_longpoll_unhold(void *data);
static void ngx_http_eas_longpoll_generation(ngx_http_request_t *r);
static void ngx_http_eas_longpoll_sweep(ngx_event_t *ev);
static ngx_uint_t ngx_http_eas_longpoll_superseded(ngx_http_request_t *r,
    ngx_uint_t sweep);
static ngx_int_t ngx_http_eas_longpoll_release(ngx_http_request_t *r,
    ngx_str_t *reason, const char *why);
static void ngx_http_eas_longpoll_remember(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_loc_conf_t *elcf);
static void ngx_http_eas_longpoll_device(ngx_http_eas_ctx_t *ctx,
    ngx_str_t *user, ngx_str_t *device_id);
static ngx_int_t ngx_http_eas_upstream_init(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_eas_upstream_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);


extern ngx_module_t  ngx_http_proxy_module;


static ngx_str_t  ngx_http_eas_heartbeat_sources[] = {
    ngx_null_string,
    ngx_string("body"),
    ngx_string("remembered"),
    ngx_string("default"),
    ngx_string("unread"),
    ngx_string("malformed"),
    ngx_string("out_of_range")
};


#define NGX_HTTP_EAS_SWEEP_INTERVAL  1000

static ngx_http_eas_longpoll_worker_t  ngx_http_eas_longpoll_worker;


static ngx_str_t  ngx_http_eas_out_of_range_reason =
    ngx_string("heartbeat_out_of_range");
static ngx_str_t  ngx_http_eas_shutdown_reason =
    ngx_string("worker_shutdown");
static ngx_str_t  ngx_http_eas_superseded_reason =
    ngx_string("ping_superseded");


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
    ngx_int_t                 rc;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (!elcf->enable || !elcf->longpoll || r != r->main) {
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

    if (r->headers_in.content_length_n > (off_t) elcf->longpoll_body_max) {
        ngx_http_eas_longpoll_unknown(r, ctx, elcf,
                                      NGX_HTTP_EAS_HB_UNREAD);
        ctx->longpoll_state = NGX_HTTP_EAS_LONGPOLL_DONE;

        return ngx_http_eas_longpoll_hold(r);
    }

    ctx->longpoll_state = NGX_HTTP_EAS_LONGPOLL_READING;

    rc = ngx_http_read_client_request_body(r,
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
    ngx_int_t                 rc;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    ctx = ngx_http_eas_get_ctx(r);
    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    ctx->longpoll_state = NGX_HTTP_EAS_LONGPOLL_DONE;

    r->preserve_body = 1;

    rc = ngx_http_eas_longpoll_decide(r, ctx, elcf);

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
ngx_http_eas_longpoll_decide(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_loc_conf_t *elcf)
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
        ngx_http_eas_longpoll_unknown(r, ctx, elcf, NGX_HTTP_EAS_HB_UNREAD);
        return NGX_DECLINED;
    }

    if (body.len == 0) {
        /* an empty Ping or Sync replays the device's cached request */
        ngx_http_eas_longpoll_unknown(r, ctx, elcf, NGX_HTTP_EAS_HB_DEFAULT);
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

        ngx_http_eas_longpoll_unknown(r, ctx, elcf,
                                      NGX_HTTP_EAS_HB_MALFORMED);
        return NGX_DECLINED;
    }

    if (!lp.has_heartbeat && !lp.has_wait) {
        ngx_http_eas_longpoll_unknown(r, ctx, elcf, NGX_HTTP_EAS_HB_DEFAULT);
        return NGX_DECLINED;
    }

    return ngx_http_eas_longpoll_range(r, ctx, elcf, &lp);
}


/*
 * The body as one contiguous buffer: in place when it is one memory
 * buffer, else copied into one.  NGX_DECLINED when it was written to a
 * temporary file or is larger than the cap (a chunked body).
 */

static ngx_int_t
ngx_http_eas_longpoll_body(ngx_http_request_t *r, ngx_str_t *body)
{
    size_t                    len;
    u_char                   *p;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_http_eas_loc_conf_t  *elcf;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    if (r->request_body->temp_file) {
        return NGX_DECLINED;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file && !ngx_buf_in_memory(b)) {
            return NGX_DECLINED;
        }

        len += b->last - b->pos;
    }

    if (len > elcf->longpoll_body_max) {
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
 * The range check of EAS-PROTOCOL.md 5.3 and 6.2: HeartbeatInterval in
 * seconds against eas_heartbeat_min/max, Sync Wait in minutes against
 * the same bounds rounded inwards to whole minutes (1..59).
 */

static ngx_int_t
ngx_http_eas_longpoll_range(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_loc_conf_t *elcf, eas_longpoll_t *lp)
{
    size_t     len;
    u_char    *out;
    uint32_t   value, min, max, bound;

    if (lp->has_heartbeat) {
        value = lp->heartbeat;
        min = (uint32_t) elcf->heartbeat_min;
        max = (uint32_t) elcf->heartbeat_max;

    } else {
        value = lp->wait;
        min = (uint32_t) ((elcf->heartbeat_min + 59) / 60);
        max = (uint32_t) (elcf->heartbeat_max / 60);
        min = ngx_max(min, 1);
        max = ngx_min(ngx_max(max, 1), 59);
    }

    if (value >= min && value <= max) {
        ctx->heartbeat = lp->has_heartbeat ? (time_t) value
                                           : (time_t) value * 60;
        ctx->heartbeat_source = NGX_HTTP_EAS_HB_BODY;

        ngx_http_eas_longpoll_remember(r, ctx, elcf);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas %s held for %T s (body)",
                       ngx_http_eas_command(ctx), ctx->heartbeat);

        return NGX_DECLINED;
    }

    bound = (value < min) ? min : max;

    ctx->heartbeat = (time_t) value;
    ctx->heartbeat_source = NGX_HTTP_EAS_HB_OUT_OF_RANGE;
    ctx->reason = ngx_http_eas_out_of_range_reason;
    ctx->longpoll = 0;

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

static ngx_int_t
ngx_http_eas_longpoll_answer(ngx_http_request_t *r, u_char *data,
    size_t len)
{
    return ngx_http_eas_answer_wbxml(r, data, len);
}


/*
 * No interval in the body: the backend replays the device's cached
 * request, so the interval is the one the device asked for last,
 * remembered in its record of the device zone (shared by every worker,
 * kept over reloads); unknown means the maximum.  A malformed or unread
 * body is never assumed to replay anything: the maximum.
 */

static void
ngx_http_eas_longpoll_unknown(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_loc_conf_t *elcf, ngx_uint_t source)
{
    ngx_str_t               user, device_id;
    ngx_http_eas_device_t  *dev;

    ctx->heartbeat = elcf->heartbeat_max;
    ctx->heartbeat_source = source;

    if (source == NGX_HTTP_EAS_HB_DEFAULT && elcf->devices) {

        dev = ngx_palloc(r->pool, sizeof(ngx_http_eas_device_t));
        if (dev == NULL) {
            return;
        }

        ngx_http_eas_longpoll_device(ctx, &user, &device_id);

        if (ngx_http_eas_device_lookup(elcf->devices, &user, &device_id, dev)
            == NGX_OK
            && dev->heartbeat != 0)
        {
            /* remembered under other bounds: still within today's */

            ctx->heartbeat = ngx_max((time_t) dev->heartbeat,
                                     elcf->heartbeat_min);
            ctx->heartbeat = ngx_min(ctx->heartbeat, elcf->heartbeat_max);
            ctx->heartbeat_source = NGX_HTTP_EAS_HB_REMEMBERED;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas %s held for up to %T s (no interval in the body)",
                   ngx_http_eas_command(ctx), ctx->heartbeat);
}


static void
ngx_http_eas_longpoll_remember(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_loc_conf_t *elcf)
{
    ngx_str_t  user, device_id;

    if (elcf->devices == NULL) {
        return;
    }

    ngx_http_eas_longpoll_device(ctx, &user, &device_id);

    if (ngx_http_eas_device_set_heartbeat(elcf->devices, &user, &device_id,
                                          (ngx_uint_t) ctx->heartbeat)
        != NGX_OK)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas heartbeat not remembered: no device record");
    }
}


/* the key of the device record: identity + DeviceId */

static void
ngx_http_eas_longpoll_device(ngx_http_eas_ctx_t *ctx, ngx_str_t *user,
    ngx_str_t *device_id)
{
    ngx_http_eas_identity(ctx, user);

    device_id->data = (u_char *) ctx->request.device_id.data;
    device_id->len = ctx->request.device_id.len;
}


/*
 * A forwarded long-poll joins the worker's list until the request is
 * freed.  NGX_DECLINED: go on; else an HTTP status.
 */

static ngx_int_t
ngx_http_eas_longpoll_hold(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_eas_held_t             *held;
    ngx_http_eas_longpoll_worker_t  *w;

    w = &ngx_http_eas_longpoll_worker;

    if (!w->initialized) {
        ngx_queue_init(&w->held);

        w->sweep.handler = ngx_http_eas_longpoll_sweep;
        w->sweep.log = ngx_cycle->log;
        w->sweep.data = w;
        w->sweep.cancelable = 1;

        w->initialized = 1;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_eas_held_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    held = cln->data;
    held->request = r;

    cln->handler = ngx_http_eas_longpoll_unhold;

    ngx_queue_insert_tail(&w->held, &held->queue);

    ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_HELD_STARTED);

    ngx_http_eas_longpoll_generation(r);

    if (!w->sweep.timer_set) {
        ngx_add_timer(&w->sweep, NGX_HTTP_EAS_SWEEP_INTERVAL);
    }

    return NGX_DECLINED;
}


static void
ngx_http_eas_longpoll_unhold(void *data)
{
    ngx_http_eas_held_t  *held = data;

    ngx_queue_remove(&held->queue);

    ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_HELD_ENDED);
}


/*
 * A Ping about to be held becomes the device's newest: its generation,
 * taken from the device record, is what the sweeps compare.  A Ping
 * whose body the gateway could not read or understand is not counted:
 * the backend answers it at once and the device's held Ping stays.
 * The request keeps the low 32 bits, in what was padding of its
 * context: a held request costs not a byte more.
 */

static void
ngx_http_eas_longpoll_generation(ngx_http_request_t *r)
{
    ngx_str_t                 user, device_id;
    ngx_uint_t                generation;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    ctx = ngx_http_eas_get_ctx(r);
    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (ctx->request.command != EAS_CMD_PING || elcf->devices == NULL
        || ctx->heartbeat_source == NGX_HTTP_EAS_HB_UNREAD
        || ctx->heartbeat_source == NGX_HTTP_EAS_HB_MALFORMED)
    {
        return;
    }

    ngx_http_eas_longpoll_device(ctx, &user, &device_id);

    if (ngx_http_eas_device_ping(elcf->devices, &user, &device_id, 1,
                                 &generation)
        != NGX_OK)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas Ping generation not counted: no device record");
        return;
    }

    ctx->ping_generation = (uint32_t) generation;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas Ping generation %ui", generation);
}


/*
 * Once a second while long-polls are held: when the worker is shutting
 * down (reload, graceful stop), every Ping not yet answered gets the
 * answer of an expired heartbeat, Status 1, so the device reconnects at
 * once, to a new worker, instead of waiting out its interval or seeing
 * worker_shutdown_timeout cut it.  A held Sync is left to the backend:
 * it may carry changes whose answer the device needs.
 *
 * Otherwise a held Ping superseded by a newer Ping of the same device,
 * on this worker or another, gets the same answer: the device has moved
 * on, and the backend may not end the older one itself.
 */

static void
ngx_http_eas_longpoll_sweep(ngx_event_t *ev)
{
    ngx_queue_t                     *q, *prev, *next;
    ngx_http_eas_held_t             *held;
    ngx_http_eas_longpoll_worker_t  *w;

    w = ev->data;

    if (ngx_exiting) {

        while (!ngx_queue_empty(&w->held)) {
            q = ngx_queue_head(&w->held);
            held = ngx_queue_data(q, ngx_http_eas_held_t, queue);

            /* off the list first: released or not, it is not ours now */

            ngx_queue_remove(q);
            ngx_queue_init(q);

            ngx_http_eas_longpoll_release(held->request,
                                          &ngx_http_eas_shutdown_reason,
                                          "worker is shutting down");
        }

        return;
    }

    w->sweeps++;

    for (q = ngx_queue_head(&w->held);
         q != ngx_queue_sentinel(&w->held);
         q = next)
    {
        next = ngx_queue_next(q);
        held = ngx_queue_data(q, ngx_http_eas_held_t, queue);

        if (!ngx_http_eas_longpoll_superseded(held->request, w->sweeps)) {
            continue;
        }

        /* off the list first: once answered, the request may be freed */

        prev = ngx_queue_prev(q);
        ngx_queue_remove(q);
        ngx_queue_init(q);

        if (ngx_http_eas_longpoll_release(held->request,
                                          &ngx_http_eas_superseded_reason,
                                          "superseded by a newer Ping")
            == NGX_OK)
        {
            continue;
        }

        /* kept where it was; its answer has started: left alone now */

        ngx_queue_insert_after(prev, q);

        ngx_http_eas_get_ctx(held->request)->ping_generation = 0;
    }

    if (!ngx_queue_empty(&w->held)) {
        ngx_add_timer(ev, NGX_HTTP_EAS_SWEEP_INTERVAL);
    }
}


/*
 * Has a newer Ping of the same device been held since?  The device
 * record is looked up (under the zone lock) only when the zone has
 * counted a Ping since the previous sweep: a quiet gateway costs a
 * pointer chase per held Ping and sweep.  The record keeps only the
 * newest generation, so any other one is older; 0 is none (a record
 * evicted and created again by another command).
 */

static ngx_uint_t
ngx_http_eas_longpoll_superseded(ngx_http_request_t *r, ngx_uint_t sweep)
{
    ngx_str_t                 user, device_id;
    ngx_uint_t                generation;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->ping_generation == 0) {
        return 0;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (!ngx_http_eas_device_pings_changed(elcf->devices, sweep)) {
        return 0;
    }

    ngx_http_eas_longpoll_device(ctx, &user, &device_id);

    if (ngx_http_eas_device_ping(elcf->devices, &user, &device_id, 0,
                                 &generation)
        != NGX_OK)
    {
        /* record evicted: nothing tells of a newer Ping */
        return 0;
    }

    return generation != 0 && (uint32_t) generation != ctx->ping_generation;
}


/*
 * Only a request still waiting for the backend's response header is
 * answered.  The upstream is finished through its own cleanup handler
 * (which closes the backend connection and finalizes the request with
 * NGX_DONE); the extra reference taken first keeps the request alive
 * for the answer that follows.
 */

static ngx_int_t
ngx_http_eas_longpoll_release(ngx_http_request_t *r, ngx_str_t *reason,
    const char *why)
{
    size_t                len;
    u_char               *out;
    ngx_int_t             rc;
    ngx_connection_t     *c;
    ngx_http_eas_ctx_t   *ctx;
    ngx_http_upstream_t  *u;

    c = r->connection;
    u = r->upstream;
    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->request.command != EAS_CMD_PING
        || u == NULL || u->cleanup == NULL || u->header_sent
        || r->header_sent)
    {
        return NGX_DECLINED;
    }

    out = ngx_pnalloc(r->pool, EAS_WBXML_RESPONSE_MAX);
    if (out == NULL) {
        return NGX_ERROR;
    }

    len = eas_wbxml_ping_response(EAS_PING_STATUS_EXPIRED, 0, out,
                                  EAS_WBXML_RESPONSE_MAX);

    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), c->log, 0,
                  "eas: held %s answered as expired: %s",
                  ngx_http_eas_command(ctx), why);

    ctx->reason = *reason;

    r->main->count++;

    (*u->cleanup)(r);

    rc = ngx_http_eas_longpoll_answer(r, out, len);

    ngx_http_finalize_request(r, rc);

    ngx_http_run_posted_requests(c);

    return NGX_OK;
}


/*
 * The timeout the backend may stay silent for this request: a long-poll
 * its interval plus the margin, anything else eas_command_timeout.
 * 0: not an ActiveSync request of an "eas_longpoll on" location, leave
 * it alone.
 */

ngx_msec_t
ngx_http_eas_longpoll_read_timeout(ngx_http_request_t *r)
{
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (!elcf->enable || !elcf->longpoll) {
        return 0;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL) {
        return 0;
    }

    if (ctx->longpoll) {
        return (ngx_msec_t) ctx->heartbeat * 1000 + elcf->longpoll_margin;
    }

    return elcf->command_timeout;
}


char *
ngx_http_eas_upstream_timeouts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eas_upstream_srv_conf_t *escf = conf;

    ngx_http_upstream_srv_conf_t  *uscf;

    if (escf->enabled) {
        return "is duplicate";
    }

    escf->enabled = 1;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    escf->original_init_upstream = uscf->peer.init_upstream
                                   ? uscf->peer.init_upstream
                                   : ngx_http_upstream_init_round_robin;

    uscf->peer.init_upstream = ngx_http_eas_upstream_init;

    return NGX_CONF_OK;
}


void *
ngx_http_eas_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_eas_upstream_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_upstream_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enabled = 0;
     *     conf->original_init_upstream = NULL;
     *     conf->original_init_peer = NULL;
     */

    return conf;
}


static ngx_int_t
ngx_http_eas_upstream_init(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_eas_upstream_srv_conf_t  *escf;

    escf = ngx_http_conf_upstream_srv_conf(us, ngx_http_eas_module);

    if (escf->original_init_upstream(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    escf->original_init_peer = us->peer.init;

    us->peer.init = ngx_http_eas_upstream_init_peer;

    return NGX_OK;
}


/*
 * Runs as the upstream is set up, before the connection is made and the
 * read timer armed: the request gets its own copy of the upstream
 * settings with the read timeout it needs (the configuration itself is
 * never written at run time).
 */

static ngx_int_t
ngx_http_eas_upstream_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_msec_t                         timeout;
    ngx_http_eas_ctx_t                *ctx;
    ngx_http_upstream_t               *u;
    ngx_http_upstream_conf_t          *conf;
    ngx_http_eas_upstream_srv_conf_t  *escf;

    escf = ngx_http_conf_upstream_srv_conf(us, ngx_http_eas_module);

    if (escf->original_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    timeout = ngx_http_eas_longpoll_read_timeout(r);

    if (timeout == 0) {
        return NGX_OK;
    }

    ctx = ngx_http_eas_get_ctx(r);
    ctx->timeouts_set = 1;

    u = r->upstream;

    if (u->conf->read_timeout == timeout) {
        return NGX_OK;
    }

    conf = ngx_palloc(r->pool, sizeof(ngx_http_upstream_conf_t));
    if (conf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(conf, u->conf, sizeof(ngx_http_upstream_conf_t));

    conf->read_timeout = timeout;
    u->conf = conf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas upstream read timeout %M", timeout);

    return NGX_OK;
}


/*
 * At start-up: a long-poll location whose proxy_pass names an upstream
 * without "eas_upstream_timeouts" keeps proxy_read_timeout, which must
 * then hold the maximum interval plus the margin.  proxy_pass with
 * variables is checked at first use (ngx_http_eas_longpoll_log_check()).
 * The proxy module's location configuration starts with its
 * ngx_http_upstream_conf_t, as every nginx version has it.
 */

ngx_int_t
ngx_http_eas_longpoll_check(ngx_conf_t *cf, ngx_http_eas_loc_conf_t *elcf)
{
    ngx_msec_t                         need;
    ngx_http_upstream_conf_t          *ucf;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_eas_upstream_srv_conf_t  *escf;

    if (!elcf->enable || !elcf->longpoll) {
        return NGX_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    ucf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_proxy_module);

    if (clcf == NULL || ucf == NULL || clcf->handler == NULL) {
        return NGX_OK;
    }

    uscf = ucf->upstream;

    if (uscf == NULL) {
        return NGX_OK;
    }

    if (uscf->srv_conf) {
        escf = ngx_http_conf_upstream_srv_conf(uscf, ngx_http_eas_module);

        if (escf->enabled) {
            return NGX_OK;
        }
    }

    need = (ngx_msec_t) elcf->heartbeat_max * 1000 + elcf->longpoll_margin;

    if (ucf->read_timeout < need) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "eas: \"proxy_read_timeout\" %Mms in location "
                           "\"%V\" cannot hold \"eas_heartbeat_max\" %Ts "
                           "plus \"eas_longpoll_margin\" %Mms: held Pings "
                           "will be cut with 504; add "
                           "\"eas_upstream_timeouts\" to upstream \"%V\"",
                           ucf->read_timeout, &clcf->name,
                           elcf->heartbeat_max, elcf->longpoll_margin,
                           &uscf->host);
    }

    return NGX_OK;
}


/* at first use, for what the start-up check could not see */

ngx_int_t
ngx_http_eas_longpoll_log_check(ngx_http_request_t *r)
{
    ngx_msec_t                need;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->longpoll || ctx->timeouts_set
        || r->upstream == NULL || r->upstream->conf == NULL)
    {
        return NGX_OK;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    need = (ngx_msec_t) ctx->heartbeat * 1000 + elcf->longpoll_margin;

    if (r->upstream->conf->read_timeout < need) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "eas: %s held for %T s went through an upstream "
                      "without \"eas_upstream_timeouts\" and its read "
                      "timeout %Mms cannot hold it",
                      ngx_http_eas_command(ctx), ctx->heartbeat,
                      r->upstream->conf->read_timeout);
    }

    return NGX_OK;
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
