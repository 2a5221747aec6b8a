
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
 * device_ttl= and flush=), its keys on Redis, the records the admin API
 * deletes there, and its part of eas_status.  The batch and its writes
 * are in ngx_http_eas_redis_inventory.c.
 */


/*
 * A deletion is remembered in the zone's set of deletions KEYS[3],
 * scored by its time (ARGV[3]), so that a write of the record seen
 * before it, landing after it, does not bring it back
 * (ngx_http_eas_redis_inventory.c): every such write lands within
 * "flush" and "timeout" of the request.  It is kept ARGV[4]: twice
 * that, NGX_HTTP_EAS_INV_DELETED_TTL at least.  Entries past it leave
 * the set 64 at a deletion; the set goes with the last of them.
 */

#define NGX_HTTP_EAS_INV_DELETED_TTL  600

static const char  ngx_http_eas_inv_delete_lua[] =
    "redis.call('DEL', KEYS[1]) "
    "redis.call('ZREM', KEYS[2], KEYS[1]) "
    "redis.call('ZADD', KEYS[3], ARGV[3], KEYS[1]) "
    "local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', "
    "                       '(' .. (tonumber(ARGV[3]) - tonumber(ARGV[4])), "
    "                       'LIMIT', 0, 64) "
    "if #old > 0 then "
    "  redis.call('ZREM', KEYS[3], unpack(old)) "
    "end "
    "redis.call('EXPIRE', KEYS[3], ARGV[4]) "
    "redis.call('PUBLISH', ARGV[1], ARGV[2]) "
    "return 1";


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
 * The admin API deleted a device (ngx_http_eas_redis_device_delete()):
 * its record goes from Redis, and from every gateway's zone.
 */

void
ngx_http_eas_redis_inventory_delete(ngx_shm_zone_t *devices,
    ngx_str_t *user, ngx_str_t *device_id)
{
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      key[NGX_HTTP_EAS_INV_KEY];
    u_char                      index[NGX_HTTP_EAS_INV_KEY];
    u_char                      deleted[NGX_HTTP_EAS_INV_KEY];
    u_char                      m[NGX_HTTP_EAS_INV_KEY + 128];
    u_char                      now[NGX_TIME_T_LEN], ttl[NGX_TIME_T_LEN];
    const char                 *argv[10];
    size_t                      argvlen[10];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || devices == NULL || user->len > EAS_USER_MAX
        || device_id->len == 0 || device_id->len > EAS_DEVICE_ID_MAX
        || rcf->prefix.len + devices->shm.name.len > 300)
    {
        return;
    }

    argv[3] = (char *) key;
    argvlen[3] = ngx_http_eas_redis_inv_key(key, rcf, "i:", devices, user,
                                            device_id)
                 - key;
    argv[4] = (char *) index;
    argvlen[4] = ngx_http_eas_redis_inv_key(index, rcf, "iz:", devices, NULL,
                                            NULL)
                 - index;
    argv[5] = (char *) deleted;
    argvlen[5] = ngx_http_eas_redis_inv_key(deleted, rcf, "ix:", devices,
                                            NULL, NULL)
                 - deleted;
    argv[6] = (char *) rcf->channel.data;
    argvlen[6] = rcf->channel.len;
    argv[7] = (char *) m;
    argvlen[7] = ngx_sprintf(m, "D %V 0 0 %uz %uz %V%V%V", &rcf->node,
                             devices->shm.name.len, user->len,
                             &devices->shm.name, user, device_id)
                 - m;
    argv[8] = (char *) now;
    argvlen[8] = ngx_sprintf(now, "%T", ngx_time()) - now;
    argv[9] = (char *) ttl;
    argvlen[9] = ngx_sprintf(ttl, "%T",
                             ngx_max((time_t) NGX_HTTP_EAS_INV_DELETED_TTL,
                                     (time_t) ((rcf->flush + rcf->timeout)
                                               / 500)))
                 - ttl;

    (void) ngx_http_eas_redis_eval(NULL, NULL, ngx_http_eas_inv_delete_lua,
                                   sizeof(ngx_http_eas_inv_delete_lua) - 1,
                                   3, 10, argv, argvlen);
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

        ngx_http_eas_redis_device_delete(devices, &user, &device_id);
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
