
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The credential sources of step 2 (docs/authentication.md), behind
 * one interface, ngx_http_eas_preauth_verify(): the password file and
 * the directory as a thread pool task (one allocation outside the
 * request's pool, wiped and freed when the task completes, detached
 * from a request that goes away, answered 503 when it is not done in
 * time), eas_preauth_request as a subrequest.  The answer comes back
 * to ngx_http_eas_preauth_finish() (ngx_http_eas_preauth.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"


#if (NGX_THREADS)
static ngx_http_eas_preauth_job_t *ngx_http_eas_preauth_job(
    ngx_http_request_t *r, ngx_http_eas_preauth_ctx_t *pctx, size_t size);
static void ngx_http_eas_preauth_job_free(ngx_http_eas_preauth_job_t *job);
static void ngx_http_eas_preauth_detach(void *data);
static ngx_int_t ngx_http_eas_preauth_post(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_http_eas_preauth_job_t *job);
static void ngx_http_eas_preauth_thread(void *data, ngx_log_t *log);
static void ngx_http_eas_preauth_thread_done(ngx_event_t *ev);
static void ngx_http_eas_preauth_timeout(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_eas_preauth_subrequest(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_subrequest_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static ngx_uint_t ngx_http_eas_preauth_activesync(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_preauth_directory(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password);


/* ask the credential source; the password is copied, never kept */

ngx_int_t
ngx_http_eas_preauth_verify(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password)
{
    size_t                       size;
    ngx_http_eas_ctx_t          *ctx;
#if (NGX_THREADS)
    ngx_http_eas_preauth_job_t  *job;
#endif

    ctx = ngx_http_eas_get_ctx(r);

    if (pcf->ldap) {
        return ngx_http_eas_preauth_directory(r, pcf, pctx, password);
    }

    if (pcf->file == NULL) {
        return ngx_http_eas_preauth_subrequest(r, pcf, pctx);
    }

    size = ngx_http_eas_passwd_verify_size();

#if (NGX_THREADS)

    job = NULL;

    if (!pcf->inline_check) {
        job = ngx_http_eas_preauth_job(r, pctx, size);
        if (job == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        pctx->verify = job->task.ctx;
    }

#endif

    /* inline: a large allocation, given back at once (ngx_pfree) */

    if (pctx->verify == NULL) {
        pctx->verify = ngx_pcalloc(r->pool, size);
        if (pctx->verify == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_eas_passwd_find(pcf->file, &pctx->identity, password,
                                 pctx->verify)
        != NGX_OK)
    {
#if (NGX_THREADS)
        if (job) {
            ngx_http_eas_preauth_job_free(job);

        } else
#endif
        {
            ngx_pfree(r->pool, pctx->verify);
        }

        pctx->verify = NULL;
        pctx->unknown = 1;
        pctx->result = NGX_DECLINED;
        pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

        return ngx_http_eas_preauth_finish(r, ctx, pctx);
    }

    pctx->unknown = ngx_http_eas_passwd_unknown(pctx->verify);

    if (pcf->inline_check) {
        ngx_http_eas_passwd_verify(pctx->verify);

        pctx->result = ngx_http_eas_passwd_result(pctx->verify);
        pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

        ngx_pfree(r->pool, pctx->verify);
        pctx->verify = NULL;

        return ngx_http_eas_preauth_finish(r, ctx, pctx);
    }

#if (NGX_THREADS)

    job->task.handler = ngx_http_eas_preauth_thread;

    return ngx_http_eas_preauth_post(r, pcf, pctx, job);

#else

    /* the merge refuses a file source without threads or "off" */
    return NGX_HTTP_INTERNAL_SERVER_ERROR;

#endif
}


#if (NGX_THREADS)

/* the job and the cleanup that detaches it when the request goes */

static ngx_http_eas_preauth_job_t *
ngx_http_eas_preauth_job(ngx_http_request_t *r,
    ngx_http_eas_preauth_ctx_t *pctx, size_t size)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_eas_preauth_job_t  *job;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    /* zeroed: crypt_r() wants its crypt_data so on first use */

    job = ngx_calloc(sizeof(ngx_http_eas_preauth_job_t) + size,
                     r->connection->log);
    if (job == NULL) {
        return NULL;
    }

    job->task.ctx = job + 1;
    job->size = size;
    job->r = r;
    job->pctx = pctx;

    pctx->job = job;

    cln->handler = ngx_http_eas_preauth_detach;
    cln->data = pctx;

    return job;
}


/* the task's ctx holds a copy of the password: wiped before it is freed */

static void
ngx_http_eas_preauth_job_free(ngx_http_eas_preauth_job_t *job)
{
    if (job->timer.timer_set) {
        ngx_del_timer(&job->timer);
    }

    if (job->r) {
        job->pctx->job = NULL;
        job->pctx->verify = NULL;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP,
                   job->r ? job->r->connection->log : ngx_cycle->log, 0,
                   "eas preauth task data freed: %uz bytes", job->size);

    ngx_explicit_memzero(job->task.ctx, job->size);
    ngx_free(job);
}


/* the request's pool goes: a task still queued or running is left alone */

static void
ngx_http_eas_preauth_detach(void *data)
{
    ngx_http_eas_preauth_ctx_t  *pctx = data;

    ngx_http_eas_preauth_job_t  *job;

    job = pctx->job;

    if (job == NULL) {
        return;
    }

    if (job->timer.timer_set) {
        ngx_del_timer(&job->timer);
    }

    job->r = NULL;
    pctx->job = NULL;
    pctx->verify = NULL;
}


/*
 * A full queue or a task not done by eas_preauth_timeout is a 503 with
 * Retry-After: in a login storm requests do not wait without bound.
 */

static ngx_int_t
ngx_http_eas_preauth_post(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_http_eas_preauth_job_t *job)
{
    job->task.event.handler = ngx_http_eas_preauth_thread_done;
    job->task.event.data = job;

    if (ngx_thread_task_post(pcf->thread_pool, &job->task) != NGX_OK) {
        ngx_http_eas_preauth_job_free(job);

        pctx->busy = NGX_HTTP_EAS_PREAUTH_QUEUE_FULL;
        pctx->result = NGX_ERROR;
        pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

        return ngx_http_eas_preauth_finish(r, ngx_http_eas_get_ctx(r), pctx);
    }

    job->timer.handler = ngx_http_eas_preauth_timeout;
    job->timer.data = job;
    job->timer.log = r->connection->log;

    /*
     * not cancelable: the request waits for the check and holds no other
     * timer, and a worker shutting down exits once only cancelable timers
     * are left, with the client's connection open ("open socket left")
     */

    ngx_add_timer(&job->timer, pcf->timeout);

    pctx->state = NGX_HTTP_EAS_PREAUTH_RUNNING;

    return NGX_AGAIN;
}


static void
ngx_http_eas_preauth_thread(void *data, ngx_log_t *log)
{
    ngx_http_eas_passwd_verify(data);
}


static void
ngx_http_eas_preauth_thread_done(ngx_event_t *ev)
{
    u_char                       *p;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_eas_preauth_ctx_t   *pctx;
    ngx_http_eas_preauth_conf_t  *pcf;
    ngx_http_eas_preauth_job_t   *job;

    job = ev->data;
    r = job->r;

    if (r == NULL) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "eas preauth thread done after its request");

        ngx_http_eas_preauth_job_free(job);
        return;
    }

    c = r->connection;
    pctx = job->pctx;

    ngx_http_set_log_request(c->log, r);

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

    if (pcf->ldap) {
        pctx->result = ngx_http_eas_ldap_result(pctx->verify, c->log,
                                                &pctx->extra);
        pctx->unknown = ngx_http_eas_ldap_unknown(pctx->verify);
        pctx->refusal = ngx_http_eas_ldap_refusal(pctx->verify);

        /* the lists are in the task's data, which goes now */

        if (pctx->extra.len) {
            p = ngx_pnalloc(r->pool, pctx->extra.len);

            if (p == NULL) {
                pctx->result = NGX_ERROR;
                ngx_str_null(&pctx->extra);

            } else {
                ngx_memcpy(p, pctx->extra.data, pctx->extra.len);
                pctx->extra.data = p;
            }
        }

    } else {
        pctx->result = ngx_http_eas_passwd_result(pctx->verify);
    }

    ngx_http_eas_preauth_job_free(job);

    pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "eas preauth thread done: %i", pctx->result);

    r->write_event_handler(r);
    ngx_http_run_posted_requests(c);
}


/* the deadline passed first: the request goes on, the task is left */

static void
ngx_http_eas_preauth_timeout(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_eas_preauth_ctx_t  *pctx;
    ngx_http_eas_preauth_job_t  *job;

    job = ev->data;
    r = job->r;
    c = r->connection;
    pctx = job->pctx;

    ngx_http_set_log_request(c->log, r);

    job->r = NULL;
    pctx->job = NULL;
    pctx->verify = NULL;

    pctx->busy = NGX_HTTP_EAS_PREAUTH_TIMED_OUT;
    pctx->result = NGX_ERROR;
    pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

    r->write_event_handler(r);
    ngx_http_run_posted_requests(c);
}

#endif


/*
 * The subrequest forwards the request's Host (the shipped location sets
 * it), and a backend may tell tenants by it: the server's identity
 * (ngx_http_eas_preauth_request_source() in the configuration) and the
 * Host name the source whose answers the cache keeps.
 */

u_char *
ngx_http_eas_preauth_request_source(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf)
{
    u_char     *p, *source;
    ngx_str_t  *host;

    host = &r->headers_in.server;

    p = ngx_pnalloc(r->pool, NGX_HTTP_EAS_DIGEST_LEN + host->len
                             + NGX_HTTP_EAS_DIGEST_LEN);
    if (p == NULL) {
        return NULL;
    }

    source = p + NGX_HTTP_EAS_DIGEST_LEN + host->len;

    ngx_memcpy(p, pcf->source, NGX_HTTP_EAS_DIGEST_LEN);
    ngx_memcpy(p + NGX_HTTP_EAS_DIGEST_LEN, host->data, host->len);

    if (EVP_Digest(p, NGX_HTTP_EAS_DIGEST_LEN + host->len, source, NULL,
                   EVP_sha256(), NULL)
        != 1)
    {
        return NULL;
    }

    return source;
}


/* as auth_request does: the location answers 2xx, 401/403 or else */

static ngx_int_t
ngx_http_eas_preauth_subrequest(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx)
{
    ngx_http_request_t          *sr;
    ngx_http_post_subrequest_t  *ps;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ps->handler = ngx_http_eas_preauth_subrequest_done;
    ps->data = pctx;

    if (ngx_http_subrequest(r, &pcf->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* no body reading, and a body already read stays the parent's */

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sr->header_only = 1;

    pctx->state = NGX_HTTP_EAS_PREAUTH_RUNNING;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_eas_preauth_subrequest_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_eas_preauth_ctx_t  *pctx = data;

    ngx_http_eas_preauth_conf_t  *pcf;

    pcf = ngx_http_get_module_loc_conf(r->main, ngx_http_eas_preauth_module);

    pctx->status = r->headers_out.status;
    pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

    if (pctx->status >= NGX_HTTP_OK
        && pctx->status < NGX_HTTP_SPECIAL_RESPONSE
        && !pcf->any_answer
        && !ngx_http_eas_preauth_activesync(r))
    {
        pctx->foreign = 1;
        pctx->result = NGX_ERROR;

    } else if (pctx->status >= NGX_HTTP_OK
               && pctx->status < NGX_HTTP_SPECIAL_RESPONSE)
    {
        pctx->result = NGX_OK;

    } else if (pctx->status == NGX_HTTP_UNAUTHORIZED
               || pctx->status == NGX_HTTP_FORBIDDEN)
    {
        pctx->result = NGX_DECLINED;

    } else {
        pctx->result = NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas preauth subrequest done: %ui", pctx->status);

    return rc;
}


/* an ActiveSync server's OPTIONS answer names its protocol versions */

static ngx_uint_t
ngx_http_eas_preauth_activesync(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    static ngx_str_t  versions = ngx_string("MS-ASProtocolVersions");

    h = ngx_http_eas_header_find(&r->headers_out.headers, &versions);

    return h != NULL && h->value.len != 0;
}


/*
 * The directory source: an empty password is refused here, before any
 * bind (an LDAP simple bind without a password is an anonymous bind,
 * and "succeeds"); a directory known to be down is not waited for.
 */

static ngx_int_t
ngx_http_eas_preauth_directory(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password)
{
    ngx_http_eas_ctx_t          *ctx;
#if (NGX_THREADS)
    size_t                       size;
    ngx_http_eas_preauth_job_t  *job;
#endif

    ctx = ngx_http_eas_get_ctx(r);

    if (password->len == 0) {
        pctx->result = NGX_DECLINED;
        pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

        return ngx_http_eas_preauth_finish(r, ctx, pctx);
    }

    if (ngx_http_eas_ldap_available(pcf->ldap) != NGX_OK) {
        pctx->result = NGX_ERROR;
        pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

        return ngx_http_eas_preauth_finish(r, ctx, pctx);
    }

#if (NGX_THREADS)

    size = ngx_http_eas_ldap_verify_size();

    job = ngx_http_eas_preauth_job(r, pctx, size);
    if (job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pctx->verify = job->task.ctx;

    if (ngx_http_eas_ldap_prepare(pcf->ldap, &pctx->user, password,
                                  job->task.ctx)
        != NGX_OK)
    {
        ngx_http_eas_preauth_job_free(job);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    job->task.handler = ngx_http_eas_ldap_verify;

    return ngx_http_eas_preauth_post(r, pcf, pctx, job);

#else

    /* the merge refuses a directory source without threads */
    return NGX_HTTP_INTERNAL_SERVER_ERROR;

#endif
}


/* the lists the directory gave with a cached credential */

ngx_int_t
ngx_http_eas_preauth_extra(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx)
{
    size_t  len;
    u_char  buf[NGX_HTTP_EAS_EXTRA_MAX];

    if (ngx_http_eas_cache_get_extra(pcf->zone, pctx->digest, buf,
                                     sizeof(buf), &len)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    pctx->extra.len = len;

    if (len == 0) {
        return NGX_OK;
    }

    pctx->extra.data = ngx_pnalloc(r->pool, len);
    if (pctx->extra.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(pctx->extra.data, buf, len);

    return NGX_OK;
}
