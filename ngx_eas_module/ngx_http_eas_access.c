
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_rules.h"


/*
 * Step 3 of the request flow, the device access module's phase handler:
 * the device decision in Exchange's order (the user's lists, the
 * administrator's runtime decisions, the rules, the default), the
 * inventory and the max-devices rule; the merge of the module's
 * configuration and its checks.  The module itself is declared in
 * ngx_http_eas_devices_module.c.
 */


static ngx_int_t ngx_http_eas_device_access(ngx_http_request_t *r,
    ngx_http_eas_devices_conf_t *dcf, ngx_http_eas_ctx_t *ctx);
static ngx_int_t ngx_http_eas_device_values(ngx_http_request_t *r,
    ngx_http_eas_devices_conf_t *dcf, ngx_http_eas_ctx_t *ctx, ngx_str_t *user,
    ngx_http_eas_device_values_t *values);
static ngx_int_t ngx_http_eas_device_lower(ngx_http_request_t *r,
    ngx_http_eas_device_values_t *values, ngx_str_t *value, ngx_str_t *lower);
static void ngx_http_eas_device_strlow(u_char *dst, u_char *src, size_t n);
static ngx_uint_t ngx_http_eas_user_match(ngx_http_eas_ctx_t *ctx);
static void ngx_http_eas_device_record(ngx_http_request_t *r,
    ngx_http_eas_devices_conf_t *dcf, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_device_values_t *values);


static ngx_str_t  ngx_http_eas_reason_default =
    ngx_string("eas_device_default");
static ngx_str_t  ngx_http_eas_reason_user_match =
    ngx_string("eas_device_user_match");
static ngx_str_t  ngx_http_eas_reason_max =
    ngx_string(NGX_HTTP_EAS_REASON_MAX_DEVICES);
static ngx_str_t  ngx_http_eas_reason_full =
    ngx_string(NGX_HTTP_EAS_REASON_ZONE_FULL);
static ngx_str_t  ngx_http_eas_reason_unauthenticated =
    ngx_string("eas_device_max_unauthenticated");


/*
 * Step 3, the precontent phase's second step, right after the core's
 * refusals held (ngx_http_eas_enforce_handler) and before the long-poll
 * body: in an "eas on" location, for a request nothing refused, the
 * device decision.  A request that passes is marked checked: should an
 * internal redirect take it to a location without "eas on", it is
 * passed there.
 */

ngx_int_t
ngx_http_eas_devices_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_http_eas_ctx_t           *ctx;
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_devices_conf_t  *dcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->refused) {
        return NGX_DECLINED;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (!elcf->enable) {
        return NGX_DECLINED;
    }

    dcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_devices_module);

    rc = ngx_http_eas_device_access(r, dcf, ctx);

    if (rc == NGX_DECLINED) {
        ctx->checked = 1;

    } else if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->refused = rc;

    } else if (rc == NGX_DONE && ctx->access == NGX_HTTP_EAS_ACCESS_BLOCKED) {
        /* answered as Exchange does (200, Status 129): should the request
         * come back through a redirect, it is refused there */
        ctx->refused = NGX_HTTP_FORBIDDEN;
    }

    return rc;
}


/*
 * Step 3 of the request flow, in Exchange's order (docs/protocol.md
 * 9.2): the user's block list, the user's allow list, the rules (first
 * match wins), the default; then the inventory records the device and
 * applies the user's device limit.  OPTIONS and anything without a
 * DeviceId are not subject to it.  NGX_DECLINED lets the request go on.
 */

static ngx_int_t
ngx_http_eas_device_access(ngx_http_request_t *r,
    ngx_http_eas_devices_conf_t *dcf, ngx_http_eas_ctx_t *ctx)
{
    ngx_int_t                      rc;
    ngx_str_t                      user;
    ngx_uint_t                     access;
    ngx_http_eas_device_values_t   values;

    if (!dcf->device_check) {
        return NGX_DECLINED;
    }

    /*
     * decided once per location: an internal redirect to a location
     * with other rules (an error_page, X-Accel-Redirect) decides again,
     * with that location's rules
     */

    if (!ctx->parsed || ctx->request.device_id.len == 0
        || ctx->device_conf == dcf)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_eas_identity(r, ctx, &user) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_eas_device_values(r, dcf, ctx, &user, &values) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    access = NGX_HTTP_EAS_ACCESS_NONE;

    if (dcf->device_user_match && !ngx_http_eas_user_match(ctx)) {
        access = NGX_HTTP_EAS_ACCESS_BLOCKED;
        ctx->reason = ngx_http_eas_reason_user_match;
    }

    if (access == NGX_HTTP_EAS_ACCESS_NONE) {
        rc = ngx_http_eas_admin_decide(r, ctx, &values, &access);
        if (rc != NGX_OK) {
            ctx->device_conf = dcf;
            return (rc == NGX_ERROR) ? NGX_HTTP_INTERNAL_SERVER_ERROR : rc;
        }
    }

    if (access == NGX_HTTP_EAS_ACCESS_NONE && dcf->device_lists) {
        rc = dcf->device_lists->lookup(r, dcf->device_lists, &values,
                                        &access, &ctx->reason);
        if (rc != NGX_OK) {
            return (rc == NGX_AGAIN) ? NGX_AGAIN
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (access == NGX_HTTP_EAS_ACCESS_NONE && dcf->device_rules) {
        rc = ngx_http_eas_rules_decide(r, dcf->device_rules, &values,
                                       &access, &ctx->reason);
        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (access == NGX_HTTP_EAS_ACCESS_NONE) {
        access = (dcf->device_default == NGX_HTTP_EAS_ACCESS_BLOCKED)
                 ? NGX_HTTP_EAS_ACCESS_BLOCKED : NGX_HTTP_EAS_ACCESS_ALLOWED;
        ctx->reason = ngx_http_eas_reason_default;
    }

    ctx->access = access;
    ctx->device_conf = dcf;

    if (dcf->devices) {
        ngx_http_eas_device_record(r, dcf, ctx, &values);
    }

    /* several gateways: a device counted here is counted on Redis too */

    rc = ngx_http_eas_redis_device(r, dcf->devices, &values);

    if (rc == NGX_AGAIN) {
        ctx->device_conf = NULL;
        return NGX_AGAIN;
    }

    if (rc == NGX_BUSY) {
        ctx->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
        ctx->reason = ngx_http_eas_reason_max;
    }

    if (ctx->access == NGX_HTTP_EAS_ACCESS_ALLOWED) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas device \"%V\" of \"%V\" allowed by %V",
                       &values.value[NGX_HTTP_EAS_FIELD_DEVICE_ID], &user,
                       &ctx->reason);
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                  "eas: device \"%V\" of user \"%V\" blocked by %V",
                  &values.value[NGX_HTTP_EAS_FIELD_DEVICE_ID], &user,
                  &ctx->reason);

    return ngx_http_eas_answer_blocked(r, dcf->device_status, ctx);
}


/*
 * The fields rules look at, and lower-cased copies for hash lookups:
 * the DeviceId and the user always (the administrator's rules and the
 * per-user lists compare them), the others only where a configured rule
 * names them; a copy not made is empty.
 */

static ngx_int_t
ngx_http_eas_device_values(ngx_http_request_t *r,
    ngx_http_eas_devices_conf_t *dcf, ngx_http_eas_ctx_t *ctx, ngx_str_t *user,
    ngx_http_eas_device_values_t *values)
{
    ngx_str_t   *v;
    ngx_uint_t   i, lower;

    v = values->value;

    v[NGX_HTTP_EAS_FIELD_DEVICE_ID].data =
                                       (u_char *) ctx->request.device_id.data;
    v[NGX_HTTP_EAS_FIELD_DEVICE_ID].len = ctx->request.device_id.len;

    v[NGX_HTTP_EAS_FIELD_DEVICE_TYPE].data =
                                     (u_char *) ctx->request.device_type.data;
    v[NGX_HTTP_EAS_FIELD_DEVICE_TYPE].len = ctx->request.device_type.len;

    v[NGX_HTTP_EAS_FIELD_USER] = *user;

    if (r->headers_in.user_agent) {
        v[NGX_HTTP_EAS_FIELD_USER_AGENT] = r->headers_in.user_agent->value;

    } else {
        ngx_str_set(&v[NGX_HTTP_EAS_FIELD_USER_AGENT], "");
    }

    /* a field the request lacks is "" to a regex, never a NULL subject */

    if (v[NGX_HTTP_EAS_FIELD_USER].data == NULL) {
        ngx_str_set(&v[NGX_HTTP_EAS_FIELD_USER], "");
    }

    values->used = 0;

    lower = ((ngx_uint_t) 1 << NGX_HTTP_EAS_FIELD_DEVICE_ID)
            | ((ngx_uint_t) 1 << NGX_HTTP_EAS_FIELD_USER)
            | (dcf->device_rules ? dcf->device_rules->lower : 0);

    for (i = 0; i < NGX_HTTP_EAS_FIELDS; i++) {

        if (!(lower & ((ngx_uint_t) 1 << i))) {
            ngx_str_set(&values->lower[i], "");
            continue;
        }

        if (ngx_http_eas_device_lower(r, values, &v[i], &values->lower[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_device_lower(ngx_http_request_t *r,
    ngx_http_eas_device_values_t *values, ngx_str_t *value, ngx_str_t *lower)
{
    lower->len = value->len;

    if (value->len == 0) {
        lower->data = value->data;
        return NGX_OK;
    }

    if (value->len <= NGX_HTTP_EAS_VALUES_SCRATCH - values->used) {
        lower->data = values->scratch + values->used;
        values->used += value->len;

    } else {
        lower->data = ngx_pnalloc(r->pool, value->len);
        if (lower->data == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_http_eas_device_strlow(lower->data, value->data, value->len);

    return NGX_OK;
}


/*
 * ngx_strlow() eight bytes a step (every request lower-cases its
 * DeviceId and user): a byte from 'A' to 'Z' gets 0x20 added, any other
 * byte (bytes of 0x80 and above included) stays as it is.
 */

static void
ngx_http_eas_device_strlow(u_char *dst, u_char *src, size_t n)
{
    uint64_t  x, low, ge, gt, upper;

    static const uint64_t  ones = 0x0101010101010101ULL;

    while (n >= sizeof(uint64_t)) {
        ngx_memcpy(&x, src, sizeof(uint64_t));

        /* each byte's low seven bits plus a bias sets its high bit when
         * the byte is at least 'A', or above 'Z' */

        low = x & (0x7f * ones);
        ge = low + (0x80 - 'A') * ones;
        gt = low + (0x80 - 'Z' - 1) * ones;
        upper = ge & ~gt & ~x & (0x80 * ones);

        x |= upper >> 2;

        ngx_memcpy(dst, &x, sizeof(uint64_t));

        src += sizeof(uint64_t);
        dst += sizeof(uint64_t);
        n -= sizeof(uint64_t);
    }

    while (n--) {
        *dst++ = ngx_tolower(*src);
        src++;
    }
}


/*
 * eas_device_user_match: the query's User= must name the authenticated
 * user.  Only the user part is compared ("CONTOSO\jdoe" and
 * "jdoe@contoso.com" are the same user), without case: a NetBIOS domain
 * cannot be compared with a DNS one without asking the directory.
 * Nothing to compare without pre-authentication or without User=.
 */

static ngx_uint_t
ngx_http_eas_user_match(ngx_http_eas_ctx_t *ctx)
{
    size_t      n;
    eas_user_t  id;
    u_char      query[EAS_BASIC_USER_MAX];

    if (!ctx->authenticated || ctx->request.user.len == 0) {
        return 1;
    }

    /*
     * the identity is the folded name part, "name@domain" with a
     * directory of several domains (ngx_http_eas_user_identity()):
     * User= is folded the same way, its domain left aside
     */

    if (ngx_http_eas_user_identity(NULL, (u_char *) ctx->request.user.data,
                                   ctx->request.user.len, query,
                                   sizeof(query), &n)
        != NGX_OK
        || eas_user_split(ctx->user.data, ctx->user.len, &id) != EAS_OK)
    {
        return 0;
    }

    return n == id.name.len && ngx_memcmp(query, id.name.data, n) == 0;
}


/*
 * The inventory, and the max-devices rule that needs it.  State keyed
 * on a user changes only for an authenticated one: where pre-
 * authentication is configured and did not authenticate the request
 * (another module admitted it under "satisfy any"), the zone is not
 * written, and a device that would need a counted place is refused
 * (the limit cannot be kept for nobody).  eas_device_max without
 * pre-authentication is refused at nginx -t.
 */

static void
ngx_http_eas_device_record(ngx_http_request_t *r,
    ngx_http_eas_devices_conf_t *dcf, ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_device_values_t *values)
{
    size_t                        len;
    ngx_int_t                     rc;
    ngx_http_eas_device_update_t  u;
    ngx_http_eas_preauth_conf_t  *pcf;
    u_char                        seen[NGX_HTTP_EAS_DEVICES_SEEN_MAX];

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

    if (pcf->realm.len && !ctx->authenticated) {

        if (dcf->device_max && ctx->access == NGX_HTTP_EAS_ACCESS_ALLOWED) {
            ctx->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
            ctx->reason = ngx_http_eas_reason_unauthenticated;
        }

        return;
    }

    ngx_memzero(&u, sizeof(ngx_http_eas_device_update_t));

    u.user = values->value[NGX_HTTP_EAS_FIELD_USER];
    u.device_id = values->value[NGX_HTTP_EAS_FIELD_DEVICE_ID];
    u.device_type = values->value[NGX_HTTP_EAS_FIELD_DEVICE_TYPE];
    u.user_agent = values->value[NGX_HTTP_EAS_FIELD_USER_AGENT];
    u.reason = ctx->reason;
    u.version = ctx->request.version_code;
    u.command = ctx->request.command;
    u.access = ctx->access;
    u.max_devices = dcf->device_max;

    /* written by this connection this second: last_seen stays */

    if (ngx_http_eas_devices_seen(r, dcf->devices, &u, seen, &len)) {
        return;
    }

    rc = ngx_http_eas_device_update(dcf->devices, &u, r->connection->log);

    if (rc == NGX_OK) {
        ngx_http_eas_devices_seen_keep(r, dcf->devices, &u, seen, len);
    }

    /* no room to count the device: fail closed */

    if (u.zone_full) {
        ctx->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
        ctx->reason = ngx_http_eas_reason_full;
    }

    if (rc != NGX_OK) {
        return;
    }

    if (u.over_limit) {
        ctx->access = NGX_HTTP_EAS_ACCESS_BLOCKED;
        ctx->reason = ngx_http_eas_reason_max;
    }

    ngx_http_eas_redis_device_counted(r, dcf->devices, &u);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas device \"%V\" of \"%V\": %ui devices for the user",
                   &u.device_id, &u.user, u.user_devices);
}


/*
 * The device directives written in a location where "eas" is off
 * (ngx_http_eas_inert()): this names one, or is NULL.  Called in the
 * merge before anything is inherited: the fields still say what this
 * level set itself.  An inventory location names its zone with
 * "eas_devices" without "eas".
 */

char *
ngx_http_eas_devices_inert(ngx_conf_t *cf, ngx_http_eas_devices_conf_t *conf)
{
    if (!ngx_http_eas_inert_location(cf)) {
        return NULL;
    }

    if (conf->device_rules != NGX_CONF_UNSET_PTR
        && conf->device_rules != NULL)
    {
        return "eas_device_allow\", \"eas_device_block\" or "
               "\"eas_device_rules";
    }

    if (conf->device_lists != NGX_CONF_UNSET_PTR
        && conf->device_lists != NULL)
    {
        return "eas_device_user_lists";
    }

    if (conf->device_default != NGX_CONF_UNSET_UINT) {
        return "eas_device_default";
    }

    if (conf->device_max != NGX_CONF_UNSET_UINT && conf->device_max != 0) {
        return "eas_device_max";
    }

    if (conf->device_user_match == 1) {
        return "eas_device_user_match";
    }

    if (conf->devices != NGX_CONF_UNSET_PTR && conf->devices != NULL
        && !ngx_http_eas_inventory_location(cf))
    {
        return "eas_devices";
    }

    return NULL;
}


char *
ngx_http_eas_access_merge(ngx_conf_t *cf, ngx_http_eas_devices_conf_t *prev,
    ngx_http_eas_devices_conf_t *conf)
{
    ngx_http_eas_loc_conf_t      *elcf;
    ngx_http_eas_main_conf_t     *emcf;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_eas_preauth_conf_t  *pcf;

    /* the core and pre-authentication modules merged this level first */

    elcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_eas_module);
    pcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_eas_preauth_module);

    if (ngx_http_eas_rules_merge(cf, &conf->device_rules, prev->device_rules)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* like the rules, the lists are inherited only by a level without */

    if (conf->device_lists == NGX_CONF_UNSET_PTR) {
        conf->device_lists = (prev->device_lists == NGX_CONF_UNSET_PTR)
                             ? NULL : prev->device_lists;
    }

    ngx_conf_merge_uint_value(conf->device_default, prev->device_default,
                              NGX_HTTP_EAS_ACCESS_NONE);
    ngx_conf_merge_uint_value(conf->device_max, prev->device_max, 0);
    ngx_conf_merge_value(conf->device_user_match, prev->device_user_match,
                         0);
    ngx_conf_merge_uint_value(conf->device_status, prev->device_status, 0);

    /* the directory's lists come only with a directory's answer */

    if (elcf->enable && ngx_http_eas_ldap_lists_used(conf->device_lists)
        && (pcf->realm.len == 0 || pcf->ldap == NULL))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_device_user_lists directory\" needs "
                           "\"eas_preauth\" with \"eas_preauth_ldap\"");
        return NGX_CONF_ERROR;
    }

    /* list files name identities as this level's source makes them */

    if (elcf->enable
        && (ngx_http_eas_lists_check(cf, conf->device_lists, pcf) != NGX_OK
            || ngx_http_eas_rules_users_check(cf, conf->device_rules, pcf)
               != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    if (conf->device_max && conf->devices == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_device_max\" needs a zone: "
                           "add \"eas_devices\"");
        return NGX_CONF_ERROR;
    }

    /*
     * the query's User= is anyone's to send: nothing to count on (checked
     * in locations, where requests are; a server-level limit may rely on
     * each location's eas_preauth)
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (elcf->enable && conf->device_max && pcf->realm.len == 0
        && clcf->name.len)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_device_max\" counts the devices of "
                           "authenticated users: add \"eas_preauth\"");
        return NGX_CONF_ERROR;
    }

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eas_module);

    conf->device_check = (conf->devices || conf->device_rules
                          || conf->device_lists || emcf->admin_rules
                          || conf->device_default != NGX_HTTP_EAS_ACCESS_NONE
                          || conf->device_user_match);

    return NGX_CONF_OK;
}


/* eas_device_default allow | block; */

char *
ngx_http_eas_device_default(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_devices_conf_t *dcf = conf;

    ngx_str_t  *value;

    if (dcf->device_default != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "allow") == 0) {
        dcf->device_default = NGX_HTTP_EAS_ACCESS_ALLOWED;

    } else if (ngx_strcmp(value[1].data, "block") == 0) {
        dcf->device_default = NGX_HTTP_EAS_ACCESS_BLOCKED;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"allow\" or \"block\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
