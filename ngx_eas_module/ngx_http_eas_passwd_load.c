
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The password file read into its table (docs/authentication.md): the
 * whole file read at once, each line checked (user, hash kind) with an
 * error naming the file and the line, the entries sorted for the
 * lookup, and the costliest hash kept for users the file does not
 * know.  When and for whom it is read is in ngx_http_eas_passwd.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_passwd.h"


#define NGX_HTTP_EAS_PASSWD_MAX_SIZE  (64 * 1024 * 1024)


static ngx_int_t ngx_http_eas_passwd_parse(ngx_http_eas_passwd_t *pw,
    ngx_pool_t *pool, u_char *text, size_t size, ngx_array_t *entries,
    ngx_conf_t *cf, ngx_log_t *log);
static ngx_int_t ngx_http_eas_passwd_cmp(const void *one, const void *two);
static ngx_uint_t ngx_http_eas_passwd_costliest(
    ngx_http_eas_passwd_entry_t *e, ngx_uint_t n);
static void ngx_http_eas_passwd_error(ngx_http_eas_passwd_t *pw,
    ngx_conf_t *cf, ngx_log_t *log, ngx_uint_t line, const char *err,
    ngx_str_t *value);


ngx_int_t
ngx_http_eas_passwd_load(ngx_http_eas_passwd_t *pw, ngx_conf_t *cf,
    ngx_log_t *log)
{
    u_char           *text;
    size_t            size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_uint_t        level;
    ngx_file_t        file;
    ngx_pool_t       *pool;
    ngx_array_t       entries;
    ngx_file_info_t   fi;

    fd = ngx_open_file(pw->name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (cf) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                               ngx_open_file_n " \"%s\" failed",
                               pw->name.data);
        } else {
            ngx_log_error(NGX_LOG_ERR, log, err,
                          ngx_open_file_n " \"%s\" failed, "
                          "eas_preauth_user_file keeps the previous "
                          "contents", pw->name.data);
        }

        return NGX_ERROR;
    }

    pool = NULL;
    text = NULL;
    size = 0;
    level = cf ? NGX_LOG_EMERG : NGX_LOG_ERR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(level, log, ngx_errno,
                      ngx_fd_info_n " \"%s\" failed", pw->name.data);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size > NGX_HTTP_EAS_PASSWD_MAX_SIZE) {
        ngx_log_error(level, log, 0,
                      "password file \"%s\" is too large", pw->name.data);
        goto failed;
    }

    /*
     * The table outlives the request that reloads it, and a table read
     * at configuration time lives as long as the new cycle: its pool logs
     * to the new cycle's log, not to cf->log, which during a reload is
     * the old cycle's and is freed with it.
     */

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE,
                           cf ? &cf->cycle->new_log : ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    text = ngx_alloc(size + 1, log);
    if (text == NULL) {
        goto failed;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = pw->name;
    file.log = log;

    n = ngx_read_file(&file, text, size, 0);

    if (n == NGX_ERROR) {
        goto failed;
    }

    if ((size_t) n != size) {
        ngx_log_error(level, log, 0,
                      ngx_read_file_n " \"%s\" returned only %z bytes "
                      "instead of %uz", pw->name.data, n, size);
        goto failed;
    }

    if (ngx_array_init(&entries, pool, 64,
                       sizeof(ngx_http_eas_passwd_entry_t))
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_http_eas_passwd_parse(pw, pool, text, size, &entries, cf, log)
        != NGX_OK)
    {
        goto failed;
    }

    if (EVP_Digest(text, size, pw->source, NULL, EVP_sha256(), NULL) != 1) {
        goto failed;
    }

    ngx_explicit_memzero(text, size);
    ngx_free(text);

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", pw->name.data);
    }

    if (pw->pool) {
        ngx_destroy_pool(pw->pool);
    }

    pw->pool = pool;
    pw->entries = entries.elts;
    pw->nentries = entries.nelts;
    pw->costliest = ngx_http_eas_passwd_costliest(entries.elts,
                                                  entries.nelts);
    pw->uniq = ngx_file_uniq(&fi);
    pw->mtime = ngx_http_eas_passwd_mtime(&fi);
    pw->ctime = ngx_http_eas_passwd_ctime(&fi);
    pw->size = ngx_file_size(&fi);

    return NGX_OK;

failed:

    if (text) {
        ngx_explicit_memzero(text, size);
        ngx_free(text);
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", pw->name.data);
    }

    return NGX_ERROR;
}


/*
 * "user:hash" per line as htpasswd writes it; empty lines and lines
 * starting with "#" are skipped, a final "\r" is dropped.  Every
 * malformed line is reported; one is enough to refuse the file.
 */

static ngx_int_t
ngx_http_eas_passwd_parse(ngx_http_eas_passwd_t *pw, ngx_pool_t *pool,
    u_char *text, size_t size, ngx_array_t *entries, ngx_conf_t *cf,
    ngx_log_t *log)
{
    u_char                        *p, *end, *eol, *colon;
    size_t                         n;
    ngx_str_t                      user, hash;
    ngx_uint_t                     line, i, bad, kind;
    const char                    *err;
    ngx_http_eas_passwd_entry_t   *e;
    u_char                         id[EAS_BASIC_USER_MAX];

    bad = 0;
    line = 0;
    end = text + size;

    for (p = text; p < end; p = eol + 1) {

        line++;

        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        n = eol - p;

        if (n && p[n - 1] == '\r') {
            n--;
        }

        if (n == 0 || p[0] == '#') {
            continue;
        }

        colon = ngx_strlchr(p, p + n, ':');

        if (colon == NULL) {
            ngx_http_eas_passwd_error(pw, cf, log, line, "no colon", NULL);
            bad++;
            continue;
        }

        user.data = p;
        user.len = colon - p;
        hash.data = colon + 1;
        hash.len = p + n - hash.data;

        /* the name as a device's would be: ngx_http_eas_user_identity() */

        if (user.len > EAS_BASIC_USER_MAX
            || ngx_http_eas_user_identity(NULL, user.data, user.len, id,
                                          sizeof(id), &n)
               != NGX_OK)
        {
            ngx_http_eas_passwd_error(pw, cf, log, line, "invalid user name",
                                      NULL);
            bad++;
            continue;
        }

        err = ngx_http_eas_passwd_kind(&hash, pw->plain, &kind);

        if (err) {
            ngx_http_eas_passwd_error(pw, cf, log, line, err, NULL);
            bad++;
            continue;
        }

        e = ngx_array_push(entries);
        if (e == NULL) {
            return NGX_ERROR;
        }

        e->user.data = ngx_pnalloc(pool, n);
        e->hash.data = ngx_pnalloc(pool, hash.len + 1);

        if (e->user.data == NULL || e->hash.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(e->user.data, id, n);
        e->user.len = n;
        ngx_memcpy(e->hash.data, hash.data, hash.len);
        e->hash.data[hash.len] = '\0';
        e->hash.len = hash.len;
        e->kind = kind;
        e->line = line;
    }

    ngx_sort(entries->elts, entries->nelts,
             sizeof(ngx_http_eas_passwd_entry_t), ngx_http_eas_passwd_cmp);

    e = entries->elts;

    for (i = 1; i < entries->nelts; i++) {
        if (ngx_memn2cmp(e[i].user.data, e[i - 1].user.data, e[i].user.len,
                         e[i - 1].user.len)
            == 0)
        {
            ngx_http_eas_passwd_error(pw, cf, log,
                                      ngx_max(e[i].line, e[i - 1].line),
                                      "duplicate user", &e[i].user);
            bad++;
        }
    }

    return bad ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_eas_passwd_cmp(const void *one, const void *two)
{
    const ngx_http_eas_passwd_entry_t  *a = one;
    const ngx_http_eas_passwd_entry_t  *b = two;

    return ngx_memn2cmp(a->user.data, b->user.data, a->user.len,
                        b->user.len);
}


static ngx_uint_t
ngx_http_eas_passwd_costliest(ngx_http_eas_passwd_entry_t *e, ngx_uint_t n)
{
    uint64_t    cost, max;
    ngx_uint_t  i, costliest;

    max = 0;
    costliest = 0;

    for (i = 0; i < n; i++) {
        cost = ngx_http_eas_passwd_cost(&e[i]);

        if (cost > max) {
            max = cost;
            costliest = i;
        }
    }

    return costliest;
}


/* "file:line: what" as nginx -t or the error log shows it */

static void
ngx_http_eas_passwd_error(ngx_http_eas_passwd_t *pw, ngx_conf_t *cf,
    ngx_log_t *log, ngx_uint_t line, const char *err, ngx_str_t *value)
{
    if (cf) {
        if (value) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "eas_preauth_user_file \"%s:%ui\": %s \"%V\"",
                               pw->name.data, line, err, value);
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "eas_preauth_user_file \"%s:%ui\": %s",
                               pw->name.data, line, err);
        }

        return;
    }

    if (value) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "eas_preauth_user_file \"%s:%ui\": %s \"%V\", the "
                      "previous contents stay in use", pw->name.data, line,
                      err, value);
    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "eas_preauth_user_file \"%s:%ui\": %s, the previous "
                      "contents stay in use", pw->name.data, line, err);
    }
}
