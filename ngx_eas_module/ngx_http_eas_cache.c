
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
#define NGX_HTTP_EAS_CACHE_SCAN    8      /* nodes looked at for expired */
#define NGX_HTTP_EAS_CACHE_TRIES   64     /* nodes freed for one insert */
#define NGX_HTTP_EAS_CACHE_SLOT    128    /* the smallest slot of a node */
#define NGX_HTTP_EAS_CACHE_KNOWN_LEN  16  /* of a known device's key and
                                             secret: half a digest */
#define NGX_HTTP_EAS_CACHE_FULL_LOG  60   /* s between "zone is full" */


static ngx_int_t ngx_http_eas_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_eas_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_eas_cache_node_t *ngx_http_eas_cache_find(
    ngx_http_eas_cache_sh_t *sh, ngx_uint_t kind, u_char *key, size_t len,
    uint32_t hash);
static ngx_http_eas_cache_node_t *ngx_http_eas_cache_get(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, u_char *key, size_t len,
    time_t now);
static void *ngx_http_eas_cache_alloc(ngx_http_eas_cache_ctx_t *ctx,
    ngx_uint_t kind, size_t size, time_t now);
static ngx_uint_t ngx_http_eas_cache_expire_any(
    ngx_http_eas_cache_ctx_t *ctx, time_t now);
static ngx_uint_t ngx_http_eas_cache_evict(ngx_http_eas_cache_ctx_t *ctx,
    ngx_queue_t *queue);
static size_t ngx_http_eas_cache_slot(size_t size);
static ngx_queue_t *ngx_http_eas_cache_queue(ngx_http_eas_cache_ctx_t *ctx,
    ngx_uint_t kind);
static ngx_http_eas_cache_node_t *ngx_http_eas_cache_reserve(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, ngx_str_t *key,
    time_t window, time_t now);
static void ngx_http_eas_cache_known(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    ngx_uint_t create, time_t now);
static ngx_int_t ngx_http_eas_cache_mac(ngx_http_eas_cache_ctx_t *ctx,
    ngx_str_t *parts, ngx_uint_t n, u_char *mac);
static void ngx_http_eas_cache_expire(ngx_http_eas_cache_ctx_t *ctx,
    ngx_queue_t *queue, time_t now, ngx_uint_t n);
static void ngx_http_eas_cache_free(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_node_t *node);
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
static ngx_uint_t ngx_http_eas_cache_expired(ngx_http_eas_cache_node_t *node,
    time_t now);
static void ngx_http_eas_cache_cleanup(void *data);


/* any distinct address: zones of this module, told from other modules' */
static u_char  ngx_http_eas_cache_tag_data;
void          *ngx_http_eas_cache_tag = &ngx_http_eas_cache_tag_data;


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

    size_t                     len;
    ngx_http_eas_cache_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        /* reload: the cache, the counters and the key carry over */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        return ngx_http_eas_cache_hmac_init(ctx);
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;

        return ngx_http_eas_cache_hmac_init(ctx);
    }

    ctx->sh = ngx_slab_calloc(ctx->shpool, sizeof(ngx_http_eas_cache_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_http_eas_cache_rbtree_insert_value);

    ngx_queue_init(&ctx->sh->credentials);
    ngx_queue_init(&ctx->sh->counters);
    ngx_queue_init(&ctx->sh->known);

    /* the budgets share out the pages, what the slab can hand out */
    ctx->sh->size = ctx->shpool->end - ctx->shpool->start;

    /* a key no one knows: digests in the zone say nothing offline */

    if (RAND_bytes(ctx->sh->key, sizeof(ctx->sh->key)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "RAND_bytes() failed for eas zone \"%V\"",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    len = sizeof(" in eas zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in eas zone \"%V\"%Z",
                &shm_zone->shm.name);

    ctx->shpool->log_nomem = 0;

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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    user = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_USER,
               q->user->data, q->user->len,
               ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_USER,
                                       q->user->data, q->user->len));

    addr = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_ADDRESS,
               q->addr->data, q->addr->len,
               ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_ADDRESS,
                                       q->addr->data, q->addr->len));

    known = NULL;

    if (q->device) {
        known = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_KNOWN,
                    q->device, NGX_HTTP_EAS_CACHE_KNOWN_LEN,
                    ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_KNOWN,
                                            q->device,
                                            NGX_HTTP_EAS_CACHE_KNOWN_LEN));

        if (known && known->expire <= now) {
            ngx_http_eas_cache_free(ctx, known);
            known = NULL;
        }

        if (known
            && eas_secret_equal(known->data + known->len, known->extra,
                                q->secret, NGX_HTTP_EAS_CACHE_KNOWN_LEN))
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

    node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_CREDENTIALS,
               q->digest, NGX_HTTP_EAS_DIGEST_LEN,
               ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                       q->digest, NGX_HTTP_EAS_DIGEST_LEN));

    /* an admin dropped the user's credentials after this answer */

    if (node && ctx->sh->ndropped
        && ngx_http_eas_cache_dropped(ctx, q->user, node->window_start))
    {
        ngx_http_eas_cache_free(ctx, node);
        node = NULL;
    }

    if (node && node->expire > now) {
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(&ctx->sh->credentials, &node->queue);

        if (!node->valid) {
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

        if (now >= ctx->sh->full_logged + NGX_HTTP_EAS_CACHE_FULL_LOG) {
            ctx->sh->full_logged = now;
            q->log_full = 1;
        }

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

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* the try reserved at lookup ends here: counted below, or not */

    ngx_http_eas_cache_unreserve(ctx, q);

    ngx_http_eas_cache_expire(ctx, &ctx->sh->credentials, now,
                              NGX_HTTP_EAS_CACHE_EXPIRE);
    ngx_http_eas_cache_expire(ctx, &ctx->sh->counters, now,
                              NGX_HTTP_EAS_CACHE_EXPIRE);
    ngx_http_eas_cache_expire(ctx, &ctx->sh->known, now,
                              NGX_HTTP_EAS_CACHE_EXPIRE);

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

            counted = (!valid && !node->valid && node->u.fresh > now);

            node->valid = valid ? 1 : 0;
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

        node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_USER,
                   q->user->data, q->user->len,
                   ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_USER,
                                           q->user->data, q->user->len));

        create = (node == NULL || ngx_http_eas_cache_locked(node, now) == 0);

        node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_ADDRESS,
                   q->addr->data, q->addr->len,
                   ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_ADDRESS,
                                           q->addr->data, q->addr->len));

        if (node && ngx_http_eas_cache_locked(node, now)) {
            create = 0;
        }

        ngx_http_eas_cache_known(ctx, q, pcf, create, now);

        goto done;
    }

    if (q->device) {
        node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_KNOWN,
                   q->device, NGX_HTTP_EAS_CACHE_KNOWN_LEN,
                   ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_KNOWN,
                                           q->device,
                                           NGX_HTTP_EAS_CACHE_KNOWN_LEN));
        if (node
            && eas_secret_equal(node->data + node->len, node->extra,
                                q->secret, NGX_HTTP_EAS_CACHE_KNOWN_LEN))
        {
            /* the source no longer takes this device's password */
            ngx_http_eas_cache_free(ctx, node);
        }
    }

    if (!counted) {
        locked = ngx_http_eas_cache_fail(ctx, q, pcf, now);
    }

done:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

            q->failures = node->failures;

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
        if (now >= ctx->sh->full_logged + NGX_HTTP_EAS_CACHE_FULL_LOG) {
            ctx->sh->full_logged = now;

        } else {
            q->log_full = 0;
        }
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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_eas_cache_unreserve(ctx, q);

    if (failed) {
        locked = ngx_http_eas_cache_fail(ctx, q, pcf, ngx_time());
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

        node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_USER,
                   q->user->data, q->user->len,
                   ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_USER,
                                           q->user->data, q->user->len));
        if (node && node->u.pending) {
            node->u.pending--;
        }
    }

    if (q->pending_address) {
        q->pending_address = 0;

        node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_ADDRESS,
                   q->addr->data, q->addr->len,
                   ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_ADDRESS,
                                           q->addr->data, q->addr->len));
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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_cache_find(ctx->sh, kind, key->data, key->len,
                                   ngx_http_eas_cache_hash(kind, key->data,
                                                           key->len));
    if (node) {
        ngx_http_eas_cache_free(ctx, node);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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
    ngx_queue_t                *q;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    now = ngx_time();
    i = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->counters);
         q != ngx_queue_sentinel(&ctx->sh->counters) && i < n;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_eas_cache_node_t, queue);

        if (node->locked_until <= now) {
            continue;
        }

        out[i].kind = node->kind;
        out[i].locked_until = node->locked_until;
        out[i].failures = node->failures;
        out[i].len = ngx_min(node->len, sizeof(out[i].key));
        ngx_memcpy(out[i].key, node->data, out[i].len);
        i++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    queue = ngx_http_eas_cache_queue(ctx, kind);

    for (q = ngx_queue_head(queue); q != ngx_queue_sentinel(queue); q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_eas_cache_node_t, queue);

        if (kind == NGX_HTTP_EAS_CACHE_USER && node->locked_until <= now) {
            continue;
        }

        ngx_http_eas_cache_free(ctx, node);
        n++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    d = ctx->sh->dropped;

    for (i = 0; i < ctx->sh->ndropped; i++) {
        if (d[i].hash == hash) {
            break;
        }
    }

    if (i == NGX_HTTP_EAS_CACHE_DROPS) {
        queue = &ctx->sh->credentials;

        for (q = ngx_queue_head(queue);
             q != ngx_queue_sentinel(queue);
             q = next)
        {
            next = ngx_queue_next(q);
            node = ngx_queue_data(q, ngx_http_eas_cache_node_t, queue);
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

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * A counter with tries still being verified stays, expired or not: the
 * answer of each must find it (ngx_http_eas_cache_release), and a new
 * counter in its place would lose them.
 */

static ngx_uint_t
ngx_http_eas_cache_expired(ngx_http_eas_cache_node_t *node, time_t now)
{
    if (node->expire > now) {
        return 0;
    }

    return !((node->kind == NGX_HTTP_EAS_CACHE_USER
              || node->kind == NGX_HTTP_EAS_CACHE_ADDRESS)
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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_CREDENTIALS,
               digest, NGX_HTTP_EAS_DIGEST_LEN,
               ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                       digest, NGX_HTTP_EAS_DIGEST_LEN));

    if (node && node->valid && node->extra <= size) {
        *len = node->extra;
        ngx_memcpy(buf, node->data + node->len, node->extra);
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_CREDENTIALS,
               digest, NGX_HTTP_EAS_DIGEST_LEN,
               ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                       digest, NGX_HTTP_EAS_DIGEST_LEN));

    if (node == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    if (node->extra != len) {

        /*
         * Another size: a new node takes the old one's place, within the
         * credentials' budget.  The old one is out of the tree and the
         * queue meanwhile, so that making room cannot pick it.
         */

        ngx_queue_remove(&node->queue);
        ngx_rbtree_delete(&ctx->sh->rbtree, &node->rbnode);
        ctx->sh->nodes--;

        size = offsetof(ngx_http_eas_cache_node_t, data) + node->len + len;

        copy = ngx_http_eas_cache_alloc(ctx, NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                        size, ngx_time());

        if (copy) {
            ngx_memcpy(copy, node, offsetof(ngx_http_eas_cache_node_t, data)
                                   + node->len);
            copy->extra = (u_short) len;

            /* ngx_rbtree_delete() cleared the old node's key */
            copy->rbnode.key = ngx_http_eas_cache_hash(
                                   NGX_HTTP_EAS_CACHE_CREDENTIALS, digest,
                                   NGX_HTTP_EAS_DIGEST_LEN);

            ngx_rbtree_insert(&ctx->sh->rbtree, &copy->rbnode);
            ctx->sh->nodes++;
            ngx_queue_insert_head(&ctx->sh->credentials, &copy->queue);
        }

        ctx->sh->used[NGX_HTTP_EAS_CACHE_CREDENTIALS] -=
            ngx_http_eas_cache_slot(offsetof(ngx_http_eas_cache_node_t, data)
                                    + node->len + node->extra);
        ngx_slab_free_locked(ctx->shpool, node);

        if (copy == NULL) {
            /* the answer goes rather than be served without its data */
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_DECLINED;
        }

        node = copy;
    }

    ngx_memcpy(node->data + node->len, data, len);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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
        node->failures = 0;
        node->locked_until = 0;
        node->window_start = now;
    }

    node->failures++;
    node->expire = now + window;

    if (node->failures < limit) {
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
               ? 0 : node->failures;

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
    uint32_t                    hash;
    ngx_queue_t                *queue;
    ngx_http_eas_cache_node_t  *node;

    queue = ngx_http_eas_cache_queue(ctx, kind);

    hash = ngx_http_eas_cache_hash(kind, key, len);

    node = ngx_http_eas_cache_find(ctx->sh, kind, key, len, hash);

    if (node) {
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(queue, &node->queue);
        return node;
    }

    size = offsetof(ngx_http_eas_cache_node_t, data) + len;

    node = ngx_http_eas_cache_alloc(ctx, kind, size, now);

    if (node == NULL) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "eas cache: no room for a node of kind %ui%s",
                       kind, ctx->shpool->log_ctx);
        return NULL;
    }

    ngx_memzero(node, size);

    node->rbnode.key = hash;
    node->kind = (u_char) kind;
    node->len = (u_short) len;
    node->window_start = now;
    ngx_memcpy(node->data, key, len);

    ngx_rbtree_insert(&ctx->sh->rbtree, &node->rbnode);
    ctx->sh->nodes++;
    ngx_queue_insert_head(queue, &node->queue);

    return node;
}


/*
 * A slot for a node within its kind's budget: expired nodes of any kind
 * go first, then, for credentials and known devices, their own least
 * recently used ones (see the top of this file).  NULL: no room without
 * dropping live state of another kind, or a live counter.
 */

static void *
ngx_http_eas_cache_alloc(ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind,
    size_t size, time_t now)
{
    void         *p;
    size_t        slot, cap, used;
    ngx_uint_t    i;
    ngx_queue_t  *own;

    slot = ngx_http_eas_cache_slot(size);

    switch (kind) {

    case NGX_HTTP_EAS_CACHE_CREDENTIALS:
        cap = ctx->sh->size / 4;
        own = &ctx->sh->credentials;
        break;

    case NGX_HTTP_EAS_CACHE_KNOWN:
        cap = ctx->sh->size / 4;
        own = &ctx->sh->known;
        break;

    default: /* counters: never dropped alive */
        cap = ctx->sh->size / 2;
        own = NULL;
        break;
    }

    for (i = 0; i < NGX_HTTP_EAS_CACHE_TRIES; i++) {

        if (own) {
            used = ctx->sh->used[kind];

        } else {
            used = ctx->sh->used[NGX_HTTP_EAS_CACHE_USER]
                   + ctx->sh->used[NGX_HTTP_EAS_CACHE_ADDRESS];
        }

        if (used + slot <= cap) {
            p = ngx_slab_alloc_locked(ctx->shpool, slot);

            if (p) {
                ctx->sh->used[kind] += slot;
                return p;
            }
        }

        if (ngx_http_eas_cache_expire_any(ctx, now)) {
            continue;
        }

        if (own == NULL || !ngx_http_eas_cache_evict(ctx, own)) {
            break;
        }

        ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_CACHE_EVICTED);
    }

    return NULL;
}


/* free one node whose time is over, looking a few from each tail */

static ngx_uint_t
ngx_http_eas_cache_expire_any(ngx_http_eas_cache_ctx_t *ctx, time_t now)
{
    ngx_uint_t                  i, n;
    ngx_queue_t                *queue[3], *q;
    ngx_http_eas_cache_node_t  *node;

    queue[0] = &ctx->sh->credentials;
    queue[1] = &ctx->sh->counters;
    queue[2] = &ctx->sh->known;

    for (i = 0; i < 3; i++) {

        q = queue[i];

        for (n = 0; n < NGX_HTTP_EAS_CACHE_SCAN; n++) {
            q = ngx_queue_prev(q);

            if (q == queue[i]) {
                break;
            }

            node = ngx_queue_data(q, ngx_http_eas_cache_node_t, queue);

            if (ngx_http_eas_cache_expired(node, now)) {
                ngx_http_eas_cache_free(ctx, node);
                return 1;
            }
        }
    }

    return 0;
}


static ngx_uint_t
ngx_http_eas_cache_evict(ngx_http_eas_cache_ctx_t *ctx, ngx_queue_t *queue)
{
    if (ngx_queue_empty(queue)) {
        return 0;
    }

    ngx_http_eas_cache_free(ctx, ngx_queue_data(ngx_queue_last(queue),
                                                ngx_http_eas_cache_node_t,
                                                queue));
    return 1;
}


/* the slab slot a node takes: one size class for all small nodes */

static size_t
ngx_http_eas_cache_slot(size_t size)
{
    size_t  slot;

    if (size > ngx_pagesize / 2) {
        return ngx_align(size, ngx_pagesize);
    }

    for (slot = NGX_HTTP_EAS_CACHE_SLOT; slot < size; slot <<= 1) {
        /* void */
    }

    return slot;
}


static ngx_queue_t *
ngx_http_eas_cache_queue(ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind)
{
    switch (kind) {

    case NGX_HTTP_EAS_CACHE_CREDENTIALS:
        return &ctx->sh->credentials;

    case NGX_HTTP_EAS_CACHE_KNOWN:
        return &ctx->sh->known;

    default:
        return &ctx->sh->counters;
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
    uint32_t                    hash;
    ngx_http_eas_cache_node_t  *node;

    if (q->device == NULL) {
        return;
    }

    hash = ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_KNOWN, q->device,
                                   NGX_HTTP_EAS_CACHE_KNOWN_LEN);

    node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_KNOWN,
                                   q->device, NGX_HTTP_EAS_CACHE_KNOWN_LEN,
                                   hash);

    if (node == NULL) {
        if (!create) {
            return;
        }

        node = ngx_http_eas_cache_alloc(ctx, NGX_HTTP_EAS_CACHE_KNOWN,
                                        offsetof(ngx_http_eas_cache_node_t,
                                                 data)
                                        + 2 * NGX_HTTP_EAS_CACHE_KNOWN_LEN,
                                        now);
        if (node == NULL) {
            return;
        }

        ngx_memzero(node, offsetof(ngx_http_eas_cache_node_t, data));

        node->rbnode.key = hash;
        node->kind = NGX_HTTP_EAS_CACHE_KNOWN;
        node->len = NGX_HTTP_EAS_CACHE_KNOWN_LEN;
        node->extra = NGX_HTTP_EAS_CACHE_KNOWN_LEN;
        ngx_memcpy(node->data, q->device, NGX_HTTP_EAS_CACHE_KNOWN_LEN);

        ngx_rbtree_insert(&ctx->sh->rbtree, &node->rbnode);
        ctx->sh->nodes++;

    } else {
        ngx_queue_remove(&node->queue);
    }

    ngx_queue_insert_head(&ctx->sh->known, &node->queue);

    /* the password the source accepted last for this device */

    ngx_memcpy(node->data + NGX_HTTP_EAS_CACHE_KNOWN_LEN, q->secret,
               NGX_HTTP_EAS_CACHE_KNOWN_LEN);
    node->expire = now + pcf->known;
}


static ngx_http_eas_cache_node_t *
ngx_http_eas_cache_find(ngx_http_eas_cache_sh_t *sh, ngx_uint_t kind,
    u_char *key, size_t len, uint32_t hash)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_eas_cache_node_t  *n;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        /* hash == node->key */

        n = (ngx_http_eas_cache_node_t *) node;

        rc = (ngx_int_t) kind - (ngx_int_t) n->kind;

        if (rc == 0) {
            rc = ngx_memn2cmp(key, n->data, len, (size_t) n->len);
        }

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_eas_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t         **p;
    ngx_http_eas_cache_node_t  *n, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            n = (ngx_http_eas_cache_node_t *) node;
            t = (ngx_http_eas_cache_node_t *) temp;

            rc = (ngx_int_t) n->kind - (ngx_int_t) t->kind;

            if (rc == 0) {
                rc = ngx_memn2cmp(n->data, t->data, n->len, t->len);
            }

            p = (rc < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* free up to n nodes from the tail whose time is over */

static void
ngx_http_eas_cache_expire(ngx_http_eas_cache_ctx_t *ctx, ngx_queue_t *queue,
    time_t now, ngx_uint_t n)
{
    ngx_queue_t                *q;
    ngx_http_eas_cache_node_t  *node;

    while (n--) {

        if (ngx_queue_empty(queue)) {
            return;
        }

        q = ngx_queue_last(queue);
        node = ngx_queue_data(q, ngx_http_eas_cache_node_t, queue);

        if (!ngx_http_eas_cache_expired(node, now)) {
            return;
        }

        ngx_http_eas_cache_free(ctx, node);
    }
}


static void
ngx_http_eas_cache_free(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_node_t *node)
{
    ctx->sh->used[node->kind] -= ngx_http_eas_cache_slot(
                                     offsetof(ngx_http_eas_cache_node_t, data)
                                     + node->len + node->extra);

    ngx_queue_remove(&node->queue);
    ngx_rbtree_delete(&ctx->sh->rbtree, &node->rbnode);
    ctx->sh->nodes--;
    ngx_slab_free_locked(ctx->shpool, node);
}


static uint32_t
ngx_http_eas_cache_hash(ngx_uint_t kind, u_char *key, size_t len)
{
    /* a digest (credentials, a known device's key) is uniformly
     * distributed already: its first bytes do */

    if (kind == NGX_HTTP_EAS_CACHE_CREDENTIALS
        || kind == NGX_HTTP_EAS_CACHE_KNOWN)
    {
        return ((uint32_t) key[0] << 24) | ((uint32_t) key[1] << 16)
               | ((uint32_t) key[2] << 8) | key[3];
    }

    /* names and addresses: four bytes a step; the kind tells a user from
     * an address of the same text (the tree compares kind and key too) */

    return ngx_murmur_hash2(key, len) ^ (uint32_t) (kind * 0x9e3779b9);
}
