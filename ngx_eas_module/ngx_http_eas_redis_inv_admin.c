
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


static ngx_uint_t ngx_http_eas_redis_gateway_name_ok(u_char *name,
    size_t len);


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

    if (v->len > 8 && ngx_strncmp(v->data, "gateway=", 8) == 0) {
        s.data = v->data + 8;
        s.len = v->len - 8;

        if (s.len > NGX_HTTP_EAS_DEVICE_GATEWAY_LEN) {
            return NGX_DECLINED;
        }

        if (!ngx_http_eas_redis_gateway_name_ok(s.data, s.len)) {
            return NGX_DECLINED;
        }

        rcf->gateway = s;
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


/*
 * The name of this gateway in the records it writes, and in the listing
 * of its own: "gateway=", by default its host name (the first
 * NGX_HTTP_EAS_DEVICE_GATEWAY_LEN bytes).
 */

void
ngx_http_eas_redis_gateway(ngx_str_t *name)
{
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf && rcf->gateway.len) {
        *name = rcf->gateway;
        return;
    }

    name->data = ngx_cycle->hostname.data;
    name->len = ngx_min(ngx_cycle->hostname.len,
                        NGX_HTTP_EAS_DEVICE_GATEWAY_LEN);

    /* a host name the others would refuse: no name (record version 1) */

    if (!ngx_http_eas_redis_gateway_name_ok(name->data, name->len)) {
        name->len = 0;
    }
}


/* a gateway's name: letters, digits, '.', '-', '_' (as gateway= takes) */

static ngx_uint_t
ngx_http_eas_redis_gateway_name_ok(u_char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= 'A' && name[i] <= 'Z')
              || (name[i] >= '0' && name[i] <= '9')
              || name[i] == '.' || name[i] == '-' || name[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * A record read from Redis or the channel: "2 LEN:NAME " before it says
 * the gateway that wrote it, kept for ngx_http_eas_redis_inv_gateway_set()
 * and skipped.  A record without it is of an older gateway; one whose
 * name is not right is left as it is, and refused by the parser.
 */

static u_char  ngx_http_eas_inv_gateway[NGX_HTTP_EAS_DEVICE_GATEWAY_LEN];
static size_t  ngx_http_eas_inv_gateway_len;

u_char *
ngx_http_eas_redis_inv_unwrap(u_char *p, u_char *last)
{
    u_char  *q;
    size_t   len;

    ngx_http_eas_inv_gateway_len = 255;

    if (last - p < 4 || p[0] != '2' || p[1] != ' ') {
        return p;
    }

    len = 0;

    for (q = p + 2;
         q < last && *q >= '0' && *q <= '9'
         && len <= NGX_HTTP_EAS_DEVICE_GATEWAY_LEN;
         q++)
    {
        len = len * 10 + (*q - '0');
    }

    if (q == p + 2 || len == 0 || len > NGX_HTTP_EAS_DEVICE_GATEWAY_LEN
        || q == last || *q != ':' || (size_t) (last - q) < len + 2
        || q[1 + len] != ' '
        || !ngx_http_eas_redis_gateway_name_ok(q + 1, len))
    {
        return p;
    }

    ngx_memcpy(ngx_http_eas_inv_gateway, q + 1, len);
    ngx_http_eas_inv_gateway_len = len;

    return q + 2 + len;
}


/*
 * The record just parsed is taken into the zone (its lock held): its
 * gateway too, as its rank in the zone's names, the name added if new;
 * with NGX_HTTP_EAS_GATEWAYS names there, a new one is not said.
 */

void
ngx_http_eas_redis_inv_gateway_set(void *zone_ctx, void *node)
{
    size_t                         len;
    ngx_uint_t                     i;
    ngx_http_eas_devices_ctx_t    *ctx = zone_ctx;
    ngx_http_eas_devices_node_t   *dn = node;
    ngx_http_eas_devices_shctx_t  *sh;

    sh = ctx->sh;
    len = ngx_http_eas_inv_gateway_len;
    dn->gateway = 255;

    if (len > NGX_HTTP_EAS_DEVICE_GATEWAY_LEN) {
        return;
    }

    for (i = 0; i < sh->ngateways; i++) {
        if (sh->gateways[i][0] == len
            && ngx_memcmp(sh->gateways[i] + 1, ngx_http_eas_inv_gateway, len)
               == 0)
        {
            dn->gateway = (u_char) (i + 1);
            return;
        }
    }

    if (i < NGX_HTTP_EAS_GATEWAYS) {
        sh->gateways[i][0] = (u_char) len;
        ngx_memcpy(sh->gateways[i] + 1, ngx_http_eas_inv_gateway, len);
        sh->ngateways++;
        dn->gateway = (u_char) (i + 1);
    }
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


/*
 * The user's set on Redis is full with devices of other gateways: the
 * device's place here is given back, its next request asks Redis again
 * (ngx_http_eas_device_unplace()).
 */

void
ngx_http_eas_redis_inv_lost(ngx_shm_zone_t *zone, redisReply *set,
    redisReply *device)
{
    size_t                      skip;
    ngx_str_t                   user, device_id;
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL) {
        return;
    }

    /* "<prefix>d:<zone>:<user>", as ngx_http_eas_redis_inv_key() made it */

    skip = rcf->prefix.len + 2 + zone->shm.name.len + 1;

    if (set->type != REDIS_REPLY_STRING || device->type != REDIS_REPLY_STRING
        || set->len < skip || set->len - skip > EAS_USER_MAX
        || device->len == 0 || device->len > EAS_DEVICE_ID_MAX)
    {
        ngx_http_eas_redis_inv_refused(1);
        return;
    }

    user.data = (u_char *) set->str + skip;
    user.len = set->len - skip;
    device_id.data = (u_char *) device->str;
    device_id.len = device->len;

    if (ngx_http_eas_device_unplace(zone, &user, &device_id, 0) == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "eas: device \"%V\" of user \"%V\" lost its "
                      "\"eas_device_max\" place: the other gateways hold "
                      "the user's places on Redis, its next request asks "
                      "again", &device_id, &user);
    }
}


/* a record of a device refused for eas_device_max, never admitted */

ngx_uint_t
ngx_http_eas_redis_inv_refused_max(ngx_uint_t access, u_char *reason,
    size_t len)
{
    return access == NGX_HTTP_EAS_ACCESS_BLOCKED
           && len == sizeof(NGX_HTTP_EAS_REASON_MAX_DEVICES) - 1
           && ngx_strncmp(reason, NGX_HTTP_EAS_REASON_MAX_DEVICES, len) == 0;
}


void
ngx_http_eas_redis_inv_count(ngx_uint_t counter, ngx_uint_t n)
{
    ngx_atomic_t  *sh;

    sh = ngx_http_eas_redis_counters();

    if (sh) {
        (void) ngx_atomic_fetch_add(&sh[counter], n);
    }
}


void
ngx_http_eas_redis_inv_refused(ngx_uint_t n)
{
    ngx_http_eas_redis_conf_t  *rcf;

    static time_t               ngx_http_eas_inv_refused_logged;

    ngx_http_eas_redis_inv_count(NGX_HTTP_EAS_INV_REFUSED, n);

    if (ngx_time() - ngx_http_eas_inv_refused_logged < 60) {
        return;
    }

    ngx_http_eas_inv_refused_logged = ngx_time();
    rcf = ngx_http_eas_redis_get_conf();

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "eas: shared state \"%V\": a device record not "
                  "understood, refused (said once a minute)", &rcf->url);
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
