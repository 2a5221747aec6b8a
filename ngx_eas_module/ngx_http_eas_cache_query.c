
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The pre-authentication zone asked and told, under its mutex
 * (docs/authentication.md): before the credential source, the lockout
 * (a known-good device passes), the cache and room for the failure
 * counters, a try reserved on them; after it, the answer cached, a
 * failure counted, a lockout started, a device made known good.  The
 * zone itself is in ngx_http_eas_cache.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_cache.h"


static ngx_uint_t ngx_http_eas_cache_fail(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    time_t now);
static void ngx_http_eas_cache_unreserve(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q);
static ngx_uint_t ngx_http_eas_cache_count(ngx_http_eas_cache_node_t *node,
    ngx_uint_t limit, time_t window, time_t lock_time, time_t now);
static ngx_uint_t ngx_http_eas_cache_tries(ngx_http_eas_cache_node_t *node,
    time_t window, time_t now);
static time_t ngx_http_eas_cache_locked(ngx_http_eas_cache_node_t *node,
    time_t now);
static void ngx_http_eas_cache_known(ngx_http_eas_cache_ctx_t *ctx,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    ngx_uint_t create, ngx_http_eas_cache_node_t **found, time_t now);
static ngx_http_eas_cache_node_t *ngx_http_eas_cache_reserve(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, ngx_str_t *key,
    time_t window, time_t now);


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

    /*
     * No lockout of the zone lasts past now (every one started moved
     * locked_until): no user or address is locked, they need no look
     */

    user = NULL;
    addr = NULL;

    if (ctx->sh->locked_until > now) {
        user = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_USER,
                                       q->user->data, q->user->len);

        addr = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_ADDRESS,
                                       q->addr->data, q->addr->len);
    }

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
            /* the device's node was looked up above, under this lock */
            ngx_http_eas_cache_known(ctx, q, pcf, 1, &known, now);
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

        ngx_http_eas_cache_known(ctx, q, pcf, create, NULL, now);

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
                ctx->sh->locked_until = ngx_max(ctx->sh->locked_until,
                                                node->locked_until);
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
                ctx->sh->locked_until = ngx_max(ctx->sh->locked_until,
                                                node->locked_until);
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


/*
 * A lockout another gateway started (ngx_http_eas_redis_state.c): the
 * user or address is locked here too for what is left of it, so that a
 * known-good device keeps working through it and the rest is refused
 * here, and it stays in force if the shared state goes away.
 */

void
ngx_http_eas_cache_lock(ngx_shm_zone_t *zone, ngx_uint_t kind,
    ngx_str_t *key, time_t left)
{
    time_t                      now;
    ngx_http_eas_cache_ctx_t   *ctx;
    ngx_http_eas_cache_node_t  *node;

    ctx = zone->data;
    now = ngx_time();

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    node = ngx_http_eas_cache_reserve(ctx, kind, key, left, now);

    if (node && node->locked_until < now + left) {
        node->locked_until = now + left;
        node->expire = ngx_max(node->expire, node->locked_until);
        ctx->sh->locked_until = ngx_max(ctx->sh->locked_until,
                                        node->locked_until);
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
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
    ngx_uint_t create, ngx_http_eas_cache_node_t **found, time_t now)
{
    ngx_http_eas_cache_node_t  *node;

    if (q->device == NULL) {
        return;
    }

    /* found: what a find of the device's key under the same lock gave
     * (NULL in it: no live node), so it is not looked up twice */

    if (found) {
        node = *found;

    } else {
        node = ngx_http_eas_cache_find(ctx, NGX_HTTP_EAS_CACHE_KNOWN,
                                       q->device,
                                       NGX_HTTP_EAS_CACHE_KNOWN_LEN);
    }

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
