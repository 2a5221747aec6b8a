
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_eas_module.h"


/*
 * Step 2 of the request flow (docs/authentication.md): Basic
 * credentials → lockout (known-good devices pass) → cache → room for
 * the failure counters → credential source.  The source is a password
 * file checked in the thread pool, a directory, or a subrequest.
 * Nothing refused here reaches the backend.
 */


#define NGX_HTTP_EAS_PREAUTH_RUNNING  1   /* thread task or subrequest */
#define NGX_HTTP_EAS_PREAUTH_DONE     2   /* the source answered */
#define NGX_HTTP_EAS_PREAUTH_DECIDED  3   /* rc holds the answer */

/* at most one warning of a kind per worker in this time */
#define NGX_HTTP_EAS_PREAUTH_LOG_EVERY  10

#define NGX_HTTP_EAS_PREAUTH_QUEUE_FULL  1
#define NGX_HTTP_EAS_PREAUTH_TIMED_OUT   2


typedef struct {
    time_t                  logged;
    ngx_uint_t              skipped;
} ngx_http_eas_preauth_throttle_t;
#define NGX_HTTP_EAS_PREAUTH_BUSY_RETRY  5  /* s, Retry-After of "busy" */



typedef struct {
    ngx_uint_t              state;
    ngx_int_t               rc;            /* once DECIDED */
    ngx_int_t               result;        /* NGX_OK, _DECLINED, _ERROR */
    ngx_uint_t              status;        /* of the subrequest */
    ngx_uint_t              unknown;       /* no such user in the file */
    ngx_uint_t              stale;         /* a valid answer in grace */
    ngx_uint_t              foreign;       /* 2xx, not from ActiveSync */
    ngx_str_t               extra;         /* the directory's lists */
    ngx_str_t               user;          /* as sent */
    ngx_str_t               identity;      /* normalised */
    ngx_str_t               addr;          /* counted: IPv6 by /64 */
    void                   *verify;        /* the source's task data */
    void                   *job;           /* ngx_http_eas_preauth_job_t */
    const char             *refusal;       /* the directory's reason */
    ngx_uint_t              busy;          /* QUEUE_FULL, TIMED_OUT */
    ngx_http_eas_preauth_conf_t  *conf;    /* of the try reserved */
    ngx_http_eas_cache_query_t  query;
    u_char                  digest[NGX_HTTP_EAS_DIGEST_LEN];
    u_char                  device[NGX_HTTP_EAS_DIGEST_LEN];
    u_char                  secret[NGX_HTTP_EAS_DIGEST_LEN];
} ngx_http_eas_preauth_ctx_t;


/*
 * A thread task and its data live outside the request's pool: they are
 * freed as the task completes (a password check's crypt_data is 32 KiB),
 * and a request that moved on (answered 503 at the deadline, or closed)
 * leaves them to the completion, which then only frees them.
 */

typedef struct {
    ngx_thread_task_t       task;          /* ctx follows this struct */
    ngx_event_t             timer;         /* eas_preauth_timeout */
    ngx_http_request_t     *r;             /* NULL once detached */
    ngx_http_eas_preauth_ctx_t  *pctx;
    size_t                  size;          /* of the task's ctx */
} ngx_http_eas_preauth_job_t;


static ngx_int_t ngx_http_eas_preauth_verify(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password);
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
static ngx_int_t ngx_http_eas_preauth_busy(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_throttle(
    ngx_http_eas_preauth_throttle_t *t);
static u_char *ngx_http_eas_preauth_request_source(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf);
static ngx_int_t ngx_http_eas_preauth_subrequest(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_subrequest_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static ngx_uint_t ngx_http_eas_preauth_activesync(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_preauth_finish(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_accept(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *auth);
static ngx_int_t ngx_http_eas_preauth_refuse(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *auth, const char *reason, ngx_int_t status);
static ngx_int_t ngx_http_eas_preauth_malformed(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx,
    eas_basic_reason_e reason);
static ngx_int_t ngx_http_eas_preauth_directory(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password);
static ngx_int_t ngx_http_eas_preauth_extra(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_down(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_query(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_conf_t *pcf,
    ngx_http_eas_preauth_ctx_t *pctx, ngx_str_t *password);
static ngx_int_t ngx_http_eas_preauth_full(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_tries_busy(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
static void ngx_http_eas_preauth_abandon(void *data);
static ngx_int_t ngx_http_eas_preauth_retry_after(ngx_http_request_t *r,
    time_t t);


static ngx_str_t  ngx_http_eas_auth_ok = ngx_string("ok");
static ngx_str_t  ngx_http_eas_auth_cached = ngx_string("cached");
static ngx_str_t  ngx_http_eas_auth_invalid = ngx_string("invalid");
static ngx_str_t  ngx_http_eas_auth_locked = ngx_string("locked");
static ngx_str_t  ngx_http_eas_auth_error = ngx_string("error");
static ngx_str_t  ngx_http_eas_auth_missing = ngx_string("missing");
static ngx_str_t  ngx_http_eas_auth_malformed = ngx_string("malformed");
static ngx_str_t  ngx_http_eas_auth_grace = ngx_string("grace");
static ngx_str_t  ngx_http_eas_auth_down = ngx_string("down");
static ngx_str_t  ngx_http_eas_auth_full = ngx_string("full");
static ngx_str_t  ngx_http_eas_auth_busy = ngx_string("busy");

/* per worker: when a warning of each kind was last written */
static ngx_http_eas_preauth_throttle_t  ngx_http_eas_preauth_disagree;
static ngx_http_eas_preauth_throttle_t  ngx_http_eas_preauth_overload;


ngx_int_t
ngx_http_eas_preauth_handler(ngx_http_request_t *r)
{
    size_t                        n;
    u_char                       *source;
    ngx_int_t                     rc;
    ngx_str_t                     password;
    ngx_uint_t                    found;
    eas_basic_t                   basic;
    ngx_table_elt_t              *h;
    ngx_pool_cleanup_t           *cln;
    ngx_http_eas_ctx_t           *ctx;
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_preauth_ctx_t   *pctx;
    ngx_http_eas_preauth_conf_t  *pcf;
    u_char                        buf[EAS_BASIC_BUFFER_SIZE];
    u_char                        id[EAS_BASIC_USER_MAX];

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    pcf = &elcf->preauth;

    if (pcf->realm.len == 0) {
        return NGX_DECLINED;
    }

    /* the context exists wherever "eas on" parsed the request */

    ctx = ngx_http_eas_get_ctx(r);
    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    pctx = ctx->preauth;

    if (pctx) {
        switch (pctx->state) {

        case NGX_HTTP_EAS_PREAUTH_RUNNING:
            return NGX_AGAIN;

        case NGX_HTTP_EAS_PREAUTH_DONE:
            return ngx_http_eas_preauth_finish(r, ctx, pctx);

        case NGX_HTTP_EAS_PREAUTH_DECIDED:
            /* an internal redirect: decided once per request */
            return pctx->rc;

        default:
            /* failed half-way (500): an error page is not let through */
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    pctx = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_preauth_ctx_t));
    if (pctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->preauth = pctx;

    h = r->headers_in.authorization;

    if (h == NULL) {
        return ngx_http_eas_preauth_malformed(r, ctx, pctx,
                                              EAS_BASIC_MISSING);
    }

    /* the same header as the connection's last: read as it was then */

    if (ngx_http_eas_memo_basic(r, pcf, &h->value, buf, &basic, id, &n)
        == NGX_OK)
    {
        goto identified;
    }

    if (eas_basic_parse(h->value.data, h->value.len, buf, sizeof(buf),
                        &basic)
        != EAS_OK)
    {
        ngx_explicit_memzero(buf, sizeof(buf));
        return ngx_http_eas_preauth_malformed(r, ctx, pctx, basic.reason);
    }

    /* the identity, as the source knows it: ngx_http_eas_ldap_conf.c */

    rc = ngx_http_eas_user_identity(pcf->ldap, (u_char *) basic.user.data,
                                    basic.user.len, id, sizeof(id), &n);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: the domain of user \"%*s\" is "
                      "not one of directory \"%V\"", basic.user.len,
                      basic.user.data, ngx_http_eas_ldap_name(pcf->ldap));

        ngx_explicit_memzero(buf, sizeof(buf));
        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_invalid,
                                           "auth_unknown_domain",
                                           NGX_HTTP_UNAUTHORIZED);
    }

    if (rc != NGX_OK) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return ngx_http_eas_preauth_malformed(r, ctx, pctx,
                                              EAS_BASIC_USER_INVALID);
    }

    ngx_http_eas_memo_basic_keep(r, pcf, &h->value, &basic, id, n);

identified:

    pctx->user.data = ngx_pnalloc(r->pool, basic.user.len + n);
    if (pctx->user.data == NULL) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pctx->user.len = basic.user.len;
    ngx_memcpy(pctx->user.data, basic.user.data, basic.user.len);

    pctx->identity.data = pctx->user.data + basic.user.len;
    pctx->identity.len = n;
    ngx_memcpy(pctx->identity.data, id, n);

    password.data = (u_char *) basic.password.data;
    password.len = basic.password.len;

    if (pcf->file) {
        ngx_http_eas_passwd_refresh(pcf->file, r->connection->log);
        source = ngx_http_eas_passwd_source(pcf->file);

    } else if (pcf->ldap) {
        source = ngx_http_eas_ldap_source(pcf->ldap);

    } else {
        source = ngx_http_eas_preauth_request_source(r, pcf);
        if (source == NULL) {
            ngx_explicit_memzero(buf, sizeof(buf));
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_eas_memo_digest(r, pcf->zone, source, &pctx->user,
                                 &password, pctx->digest)
        != NGX_OK)
    {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_eas_preauth_query(r, ctx, pcf, pctx, &password) != NGX_OK) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    found = ngx_http_eas_cache_lookup(pcf->zone, &pctx->query, pcf);

    /* a try reserved on the counters ends with the source's answer, or
     * with the request: a try whose client left counts as a failure */

    if (pctx->query.pending_user || pctx->query.pending_address) {
        pctx->conf = pcf;

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            ngx_http_eas_cache_release(pcf->zone, &pctx->query, pcf, 0);
            ngx_explicit_memzero(buf, sizeof(buf));
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_eas_preauth_abandon;
        cln->data = pctx;
    }

    switch (found) {

    case NGX_HTTP_EAS_CACHE_VALID:

        /* the directory's lists come with its answer, or it is asked */

        if (pcf->ldap == NULL
            || ngx_http_eas_preauth_extra(r, pcf, pctx) == NGX_OK)
        {
            ngx_explicit_memzero(buf, sizeof(buf));
            return ngx_http_eas_preauth_accept(r, ctx, pctx,
                                               &ngx_http_eas_auth_cached);
        }

        break;

    case NGX_HTTP_EAS_CACHE_STALE:
        pctx->stale = 1;
        break;

    case NGX_HTTP_EAS_CACHE_INVALID:
        ngx_explicit_memzero(buf, sizeof(buf));

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: invalid password for user "
                      "\"%V\" (cached)", &pctx->user);

        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_invalid,
                                           "auth_invalid",
                                           NGX_HTTP_UNAUTHORIZED);

    case NGX_HTTP_EAS_CACHE_USER_LOCKED:
        ngx_explicit_memzero(buf, sizeof(buf));

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: user \"%V\" is locked out for "
                      "%T s more", &pctx->identity, pctx->query.left);

        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_locked,
                                           "auth_user_locked",
                                           NGX_HTTP_UNAUTHORIZED);

    case NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED:
        ngx_explicit_memzero(buf, sizeof(buf));

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: address \"%V\" is locked out "
                      "for %T s more, user \"%V\"",
                      &pctx->addr, pctx->query.left, &pctx->identity);

        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_locked,
                                           "auth_address_locked",
                                           NGX_HTTP_UNAUTHORIZED);

    case NGX_HTTP_EAS_CACHE_FULL:
        ngx_explicit_memzero(buf, sizeof(buf));
        return ngx_http_eas_preauth_full(r, ctx, pctx);

    case NGX_HTTP_EAS_CACHE_BUSY:
        ngx_explicit_memzero(buf, sizeof(buf));
        return ngx_http_eas_preauth_tries_busy(r, ctx, pctx);

    default: /* NGX_HTTP_EAS_CACHE_MISS */
        break;
    }

    rc = ngx_http_eas_preauth_verify(r, pcf, pctx, &password);

    ngx_explicit_memzero(buf, sizeof(buf));

    return rc;
}


/*
 * The log phase: the edge accepted the credentials and the backend
 * refused them.  The two credential stores disagree (a source answering
 * yes to everyone, a password changed in one store only): a warning an
 * operator sees, with the user and the source, at most one per worker
 * every NGX_HTTP_EAS_PREAUTH_LOG_EVERY seconds.
 */

ngx_int_t
ngx_http_eas_preauth_log_check(ngx_http_request_t *r)
{
    ngx_str_t                     source;
    ngx_http_eas_ctx_t           *ctx;
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_preauth_conf_t  *pcf;

    if (r != r->main || r->upstream == NULL
        || r->upstream->headers_in.status_n != NGX_HTTP_UNAUTHORIZED)
    {
        return NGX_OK;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->authenticated) {
        return NGX_OK;
    }

    if (ngx_http_eas_preauth_throttle(&ngx_http_eas_preauth_disagree)
        != NGX_OK)
    {
        return NGX_OK;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    pcf = &elcf->preauth;

    if (pcf->file) {
        source = *ngx_http_eas_passwd_name(pcf->file);

    } else if (pcf->ldap) {
        source = *ngx_http_eas_ldap_name(pcf->ldap);

    } else if (pcf->uri.len) {
        source = pcf->uri;

    } else {
        ngx_str_set(&source, "none");
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "eas: backend answered 401 to user \"%V\" accepted at "
                  "the edge (auth=%V, credential source \"%V\"): the "
                  "credential stores disagree (%ui more not logged)",
                  &ctx->user, &ctx->auth, &source,
                  ngx_http_eas_preauth_disagree.skipped);

    ngx_http_eas_preauth_disagree.skipped = 0;

    return NGX_OK;
}


/* NGX_OK: write the warning now (t->skipped were not written before) */

static ngx_int_t
ngx_http_eas_preauth_throttle(ngx_http_eas_preauth_throttle_t *t)
{
    time_t  now;

    now = ngx_time();

    if (t->logged && now - t->logged < NGX_HTTP_EAS_PREAUTH_LOG_EVERY) {
        t->skipped++;
        return NGX_DECLINED;
    }

    t->logged = now;

    return NGX_OK;
}


/* ask the credential source; the password is copied, never kept */

static ngx_int_t
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
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_preauth_ctx_t   *pctx;
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

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (elcf->preauth.ldap) {
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

static u_char *
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

    ngx_http_eas_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r->main, ngx_http_eas_module);

    pctx->status = r->headers_out.status;
    pctx->state = NGX_HTTP_EAS_PREAUTH_DONE;

    if (pctx->status >= NGX_HTTP_OK
        && pctx->status < NGX_HTTP_SPECIAL_RESPONSE
        && !elcf->preauth.any_answer
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


/* the source answered: remember it, count a failure, answer */

static ngx_int_t
ngx_http_eas_preauth_finish(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    u_char                       *p;
    ngx_uint_t                    locked, level;
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_preauth_conf_t  *pcf;
    u_char                        why[NGX_MAX_ERROR_STR];

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    pcf = &elcf->preauth;

    if (pctx->busy || pctx->result == NGX_ERROR) {
        /*
         * a source error is not counted: the try reserved for it is
         * given back now; so is one that never reached the thread pool
         * (its queue was full); a check that ran out of time may still
         * reach the source, so it counts
         */
        ngx_http_eas_cache_release(pcf->zone, &pctx->query, pcf,
                                   pctx->busy
                                   == NGX_HTTP_EAS_PREAUTH_TIMED_OUT);
    }

    if (pctx->busy) {
        return ngx_http_eas_preauth_busy(r, ctx, pctx);
    }

    if (pctx->result == NGX_ERROR && pcf->ldap) {
        return ngx_http_eas_preauth_down(r, ctx, pctx);
    }

    if (pctx->result == NGX_ERROR) {
        if (pctx->foreign) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "eas: preauth failed: credential source \"%V\" "
                          "answered %ui without \"MS-ASProtocolVersions\", "
                          "not an ActiveSync server's answer, for user "
                          "\"%V\" (\"answer=status\" takes any 2xx)",
                          &pcf->uri, pctx->status, &pctx->user);

        } else if (pctx->status) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "eas: preauth failed: credential source answered "
                          "%ui for user \"%V\"", pctx->status, &pctx->user);
        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "eas: preauth failed: password hash of user "
                          "\"%V\" could not be computed", &pctx->identity);
        }

        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_error,
                                           "auth_error",
                                           NGX_HTTP_SERVICE_UNAVAILABLE);
    }

    locked = ngx_http_eas_cache_update(pcf->zone, &pctx->query,
                                       pctx->result == NGX_OK, pcf);

    if (pctx->query.log_full) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "eas: zone \"%V\" is full: a failure of user \"%V\" "
                      "from \"%V\" could not be counted",
                      &pcf->zone->shm.name, &pctx->identity, &pctx->addr);
    }

    if (pctx->result == NGX_OK) {
        if (pcf->ldap) {
            /* kept with the credential; evicted, it is asked again */
            (void) ngx_http_eas_cache_set_extra(pcf->zone, pctx->digest,
                                                pctx->extra.data,
                                                pctx->extra.len);
        }

        return ngx_http_eas_preauth_accept(r, ctx, pctx,
                                           &ngx_http_eas_auth_ok);
    }

    p = why;

    if (locked & NGX_HTTP_EAS_CACHE_USER_LOCKED) {
        p = ngx_snprintf(p, why + sizeof(why) - p,
                         ", user \"%V\" locked out for %T s after %ui "
                         "failures", &pctx->identity, pcf->lock_time,
                         pctx->query.failures);
    }

    if (locked & NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED) {
        p = ngx_snprintf(p, why + sizeof(why) - p,
                         ", address \"%V\" locked out for %T s",
                         &pctx->addr, pcf->lock_time);
    }

    /* a lockout starting is worth an operator's eye */

    level = NGX_HTTP_EAS_LOG_LEVEL(r);
    level = locked ? ngx_min(level, NGX_LOG_NOTICE) : level;

    ngx_log_error(level, r->connection->log, 0,
                  "eas: preauth refused: %s \"%V\"%*s",
                  pctx->refusal ? pctx->refusal
                  : pctx->unknown ? "unknown user"
                                  : "invalid password for user",
                  &pctx->user, p - why, why);

    return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                       &ngx_http_eas_auth_invalid,
                                       "auth_invalid",
                                       NGX_HTTP_UNAUTHORIZED);
}


static ngx_int_t
ngx_http_eas_preauth_accept(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx, ngx_str_t *auth)
{
    ngx_http_eas_loc_conf_t  *elcf;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas preauth: user \"%V\" %V", &pctx->identity, auth);

    ctx->user = pctx->identity;
    ctx->authenticated = 1;
    ctx->auth = *auth;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (elcf->preauth.ldap) {
        ctx->directory = pctx->extra;
        ctx->directory_set = 1;

        /* identity=: the user as the directory names it */
        (void) ngx_http_eas_ldap_identity(&pctx->extra, &ctx->user);
    }

    /* as auth_basic: enough on its own under "satisfy any" */

    pctx->state = NGX_HTTP_EAS_PREAUTH_DECIDED;
    pctx->rc = NGX_OK;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_preauth_refuse(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx, ngx_str_t *auth, const char *reason,
    ngx_int_t status)
{
    ngx_table_elt_t          *h;
    ngx_http_eas_loc_conf_t  *elcf;

    ctx->auth = *auth;
    ctx->reason.data = (u_char *) reason;
    ctx->reason.len = ngx_strlen(reason);

    pctx->state = NGX_HTTP_EAS_PREAUTH_DECIDED;
    pctx->rc = status;

    if (status != NGX_HTTP_UNAUTHORIZED) {
        return status;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value = elcf->preauth.challenge;

    r->headers_out.www_authenticate = h;

    return status;
}


static ngx_int_t
ngx_http_eas_preauth_malformed(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx, eas_basic_reason_e reason)
{
    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                  "eas: preauth refused: %s", eas_basic_reason_text(reason));

    return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                       reason == EAS_BASIC_MISSING
                                       ? &ngx_http_eas_auth_missing
                                       : &ngx_http_eas_auth_malformed,
                                       eas_basic_reason_name(reason),
                                       NGX_HTTP_UNAUTHORIZED);
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

static ngx_int_t
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


/*
 * The directory did not answer: a credential known good within the
 * grace time keeps working, anything else is a 503 with Retry-After.
 * The state change itself was logged once (ngx_http_eas_ldap_result).
 */

static ngx_int_t
ngx_http_eas_preauth_down(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_preauth_conf_t  *pcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    pcf = &elcf->preauth;

    if (pctx->stale && ngx_http_eas_preauth_extra(r, pcf, pctx) == NGX_OK) {
        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth: directory \"%V\" is down, user \"%V\" "
                      "accepted in the grace time",
                      ngx_http_eas_ldap_name(pcf->ldap), &pctx->user);

        return ngx_http_eas_preauth_accept(r, ctx, pctx,
                                           &ngx_http_eas_auth_grace);
    }

    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                  "eas: preauth refused: directory \"%V\" is down, user "
                  "\"%V\"", ngx_http_eas_ldap_name(pcf->ldap), &pctx->user);

    if (ngx_http_eas_preauth_retry_after(r,
                                         ngx_http_eas_ldap_retry(pcf->ldap))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                       &ngx_http_eas_auth_down,
                                       "auth_directory_down",
                                       NGX_HTTP_SERVICE_UNAVAILABLE);
}


/*
 * The thread pool's queue was full, or the check was not done by
 * eas_preauth_timeout: 503 with Retry-After, nothing counted against
 * the user.  Overload is logged at most once per worker every
 * NGX_HTTP_EAS_PREAUTH_LOG_EVERY seconds; each request has its reason
 * in $eas_reason.
 */

static ngx_int_t
ngx_http_eas_preauth_busy(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    time_t                        retry;
    ngx_uint_t                    full;
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_preauth_conf_t  *pcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    pcf = &elcf->preauth;

    full = (pctx->busy == NGX_HTTP_EAS_PREAUTH_QUEUE_FULL);

    if (ngx_http_eas_preauth_throttle(&ngx_http_eas_preauth_overload)
        == NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "eas: preauth refused: %s, user \"%V\", answering "
                      "503 (%ui more not logged)",
                      full ? "the thread pool's queue is full"
                           : "credential check not done within "
                             "eas_preauth_timeout",
                      &pctx->user, ngx_http_eas_preauth_overload.skipped);

        ngx_http_eas_preauth_overload.skipped = 0;
    }

    retry = (time_t) ((pcf->timeout + 999) / 1000);

    if (ngx_http_eas_preauth_retry_after(r, retry) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                       &ngx_http_eas_auth_busy,
                                       full ? "auth_queue_full"
                                            : "auth_timeout",
                                       NGX_HTTP_SERVICE_UNAVAILABLE);
}


/*
 * As many tries of this user (or from this address) are being verified
 * as its lockout allows: the source is not asked until they are
 * answered and counted.  Nothing about the password is told.
 */

static ngx_int_t
ngx_http_eas_preauth_tries_busy(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx)
{
    if (pctx->query.busy_address) {
        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: address \"%V\" has as many "
                      "tries being verified as its lockout allows, user "
                      "\"%V\"", &pctx->addr, &pctx->identity);

    } else {
        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: user \"%V\" has as many tries "
                      "being verified as its lockout allows",
                      &pctx->identity);
    }

    if (ngx_http_eas_preauth_retry_after(r, NGX_HTTP_EAS_PREAUTH_BUSY_RETRY)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                       &ngx_http_eas_auth_busy,
                                       pctx->query.busy_address
                                       ? "auth_address_busy"
                                       : "auth_user_busy",
                                       NGX_HTTP_SERVICE_UNAVAILABLE);
}


static void
ngx_http_eas_preauth_abandon(void *data)
{
    ngx_http_eas_preauth_ctx_t  *pctx = data;

    ngx_http_eas_cache_release(pctx->conf->zone, &pctx->query, pctx->conf,
                               1);
}


static ngx_int_t
ngx_http_eas_preauth_retry_after(ngx_http_request_t *r, time_t t)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "Retry-After");

    h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%T", t) - h->value.data;

    return NGX_OK;
}


/*
 * What the zone is asked: the credentials' digest, the address counted
 * (an IPv6 client by its /64, which one subscriber or host is given
 * whole) and, with a lockout, the device's record key and the
 * password's secret (docs/authentication.md, "The lockout model").
 */

static ngx_int_t
ngx_http_eas_preauth_query(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password)
{
    ngx_str_t                   device_id;
    ngx_http_eas_cache_query_t *q;
#if (NGX_HAVE_INET6)
    u_char                     *p;
    size_t                      n;
    struct in6_addr             a6;
    struct sockaddr_in6        *sin6;
#endif

    q = &pctx->query;

    pctx->addr = r->connection->addr_text;

#if (NGX_HAVE_INET6)

    if (r->connection->sockaddr->sa_family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;

        if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            a6 = sin6->sin6_addr;
            ngx_memzero(&a6.s6_addr[8], 8);

            p = ngx_pnalloc(r->pool, NGX_INET6_ADDRSTRLEN + 3);
            if (p == NULL) {
                return NGX_ERROR;
            }

            n = ngx_inet6_ntop(a6.s6_addr, p, NGX_INET6_ADDRSTRLEN);

            pctx->addr.data = p;
            pctx->addr.len = ngx_cpymem(p + n, "/64", 3) - p;
        }
    }

#endif

    q->digest = pctx->digest;
    q->user = &pctx->identity;
    q->addr = &pctx->addr;
    q->device = NULL;
    q->secret = NULL;

    if (pcf->user_limit == 0 && pcf->address_limit == 0) {
        return NGX_OK;
    }

    /* no DeviceId (OPTIONS) is a device of its own */

    device_id.len = 0;
    device_id.data = NULL;

    if (ctx->parsed) {
        device_id.data = (u_char *) ctx->request.device_id.data;
        device_id.len = ctx->request.device_id.len;
    }

    if (ngx_http_eas_memo_device(r, pcf->zone, &pctx->identity, &device_id,
                                 password, pctx->device, pctx->secret)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    q->device = pctx->device;
    q->secret = pctx->secret;

    return NGX_OK;
}


/*
 * No room in the zone for the counters a refusal would need: the source
 * is not asked, the request is refused (never let through uncounted).
 * One alert per zone a minute says so; each request its info line.
 */

static ngx_int_t
ngx_http_eas_preauth_full(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_preauth_conf_t  *pcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    pcf = &elcf->preauth;

    if (pctx->query.log_full) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "eas: zone \"%V\" is full: no room for the failure "
                      "counters of new users and addresses, their "
                      "verifications are refused until counters expire",
                      &pcf->zone->shm.name);
    }

    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                  "eas: preauth refused: zone \"%V\" is full, user \"%V\" "
                  "from \"%V\"", &pcf->zone->shm.name, &pctx->identity,
                  &pctx->addr);

    if (ngx_http_eas_preauth_retry_after(r, pcf->window) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                       &ngx_http_eas_auth_full,
                                       "auth_zone_full",
                                       NGX_HTTP_SERVICE_UNAVAILABLE);
}
