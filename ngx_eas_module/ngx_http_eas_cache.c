
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_metrics.h"
#include "ngx_http_eas_cache.h"


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
 * Budgets.  Every node takes one slab slot of at least 128 bytes
 * (ngx_http_eas_cache_policy), so that a slot freed by one kind fits
 * any other.  Credentials (a cache) may take a quarter of the zone's
 * pages, known-good devices a quarter, users and addresses together
 * half: no kind can take another's share.  Expired nodes of any kind go
 * first; then credentials and known devices drop their own least
 * recently used.  A live counter is never dropped: when one cannot be
 * made the request is refused (NGX_HTTP_EAS_CACHE_FULL), never let
 * through uncounted.
 */


static ngx_int_t ngx_http_eas_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_eas_cache_mac(ngx_http_eas_cache_ctx_t *ctx,
    ngx_str_t *parts, ngx_uint_t n, u_char *mac);
static ngx_int_t ngx_http_eas_cache_hmac_init(ngx_http_eas_cache_ctx_t *ctx);
static ngx_uint_t ngx_http_eas_cache_expired(ngx_http_eas_zone_node_t *zn,
    time_t now);
static void ngx_http_eas_cache_cleanup(void *data);


/* any distinct address: zones of this module, told from other modules' */
static u_char  ngx_http_eas_cache_tag_data;
void          *ngx_http_eas_cache_tag = &ngx_http_eas_cache_tag_data;


/* the budgets and eviction policy of the top of this file */
static const ngx_http_eas_zone_policy_t  ngx_http_eas_cache_policy = {
    3,                                          /* queues */
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
 * What a credential source said about the user besides "valid" (the
 * directory's device lists), kept in the credentials node after the
 * digest.  NGX_DECLINED: no such node, it was evicted.
 */


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

time_t
ngx_http_eas_cache_msec(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return tp->sec * 1000 + tp->msec;
}


/* the caller holds the mutex */

ngx_uint_t
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


/* find or create; the caller holds the mutex */

ngx_http_eas_cache_node_t *
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


ngx_uint_t
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


ngx_http_eas_cache_node_t *
ngx_http_eas_cache_find(ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind,
    u_char *key, size_t len)
{
    ngx_http_eas_zone_node_t  *zn;

    zn = ngx_http_eas_zone_find(&ctx->zone, kind, key, len,
                                ngx_http_eas_cache_hash(kind, key, len));

    return (ngx_http_eas_cache_node_t *) zn;
}


uint32_t
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
