
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin_rules.h"


/*
 * The rules file written for the other gateways' changes (at most once
 * a second, ngx_http_eas_admin_dirty()): the copy of the zone is taken
 * in the event loop (memory only), the file written and renamed in a
 * task of nginx's default thread pool, so that a slow disk never holds
 * the worker's requests.  One task at a time per worker; a change made
 * meanwhile is written again a second later (a write that failed is
 * said once and tried again at the next change, as in the event
 * loop).  Without threads, or while the worker quits, in the event
 * loop as before (ngx_http_eas_admin_save()).
 */


#if (NGX_THREADS)

typedef struct {
    ngx_http_eas_admin_ctx_t    *ctx;
    ngx_uint_t                   generation;
    u_char                      *buf;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_err_t                    err;
    const char                  *step;
    u_char                       tmp[NGX_MAX_PATH];
} ngx_http_eas_admin_put_t;


static void ngx_http_eas_admin_put_thread(void *data, ngx_log_t *log);
static void ngx_http_eas_admin_put_done(ngx_event_t *ev);


static ngx_uint_t  ngx_http_eas_admin_putting;    /* a task in flight */
static ngx_uint_t  ngx_http_eas_admin_older;      /* it wrote an old copy */

#endif


/*
 * The timer's write (ngx_http_eas_admin_dirty()): nothing if the file
 * has the zone's generation already (another worker wrote it), unless
 * this worker's last write may have put an older copy over it.
 */

void
ngx_http_eas_admin_save_later(ngx_http_eas_admin_ctx_t *ctx, ngx_log_t *log)
{
#if (NGX_THREADS)

    ngx_int_t                  rc;
    ngx_thread_task_t         *task;
    ngx_http_eas_admin_put_t  *put;

    if (ngx_http_eas_admin_putting) {
        /* the task in flight says when it is done */
        return;
    }

    if (ctx->sh->saved == ctx->sh->generation && !ngx_http_eas_admin_older) {
        return;
    }

    ngx_http_eas_admin_older = 0;

    if (ctx->thread_pool == NULL || ngx_exiting || ngx_terminate) {
        (void) ngx_http_eas_admin_save(ctx, log);
        return;
    }

    task = ngx_calloc(sizeof(ngx_thread_task_t)
                      + sizeof(ngx_http_eas_admin_put_t), log);
    if (task == NULL) {
        return;
    }

    put = (ngx_http_eas_admin_put_t *) &task[1];
    task->ctx = put;
    put->ctx = ctx;

    if (ngx_http_eas_admin_tmp(ctx, put->tmp, log) != NGX_OK) {
        ngx_free(task);
        return;
    }

    rc = ngx_http_eas_admin_snapshot(ctx, &put->buf, &put->len,
                                     &put->generation, log);

    if (rc != NGX_OK) {
        /* no memory, or changed meanwhile: again in a second */
        ngx_free(task);
        ngx_http_eas_admin_dirty(ctx);
        return;
    }

    task->handler = ngx_http_eas_admin_put_thread;
    task->event.handler = ngx_http_eas_admin_put_done;
    task->event.data = task;
    task->event.log = ngx_cycle->log;

    if (ngx_thread_task_post(ctx->thread_pool, task) != NGX_OK) {
        ngx_free(put->buf);
        ngx_free(task);
        (void) ngx_http_eas_admin_save(ctx, log);
        return;
    }

    ngx_http_eas_admin_putting = 1;

#else

    if (ctx->sh->saved != ctx->sh->generation) {
        (void) ngx_http_eas_admin_save(ctx, log);
    }

#endif
}


#if (NGX_THREADS)

/* in the thread: the file only, nothing of the zone, nothing logged */

static void
ngx_http_eas_admin_put_thread(void *data, ngx_log_t *log)
{
    ngx_http_eas_admin_put_t  *put = data;

    put->rc = ngx_http_eas_admin_put_file(&put->ctx->file, put->tmp,
                                          put->buf, put->len, &put->err,
                                          &put->step);
}


/* back in the event loop */

static void
ngx_http_eas_admin_put_done(ngx_event_t *ev)
{
    ngx_thread_task_t         *task = ev->data;
    ngx_http_eas_admin_put_t  *put = task->ctx;

    ngx_http_eas_admin_ctx_t  *ctx;

    ngx_http_eas_admin_putting = 0;
    ctx = put->ctx;

    if (put->rc != NGX_OK) {
        /* as in the event loop: said once, written at the next change */
        ngx_http_eas_admin_put_failed(ctx, put->tmp, put->step, put->err,
                                      ev->log);

    } else if (ctx->sh->generation == put->generation) {
        ctx->sh->saved = put->generation;

    } else {
        /*
         * changed meanwhile: again in a second, even if another worker
         * wrote the newer zone before this older copy was renamed
         */
        ngx_http_eas_admin_older = 1;
        ngx_http_eas_admin_dirty(ctx);
    }

    ngx_free(put->buf);
    ngx_free(task);
}

#endif
