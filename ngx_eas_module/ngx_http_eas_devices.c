
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"


/*
 * The device zone: one rbtree holds two kinds of node, keyed by the
 * crc32 of a lower-cased key with a byte-wise tie-break.  A device node
 * (identity + DeviceId) is the device record; a user node (identity)
 * counts the devices admitted for that user (eas_device_max) and lives
 * as long as one of them does.
 *
 * Two budgets: a record counted for its user sits in the "counted"
 * queue and is never evicted, so nothing a client sends can lower a
 * user's count; every other record (blocked devices, devices of
 * locations without a limit) sits in the LRU "queue" and only those are
 * evicted to make room.  When a device needs a counted place and the
 * zone has none left, it is refused (fail closed) and the zone logs it,
 * once a minute.
 */

#define NGX_HTTP_EAS_NODE_DEVICE  1
#define NGX_HTTP_EAS_NODE_USER    2

/* how many LRU records one allocation may push out */
#define NGX_HTTP_EAS_EVICT_MAX    16

/* seconds between two "zone is full" alerts */
#define NGX_HTTP_EAS_FULL_LOG     60

/* user length (2 bytes), user, DeviceId */
#define NGX_HTTP_EAS_KEY_MAX      (2 + EAS_USER_MAX + EAS_DEVICE_ID_MAX)


typedef struct {
    u_char                        color;
    u_char                        kind;
    u_short                       len;            /* of the key */
    ngx_queue_t                   queue;          /* LRU */
    time_t                        first_seen;
    time_t                        last_seen;
    ngx_uint_t                    heartbeat;
    ngx_uint_t                    ping;           /* generation, 0: none */
    u_short                       version;
    u_short                       user_len;
    u_char                        command;
    u_char                        access;
    u_char                        counted;        /* in the user count */
    u_char                        device_id_len;
    u_char                        device_type_len;
    u_char                        user_agent_len;
    u_char                        reason_len;
    u_char                        data[1];
} ngx_http_eas_devices_node_t;

/*
 * data[]: key, user and DeviceId as first seen, then DeviceType,
 * User-Agent and reason in fixed slots updated in place
 */


typedef struct {
    u_char                        color;
    u_char                        kind;
    u_short                       len;            /* of the key */
    ngx_uint_t                    count;          /* devices admitted */
    u_char                        data[1];
} ngx_http_eas_devices_user_t;


typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   queue;          /* LRU, evictable */
    ngx_queue_t                   counted;        /* never evicted */
    ngx_uint_t                    devices;
    ngx_atomic_t                  pings;          /* last generation */
    time_t                        full_logged;    /* last "full" alert */
} ngx_http_eas_devices_shctx_t;


typedef struct {
    ngx_http_eas_devices_shctx_t  *sh;
    ngx_slab_pool_t               *shpool;

    /* this worker's, for ngx_http_eas_device_pings_changed() */
    ngx_uint_t                     pings_seen;
    ngx_uint_t                     pings_sweep;
    ngx_uint_t                     pings_changed;
} ngx_http_eas_devices_ctx_t;


/* a key built before the lock is taken */
typedef struct {
    uint32_t                      hash;
    size_t                        len;
    size_t                        user_len;
    u_char                        data[NGX_HTTP_EAS_KEY_MAX];
} ngx_http_eas_devices_key_t;


static ngx_int_t ngx_http_eas_devices_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_eas_devices_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);
static u_char *ngx_http_eas_devices_node_key(ngx_rbtree_node_t *node);
static ngx_int_t ngx_http_eas_devices_device_key(
    ngx_http_eas_devices_key_t *key, ngx_str_t *user, ngx_str_t *device_id);
static void ngx_http_eas_devices_user_key(ngx_http_eas_devices_key_t *key,
    u_char *device_key);
static ngx_http_eas_devices_node_t *ngx_http_eas_devices_lock_record(
    ngx_http_eas_devices_ctx_t *ctx, ngx_str_t *user, ngx_str_t *device_id);
static ngx_rbtree_node_t *ngx_http_eas_devices_find(
    ngx_http_eas_devices_shctx_t *sh, ngx_uint_t kind,
    ngx_http_eas_devices_key_t *key);
static void *ngx_http_eas_devices_alloc(ngx_http_eas_devices_ctx_t *ctx,
    size_t size, ngx_http_eas_devices_node_t *keep);
static void ngx_http_eas_devices_evict(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn);
static ngx_http_eas_devices_node_t *ngx_http_eas_devices_create(
    ngx_http_eas_devices_ctx_t *ctx, ngx_http_eas_devices_key_t *key,
    ngx_http_eas_device_update_t *u);
static void ngx_http_eas_devices_admit(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_devices_key_t *key,
    ngx_http_eas_device_update_t *u);
static ngx_uint_t ngx_http_eas_devices_full(ngx_http_eas_devices_ctx_t *ctx);
static void ngx_http_eas_devices_alert(ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, ngx_log_t *log);
static ngx_queue_t *ngx_http_eas_devices_queue(
    ngx_http_eas_devices_ctx_t *ctx, ngx_http_eas_devices_node_t *dn);
static void ngx_http_eas_devices_remove(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn);
static void ngx_http_eas_devices_copy(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_device_t *copy);
static size_t ngx_http_eas_devices_set(u_char *slot, size_t size,
    ngx_str_t *value);


static ngx_str_t  ngx_http_eas_devices_max_reason =
    ngx_string(NGX_HTTP_EAS_REASON_MAX_DEVICES);
static ngx_str_t  ngx_http_eas_devices_full_reason =
    ngx_string(NGX_HTTP_EAS_REASON_ZONE_FULL);


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
    ngx_rbtree_node_t            *node;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_key_t    key;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;

    if (ngx_http_eas_devices_device_key(&key, &u->user, &u->device_id)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_devices_find(ctx->sh, NGX_HTTP_EAS_NODE_DEVICE,
                                     &key);

    if (node) {
        dn = (ngx_http_eas_devices_node_t *) &node->color;
        ngx_queue_remove(&dn->queue);
        ngx_queue_insert_head(ngx_http_eas_devices_queue(ctx, dn),
                              &dn->queue);

    } else {
        dn = ngx_http_eas_devices_create(ctx, &key, u);

        if (dn == NULL) {
            u->zone_full = (u->access == NGX_HTTP_EAS_ACCESS_ALLOWED
                            && u->max_devices);

            if (u->zone_full) {
                u->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
            }

            alert = ngx_http_eas_devices_full(ctx);

            ngx_shmtx_unlock(&ctx->shpool->mutex);

            if (alert) {
                ngx_http_eas_devices_alert(zone, u, log);
            }

            return NGX_ERROR;
        }

        u->created = 1;
    }

    p = dn->data + dn->len + dn->user_len + dn->device_id_len;

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

    alert = u->zone_full && ngx_http_eas_devices_full(ctx);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

static ngx_http_eas_devices_node_t *
ngx_http_eas_devices_lock_record(ngx_http_eas_devices_ctx_t *ctx,
    ngx_str_t *user, ngx_str_t *device_id)
{
    ngx_rbtree_node_t           *node;
    ngx_http_eas_devices_key_t   key;

    if (ngx_http_eas_devices_device_key(&key, user, device_id) != NGX_OK) {
        return NULL;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_devices_find(ctx->sh, NGX_HTTP_EAS_NODE_DEVICE,
                                     &key);

    if (node == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NULL;
    }

    return (ngx_http_eas_devices_node_t *) &node->color;
}


/* copies up to n records out, most recently seen first */

ngx_uint_t
ngx_http_eas_device_list(ngx_shm_zone_t *zone, ngx_http_eas_device_t *out,
    ngx_uint_t n)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q, *c;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn, *dc;

    ctx = zone->data;
    i = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    /* both queues are in the order last seen: merged */

    q = ngx_queue_head(&ctx->sh->queue);
    c = ngx_queue_head(&ctx->sh->counted);

    while (i < n) {
        dn = (q == ngx_queue_sentinel(&ctx->sh->queue)) ? NULL
             : ngx_queue_data(q, ngx_http_eas_devices_node_t, queue);
        dc = (c == ngx_queue_sentinel(&ctx->sh->counted)) ? NULL
             : ngx_queue_data(c, ngx_http_eas_devices_node_t, queue);

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

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_unlock(&ctx->shpool->mutex);

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

    ngx_shmtx_lock(&ctx->shpool->mutex);

    queues[0] = &ctx->sh->queue;
    queues[1] = &ctx->sh->counted;

    /* each queue is in the order last seen: the stale ones at its tail */

    for (k = 0; k < 2; k++) {
        for (q = ngx_queue_last(queues[k]);
             q != ngx_queue_sentinel(queues[k]) && i < n;
             q = prev)
        {
            prev = ngx_queue_prev(q);
            dn = ngx_queue_data(q, ngx_http_eas_devices_node_t, queue);

            if (dn->last_seen >= before) {
                break;
            }

            ngx_http_eas_devices_copy(ctx, dn, &out[i++]);

            if (delete) {
                ngx_http_eas_devices_remove(ctx, dn);
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return i;
}


static void
ngx_http_eas_devices_remove(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn)
{
    ngx_rbtree_node_t            *node;
    ngx_http_eas_devices_key_t    user;
    ngx_http_eas_devices_user_t  *un;

    if (dn->counted) {
        ngx_http_eas_devices_user_key(&user, dn->data);

        node = ngx_http_eas_devices_find(ctx->sh, NGX_HTTP_EAS_NODE_USER,
                                         &user);
        if (node) {
            un = (ngx_http_eas_devices_user_t *) &node->color;

            if (un->count > 1) {
                un->count--;

            } else {
                ngx_rbtree_delete(&ctx->sh->rbtree, node);
                ngx_slab_free_locked(ctx->shpool, node);
            }
        }

        /* not counted any more: the LRU eviction may take it */
        dn->counted = 0;
    }

    ngx_http_eas_devices_evict(ctx, dn);
}


ngx_uint_t
ngx_http_eas_device_count(ngx_shm_zone_t *zone)
{
    ngx_uint_t                   n;
    ngx_http_eas_devices_ctx_t  *ctx;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    n = ctx->sh->devices;
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return n;
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

    shm_zone->init = ngx_http_eas_devices_init_zone;
    shm_zone->data = ctx;

    return NGX_CONF_OK;
}


/* eas_devices name | off; the zone is checked in merge */

char *
ngx_http_eas_devices(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_loc_conf_t *elcf = conf;

    ngx_str_t  *value;

    if (elcf->devices != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        elcf->devices = NULL;
        return NGX_CONF_OK;
    }

    elcf->devices = ngx_shared_memory_add(cf, &value[1], 0,
                                          &ngx_http_eas_module);
    if (elcf->devices == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_eas_devices_merge(ngx_conf_t *cf, ngx_http_eas_loc_conf_t *prev,
    ngx_http_eas_loc_conf_t *conf)
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

    size_t                       len;
    ngx_http_eas_devices_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;

        return NGX_OK;
    }

    ctx->sh = ngx_slab_alloc(ctx->shpool,
                             sizeof(ngx_http_eas_devices_shctx_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_http_eas_devices_rbtree_insert_value);

    ngx_queue_init(&ctx->sh->queue);
    ngx_queue_init(&ctx->sh->counted);

    ctx->sh->devices = 0;
    ctx->sh->pings = 0;
    ctx->sh->full_logged = 0;

    len = sizeof(" in eas zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in eas zone \"%V\"%Z",
                &shm_zone->shm.name);

    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_eas_devices_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    u_char                       *ka, *kb;
    ngx_int_t                     rc;
    ngx_rbtree_node_t           **p;
    ngx_http_eas_devices_user_t  *a, *b;

    for ( ;; ) {

        if (node->key < temp->key) {

            p = &temp->left;

        } else if (node->key > temp->key) {

            p = &temp->right;

        } else { /* node->key == temp->key */

            /* the kind, length and key prefix are common to both kinds */

            a = (ngx_http_eas_devices_user_t *) &node->color;
            b = (ngx_http_eas_devices_user_t *) &temp->color;

            rc = (ngx_int_t) a->kind - (ngx_int_t) b->kind;

            if (rc == 0) {
                ka = ngx_http_eas_devices_node_key(node);
                kb = ngx_http_eas_devices_node_key(temp);
                rc = ngx_memn2cmp(ka, kb, a->len, b->len);
            }

            p = (rc < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static u_char *
ngx_http_eas_devices_node_key(ngx_rbtree_node_t *node)
{
    ngx_http_eas_devices_user_t  *un;
    ngx_http_eas_devices_node_t  *dn;

    un = (ngx_http_eas_devices_user_t *) &node->color;

    if (un->kind == NGX_HTTP_EAS_NODE_USER) {
        return un->data;
    }

    dn = (ngx_http_eas_devices_node_t *) &node->color;

    return dn->data;
}


/*
 * User names and DeviceIds compare case-insensitively (docs/protocol.md
 * 2.6): the key is lower-cased, the record keeps the first spelling.
 */

static ngx_int_t
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
    key->hash = ngx_crc32_short(key->data, key->len);

    return NGX_OK;
}


/* the user node's key: the user part of a device key */

static void
ngx_http_eas_devices_user_key(ngx_http_eas_devices_key_t *key,
    u_char *device_key)
{
    key->len = ((size_t) device_key[0] << 8) | device_key[1];
    key->user_len = key->len;
    ngx_memcpy(key->data, device_key + 2, key->len);
    key->hash = ngx_crc32_short(key->data, key->len);
}


static ngx_rbtree_node_t *
ngx_http_eas_devices_find(ngx_http_eas_devices_shctx_t *sh, ngx_uint_t kind,
    ngx_http_eas_devices_key_t *key)
{
    ngx_int_t                     rc;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_eas_devices_user_t  *un;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key->hash < node->key) {
            node = node->left;
            continue;
        }

        if (key->hash > node->key) {
            node = node->right;
            continue;
        }

        /* key->hash == node->key */

        un = (ngx_http_eas_devices_user_t *) &node->color;

        rc = (ngx_int_t) kind - (ngx_int_t) un->kind;

        if (rc == 0) {
            rc = ngx_memn2cmp(key->data, ngx_http_eas_devices_node_key(node),
                              key->len, un->len);
        }

        if (rc == 0) {
            return node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Allocates under the lock; when the zone is full, evicts the least
 * recently seen devices that are not counted for their user (never
 * "keep") and tries again.  A counted device is never evicted.
 */

static void *
ngx_http_eas_devices_alloc(ngx_http_eas_devices_ctx_t *ctx, size_t size,
    ngx_http_eas_devices_node_t *keep)
{
    void                         *p;
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_http_eas_devices_node_t  *dn;

    for (i = 0; /* void */ ; i++) {

        p = ngx_slab_alloc_locked(ctx->shpool, size);
        if (p != NULL || i == NGX_HTTP_EAS_EVICT_MAX) {
            return p;
        }

        if (ngx_queue_empty(&ctx->sh->queue)) {
            return NULL;
        }

        q = ngx_queue_last(&ctx->sh->queue);
        dn = ngx_queue_data(q, ngx_http_eas_devices_node_t, queue);

        if (dn == keep) {
            q = ngx_queue_prev(q);

            if (q == ngx_queue_sentinel(&ctx->sh->queue)) {
                return NULL;
            }

            dn = ngx_queue_data(q, ngx_http_eas_devices_node_t, queue);
        }

        ngx_http_eas_devices_evict(ctx, dn);
        ngx_http_eas_metrics_count(NGX_HTTP_EAS_M_DEVICE_EVICTED);
    }
}


/* only a record that is not counted for its user is ever evicted */

static void
ngx_http_eas_devices_evict(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn)
{
    ngx_rbtree_node_t  *node;

    ngx_queue_remove(&dn->queue);

    node = (ngx_rbtree_node_t *)
               ((u_char *) dn - offsetof(ngx_rbtree_node_t, color));

    ngx_rbtree_delete(&ctx->sh->rbtree, node);
    ngx_slab_free_locked(ctx->shpool, node);

    ctx->sh->devices--;
}


static ngx_http_eas_devices_node_t *
ngx_http_eas_devices_create(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_key_t *key, ngx_http_eas_device_update_t *u)
{
    size_t                        size;
    u_char                       *p;
    ngx_rbtree_node_t            *node;
    ngx_http_eas_devices_node_t  *dn;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_eas_devices_node_t, data)
           + key->len + u->user.len + u->device_id.len
           + NGX_HTTP_EAS_DEVICE_TYPE_LEN + NGX_HTTP_EAS_DEVICE_UA_LEN
           + NGX_HTTP_EAS_DEVICE_REASON_LEN;

    node = ngx_http_eas_devices_alloc(ctx, size, NULL);
    if (node == NULL) {
        return NULL;
    }

    node->key = key->hash;

    dn = (ngx_http_eas_devices_node_t *) &node->color;

    dn->kind = NGX_HTTP_EAS_NODE_DEVICE;
    dn->len = (u_short) key->len;
    dn->first_seen = ngx_time();
    dn->last_seen = dn->first_seen;
    dn->heartbeat = 0;
    dn->ping = 0;
    dn->version = 0;
    dn->command = EAS_CMD_NONE;
    dn->access = NGX_HTTP_EAS_ACCESS_NONE;
    dn->counted = 0;
    dn->user_len = (u_short) u->user.len;
    dn->device_id_len = (u_char) u->device_id.len;
    dn->device_type_len = 0;
    dn->user_agent_len = 0;
    dn->reason_len = 0;

    p = ngx_cpymem(dn->data, key->data, key->len);
    p = ngx_cpymem(p, u->user.data, u->user.len);
    ngx_memcpy(p, u->device_id.data, u->device_id.len);

    ngx_rbtree_insert(&ctx->sh->rbtree, node);
    ngx_queue_insert_head(&ctx->sh->queue, &dn->queue);

    ctx->sh->devices++;

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
    size_t                        size;
    ngx_rbtree_node_t            *node;
    ngx_http_eas_devices_key_t    user;
    ngx_http_eas_devices_user_t  *un;

    ngx_http_eas_devices_user_key(&user, key->data);

    node = ngx_http_eas_devices_find(ctx->sh, NGX_HTTP_EAS_NODE_USER, &user);
    un = node ? (ngx_http_eas_devices_user_t *) &node->color : NULL;

    if (dn->counted || u->access != NGX_HTTP_EAS_ACCESS_ALLOWED
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
        size = offsetof(ngx_rbtree_node_t, color)
               + offsetof(ngx_http_eas_devices_user_t, data) + user.len;

        node = ngx_http_eas_devices_alloc(ctx, size, dn);

        if (node == NULL) {
            /* the limit cannot be kept: fail closed */
            u->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
            u->zone_full = 1;
            u->user_devices = 0;
            return;
        }

        node->key = user.hash;

        un = (ngx_http_eas_devices_user_t *) &node->color;
        un->kind = NGX_HTTP_EAS_NODE_USER;
        un->len = (u_short) user.len;
        un->count = 0;
        ngx_memcpy(un->data, user.data, user.len);

        ngx_rbtree_insert(&ctx->sh->rbtree, node);
    }

    un->count++;
    dn->counted = 1;
    u->counted = 1;
    u->user_devices = un->count;

    ngx_queue_remove(&dn->queue);
    ngx_queue_insert_head(&ctx->sh->counted, &dn->queue);
}


/* the queue a record belongs to */

static ngx_queue_t *
ngx_http_eas_devices_queue(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn)
{
    return dn->counted ? &ctx->sh->counted : &ctx->sh->queue;
}


/* under the lock: is it time to say again that the zone is full? */

static ngx_uint_t
ngx_http_eas_devices_full(ngx_http_eas_devices_ctx_t *ctx)
{
    time_t  now;

    now = ngx_time();

    if (now - ctx->sh->full_logged < NGX_HTTP_EAS_FULL_LOG) {
        return 0;
    }

    ctx->sh->full_logged = now;

    return 1;
}


static void
ngx_http_eas_devices_copy(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_device_t *copy)
{
    u_char                       *p;
    ngx_rbtree_node_t            *node;
    ngx_http_eas_devices_key_t    user;
    ngx_http_eas_devices_user_t  *un;

    copy->first_seen = dn->first_seen;
    copy->last_seen = dn->last_seen;
    copy->heartbeat = dn->heartbeat;
    copy->version = dn->version;
    copy->command = dn->command;
    copy->access = dn->access;

    p = dn->data + dn->len;

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

    ngx_http_eas_devices_user_key(&user, dn->data);

    node = ngx_http_eas_devices_find(ctx->sh, NGX_HTTP_EAS_NODE_USER, &user);
    un = node ? (ngx_http_eas_devices_user_t *) &node->color : NULL;

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
