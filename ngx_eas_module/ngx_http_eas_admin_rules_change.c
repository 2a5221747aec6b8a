
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The changes of the runtime device decisions (eas_admin_rules): the
 * admin API's, and the other gateways' applied (ngx_http_eas_redis_rules*.c),
 * each under the zone's lock with a hybrid logical clock per rule; the room
 * for a rule, made by dropping the oldest removals kept; the removals
 * kept longer than keep_removals= expired; and the rules copied out
 * for the listing and the other gateways.  The directive, the zone and
 * the decision for one request are in ngx_http_eas_admin_rules.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin_rules.h"


static uint64_t ngx_http_eas_admin_now(ngx_http_eas_admin_node_t *node);
static ngx_http_eas_admin_node_t *ngx_http_eas_admin_alloc(
    ngx_http_eas_admin_ctx_t *ctx, size_t size, ngx_uint_t removal,
    uint64_t stamp);
static void ngx_http_eas_admin_free(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_node_t *node);
static ngx_uint_t ngx_http_eas_admin_gone(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_node_t *node);
static void ngx_http_eas_admin_copy(ngx_http_eas_admin_entry_t *out,
    ngx_http_eas_admin_node_t *node);


/*
 * The admin API's changes.  rule->access NONE removes.  The file is
 * written again before the answer: NGX_ERROR if it could not be (the
 * zone has the change all the same, and the error log says why).
 * NGX_DECLINED: no such rule to remove; NGX_BUSY: the zone is full.
 * With eas_shared_state a removed rule is kept as a deletion (access
 * NONE, its time), so that a gateway that was away cannot bring it
 * back, and every change goes to the other gateways.
 */

ngx_int_t
ngx_http_eas_admin_change(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, ngx_log_t *log)
{
    size_t                      len;
    uint64_t                    stamp;
    ngx_int_t                   rc;
    ngx_http_eas_admin_ctx_t   *ctx;
    ngx_http_eas_admin_node_t  *node;
    u_char                      key[NGX_HTTP_EAS_ADMIN_KEY];

    ctx = zone->data;

    ngx_http_eas_admin_key(rule->field, &rule->value, key, &len);

    if (rule->access != NGX_HTTP_EAS_ACCESS_NONE) {
        ngx_shmtx_lock(&ctx->shpool->mutex);
        node = ngx_http_eas_admin_find(ctx->sh, key, len);
        stamp = ngx_http_eas_admin_now(node);
        rc = ngx_http_eas_admin_put(ctx, rule, stamp);
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (rc != NGX_OK) {
            return NGX_BUSY;
        }

    } else {
        ngx_shmtx_lock(&ctx->shpool->mutex);

        node = ngx_http_eas_admin_find(ctx->sh, key, len);
        stamp = ngx_http_eas_admin_now(node);

        if (node && node->access == NGX_HTTP_EAS_ACCESS_NONE) {
            node = NULL;

        } else if (node && ngx_http_eas_redis_rules_shared()) {
            (void) ngx_http_eas_admin_put(ctx, rule, stamp);

        } else if (node) {
            ngx_http_eas_admin_free(ctx, node);
            (void) ngx_atomic_fetch_add(&ctx->sh->count, -1);
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (node == NULL) {
            return NGX_DECLINED;
        }
    }

    rc = ngx_http_eas_admin_save(ctx, log);

    ngx_http_eas_redis_rules_push(zone, rule, stamp, log);

    return rc;
}


/*
 * A rule of another gateway (ngx_http_eas_redis_rules.c): applied if it
 * is newer than this zone's, or as new but stricter (the same time on
 * two gateways), so that every gateway ends with the same; a time far
 * ahead, here or there, counts as older than any real change
 * (ngx_http_eas_admin_real()).  own: this gateway's own change read
 * back from Redis, which may have given it its own time (a change
 * stamped by a clock run ahead of Redis's): the zone takes that time
 * even if lower.  NGX_OK: changed; NGX_AGAIN: a removal kept (or,
 * older than keep_removals=, dropped) of a rule this zone did not hold
 * (nothing in force changed); NGX_DONE: the same rule, only another
 * time; NGX_DECLINED: this zone had it, or newer; NGX_BUSY: full.
 */

ngx_int_t
ngx_http_eas_admin_apply(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp, ngx_uint_t own)
{
    size_t                      len;
    uint64_t                    here;
    ngx_int_t                   rc;
    ngx_uint_t                  held;
    ngx_http_eas_admin_ctx_t   *ctx;
    ngx_http_eas_admin_node_t  *node;
    u_char                      key[NGX_HTTP_EAS_ADMIN_KEY];

    ctx = zone->data;

    ngx_http_eas_admin_key(rule->field, &rule->value, key, &len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_admin_find(ctx->sh, key, len);
    held = node && node->access != NGX_HTTP_EAS_ACCESS_NONE;

    if (node && !held && ngx_http_eas_admin_gone(ctx, node)) {
        /* a removal kept here past keep_removals=: as if absent */
        node->stamp = 0;
    }

    stamp = ngx_http_eas_admin_real(stamp);
    here = node ? ngx_http_eas_admin_real(node->stamp) : 0;

    if (rule->access == NGX_HTTP_EAS_ACCESS_NONE
        && ngx_http_eas_admin_expired(zone, stamp))
    {
        /*
         * a removal older than keep_removals=, no longer kept: the rule
         * held here, if older (a gateway away longer than that), is
         * dropped as it was everywhere else, and so is an older removal
         */

        rc = NGX_DECLINED;

        if (node && here < stamp) {
            rc = held ? NGX_OK : NGX_AGAIN;

            if (held) {
                (void) ngx_atomic_fetch_add(&ctx->sh->count, -1);
            }

            ngx_http_eas_admin_free(ctx, node);
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        return rc;
    }

    if (own && node && node->access == rule->access) {
        node->stamp = stamp;
        rc = NGX_DONE;

    } else if (node
               && (here > stamp
                   || (here == stamp && node->access >= rule->access)))
    {
        rc = NGX_DECLINED;

    } else if (node && node->access == rule->access) {
        node->stamp = stamp;
        rc = NGX_DONE;

    } else if (ngx_http_eas_admin_put(ctx, rule, stamp) != NGX_OK) {
        rc = NGX_BUSY;

    } else if (!held && rule->access == NGX_HTTP_EAS_ACCESS_NONE) {
        rc = NGX_AGAIN;

    } else {
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/* called with the zone locked: a removal kept past keep_removals= */

static ngx_uint_t
ngx_http_eas_admin_gone(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_node_t *node)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) node->since * 1000 + ctx->keep
           < (uint64_t) tp->sec * 1000 + tp->msec;
}


/*
 * The time of a change made here to the rule of node (NULL: none held
 * or kept), called with the zone locked: the wall clock in
 * milliseconds, but above the time of the rule's present entry (its
 * own, the file's or another gateway's), a hybrid logical clock per
 * rule: a change made after seeing another of the same rule is newer
 * than it, whatever the two gateways' clocks say (within
 * NGX_HTTP_EAS_ADMIN_SKEW).  A time further ahead (forged on Redis, or
 * of a clock run wild) is no real change: the clock alone stamps the
 * change, which is then newer than it everywhere.
 */

static uint64_t
ngx_http_eas_admin_now(ngx_http_eas_admin_node_t *node)
{
    uint64_t     now;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    if (node && ngx_http_eas_admin_real(node->stamp) >= now) {
        now = node->stamp + 1;
    }

    return ngx_min(now, NGX_HTTP_EAS_ADMIN_STAMP_MAX);
}


/*
 * A time as the changes are ordered: one more than
 * NGX_HTTP_EAS_ADMIN_SKEW ahead of this clock counts as
 * NGX_HTTP_EAS_ADMIN_STAMP_FUTURE, older than any real change, as the
 * scripts on Redis count it by Redis's clock
 * (ngx_http_eas_redis_rules.c).
 */

uint64_t
ngx_http_eas_admin_real(uint64_t stamp)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    if (stamp > (uint64_t) tp->sec * 1000 + tp->msec
                + NGX_HTTP_EAS_ADMIN_SKEW)
    {
        return NGX_HTTP_EAS_ADMIN_STAMP_FUTURE;
    }

    return stamp;
}


/*
 * Called with the zone locked: a new rule, or a changed one, or (access
 * NONE) a deletion kept for the other gateways, not counted.
 */

ngx_int_t
ngx_http_eas_admin_put(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp)
{
    size_t                      len;
    ngx_http_eas_admin_node_t  *node;
    u_char                      key[NGX_HTTP_EAS_ADMIN_KEY];

    ngx_http_eas_admin_key(rule->field, &rule->value, key, &len);

    node = ngx_http_eas_admin_find(ctx->sh, key, len);

    if (node == NULL) {
        node = ngx_http_eas_admin_alloc(ctx,
                                      offsetof(ngx_http_eas_admin_node_t, data)
                                      + len + rule->value.len,
                                      rule->access == NGX_HTTP_EAS_ACCESS_NONE,
                                      stamp);
        if (node == NULL) {
            return NGX_ERROR;
        }

        node->sn.node.key = ngx_crc32_short(key, len);
        node->len = (u_short) len;
        ngx_memcpy(node->data, key, len);
        ngx_memcpy(node->data + len, rule->value.data, rule->value.len);
        node->sn.str.data = node->data;
        node->sn.str.len = len;

        ngx_rbtree_insert(&ctx->sh->rbtree, &node->sn.node);
        ngx_queue_insert_tail(&ctx->sh->queue, &node->queue);
        node->access = NGX_HTTP_EAS_ACCESS_NONE;
    }

    if ((node->access == NGX_HTTP_EAS_ACCESS_NONE)
        != (rule->access == NGX_HTTP_EAS_ACCESS_NONE))
    {
        (void) ngx_atomic_fetch_add(&ctx->sh->count,
                                    rule->access == NGX_HTTP_EAS_ACCESS_NONE
                                    ? (ngx_atomic_int_t) -1 : 1);
    }

    node->access = (u_char) rule->access;
    node->stamp = stamp;

    /*
     * when it was made by the wall clock, or stored here if its time is
     * ahead of this clock (or was far ahead, ..._STAMP_FUTURE): what the
     * listing shows, and what a removal is kept for keep_removals= from
     * (a time far ahead, forged or of a clock run wild, keeps nothing
     * longer)
     */

    node->since = (stamp == NGX_HTTP_EAS_ADMIN_STAMP_FUTURE)
                  ? ngx_time()
                  : ngx_min((time_t) (stamp / 1000), ngx_time());
    node->who_len = (u_char) ngx_min(rule->who.len, NGX_HTTP_EAS_ADMIN_WHO);
    ngx_memcpy(node->who, rule->who.data, node->who_len);

    (void) ngx_atomic_fetch_add(&ctx->sh->generation, 1);

    return NGX_OK;
}


/*
 * A user= of a rule as the identity it stands for, folded by the one
 * function requests are (ngx_http_eas_user_identity(): NFKC_Casefold,
 * "DOMAIN\\user" and "user@domain" as "user"), so that a rule given as
 * "ÖZIL", "Ｊane" or "CORP\\Maxi" decides the requests of "özil",
 * "jane" and "maxi".  NGX_DECLINED: no user name (not UTF-8, folds to
 * nothing or into another form).
 */

ngx_int_t
ngx_http_eas_admin_fold(ngx_pool_t *pool, ngx_str_t *user)
{
    u_char  *p;
    size_t   n;

    p = ngx_pnalloc(pool, EAS_USER_MAX);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_eas_user_identity(NULL, user->data, user->len, p,
                                   EAS_USER_MAX, &n)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    user->data = p;
    user->len = n;

    return NGX_OK;
}


/*
 * Called with the zone locked: room for a node.  The zone full, the
 * oldest removals kept for the other gateways make room: a rule (or a
 * newer removal) never waits for the room a removal takes.  Still full:
 * one line a minute per worker (the pool's own are off).
 */

static ngx_http_eas_admin_node_t *
ngx_http_eas_admin_alloc(ngx_http_eas_admin_ctx_t *ctx, size_t size,
    ngx_uint_t removal, uint64_t stamp)
{
    void                       *p;
    ngx_queue_t                *q;
    ngx_http_eas_admin_node_t  *node, *oldest;

    static time_t               logged;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(ctx->shpool, size);
        if (p) {
            return p;
        }

        oldest = NULL;

        for (q = ngx_queue_head(&ctx->sh->queue);
             q != ngx_queue_sentinel(&ctx->sh->queue);
             q = ngx_queue_next(q))
        {
            node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);

            if (node->access == NGX_HTTP_EAS_ACCESS_NONE
                && (oldest == NULL || node->stamp < oldest->stamp))
            {
                oldest = node;
            }
        }

        if (oldest == NULL || (removal && oldest->stamp >= stamp)) {
            break;
        }

        ngx_http_eas_admin_free(ctx, oldest);
    }

    if (ngx_time() - logged >= 60) {
        logged = ngx_time();

        if (removal) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "eas: no room to keep a removal%s: the zone is "
                          "full of rules and newer removals, make it "
                          "larger (said once a minute)",
                          ctx->shpool->log_ctx);

        } else {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "eas: no room for a rule%s, even without the "
                          "removals kept: make the zone larger (said once "
                          "a minute)", ctx->shpool->log_ctx);
        }
    }

    return NULL;
}


/* called with the zone locked */

static void
ngx_http_eas_admin_free(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_node_t *node)
{
    ngx_queue_remove(&node->queue);
    ngx_rbtree_delete(&ctx->sh->rbtree, &node->sn.node);
    ngx_slab_free_locked(ctx->shpool, node);
    (void) ngx_atomic_fetch_add(&ctx->sh->generation, 1);
}


/*
 * Removals kept longer than keep_removals= are dropped: a gateway away
 * longer than that may bring the removed rule back.  Called before the
 * file is written.
 */

void
ngx_http_eas_admin_expire(ngx_http_eas_admin_ctx_t *ctx)
{
    uint64_t                    cutoff;
    ngx_time_t                 *tp;
    ngx_queue_t                *q, *next;
    ngx_http_eas_admin_node_t  *node;

    tp = ngx_timeofday();
    cutoff = (uint64_t) tp->sec * 1000 + tp->msec;

    if (cutoff <= ctx->keep) {
        return;
    }

    cutoff -= ctx->keep;         /* by the time kept here, not the stamp */

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->queue);
         q != ngx_queue_sentinel(&ctx->sh->queue);
         q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);

        if (node->access == NGX_HTTP_EAS_ACCESS_NONE
            && (uint64_t) node->since * 1000 < cutoff)
        {
            ngx_http_eas_admin_free(ctx, node);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/* a removal of that time is no longer kept (nor taken from Redis) */

ngx_uint_t
ngx_http_eas_admin_expired(ngx_shm_zone_t *zone, uint64_t stamp)
{
    ngx_time_t                *tp;
    ngx_http_eas_admin_ctx_t  *ctx;

    ctx = zone->data;
    tp = ngx_timeofday();

    return stamp + ctx->keep < (uint64_t) tp->sec * 1000 + tp->msec;
}


/*
 * The rules in force, copied out for the admin API's listing: up to n,
 * in file order.  Returns how many.
 */

ngx_uint_t
ngx_http_eas_admin_list(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_entry_t *out, ngx_uint_t n)
{
    ngx_uint_t                  i;
    ngx_queue_t                *q;
    ngx_http_eas_admin_ctx_t   *ctx;
    ngx_http_eas_admin_node_t  *node;

    ctx = zone->data;
    i = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->queue);
         q != ngx_queue_sentinel(&ctx->sh->queue) && i < n;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);

        if (node->access == NGX_HTTP_EAS_ACCESS_NONE) {
            continue;
        }

        ngx_http_eas_admin_copy(&out[i], node);
        i++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return i;
}


/*
 * Every rule and kept deletion, copied out for the other gateways:
 * from the "from"th in file order, up to n, with their times.
 */

ngx_uint_t
ngx_http_eas_admin_entries(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_entry_t *out, uint64_t *stamps, ngx_uint_t from,
    ngx_uint_t n)
{
    ngx_uint_t                  i, k;
    ngx_queue_t                *q;
    ngx_http_eas_admin_ctx_t   *ctx;
    ngx_http_eas_admin_node_t  *node;

    ctx = zone->data;
    i = 0;
    k = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->queue);
         q != ngx_queue_sentinel(&ctx->sh->queue) && i < n;
         q = ngx_queue_next(q))
    {
        if (k++ < from) {
            continue;
        }

        node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);

        ngx_http_eas_admin_copy(&out[i], node);
        stamps[i] = node->stamp;
        i++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return i;
}


static void
ngx_http_eas_admin_copy(ngx_http_eas_admin_entry_t *out,
    ngx_http_eas_admin_node_t *node)
{
    out->field = node->data[0];
    out->access = node->access;
    out->since = node->since;
    out->line = node->line;
    out->value_len = node->len - 1;
    ngx_memcpy(out->value, node->data + node->len, node->len - 1);
    out->who_len = node->who_len;
    ngx_memcpy(out->who, node->who, node->who_len);
}
