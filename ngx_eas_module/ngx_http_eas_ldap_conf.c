
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ldap.h>
#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_ldap.h"


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


/*
 * The service account's password from a file of one line, so that it
 * need not sit in nginx.conf (ngx_http_eas_secret_file()).
 */

static char *
ngx_http_eas_ldap_password_file(ngx_conf_t *cf, ngx_http_eas_ldap_t *ldap,
    ngx_str_t *path)
{
    ngx_str_t  what;
    u_char     text[sizeof("\"bind_password_file\" of \"eas_ldap_server\" "
                           "\"\"") + NGX_MAX_CONF_ERRSTR];

    what.data = text;
    what.len = ngx_snprintf(text, sizeof(text), "\"bind_password_file\" of "
                            "\"eas_ldap_server\" \"%V\"", &ldap->name)
               - text;

    if (ngx_http_eas_secret_file(cf, path, &what, &ldap->bind_password)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
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
    ngx_http_eas_preauth_conf_t *pcf = conf;

    ngx_str_t       *value, name;
    ngx_shm_zone_t  *zone;

    if (pcf->ldap != NGX_CONF_UNSET_PTR
        || pcf->file != NGX_CONF_UNSET_PTR
        || pcf->uri.data != NULL)
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

    pcf->ldap = zone->data;
    pcf->file = NULL;
    ngx_str_null(&pcf->uri);

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


/* the directory of a shared zone; NULL: a zone of something else */

ngx_http_eas_ldap_t *
ngx_http_eas_ldap_of_zone(ngx_shm_zone_t *zone)
{
    return zone->tag == &ngx_http_eas_ldap_tag_data ? zone->data : NULL;
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
