
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The pre-authentication zone read and changed outside a
 * verification: the admin API's lockouts lifted and listed, cached
 * credentials dropped (all, or one user's), and what the directory
 * source keeps with a credential (its device lists).  The zone itself
 * is in ngx_http_eas_cache.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_cache.h"


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
