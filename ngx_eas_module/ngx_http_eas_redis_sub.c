
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


/*
 * The subscribed connection of each worker (docs/scale-out.md), past
 * its setup: the confirmation of SUBSCRIBE and each message on the
 * gateways' channel, and its health.  A subscription that Redis closed
 * is seen at once (the adapter reads to the end of the stream); one
 * that is silently lost (a half-open socket, a proxy or firewall that
 * forgot it, a Redis that stopped answering it) is found by a PING on
 * the subscribed connection every "retry": unanswered within "timeout",
 * the connection is dropped and made again, and that is logged (once a
 * minute per worker).  Which workers are subscribed is kept in the
 * shared state's zone, one slot per worker, for eas_status.
 */


static void ngx_http_eas_redis_sub_check(ngx_event_t *ev);
static void ngx_http_eas_redis_sub_mark(ngx_uint_t up);


static ngx_event_t   ngx_http_eas_redis_sub_ping;
static ngx_uint_t    ngx_http_eas_redis_sub_asked;    /* a PING unanswered */
static time_t        ngx_http_eas_redis_sub_logged;


/*
 * A reply on the subscriber connection past its setup: the
 * confirmation of SUBSCRIBE, the answer to its PING, or a message on the
 * channel.  Anything else, NGX_ERROR: the connection is dropped.
 */

ngx_int_t
ngx_http_eas_redis_sub_message(ngx_http_eas_redis_link_t *link,
    redisReply *rr)
{
    redisReply                 **e;
    ngx_http_eas_redis_conf_t   *rcf;

    rcf = ngx_http_eas_redis_conf;

    if (rr->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    e = rr->element;

    if (rr->elements == 2) {
        /* PING in subscribed mode: ["pong", ""] */

        if (!ngx_http_eas_redis_sub_asked || !link->ready
            || e[0]->type != REDIS_REPLY_STRING || e[0]->len != 4
            || ngx_strncmp(e[0]->str, "pong", 4) != 0)
        {
            return NGX_ERROR;
        }

        ngx_http_eas_redis_sub_asked = 0;

        if (ngx_http_eas_redis_sub_ping.timer_set) {
            ngx_del_timer(&ngx_http_eas_redis_sub_ping);
        }

        ngx_add_timer(&ngx_http_eas_redis_sub_ping, rcf->retry);

        return NGX_OK;
    }

    if (rr->elements != 3) {
        return NGX_ERROR;
    }

    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING
        || e[1]->len != rcf->channel.len
        || ngx_strncmp(e[1]->str, rcf->channel.data, rcf->channel.len) != 0)
    {
        return NGX_ERROR;
    }

    if (e[0]->len == 9 && ngx_strncmp(e[0]->str, "subscribe", 9) == 0
        && e[2]->type == REDIS_REPLY_INTEGER)
    {
        if (link->watch.timer_set) {
            ngx_del_timer(&link->watch);
        }

        link->ready = 1;
        link->ready_since = ngx_current_msec;

        ngx_http_eas_redis_sub_ping.handler = ngx_http_eas_redis_sub_check;
        ngx_http_eas_redis_sub_ping.data = link;
        ngx_http_eas_redis_sub_ping.log = ngx_cycle->log;
        ngx_http_eas_redis_sub_ping.cancelable = 1;
        ngx_http_eas_redis_sub_asked = 0;

        if (ngx_http_eas_redis_sub_ping.timer_set) {
            ngx_del_timer(&ngx_http_eas_redis_sub_ping);
        }

        ngx_add_timer(&ngx_http_eas_redis_sub_ping, rcf->retry);

        ngx_http_eas_redis_sub_mark(1);

        ngx_http_eas_redis_rules_sync();
        ngx_http_eas_redis_inventory_fill();
        return NGX_OK;
    }

    if (e[0]->len == 7 && ngx_strncmp(e[0]->str, "message", 7) == 0
        && e[2]->type == REDIS_REPLY_STRING && link->ready)
    {
        ngx_http_eas_redis_event((u_char *) e[2]->str, e[2]->len);
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* every "retry" a PING; its answer is due within "timeout" */

static void
ngx_http_eas_redis_sub_check(ngx_event_t *ev)
{
    ngx_http_eas_redis_link_t  *link = ev->data;

    const char                 *argv[1];
    size_t                      argvlen[1];
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_conf;

    if (rcf == NULL || link->ac == NULL || !link->ready) {
        return;
    }

    if (ngx_http_eas_redis_sub_asked) {
        if (ngx_time() - ngx_http_eas_redis_sub_logged >= 60) {
            ngx_http_eas_redis_sub_logged = ngx_time();

            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "eas: shared state \"%V\": the subscription of "
                          "worker %ui did not answer PING in %M ms: made "
                          "again (said once a minute)", &rcf->url,
                          (ngx_uint_t) ngx_worker, rcf->timeout);
        }

        ngx_http_eas_redis_drop(link, "subscription unanswered");
        return;
    }

    argv[0] = "PING";
    argvlen[0] = 4;

    if (ngx_http_eas_redis_send(link, NULL, NULL, 1, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_eas_redis_drop(link, "no memory");
        return;
    }

    ngx_http_eas_redis_sub_asked = 1;
    ngx_add_timer(ev, rcf->timeout);
}


/* the subscribed connection is gone, or the worker exits */

void
ngx_http_eas_redis_sub_lost(void)
{
    ngx_http_eas_redis_sub_asked = 0;

    if (ngx_http_eas_redis_sub_ping.timer_set) {
        ngx_del_timer(&ngx_http_eas_redis_sub_ping);
    }

    ngx_http_eas_redis_sub_mark(0);
}


/* this worker's slot: its pid while subscribed, 0 otherwise */

static void
ngx_http_eas_redis_sub_mark(ngx_uint_t up)
{
    ngx_atomic_t  *slot;

    if (ngx_http_eas_redis_sh == NULL
        || ngx_worker >= NGX_HTTP_EAS_REDIS_SLOTS)
    {
        return;
    }

    slot = &ngx_http_eas_redis_sh->subscribed[ngx_worker];

    if (up) {
        *slot = (ngx_atomic_uint_t) ngx_pid;
        return;
    }

    /* a worker of a later generation may hold the slot already */
    (void) ngx_atomic_cmp_set(slot, (ngx_atomic_uint_t) ngx_pid, 0);
}


/* how many of the gateway's workers are subscribed; of how many */

ngx_uint_t
ngx_http_eas_redis_sub_count(ngx_uint_t *workers)
{
    ngx_uint_t        i, n, w;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    w = ngx_min((ngx_uint_t) ccf->worker_processes,
                NGX_HTTP_EAS_REDIS_SLOTS);
    *workers = w;

    if (ngx_http_eas_redis_sh == NULL) {
        return 0;
    }

    n = 0;

    for (i = 0; i < w; i++) {
        if (ngx_http_eas_redis_sh->subscribed[i]) {
            n++;
        }
    }

    return n;
}
