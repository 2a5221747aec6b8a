
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
 * The shared device inventory's configuration (eas_shared_state's
 * device_ttl= and flush=), its keys on Redis, the stale records the
 * admin API deletes there, and its part of eas_status.  The batch and
 * its writes are in ngx_http_eas_redis_inventory.c, the deletions of
 * the admin API in ngx_http_eas_redis_inv_pending.c.
 */


/* eas_shared_state's device_ttl=TIME and flush=TIME; NGX_DECLINED: not
 * ours, or not valid (the directive says so) */

ngx_int_t
ngx_http_eas_redis_inventory_param(ngx_http_eas_redis_conf_t *rcf,
    ngx_str_t *v)
{
    time_t     t;
    ngx_int_t  n;
    ngx_str_t  s;

    if (v->len > 11 && ngx_strncmp(v->data, "device_ttl=", 11) == 0) {
        s.data = v->data + 11;
        s.len = v->len - 11;

        t = ngx_parse_time(&s, 1);
        if (t == (time_t) NGX_ERROR || t < 60) {
            return NGX_DECLINED;
        }

        rcf->device_ttl = t;
        return NGX_OK;
    }

    if (v->len > 6 && ngx_strncmp(v->data, "flush=", 6) == 0) {
        s.data = v->data + 6;
        s.len = v->len - 6;

        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n < 10 || n > 60000) {
            return NGX_DECLINED;
        }

        rcf->flush = (ngx_msec_t) n;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* "<prefix><kind><zone>", then ":<user>" or ":<n>:<user><DeviceId>" */

u_char *
ngx_http_eas_redis_inv_key(u_char *p, ngx_http_eas_redis_conf_t *rcf,
    const char *kind, ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id)
{
    p = ngx_cpymem(p, rcf->prefix.data, rcf->prefix.len);
    p = ngx_cpymem(p, kind, ngx_strlen(kind));
    p = ngx_cpymem(p, zone->shm.name.data, zone->shm.name.len);

    if (user == NULL) {
        return p;
    }

    *p++ = ':';

    if (device_id) {
        p = ngx_sprintf(p, "%uz:", user->len);
    }

    ngx_strlow(p, user->data, user->len);
    p += user->len;

    if (device_id) {
        ngx_strlow(p, device_id->data, device_id->len);
        p += device_id->len;
    }

    return p;
}


/*
 * The admin API deleted the records not seen for a time
 * (ngx_http_eas_device_stale()): each goes from Redis and every gateway,
 * and gives its eas_device_max place back there, as one deleted alone.
 */

void
ngx_http_eas_redis_inventory_stale(ngx_shm_zone_t *devices,
    ngx_http_eas_device_t *deleted, ngx_uint_t n)
{
    ngx_str_t   user, device_id;
    ngx_uint_t  i;

    if (deleted == NULL || ngx_http_eas_redis_get_conf() == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        user.data = deleted[i].user;
        user.len = deleted[i].user_len;
        device_id.data = deleted[i].device_id;
        device_id.len = deleted[i].device_id_len;

        (void) ngx_http_eas_redis_device_delete(devices, &user,
                                                &device_id);
    }
}


/* its part of eas_status */

u_char *
ngx_http_eas_redis_inventory_status(u_char *p, ngx_uint_t prometheus)
{
    ngx_atomic_t  *sh;

    sh = ngx_http_eas_redis_counters();

    if (sh == NULL) {
        return p;
    }

    if (!prometheus) {
        return ngx_sprintf(p, "\"shared_inventory\":{\"written\":%uA,"
                           "\"dropped\":%uA,\"imported\":%uA,"
                           "\"refused\":%uA},\n",
                           sh[NGX_HTTP_EAS_INV_WRITTEN],
                           sh[NGX_HTTP_EAS_INV_DROPPED],
                           sh[NGX_HTTP_EAS_INV_IMPORTED],
                           sh[NGX_HTTP_EAS_INV_REFUSED]);
    }

    return ngx_sprintf(p,
        "# HELP nginx_eas_shared_inventory_written_total Device records "
        "written to Redis, batched.\n"
        "# TYPE nginx_eas_shared_inventory_written_total counter\n"
        "nginx_eas_shared_inventory_written_total %uA\n"
        "# HELP nginx_eas_shared_inventory_dropped_total Device records "
        "not written: Redis down or refusing.\n"
        "# TYPE nginx_eas_shared_inventory_dropped_total counter\n"
        "nginx_eas_shared_inventory_dropped_total %uA\n"
        "# HELP nginx_eas_shared_inventory_imported_total Device records "
        "of other gateways taken into the zones.\n"
        "# TYPE nginx_eas_shared_inventory_imported_total counter\n"
        "nginx_eas_shared_inventory_imported_total %uA\n"
        "# HELP nginx_eas_shared_inventory_refused_total Device records "
        "from Redis not understood.\n"
        "# TYPE nginx_eas_shared_inventory_refused_total counter\n"
        "nginx_eas_shared_inventory_refused_total %uA\n",
        sh[NGX_HTTP_EAS_INV_WRITTEN], sh[NGX_HTTP_EAS_INV_DROPPED],
        sh[NGX_HTTP_EAS_INV_IMPORTED], sh[NGX_HTTP_EAS_INV_REFUSED]);
}
