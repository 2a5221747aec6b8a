
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_preauth.h"


/*
 * Step 2 of the request flow (docs/authentication.md): Basic
 * credentials → lockout (known-good devices pass) → cache → room for
 * the failure counters → credential source.  The source is a password
 * file checked in the thread pool, a directory, or a subrequest.
 * Nothing refused here reaches the backend.  The 503 answers are in
 * ngx_http_eas_preauth_busy.c.
 */


static ngx_int_t ngx_http_eas_preauth_accept(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *auth);
static ngx_int_t ngx_http_eas_preauth_malformed(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx,
    eas_basic_reason_e reason);
static ngx_int_t ngx_http_eas_preauth_down(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
static ngx_int_t ngx_http_eas_preauth_query(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password, ngx_str_t *device_id, ngx_uint_t remembered);
static void ngx_http_eas_preauth_abandon(void *data);


static ngx_str_t  ngx_http_eas_auth_ok = ngx_string("ok");
static ngx_str_t  ngx_http_eas_auth_cached = ngx_string("cached");
static ngx_str_t  ngx_http_eas_auth_invalid = ngx_string("invalid");
static ngx_str_t  ngx_http_eas_auth_locked = ngx_string("locked");
static ngx_str_t  ngx_http_eas_auth_error = ngx_string("error");
static ngx_str_t  ngx_http_eas_auth_missing = ngx_string("missing");
static ngx_str_t  ngx_http_eas_auth_malformed = ngx_string("malformed");
static ngx_str_t  ngx_http_eas_auth_grace = ngx_string("grace");
static ngx_str_t  ngx_http_eas_auth_down = ngx_string("down");


ngx_int_t
ngx_http_eas_preauth_handler(ngx_http_request_t *r)
{
    void                         *memo;
    size_t                        n, used;
    u_char                       *source;
    ngx_int_t                     rc;
    ngx_str_t                     password, device_id, *did;
    ngx_uint_t                    found, remembered;
    eas_basic_t                   basic;
    ngx_table_elt_t              *h;
    ngx_pool_cleanup_t           *cln;
    ngx_http_eas_ctx_t           *ctx;
    ngx_http_eas_preauth_ctx_t   *pctx;
    ngx_http_eas_preauth_conf_t  *pcf;
    u_char                        buf[EAS_BASIC_BUFFER_SIZE];
    u_char                        id[EAS_BASIC_USER_MAX];

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

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

    remembered = 0;

    if (ngx_http_eas_memo_basic(r, pcf, &h->value, buf, &basic, id, &n,
                                &memo)
        == NGX_OK)
    {
        remembered = 1;
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

    /* what buf holds: the header's user and password, or its decoding */

    used = remembered ? basic.user.len + basic.password.len : sizeof(buf);

    pctx->user.data = ngx_pnalloc(r->pool, basic.user.len + n);
    if (pctx->user.data == NULL) {
        ngx_explicit_memzero(buf, used);
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
            ngx_explicit_memzero(buf, used);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /*
     * With a lockout, the device's key and secret are asked too: of the
     * DeviceId, none (OPTIONS) being a device of its own
     */

    did = NULL;

    if (pcf->user_limit || pcf->address_limit) {
        device_id.len = 0;
        device_id.data = NULL;

        if (ctx->parsed) {
            device_id.data = (u_char *) ctx->request.device_id.data;
            device_id.len = ctx->request.device_id.len;
        }

        did = &device_id;
    }

    /* the header's digests as this connection made them last, or made */

    if (remembered
        && ngx_http_eas_memo_digests(memo, source, did, pctx->digest,
                                     pctx->device, pctx->secret)
           != NGX_OK)
    {
        remembered = 0;
    }

    if (!remembered
        && ngx_http_eas_memo_digest(r, pcf->zone, source, &pctx->user,
                                    &password, pctx->digest)
           != NGX_OK)
    {
        ngx_explicit_memzero(buf, used);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_eas_preauth_query(r, pcf, pctx, &password, did, remembered)
        != NGX_OK)
    {
        ngx_explicit_memzero(buf, used);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!remembered) {
        ngx_http_eas_memo_digests_keep(r, pcf, &h->value, source, did,
                                       pctx->digest, pctx->device,
                                       pctx->secret);
    }

    found = ngx_http_eas_cache_lookup(pcf->zone, &pctx->query, pcf);
    found = ngx_http_eas_redis_lookup(r, pcf, &pctx->query, found);

    /* a try reserved on the counters ends with the source's answer, or
     * with the request: a try whose client left counts as a failure */

    if (pctx->query.pending_user || pctx->query.pending_address) {
        pctx->conf = pcf;

        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            ngx_http_eas_cache_release(pcf->zone, &pctx->query, pcf, 0);
            ngx_explicit_memzero(buf, used);
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
            ngx_explicit_memzero(buf, used);
            return ngx_http_eas_preauth_accept(r, ctx, pctx,
                                               &ngx_http_eas_auth_cached);
        }

        break;

    case NGX_HTTP_EAS_CACHE_STALE:
        pctx->stale = 1;
        break;

    case NGX_HTTP_EAS_CACHE_INVALID:
        ngx_explicit_memzero(buf, used);

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: invalid password for user "
                      "\"%V\" (cached)", &pctx->user);

        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_invalid,
                                           "auth_invalid",
                                           NGX_HTTP_UNAUTHORIZED);

    case NGX_HTTP_EAS_CACHE_USER_LOCKED:
        ngx_explicit_memzero(buf, used);

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: user \"%V\" is locked out for "
                      "%T s more", &pctx->identity, pctx->query.left);

        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_locked,
                                           "auth_user_locked",
                                           NGX_HTTP_UNAUTHORIZED);

    case NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED:
        ngx_explicit_memzero(buf, used);

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: preauth refused: address \"%V\" is locked out "
                      "for %T s more, user \"%V\"",
                      &pctx->addr, pctx->query.left, &pctx->identity);

        return ngx_http_eas_preauth_refuse(r, ctx, pctx,
                                           &ngx_http_eas_auth_locked,
                                           "auth_address_locked",
                                           NGX_HTTP_UNAUTHORIZED);

    case NGX_HTTP_EAS_CACHE_FULL:
        ngx_explicit_memzero(buf, used);
        return ngx_http_eas_preauth_full(r, ctx, pctx);

    case NGX_HTTP_EAS_CACHE_BUSY:
        ngx_explicit_memzero(buf, used);
        return ngx_http_eas_preauth_tries_busy(r, ctx, pctx);

    case NGX_HTTP_EAS_CACHE_ASKED:
        /* the shared state is asked first: this runs again after */
        ngx_explicit_memzero(buf, used);
        ctx->preauth = NULL;
        return NGX_AGAIN;

    default: /* NGX_HTTP_EAS_CACHE_MISS */
        break;
    }

    rc = ngx_http_eas_preauth_verify(r, pcf, pctx, &password);

    ngx_explicit_memzero(buf, used);

    return rc;
}


/* the source answered: remember it, count a failure, answer */

ngx_int_t
ngx_http_eas_preauth_finish(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    u_char                       *p;
    ngx_uint_t                    locked, level;
    ngx_http_eas_preauth_conf_t  *pcf;
    u_char                        why[NGX_MAX_ERROR_STR];

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

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
        ngx_http_eas_redis_release(r, pctx->busy
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
    ngx_http_eas_redis_answer(r, pcf, &pctx->query, pctx->result == NGX_OK);

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
    ngx_http_eas_preauth_conf_t  *pcf;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas preauth: user \"%V\" %V", &pctx->identity, auth);

    ctx->user = pctx->identity;
    ctx->authenticated = 1;
    ctx->auth = *auth;

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

    if (pcf->ldap) {
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


ngx_int_t
ngx_http_eas_preauth_refuse(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx, ngx_str_t *auth, const char *reason,
    ngx_int_t status)
{
    ngx_table_elt_t              *h;
    ngx_http_eas_preauth_conf_t  *pcf;

    ctx->auth = *auth;
    ctx->reason.data = (u_char *) reason;
    ctx->reason.len = ngx_strlen(reason);

    pctx->state = NGX_HTTP_EAS_PREAUTH_DECIDED;
    pctx->rc = status;

    if (status != NGX_HTTP_UNAUTHORIZED) {
        return status;
    }

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value = pcf->challenge;

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
 * The directory did not answer: a credential known good within the
 * grace time keeps working, anything else is a 503 with Retry-After.
 * The state change itself was logged once (ngx_http_eas_ldap_result).
 */

static ngx_int_t
ngx_http_eas_preauth_down(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_preauth_ctx_t *pctx)
{
    ngx_http_eas_preauth_conf_t  *pcf;

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

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


static void
ngx_http_eas_preauth_abandon(void *data)
{
    ngx_http_eas_preauth_ctx_t  *pctx = data;

    ngx_http_eas_cache_release(pctx->conf->zone, &pctx->query, pctx->conf,
                               1);
}


/*
 * What the zone is asked: the credentials' digest, the address counted
 * (an IPv6 client by its /64, which one subscriber or host is given
 * whole) and, with a lockout (device_id not NULL), the device's record
 * key and the password's secret (docs/authentication.md, "The lockout
 * model"); remembered: those two are in pctx already (the memo).
 */

static ngx_int_t
ngx_http_eas_preauth_query(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password, ngx_str_t *device_id, ngx_uint_t remembered)
{
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

    if (device_id == NULL) {
        return NGX_OK;
    }

    if (!remembered
        && ngx_http_eas_memo_device(r, pcf->zone, &pctx->identity, device_id,
                                    password, pctx->device, pctx->secret)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    q->device = pctx->device;
    q->secret = pctx->secret;

    return NGX_OK;
}
