
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * An eas_ldap_server checked whole once its parameters are read, so
 * that "nginx -t" fails on any mistake (docs/directives.md): templates,
 * TLS files, the service account, the group settings and domains; and
 * the directory's source identity, a digest of everything that changes
 * its answers (the credential cache keys on it).  The parameters are
 * parsed in ngx_http_eas_ldap_conf.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ldap.h>
#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_ldap.h"
#include "eas_ldap.h"


static ngx_int_t ngx_http_eas_ldap_source_add(EVP_MD_CTX *md,
    ngx_http_eas_ldap_t *ldap);


char *
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
