
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


static ngx_int_t ngx_http_eas_device_record(ngx_http_request_t *r,
    ngx_http_eas_loc_conf_t *elcf, ngx_http_eas_ctx_t *ctx,
    ngx_str_t *user);


/*
 * Step 3 of the request flow: the device access decision.  OPTIONS and
 * anything without a DeviceId are not subject to it.  NGX_DECLINED
 * lets the request go on.
 */

ngx_int_t
ngx_http_eas_device_access(ngx_http_request_t *r)
{
    ngx_str_t                 user;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (!elcf->enable || elcf->devices == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->parsed || ctx->request.device_id.len == 0
        || ctx->access != NGX_HTTP_EAS_ACCESS_NONE)
    {
        return NGX_DECLINED;
    }

    ngx_http_eas_identity(ctx, &user);

    ctx->access = NGX_HTTP_EAS_ACCESS_ALLOWED;

    return ngx_http_eas_device_record(r, elcf, ctx, &user);
}


static ngx_int_t
ngx_http_eas_device_record(ngx_http_request_t *r,
    ngx_http_eas_loc_conf_t *elcf, ngx_http_eas_ctx_t *ctx, ngx_str_t *user)
{
    ngx_http_eas_device_update_t  u;

    ngx_memzero(&u, sizeof(ngx_http_eas_device_update_t));

    u.user = *user;
    u.device_id.data = (u_char *) ctx->request.device_id.data;
    u.device_id.len = ctx->request.device_id.len;
    u.device_type.data = (u_char *) ctx->request.device_type.data;
    u.device_type.len = ctx->request.device_type.len;

    if (r->headers_in.user_agent) {
        u.user_agent = r->headers_in.user_agent->value;
    }

    u.reason = ctx->reason;
    u.version = ctx->request.version_code;
    u.command = ctx->request.command;
    u.access = ctx->access;

    if (ngx_http_eas_device_update(elcf->devices, &u, r->connection->log)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas device \"%V\" of \"%V\": %ui devices for the user",
                   &u.device_id, user, u.user_devices);

    return NGX_DECLINED;
}
