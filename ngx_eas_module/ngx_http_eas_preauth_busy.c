
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The 503 answers of pre-authentication, each with its Retry-After:
 * the thread pool's queue full or a check not done in time, as many
 * tries of a user or an address under way as its lockout allows, no
 * room in the zone for failure counters.  Nothing is counted against
 * the user and nothing about the password is told; the step itself is
 * ngx_http_eas_preauth.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"


static ngx_str_t  ngx_http_eas_auth_full = ngx_string("full");
static ngx_str_t  ngx_http_eas_auth_busy = ngx_string("busy");

/* per worker: when overload was last written */
static ngx_http_eas_preauth_throttle_t  ngx_http_eas_preauth_overload;


/*
 * The thread pool's queue was full, or the check was not done by
 * eas_preauth_timeout: 503 with Retry-After, nothing counted against
 * the user.  Overload is logged at most once per worker every
 * NGX_HTTP_EAS_PREAUTH_LOG_EVERY seconds; each request has its reason
 * in $eas_reason.
 */

ngx_int_t
ngx_http_eas_preauth_busy(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    time_t                        retry;
    ngx_uint_t                    full;
    ngx_http_eas_preauth_conf_t  *pcf;

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

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

ngx_int_t
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


/*
 * No room in the zone for the counters a refusal would need: the source
 * is not asked, the request is refused (never let through uncounted).
 * One alert per zone a minute says so; each request its info line.
 */

ngx_int_t
ngx_http_eas_preauth_full(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    ngx_http_eas_preauth_conf_t  *pcf;

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

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


ngx_int_t
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
