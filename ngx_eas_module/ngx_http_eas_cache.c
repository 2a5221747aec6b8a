
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_eas_module.h"


/*
 * The pre-authentication zone (docs/authentication.md): one red-black
 * tree holds three kinds of node,
 *
 *     credentials   keyed digest of source, user and password: valid or
 *                   invalid until "expire"; LRU queue "credentials"
 *     user          normalised identity: failures in the window, lock
 *     address       client address as text: the same counters
 *
 * Users and addresses share the "counters" queue, most recently touched
 * first, so that a status endpoint can list every lockout by walking it
 * under the zone mutex.
 */


#define NGX_HTTP_EAS_CACHE_EXPIRE  2      /* stale nodes freed per insert */


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
static void ngx_http_eas_cache_expire(ngx_http_eas_cache_ctx_t *ctx,
    ngx_queue_t *queue, time_t now, ngx_uint_t n);
static void ngx_http_eas_cache_free(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_node_t *node);
static ngx_uint_t ngx_http_eas_cache_count(ngx_http_eas_cache_node_t *node,
    ngx_uint_t limit, time_t window, time_t lock_time, time_t now);
static uint32_t ngx_http_eas_cache_hash(ngx_uint_t kind, u_char *key,
    size_t len);
static time_t ngx_http_eas_cache_locked(ngx_http_eas_cache_node_t *node,
    time_t now);
static ngx_int_t ngx_http_eas_cache_hmac_init(ngx_http_eas_cache_ctx_t *ctx);
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
 * What the zone knows before the credential source is asked: a cached
 * answer for these credentials wins (a known-good password keeps
 * working during a lockout), else a locked user or address refuses.
 */

ngx_uint_t
ngx_http_eas_cache_lookup(ngx_shm_zone_t *zone, u_char *digest,
    ngx_str_t *user, ngx_str_t *addr, time_t *left)
{
    time_t                      now, t;
    uint32_t                    hash;
    ngx_uint_t                  rc;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    now = ngx_time();
    *left = 0;

    hash = ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_CREDENTIALS, digest,
                                   NGX_HTTP_EAS_DIGEST_LEN);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                   digest, NGX_HTTP_EAS_DIGEST_LEN, hash);

    if (node && node->expire > now) {
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(&ctx->sh->credentials, &node->queue);

        /* past "fresh", a valid answer only serves while the source is down */

        if (node->valid && node->fresh <= now) {
            rc = NGX_HTTP_EAS_CACHE_STALE;
            goto done;
        }

        rc = node->valid ? NGX_HTTP_EAS_CACHE_VALID
                         : NGX_HTTP_EAS_CACHE_INVALID;
        goto done;
    }

    if (node) {
        ngx_http_eas_cache_free(ctx, node);
    }

    rc = NGX_HTTP_EAS_CACHE_MISS;

    hash = ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_USER, user->data,
                                   user->len);
    node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_USER,
                                   user->data, user->len, hash);

    t = node ? ngx_http_eas_cache_locked(node, now) : 0;

    if (t) {
        rc = NGX_HTTP_EAS_CACHE_USER_LOCKED;
        *left = t;
        goto done;
    }

    hash = ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_ADDRESS, addr->data,
                                   addr->len);
    node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_ADDRESS,
                                   addr->data, addr->len, hash);

    t = node ? ngx_http_eas_cache_locked(node, now) : 0;

    if (t) {
        rc = NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED;
        *left = t;
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
 * The credential source answered.  The answer is cached; a refusal
 * counts one failure for the user and one for the address (a repeated
 * wrong password is answered from the cache and never counts twice),
 * and a success clears the user's failures.  Returns the
 * NGX_HTTP_EAS_CACHE_*_LOCKED bits of the lockouts this answer started.
 */

ngx_uint_t
ngx_http_eas_cache_update(ngx_shm_zone_t *zone, u_char *digest,
    ngx_uint_t valid, ngx_str_t *user, ngx_str_t *addr,
    ngx_http_eas_preauth_conf_t *pcf, ngx_uint_t *failures)
{
    time_t                      now, ttl;
    ngx_uint_t                  locked;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    now = ngx_time();
    locked = 0;
    *failures = 0;

    ttl = valid ? pcf->valid : pcf->invalid;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_http_eas_cache_expire(ctx, &ctx->sh->credentials, now,
                              NGX_HTTP_EAS_CACHE_EXPIRE);
    ngx_http_eas_cache_expire(ctx, &ctx->sh->counters, now,
                              NGX_HTTP_EAS_CACHE_EXPIRE);

    if (ttl) {
        node = ngx_http_eas_cache_get(ctx, NGX_HTTP_EAS_CACHE_CREDENTIALS,
                                      digest, NGX_HTTP_EAS_DIGEST_LEN, now);
        if (node) {
            node->valid = valid ? 1 : 0;
            node->fresh = now + ttl;
            node->expire = node->fresh + (valid ? pcf->grace : 0);
        }
    }

    if (valid) {
        node = ngx_http_eas_cache_find(ctx->sh, NGX_HTTP_EAS_CACHE_USER,
                   user->data, user->len,
                   ngx_http_eas_cache_hash(NGX_HTTP_EAS_CACHE_USER,
                                           user->data, user->len));

        if (node && node->locked_until <= now) {
            node->failures = 0;
        }

        goto done;
    }

    if (pcf->user_limit) {
        node = ngx_http_eas_cache_get(ctx, NGX_HTTP_EAS_CACHE_USER,
                                      user->data, user->len, now);
        if (node) {
            if (ngx_http_eas_cache_count(node, pcf->user_limit, pcf->window,
                                         pcf->lock_time, now))
            {
                locked |= NGX_HTTP_EAS_CACHE_USER_LOCKED;
            }

            *failures = node->failures;
        }
    }

    if (pcf->address_limit) {
        node = ngx_http_eas_cache_get(ctx, NGX_HTTP_EAS_CACHE_ADDRESS,
                                      addr->data, addr->len, now);
        if (node
            && ngx_http_eas_cache_count(node, pcf->address_limit,
                                        pcf->window, pcf->lock_time, now))
        {
            locked |= NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED;
        }
    }

done:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (locked) {
        (void) ngx_atomic_fetch_add(&ctx->sh->lockouts, 1);
    }

    return locked;
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
 * What a credential source said about the user besides "valid" (the
 * directory's device lists), kept in the credentials node after the
 * digest.  NGX_DECLINED: no such node, it was evicted.
 */

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

        /* another size: a new node takes the old one's place */

        size = offsetof(ngx_http_eas_cache_node_t, data) + node->len + len;

        copy = ngx_slab_alloc_locked(ctx->shpool, size);

        if (copy == NULL) {
            /* the answer goes rather than be served without its data */
            ngx_http_eas_cache_free(ctx, node);
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_DECLINED;
        }

        ngx_memcpy(copy, node, offsetof(ngx_http_eas_cache_node_t, data)
                               + node->len);
        copy->extra = (u_short) len;

        ngx_http_eas_cache_free(ctx, node);

        ngx_rbtree_insert(&ctx->sh->rbtree, &copy->rbnode);
        ngx_queue_insert_head(&ctx->sh->credentials, &copy->queue);

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
    ngx_uint_t                  i;
    ngx_queue_t                *queue, *q;
    ngx_http_eas_cache_node_t  *node;

    queue = (kind == NGX_HTTP_EAS_CACHE_CREDENTIALS) ? &ctx->sh->credentials
                                                     : &ctx->sh->counters;

    hash = ngx_http_eas_cache_hash(kind, key, len);

    node = ngx_http_eas_cache_find(ctx->sh, kind, key, len, hash);

    if (node) {
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(queue, &node->queue);
        return node;
    }

    size = offsetof(ngx_http_eas_cache_node_t, data) + len;

    for (i = 0; i < 3; i++) {
        node = ngx_slab_alloc_locked(ctx->shpool, size);

        if (node) {
            break;
        }

        /* full: the least recently used credentials go first */

        q = ngx_queue_empty(&ctx->sh->credentials) ? NULL
            : ngx_queue_last(&ctx->sh->credentials);

        if (q == NULL && !ngx_queue_empty(&ctx->sh->counters)) {
            q = ngx_queue_last(&ctx->sh->counters);
        }

        if (q == NULL) {
            break;
        }

        ngx_http_eas_cache_free(ctx,
            ngx_queue_data(q, ngx_http_eas_cache_node_t, queue));
    }

    if (node == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "could not allocate node%s", ctx->shpool->log_ctx);
        return NULL;
    }

    ngx_memzero(node, size);

    node->rbnode.key = hash;
    node->kind = (u_char) kind;
    node->len = (u_short) len;
    node->window_start = now;
    ngx_memcpy(node->data, key, len);

    ngx_rbtree_insert(&ctx->sh->rbtree, &node->rbnode);
    ngx_queue_insert_head(queue, &node->queue);

    return node;
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

        if (node->expire > now) {
            return;
        }

        ngx_http_eas_cache_free(ctx, node);
    }
}


static void
ngx_http_eas_cache_free(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_node_t *node)
{
    ngx_queue_remove(&node->queue);
    ngx_rbtree_delete(&ctx->sh->rbtree, &node->rbnode);
    ngx_slab_free_locked(ctx->shpool, node);
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
