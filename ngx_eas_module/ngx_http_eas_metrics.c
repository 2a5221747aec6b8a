
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"


/*
 * The counters behind "eas_status" (docs/operations.md).
 *
 * One zone, "eas_metrics", holds a slot per worker process.  A worker
 * claims a slot when it starts (a free one, or one whose process is
 * gone) and from then on only adds to it, with an atomic add on its own
 * cache lines: no lock, no contention, a handful of instructions per
 * request.  The status handler sums the slots when it is asked.
 *
 * The zone has a fixed size and name, so a reload finds it again and
 * the counters run on: they count since the zone was first made (the
 * "start" field), that is since nginx started.  Workers of the old
 * generation keep their slots until they exit; the new ones claim
 * others.  A slot taken over from a process that is gone keeps its
 * counters; the long-polls it held are counted as ended, since the
 * process that held them is.  More workers than slots share the first
 * slot, which the atomic adds keep correct.
 *
 * Almost everything is counted once, at the log phase, from what the
 * request's context holds by then.
 */


static ngx_int_t ngx_http_eas_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_eas_metrics_auth(ngx_str_t *auth);
static ngx_uint_t ngx_http_eas_metrics_refusal(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);
static ngx_uint_t ngx_http_eas_metrics_is(ngx_str_t *s, const char *text);


ngx_http_eas_metrics_slot_t  *ngx_http_eas_metrics_own;
ngx_http_eas_metrics_sh_t    *ngx_http_eas_metrics_sh;

static ngx_uint_t  ngx_http_eas_metrics_tag;


/* indexed like the "auth" counters; the order of docs/variables.md */
static const char  *ngx_http_eas_metrics_auths[NGX_HTTP_EAS_M_AUTHS] = {
    "ok", "cached", "invalid", "locked", "error", "down", "grace",
    "missing", "malformed"
};


static const char  *ngx_http_eas_metrics_refusals[NGX_HTTP_EAS_M_REFUSALS]
    = {
    "malformed", "method_not_allowed", "auth", "device_blocked",
    "device_max", "other"
};


static const char  *ngx_http_eas_metrics_decisions[NGX_HTTP_EAS_M_DECISIONS]
    = {
    "forwarded", "refused", "answered"
};


static const char  *ngx_http_eas_metrics_classes[NGX_HTTP_EAS_M_CLASSES] = {
    "none", "1xx", "2xx", "3xx", "4xx", "5xx"
};


ngx_int_t
ngx_http_eas_metrics_init(ngx_conf_t *cf)
{
    ngx_str_t        name = ngx_string("eas_metrics");
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &name,
                                     ngx_align(sizeof(ngx_slab_pool_t)
                                         + sizeof(ngx_http_eas_metrics_sh_t)
                                         + 8 * ngx_pagesize,
                                               ngx_pagesize),
                                     &ngx_http_eas_metrics_tag);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_eas_metrics_init_zone;
    shm_zone->data = &ngx_http_eas_metrics_tag;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_eas_metrics_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {
        sh = shpool->data;
        sh->reloads++;

    } else {
        sh = ngx_slab_calloc(shpool, sizeof(ngx_http_eas_metrics_sh_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        sh->start = ngx_time();
        shpool->data = sh;
    }

    ngx_http_eas_metrics_sh = sh;

    return NGX_OK;
}


/* the worker claims its slot */

ngx_int_t
ngx_http_eas_metrics_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i;
    ngx_atomic_int_t              pid;
    ngx_http_eas_main_conf_t     *emcf;
    ngx_http_eas_metrics_slot_t  *slot;

    ngx_http_eas_metrics_own = NULL;

    if (ngx_http_eas_metrics_sh == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    /* "eas_metrics off": no slot, every count a test of a NULL pointer */

    emcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_eas_module);

    if (emcf == NULL || !emcf->metrics) {
        return NGX_OK;
    }

    for (i = 1; i < NGX_HTTP_EAS_M_SLOTS; i++) {
        slot = &ngx_http_eas_metrics_sh->slot[i];
        pid = (ngx_atomic_int_t) slot->pid;

        if (pid != 0
            && (kill((ngx_pid_t) pid, 0) == 0 || ngx_errno != NGX_ESRCH))
        {
            continue;
        }

        if (!ngx_atomic_cmp_set(&slot->pid, pid, ngx_pid)) {
            continue;
        }

        /* the process that held these long-polls is gone */
        slot->single[NGX_HTTP_EAS_M_HELD_ENDED] =
            slot->single[NGX_HTTP_EAS_M_HELD_STARTED];

        ngx_http_eas_metrics_own = slot;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                       "eas metrics slot %ui", i);
        return NGX_OK;
    }

    ngx_http_eas_metrics_own = &ngx_http_eas_metrics_sh->slot[0];

    return NGX_OK;
}


/* the log phase: one request, counted once */

ngx_int_t
ngx_http_eas_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                    cmd, decision, status, i;
    ngx_http_eas_ctx_t           *ctx;
    ngx_http_upstream_state_t    *state;
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_metrics_slot_t  *slot;

    slot = ngx_http_eas_metrics_own;

    if (slot == NULL || r != r->main) {
        return NGX_DECLINED;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (!elcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    /* a malformed request is counted under the command it named */

    cmd = (ctx->parsed || ctx->request.reason != EAS_REASON_NONE)
          ? ngx_http_eas_metrics_command(ctx->request.command)
          : NGX_HTTP_EAS_M_COMMAND_NONE;

    if (ctx->auth.len) {
        i = ngx_http_eas_metrics_auth(&ctx->auth);

        if (i < NGX_HTTP_EAS_M_AUTHS) {
            (void) ngx_atomic_fetch_add(&slot->auth[i], 1);
        }
    }

    ngx_http_eas_verdict_count(r, ctx);

    status = 0;

    /* a held request the gateway ended may have reached the backend */

    if (ngx_http_eas_metrics_is(&ctx->reason, "heartbeat_out_of_range")) {
        decision = NGX_HTTP_EAS_M_ANSWERED;

        i = (ctx->request.command == EAS_CMD_PING)
            ? NGX_HTTP_EAS_M_PING_STATUS5 : NGX_HTTP_EAS_M_SYNC_STATUS14;
        (void) ngx_atomic_fetch_add(&slot->single[i], 1);

    } else if (ngx_http_eas_metrics_is(&ctx->reason, "ping_superseded")) {
        decision = NGX_HTTP_EAS_M_ANSWERED;
        (void) ngx_atomic_fetch_add(
                             &slot->single[NGX_HTTP_EAS_M_SUPERSEDED], 1);

    } else if (ngx_http_eas_metrics_is(&ctx->reason, "worker_shutdown")) {
        decision = NGX_HTTP_EAS_M_ANSWERED;
        (void) ngx_atomic_fetch_add(&slot->single[NGX_HTTP_EAS_M_SHUTDOWN],
                                    1);

    } else if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;
        status = state[r->upstream_states->nelts - 1].status;
        decision = NGX_HTTP_EAS_M_FORWARDED;

        i = (status >= 100 && status < 600) ? status / 100 : 0;
        (void) ngx_atomic_fetch_add(&slot->upstream[cmd][i], 1);

    } else if (r->headers_out.status >= NGX_HTTP_BAD_REQUEST
               || ctx->access == NGX_HTTP_EAS_ACCESS_BLOCKED)
    {
        /* a blocked device may be answered "200, Status 129" */

        decision = NGX_HTTP_EAS_M_REFUSED;

        i = ngx_http_eas_metrics_refusal(r, ctx);
        (void) ngx_atomic_fetch_add(&slot->refused[i], 1);

        if (i == NGX_HTTP_EAS_M_R_MALFORMED) {
            (void) ngx_atomic_fetch_add(
                                &slot->malformed[ctx->request.reason], 1);
        }

    } else {
        decision = NGX_HTTP_EAS_M_ANSWERED;
    }

    (void) ngx_atomic_fetch_add(&slot->requests[cmd][decision], 1);

    return NGX_DECLINED;
}


/* a password file read again at run time, from "start" to now */

void
ngx_http_eas_metrics_file_load(ngx_uint_t ok, struct timeval *start)
{
    int64_t         usec;
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    usec = (int64_t) (tv.tv_sec - start->tv_sec) * 1000000
           + (tv.tv_usec - start->tv_usec);

    ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_FILE_LOADS);
    ngx_http_eas_metrics_add(single[NGX_HTTP_EAS_M_FILE_LOAD_USEC],
                             (ngx_atomic_int_t) ngx_max(usec, 0));

    if (!ok) {
        ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_FILE_ERRORS);
    }
}


static ngx_uint_t
ngx_http_eas_metrics_refusal(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx)
{
    if (ctx->request.reason != EAS_REASON_NONE
        && ctx->request.reason < EAS_REASON_LAST)
    {
        return NGX_HTTP_EAS_M_R_MALFORMED;
    }

    if (ngx_http_eas_metrics_is(&ctx->reason, "method_not_allowed")) {
        return NGX_HTTP_EAS_M_R_METHOD;
    }

    if (ctx->auth.len && !ctx->authenticated) {
        return NGX_HTTP_EAS_M_R_AUTH;
    }

    if (ctx->access == NGX_HTTP_EAS_ACCESS_BLOCKED) {
        return ngx_http_eas_metrics_is(&ctx->reason,
                                       NGX_HTTP_EAS_REASON_MAX_DEVICES)
               ? NGX_HTTP_EAS_M_R_DEVICE_MAX : NGX_HTTP_EAS_M_R_DEVICE;
    }

    return NGX_HTTP_EAS_M_R_OTHER;
}


static ngx_uint_t
ngx_http_eas_metrics_auth(ngx_str_t *auth)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_EAS_M_AUTHS; i++) {
        if (ngx_http_eas_metrics_is(auth, ngx_http_eas_metrics_auths[i])) {
            return i;
        }
    }

    return NGX_HTTP_EAS_M_AUTHS;
}


static ngx_uint_t
ngx_http_eas_metrics_is(ngx_str_t *s, const char *text)
{
    size_t  len;

    len = ngx_strlen(text);

    return s->len == len && ngx_strncmp(s->data, text, len) == 0;
}


ngx_uint_t
ngx_http_eas_metrics_command(ngx_uint_t command)
{
    if (command <= EAS_CMD_FIND) {
        return command;
    }

    if (command >= EAS_CMD_GET_HIERARCHY
        && command <= EAS_CMD_MOVE_COLLECTION)
    {
        return command - EAS_CMD_GET_HIERARCHY + EAS_CMD_FIND + 1;
    }

    return NGX_HTTP_EAS_M_COMMAND_NONE;
}


/* the label of a dense command index; NULL for the unused codes */

const char *
ngx_http_eas_metrics_command_name(ngx_uint_t i)
{
    if (i == NGX_HTTP_EAS_M_COMMAND_NONE) {
        return "none";
    }

    if (i > EAS_CMD_FIND) {
        i = i - EAS_CMD_FIND - 1 + EAS_CMD_GET_HIERARCHY;
    }

    return eas_command_name((eas_command_e) i);
}


const char *
ngx_http_eas_metrics_auth_name(ngx_uint_t i)
{
    return ngx_http_eas_metrics_auths[i];
}


const char *
ngx_http_eas_metrics_refusal_name(ngx_uint_t i)
{
    return ngx_http_eas_metrics_refusals[i];
}


const char *
ngx_http_eas_metrics_decision_name(ngx_uint_t i)
{
    return ngx_http_eas_metrics_decisions[i];
}


const char *
ngx_http_eas_metrics_class_name(ngx_uint_t i)
{
    return ngx_http_eas_metrics_classes[i];
}
