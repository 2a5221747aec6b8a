
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_ldap.h"
#include "ngx_http_eas_rules.h"


/*
 * The user= of device rules (eas_device_allow/block/rules) where a
 * directory of several domains makes the identity: a request there is
 * "name@domain" (ngx_http_eas_user_identity()), so an exact user= in
 * another form ("jdoe", "contoso\\jdoe", "jdoe@contoso.local") would
 * match nobody, and a block written so would let the user through.
 * Checked at the merge of each level with "eas on", as the list files
 * are (ngx_http_eas_lists_check()): such a value fails "nginx -t" with
 * the identity to write.  With identity= a request is the attribute's
 * value, folded, with no domain (ngx_http_eas_identity_value()): a
 * user= in another case is the value folded, one the attribute never
 * holds ("jdoe@contoso.com" with identity=uid) fails the same way.  A
 * regular expression sees the identity and is the writer's to make.
 */

ngx_int_t
ngx_http_eas_rules_users_check(ngx_conf_t *cf, ngx_http_eas_rules_t *rules,
    ngx_http_eas_preauth_conf_t *pcf)
{
    size_t                 n;
    ngx_int_t              rc;
    ngx_uint_t             i, j;
    ngx_http_eas_cond_t   *cond;
    ngx_http_eas_ldap_t   *ldap;
    ngx_http_eas_rule_t  **rule;
    u_char                 id[EAS_USER_MAX];

    ldap = pcf->ldap;

    if (rules == NULL || pcf->realm.len == 0 || ldap == NULL
        || (ldap->identity.len == 0
            && (ldap->aliases == NULL || ldap->ndomains < 2)))
    {
        return NGX_OK;
    }

    rule = rules->rules.elts;

    for (i = 0; i < rules->rules.nelts; i++) {
        for (j = 0; j < rule[i]->nconds; j++) {
            cond = &rule[i]->conds[j];

            if (cond->field != NGX_HTTP_EAS_FIELD_USER
                || cond->value.len == 0
#if (NGX_PCRE)
                || cond->regex
#endif
               )
            {
                continue;
            }

            rc = ldap->identity.len
                 ? ngx_http_eas_identity_value(ldap, cond->value.data,
                                               cond->value.len, id,
                                               sizeof(id), &n)
                 : ngx_http_eas_user_identity(ldap, cond->value.data,
                                              cond->value.len, id,
                                              sizeof(id), &n);

            if (rc == NGX_OK && n == cond->value.len
                && ngx_memcmp(id, cond->value.data, n) == 0)
            {
                continue;
            }

            if (rc != NGX_OK) {
                n = 0;
            }

            if (ldap->identity.len) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"user=%V\" of %V:%ui can never match "
                                   "with directory \"%V\", whose "
                                   "\"identity=%V\" names users: write the "
                                   "identity as $eas_auth_user shows it%s"
                                   "%*s%s", &cond->value, rule[i]->source,
                                   rule[i]->line,
                                   ngx_http_eas_ldap_name(ldap),
                                   &ldap->identity, n ? ", \"user=" : "",
                                   n, id, n ? "\"" : "");
                return NGX_ERROR;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"user=%V\" of %V:%ui can never match with "
                               "directory \"%V\" of several domains: %s%*s%s",
                               &cond->value, rule[i]->source, rule[i]->line,
                               ngx_http_eas_ldap_name(ldap),
                               n ? "write the identity, \"user="
                                 : "its domain is none of the \"domain\" "
                                   "parameters",
                               n, id, n ? "\"" : "");

            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
