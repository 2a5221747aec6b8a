
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_redis.h"


/*
 * The device zone, on the shared-zone layer (ngx_http_eas_zone.c):
 * two kinds of node, keyed by the murmur2 hash of a lower-cased key
 * (four bytes a step, where a crc32 takes one: every request hashes
 * one).  A device node (identity + DeviceId) is the device record; a
 * user node (identity) counts the devices admitted for that user
 * (eas_device_max) and lives as long as one of them does.
 *
 * Two budgets: a record counted for its user sits in the "counted"
 * queue and is never evicted, so nothing a client sends can lower a
 * user's count; every other record (blocked devices, devices of
 * locations without a limit) sits in the LRU "queue" and only those are
 * evicted to make room.  When a device needs a counted place and the
 * zone has none left, it is refused (fail closed) and the zone logs it,
 * once a minute.
 */

static ngx_int_t ngx_http_eas_devices_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_eas_devices_admit(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_devices_key_t *key,
    ngx_http_eas_device_update_t *u);
static void ngx_http_eas_devices_alert(ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, ngx_log_t *log);
static ngx_uint_t ngx_http_eas_devices_queue(
    ngx_http_eas_devices_node_t *dn);
static size_t ngx_http_eas_devices_set(u_char *slot, size_t size,
    ngx_str_t *value);


static ngx_str_t  ngx_http_eas_devices_max_reason =
    ngx_string(NGX_HTTP_EAS_REASON_MAX_DEVICES);
static ngx_str_t  ngx_http_eas_devices_full_reason =
    ngx_string(NGX_HTTP_EAS_REASON_ZONE_FULL);


/* no budgets of their own, nothing expires: see the top of this file */
static const ngx_http_eas_zone_policy_t  ngx_http_eas_devices_policy = {
    3,                                          /* queues */
    {
        { offsetof(ngx_http_eas_devices_node_t, data), 0,
          NGX_HTTP_EAS_Q_EVICTABLE },
        { offsetof(ngx_http_eas_devices_user_t, data), 0,
          NGX_HTTP_EAS_Q_EVICTABLE }
    },
    { 0 },                                      /* the whole zone */
    0,                                          /* slots as they are */
    16,                                         /* records freed for one */
    0,
    NGX_HTTP_EAS_M_DEVICE_EVICTED,
    NULL
};


/*
 * Records the request in the device zone and applies the max-devices
 * rule: a device the rules allowed that is not yet counted for its user
 * is counted if the user has fewer than u->max_devices, else blocked.
 * NGX_ERROR: the zone has no room left; u->zone_full says that the
 * device needed a counted place and must be refused, else the caller
 * goes on unrecorded.  The zone's alert is rate-limited.
 */

ngx_int_t
ngx_http_eas_device_update(ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, ngx_log_t *log)
{
    u_char                       *p;
    ngx_str_t                    *reason;
    ngx_uint_t                    alert;
    ngx_http_eas_zone_node_t     *node;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_key_t    key;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;

    if (ngx_http_eas_devices_device_key(&key, &u->user, &u->device_id)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    node = ngx_http_eas_devices_find(ctx, NGX_HTTP_EAS_NODE_DEVICE, &key);

    if (node) {
        dn = (ngx_http_eas_devices_node_t *) node;
        ngx_http_eas_zone_touch(&ctx->zone, node,
                                ngx_http_eas_devices_queue(dn));

    } else {
        dn = ngx_http_eas_devices_create(ctx, &key, u);

        if (dn == NULL) {
            u->zone_full = (u->access == NGX_HTTP_EAS_ACCESS_ALLOWED
                            && u->max_devices);

            if (u->zone_full) {
                u->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
            }

            alert = ngx_http_eas_zone_full(&ctx->zone, ngx_time());

            ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

            if (alert) {
                ngx_http_eas_devices_alert(zone, u, log);
            }

            return NGX_ERROR;
        }

        u->created = 1;
    }

    p = dn->data + dn->zn.len + dn->user_len + dn->device_id_len;

    dn->device_type_len = ngx_http_eas_devices_set(p,
                                            NGX_HTTP_EAS_DEVICE_TYPE_LEN,
                                            &u->device_type);
    p += NGX_HTTP_EAS_DEVICE_TYPE_LEN;

    dn->user_agent_len = ngx_http_eas_devices_set(p,
                                            NGX_HTTP_EAS_DEVICE_UA_LEN,
                                            &u->user_agent);
    p += NGX_HTTP_EAS_DEVICE_UA_LEN;

    dn->last_seen = ngx_time();
    dn->version = (u_short) u->version;
    dn->command = (u_char) u->command;

    ngx_http_eas_devices_admit(ctx, dn, &key, u);

    reason = u->over_limit ? &ngx_http_eas_devices_max_reason
             : u->zone_full ? &ngx_http_eas_devices_full_reason : &u->reason;

    dn->access = (u_char) u->access;
    dn->reason_len = ngx_http_eas_devices_set(p,
                                            NGX_HTTP_EAS_DEVICE_REASON_LEN,
                                            reason);
    dn->gateway = 0;

    if (u->max_devices) {
        dn->max_devices = (u_short) ngx_min(u->max_devices, 0xffff);
    }

    alert = u->zone_full && ngx_http_eas_zone_full(&ctx->zone, ngx_time());

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    ngx_http_eas_redis_inventory_seen(zone, u);

    if (alert) {
        ngx_http_eas_devices_alert(zone, u, log);
    }

    return NGX_OK;
}


static void
ngx_http_eas_devices_alert(ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, ngx_log_t *log)
{
    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "eas zone \"%V\" is full: new devices are %s",
                  &zone->shm.name,
                  u->max_devices ? "refused where \"eas_device_max\" applies"
                                 : "not recorded");
}


/* copies the record of user + DeviceId out; NGX_DECLINED if none */

ngx_int_t
ngx_http_eas_device_lookup(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_http_eas_device_t *copy)
{
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;

    dn = ngx_http_eas_devices_lock_record(ctx, user, device_id);
    if (dn == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_eas_devices_copy(ctx, dn, copy);

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return NGX_OK;
}


/* remembers a device's heartbeat; NGX_DECLINED if it has no record */

ngx_int_t
ngx_http_eas_device_set_heartbeat(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_uint_t seconds)
{
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;

    dn = ngx_http_eas_devices_lock_record(ctx, user, device_id);
    if (dn == NULL) {
        return NGX_DECLINED;
    }

    dn->heartbeat = seconds;

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return NGX_OK;
}


/*
 * The device's Ping generation (0: none); with "newer", a Ping is held
 * first: it becomes the next generation of the zone, so generations only
 * grow, over every record and reload, and a record evicted and created
 * again never looks newer than a Ping held before.  NGX_DECLINED if the
 * device has no record.
 */

ngx_int_t
ngx_http_eas_device_ping(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_uint_t newer, ngx_uint_t *generation)
{
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;

    dn = ngx_http_eas_devices_lock_record(ctx, user, device_id);
    if (dn == NULL) {
        return NGX_DECLINED;
    }

    if (newer) {
        dn->ping = ++ctx->sh->pings;
    }

    *generation = dn->ping;

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return NGX_OK;
}


/*
 * Has the zone counted a Ping since this worker's previous sweep?  The
 * same answer for every call of one sweep.  The zone's last generation
 * is read without the lock: one word, written under the lock; a stale
 * value only delays a check by a sweep.
 */

ngx_uint_t
ngx_http_eas_device_pings_changed(ngx_shm_zone_t *zone, ngx_uint_t sweep)
{
    ngx_uint_t                   pings;
    ngx_http_eas_devices_ctx_t  *ctx;

    ctx = zone->data;

    if (ctx->pings_sweep != sweep) {
        pings = ctx->sh->pings;

        ctx->pings_changed = (pings != ctx->pings_seen);
        ctx->pings_seen = pings;
        ctx->pings_sweep = sweep;
    }

    return ctx->pings_changed;
}


/* the record of user + DeviceId with the lock held, or NULL unlocked */

ngx_http_eas_devices_node_t *
ngx_http_eas_devices_lock_record(ngx_http_eas_devices_ctx_t *ctx,
    ngx_str_t *user, ngx_str_t *device_id)
{
    ngx_http_eas_zone_node_t    *node;
    ngx_http_eas_devices_key_t   key;

    if (ngx_http_eas_devices_device_key(&key, user, device_id) != NGX_OK) {
        return NULL;
    }

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    node = ngx_http_eas_devices_find(ctx, NGX_HTTP_EAS_NODE_DEVICE, &key);

    if (node == NULL) {
        ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
        return NULL;
    }

    return (ngx_http_eas_devices_node_t *) node;
}


/* eas_device_zone zone=name:size; */

char *
ngx_http_eas_device_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_shm_zone_t              *shm_zone;
    ngx_http_eas_devices_ctx_t  *ctx;

    shm_zone = ngx_http_eas_zone_add(cf, cmd, &ngx_http_eas_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_devices_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->zone.policy = &ngx_http_eas_devices_policy;

    shm_zone->init = ngx_http_eas_devices_init_zone;
    shm_zone->data = ctx;

    return NGX_CONF_OK;
}


/* eas_devices name | off; the zone is checked in merge */

char *
ngx_http_eas_devices(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_devices_conf_t *dcf = conf;

    ngx_str_t  *value;

    if (dcf->devices != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        dcf->devices = NULL;
        return NGX_CONF_OK;
    }

    dcf->devices = ngx_shared_memory_add(cf, &value[1], 0,
                                         &ngx_http_eas_module);
    if (dcf->devices == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_eas_devices_merge(ngx_conf_t *cf, ngx_http_eas_devices_conf_t *prev,
    ngx_http_eas_devices_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->devices, prev->devices, NULL);

    if (conf->devices == NULL) {
        return NGX_CONF_OK;
    }

    if (conf->devices->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_devices\" zone \"%V\" is unknown",
                           &conf->devices->shm.name);
        return NGX_CONF_ERROR;
    }

    if (conf->devices->init != ngx_http_eas_devices_init_zone) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_devices\" zone \"%V\" is not an "
                           "\"eas_device_zone\"", &conf->devices->shm.name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eas_devices_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_eas_devices_ctx_t  *octx = data;

    ngx_int_t                    rc;
    ngx_http_eas_devices_ctx_t  *ctx;

    ctx = shm_zone->data;

    rc = ngx_http_eas_zone_init(&ctx->zone, shm_zone,
                                octx ? &octx->zone : NULL,
                                sizeof(ngx_http_eas_devices_shctx_t));
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ctx->sh = (ngx_http_eas_devices_shctx_t *) ctx->zone.sh;

    return NGX_OK;
}


/*
 * User names and DeviceIds compare case-insensitively (docs/protocol.md
 * 2.6): the key is lower-cased, the record keeps the first spelling.
 */

ngx_int_t
ngx_http_eas_devices_device_key(ngx_http_eas_devices_key_t *key,
    ngx_str_t *user, ngx_str_t *device_id)
{
    u_char  *p;

    if (user->len > EAS_USER_MAX || device_id->len > EAS_DEVICE_ID_MAX
        || device_id->len == 0)
    {
        return NGX_DECLINED;
    }

    p = key->data;

    *p++ = (u_char) (user->len >> 8);
    *p++ = (u_char) (user->len & 0xff);

    ngx_strlow(p, user->data, user->len);
    p += user->len;

    ngx_strlow(p, device_id->data, device_id->len);
    p += device_id->len;

    key->user_len = user->len;
    key->len = p - key->data;
    key->hash = ngx_murmur_hash2(key->data, key->len);

    return NGX_OK;
}


/* the user node's key: the user part of a device key */

void
ngx_http_eas_devices_user_key(ngx_http_eas_devices_key_t *key,
    u_char *device_key)
{
    key->len = ((size_t) device_key[0] << 8) | device_key[1];
    key->user_len = key->len;
    ngx_memcpy(key->data, device_key + 2, key->len);
    key->hash = ngx_murmur_hash2(key->data, key->len);
}


ngx_http_eas_zone_node_t *
ngx_http_eas_devices_find(ngx_http_eas_devices_ctx_t *ctx, ngx_uint_t kind,
    ngx_http_eas_devices_key_t *key)
{
    return ngx_http_eas_zone_find(&ctx->zone, kind, key->data, key->len,
                                  key->hash);
}


ngx_http_eas_devices_node_t *
ngx_http_eas_devices_create(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_key_t *key, ngx_http_eas_device_update_t *u)
{
    size_t                        extra;
    u_char                       *p;
    ngx_http_eas_devices_node_t  *dn;

    extra = u->user.len + u->device_id.len
            + NGX_HTTP_EAS_DEVICE_TYPE_LEN + NGX_HTTP_EAS_DEVICE_UA_LEN
            + NGX_HTTP_EAS_DEVICE_REASON_LEN;

    dn = ngx_http_eas_zone_alloc(&ctx->zone, NGX_HTTP_EAS_NODE_DEVICE,
                                 offsetof(ngx_http_eas_devices_node_t, data)
                                 + key->len + extra, ngx_time(), NULL);
    if (dn == NULL) {
        return NULL;
    }

    dn->zn.len = (u_short) key->len;
    dn->zn.extra = (u_short) extra;
    dn->zn.mark = 0;
    dn->first_seen = ngx_time();
    dn->last_seen = dn->first_seen;
    dn->heartbeat = 0;
    dn->ping = 0;
    dn->version = 0;
    dn->command = EAS_CMD_NONE;
    dn->access = NGX_HTTP_EAS_ACCESS_NONE;
    dn->user_len = (u_short) u->user.len;
    dn->device_id_len = (u_char) u->device_id.len;
    dn->device_type_len = 0;
    dn->user_agent_len = 0;
    dn->reason_len = 0;
    dn->filled = 0;
    dn->gateway = 0;
    dn->max_devices = 0;

    p = ngx_cpymem(dn->data, key->data, key->len);
    p = ngx_cpymem(p, u->user.data, u->user.len);
    ngx_memcpy(p, u->device_id.data, u->device_id.len);

    ngx_http_eas_zone_insert(&ctx->zone, &dn->zn, NGX_HTTP_EAS_NODE_DEVICE,
                             key->hash, NGX_HTTP_EAS_Q_EVICTABLE);

    return dn;
}


/*
 * The max-devices rule: only devices the rules allow are counted, so a
 * device blocked by a rule does not use up one of the user's places,
 * and only where a limit applies (elsewhere nothing needs the count, and
 * the record stays evictable).
 */

static void
ngx_http_eas_devices_admit(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_devices_key_t *key,
    ngx_http_eas_device_update_t *u)
{
    ngx_http_eas_devices_key_t    user;
    ngx_http_eas_devices_user_t  *un;

    ngx_http_eas_devices_user_key(&user, key->data);

    un = (ngx_http_eas_devices_user_t *)
             ngx_http_eas_devices_find(ctx, NGX_HTTP_EAS_NODE_USER, &user);

    if (dn->zn.mark || u->access != NGX_HTTP_EAS_ACCESS_ALLOWED
        || u->max_devices == 0)
    {
        u->user_devices = un ? un->count : 0;
        return;
    }

    if (u->max_devices && un && un->count >= u->max_devices) {
        u->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
        u->over_limit = 1;
        u->user_devices = un->count;
        return;
    }

    if (un == NULL) {
        un = ngx_http_eas_zone_alloc(&ctx->zone, NGX_HTTP_EAS_NODE_USER,
                                     offsetof(ngx_http_eas_devices_user_t,
                                              data)
                                     + user.len, ngx_time(), dn);

        if (un == NULL) {
            /* the limit cannot be kept: fail closed */
            u->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
            u->zone_full = 1;
            u->user_devices = 0;
            return;
        }

        un->zn.len = (u_short) user.len;
        un->zn.extra = 0;
        un->count = 0;
        ngx_memcpy(un->data, user.data, user.len);

        ngx_http_eas_zone_insert(&ctx->zone, &un->zn, NGX_HTTP_EAS_NODE_USER,
                                 user.hash, NGX_HTTP_EAS_Q_USERS);
    }

    un->count++;
    dn->zn.mark = 1;
    u->counted = 1;
    u->user_devices = un->count;

    ngx_http_eas_zone_touch(&ctx->zone, &dn->zn, NGX_HTTP_EAS_Q_COUNTED);
}


/* the queue a record belongs to */

static ngx_uint_t
ngx_http_eas_devices_queue(ngx_http_eas_devices_node_t *dn)
{
    return dn->zn.mark ? NGX_HTTP_EAS_Q_COUNTED : NGX_HTTP_EAS_Q_EVICTABLE;
}


void
ngx_http_eas_devices_copy(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_device_t *copy)
{
    u_char                       *p;
    ngx_http_eas_devices_key_t    user;
    ngx_http_eas_devices_user_t  *un;

    copy->first_seen = dn->first_seen;
    copy->last_seen = dn->last_seen;
    copy->heartbeat = dn->heartbeat;
    copy->version = dn->version;
    copy->command = dn->command;
    copy->access = dn->access;

    p = dn->data + dn->zn.len;

    copy->user_len = dn->user_len;
    ngx_memcpy(copy->user, p, dn->user_len);
    p += dn->user_len;

    copy->device_id_len = dn->device_id_len;
    ngx_memcpy(copy->device_id, p, dn->device_id_len);
    p += dn->device_id_len;

    copy->device_type_len = dn->device_type_len;
    ngx_memcpy(copy->device_type, p, dn->device_type_len);
    p += NGX_HTTP_EAS_DEVICE_TYPE_LEN;

    copy->user_agent_len = dn->user_agent_len;
    ngx_memcpy(copy->user_agent, p, dn->user_agent_len);
    p += NGX_HTTP_EAS_DEVICE_UA_LEN;

    copy->reason_len = dn->reason_len;
    ngx_memcpy(copy->reason, p, dn->reason_len);

    /* 0: this gateway; over NGX_HTTP_EAS_DEVICE_GATEWAY_LEN: not said */

    copy->gateway_len = dn->gateway ? 255 : 0;

    if (dn->gateway && dn->gateway <= ctx->sh->ngateways) {
        p = ctx->sh->gateways[dn->gateway - 1];
        copy->gateway_len = p[0];
        ngx_memcpy(copy->gateway, p + 1, p[0]);
    }

    ngx_http_eas_devices_user_key(&user, dn->data);

    un = (ngx_http_eas_devices_user_t *)
             ngx_http_eas_devices_find(ctx, NGX_HTTP_EAS_NODE_USER, &user);

    copy->user_devices = un ? un->count : 0;
}


/*
 * Writes value into a fixed slot, truncated to its size, never inside a
 * UTF-8 sequence: a cut before a continuation byte moves back to the
 * start of its sequence (at most 3 bytes; what is not UTF-8 anyway is
 * escaped byte by byte when listed).
 */

static size_t
ngx_http_eas_devices_set(u_char *slot, size_t size, ngx_str_t *value)
{
    size_t  len, k;

    len = ngx_min(value->len, size);

    if (len < value->len && (value->data[len] & 0xc0) == 0x80) {

        for (k = len;
             k > 0 && len - k < 3 && (value->data[k] & 0xc0) == 0x80;
             k--)
        {
            /* void */
        }

        if (value->data[k] >= 0xc0) {
            len = k;
        }
    }

    ngx_memcpy(slot, value->data, len);

    return len;
}
