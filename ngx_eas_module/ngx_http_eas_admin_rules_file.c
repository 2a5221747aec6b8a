
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The file of the runtime device decisions (eas_admin_rules file=): read
 * back into a new zone at configuration time, line by line as an
 * eas_device_rules file with the "lost" comment, and rewritten whole
 * after every change the admin API makes.  The zone and the decisions
 * are in ngx_http_eas_admin_rules.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin_rules.h"


static ngx_int_t ngx_http_eas_admin_line(ngx_conf_t *cf, u_char *p,
    u_char *last, ngx_http_eas_admin_loaded_t *l);
static u_char *ngx_http_eas_admin_quote(u_char *p, u_char *data,
    size_t len);
static void ngx_http_eas_admin_write(ngx_event_t *ev);


/* this worker's timer of the file: written at most once a second */
static ngx_event_t                ngx_http_eas_admin_timer;
/* its data: the debug log of a timer reads the data as a connection */
static ngx_connection_t           ngx_http_eas_admin_dummy;
static ngx_http_eas_admin_ctx_t  *ngx_http_eas_admin_dirty_ctx;


static ngx_str_t  ngx_http_eas_admin_access[] = {
    ngx_null_string,
    ngx_string("allow"),
    ngx_string("block"),
    ngx_string("lost")
};


/*
 * The file at configuration time: missing is empty (the first start);
 * anything else this module did not write fails "nginx -t".
 */

ngx_int_t
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
 * or a deletion kept for the other gateways (eas_shared_state), a
 * comment to a rules file:
 *   # deleted (device_id|user)="value"  # eas_admin none T ...
 * T is seconds, with milliseconds after a dot.  NGX_DECLINED: blank or
 * comment.
 */

static ngx_int_t
ngx_http_eas_admin_line(ngx_conf_t *cf, u_char *p, u_char *last,
    ngx_http_eas_admin_loaded_t *l)
{
    u_char                     *v;
    size_t                      n;
    time_t                      since;
    ngx_uint_t                  ms;
    ngx_http_eas_admin_rule_t  *rule;

    rule = &l->rule;
    ngx_memzero(l, sizeof(ngx_http_eas_admin_loaded_t));

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r')) {
        p++;
    }

    if (last - p > 10 && ngx_strncmp(p, "# deleted ", 10) == 0) {
        rule->access = NGX_HTTP_EAS_ACCESS_NONE;
        p += 10 - 6;        /* as long as "allow " after this */

    } else if (p == last || *p == '#') {
        return NGX_DECLINED;

    } else if (last - p > 6 && ngx_strncmp(p, "allow ", 6) == 0) {
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

    /*
     * a user as the identity requests are decided by, as the admin API
     * wrote it ("name@domain" in a forest); a file of an older version
     * may hold one unfolded (one that folds into nothing stays as it
     * is: it decides nothing)
     */

    if (rule->field == NGX_HTTP_EAS_ADMIN_USER
        && ngx_http_eas_user_key(rule->value.data, rule->value.len)
           != NGX_OK
        && ngx_http_eas_admin_fold(cf->pool, &rule->value) == NGX_ERROR)
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

        if (last - p > 5 && ngx_strncmp(p, "lost ", 5) == 0
            && rule->access != NGX_HTTP_EAS_ACCESS_NONE)
        {
            rule->access = NGX_HTTP_EAS_ADMIN_LOST;
            p += 5;

        } else if (last - p > 5 && ngx_strncmp(p, "rule ", 5) == 0) {
            p += 5;

        } else if (last - p > 5 && ngx_strncmp(p, "none ", 5) == 0
                   && rule->access == NGX_HTTP_EAS_ACCESS_NONE)
        {
            p += 5;
        }

        since = 0;
        ms = 0;

        for ( /* void */ ; p < last && *p >= '0' && *p <= '9'; p++) {
            if (since < NGX_MAX_TIME_T_VALUE / 1000 / 10) {
                since = since * 10 + (*p - '0');
            }
        }

        if (p < last && *p == '.') {
            for (p++, n = 0; p < last && *p >= '0' && *p <= '9'; p++) {
                if (n++ < 3) {
                    ms = ms * 10 + (*p - '0');
                }
            }

            for ( /* void */ ; n < 3; n++) {
                ms *= 10;
            }
        }

        l->stamp = (uint64_t) since * 1000 + ms;

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
 * The whole file again from a copy taken under the lock, written to a
 * temporary file and renamed over the old one: a reader never sees half
 * a file.  Two workers saving at once: the one whose copy is older sees
 * the generation moved on after its rename and writes again.  Done in
 * the worker's event loop for a change of the admin API (its answer
 * says if it failed); the others' changes are written in a thread
 * where nginx has them (ngx_http_eas_admin_rules_thread.c).
 */

ngx_int_t
ngx_http_eas_admin_save(ngx_http_eas_admin_ctx_t *ctx, ngx_log_t *log)
{
    u_char      *buf;
    size_t       len;
    ngx_err_t    err;
    ngx_int_t    rc;
    ngx_uint_t   tries, generation;
    const char  *step;
    u_char       tmp[NGX_MAX_PATH];

    if (ngx_http_eas_admin_tmp(ctx, tmp, log) != NGX_OK) {
        return NGX_ERROR;
    }

    for (tries = 0; tries < 8; tries++) {

        rc = ngx_http_eas_admin_snapshot(ctx, &buf, &len, &generation, log);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            continue;
        }

        rc = ngx_http_eas_admin_put_file(&ctx->file, tmp, buf, len, &err,
                                         &step);
        ngx_free(buf);

        if (rc != NGX_OK) {
            ngx_http_eas_admin_put_failed(ctx, tmp, step, err, log);
            return NGX_ERROR;
        }

        if (ctx->sh->generation == generation) {
            ctx->sh->saved = generation;
            return NGX_OK;
        }
    }

    return NGX_OK;
}


/* the temporary file's name, this worker's; expired removals dropped */

ngx_int_t
ngx_http_eas_admin_tmp(ngx_http_eas_admin_ctx_t *ctx, u_char *tmp,
    ngx_log_t *log)
{
    if (ctx->file.len + sizeof(".tmp.") + NGX_INT_T_LEN > NGX_MAX_PATH) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "eas: \"%V\" is too long",
                      &ctx->file);
        return NGX_ERROR;
    }

    ngx_sprintf(tmp, "%V.tmp.%P%Z", &ctx->file, ngx_pid);

    ngx_http_eas_admin_expire(ctx);

    return NGX_OK;
}


/*
 * The file's text, from a copy of the zone: sized under the lock,
 * allocated without it, filled under it if nothing changed in between
 * (NGX_DECLINED: something did, try again).  *buf is the caller's to
 * free; *generation the zone's it is of.
 */

ngx_int_t
ngx_http_eas_admin_snapshot(ngx_http_eas_admin_ctx_t *ctx, u_char **out,
    size_t *len, ngx_uint_t *generation, ngx_log_t *log)
{
    u_char                     *buf, *p;
    size_t                      size;
    ngx_str_t                   value, *access;
    ngx_uint_t                  line;
    ngx_queue_t                *q;
    ngx_http_eas_admin_node_t  *node;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    *generation = ctx->sh->generation;
    size = sizeof("# eas_admin_rules: written by the admin API\n");

    for (q = ngx_queue_head(&ctx->sh->queue);
         q != ngx_queue_sentinel(&ctx->sh->queue);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_eas_admin_node_t, queue);
        size += sizeof("# deleted device_id=\"\"  # eas_admin lost .000 \n")
                + 2 * (node->len - 1) + NGX_TIME_T_LEN + node->who_len;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ctx->sh->generation != *generation) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        ngx_free(buf);
        return NGX_DECLINED;
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

        p = ngx_sprintf(p, "%s %s=\"",
                        node->access == NGX_HTTP_EAS_ACCESS_NONE
                        ? "# deleted" : (char *) access->data,
                        node->data[0] == NGX_HTTP_EAS_ADMIN_DEVICE
                        ? "device_id" : "user");
        p = ngx_http_eas_admin_quote(p, value.data, value.len);
        p = ngx_sprintf(p, "\"  # eas_admin %s %T",
                        node->access == NGX_HTTP_EAS_ADMIN_LOST
                        ? "lost"
                        : node->access == NGX_HTTP_EAS_ACCESS_NONE
                          ? "none" : "rule",
                        (time_t) (node->stamp / 1000));

        /* the order of changes made on two gateways: milliseconds */

        if (ngx_http_eas_redis_rules_shared()) {
            p = ngx_sprintf(p, ".%03ui",
                            (ngx_uint_t) (node->stamp % 1000));
        }

        p = ngx_sprintf(p, " %*s\n", (size_t) node->who_len, node->who);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    *out = buf;
    *len = p - buf;

    return NGX_OK;
}


/*
 * The text written to tmp and renamed over file; nothing logged (it may
 * run in a thread): NGX_ERROR with *step and *err for
 * ngx_http_eas_admin_put_failed()
 */

ngx_int_t
ngx_http_eas_admin_put_file(ngx_str_t *file, u_char *tmp, u_char *buf,
    size_t len, ngx_err_t *err, const char **step)
{
    ngx_fd_t  fd;

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        *err = ngx_errno;
        *step = ngx_open_file_n;
        return NGX_ERROR;
    }

    if (ngx_write_fd(fd, buf, len) != (ssize_t) len) {
        *err = ngx_errno;
        *step = ngx_write_fd_n;
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR
        || ngx_rename_file(tmp, file->data) == NGX_FILE_ERROR)
    {
        *err = ngx_errno;
        *step = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_eas_admin_put_failed(ngx_http_eas_admin_ctx_t *ctx, u_char *tmp,
    const char *step, ngx_err_t err, ngx_log_t *log)
{
    if (step) {
        ngx_log_error(NGX_LOG_ERR, log, err, "%s \"%s\" failed", step, tmp);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, err, "eas: cannot write \"%V\"",
                  &ctx->file);
}


/*
 * The zone changed by the other gateways (ngx_http_eas_redis_rules.c):
 * the file is written within a second, once for however many changes,
 * by the first worker whose timer fires (the others find it written),
 * and before a worker that quits gracefully exits.  A flood of changes
 * costs one write a second, not one each.
 */

void
ngx_http_eas_admin_dirty(ngx_http_eas_admin_ctx_t *ctx)
{
    ngx_event_t  *ev;

    ev = &ngx_http_eas_admin_timer;
    ngx_http_eas_admin_dirty_ctx = ctx;

    if (ev->timer_set) {
        return;
    }

    if (ngx_exiting || ngx_terminate) {
        (void) ngx_http_eas_admin_save(ctx, ngx_cycle->log);
        return;
    }

    /* not cancelable: a worker that quits writes what it took first */

    ev->handler = ngx_http_eas_admin_write;
    ngx_http_eas_admin_dummy.fd = (ngx_socket_t) -1;
    ev->data = &ngx_http_eas_admin_dummy;
    ev->log = ngx_cycle->log;
    ev->cancelable = 0;

    ngx_add_timer(ev, 1000);
}


static void
ngx_http_eas_admin_write(ngx_event_t *ev)
{
    ngx_http_eas_admin_ctx_t  *ctx = ngx_http_eas_admin_dirty_ctx;

    ngx_http_eas_admin_save_later(ctx, ev->log);
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


ngx_str_t *
ngx_http_eas_admin_access_name(ngx_uint_t access)
{
    return &ngx_http_eas_admin_access[access];
}


/* "allow", "block" or "lost": its ..._ACCESS_*, else NGX_ERROR */

ngx_uint_t
ngx_http_eas_admin_access_parse(ngx_str_t *name)
{
    ngx_uint_t  i;

    for (i = NGX_HTTP_EAS_ACCESS_ALLOWED;
         i <= NGX_HTTP_EAS_ADMIN_LOST_ACCESS;
         i++)
    {
        if (name->len == ngx_http_eas_admin_access[i].len
            && ngx_strncmp(name->data, ngx_http_eas_admin_access[i].data,
                           name->len) == 0)
        {
            return i;
        }
    }

    return (ngx_uint_t) NGX_ERROR;
}
