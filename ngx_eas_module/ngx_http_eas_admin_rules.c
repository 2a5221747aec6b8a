
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "eas_wbxml.h"


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


#define NGX_HTTP_EAS_ADMIN_DEVICE  'd'
#define NGX_HTTP_EAS_ADMIN_USER    'u'

#define NGX_HTTP_EAS_ADMIN_LOST    NGX_HTTP_EAS_ADMIN_LOST_ACCESS

#define NGX_HTTP_EAS_ADMIN_KEY     (1 + EAS_USER_MAX)
#define NGX_HTTP_EAS_ADMIN_WHO     NGX_HTTP_EAS_ADMIN_WHO_LEN


typedef struct {
    ngx_str_node_t                sn;             /* str: the key */
    ngx_queue_t                   queue;          /* in file order */
    time_t                        since;
    ngx_uint_t                    line;           /* in the file */
    u_char                        access;         /* ..._ACCESS_*, LOST */
    u_char                        who_len;
    u_short                       len;            /* of the key */
    u_char                        who[NGX_HTTP_EAS_ADMIN_WHO];
    u_char                        data[1];        /* key, then value */
} ngx_http_eas_admin_node_t;


typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   queue;
    ngx_atomic_t                  count;
    ngx_atomic_t                  generation;     /* of the contents */
} ngx_http_eas_admin_sh_t;


/* a rule read from the file at configuration time */
typedef struct {
    ngx_http_eas_admin_rule_t     rule;
    time_t                        since;
} ngx_http_eas_admin_loaded_t;


typedef struct {
    ngx_http_eas_admin_sh_t      *sh;
    ngx_slab_pool_t              *shpool;
    ngx_str_t                     file;
    ngx_array_t                  *loaded;         /* of ..._loaded_t */
} ngx_http_eas_admin_ctx_t;


static ngx_int_t ngx_http_eas_admin_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_eas_admin_load(ngx_conf_t *cf,
    ngx_http_eas_admin_ctx_t *ctx);
static ngx_int_t ngx_http_eas_admin_line(ngx_conf_t *cf, u_char *p,
    u_char *last, ngx_http_eas_admin_loaded_t *l);
static ngx_int_t ngx_http_eas_admin_put(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_rule_t *rule, time_t since);
static void ngx_http_eas_admin_key(u_char field, ngx_str_t *value,
    u_char *key, size_t *len);
static ngx_http_eas_admin_node_t *ngx_http_eas_admin_find(
    ngx_http_eas_admin_sh_t *sh, u_char *key, size_t len);
static ngx_int_t ngx_http_eas_admin_save(ngx_http_eas_admin_ctx_t *ctx,
    ngx_log_t *log);
static u_char *ngx_http_eas_admin_quote(u_char *p, u_char *data,
    size_t len);
static ngx_int_t ngx_http_eas_admin_lost(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);


static ngx_str_t  ngx_http_eas_admin_access[] = {
    ngx_null_string,
    ngx_string("allow"),
    ngx_string("block"),
    ngx_string("lost")
};


/* eas_admin_rules zone=name:size file=path; */

char *
ngx_http_eas_admin_rules(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
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

    /* "file=" is ours; the rest is read as every eas zone's parameters */

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "file=", 5) == 0) {
            file.data = value[i].data + 5;
            file.len = value[i].len - 5;

            tmp = value[i];
            value[i] = value[cf->args->nelts - 1];
            value[cf->args->nelts - 1] = tmp;
            cf->args->nelts--;
            break;
        }
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

    /* a new zone: what the file says */

    l = ctx->loaded->elts;

    for (i = 0; i < ctx->loaded->nelts; i++) {
        if (ngx_http_eas_admin_put(ctx, &l[i].rule, l[i].since) != NGX_OK) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "eas zone \"%V\" is too small for the rules of "
                          "\"%V\"", &shm_zone->shm.name, &ctx->file);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The file at configuration time: missing is empty (the first start);
 * anything else this module did not write fails "nginx -t".
 */

static ngx_int_t
ngx_http_eas_admin_load(ngx_conf_t *cf, ngx_http_eas_admin_ctx_t *ctx)
{
    u_char                       *buf, *p, *last, *eol;
    ssize_t                       n;
    ngx_fd_t                      fd;
    ngx_uint_t                    line;
    ngx_file_t                    file;
    ngx_file_info_t               fi;
    ngx_http_eas_admin_loaded_t  *l;

    ctx->loaded = ngx_array_create(cf->pool, 4,
                                   sizeof(ngx_http_eas_admin_loaded_t));
    if (ctx->loaded == NULL) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(ctx->file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno == NGX_ENOENT) {
            return NGX_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &ctx->file);
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = ctx->file;
    file.log = cf->log;

    buf = NULL;
    n = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR) {
        buf = ngx_pnalloc(cf->temp_pool, ngx_file_size(&fi) + 1);

        if (buf) {
            n = ngx_read_file(&file, buf, ngx_file_size(&fi), 0);
        }
    }

    ngx_close_file(fd);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read \"%V\"", &ctx->file);
        return NGX_ERROR;
    }

    last = buf + n;
    line = 0;

    for (p = buf; p < last; p = eol + 1) {
        line++;

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        l = ngx_array_push(ctx->loaded);
        if (l == NULL) {
            return NGX_ERROR;
        }

        switch (ngx_http_eas_admin_line(cf, p, eol, l)) {

        case NGX_OK:
            break;

        case NGX_DECLINED:
            ctx->loaded->nelts--;
            break;

        default:
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid rule in \"%V\" at line %ui: the "
                               "file is written by the admin API",
                               &ctx->file, line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * One line as ngx_http_eas_admin_save() writes it:
 *   (allow|block) (device_id|user)="value"[ # eas_admin (lost|rule) T ...]
 * NGX_DECLINED: blank or comment.
 */

static ngx_int_t
ngx_http_eas_admin_line(ngx_conf_t *cf, u_char *p, u_char *last,
    ngx_http_eas_admin_loaded_t *l)
{
    u_char                     *v;
    size_t                      n;
    ngx_http_eas_admin_rule_t  *rule;

    rule = &l->rule;
    ngx_memzero(l, sizeof(ngx_http_eas_admin_loaded_t));

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r')) {
        p++;
    }

    if (p == last || *p == '#') {
        return NGX_DECLINED;
    }

    if (last - p > 6 && ngx_strncmp(p, "allow ", 6) == 0) {
        rule->access = NGX_HTTP_EAS_ACCESS_ALLOWED;

    } else if (last - p > 6 && ngx_strncmp(p, "block ", 6) == 0) {
        rule->access = NGX_HTTP_EAS_ACCESS_BLOCKED;

    } else {
        return NGX_ERROR;
    }

    p += 6;

    if (last - p > 11 && ngx_strncmp(p, "device_id=\"", 11) == 0) {
        rule->field = NGX_HTTP_EAS_ADMIN_DEVICE;
        p += 11;

    } else if (last - p > 6 && ngx_strncmp(p, "user=\"", 6) == 0) {
        rule->field = NGX_HTTP_EAS_ADMIN_USER;
        p += 6;

    } else {
        return NGX_ERROR;
    }

    v = ngx_pnalloc(cf->pool, last - p);
    if (v == NULL) {
        return NGX_ERROR;
    }

    rule->value.data = v;

    for ( /* void */ ; p < last && *p != '"'; p++) {
        if (*p == '\\' && p + 1 < last) {
            p++;
        }

        *v++ = *p;
    }

    if (p == last) {
        return NGX_ERROR;
    }

    rule->value.len = v - rule->value.data;

    if (rule->value.len == 0
        || rule->value.len > (rule->field == NGX_HTTP_EAS_ADMIN_DEVICE
                              ? EAS_DEVICE_ID_MAX : EAS_USER_MAX))
    {
        return NGX_ERROR;
    }

    p++;

    /* the comment: what the rules file cannot say, and who */

    while (p < last && *p == ' ') {
        p++;
    }

    if (last - p > 11 && ngx_strncmp(p, "# eas_admin ", 12) == 0) {
        p += 12;

        if (last - p > 5 && ngx_strncmp(p, "lost ", 5) == 0) {
            rule->access = NGX_HTTP_EAS_ADMIN_LOST;
            p += 5;

        } else if (last - p > 5 && ngx_strncmp(p, "rule ", 5) == 0) {
            p += 5;
        }

        l->since = 0;

        for ( /* void */ ; p < last && *p >= '0' && *p <= '9'; p++) {
            l->since = l->since * 10 + (*p - '0');
        }

        while (p < last && *p == ' ') {
            p++;
        }

        n = ngx_min((size_t) (last - p), NGX_HTTP_EAS_ADMIN_WHO);

        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ')) {
            n--;
        }

        rule->who.data = p;
        rule->who.len = n;
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

    if (node == NULL) {
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
 */

ngx_int_t
ngx_http_eas_admin_change(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, ngx_log_t *log)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_http_eas_admin_ctx_t   *ctx;
    ngx_http_eas_admin_node_t  *node;
    u_char                      key[NGX_HTTP_EAS_ADMIN_KEY];

    ctx = zone->data;

    if (rule->access != NGX_HTTP_EAS_ACCESS_NONE) {
        ngx_shmtx_lock(&ctx->shpool->mutex);
        rc = ngx_http_eas_admin_put(ctx, rule, ngx_time());
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (rc != NGX_OK) {
            return NGX_BUSY;
        }

    } else {
        ngx_http_eas_admin_key(rule->field, &rule->value, key, &len);

        ngx_shmtx_lock(&ctx->shpool->mutex);

        node = ngx_http_eas_admin_find(ctx->sh, key, len);

        if (node) {
            ngx_queue_remove(&node->queue);
            ngx_rbtree_delete(&ctx->sh->rbtree, &node->sn.node);
            ngx_slab_free_locked(ctx->shpool, node);
            (void) ngx_atomic_fetch_add(&ctx->sh->count, -1);
            (void) ngx_atomic_fetch_add(&ctx->sh->generation, 1);
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (node == NULL) {
            return NGX_DECLINED;
        }
    }

    return ngx_http_eas_admin_save(ctx, log);
}


/* called with the zone locked: a new rule, or a changed one */

static ngx_int_t
ngx_http_eas_admin_put(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_rule_t *rule, time_t since)
{
    size_t                      len;
    ngx_http_eas_admin_node_t  *node;
    u_char                      key[NGX_HTTP_EAS_ADMIN_KEY];

    ngx_http_eas_admin_key(rule->field, &rule->value, key, &len);

    node = ngx_http_eas_admin_find(ctx->sh, key, len);

    if (node == NULL) {
        node = ngx_slab_alloc_locked(ctx->shpool,
                                     offsetof(ngx_http_eas_admin_node_t, data)
                                     + len + rule->value.len);
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
        (void) ngx_atomic_fetch_add(&ctx->sh->count, 1);
    }

    node->access = (u_char) rule->access;
    node->since = since;
    node->who_len = (u_char) ngx_min(rule->who.len, NGX_HTTP_EAS_ADMIN_WHO);
    ngx_memcpy(node->who, rule->who.data, node->who_len);

    (void) ngx_atomic_fetch_add(&ctx->sh->generation, 1);

    return NGX_OK;
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
 * The whole file again from a copy taken under the lock, written to a
 * temporary file and renamed over the old one: a reader never sees half
 * a file.  Two workers saving at once: the one whose copy is older sees
 * the generation moved on after its rename and writes again.  Done in
 * the worker's event loop: an admin action is rare and the file small.
 */

static ngx_int_t
ngx_http_eas_admin_save(ngx_http_eas_admin_ctx_t *ctx, ngx_log_t *log)
{
    u_char                     *buf, *p;
    size_t                      size;
    ngx_fd_t                    fd;
    ngx_str_t                   value, *access;
    ngx_uint_t                  line, tries, generation;
    ngx_queue_t                *q;
    ngx_http_eas_admin_node_t  *node;
    u_char                      tmp[NGX_MAX_PATH];

    if (ctx->file.len + sizeof(".tmp.") + NGX_INT_T_LEN > NGX_MAX_PATH) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "eas: \"%V\" is too long",
                      &ctx->file);
        return NGX_ERROR;
    }

    ngx_sprintf(tmp, "%V.tmp.%P%Z", &ctx->file, ngx_pid);

    for (tries = 0; tries < 8; tries++) {

        /* sized under the lock, allocated without it, filled under it
         * if nothing changed in between */

        ngx_shmtx_lock(&ctx->shpool->mutex);

        generation = ctx->sh->generation;
        size = sizeof("# eas_admin_rules: written by the admin API\n");

        for (q = ngx_queue_head(&ctx->sh->queue);
             q != ngx_queue_sentinel(&ctx->sh->queue);
             q = ngx_queue_next(q))
        {
            node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);
            size += sizeof("block device_id=\"\"  # eas_admin lost  \n")
                    + 2 * (node->len - 1) + NGX_TIME_T_LEN + node->who_len;
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        buf = ngx_alloc(size, log);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        ngx_shmtx_lock(&ctx->shpool->mutex);

        if (ctx->sh->generation != generation) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            ngx_free(buf);
            continue;
        }

        p = ngx_cpymem(buf, "# eas_admin_rules: written by the admin API\n",
                       sizeof("# eas_admin_rules: written by the admin API\n")
                       - 1);
        line = 1;

        for (q = ngx_queue_head(&ctx->sh->queue);
             q != ngx_queue_sentinel(&ctx->sh->queue);
             q = ngx_queue_next(q))
        {
            node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);
            node->line = ++line;

            value.data = node->data + node->len;
            value.len = node->len - 1;

            access = &ngx_http_eas_admin_access[
                         node->access == NGX_HTTP_EAS_ACCESS_ALLOWED
                         ? NGX_HTTP_EAS_ACCESS_ALLOWED
                         : NGX_HTTP_EAS_ACCESS_BLOCKED];

            p = ngx_sprintf(p, "%V %s=\"", access,
                            node->data[0] == NGX_HTTP_EAS_ADMIN_DEVICE
                            ? "device_id" : "user");
            p = ngx_http_eas_admin_quote(p, value.data, value.len);
            p = ngx_sprintf(p, "\"  # eas_admin %s %T %*s\n",
                            node->access == NGX_HTTP_EAS_ADMIN_LOST
                            ? "lost" : "rule",
                            node->since, (size_t) node->who_len, node->who);
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                           NGX_FILE_DEFAULT_ACCESS);

        if (fd == NGX_INVALID_FILE) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          ngx_open_file_n " \"%s\" failed", tmp);
            ngx_free(buf);
            return NGX_ERROR;
        }

        if (ngx_write_fd(fd, buf, p - buf) != p - buf) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          ngx_write_fd_n " \"%s\" failed", tmp);
            ngx_close_file(fd);
            ngx_free(buf);
            return NGX_ERROR;
        }

        ngx_free(buf);

        if (ngx_close_file(fd) == NGX_FILE_ERROR
            || ngx_rename_file(tmp, ctx->file.data) == NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "eas: cannot write \"%V\"", &ctx->file);
            return NGX_ERROR;
        }

        if (ctx->sh->generation == generation) {
            return NGX_OK;
        }
    }

    return NGX_OK;
}


/* inside "...": \ and " escaped, as the rules files read them */

static u_char *
ngx_http_eas_admin_quote(u_char *p, u_char *data, size_t len)
{
    while (len--) {
        if (*data == '"' || *data == '\\') {
            *p++ = '\\';
        }

        *p++ = *data++;
    }

    return p;
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

        out[i].field = node->data[0];
        out[i].access = node->access;
        out[i].since = node->since;
        out[i].line = node->line;
        out[i].value_len = node->len - 1;
        ngx_memcpy(out[i].value, node->data + node->len, node->len - 1);
        out[i].who_len = node->who_len;
        ngx_memcpy(out[i].who, node->who, node->who_len);
        i++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return i;
}


ngx_str_t *
ngx_http_eas_admin_file(ngx_shm_zone_t *zone)
{
    ngx_http_eas_admin_ctx_t  *ctx;

    ctx = zone->data;

    return &ctx->file;
}


ngx_str_t *
ngx_http_eas_admin_access_name(ngx_uint_t access)
{
    return &ngx_http_eas_admin_access[access];
}
