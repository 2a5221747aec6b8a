
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The list files of the configuration (eas_device_rules, the per-user
 * lists of eas_device_user_lists), read at "nginx -t": one entry a
 * line, tokens separated by blanks, "#" comments, quoted tokens.  Each
 * caller parses its own lines (ngx_http_eas_rules.c,
 * ngx_http_eas_lists.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


static ngx_int_t ngx_http_eas_file_token(ngx_conf_t *cf, u_char **pos,
    u_char *last, ngx_str_t *token);


/*
 * Reads a list file (full path) at configuration time: one entry a
 * line, tokens separated by blanks, "#" starts a comment, a token may be
 * quoted with "..." (\" and \\ inside; other backslashes are kept for
 * regular expressions).
 * handler() gets each non-empty line's tokens; it logs its own error.
 */

ngx_int_t
ngx_http_eas_file_read(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *directive,
    ngx_http_eas_file_line_pt handler, void *data)
{
    u_char           *buf, *pos, *last, *eol;
    ssize_t           n;
    ngx_int_t         rc;
    ngx_str_t        *token, *path;
    ngx_uint_t        line;
    ngx_file_t        file;
    ngx_array_t       tokens;
    ngx_file_info_t   fi;

    path = name;

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = *path;
    file.log = cf->log;

    file.fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": " ngx_open_file_n " \"%V\" failed",
                           directive, path);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    buf = NULL;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", path);
        goto done;
    }

    buf = ngx_alloc(ngx_file_size(&fi) + 1, cf->log);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_file(&file, buf, ngx_file_size(&fi), 0);

    if (n == NGX_ERROR) {
        goto done;
    }

    if (ngx_array_init(&tokens, cf->temp_pool, 8, sizeof(ngx_str_t))
        != NGX_OK)
    {
        goto done;
    }

    pos = buf;
    last = buf + n;

    for (line = 1; pos < last; line++) {

        eol = ngx_strlchr(pos, last, LF);
        if (eol == NULL) {
            eol = last;
        }

        tokens.nelts = 0;

        for ( ;; ) {
            token = ngx_array_push(&tokens);
            if (token == NULL) {
                goto done;
            }

            rc = ngx_http_eas_file_token(cf, &pos, eol, token);

            if (rc == NGX_DONE) {
                tokens.nelts--;
                break;
            }

            if (rc == NGX_DECLINED) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "unterminated quote in \"%V\" at "
                                   "line %ui", path, line);
            }

            if (rc != NGX_OK) {
                rc = NGX_ERROR;
                goto done;
            }
        }

        pos = eol + 1;

        if (tokens.nelts == 0) {
            continue;
        }

        rc = handler(cf, data, path, line, &tokens);

        if (rc != NGX_OK) {
            goto done;
        }
    }

    rc = NGX_OK;

done:

    if (buf) {
        ngx_free(buf);
    }

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", path);
    }

    return rc;
}


/*
 * The next token of a line, in cf->temp_pool: NGX_OK, NGX_DONE at the
 * end of the line or at a comment, NGX_DECLINED for an unterminated
 * quote.
 */

static ngx_int_t
ngx_http_eas_file_token(ngx_conf_t *cf, u_char **pos, u_char *last,
    ngx_str_t *token)
{
    u_char      *p, *start, *d;
    ngx_uint_t   quoted;

    p = *pos;

    while (p < last && (*p == ' ' || *p == '\t' || *p == CR)) {
        p++;
    }

    if (p == last || *p == '#') {
        *pos = last;
        return NGX_DONE;
    }

    start = p;

    d = ngx_pnalloc(cf->temp_pool, last - start);
    if (d == NULL) {
        return NGX_ERROR;
    }

    token->data = d;
    quoted = 0;

    for ( /* void */ ; p < last; p++) {

        if (quoted) {
            if (*p == '\\' && p + 1 < last && (p[1] == '"' || p[1] == '\\'))
            {
                *d++ = *++p;
                continue;
            }

            if (*p == '"') {
                quoted = 0;
                continue;
            }

            *d++ = *p;
            continue;
        }

        if (*p == ' ' || *p == '\t' || *p == CR) {
            break;
        }

        if (*p == '"') {
            quoted = 1;
            continue;
        }

        *d++ = *p;
    }

    if (quoted) {
        return NGX_DECLINED;
    }

    token->len = d - token->data;
    *pos = p;

    return NGX_OK;
}
