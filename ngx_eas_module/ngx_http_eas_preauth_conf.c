
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"


/*
 * The directives of pre-authentication (docs/directives.md) and their
 * merge; the request path is ngx_http_eas_preauth.c.
 */


#define NGX_HTTP_EAS_PREAUTH_VALID    (60 * 5)
#define NGX_HTTP_EAS_PREAUTH_INVALID  (60 * 5)
#define NGX_HTTP_EAS_PREAUTH_USERS    5
#define NGX_HTTP_EAS_PREAUTH_ADDRS    50
#define NGX_HTTP_EAS_PREAUTH_WINDOW   (60 * 15)
#define NGX_HTTP_EAS_PREAUTH_LOCK     (60 * 15)
#define NGX_HTTP_EAS_PREAUTH_KNOWN    (60 * 90)  /* > the longest Ping */
#define NGX_HTTP_EAS_PREAUTH_TIMEOUT  30000


static char *ngx_http_eas_preauth_time(ngx_conf_t *cf, ngx_str_t *value,
    size_t skip, time_t *t);
static ngx_int_t ngx_http_eas_preauth_uri_source(ngx_conf_t *cf,
    ngx_http_eas_preauth_conf_t *conf);


void
ngx_http_eas_preauth_create_conf(ngx_http_eas_preauth_conf_t *conf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->realm = { 0, NULL };
     *     conf->challenge = { 0, NULL };
     *     conf->uri = { 0, NULL };
     *     conf->source = { 0 };
     *     conf->grace = 0;
     *     conf->set = 0;
     */

    conf->zone = NGX_CONF_UNSET_PTR;
    conf->valid = NGX_CONF_UNSET;
    conf->invalid = NGX_CONF_UNSET;
    conf->file = NGX_CONF_UNSET_PTR;
    conf->ldap = NGX_CONF_UNSET_PTR;
    conf->thread_pool = NGX_CONF_UNSET_PTR;
    conf->inline_check = NGX_CONF_UNSET;
    conf->user_limit = NGX_CONF_UNSET_UINT;
    conf->address_limit = NGX_CONF_UNSET_UINT;
    conf->window = NGX_CONF_UNSET;
    conf->lock_time = NGX_CONF_UNSET;
    conf->known = NGX_CONF_UNSET;
    conf->timeout = NGX_CONF_UNSET_MSEC;
}


char *
ngx_http_eas_preauth_merge_conf(ngx_conf_t *cf,
    ngx_http_eas_preauth_conf_t *prev, ngx_http_eas_preauth_conf_t *conf)
{
    if (conf->realm.data == NULL) {
        conf->realm = prev->realm;
        conf->challenge = prev->challenge;
    }

    if (conf->zone == NGX_CONF_UNSET_PTR) {
        conf->zone = prev->zone;
        conf->valid = prev->valid;
        conf->invalid = prev->invalid;
    }

    ngx_conf_merge_ptr_value(conf->zone, NULL, NULL);
    ngx_conf_merge_value(conf->valid, NGX_CONF_UNSET,
                         NGX_HTTP_EAS_PREAUTH_VALID);
    ngx_conf_merge_value(conf->invalid, NGX_CONF_UNSET,
                         NGX_HTTP_EAS_PREAUTH_INVALID);

    /* the source is one choice: a file, a directory or a subrequest */

    if (conf->file == NGX_CONF_UNSET_PTR && conf->uri.data == NULL
        && conf->ldap == NGX_CONF_UNSET_PTR)
    {
        conf->file = prev->file;
        conf->ldap = prev->ldap;
        conf->uri = prev->uri;
        conf->any_answer = prev->any_answer;
        ngx_memcpy(conf->source, prev->source, NGX_HTTP_EAS_DIGEST_LEN);
    }

    ngx_conf_merge_ptr_value(conf->file, NULL, NULL);
    ngx_conf_merge_ptr_value(conf->ldap, NULL, NULL);

    if (conf->uri.len
        && ngx_http_eas_preauth_uri_source(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->thread_pool == NGX_CONF_UNSET_PTR) {
        conf->thread_pool = prev->thread_pool;
        conf->inline_check = prev->inline_check;
    }

    ngx_conf_merge_ptr_value(conf->thread_pool, NULL, NULL);
    ngx_conf_merge_value(conf->inline_check, NGX_CONF_UNSET, 0);

    ngx_conf_merge_uint_value(conf->user_limit, prev->user_limit,
                              NGX_HTTP_EAS_PREAUTH_USERS);
    ngx_conf_merge_uint_value(conf->address_limit, prev->address_limit,
                              NGX_HTTP_EAS_PREAUTH_ADDRS);
    ngx_conf_merge_value(conf->window, prev->window,
                         NGX_HTTP_EAS_PREAUTH_WINDOW);
    ngx_conf_merge_value(conf->lock_time, prev->lock_time,
                         NGX_HTTP_EAS_PREAUTH_LOCK);
    ngx_conf_merge_value(conf->known, prev->known,
                         NGX_HTTP_EAS_PREAUTH_KNOWN);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout,
                              NGX_HTTP_EAS_PREAUTH_TIMEOUT);

    if (conf->timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_preauth_timeout\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    if (conf->zone && conf->zone->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_preauth_cache\" zone \"%V\" is unknown",
                           &conf->zone->shm.name);
        return NGX_CONF_ERROR;
    }

    if (conf->realm.len == 0) {
        return NGX_CONF_OK;
    }

    if (conf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_preauth\" needs \"eas_preauth_cache\" "
                           "with a zone defined by \"eas_preauth_zone\"");
        return NGX_CONF_ERROR;
    }

    if (conf->file == NULL && conf->uri.len == 0 && conf->ldap == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_preauth\" needs a credential source: "
                           "\"eas_preauth_user_file\", "
                           "\"eas_preauth_ldap\" or "
                           "\"eas_preauth_request\"");
        return NGX_CONF_ERROR;
    }

    if (conf->ldap && ngx_http_eas_ldap_check(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if ((conf->file == NULL && conf->ldap == NULL) || conf->inline_check
        || conf->thread_pool)
    {
        return NGX_CONF_OK;
    }

#if (NGX_THREADS)

    conf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (conf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#else

    if (conf->ldap) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_preauth_ldap\" requires nginx built "
                           "with threads");
        return NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"eas_preauth_user_file\" verifies passwords in a "
                       "thread pool and nginx was built without threads: "
                       "use \"eas_preauth_thread_pool off\" to verify them "
                       "in the event loop");
    return NGX_CONF_ERROR;

#endif
}


/* eas_preauth realm | off; */

char *
ngx_http_eas_preauth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_preauth_conf_t *pcf = conf;

    u_char     *p;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (pcf->realm.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&pcf->realm, "");
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty realm in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] == '"' || value[1].data[i] == '\\'
            || value[1].data[i] < 0x20 || value[1].data[i] == 0x7f)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid character in realm \"%V\" of \"%V\"",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    pcf->realm = value[1];

    pcf->challenge.len = sizeof("Basic realm=\"\"") - 1
                                  + value[1].len;

    p = ngx_pnalloc(cf->pool, pcf->challenge.len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    pcf->challenge.data = p;

    p = ngx_cpymem(p, "Basic realm=\"", sizeof("Basic realm=\"") - 1);
    p = ngx_cpymem(p, value[1].data, value[1].len);
    *p = '"';

    pcf->set = 1;

    return NGX_CONF_OK;
}


/* eas_preauth_cache zone=name [valid=time] [invalid=time]; */

char *
ngx_http_eas_preauth_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_preauth_conf_t *pcf = conf;

    char        *rv;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (pcf->zone != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        pcf->zone = NULL;
        return NGX_CONF_OK;
    }

    pcf->zone = NULL;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (s.len == 0) {
                goto invalid;
            }

            pcf->zone = ngx_http_eas_cache_add(cf, &s);
            if (pcf->zone == NULL) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "valid=", 6) == 0) {
            rv = ngx_http_eas_preauth_time(cf, &value[i], 6,
                                           &pcf->valid);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "invalid=", 8) == 0) {
            rv = ngx_http_eas_preauth_time(cf, &value[i], 8,
                                           &pcf->invalid);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        goto invalid;
    }

    if (pcf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\"", &value[i],
                       &cmd->name);
    return NGX_CONF_ERROR;
}


/* eas_preauth_user_file file [plain]; */

char *
ngx_http_eas_preauth_user_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eas_preauth_conf_t *pcf = conf;

    ngx_str_t   *value;
    ngx_flag_t   plain;

    if (pcf->file != NGX_CONF_UNSET_PTR
        || pcf->uri.data != NULL
        || pcf->ldap != NGX_CONF_UNSET_PTR)
    {
        return "is duplicate, or another credential source is set";
    }

    value = cf->args->elts;
    plain = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "plain") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\"",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }

        plain = 1;
    }

    pcf->file = ngx_http_eas_passwd_open(cf, &value[1], plain);
    if (pcf->file == NULL) {
        return NGX_CONF_ERROR;
    }

    pcf->ldap = NULL;

    return NGX_CONF_OK;
}


/* eas_preauth_request uri [answer=activesync|status]; */

char *
ngx_http_eas_preauth_request(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_preauth_conf_t *pcf = conf;

    ngx_str_t  *value;

    if (pcf->uri.data != NULL
        || pcf->file != NGX_CONF_UNSET_PTR
        || pcf->ldap != NGX_CONF_UNSET_PTR)
    {
        return "is duplicate, or another credential source is set";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs a URI starting with \"/\", not "
                           "\"%V\"", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    /*
     * An ActiveSync OPTIONS is answered by an ActiveSync server with its
     * protocol versions: a 2xx without them came from something else
     * (a web page answering any path) and proves nothing.
     */

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "answer=status") == 0) {
            pcf->any_answer = 1;

        } else if (ngx_strcmp(value[2].data, "answer=activesync") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\", it "
                               "must be \"answer=activesync\" or "
                               "\"answer=status\"", &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    pcf->uri = value[1];
    pcf->file = NULL;
    pcf->ldap = NULL;

    return NGX_CONF_OK;
}


/*
 * The cache tells one subrequest source's answers from another's.  The
 * URI alone does not say which source it is: the same URI resolves to
 * another location, upstream and Host in another server.  The identity
 * is that of the server the merge is in (its names and listen
 * addresses, both stable across a reload) and the URI; the Host of each
 * request is added at run time (ngx_http_eas_preauth_handler).
 */

static ngx_int_t
ngx_http_eas_preauth_uri_source(ngx_conf_t *cf,
    ngx_http_eas_preauth_conf_t *conf)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_uint_t                  i, j, k;
    EVP_MD_CTX                 *md;
    ngx_http_conf_port_t       *port;
    ngx_http_conf_addr_t       *addr;
    ngx_http_server_name_t     *sn;
    ngx_http_core_srv_conf_t   *cscf, **servers;
    ngx_http_core_main_conf_t  *cmcf;
    u_char                      text[NGX_SOCKADDR_STRLEN];

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(md, "request", sizeof("request")) != 1)
    {
        goto done;
    }

    sn = cscf->server_names.elts;

    for (i = 0; i < cscf->server_names.nelts; i++) {
        if (EVP_DigestUpdate(md, sn[i].name.data, sn[i].name.len) != 1
            || EVP_DigestUpdate(md, "", 1) != 1)
        {
            goto done;
        }
    }

    port = cmcf->ports ? cmcf->ports->elts : NULL;

    for (i = 0; port && i < cmcf->ports->nelts; i++) {
        addr = port[i].addrs.elts;

        for (j = 0; j < port[i].addrs.nelts; j++) {
            servers = addr[j].servers.elts;

            for (k = 0; k < addr[j].servers.nelts; k++) {
                if (servers[k] != cscf) {
                    continue;
                }

                len = ngx_sock_ntop(addr[j].opt.sockaddr, addr[j].opt.socklen,
                                    text, sizeof(text), 1);

                if (EVP_DigestUpdate(md, "@", 1) != 1
                    || EVP_DigestUpdate(md, text, len) != 1)
                {
                    goto done;
                }
            }
        }
    }

    if (EVP_DigestUpdate(md, "", 1) != 1
        || EVP_DigestUpdate(md, conf->uri.data, conf->uri.len) != 1
        || EVP_DigestFinal_ex(md, conf->source, NULL) != 1)
    {
        goto done;
    }

    rc = NGX_OK;

done:

    EVP_MD_CTX_free(md);

    return rc;
}


/* eas_preauth_thread_pool name | off; */

char *
ngx_http_eas_preauth_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eas_preauth_conf_t *pcf = conf;

    ngx_str_t  *value;

    if (pcf->thread_pool != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        pcf->thread_pool = NULL;
        pcf->inline_check = 1;
        return NGX_CONF_OK;
    }

#if (NGX_THREADS)

    pcf->thread_pool = ngx_thread_pool_add(cf, &value[1]);
    if (pcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    pcf->inline_check = 0;

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" requires nginx built with threads, or "
                       "\"off\"", &cmd->name);
    return NGX_CONF_ERROR;

#endif
}


/*
 * eas_preauth_lockout [user=N|off] [address=N|off] [window=t] [time=t]
 *                     [known=t];
 */

char *
ngx_http_eas_preauth_lockout(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_preauth_conf_t *pcf = conf;

    char        *rv;
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i, *limit;

    if (pcf->user_limit != NGX_CONF_UNSET_UINT
        || pcf->window != NGX_CONF_UNSET)
    {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            limit = &pcf->user_limit;
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

        } else if (ngx_strncmp(value[i].data, "address=", 8) == 0) {
            limit = &pcf->address_limit;
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

        } else if (ngx_strncmp(value[i].data, "window=", 7) == 0) {
            rv = ngx_http_eas_preauth_time(cf, &value[i], 7,
                                           &pcf->window);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            if (pcf->window == 0) {
                goto invalid;
            }

            continue;

        } else if (ngx_strncmp(value[i].data, "time=", 5) == 0) {
            rv = ngx_http_eas_preauth_time(cf, &value[i], 5,
                                           &pcf->lock_time);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            if (pcf->lock_time == 0) {
                goto invalid;
            }

            continue;

        } else if (ngx_strncmp(value[i].data, "known=", 6) == 0) {
            rv = ngx_http_eas_preauth_time(cf, &value[i], 6,
                                           &pcf->known);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            if (pcf->known == 0) {
                goto invalid;
            }

            continue;

        } else {
            goto invalid;
        }

        if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
            *limit = 0;
            continue;
        }

        n = ngx_atoi(s.data, s.len);

        /* a count the zone keeps in two bytes */

        if (n <= 0 || n > 65535) {
            goto invalid;
        }

        *limit = n;
    }

    /* what is not given takes its default in the merge, at this level */

    if (pcf->user_limit == NGX_CONF_UNSET_UINT) {
        pcf->user_limit = NGX_HTTP_EAS_PREAUTH_USERS;
    }

    if (pcf->address_limit == NGX_CONF_UNSET_UINT) {
        pcf->address_limit = NGX_HTTP_EAS_PREAUTH_ADDRS;
    }

    if (pcf->window == NGX_CONF_UNSET) {
        pcf->window = NGX_HTTP_EAS_PREAUTH_WINDOW;
    }

    if (pcf->lock_time == NGX_CONF_UNSET) {
        pcf->lock_time = NGX_HTTP_EAS_PREAUTH_LOCK;
    }

    if (pcf->known == NGX_CONF_UNSET) {
        pcf->known = NGX_HTTP_EAS_PREAUTH_KNOWN;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"%V\"", &value[i],
                       &cmd->name);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_eas_preauth_time(ngx_conf_t *cf, ngx_str_t *value, size_t skip,
    time_t *t)
{
    ngx_str_t  s;

    s.data = value->data + skip;
    s.len = value->len - skip;

    *t = ngx_parse_time(&s, 1);

    if (*t == (time_t) NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\"", value);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
