
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The device zone's records listed and deleted (docs/devices.md): for
 * the inventory (most recently seen first), the admin API's filtered,
 * paged listing (newest or oldest first), its delete of
 * one record and of the records not seen since a time; a counted
 * record gives its user's eas_device_max place back.  The zone and the
 * max-devices rule are in ngx_http_eas_devices.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_redis.h"


static ngx_uint_t ngx_http_eas_devices_match(
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_device_filter_t *f);
static void ngx_http_eas_devices_remove(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn);
static void ngx_http_eas_devices_uncount(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn);


/* copies up to n records out, most recently seen first */

ngx_uint_t
ngx_http_eas_device_list(ngx_shm_zone_t *zone, ngx_http_eas_device_t *out,
    ngx_uint_t n)
{
    ngx_uint_t                    total;
    ngx_http_eas_device_filter_t  all;

    ngx_memzero(&all, sizeof(ngx_http_eas_device_filter_t));
    all.any_access = 1;

    return ngx_http_eas_device_select(zone, &all, out, n, &total);
}


/*
 * The admin API's device listing (ngx_http_eas_admin.c): the records
 * that match the filter, in the order last seen (newest or oldest
 * first), counted in *total; only the n after the first f->skip are
 * copied out, so a page of a large zone costs one walk under the lock
 * and a page of copies, not a copy of the zone.
 */

ngx_uint_t
ngx_http_eas_device_select(ngx_shm_zone_t *zone,
    ngx_http_eas_device_filter_t *f, ngx_http_eas_device_t *out,
    ngx_uint_t n, ngx_uint_t *total)
{
    ngx_uint_t                    i, k, older;
    ngx_queue_t                  *q, *c, *lru, *counted;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn, *dc, *d;

    ctx = zone->data;
    i = 0;
    k = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    /* both queues are in the order last seen, newest at the head */

    lru = ngx_http_eas_zone_queue(&ctx->zone, NGX_HTTP_EAS_Q_EVICTABLE);
    counted = ngx_http_eas_zone_queue(&ctx->zone, NGX_HTTP_EAS_Q_COUNTED);

    if (f->oldest_first) {
        q = ngx_queue_last(lru);
        c = ngx_queue_last(counted);

    } else {
        q = ngx_queue_head(lru);
        c = ngx_queue_head(counted);
    }

    for ( ;; ) {
        dn = (q == ngx_queue_sentinel(lru)) ? NULL
             : ngx_queue_data(q, ngx_http_eas_devices_node_t, zn.queue);
        dc = (c == ngx_queue_sentinel(counted)) ? NULL
             : ngx_queue_data(c, ngx_http_eas_devices_node_t, zn.queue);

        if (dn == NULL && dc == NULL) {
            break;
        }

        /* a tie goes the other way too: oldest first is the mirror */

        older = (dn && dc && dc->last_seen <= dn->last_seen);

        if (dn == NULL || (dc && (f->oldest_first ? older
                                  : dc->last_seen > dn->last_seen)))
        {
            d = dc;
            c = f->oldest_first ? ngx_queue_prev(c) : ngx_queue_next(c);

        } else {
            d = dn;
            q = f->oldest_first ? ngx_queue_prev(q) : ngx_queue_next(q);
        }

        if (!ngx_http_eas_devices_match(d, f)) {
            continue;
        }

        if (k >= f->skip && i < n) {
            ngx_http_eas_devices_copy(ctx, d, &out[i++]);
        }

        k++;
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    *total = k;

    return i;
}


/* a filter field given and not equal (without case): no match */

static ngx_uint_t
ngx_http_eas_devices_match(ngx_http_eas_devices_node_t *dn,
    ngx_http_eas_device_filter_t *f)
{
    u_char  *p;

    if (f->any_access == 0 && dn->access != f->access) {
        return 0;
    }

    p = dn->data + dn->zn.len;

    if (f->user.len
        && (f->user.len != dn->user_len
            || ngx_strncasecmp(f->user.data, p, dn->user_len) != 0))
    {
        return 0;
    }

    p += dn->user_len;

    if (f->device_id.len
        && (f->device_id.len != dn->device_id_len
            || ngx_strncasecmp(f->device_id.data, p, dn->device_id_len)
               != 0))
    {
        return 0;
    }

    p += dn->device_id_len;

    if (f->device_type.len
        && (f->device_type.len != dn->device_type_len
            || ngx_strncasecmp(f->device_type.data, p, dn->device_type_len)
               != 0))
    {
        return 0;
    }

    return 1;
}


/*
 * The admin API (ngx_http_eas_admin.c): a record deleted, counted or
 * not; a counted one gives its user's eas_device_max place back.
 * NGX_DECLINED: no such record.
 */

ngx_int_t
ngx_http_eas_device_delete(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id)
{
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;

    dn = ngx_http_eas_devices_lock_record(ctx, user, device_id);
    if (dn == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_eas_devices_remove(ctx, dn);

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return NGX_OK;
}


/*
 * The user's eas_device_max places on Redis are held by other devices:
 * the place counted here is given back, and the device's next request
 * is counted again, asking Redis, as a new device is.  "refused": Redis
 * refused the request's device (ngx_http_eas_redis_device()), and the
 * record says that decision, blocked by eas_device_max, here and,
 * written again at once, on Redis and every other gateway; else the
 * record's write found the set full (ngx_http_eas_redis_inventory.c)
 * and the record stays as it is.  NGX_DECLINED: no such record, or not
 * counted.
 */

ngx_int_t
ngx_http_eas_device_unplace(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_uint_t refused)
{
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_http_eas_devices_ctx_t    *ctx;
    ngx_http_eas_devices_node_t   *dn;
    ngx_http_eas_device_update_t   u;

    static ngx_str_t  reason = ngx_string(NGX_HTTP_EAS_REASON_MAX_DEVICES);

    ctx = zone->data;

    dn = ngx_http_eas_devices_lock_record(ctx, user, device_id);
    if (dn == NULL) {
        return NGX_DECLINED;
    }

    rc = dn->zn.mark ? NGX_OK : NGX_DECLINED;

    if (dn->zn.mark) {
        ngx_http_eas_devices_uncount(ctx, dn);
        ngx_http_eas_zone_touch(&ctx->zone, &dn->zn,
                                NGX_HTTP_EAS_Q_EVICTABLE);
    }

    if (refused) {
        p = dn->data + dn->zn.len + dn->user_len + dn->device_id_len
            + NGX_HTTP_EAS_DEVICE_TYPE_LEN + NGX_HTTP_EAS_DEVICE_UA_LEN;

        dn->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
        dn->reason_len = (u_char) reason.len;
        ngx_memcpy(p, reason.data, reason.len);
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    if (refused) {
        ngx_memzero(&u, sizeof(ngx_http_eas_device_update_t));
        u.user = *user;
        u.device_id = *device_id;
        u.access = NGX_HTTP_EAS_ACCESS_BLOCKED;
        u.created = 1;

        ngx_http_eas_redis_inventory_seen(zone, &u);
    }

    return rc;
}


/*
 * A fill of the zone from Redis has read every record there
 * (ngx_http_eas_redis_import.c): a record it did not find ("filled"
 * not this fill's) and not seen since "before" is gone from Redis,
 * deleted while this gateway was not listening or expired there, and
 * goes from the zone too; a counted one gives its place back, so the
 * device's next request asks Redis again.  Returns how many went.
 */

ngx_uint_t
ngx_http_eas_device_unfilled(ngx_shm_zone_t *zone, ngx_uint_t filled,
    time_t before)
{
    ngx_uint_t                    k, n;
    ngx_queue_t                  *q, *next, *head;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;
    n = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    for (k = NGX_HTTP_EAS_Q_EVICTABLE; k <= NGX_HTTP_EAS_Q_COUNTED; k++) {
        head = ngx_http_eas_zone_queue(&ctx->zone, k);

        for (q = ngx_queue_head(head);
             q != ngx_queue_sentinel(head);
             q = next)
        {
            next = ngx_queue_next(q);
            dn = ngx_queue_data(q, ngx_http_eas_devices_node_t, zn.queue);

            if (dn->filled != filled && dn->last_seen < before) {
                ngx_http_eas_devices_remove(ctx, dn);
                n++;
            }
        }
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return n;
}


/* every record last seen before "before": copied to out (up to n), and
 * deleted too if "delete" */

ngx_uint_t
ngx_http_eas_device_stale(ngx_shm_zone_t *zone, time_t before,
    ngx_uint_t delete, ngx_http_eas_device_t *out, ngx_uint_t n)
{
    ngx_uint_t                    i, k;
    ngx_queue_t                  *q, *prev, *queues[2];
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;
    i = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    queues[0] = ngx_http_eas_zone_queue(&ctx->zone, NGX_HTTP_EAS_Q_EVICTABLE);
    queues[1] = ngx_http_eas_zone_queue(&ctx->zone, NGX_HTTP_EAS_Q_COUNTED);

    /* each queue is in the order last seen: the stale ones at its tail */

    for (k = 0; k < 2; k++) {
        for (q = ngx_queue_last(queues[k]);
             q != ngx_queue_sentinel(queues[k]) && i < n;
             q = prev)
        {
            prev = ngx_queue_prev(q);
            dn = ngx_queue_data(q, ngx_http_eas_devices_node_t, zn.queue);

            if (dn->last_seen >= before) {
                break;
            }

            ngx_http_eas_devices_copy(ctx, dn, &out[i++]);

            if (delete) {
                ngx_http_eas_devices_remove(ctx, dn);
            }
        }
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    ngx_http_eas_redis_inventory_stale(zone, delete ? out : NULL, i);

    return i;
}


static void
ngx_http_eas_devices_remove(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn)
{
    ngx_http_eas_devices_uncount(ctx, dn);
    ngx_http_eas_zone_free(&ctx->zone, &dn->zn);
}


/* a counted record gives its user's place back */

static void
ngx_http_eas_devices_uncount(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn)
{
    ngx_http_eas_devices_key_t    user;
    ngx_http_eas_devices_user_t  *un;

    if (dn->zn.mark) {
        ngx_http_eas_devices_user_key(&user, dn->data);

        un = (ngx_http_eas_devices_user_t *)
                 ngx_http_eas_devices_find(ctx, NGX_HTTP_EAS_NODE_USER,
                                           &user);
        if (un) {
            if (un->count > 1) {
                un->count--;

            } else {
                ngx_http_eas_zone_free(&ctx->zone, &un->zn);
            }
        }

        /* not counted any more */
        dn->zn.mark = 0;
    }
}


ngx_uint_t
ngx_http_eas_device_count(ngx_shm_zone_t *zone)
{
    ngx_uint_t                   n;
    ngx_http_eas_devices_ctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);
    n = ngx_http_eas_zone_nodes(&ctx->zone, NGX_HTTP_EAS_NODE_DEVICE);
    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return n;
}
