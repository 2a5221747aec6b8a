
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "eas_wbxml.h"
#include "ngx_http_eas_admin_rules.h"


/*
 * Runtime device decisions (docs/operations.md "Admin API"): "allow",
 * "block" or "lost" for a DeviceId or a user, made through the admin API
 * and applied by every worker at once, since they live in a shared zone,
 * "eas_admin_rules zone=name:size file=path".  They come first in the
 * device step (after eas_device_user_match): an administrator's "now"
 * overrides the configured rules; eas_device_max still counts.
 *
 * The file mirrors the zone after every change and is read back only
 * when the zone is new (start, or a size or name change); a reload
 * keeps the zone.  It is written as an eas_device_rules file, one rule
 * a line, so that it can also be used as one:
 *
 *     block device_id="ApplLOST0001"   # eas_admin lost 1796621432 ...
 *
 * "lost" is a block in such a file; this module reads the comment back.
 * $eas_reason names the file and the line: eas_admin_rules:/path:3.
 *
 * A lost device may still run Provision (a remote wipe the backend has
 * pending reaches it there, MS-ASPROV); every other command is answered
 * at the edge as "not provisioned" (Status 142 from 14.0 on, HTTP 449
 * before and for commands without a top-level Status), which sends the
 * device to Provision and carries no mail.
 */


static ngx_int_t ngx_http_eas_admin_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_eas_admin_put(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp);
static uint64_t ngx_http_eas_admin_now(ngx_http_eas_admin_sh_t *sh);
static ngx_http_eas_admin_node_t *ngx_http_eas_admin_alloc(
    ngx_http_eas_admin_ctx_t *ctx, size_t size, ngx_uint_t removal,
    uint64_t stamp);
static void ngx_http_eas_admin_free(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_node_t *node);
static void ngx_http_eas_admin_key(u_char field, ngx_str_t *value,
    u_char *key, size_t *len);
static ngx_http_eas_admin_node_t *ngx_http_eas_admin_find(
    ngx_http_eas_admin_sh_t *sh, u_char *key, size_t len);
static ngx_int_t ngx_http_eas_admin_lost(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);
static void ngx_http_eas_admin_copy(ngx_http_eas_admin_entry_t *out,
    ngx_http_eas_admin_node_t *node);


/* eas_admin_rules zone=name:size file=path; */

char *
ngx_http_eas_admin_rules(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    time_t                      keep;
    ngx_str_t                  *value, file, tmp;
    ngx_uint_t                  i;
    ngx_shm_zone_t             *shm_zone;
    ngx_http_eas_admin_ctx_t   *ctx;
    ngx_http_eas_main_conf_t   *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eas_module);

    if (emcf->admin_rules) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ngx_str_null(&file);
    keep = NGX_HTTP_EAS_ADMIN_KEEP;

    /* "file=", "keep_removals=" are ours; the rest is read as every eas
     * zone's parameters */

    for (i = 1; i < cf->args->nelts; /* void */ ) {
        if (ngx_strncmp(value[i].data, "file=", 5) == 0) {
            file.data = value[i].data + 5;
            file.len = value[i].len - 5;

        } else if (ngx_strncmp(value[i].data, "keep_removals=", 14) == 0) {
            tmp.data = value[i].data + 14;
            tmp.len = value[i].len - 14;

            keep = ngx_parse_time(&tmp, 1);

            if (keep == (time_t) NGX_ERROR || keep == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid keep_removals \"%V\" of \"%V\"",
                                   &tmp, &cmd->name);
                return NGX_CONF_ERROR;
            }

        } else {
            i++;
            continue;
        }

        tmp = value[i];
        value[i] = value[cf->args->nelts - 1];
        value[cf->args->nelts - 1] = tmp;
        cf->args->nelts--;
    }

    if (file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"file\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_http_eas_zone_add(cf, cmd, &ngx_http_eas_admin_rules);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->file = file;
    ctx->keep = (uint64_t) keep * 1000;

    if (ngx_conf_full_name(cf->cycle, &ctx->file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eas_admin_load(cf, ctx) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_eas_admin_init_zone;
    shm_zone->data = ctx;

    emcf->admin_rules = shm_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eas_admin_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_eas_admin_ctx_t  *octx = data;

    size_t                        len;
    ngx_uint_t                    i;
    ngx_http_eas_admin_ctx_t     *ctx;
    ngx_http_eas_admin_loaded_t  *l;

    ctx = shm_zone->data;

    if (octx) {
        /* a reload: the zone holds what is decided now */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        ctx->shpool->log_nomem = 0;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_calloc(ctx->shpool, sizeof(ngx_http_eas_admin_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&ctx->sh->queue);

    len = sizeof(" in eas zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in eas zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* full: one line of ngx_http_eas_admin_full(), not one per try */
    ctx->shpool->log_nomem = 0;

    /* a new zone: what the file says */

    l = ctx->loaded->elts;

    for (i = 0; i < ctx->loaded->nelts; i++) {
        if (ngx_http_eas_admin_put(ctx, &l[i].rule, l[i].stamp) != NGX_OK) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "eas zone \"%V\" is too small for the rules of "
                          "\"%V\"", &shm_zone->shm.name, &ctx->file);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The access phase's question (ngx_http_eas_access.c): a decision for
 * this DeviceId, else for this user.  NGX_OK with *access set (and
 * ctx->reason) or left NONE; NGX_DONE: the request was answered (a lost
 * device's command other than Provision).
 */

ngx_int_t
ngx_http_eas_admin_decide(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_device_values_t *values, ngx_uint_t *access)
{
    u_char                      *p;
    size_t                       len;
    ngx_uint_t                   line, decided;
    ngx_http_eas_admin_ctx_t    *actx;
    ngx_http_eas_main_conf_t    *emcf;
    ngx_http_eas_admin_node_t   *node;
    u_char                       key[NGX_HTTP_EAS_ADMIN_KEY];

    emcf = ngx_http_get_module_main_conf(r, ngx_http_eas_module);

    if (emcf->admin_rules == NULL) {
        return NGX_OK;
    }

    actx = emcf->admin_rules->data;

    /* nothing decided at run time: no lock */

    if (actx->sh->count == 0) {
        return NGX_OK;
    }

    decided = NGX_HTTP_EAS_ACCESS_NONE;
    line = 0;

    ngx_shmtx_lock(&actx->shpool->mutex);

    ngx_http_eas_admin_key(NGX_HTTP_EAS_ADMIN_DEVICE,
                           &values->lower[NGX_HTTP_EAS_FIELD_DEVICE_ID],
                           key, &len);

    node = ngx_http_eas_admin_find(actx->sh, key, len);

    /* a deletion kept for the other gateways decides nothing */

    if (node == NULL || node->access == NGX_HTTP_EAS_ACCESS_NONE) {
        ngx_http_eas_admin_key(NGX_HTTP_EAS_ADMIN_USER,
                               &values->lower[NGX_HTTP_EAS_FIELD_USER],
                               key, &len);
        node = ngx_http_eas_admin_find(actx->sh, key, len);
    }

    if (node) {
        decided = node->access;
        line = node->line;
    }

    ngx_shmtx_unlock(&actx->shpool->mutex);

    if (decided == NGX_HTTP_EAS_ACCESS_NONE) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, sizeof("eas_admin_rules::") + actx->file.len
                             + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->reason.data = p;
    ctx->reason.len = ngx_sprintf(p, "eas_admin_rules:%V:%ui", &actx->file,
                                  line)
                      - p;

    if (decided != NGX_HTTP_EAS_ADMIN_LOST) {
        *access = decided;
        return NGX_OK;
    }

    if (ctx->request.command == EAS_CMD_PROVISION) {
        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: lost device \"%V\": Provision let through "
                      "(%V)", &values->value[NGX_HTTP_EAS_FIELD_DEVICE_ID],
                      &ctx->reason);

        *access = NGX_HTTP_EAS_ACCESS_ALLOWED;
        return NGX_OK;
    }

    *access = NGX_HTTP_EAS_ACCESS_BLOCKED;
    ctx->access = NGX_HTTP_EAS_ACCESS_BLOCKED;

    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                  "eas: lost device \"%V\": %s answered \"provision "
                  "first\" (%V)", &values->value[NGX_HTTP_EAS_FIELD_DEVICE_ID],
                  (char *) ctx->request.command_name.data, &ctx->reason);

    return ngx_http_eas_admin_lost(r, ctx);
}


/*
 * "Provision first": the command's top-level Status 142
 * (DeviceNotProvisioned) from protocol 14.0 on, else HTTP 449, the two
 * ways MS-ASPROV has a server send a device to Provision.
 */

static ngx_int_t
ngx_http_eas_admin_lost(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx)
{
    size_t      len;
    u_char     *out;
    ngx_int_t   rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    len = 0;
    out = NULL;

    if (r->method == NGX_HTTP_POST && ctx->request.version_code >= 140) {
        out = ngx_pnalloc(r->pool, EAS_WBXML_RESPONSE_MAX);
        if (out == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len = eas_wbxml_command_status(ctx->request.command,
                                       EAS_STATUS_NOT_PROVISIONED, out,
                                       EAS_WBXML_RESPONSE_MAX);
    }

    if (len) {
        ngx_http_finalize_request(r, ngx_http_eas_answer_wbxml(r, out, len));
        return NGX_DONE;
    }

    r->headers_out.status = 449;
    ngx_str_set(&r->headers_out.status_line, "449 Retry With");
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    ngx_http_finalize_request(r, ngx_http_send_header(r));

    return NGX_DONE;
}


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

    if (rule->access != NGX_HTTP_EAS_ACCESS_NONE) {
        ngx_shmtx_lock(&ctx->shpool->mutex);
        stamp = ngx_http_eas_admin_now(ctx->sh);
        rc = ngx_http_eas_admin_put(ctx, rule, stamp);
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (rc != NGX_OK) {
            return NGX_BUSY;
        }

    } else {
        ngx_http_eas_admin_key(rule->field, &rule->value, key, &len);

        ngx_shmtx_lock(&ctx->shpool->mutex);

        stamp = ngx_http_eas_admin_now(ctx->sh);
        node = ngx_http_eas_admin_find(ctx->sh, key, len);

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
 * two gateways), so that every gateway ends with the same.  NGX_OK:
 * changed; NGX_DONE: the same rule, only newer; NGX_DECLINED: this zone
 * had it, or newer; NGX_BUSY: full.
 */

ngx_int_t
ngx_http_eas_admin_apply(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_http_eas_admin_ctx_t   *ctx;
    ngx_http_eas_admin_node_t  *node;
    u_char                      key[NGX_HTTP_EAS_ADMIN_KEY];

    ctx = zone->data;

    ngx_http_eas_admin_key(rule->field, &rule->value, key, &len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = ngx_http_eas_admin_find(ctx->sh, key, len);

    if (stamp > ctx->sh->clock) {
        ctx->sh->clock = stamp;
    }

    if (node
        && (node->stamp > stamp
            || (node->stamp == stamp && node->access >= rule->access)))
    {
        rc = NGX_DECLINED;

    } else if (node && node->access == rule->access) {
        node->stamp = stamp;
        rc = NGX_DONE;

    } else {
        rc = ngx_http_eas_admin_put(ctx, rule, stamp) == NGX_OK ? NGX_OK
                                                                : NGX_BUSY;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/*
 * The time of a change made here, called with the zone locked: the
 * wall clock in milliseconds, but above every time this zone has seen
 * (its own changes, the file's, the other gateways'), a hybrid logical
 * clock: a change made after seeing another is newer than it, whatever
 * the two gateways' clocks say.
 */

static uint64_t
ngx_http_eas_admin_now(ngx_http_eas_admin_sh_t *sh)
{
    uint64_t     now;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    return ngx_max(now, sh->clock + 1);
}


/*
 * Called with the zone locked: a new rule, or a changed one, or (access
 * NONE) a deletion kept for the other gateways, not counted.
 */

static ngx_int_t
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

    if (stamp > ctx->sh->clock) {
        ctx->sh->clock = stamp;
    }

    node->since = (time_t) (stamp / 1000);
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

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: no room for a rule%s, even without the "
                      "removals kept: make the zone larger (said once a "
                      "minute)", ctx->shpool->log_ctx);
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

    cutoff -= ctx->keep;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->queue);
         q != ngx_queue_sentinel(&ctx->sh->queue);
         q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);

        if (node->access == NGX_HTTP_EAS_ACCESS_NONE
            && node->stamp < cutoff)
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


/* the field byte, then the value lower-cased (as the rules compare) */

static void
ngx_http_eas_admin_key(u_char field, ngx_str_t *value, u_char *key,
    size_t *len)
{
    size_t  n;

    n = ngx_min(value->len, NGX_HTTP_EAS_ADMIN_KEY - 1);

    key[0] = field;
    ngx_strlow(key + 1, value->data, n);

    *len = n + 1;
}


static ngx_http_eas_admin_node_t *
ngx_http_eas_admin_find(ngx_http_eas_admin_sh_t *sh, u_char *key, size_t len)
{
    ngx_str_t  name;

    name.data = key;
    name.len = len;

    return (ngx_http_eas_admin_node_t *)
               ngx_str_rbtree_lookup(&sh->rbtree, &name,
                                     ngx_crc32_short(key, len));
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


ngx_str_t *
ngx_http_eas_admin_file(ngx_shm_zone_t *zone)
{
    ngx_http_eas_admin_ctx_t  *ctx;

    ctx = zone->data;

    return &ctx->file;
}

