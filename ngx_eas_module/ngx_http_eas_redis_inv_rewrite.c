
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


/*
 * Redis lost its data (docs/scale-out.md): the fill of the first worker
 * found this gateway's mark "<prefix>filled:<node>" missing, made by
 * a fill of the worker before (ngx_http_eas_redis_import.c).  The
 * records this gateway wrote last, and still holds, are written again,
 * without waiting for their devices to come back: a device idle since
 * would be missing from the other gateways' fills and, counted for
 * eas_device_max, from its user's set on Redis.
 *
 * Their keys are copied from the zones in one pass (at most
 * NGX_HTTP_EAS_INV_REWRITE_MAX bytes of them; the devices of the others
 * write their records at their next request, as before), then given to
 * the batch of ngx_http_eas_redis_inventory.c, NGX_HTTP_EAS_INV_STEP a
 * step, each step written at once in its pipeline, a step every
 * NGX_HTTP_EAS_INV_STEP_MS.  The first fill of a worker always finds
 * the mark missing (the node is new at each start and reload): only a
 * later fill of the worker, once one made the mark, is taken as a loss.
 */


#define NGX_HTTP_EAS_INV_REWRITE_MAX  (32 * 1024 * 1024)
#define NGX_HTTP_EAS_INV_STEP         128
#define NGX_HTTP_EAS_INV_STEP_MS      20


/* one record's key in the copy; user and DeviceId follow it */
typedef struct {
    ngx_shm_zone_t              *zone;
    u_short                      user_len;
    u_short                      max_devices;
    u_char                       device_id_len;
} ngx_http_eas_inv_rekey_t;


static size_t ngx_http_eas_inv_rewrite_copy(ngx_shm_zone_t *zone,
    u_char *p, u_char *last, ngx_uint_t *n);
static void ngx_http_eas_inv_rewrite_step(ngx_event_t *ev);


/* this worker's */

static u_char            *ngx_http_eas_inv_rewrite_buf;
static u_char            *ngx_http_eas_inv_rewrite_pos;
static u_char            *ngx_http_eas_inv_rewrite_last;
static ngx_event_t        ngx_http_eas_inv_rewrite_ev;
static ngx_connection_t   ngx_http_eas_inv_rewrite_dummy;


void
ngx_http_eas_redis_inv_rewrite(void)
{
    size_t           size, len;
    ngx_uint_t       k, n;
    ngx_shm_zone_t  *zone;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (ngx_http_eas_inv_rewrite_buf) {
        /* lost again while it was written: from the start */
        if (ngx_http_eas_inv_rewrite_ev.timer_set) {
            ngx_del_timer(&ngx_http_eas_inv_rewrite_ev);
        }

        ngx_free(ngx_http_eas_inv_rewrite_buf);
        ngx_http_eas_inv_rewrite_buf = NULL;
    }

    /* the size first, then the copy (what came meanwhile may not fit) */

    size = 0;

    for (k = 0;
         (zone = ngx_http_eas_redis_zone_find(NULL, k, &ngx_http_eas_module));
         k++)
    {
        size += ngx_http_eas_inv_rewrite_copy(zone, NULL, NULL, &n);
    }

    size = ngx_min(size, NGX_HTTP_EAS_INV_REWRITE_MAX);

    if (size == 0) {
        return;
    }

    ngx_http_eas_inv_rewrite_buf = ngx_alloc(size, ngx_cycle->log);
    if (ngx_http_eas_inv_rewrite_buf == NULL) {
        return;
    }

    ngx_http_eas_inv_rewrite_pos = ngx_http_eas_inv_rewrite_buf;
    ngx_http_eas_inv_rewrite_last = ngx_http_eas_inv_rewrite_buf;
    n = 0;

    for (k = 0;
         (zone = ngx_http_eas_redis_zone_find(NULL, k, &ngx_http_eas_module));
         k++)
    {
        len = ngx_http_eas_inv_rewrite_copy(zone,
                                            ngx_http_eas_inv_rewrite_last,
                                            ngx_http_eas_inv_rewrite_buf
                                            + size, &n);
        ngx_http_eas_inv_rewrite_last += len;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "eas: shared state lost its data: %ui device records of "
                  "this gateway written to it again", n);

    if (ngx_http_eas_inv_rewrite_ev.handler == NULL) {
        ngx_http_eas_inv_rewrite_dummy.fd = (ngx_socket_t) -1;

        ngx_http_eas_inv_rewrite_ev.data = &ngx_http_eas_inv_rewrite_dummy;
        ngx_http_eas_inv_rewrite_ev.handler = ngx_http_eas_inv_rewrite_step;
        ngx_http_eas_inv_rewrite_ev.log = ngx_cycle->log;
        ngx_http_eas_inv_rewrite_ev.cancelable = 1;
    }

    ngx_http_eas_inv_rewrite_step(&ngx_http_eas_inv_rewrite_ev);
}


/*
 * The keys of the records of a zone this gateway wrote last (and not
 * refused for eas_device_max: those come back with their next request)
 * copied between p and last, or only measured when p is NULL; their
 * count is added to *n.
 */

static size_t
ngx_http_eas_inv_rewrite_copy(ngx_shm_zone_t *zone, u_char *p, u_char *last,
    ngx_uint_t *n)
{
    size_t                        size, one;
    u_char                       *s;
    ngx_uint_t                    k;
    ngx_queue_t                  *q, *head;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;
    ngx_http_eas_inv_rekey_t     *key;

    static const ngx_uint_t  queues[2] = {
        NGX_HTTP_EAS_Q_COUNTED, NGX_HTTP_EAS_Q_EVICTABLE
    };

    ctx = zone->data;
    size = 0;

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    for (k = 0; k < 2; k++) {
        head = ngx_http_eas_zone_queue(&ctx->zone, queues[k]);

        for (q = ngx_queue_head(head);
             q != ngx_queue_sentinel(head);
             q = ngx_queue_next(q))
        {
            dn = ngx_queue_data(q, ngx_http_eas_devices_node_t, zn.queue);

            if (dn->gateway != 0) {
                continue;
            }

            s = dn->data + dn->zn.len + dn->user_len + dn->device_id_len
                + NGX_HTTP_EAS_DEVICE_TYPE_LEN + NGX_HTTP_EAS_DEVICE_UA_LEN;

            if (!dn->zn.mark
                && ngx_http_eas_redis_inv_refused_max(dn->access, s,
                                                      dn->reason_len))
            {
                continue;
            }

            one = ngx_align(sizeof(ngx_http_eas_inv_rekey_t) + dn->user_len
                            + dn->device_id_len, sizeof(void *));

            if (p) {
                if ((size_t) (last - p) < size + one) {
                    goto done;
                }

                key = (ngx_http_eas_inv_rekey_t *) (p + size);
                key->zone = zone;
                key->user_len = dn->user_len;
                key->device_id_len = dn->device_id_len;
                key->max_devices = dn->max_devices;
                ngx_memcpy((u_char *) (key + 1), dn->data + dn->zn.len,
                           dn->user_len + dn->device_id_len);
                (*n)++;
            }

            size += one;
        }
    }

done:

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return size;
}


/* a step: NGX_HTTP_EAS_INV_STEP records into the batch, written now */

static void
ngx_http_eas_inv_rewrite_step(ngx_event_t *ev)
{
    ngx_uint_t                     i;
    ngx_http_eas_inv_rekey_t      *key;
    ngx_http_eas_device_update_t   u;

    for (i = 0;
         i < NGX_HTTP_EAS_INV_STEP
         && ngx_http_eas_inv_rewrite_pos < ngx_http_eas_inv_rewrite_last;
         i++)
    {
        key = (ngx_http_eas_inv_rekey_t *) ngx_http_eas_inv_rewrite_pos;

        ngx_memzero(&u, sizeof(ngx_http_eas_device_update_t));
        u.user.data = (u_char *) (key + 1);
        u.user.len = key->user_len;
        u.device_id.data = u.user.data + key->user_len;
        u.device_id.len = key->device_id_len;
        u.max_devices = key->max_devices;

        ngx_http_eas_redis_inventory_seen(key->zone, &u);

        ngx_http_eas_inv_rewrite_pos +=
            ngx_align(sizeof(ngx_http_eas_inv_rekey_t) + key->user_len
                      + key->device_id_len, sizeof(void *));
    }

    ngx_http_eas_redis_inv_flush_now();

    if (ngx_http_eas_inv_rewrite_pos < ngx_http_eas_inv_rewrite_last
        && ngx_http_eas_redis_ready() && !ngx_exiting && !ngx_terminate)
    {
        ngx_add_timer(ev, NGX_HTTP_EAS_INV_STEP_MS);
        return;
    }

    /* done, or Redis away again: its next loss starts it again */

    ngx_free(ngx_http_eas_inv_rewrite_buf);
    ngx_http_eas_inv_rewrite_buf = NULL;
}
