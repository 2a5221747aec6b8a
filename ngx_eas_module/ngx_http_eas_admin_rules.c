
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
 *
 * This file: the directive, the zone and the decision for one request;
 * the changes, the removals kept and the listing are in
 * ngx_http_eas_admin_rules_change.c, the file in
 * ngx_http_eas_admin_rules_file.c.
 */


static ngx_int_t ngx_http_eas_admin_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_eas_admin_lost(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);


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

#if (NGX_THREADS)
    /* the other gateways' changes written out of the event loop */
    ctx->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (ctx->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#endif

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


/* the field byte, then the value lower-cased (as the rules compare) */

void
ngx_http_eas_admin_key(u_char field, ngx_str_t *value, u_char *key,
    size_t *len)
{
    size_t  n;

    n = ngx_min(value->len, NGX_HTTP_EAS_ADMIN_KEY - 1);

    key[0] = field;
    ngx_strlow(key + 1, value->data, n);

    *len = n + 1;
}


ngx_http_eas_admin_node_t *
ngx_http_eas_admin_find(ngx_http_eas_admin_sh_t *sh, u_char *key, size_t len)
{
    ngx_str_t  name;

    name.data = key;
    name.len = len;

    return (ngx_http_eas_admin_node_t *)
               ngx_str_rbtree_lookup(&sh->rbtree, &name,
                                     ngx_crc32_short(key, len));
}


ngx_str_t *
ngx_http_eas_admin_file(ngx_shm_zone_t *zone)
{
    ngx_http_eas_admin_ctx_t  *ctx;

    ctx = zone->data;

    return &ctx->file;
}
