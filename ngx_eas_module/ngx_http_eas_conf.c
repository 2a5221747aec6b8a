
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The core module's directive helpers: eas_methods and the "Allow"
 * header of its 405, the number bounds that name their directive, and
 * the zone directives' "zone=name:size" (ngx_http_eas_zone_add(), used
 * by every concern's zone), and the check every concern's module makes
 * of its directives written where "eas" is off.  The directive table
 * itself is in ngx_http_eas_module.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_conf.h"


typedef struct {
    ngx_str_t    name;
    ngx_uint_t   mask;
} ngx_http_eas_method_t;


static ngx_int_t ngx_http_eas_zone_parameter(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_str_t *value, ngx_str_t *name, ssize_t *size);


/* the methods nginx itself recognises, in the order "Allow" lists them */
static ngx_http_eas_method_t  ngx_http_eas_methods_table[] = {
    { ngx_string("OPTIONS"), NGX_HTTP_OPTIONS },
    { ngx_string("POST"), NGX_HTTP_POST },
    { ngx_string("GET"), NGX_HTTP_GET },
    { ngx_string("HEAD"), NGX_HTTP_HEAD },
    { ngx_string("PUT"), NGX_HTTP_PUT },
    { ngx_string("DELETE"), NGX_HTTP_DELETE },
    { ngx_string("PATCH"), NGX_HTTP_PATCH },
    { ngx_string("MKCOL"), NGX_HTTP_MKCOL },
    { ngx_string("COPY"), NGX_HTTP_COPY },
    { ngx_string("MOVE"), NGX_HTTP_MOVE },
    { ngx_string("PROPFIND"), NGX_HTTP_PROPFIND },
    { ngx_string("PROPPATCH"), NGX_HTTP_PROPPATCH },
    { ngx_string("LOCK"), NGX_HTTP_LOCK },
    { ngx_string("UNLOCK"), NGX_HTTP_UNLOCK },
    { ngx_string("TRACE"), NGX_HTTP_TRACE },
    { ngx_null_string, 0 }
};


char *
ngx_http_eas_methods(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_loc_conf_t *elcf = conf;

    ngx_str_t              *value;
    ngx_uint_t              i;
    ngx_http_eas_method_t  *m;

    if (elcf->methods != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    elcf->methods = 0;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        for (m = ngx_http_eas_methods_table; m->name.len; m++) {
            if (m->name.len == value[i].len
                && ngx_strncmp(m->name.data, value[i].data, value[i].len)
                   == 0)
            {
                break;
            }
        }

        if (m->name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid method \"%V\" in \"%V\"",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (elcf->methods & m->mask) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate method \"%V\" in \"%V\"",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        elcf->methods |= m->mask;
    }

    if (!(elcf->methods & NGX_HTTP_POST)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must include POST: every ActiveSync "
                           "command is a POST", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the "Allow" header of a 405, built once per configuration */

ngx_int_t
ngx_http_eas_allow_header(ngx_conf_t *cf, ngx_http_eas_loc_conf_t *elcf)
{
    size_t                  len;
    u_char                 *p;
    ngx_http_eas_method_t  *m;

    len = 0;

    for (m = ngx_http_eas_methods_table; m->name.len; m++) {
        if (elcf->methods & m->mask) {
            len += m->name.len + sizeof(", ") - 1;
        }
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    elcf->allow.data = p;

    for (m = ngx_http_eas_methods_table; m->name.len; m++) {
        if (elcf->methods & m->mask) {
            if (p != elcf->allow.data) {
                p = ngx_cpymem(p, ", ", 2);
            }

            p = ngx_cpymem(p, m->name.data, m->name.len);
        }
    }

    elcf->allow.len = p - elcf->allow.data;

    return NGX_OK;
}


/* ngx_conf_check_num_bounds() that names the directive in its error */

char *
ngx_http_eas_num_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    u_char  *p;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    p = ngx_pnalloc(cf->pool, sizeof("must be between  and ")
                              + 2 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(p, "must be between %i and %i%Z", bounds->low,
                bounds->high);

    return (char *) p;
}


/*
 * The zone directives (eas_preauth_zone, eas_device_zone) take one
 * parameter, "zone=name:size", read as limit_req_zone reads it.  Returns
 * the new zone, or NULL after the error that names the directive.
 */

ngx_shm_zone_t *
ngx_http_eas_zone_add(ngx_conf_t *cf, ngx_command_t *cmd, void *tag)
{
    ssize_t          size;
    ngx_str_t       *value, name;
    ngx_uint_t       i;
    ngx_shm_zone_t  *shm_zone;

    value = cf->args->elts;

    size = 0;
    name.len = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            if (ngx_http_eas_zone_parameter(cf, cmd, &value[i], &name, &size)
                != NGX_OK)
            {
                return NULL;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"",
                           &value[i], &cmd->name);
        return NULL;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, tag);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "eas zone \"%V\" is already defined", &name);
        return NULL;
    }

    return shm_zone;
}


static ngx_int_t
ngx_http_eas_zone_parameter(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, ngx_str_t *name, ssize_t *size)
{
    u_char     *p;
    ngx_str_t   s;

    name->data = value->data + 5;

    p = (u_char *) ngx_strchr(name->data, ':');

    if (p == NULL || p == name->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"%V\"",
                           value, &cmd->name);
        return NGX_ERROR;
    }

    name->len = p - name->data;

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    *size = ngx_parse_size(&s);

    if (*size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\" in \"%V\"",
                           value, &cmd->name);
        return NGX_ERROR;
    }

    if (*size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small in \"%V\"",
                           value, &cmd->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A secret kept out of nginx.conf (world-readable on Debian): a file
 * holding it on one line, the line end not part of it, read now by the
 * master process, which reads the configuration as root at start and at
 * every reload, so the file may be root's alone (0600).  "what" names
 * the parameter and its directive in the messages; the secret itself is
 * never logged, and the read buffer is wiped.  The secret is returned
 * NUL-terminated for libraries that want a C string.
 */

ngx_int_t
ngx_http_eas_secret_file(ngx_conf_t *cf, ngx_str_t *path, ngx_str_t *what,
    ngx_str_t *secret)
{
    u_char           *p;
    size_t            len;
    ssize_t           n;
    ngx_int_t         rc;
    ngx_str_t         name;
    ngx_file_t        file;
    ngx_file_info_t   fi;
    u_char            buf[NGX_HTTP_EAS_SECRET_MAX + 2];

    name = *path;

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty file name in %V",
                           what);
        return NGX_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = name;
    file.log = cf->log;

    file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed, %V",
                           name.data, what);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    n = NGX_ERROR;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", name.data);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V: \"%s\" is not a file", what, name.data);
        goto done;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);

    if (n == NGX_ERROR) {
        goto done;
    }

    len = n;

    if (len && buf[len - 1] == LF) {
        len--;

        if (len && buf[len - 1] == CR) {
            len--;
        }
    }

    if (len == 0 || len > NGX_HTTP_EAS_SECRET_MAX
        || ngx_strlchr(buf, buf + len, LF) != NULL
        || ngx_strlchr(buf, buf + len, '\0') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V: \"%s\" must hold the password on one line, "
                           "1 to %d bytes", what, name.data,
                           NGX_HTTP_EAS_SECRET_MAX);
        goto done;
    }

    p = ngx_pnalloc(cf->pool, len + 1);
    if (p == NULL) {
        goto done;
    }

    ngx_memcpy(p, buf, len);
    p[len] = '\0';

    secret->data = p;
    secret->len = len;

    rc = NGX_OK;

done:

    if (n > 0) {
        ngx_explicit_memzero(buf, n);
    }

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    return rc;
}


/*
 * A security directive written in a location where "eas" is off would
 * do nothing: no request there is parsed, authenticated or checked, and
 * everything would be forwarded.  So it fails "nginx -t", reported by
 * the merge of the directive's module through ngx_http_eas_inert().
 * Only a location is checked: at the http and server levels the
 * directives are defaults for the locations below, and a location
 * without "eas" (Autodiscover, the credential check's internal
 * location) may inherit them without effect.  The core module is first
 * in "config", so its "eas" of the level is merged by then.
 */

ngx_uint_t
ngx_http_eas_inert_location(ngx_conf_t *cf)
{
    ngx_http_eas_loc_conf_t   *elcf;
    ngx_http_core_loc_conf_t  *clcf;

    elcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_eas_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    return !elcf->enable && clcf->name.len;
}


char *
ngx_http_eas_inert(ngx_conf_t *cf, char *name)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%s\" has no effect in location \"%V\" "
                       "where \"eas\" is off: add \"eas on\" to it",
                       name, &clcf->name);

    return NGX_CONF_ERROR;
}
