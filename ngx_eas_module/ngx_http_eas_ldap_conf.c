
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ldap.h>
#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_ldap.h"
#include "eas_ldap.h"


/*
 * The directives of the directory credential source
 * (docs/directives.md): eas_ldap_server declares a directory, checked
 * whole at "nginx -t", with a small zone for its up / down state;
 * eas_preauth_ldap refers to it by name.
 */


static ngx_int_t ngx_http_eas_ldap_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_eas_ldap_parameter(ngx_conf_t *cf,
    ngx_http_eas_ldap_t *ldap, ngx_str_t *value);
static char *ngx_http_eas_ldap_domain_parameter(ngx_conf_t *cf,
    ngx_http_eas_ldap_t *ldap, ngx_str_t *value);
static char *ngx_http_eas_ldap_password_file(ngx_conf_t *cf,
    ngx_http_eas_ldap_t *ldap, ngx_str_t *path);
static char *ngx_http_eas_ldap_finish_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_http_eas_ldap_t *ldap);
static ngx_int_t ngx_http_eas_ldap_source_add(EVP_MD_CTX *md,
    ngx_http_eas_ldap_t *ldap);


static u_char     ngx_http_eas_ldap_tag_data;

static ngx_str_t  ngx_http_eas_ldap_prefix = ngx_string("eas_ldap:");


/*
 * eas_ldap_server name url=URL [url=URL] [starttls] [ca=file]
 *     [verify=on|off] [bind=template] [base=dn] [filter=template]
 *     [scope=base|one|sub] [bind_dn=dn]
 *     [bind_password=secret | bind_password_file=file]
 *     [group=dn] [group_attribute=member]
 *     [group_nested=off|on|in_chain] [group_depth=n] [group_base=dn]
 *     [domain=name[,alias...] ...] [identity=attribute]
 *     [devices=on|off] [allowed_attribute=a] [blocked_attribute=a]
 *     [connect_timeout=t] [timeout=t] [retry=t] [grace=t];
 */

char *
ngx_http_eas_ldap_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                 *rv;
    ngx_str_t            *value, name, arg;
    ngx_uint_t            i;
    ngx_shm_zone_t       *zone;
    ngx_http_eas_ldap_t  *ldap;

    value = cf->args->elts;

    ldap = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_ldap_t));
    if (ldap == NULL) {
        return NGX_CONF_ERROR;
    }

    ldap->name = value[1];
    ldap->starttls = NGX_CONF_UNSET;
    ldap->verify = NGX_CONF_UNSET;
    ldap->devices = NGX_CONF_UNSET;
    ldap->scope = -1;
    ldap->connect_timeout = NGX_CONF_UNSET_MSEC;
    ldap->timeout = NGX_CONF_UNSET_MSEC;
    ldap->grace = NGX_CONF_UNSET;
    ldap->retry = NGX_CONF_UNSET;
    ldap->nested = NGX_CONF_UNSET_UINT;
    ldap->group_depth = NGX_CONF_UNSET_UINT;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty name in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        rv = ngx_http_eas_ldap_parameter(cf, ldap, &value[i]);

        if (rv == NGX_CONF_OK) {
            continue;
        }

        if (rv != NGX_CONF_ERROR) {
            arg = value[i];

            /* a password is never written to a log */

            if (arg.len > sizeof("bind_password=") - 1
                && ngx_strncmp(arg.data, "bind_password=",
                               sizeof("bind_password=") - 1)
                   == 0)
            {
                arg.len = sizeof("bind_password") - 1;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s \"%V\" in \"%V\"", rv, &arg,
                               &cmd->name);
        }

        return NGX_CONF_ERROR;
    }

    rv = ngx_http_eas_ldap_finish_conf(cf, cmd, ldap);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    name.len = ngx_http_eas_ldap_prefix.len + ldap->name.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ngx_cpymem(name.data, ngx_http_eas_ldap_prefix.data,
                          ngx_http_eas_ldap_prefix.len),
               ldap->name.data, ldap->name.len);

    zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                 &ngx_http_eas_ldap_tag_data);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "directory \"%V\" is already defined",
                           &ldap->name);
        return NGX_CONF_ERROR;
    }

    zone->init = ngx_http_eas_ldap_init_zone;
    zone->data = ldap;
    ldap->zone = zone;

    return NGX_CONF_OK;
}


static char *
ngx_http_eas_ldap_parameter(ngx_conf_t *cf, ngx_http_eas_ldap_t *ldap,
    ngx_str_t *value)
{
    u_char          *p;
    ngx_int_t        n;
    ngx_str_t        v, *s;
    ngx_flag_t      *flag;
    ngx_msec_t      *ms;
    time_t          *t;
    LDAPURLDesc     *lud;
    ngx_file_info_t  fi;

    if (value->len == 8 && ngx_strncmp(value->data, "starttls", 8) == 0) {
        ldap->starttls = 1;
        return NGX_CONF_OK;
    }

    p = (u_char *) ngx_strchr(value->data, '=');
    if (p == NULL) {
        return "invalid parameter";
    }

    v.data = p + 1;
    v.len = value->data + value->len - v.data;

    s = NULL;
    flag = NULL;
    ms = NULL;
    t = NULL;

#define ngx_http_eas_ldap_is(key)                                            \
    ((size_t) (p - value->data) == sizeof(key) - 1                           \
     && ngx_strncmp(value->data, key, sizeof(key) - 1) == 0)

    if (ngx_http_eas_ldap_is("url")) {
        if (ldap->nurls == NGX_HTTP_EAS_LDAP_URLS) {
            return "too many urls at";
        }

        if (ldap_url_parse((char *) v.data, &lud) != LDAP_URL_SUCCESS) {
            return "invalid url";
        }

        if (ngx_strcmp(lud->lud_scheme, "ldap") != 0
            && ngx_strcmp(lud->lud_scheme, "ldaps") != 0)
        {
            ldap_free_urldesc(lud);
            return "url must be ldap:// or ldaps://, not";
        }

        ldap_free_urldesc(lud);

        /* config strings are NUL-terminated */
        ldap->urls[ldap->nurls++] = v;
        return NGX_CONF_OK;

    } else if (ngx_http_eas_ldap_is("ca")) {
        s = &ldap->ca;

        if (v.len && ngx_conf_full_name(cf->cycle, &v, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (v.len && ngx_file_info(v.data, &fi) == NGX_FILE_ERROR) {
            return "cannot read CA file of";
        }

    } else if (ngx_http_eas_ldap_is("verify")) {
        flag = &ldap->verify;

    } else if (ngx_http_eas_ldap_is("devices")) {
        flag = &ldap->devices;

    } else if (ngx_http_eas_ldap_is("bind")) {
        s = &ldap->bind;

    } else if (ngx_http_eas_ldap_is("base")) {
        s = &ldap->base;

    } else if (ngx_http_eas_ldap_is("filter")) {
        s = &ldap->filter;

    } else if (ngx_http_eas_ldap_is("bind_dn")) {
        s = &ldap->bind_dn;

    } else if (ngx_http_eas_ldap_is("bind_password")) {
        if (ldap->bind_password.data) {
            return "duplicate bind password, or one in a file too:";
        }

        s = &ldap->bind_password;

    } else if (ngx_http_eas_ldap_is("bind_password_file")) {
        if (ldap->bind_password.data) {
            return "duplicate bind password, or one in the text too:";
        }

        return ngx_http_eas_ldap_password_file(cf, ldap, &v);

    } else if (ngx_http_eas_ldap_is("group")) {
        s = &ldap->group;

    } else if (ngx_http_eas_ldap_is("group_attribute")) {
        s = &ldap->member;

    } else if (ngx_http_eas_ldap_is("group_base")) {
        s = &ldap->group_base;

    } else if (ngx_http_eas_ldap_is("group_nested")) {
        if (ldap->nested != NGX_CONF_UNSET_UINT) {
            return "duplicate parameter";
        }

        if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
            ldap->nested = NGX_HTTP_EAS_LDAP_NESTED_OFF;

        } else if (v.len == 2 && ngx_strncmp(v.data, "on", 2) == 0) {
            ldap->nested = NGX_HTTP_EAS_LDAP_NESTED_ON;

        } else if (v.len == 8 && ngx_strncmp(v.data, "in_chain", 8) == 0) {
            ldap->nested = NGX_HTTP_EAS_LDAP_NESTED_IN_CHAIN;

        } else {
            return "invalid value, use \"off\", \"on\" or \"in_chain\":";
        }

        return NGX_CONF_OK;

    } else if (ngx_http_eas_ldap_is("group_depth")) {
        if (ldap->group_depth != NGX_CONF_UNSET_UINT) {
            return "duplicate parameter";
        }

        n = ngx_atoi(v.data, v.len);

        if (n < 1 || n > NGX_HTTP_EAS_LDAP_DEPTH_MAX) {
            return "invalid depth, use 1 to 32:";
        }

        ldap->group_depth = n;

        return NGX_CONF_OK;

    } else if (ngx_http_eas_ldap_is("domain")) {
        return ngx_http_eas_ldap_domain_parameter(cf, ldap, &v);

    } else if (ngx_http_eas_ldap_is("identity")) {
        s = &ldap->identity;

    } else if (ngx_http_eas_ldap_is("allowed_attribute")) {
        s = &ldap->allowed;

    } else if (ngx_http_eas_ldap_is("blocked_attribute")) {
        s = &ldap->blocked;

    } else if (ngx_http_eas_ldap_is("scope")) {
        if (v.len == 4 && ngx_strncmp(v.data, "base", 4) == 0) {
            ldap->scope = LDAP_SCOPE_BASE;

        } else if (v.len == 3 && ngx_strncmp(v.data, "one", 3) == 0) {
            ldap->scope = LDAP_SCOPE_ONELEVEL;

        } else if (v.len == 3 && ngx_strncmp(v.data, "sub", 3) == 0) {
            ldap->scope = LDAP_SCOPE_SUBTREE;

        } else {
            return "invalid scope";
        }

        return NGX_CONF_OK;

    } else if (ngx_http_eas_ldap_is("connect_timeout")) {
        ms = &ldap->connect_timeout;

    } else if (ngx_http_eas_ldap_is("timeout")) {
        ms = &ldap->timeout;

    } else if (ngx_http_eas_ldap_is("retry")) {
        t = &ldap->retry;

    } else if (ngx_http_eas_ldap_is("grace")) {
        t = &ldap->grace;

    } else {
        return "invalid parameter";
    }

#undef ngx_http_eas_ldap_is

    if (s) {
        if (s->data) {
            return "duplicate parameter";
        }

        *s = v;
        return NGX_CONF_OK;
    }

    if (flag) {
        if (v.len == 2 && ngx_strncmp(v.data, "on", 2) == 0) {
            *flag = 1;

        } else if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
            *flag = 0;

        } else {
            return "invalid value, use \"on\" or \"off\":";
        }

        return NGX_CONF_OK;
    }

    if (ms) {
        *ms = ngx_parse_time(&v, 0);

        if (*ms == (ngx_msec_t) NGX_ERROR || *ms == 0) {
            return "invalid time";
        }

        return NGX_CONF_OK;
    }

    *t = ngx_parse_time(&v, 1);

    if (*t == (time_t) NGX_ERROR) {
        return "invalid time";
    }

    return NGX_CONF_OK;
}


/*
 * domain=name[,alias...]: a domain the directory serves, as %d is to
 * have it, and the other names a user may send for it (NetBIOS name,
 * UPN suffixes); compared without case.  The first domain= is that of
 * a bare user name.
 */

static char *
ngx_http_eas_ldap_domain_parameter(ngx_conf_t *cf, ngx_http_eas_ldap_t *ldap,
    ngx_str_t *value)
{
    u_char                     *p, *last, *comma;
    ngx_str_t                   name, *domain;
    ngx_uint_t                  i;
    ngx_http_eas_ldap_alias_t  *a, *alias;

    if (ldap->aliases == NULL) {
        ldap->aliases = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_http_eas_ldap_alias_t));
        if (ldap->aliases == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    domain = NULL;
    p = value->data;
    last = value->data + value->len;

    for ( ;; ) {
        comma = ngx_strlchr(p, last, ',');

        name.data = p;
        name.len = (comma ? comma : last) - p;

        if (name.len == 0 || name.len > EAS_BASIC_USER_MAX
            || ngx_strlchr(name.data, name.data + name.len, '\\')
            || ngx_strlchr(name.data, name.data + name.len, '@'))
        {
            return "invalid domain";
        }

        if (domain == NULL) {
            /* config strings are NUL-terminated, this part not */
            domain = ngx_palloc(cf->pool, sizeof(ngx_str_t));
            if (domain == NULL) {
                return NGX_CONF_ERROR;
            }

            domain->data = ngx_pstrdup(cf->pool, &name);
            if (domain->data == NULL) {
                return NGX_CONF_ERROR;
            }

            domain->len = name.len;
        }

        a = ldap->aliases->elts;

        for (i = 0; i < ldap->aliases->nelts; i++) {
            if (a[i].name.len == name.len
                && ngx_strncasecmp(a[i].name.data, name.data, name.len) == 0)
            {
                return "domain named twice in";
            }
        }

        alias = ngx_array_push(ldap->aliases);
        if (alias == NULL) {
            return NGX_CONF_ERROR;
        }

        alias->name.data = ngx_pnalloc(cf->pool, name.len);
        if (alias->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_strlow(alias->name.data, name.data, name.len);
        alias->name.len = name.len;
        alias->domain = domain;

        if (comma == NULL) {
            break;
        }

        p = comma + 1;
    }

    if (ldap->ndomains++ == 0) {
        ldap->domain = *domain;
    }

    return NGX_CONF_OK;
}


/* the domain %d stands for: of the name sent, or the first; NULL: none */

ngx_str_t *
ngx_http_eas_ldap_domain(ngx_http_eas_ldap_t *ldap, u_char *name, size_t len)
{
    ngx_uint_t                  i;
    ngx_http_eas_ldap_alias_t  *a;

    if (ldap->aliases == NULL) {
        return NULL;
    }

    if (len == 0) {
        return &ldap->domain;
    }

    a = ldap->aliases->elts;

    for (i = 0; i < ldap->aliases->nelts; i++) {
        if (a[i].name.len == len
            && ngx_strncasecmp(a[i].name.data, name, len) == 0)
        {
            return a[i].domain;
        }
    }

    return NULL;
}


/*
 * The identity a user name stands for (docs/authentication.md,
 * "Identity"): the name part folded as directories compare names
 * (NFKC_Casefold, ngx_http_eas_fold()), as password files have it;
 * with a directory that serves several domains, "name@domain" with the
 * domain as its domain= declares it, in lower case, so that the same
 * name in two domains is two identities.  NGX_DECLINED: a domain the
 * directory does not serve; NGX_ERROR: a malformed or too long name,
 * one that is not UTF-8, or one that folds into another form (a full-
 * width "@" or "\\" in it) or into nothing.  The one normalisation of
 * pre-authentication, password files and per-user list files.
 */

ngx_int_t
ngx_http_eas_user_identity(ngx_http_eas_ldap_t *ldap, u_char *user,
    size_t len, u_char *dst, size_t size, size_t *n)
{
    u_char      *p;
    size_t       i;
    ngx_str_t   *domain;
    eas_user_t   u, folded;
    u_char       name[EAS_BASIC_USER_MAX];

    *n = eas_user_normalize(user, len, dst, size);

    if (*n == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < *n; i++) {
        if (dst[i] >= 0x80) {
            break;
        }
    }

    if (i < *n) {

        /* not ASCII: folded by ICU, and still a bare name after that */

        if (*n > sizeof(name)) {
            return NGX_ERROR;
        }

        ngx_memcpy(name, dst, *n);

        if (ngx_http_eas_fold(name, *n, dst, size, n) != NGX_OK
            || eas_user_split(dst, *n, &folded) != EAS_OK
            || folded.form != EAS_USER_FORM_BARE)
        {
            *n = 0;
            return NGX_ERROR;
        }
    }

    if (ldap == NULL || ldap->aliases == NULL) {
        return NGX_OK;
    }

    (void) eas_user_split(user, len, &u);

    domain = ngx_http_eas_ldap_domain(ldap, (u_char *) u.domain.data,
                                      u.domain.len);
    if (domain == NULL) {
        return NGX_DECLINED;
    }

    if (ldap->ndomains == 1) {
        return NGX_OK;
    }

    if (*n + 1 + domain->len > size) {
        return NGX_ERROR;
    }

    p = dst + *n;
    *p++ = '@';
    ngx_strlow(p, domain->data, domain->len);

    *n += 1 + domain->len;

    return NGX_OK;
}


/*
 * The service account's password from a file, so that it need not sit
 * in nginx.conf (world-readable on Debian): read now, by the master
 * process, which reads the configuration as root at start and at
 * every reload, so the file may be root's alone (0600).  One line; the
 * line end is not part of the password.  Never logged.
 */

static char *
ngx_http_eas_ldap_password_file(ngx_conf_t *cf, ngx_http_eas_ldap_t *ldap,
    ngx_str_t *path)
{
    char             *rv;
    u_char           *p;
    size_t            len;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         name;
    ngx_file_t        file;
    ngx_file_info_t   fi;
    u_char            buf[NGX_HTTP_EAS_LDAP_PASSWORD_MAX + 2];

    name = *path;

    if (name.len == 0) {
        return "empty file name in";
    }

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed, "
                           "\"bind_password_file\" of \"eas_ldap_server\" "
                           "\"%V\"", name.data, &ldap->name);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = name;
    file.log = cf->log;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", name.data);
        rv = NGX_CONF_ERROR;
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"bind_password_file\" \"%s\" of "
                           "\"eas_ldap_server\" \"%V\" is not a file",
                           name.data, &ldap->name);
        rv = NGX_CONF_ERROR;
        goto done;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);

    if (n == NGX_ERROR) {
        rv = NGX_CONF_ERROR;
        goto done;
    }

    len = n;

    if (len && buf[len - 1] == LF) {
        len--;

        if (len && buf[len - 1] == CR) {
            len--;
        }
    }

    if (len == 0 || len > NGX_HTTP_EAS_LDAP_PASSWORD_MAX
        || ngx_strlchr(buf, buf + len, LF) != NULL
        || ngx_strlchr(buf, buf + len, '\0') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"bind_password_file\" \"%s\" of "
                           "\"eas_ldap_server\" \"%V\" must hold the "
                           "password on one line, 1 to %d bytes (an empty "
                           "password is an anonymous bind)", name.data,
                           &ldap->name, NGX_HTTP_EAS_LDAP_PASSWORD_MAX);
        rv = NGX_CONF_ERROR;
        goto done;
    }

    p = ngx_pnalloc(cf->pool, len + 1);
    if (p == NULL) {
        rv = NGX_CONF_ERROR;
        goto done;
    }

    ngx_memcpy(p, buf, len);
    p[len] = '\0';

    ldap->bind_password.data = p;
    ldap->bind_password.len = len;

done:

    ngx_explicit_memzero(buf, sizeof(buf));

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    return rv;
}


static char *
ngx_http_eas_ldap_finish_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_eas_ldap_t *ldap)
{
    ngx_uint_t   i;
    EVP_MD_CTX  *md;

    if (ldap->nurls == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"url\" parameter", &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* either a DN template, or a search (as a service account) */

    if ((ldap->bind.len && ldap->bind_dn.len)
        || (ldap->bind.len == 0 && ldap->filter.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs either \"bind\" (a DN template) "
                           "or \"filter\" and \"base\" (search then bind, "
                           "as \"bind_dn\" if given)", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ldap->bind.len
        && eas_ldap_template_check(ldap->bind.data, ldap->bind.len)
           != EAS_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"bind\" template \"%V\" in \"%V\": it "
                           "needs %%u and may hold %%d and %%%%",
                           &ldap->bind, &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ldap->filter.len) {
        if (eas_ldap_template_check(ldap->filter.data, ldap->filter.len)
            != EAS_OK
            || ldap->filter.data[0] != '(')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"filter\" template \"%V\" in "
                               "\"%V\": it is \"(...)\" with %%u",
                               &ldap->filter, &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (ldap->base.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"filter\" needs \"base\" in \"%V\"",
                               &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (ldap->bind_dn.len && ldap->bind_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"bind_dn\" needs \"bind_password\" or "
                           "\"bind_password_file\" in \"%V\": an empty "
                           "password is an anonymous bind",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ldap->starttls == NGX_CONF_UNSET) {
        ldap->starttls = 0;
    }

    if (ldap->starttls) {
        for (i = 0; i < ldap->nurls; i++) {
            if (ngx_strncasecmp(ldap->urls[i].data, (u_char *) "ldaps:", 6)
                == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"starttls\" with the ldaps:// url "
                                   "\"%V\" in \"%V\"", &ldap->urls[i],
                                   &cmd->name);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (ldap->verify == NGX_CONF_UNSET) {
        ldap->verify = 1;
    }

    if (ldap->devices == NGX_CONF_UNSET) {
        ldap->devices = 1;
    }

    if (ldap->scope == -1) {
        ldap->scope = LDAP_SCOPE_SUBTREE;
    }

    if (ldap->member.len == 0) {
        ngx_str_set(&ldap->member, "member");
    }

    if (ldap->group.len == 0
        && (ldap->nested != NGX_CONF_UNSET_UINT
            || ldap->group_depth != NGX_CONF_UNSET_UINT
            || ldap->group_base.data))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"group_nested\", \"group_depth\" and "
                           "\"group_base\" need \"group\" in \"%V\"",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ldap->nested == NGX_CONF_UNSET_UINT) {
        ldap->nested = NGX_HTTP_EAS_LDAP_NESTED_OFF;
    }

    if (ldap->group_depth == NGX_CONF_UNSET_UINT) {
        ldap->group_depth = 8;
    }

    if (ldap->group_base.len == 0) {
        if (ldap->base.len) {
            ldap->group_base = ldap->base;

        } else {
            /* the group's parent: after the first unescaped comma */

            for (i = 0; i < ldap->group.len; i++) {
                if (ldap->group.data[i] == '\\') {
                    i++;
                    continue;
                }

                if (ldap->group.data[i] == ',') {
                    break;
                }
            }

            if (i + 1 >= ldap->group.len) {
                ldap->group_base = ldap->group;

            } else {
                /* a suffix of a NUL-terminated config string */
                ldap->group_base.data = ldap->group.data + i + 1;
                ldap->group_base.len = ldap->group.len - i - 1;
            }
        }
    }

    if (ldap->allowed.len == 0) {
        ngx_str_set(&ldap->allowed, "msExchMobileAllowedDeviceIDs");
    }

    if (ldap->blocked.len == 0) {
        ngx_str_set(&ldap->blocked, "msExchMobileBlockedDeviceIDs");
    }

    if (ldap->domain.data == NULL) {
        ngx_str_set(&ldap->domain, "");
    }

    /* %d is the domain the user is in, never one a client made up */

    if (ldap->ndomains == 0
        && (eas_ldap_template_has(ldap->bind.data, ldap->bind.len, 'd')
            || eas_ldap_template_has(ldap->filter.data, ldap->filter.len,
                                     'd')))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%%d in a template of \"%V\" \"%V\" needs "
                           "\"domain\": the domains the directory serves, "
                           "so that %%d is never a domain a client made up",
                           &cmd->name, &ldap->name);
        return NGX_CONF_ERROR;
    }

    if (ldap->connect_timeout == NGX_CONF_UNSET_MSEC) {
        ldap->connect_timeout = 5000;
    }

    if (ldap->timeout == NGX_CONF_UNSET_MSEC) {
        ldap->timeout = 10000;
    }

    if (ldap->retry == NGX_CONF_UNSET) {
        ldap->retry = 10;
    }

    if (ldap->retry == 0) {
        ldap->retry = 1;
    }

    if (ldap->grace == NGX_CONF_UNSET) {
        ldap->grace = 0;
    }

    /* the cache tells one directory's answers from another's */

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_CONF_ERROR;
    }

    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(md, "ldap", sizeof("ldap")) != 1
        || EVP_DigestUpdate(md, ldap->name.data, ldap->name.len + 1) != 1
        || EVP_DigestUpdate(md, ldap->bind.data, ldap->bind.len) != 1
        || EVP_DigestUpdate(md, "", 1) != 1
        || EVP_DigestUpdate(md, ldap->filter.data, ldap->filter.len) != 1
        || EVP_DigestUpdate(md, "", 1) != 1
        || EVP_DigestUpdate(md, ldap->group.data, ldap->group.len) != 1
        || EVP_DigestUpdate(md, ldap->domain.data, ldap->domain.len) != 1
        || EVP_DigestUpdate(md, &ldap->ndomains, sizeof(ngx_uint_t)) != 1
        || EVP_DigestUpdate(md, ldap->identity.data, ldap->identity.len) != 1
        || EVP_DigestUpdate(md, "", 1) != 1
        || EVP_DigestUpdate(md, &ldap->nested, sizeof(ngx_uint_t)) != 1
        || EVP_DigestUpdate(md, &ldap->group_depth, sizeof(ngx_uint_t)) != 1
        || EVP_DigestUpdate(md, ldap->group_base.data, ldap->group_base.len)
           != 1
        || ngx_http_eas_ldap_source_add(md, ldap) != NGX_OK
        || EVP_DigestFinal_ex(md, ldap->source, NULL) != 1)
    {
        EVP_MD_CTX_free(md);
        return NGX_CONF_ERROR;
    }

    EVP_MD_CTX_free(md);

    return NGX_CONF_OK;
}


/*
 * The rest of what an answer depends on: the servers asked, where the
 * user is searched and the lists read.  Two declarations that differ in
 * any of it do not share cached answers, even under one name across a
 * reload.
 */

static ngx_int_t
ngx_http_eas_ldap_source_add(EVP_MD_CTX *md, ngx_http_eas_ldap_t *ldap)
{
    ngx_str_t   *s[6];
    ngx_uint_t   i;

    for (i = 0; i < ldap->nurls; i++) {
        if (EVP_DigestUpdate(md, ldap->urls[i].data, ldap->urls[i].len) != 1
            || EVP_DigestUpdate(md, "", 1) != 1)
        {
            return NGX_ERROR;
        }
    }

    s[0] = &ldap->base;
    s[1] = &ldap->member;
    s[2] = &ldap->domain;
    s[3] = &ldap->allowed;
    s[4] = &ldap->blocked;
    s[5] = &ldap->bind_dn;

    for (i = 0; i < 6; i++) {
        if (EVP_DigestUpdate(md, "", 1) != 1
            || (s[i]->len
                && EVP_DigestUpdate(md, s[i]->data, s[i]->len) != 1))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_ldap_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_eas_ldap_t  *oldldap = data;

    ngx_slab_pool_t      *shpool;
    ngx_http_eas_ldap_t  *ldap;

    ldap = shm_zone->data;

    if (oldldap) {
        ldap->sh = oldldap->sh;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ldap->sh = shpool->data;
        return NGX_OK;
    }

    ldap->sh = ngx_slab_calloc(shpool, sizeof(ngx_http_eas_ldap_sh_t));
    if (ldap->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ldap->sh;

    return NGX_OK;
}


/* eas_preauth_ldap name; */

char *
ngx_http_eas_preauth_ldap(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_loc_conf_t *elcf = conf;

    ngx_str_t       *value, name;
    ngx_shm_zone_t  *zone;

    if (elcf->preauth.ldap != NGX_CONF_UNSET_PTR
        || elcf->preauth.file != NGX_CONF_UNSET_PTR
        || elcf->preauth.uri.data != NULL)
    {
        return "is duplicate, or another credential source is set";
    }

    value = cf->args->elts;

    name.len = ngx_http_eas_ldap_prefix.len + value[1].len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ngx_cpymem(name.data, ngx_http_eas_ldap_prefix.data,
                          ngx_http_eas_ldap_prefix.len),
               value[1].data, value[1].len);

    zone = ngx_shared_memory_add(cf, &name, 0, &ngx_http_eas_ldap_tag_data);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown directory \"%V\" in \"%V\": define it "
                           "before with \"eas_ldap_server\"", &value[1],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    elcf->preauth.ldap = zone->data;
    elcf->preauth.file = NULL;
    ngx_str_null(&elcf->preauth.uri);

    return NGX_CONF_OK;
}


/* from the merge of a level with a directory source */

ngx_int_t
ngx_http_eas_ldap_check(ngx_conf_t *cf, ngx_http_eas_preauth_conf_t *pcf)
{
    if (pcf->inline_check) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_preauth_ldap\" asks the directory in a "
                           "thread pool only: \"eas_preauth_thread_pool "
                           "off\" cannot be used with it");
        return NGX_ERROR;
    }

    pcf->grace = pcf->ldap->grace;

    return NGX_OK;
}


u_char *
ngx_http_eas_ldap_source(ngx_http_eas_ldap_t *ldap)
{
    return ldap->source;
}


ngx_str_t *
ngx_http_eas_ldap_name(ngx_http_eas_ldap_t *ldap)
{
    return &ldap->name;
}


time_t
ngx_http_eas_ldap_retry(ngx_http_eas_ldap_t *ldap)
{
    return ldap->retry;
}
