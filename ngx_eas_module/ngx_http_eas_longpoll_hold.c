
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Held long-polls (docs/directpush.md): the worker's list of held
 * Pings and Syncs, the sweep that answers a Ping as expired (Status 1)
 * when the worker shuts down, when a newer Ping of the same device
 * supersedes it, or when its backend outstays the time it was given,
 * and the release of a held request.  The decision to hold is in
 * ngx_http_eas_longpoll.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_longpoll.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_metrics.h"
#include "eas_wbxml.h"


static void ngx_http_eas_longpoll_unhold(void *data);
static void ngx_http_eas_longpoll_generation(ngx_http_request_t *r,
    ngx_http_eas_held_t *held);
static void ngx_http_eas_longpoll_sweep(ngx_event_t *ev);
static ngx_uint_t ngx_http_eas_longpoll_superseded(ngx_http_eas_held_t *held,
    ngx_uint_t sweep);
static ngx_int_t ngx_http_eas_longpoll_release(ngx_http_request_t *r,
    ngx_str_t *reason, const char *why);


static ngx_http_eas_longpoll_worker_t  ngx_http_eas_longpoll_worker;


static ngx_str_t  ngx_http_eas_shutdown_reason =
    ngx_string("worker_shutdown");
static ngx_str_t  ngx_http_eas_superseded_reason =
    ngx_string("ping_superseded");
static ngx_str_t  ngx_http_eas_expired_reason =
    ngx_string("heartbeat_expired");


/*
 * A forwarded long-poll joins the worker's list until the request is
 * freed.  NGX_DECLINED: go on; else an HTTP status.
 */

ngx_int_t
ngx_http_eas_longpoll_hold(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_eas_ctx_t              *ctx;
    ngx_http_eas_held_t             *held;
    ngx_http_eas_longpoll_conf_t    *lpcf;
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

    ctx = ngx_http_eas_get_ctx(r);
    lpcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_longpoll_module);

    held = cln->data;
    held->request = r;
    held->devices = ngx_http_eas_devices_zone(r);
    held->uri_changes = r->uri_changes;
    held->deadline = 0;

    if (ctx->request.command == EAS_CMD_PING) {
        held->deadline = ngx_current_msec
                         + ngx_http_eas_longpoll_limit(ctx, lpcf);

        if (held->deadline == 0) {
            held->deadline = 1;
        }
    }

    cln->handler = ngx_http_eas_longpoll_unhold;

    ngx_queue_insert_tail(&w->held, &held->queue);

    ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_HELD_STARTED);

    ngx_http_eas_longpoll_generation(r, held);

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
 * Another gateway announced a newer Ping (ngx_http_eas_redis_events.c):
 * the held requests of this worker are swept at once, not at the next
 * tick, so that the superseded one is answered within the time the
 * message took.
 */

void
ngx_http_eas_longpoll_wake(void)
{
    ngx_http_eas_longpoll_worker_t  *w;

    w = &ngx_http_eas_longpoll_worker;

    if (!w->initialized || ngx_queue_empty(&w->held) || w->sweep.posted) {
        return;
    }

    ngx_post_event(&w->sweep, &ngx_posted_events);
}


/*
 * A Ping about to be held becomes the device's newest: its generation,
 * taken from the device record, is what the sweeps compare.  A Ping
 * whose body the gateway could not read or understand is not counted:
 * the backend answers it at once and the device's held Ping stays.
 * Nor is a Ping whose identity nobody verified (no eas_preauth: the
 * user is the query's User=, which anyone can write): it must not end
 * another's held Ping; the backend, which authenticates it, handles
 * its own collisions.
 * The request keeps the low 32 bits, in what was padding of its
 * context: a held request costs not a byte more.
 */

static void
ngx_http_eas_longpoll_generation(ngx_http_request_t *r,
    ngx_http_eas_held_t *held)
{
    ngx_str_t            user, device_id;
    ngx_uint_t           generation;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx->request.command != EAS_CMD_PING || held->devices == NULL
        || ctx->heartbeat_source == NGX_HTTP_EAS_HB_UNREAD
        || ctx->heartbeat_source == NGX_HTTP_EAS_HB_MALFORMED)
    {
        return;
    }

    if (!ctx->authenticated) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas Ping generation not counted: "
                       "identity not verified");
        return;
    }

    if (ngx_http_eas_longpoll_device(r, ctx, &user, &device_id) != NGX_OK) {
        return;
    }

    if (ngx_http_eas_device_ping(held->devices, &user, &device_id, 1,
                                 &generation)
        != NGX_OK)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas Ping generation not counted: no device record");
        return;
    }

    ctx->ping_generation = (uint32_t) generation;
    ngx_http_eas_redis_ping(held->devices, &user, &device_id);

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
 * Otherwise a held Ping gets the same answer when a newer Ping of the
 * same device, on this worker or another, superseded it (the device
 * has moved on, and the backend may not end the older one itself), or
 * when its backend has not answered within the time the Ping was given
 * (a backend replaying a longer interval of its own cache): a device
 * never sees 504 for a Ping, the upstream read timeout is set a little
 * later than this deadline (ngx_http_eas_longpoll_read_timeout()).
 *
 * A request that an internal redirect took elsewhere (error_page,
 * X-Accel-Redirect) is no longer held: it leaves the list untouched.
 */

static void
ngx_http_eas_longpoll_sweep(ngx_event_t *ev)
{
    ngx_int_t                        rc;
    ngx_str_t                       *reason;
    ngx_queue_t                     *q, *prev, *next;
    const char                      *why;
    ngx_http_eas_ctx_t              *ctx;
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

            if (held->request->uri_changes != held->uri_changes) {
                continue;
            }

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

        if (held->request->uri_changes != held->uri_changes) {
            ngx_queue_remove(q);
            ngx_queue_init(q);
            continue;
        }

        if (held->deadline
            && (ngx_msec_int_t) (ngx_current_msec - held->deadline) >= 0)
        {
            reason = &ngx_http_eas_expired_reason;
            why = "the backend did not answer in time";

        } else if (ngx_http_eas_longpoll_superseded(held, w->sweeps)) {
            reason = &ngx_http_eas_superseded_reason;
            why = "superseded by a newer Ping";

        } else {
            continue;
        }

        /* off the list first: once answered, the request may be freed */

        prev = ngx_queue_prev(q);
        ngx_queue_remove(q);
        ngx_queue_init(q);

        rc = ngx_http_eas_longpoll_release(held->request, reason, why);

        if (rc == NGX_OK) {
            continue;
        }

        /* kept where it was; its answer has started: left alone now */

        ngx_queue_insert_after(prev, q);

        held->deadline = 0;

        ctx = ngx_http_eas_get_ctx(held->request);
        if (ctx) {
            ctx->ping_generation = 0;
        }
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
ngx_http_eas_longpoll_superseded(ngx_http_eas_held_t *held, ngx_uint_t sweep)
{
    ngx_str_t            user, device_id;
    ngx_uint_t           generation;
    ngx_http_eas_ctx_t  *ctx;

    if (held->devices == NULL) {
        return 0;
    }

    ctx = ngx_http_eas_get_ctx(held->request);

    if (ctx == NULL || ctx->ping_generation == 0) {
        return 0;
    }

    if (!ngx_http_eas_device_pings_changed(held->devices, sweep)) {
        return 0;
    }

    if (ngx_http_eas_longpoll_device(held->request, ctx, &user, &device_id)
        != NGX_OK)
    {
        return 0;
    }

    if (ngx_http_eas_device_ping(held->devices, &user, &device_id, 0,
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
