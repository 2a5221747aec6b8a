
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The device zone's records listed and deleted (docs/devices.md): for
 * the inventory (most recently seen first), the admin API's delete of
 * one record and of the records not seen since a time; a counted
 * record gives its user's eas_device_max place back.  The zone and the
 * max-devices rule are in ngx_http_eas_devices.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"


static void ngx_http_eas_devices_remove(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn);


/* copies up to n records out, most recently seen first */

ngx_uint_t
ngx_http_eas_device_list(ngx_shm_zone_t *zone, ngx_http_eas_device_t *out,
    ngx_uint_t n)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q, *c, *lru, *counted;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn, *dc;

    ctx = zone->data;
    i = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    /* both queues are in the order last seen: merged */

    lru = ngx_http_eas_zone_queue(&ctx->zone, NGX_HTTP_EAS_Q_EVICTABLE);
    counted = ngx_http_eas_zone_queue(&ctx->zone, NGX_HTTP_EAS_Q_COUNTED);

    q = ngx_queue_head(lru);
    c = ngx_queue_head(counted);

    while (i < n) {
        dn = (q == ngx_queue_sentinel(lru)) ? NULL
             : ngx_queue_data(q, ngx_http_eas_devices_node_t, zn.queue);
        dc = (c == ngx_queue_sentinel(counted)) ? NULL
             : ngx_queue_data(c, ngx_http_eas_devices_node_t, zn.queue);

        if (dn == NULL && dc == NULL) {
            break;
        }

        if (dn == NULL || (dc && dc->last_seen > dn->last_seen)) {
            ngx_http_eas_devices_copy(ctx, dc, &out[i++]);
            c = ngx_queue_next(c);

        } else {
            ngx_http_eas_devices_copy(ctx, dn, &out[i++]);
            q = ngx_queue_next(q);
        }
    }

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return i;
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

    return i;
}


static void
ngx_http_eas_devices_remove(ngx_http_eas_devices_ctx_t *ctx,
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

    ngx_http_eas_zone_free(&ctx->zone, &dn->zn);
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
