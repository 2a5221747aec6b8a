
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"


/*
 * The pre-authentication zone (docs/authentication.md): one red-black
 * tree holds four kinds of node,
 *
 *     credentials   keyed digest of source, user and password: valid or
 *                   invalid until "expire"; LRU queue "credentials"
 *     user          normalised identity: failures in the window, lock
 *     address       client address as text (IPv6 by /64): the same
 *     known         keyed digest of identity and DeviceId: the digest of
 *                   the password a real source accepted for it, so that
 *                   the device keeps working through a lockout
 *
 * Users and addresses share the "counters" queue, most recently touched
 * first, so that a status endpoint can list every lockout by walking it
 * under the zone mutex.
 *
 * Budgets.  Every node takes one slab slot of at least
 * NGX_HTTP_EAS_CACHE_SLOT bytes, so that a slot freed by one kind fits
 * any other.  Credentials (a cache) may take a quarter of the zone's
 * pages, known-good devices a quarter, users and addresses together
 * half: no kind can take another's share.  Expired nodes of any kind go
 * first; then credentials and known devices drop their own least
 * recently used.  A live counter is never dropped: when one cannot be
 * made the request is refused (NGX_HTTP_EAS_CACHE_FULL), never let
 * through uncounted.
 */


#define NGX_HTTP_EAS_CACHE_EXPIRE  2      /* stale nodes freed per insert */
#define NGX_HTTP_EAS_CACHE_KNOWN_LEN  16  /* of a known device's key and
                                             secret: half a digest */

/* the zone's queues */
#define NGX_HTTP_EAS_CACHE_Q_CREDENTIALS  0
#define NGX_HTTP_EAS_CACHE_Q_COUNTERS     1   /* users and addresses */
#define NGX_HTTP_EAS_CACHE_Q_KNOWN        2

#define ngx_http_eas_cache_free(ctx, node)                                   \
    ngx_http_eas_zone_free(&(ctx)->zone, &(node)->zn)


static ngx_int_t ngx_http_eas_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_eas_cache_node_t *ngx_http_eas_cache_find(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, u_char *key, size_t len);
static ngx_http_eas_cache_node_t *ngx_http_eas_cache_get(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, u_char *key, size_t len,
    time_t now);
static ngx_uint_t ngx_http_eas_cache_queue(ngx_uint_t kind);
static ngx_http_eas_cache_node_t *ngx_http_eas_cache_reserve(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, ngx_str_t *key,
    time_t window, time_t now);
static void ngx_http_eas_cache_known(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    ngx_uint_t create, time_t now);
static ngx_int_t ngx_http_eas_cache_mac(ngx_http_eas_cache_ctx_t *ctx,
    ngx_str_t *parts, ngx_uint_t n, u_char *mac);
static ngx_uint_t ngx_http_eas_cache_count(ngx_http_eas_cache_node_t *node,
    ngx_uint_t limit, time_t window, time_t lock_time, time_t now);
static uint32_t ngx_http_eas_cache_hash(ngx_uint_t kind, u_char *key,
    size_t len);
static ngx_uint_t ngx_http_eas_cache_tries(ngx_http_eas_cache_node_t *node,
    time_t window, time_t now);
static void ngx_http_eas_cache_unreserve(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q);
static ngx_uint_t ngx_http_eas_cache_fail(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    time_t now);
static time_t ngx_http_eas_cache_locked(ngx_http_eas_cache_node_t *node,
    time_t now);
static ngx_int_t ngx_http_eas_cache_hmac_init(ngx_http_eas_cache_ctx_t *ctx);
static ngx_uint_t ngx_http_eas_cache_dropped(ngx_http_eas_cache_ctx_t *ctx,
    ngx_str_t *user, time_t verified);
static time_t ngx_http_eas_cache_msec(void);
static ngx_uint_t ngx_http_eas_cache_expired(ngx_http_eas_zone_node_t *zn,
    time_t now);
static void ngx_http_eas_cache_cleanup(void *data);


/* any distinct address: zones of this module, told from other modules' */
static u_char  ngx_http_eas_cache_tag_data;
void          *ngx_http_eas_cache_tag = &ngx_http_eas_cache_tag_data;


/* the budgets and eviction policy of the top of this file */
static const ngx_http_eas_zone_policy_t  ngx_http_eas_cache_policy = {
    3,                                          /* queues */
    4,                                          /* kinds */
    {
        /* credentials: a quarter, their own least recently used go */
        { offsetof(ngx_http_eas_cache_node_t, data), 0,
          NGX_HTTP_EAS_CACHE_Q_CREDENTIALS },
        /* users and addresses: half together, never dropped alive */
        { offsetof(ngx_http_eas_cache_node_t, data), 1, -1 },
        { offsetof(ngx_http_eas_cache_node_t, data), 1, -1 },
        /* known-good devices: a quarter, their own go */
        { offsetof(ngx_http_eas_cache_node_t, data), 2,
          NGX_HTTP_EAS_CACHE_Q_KNOWN }
    },
    { 4, 2, 4, 0 },                             /* shares */
    128,                                        /* the smallest slot */
    64,                                         /* nodes freed for one */
    8,                                          /* looked at for expired */
    NGX_HTTP_EAS_M_CACHE_EVICTED,
    ngx_http_eas_cache_expired
};


/* eas_preauth_zone zone=name:size; */

char *
ngx_http_eas_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_shm_zone_t            *shm_zone;
    ngx_pool_cleanup_t        *cln;
    ngx_http_eas_cache_ctx_t  *ctx;

    shm_zone = ngx_http_eas_zone_add(cf, cmd, ngx_http_eas_cache_tag);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_cache_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->zone.policy = &ngx_http_eas_cache_policy;

    shm_zone->init = ngx_http_eas_cache_init_zone;
    shm_zone->data = ctx;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_eas_cache_cleanup;
    cln->data = ctx;

    return NGX_CONF_OK;
}


/* a reference from eas_preauth_cache; checked in the merge */

ngx_shm_zone_t *
ngx_http_eas_cache_add(ngx_conf_t *cf, ngx_str_t *name)
{
    return ngx_shared_memory_add(cf, name, 0, ngx_http_eas_cache_tag);
}


static ngx_int_t
ngx_http_eas_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_eas_cache_ctx_t  *octx = data;

    ngx_int_t                  rc;
    ngx_http_eas_cache_ctx_t  *ctx;

    ctx = shm_zone->data;

    /* a reload: the cache, the counters and the key carry over */

    rc = ngx_http_eas_zone_init(&ctx->zone, shm_zone,
                                octx ? &octx->zone : NULL,
                                sizeof(ngx_http_eas_cache_sh_t));
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ctx->sh = (ngx_http_eas_cache_sh_t *) ctx->zone.sh;

    if (rc == NGX_DECLINED) {
        return ngx_http_eas_cache_hmac_init(ctx);
    }

    /* a key no one knows: digests in the zone say nothing offline */

    if (RAND_bytes(ctx->sh->key, sizeof(ctx->sh->key)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "RAND_bytes() failed for eas zone \"%V\"",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    return ngx_http_eas_cache_hmac_init(ctx);
}


/*
 * HMAC (RFC 2104) with the key's two padded blocks hashed once: each
 * request then copies a SHA-256 state instead of setting up a MAC,
 * which OpenSSL 3 makes costly (a provider fetch per call).  The
 * contexts are per process: the master makes them, workers inherit.
 */

static ngx_int_t
ngx_http_eas_cache_hmac_init(ngx_http_eas_cache_ctx_t *ctx)
{
    ngx_uint_t     i;
    EVP_MD_CTX    *inner, *outer;
    const EVP_MD  *md;
    u_char         ipad[64], opad[64];

    md = EVP_sha256();

    ctx->inner = EVP_MD_CTX_new();
    ctx->outer = EVP_MD_CTX_new();
    ctx->work = EVP_MD_CTX_new();

    if (ctx->inner == NULL || ctx->outer == NULL || ctx->work == NULL) {
        return NGX_ERROR;
    }

    inner = ctx->inner;
    outer = ctx->outer;

    ngx_memzero(ipad, sizeof(ipad));
    ngx_memcpy(ipad, ctx->sh->key, sizeof(ctx->sh->key));
    ngx_memcpy(opad, ipad, sizeof(ipad));

    for (i = 0; i < sizeof(ipad); i++) {
        ipad[i] ^= 0x36;
        opad[i] ^= 0x5c;
    }

    if (EVP_DigestInit_ex(inner, md, NULL) != 1
        || EVP_DigestUpdate(inner, ipad, sizeof(ipad)) != 1
        || EVP_DigestInit_ex(outer, md, NULL) != 1
        || EVP_DigestUpdate(outer, opad, sizeof(opad)) != 1)
    {
        ngx_explicit_memzero(ipad, sizeof(ipad));
        ngx_explicit_memzero(opad, sizeof(opad));
        return NGX_ERROR;
    }

    ngx_explicit_memzero(ipad, sizeof(ipad));
    ngx_explicit_memzero(opad, sizeof(opad));

    return NGX_OK;
}


static void
ngx_http_eas_cache_cleanup(void *data)
{
    ngx_http_eas_cache_ctx_t  *ctx = data;

    /* EVP_MD_CTX_free(NULL) does nothing */

    EVP_MD_CTX_free(ctx->inner);
    EVP_MD_CTX_free(ctx->outer);
    EVP_MD_CTX_free(ctx->work);
}


/*
 * HMAC-SHA-256 under the zone's key of the credential source, the user
 * as sent and the password: the same pair from the same source gives
 * the same digest in every worker; a changed password file, another
 * user spelling or another password a different one.  The key is set
 * once when the zone is created, so it is read without the mutex.
 */

ngx_int_t
ngx_http_eas_cache_digest(ngx_shm_zone_t *zone, u_char *source,
    ngx_str_t *user, ngx_str_t *password, u_char *digest)
{
    u_char                     *p;
    ngx_int_t                   rc;
    EVP_MD_CTX                 *work;
    ngx_http_eas_cache_ctx_t   *ctx;
    u_char                      buf[NGX_HTTP_EAS_DIGEST_LEN + 2
                                    + EAS_BASIC_USER_MAX
                                    + EAS_BASIC_PASSWORD_MAX];
    u_char                      inner[NGX_HTTP_EAS_DIGEST_LEN];

    ctx = zone->data;
    work = ctx->work;

    if (user->len > EAS_BASIC_USER_MAX
        || password->len > EAS_BASIC_PASSWORD_MAX)
    {
        return NGX_ERROR;
    }

    /* lengths first: no two (user, password) pairs give the same input */

    p = ngx_cpymem(buf, source, NGX_HTTP_EAS_DIGEST_LEN);
    *p++ = (u_char) (user->len >> 8);
    *p++ = (u_char) user->len;
    p = ngx_cpymem(p, user->data, user->len);
    p = ngx_cpymem(p, password->data, password->len);

    rc = NGX_ERROR;

    if (EVP_MD_CTX_copy_ex(work, ctx->inner) == 1
        && EVP_DigestUpdate(work, buf, p - buf) == 1
        && EVP_DigestFinal_ex(work, inner, NULL) == 1
        && EVP_MD_CTX_copy_ex(work, ctx->outer) == 1
        && EVP_DigestUpdate(work, inner, sizeof(inner)) == 1
        && EVP_DigestFinal_ex(work, digest, NULL) == 1)
    {
        rc = NGX_OK;
    }

    ngx_explicit_memzero(buf, p - buf);
    ngx_explicit_memzero(inner, sizeof(inner));

    return rc;
}


/*
 * The known-good device record's key and secret: HMAC-SHA-256 under the
 * zone's key of the identity with the DeviceId (the key), and of the
 * identity with the password (the secret).  Neither is a function of the
 * credential source: a changed password file leaves a device known good
 * and the source itself decides again (docs/authentication.md).
 */

ngx_int_t
ngx_http_eas_cache_device(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_str_t *password, u_char *device,
    u_char *secret)
{
    u_char                     len[2];
    ngx_str_t                  parts[4];
    ngx_http_eas_cache_ctx_t  *ctx;

    ctx = zone->data;

    if (user->len > 0xffff) {
        return NGX_ERROR;
    }

    len[0] = (u_char) (user->len >> 8);
    len[1] = (u_char) user->len;

    /* a tag, the user's length and the user: no part runs into another */

    ngx_str_set(&parts[0], "device");
    parts[1].data = len;
    parts[1].len = 2;
    parts[2] = *user;
    parts[3] = *device_id;

    if (ngx_http_eas_cache_mac(ctx, parts, 4, device) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&parts[0], "secret");
    parts[3] = *password;

    return ngx_http_eas_cache_mac(ctx, parts, 4, secret);
}


static ngx_int_t
ngx_http_eas_cache_mac(ngx_http_eas_cache_ctx_t *ctx, ngx_str_t *parts,
    ngx_uint_t n, u_char *mac)
{
    ngx_uint_t   i;
    EVP_MD_CTX  *work;
    u_char       inner[NGX_HTTP_EAS_DIGEST_LEN];

    work = ctx->work;

    if (EVP_MD_CTX_copy_ex(work, ctx->inner) != 1) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (EVP_DigestUpdate(work, parts[i].data, parts[i].len) != 1) {
            return NGX_ERROR;
        }
    }

    if (EVP_DigestFinal_ex(work, inner, NULL) != 1
        || EVP_MD_CTX_copy_ex(work, ctx->outer) != 1
        || EVP_DigestUpdate(work, inner, sizeof(inner)) != 1
        || EVP_DigestFinal_ex(work, mac, NULL) != 1)
    {
        ngx_explicit_memzero(inner, sizeof(inner));
        return NGX_ERROR;
    }

    ngx_explicit_memzero(inner, sizeof(inner));

    return NGX_OK;
}


/*
 * What the zone knows before the credential source is asked.  A locked
 * user or address comes first: while it lasts, only a known-good device
 * (identity, DeviceId and password as a real source accepted them
 * before) goes on, and a known DeviceId with another password ends that
 * device's exemption (it was a guess).  Then the cache: a valid answer
 * passes, a refusal refuses.  A request that goes on to the source has
 * its user's and address's counters in the zone first, so that a
 * refusal is always counted: with no room for them, FULL.
 */

ngx_uint_t
ngx_http_eas_cache_lookup(ngx_shm_zone_t *zone,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf)
{
    time_t                      now, t;
    ngx_uint_t                  rc;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node, *user, *addr, *known;

    ctx = zone->data;
    now = ngx_time();
    q->asked = ngx_http_eas_cache_msec();
    q->left = 0;
    q->known = 0;
    q->log_full = 0;
    q->busy_address = 0;
    q->pending_user = 0;
    q->pending_address = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    user = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_USER,
                                   q->user->data, q->user->len);

    addr = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_ADDRESS,
                                   q->addr->data, q->addr->len);

    known = NULL;

    if (q->device) {
        known = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_KNOWN,
                                        q->device,
                                        NGX_HTTP_EAS_CACHE_KNOWN_LEN);

        if (known && known->expire <= now) {
            ngx_http_eas_cache_free(ctx, known);
            known = NULL;
        }

        if (known
            && ngx_http_eas_secret_equal(known->data + known->zn.len,
                                         known->zn.extra, q->secret,
                                         NGX_HTTP_EAS_CACHE_KNOWN_LEN))
        {
            q->known = 1;
        }
    }

    rc = NGX_HTTP_EAS_CACHE_MISS;

    t = user ? ngx_http_eas_cache_locked(user, now) : 0;

    if (t) {
        rc = NGX_HTTP_EAS_CACHE_USER_LOCKED;

    } else {
        t = addr ? ngx_http_eas_cache_locked(addr, now) : 0;

        if (t) {
            rc = NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED;
        }
    }

    if (rc != NGX_HTTP_EAS_CACHE_MISS) {

        if (q->known) {
            /* the device keeps its place for as long as it comes back */
            known->expire = now + pcf->known;
            rc = NGX_HTTP_EAS_CACHE_MISS;

        } else {
            if (known) {
                /* a known DeviceId with another password: a guess */
                ngx_http_eas_cache_free(ctx, known);
            }

            q->left = t;
            goto done;
        }
    }

    node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                   q->digest, NGX_HTTP_EAS_DIGEST_LEN);

    /* an admin dropped the user's credentials after this answer */

    if (node && ctx->sh->ndropped
        && ngx_http_eas_cache_dropped(ctx, q->user, node->window_start))
    {
        ngx_http_eas_cache_free(ctx, node);
        node = NULL;
    }

    if (node && node->expire > now) {
        ngx_http_eas_zone_touch(&ctx->zone, &node->zn,
                                NGX_HTTP_EAS_CACHE_Q_CREDENTIALS);

        if (!node->zn.mark) {
            rc = NGX_HTTP_EAS_CACHE_INVALID;
            goto done;
        }

        /* past "fresh", a valid answer only serves while the source is down */

        if (node->u.fresh > now) {
            ngx_http_eas_cache_known(ctx, q, pcf, 1, now);
            rc = NGX_HTTP_EAS_CACHE_VALID;
            goto done;
        }

        rc = NGX_HTTP_EAS_CACHE_STALE;

    } else if (node) {
        ngx_http_eas_cache_free(ctx, node);
    }

    /*
     * The source will be asked.  A known-good device's password is no
     * guess: it needs no counter.  Everyone else's answer must be
     * countable.
     */

    if (q->known) {
        goto done;
    }

    user = NULL;
    addr = NULL;

    if ((pcf->user_limit
         && (user = ngx_http_eas_cache_reserve(ctx, NGX_HTTP_EAS_CACHE_USER,
                                               q->user, pcf->window, now))
            == NULL)
        || (pcf->address_limit
            && (addr = ngx_http_eas_cache_reserve(ctx,
                                                  NGX_HTTP_EAS_CACHE_ADDRESS,
                                                  q->addr, pcf->window, now))
               == NULL))
    {
        rc = NGX_HTTP_EAS_CACHE_FULL;

        q->log_full = ngx_http_eas_zone_full(&ctx->zone, now);

        goto done;
    }

    /*
     * A failure is counted when the source answers; until then the try
     * is reserved on the counters, so that tries sent side by side are
     * bounded by the limit as tries sent one after another are.
     */

    if (user
        && ngx_http_eas_cache_tries(user, pcf->window, now)
           >= pcf->user_limit)
    {
        rc = NGX_HTTP_EAS_CACHE_BUSY;
        goto done;
    }

    if (addr
        && ngx_http_eas_cache_tries(addr, pcf->window, now)
           >= pcf->address_limit)
    {
        rc = NGX_HTTP_EAS_CACHE_BUSY;
        q->busy_address = 1;
        goto done;
    }

    if (user) {
        user->u.pending++;
        q->pending_user = 1;
    }

    if (addr) {
        addr->u.pending++;
        q->pending_address = 1;
    }

done:

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    if (rc == NGX_HTTP_EAS_CACHE_VALID || rc == NGX_HTTP_EAS_CACHE_INVALID) {
        (void) ngx_atomic_fetch_add(&ctx->sh->hits, 1);

    } else {
        (void) ngx_atomic_fetch_add(&ctx->sh->misses, 1);
    }

    return rc;
}


/*
 * The credential source answered.  The answer is cached.  A refusal
 * counts one failure for the user and one for the address (a repeated
 * wrong password is answered from the cache and counts once per
 * "invalid" time) and ends a known-good device whose password it was;
 * a success makes the device known good, unless a lockout began while
 * the source was asked.  A success does not clear the failures: they
 * end with their window.  Returns the NGX_HTTP_EAS_CACHE_*_LOCKED bits
 * of the lockouts this answer started.
 */

ngx_uint_t
ngx_http_eas_cache_update(ngx_shm_zone_t *zone,
    ngx_http_eas_cache_query_t *q, ngx_uint_t valid,
    ngx_http_eas_preauth_conf_t *pcf)
{
    time_t                      now, ttl;
    ngx_uint_t                  locked, create, counted;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    now = ngx_time();
    locked = 0;
    q->failures = 0;
    q->log_full = 0;

    ttl = valid ? pcf->valid : pcf->invalid;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    /* the try reserved at lookup ends here: counted below, or not */

    ngx_http_eas_cache_unreserve(ctx, q);

    ngx_http_eas_zone_expire(&ctx->zone, NGX_HTTP_EAS_CACHE_Q_CREDENTIALS,
                             now, NGX_HTTP_EAS_CACHE_EXPIRE);
    ngx_http_eas_zone_expire(&ctx->zone, NGX_HTTP_EAS_CACHE_Q_COUNTERS,
                             now, NGX_HTTP_EAS_CACHE_EXPIRE);
    ngx_http_eas_zone_expire(&ctx->zone, NGX_HTTP_EAS_CACHE_Q_KNOWN,
                             now, NGX_HTTP_EAS_CACHE_EXPIRE);

    counted = 0;

    if (ttl) {
        node = ngx_http_eas_cache_get(ctx, NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                      q->digest, NGX_HTTP_EAS_DIGEST_LEN,
                                      now);
        if (node) {
            /*
             * The same credentials sent side by side (a phone's Ping and
             * Sync with a stale password) were all asked before the first
             * answer was cached: one try, counted once, as the cache
             * would have answered the others.
             */

            counted = (!valid && !node->zn.mark && node->u.fresh > now);

            node->zn.mark = valid ? 1 : 0;
            /*
             * credentials: when the source was asked, in ms; a drop made
             * while it was being asked drops this answer too
             */
            node->window_start = q->asked ? q->asked
                                          : ngx_http_eas_cache_msec();
            node->u.fresh = now + ttl;
            node->expire = node->u.fresh + (valid ? pcf->grace : 0);
        }
    }

    if (valid) {
        /* a lockout that began meanwhile makes no new known device */

        node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_USER,
                                       q->user->data, q->user->len);

        create = (node == NULL || ngx_http_eas_cache_locked(node, now) == 0);

        node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_ADDRESS,
                                       q->addr->data, q->addr->len);

        if (node && ngx_http_eas_cache_locked(node, now)) {
            create = 0;
        }

        ngx_http_eas_cache_known(ctx, q, pcf, create, now);

        goto done;
    }

    if (q->device) {
        node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_KNOWN,
                                       q->device, NGX_HTTP_EAS_CACHE_KNOWN_LEN);
        if (node
            && ngx_http_eas_secret_equal(node->data + node->zn.len,
                                         node->zn.extra, q->secret,
                                         NGX_HTTP_EAS_CACHE_KNOWN_LEN))
        {
            /* the source no longer takes this device's password */
            ngx_http_eas_cache_free(ctx, node);
        }
    }

    if (!counted) {
        locked = ngx_http_eas_cache_fail(ctx, q, pcf, now);
    }

done:

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    if (locked) {
        (void) ngx_atomic_fetch_add(&ctx->sh->lockouts, 1);
    }

    return locked;
}


/*
 * One failure for the user and one for the address; the caller holds
 * the mutex.  Returns the NGX_HTTP_EAS_CACHE_*_LOCKED bits of the
 * lockouts it started.
 */

static ngx_uint_t
ngx_http_eas_cache_fail(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    time_t now)
{
    ngx_uint_t                  locked;
    ngx_http_eas_cache_node_t  *node;

    locked = 0;

    if (pcf->user_limit) {
        node = ngx_http_eas_cache_reserve(ctx, NGX_HTTP_EAS_CACHE_USER,
                                          q->user, pcf->window, now);
        if (node) {
            if (ngx_http_eas_cache_count(node, pcf->user_limit, pcf->window,
                                         pcf->lock_time, now))
            {
                locked |= NGX_HTTP_EAS_CACHE_USER_LOCKED;
            }

            q->failures = node->zn.count;

        } else {
            q->log_full = 1;
        }
    }

    if (pcf->address_limit) {
        node = ngx_http_eas_cache_reserve(ctx, NGX_HTTP_EAS_CACHE_ADDRESS,
                                          q->addr, pcf->window, now);
        if (node) {
            if (ngx_http_eas_cache_count(node, pcf->address_limit,
                                         pcf->window, pcf->lock_time, now))
            {
                locked |= NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED;
            }

        } else {
            q->log_full = 1;
        }
    }

    if (q->log_full) {
        q->log_full = ngx_http_eas_zone_full(&ctx->zone, now);
    }

    return locked;
}


/*
 * The end of a try reserved at lookup that the source's answer did not
 * end (ngx_http_eas_cache_update).  A source error is not counted: the
 * try gives its place back.  A request that ended while the source was
 * asked (the client hung up) counts as a failure ("failed"): the source
 * may have counted it and the gateway cannot know its answer, and a
 * client that hung up after each guess would otherwise have the
 * directory count failures that no lockout here ever sees.  Called
 * again, or without a reservation, it does nothing.
 */

void
ngx_http_eas_cache_release(ngx_shm_zone_t *zone,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    ngx_uint_t failed)
{
    ngx_uint_t                 locked;
    ngx_http_eas_cache_ctx_t  *ctx;

    if (!q->pending_user && !q->pending_address) {
        return;
    }

    ctx = zone->data;
    locked = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    ngx_http_eas_cache_unreserve(ctx, q);

    if (failed) {
        locked = ngx_http_eas_cache_fail(ctx, q, pcf, ngx_time());
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    if (locked) {
        (void) ngx_atomic_fetch_add(&ctx->sh->lockouts, 1);
    }
}


/* the caller holds the mutex */

static void
ngx_http_eas_cache_unreserve(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q)
{
    ngx_http_eas_cache_node_t  *node;

    if (q->pending_user) {
        q->pending_user = 0;

        node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_USER,
                                       q->user->data, q->user->len);
        if (node && node->u.pending) {
            node->u.pending--;
        }
    }

    if (q->pending_address) {
        q->pending_address = 0;

        node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_ADDRESS,
                                       q->addr->data, q->addr->len);
        if (node && node->u.pending) {
            node->u.pending--;
        }
    }
}


/*
 * Lift a user's or an address's lockout and forget its failures (for
 * an admin endpoint).  NGX_DECLINED if the zone has no such entry.
 */

ngx_int_t
ngx_http_eas_cache_clear(ngx_shm_zone_t *zone, ngx_uint_t kind,
    ngx_str_t *key)
{
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    node = ngx_http_eas_cache_find(ctx, kind, key->data, key->len);
    if (node) {
        ngx_http_eas_cache_free(ctx, node);
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return node ? NGX_OK : NGX_DECLINED;
}


/*
 * The admin API (ngx_http_eas_admin.c).  The lockouts in force, copied
 * out from the counters queue (up to n, most recently touched first).
 */

ngx_uint_t
ngx_http_eas_cache_lockouts(ngx_shm_zone_t *zone,
    ngx_http_eas_lockout_t *out, ngx_uint_t n)
{
    time_t                      now;
    ngx_uint_t                  i;
    ngx_queue_t                *q, *queue;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    now = ngx_time();
    i = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    queue = ngx_http_eas_zone_queue(&ctx->zone,
                                    NGX_HTTP_EAS_CACHE_Q_COUNTERS);

    for (q = ngx_queue_head(queue);
         q != ngx_queue_sentinel(queue) && i < n;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_eas_cache_node_t, zn.queue);

        if (node->locked_until <= now) {
            continue;
        }

        out[i].kind = ngx_http_eas_zone_kind(&node->zn);
        out[i].locked_until = node->locked_until;
        out[i].failures = node->zn.count;
        out[i].len = ngx_min(node->zn.len, sizeof(out[i].key));
        ngx_memcpy(out[i].key, node->data, out[i].len);
        i++;
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return i;
}


/*
 * Every node of one kind freed: the lockouts in force (users and
 * addresses locked now; their failure counts go too), or every cached
 * credential and known-good device.  Returns how many went.
 */

ngx_uint_t
ngx_http_eas_cache_drop(ngx_shm_zone_t *zone, ngx_uint_t kind)
{
    time_t                      now;
    ngx_uint_t                  n;
    ngx_queue_t                *q, *next, *queue;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    now = ngx_time();
    n = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    queue = ngx_http_eas_zone_queue(&ctx->zone,
                                    ngx_http_eas_cache_queue(kind));

    for (q = ngx_queue_head(queue); q != ngx_queue_sentinel(queue); q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_eas_cache_node_t, zn.queue);

        if (kind == NGX_HTTP_EAS_CACHE_USER && node->locked_until <= now) {
            continue;
        }

        ngx_http_eas_cache_free(ctx, node);
        n++;
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return n;
}


/*
 * What a credential source said about the user besides "valid" (the
 * directory's device lists), kept in the credentials node after the
 * digest.  NGX_DECLINED: no such node, it was evicted.
 */

/*
 * Drops one user's cached answers (after a password change): every
 * credential of that identity verified up to now is asked of the source
 * again.  Credentials are keyed by a digest of user and password and
 * cannot be found by user, so the drop is remembered, by the crc32 of
 * the identity, and checked when a credential is found; a collision
 * only costs another user one more verification.  When the table is
 * full, every cached credential goes, as the safe answer.
 */

void
ngx_http_eas_cache_drop_user(ngx_shm_zone_t *zone, ngx_str_t *user)
{
    uint32_t                       hash;
    ngx_uint_t                     i;
    ngx_queue_t                   *q, *next, *queue;
    ngx_http_eas_cache_ctx_t      *ctx;
    ngx_http_eas_cache_node_t     *node;
    ngx_http_eas_cache_dropped_t  *d;

    ctx = zone->data;
    hash = ngx_crc32_short(user->data, user->len);

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    d = ctx->sh->dropped;

    for (i = 0; i < ctx->sh->ndropped; i++) {
        if (d[i].hash == hash) {
            break;
        }
    }

    if (i == NGX_HTTP_EAS_CACHE_DROPS) {
        queue = ngx_http_eas_zone_queue(&ctx->zone,
                                        NGX_HTTP_EAS_CACHE_Q_CREDENTIALS);

        for (q = ngx_queue_head(queue);
             q != ngx_queue_sentinel(queue);
             q = next)
        {
            next = ngx_queue_next(q);
            node = ngx_queue_data(q, ngx_http_eas_cache_node_t, zn.queue);
            ngx_http_eas_cache_free(ctx, node);
        }

        ctx->sh->ndropped = 0;
        i = 0;
    }

    if (i == ctx->sh->ndropped) {
        ctx->sh->ndropped++;
    }

    d[i].hash = hash;
    d[i].at = ngx_http_eas_cache_msec();

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
}


/*
 * A counter with tries still being verified stays, expired or not: the
 * answer of each must find it (ngx_http_eas_cache_release), and a new
 * counter in its place would lose them.
 */

static ngx_uint_t
ngx_http_eas_cache_expired(ngx_http_eas_zone_node_t *zn, time_t now)
{
    ngx_http_eas_cache_node_t  *node = (ngx_http_eas_cache_node_t *) zn;

    if (node->expire > now) {
        return 0;
    }

    return !((ngx_http_eas_zone_kind(zn) == NGX_HTTP_EAS_CACHE_USER
              || ngx_http_eas_zone_kind(zn) == NGX_HTTP_EAS_CACHE_ADDRESS)
             && node->u.pending);
}


/* wall-clock time in ms: the same clock in every worker */

static time_t
ngx_http_eas_cache_msec(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return tp->sec * 1000 + tp->msec;
}


/* the caller holds the mutex */

static ngx_uint_t
ngx_http_eas_cache_dropped(ngx_http_eas_cache_ctx_t *ctx, ngx_str_t *user,
    time_t verified)
{
    uint32_t                       hash;
    ngx_uint_t                     i;
    ngx_http_eas_cache_dropped_t  *d;

    hash = ngx_crc32_short(user->data, user->len);
    d = ctx->sh->dropped;

    for (i = 0; i < ctx->sh->ndropped; i++) {
        if (d[i].hash == hash && verified <= d[i].at) {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_eas_cache_get_extra(ngx_shm_zone_t *zone, u_char *digest,
    u_char *buf, size_t size, size_t *len)
{
    ngx_int_t                   rc;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    rc = NGX_DECLINED;
    *len = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                   digest, NGX_HTTP_EAS_DIGEST_LEN);

    if (node && node->zn.mark && node->zn.extra <= size) {
        *len = node->zn.extra;
        ngx_memcpy(buf, node->data + node->zn.len, node->zn.extra);
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_eas_cache_set_extra(ngx_shm_zone_t *zone, u_char *digest,
    u_char *data, size_t len)
{
    size_t                      size;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node, *copy;

    ctx = zone->data;

    if (len > 0xffff) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                   digest, NGX_HTTP_EAS_DIGEST_LEN);

    if (node == NULL) {
        ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
        return NGX_DECLINED;
    }

    if (node->zn.extra != len) {

        /*
         * Another size: a new node takes the old one's place, within the
         * credentials' budget.  The old one is out of the tree and the
         * queue meanwhile, so that making room cannot pick it.
         */

        ngx_http_eas_zone_unlink(&ctx->zone, &node->zn);

        size = offsetof(ngx_http_eas_cache_node_t, data) + node->zn.len + len;

        copy = ngx_http_eas_zone_alloc(&ctx->zone,
                                       NGX_HTTP_EAS_CACHE_CREDENTIALS, size,
                                       ngx_time(), NULL);

        if (copy) {
            ngx_memcpy(copy, node, offsetof(ngx_http_eas_cache_node_t, data)
                                   + node->zn.len);
            copy->zn.extra = (u_short) len;

            ngx_http_eas_zone_insert(&ctx->zone, &copy->zn,
                                     NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                     ngx_http_eas_cache_hash(
                                         NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                         digest, NGX_HTTP_EAS_DIGEST_LEN),
                                     NGX_HTTP_EAS_CACHE_Q_CREDENTIALS);
        }

        ngx_http_eas_zone_release(&ctx->zone, &node->zn);

        if (copy == NULL) {
            /* the answer goes rather than be served without its data */
            ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
            return NGX_DECLINED;
        }

        node = copy;
    }

    ngx_memcpy(node->data + node->zn.len, data, len);

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return NGX_OK;
}


/* one failure in the window; 1 when it starts a lockout */

static ngx_uint_t
ngx_http_eas_cache_count(ngx_http_eas_cache_node_t *node, ngx_uint_t limit,
    time_t window, time_t lock_time, time_t now)
{
    if (node->locked_until > now) {
        /* a lockout refuses before the source; a verification that was
         * already under way when it began does not extend it */
        return 0;
    }

    if (node->locked_until || now - node->window_start >= window) {
        node->zn.count = 0;
        node->locked_until = 0;
        node->window_start = now;
    }

    node->zn.count++;
    node->expire = now + window;

    if (node->zn.count < limit) {
        return 0;
    }

    node->locked_until = now + lock_time;
    node->expire = node->locked_until;

    return 1;
}


/* failures in the window plus the tries still being verified */

static ngx_uint_t
ngx_http_eas_cache_tries(ngx_http_eas_cache_node_t *node, time_t window,
    time_t now)
{
    ngx_uint_t  failures;

    failures = (node->locked_until || now - node->window_start >= window)
               ? 0 : node->zn.count;

    return failures + node->u.pending;
}


static time_t
ngx_http_eas_cache_locked(ngx_http_eas_cache_node_t *node, time_t now)
{
    return (node->locked_until > now) ? node->locked_until - now : 0;
}


/* find or create; the caller holds the mutex */

static ngx_http_eas_cache_node_t *
ngx_http_eas_cache_get(ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind,
    u_char *key, size_t len, time_t now)
{
    size_t                      size;
    ngx_http_eas_cache_node_t  *node;

    node = ngx_http_eas_cache_find(ctx, kind, key, len);

    if (node) {
        ngx_http_eas_zone_touch(&ctx->zone, &node->zn,
                                ngx_http_eas_cache_queue(kind));
        return node;
    }

    size = offsetof(ngx_http_eas_cache_node_t, data) + len;

    node = ngx_http_eas_zone_alloc(&ctx->zone, kind, size, now, NULL);

    if (node == NULL) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "eas cache: no room for a node of kind %ui%s",
                       kind, ctx->zone.shpool->log_ctx);
        return NULL;
    }

    ngx_memzero(node, size);

    node->zn.len = (u_short) len;
    node->window_start = now;
    ngx_memcpy(node->data, key, len);

    ngx_http_eas_zone_insert(&ctx->zone, &node->zn, kind,
                             ngx_http_eas_cache_hash(kind, key, len),
                             ngx_http_eas_cache_queue(kind));

    return node;
}


static ngx_uint_t
ngx_http_eas_cache_queue(ngx_uint_t kind)
{
    switch (kind) {

    case NGX_HTTP_EAS_CACHE_CREDENTIALS:
        return NGX_HTTP_EAS_CACHE_Q_CREDENTIALS;

    case NGX_HTTP_EAS_CACHE_KNOWN:
        return NGX_HTTP_EAS_CACHE_Q_KNOWN;

    default:
        return NGX_HTTP_EAS_CACHE_Q_COUNTERS;
    }
}


/* a user's or address's counter, there for at least a window */

static ngx_http_eas_cache_node_t *
ngx_http_eas_cache_reserve(ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind,
    ngx_str_t *key, time_t window, time_t now)
{
    ngx_http_eas_cache_node_t  *node;

    node = ngx_http_eas_cache_get(ctx, kind, key->data, key->len, now);

    if (node && node->expire < now + window) {
        node->expire = now + window;
    }

    return node;
}


/* make or renew the known-good record of this device and password */

static void
ngx_http_eas_cache_known(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    ngx_uint_t create, time_t now)
{
    ngx_http_eas_cache_node_t  *node;

    if (q->device == NULL) {
        return;
    }

    node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_KNOWN, q->device,
                                   NGX_HTTP_EAS_CACHE_KNOWN_LEN);

    if (node == NULL) {
        if (!create) {
            return;
        }

        node = ngx_http_eas_zone_alloc(&ctx->zone, NGX_HTTP_EAS_CACHE_KNOWN,
                                       offsetof(ngx_http_eas_cache_node_t,
                                                data)
                                       + 2 * NGX_HTTP_EAS_CACHE_KNOWN_LEN,
                                       now, NULL);
        if (node == NULL) {
            return;
        }

        ngx_memzero(node, offsetof(ngx_http_eas_cache_node_t, data));

        node->zn.len = NGX_HTTP_EAS_CACHE_KNOWN_LEN;
        node->zn.extra = NGX_HTTP_EAS_CACHE_KNOWN_LEN;
        ngx_memcpy(node->data, q->device, NGX_HTTP_EAS_CACHE_KNOWN_LEN);

        ngx_http_eas_zone_insert(&ctx->zone, &node->zn,
                                 NGX_HTTP_EAS_CACHE_KNOWN,
                                 ngx_http_eas_cache_hash(
                                     NGX_HTTP_EAS_CACHE_KNOWN, q->device,
                                     NGX_HTTP_EAS_CACHE_KNOWN_LEN),
                                 NGX_HTTP_EAS_CACHE_Q_KNOWN);

    } else {
        ngx_http_eas_zone_touch(&ctx->zone, &node->zn,
                                NGX_HTTP_EAS_CACHE_Q_KNOWN);
    }

    /* the password the source accepted last for this device */

    ngx_memcpy(node->data + NGX_HTTP_EAS_CACHE_KNOWN_LEN, q->secret,
               NGX_HTTP_EAS_CACHE_KNOWN_LEN);
    node->expire = now + pcf->known;
}


static ngx_http_eas_cache_node_t *
ngx_http_eas_cache_find(ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind,
    u_char *key, size_t len)
{
    ngx_http_eas_zone_node_t  *zn;

    zn = ngx_http_eas_zone_find(&ctx->zone, kind, key, len,
                                ngx_http_eas_cache_hash(kind, key, len));

    return (ngx_http_eas_cache_node_t *) zn;
}


static uint32_t
ngx_http_eas_cache_hash(ngx_uint_t kind, u_char *key, size_t len)
{
    uint32_t  crc;

    /* a digest is uniformly distributed already: its first bytes do */

    if (kind == NGX_HTTP_EAS_CACHE_CREDENTIALS) {
        return ((uint32_t) key[0] << 24) | ((uint32_t) key[1] << 16)
               | ((uint32_t) key[2] << 8) | key[3];
    }

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, (u_char *) &kind, sizeof(ngx_uint_t));
    ngx_crc32_update(&crc, key, len);
    ngx_crc32_final(crc);

    return crc;
}
