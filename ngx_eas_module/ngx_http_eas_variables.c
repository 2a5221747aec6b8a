
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"


/* which field of the parsed request a variable shows */
typedef enum {
    NGX_HTTP_EAS_VAR_CMD = 0,
    NGX_HTTP_EAS_VAR_USER,
    NGX_HTTP_EAS_VAR_DEVICE_ID,
    NGX_HTTP_EAS_VAR_DEVICE_TYPE,
    NGX_HTTP_EAS_VAR_VERSION,
    NGX_HTTP_EAS_VAR_POLICY_KEY,
    NGX_HTTP_EAS_VAR_QUERY_FORM,
    NGX_HTTP_EAS_VAR_LOCALE,
    NGX_HTTP_EAS_VAR_PARAM
} ngx_http_eas_var_e;


/* unset before the preaccess phase, set after it: never cached */
#define ngx_http_eas_request_var(name, field)                                \
    { ngx_string(name), NULL, ngx_http_eas_request_variable,                 \
      NGX_HTTP_EAS_VAR_##field, NGX_HTTP_VAR_NOCACHEABLE, 0 }

#define ngx_http_eas_param_var(name, param)                                  \
    { ngx_string(name), NULL, ngx_http_eas_request_variable,                 \
      NGX_HTTP_EAS_VAR_PARAM + EAS_PARAM_##param,                            \
      NGX_HTTP_VAR_NOCACHEABLE, 0 }


static ngx_int_t ngx_http_eas_request_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_eas_reason_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_eas_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_eas_access_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_eas_auth_source_state_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_eas_set_value(ngx_http_variable_value_t *v,
    const u_char *data, size_t len);


static ngx_http_variable_t  ngx_http_eas_vars[] = {

    ngx_http_eas_request_var("eas_cmd", CMD),
    ngx_http_eas_request_var("eas_user", USER),
    ngx_http_eas_request_var("eas_device_id", DEVICE_ID),
    ngx_http_eas_request_var("eas_device_type", DEVICE_TYPE),
    ngx_http_eas_request_var("eas_protocol_version", VERSION),
    ngx_http_eas_request_var("eas_policy_key", POLICY_KEY),
    ngx_http_eas_request_var("eas_query_form", QUERY_FORM),
    ngx_http_eas_request_var("eas_locale", LOCALE),
    ngx_http_eas_param_var("eas_attachment_name", ATTACHMENT_NAME),
    ngx_http_eas_param_var("eas_collection_id", COLLECTION_ID),
    ngx_http_eas_param_var("eas_collection_name", COLLECTION_NAME),
    ngx_http_eas_param_var("eas_item_id", ITEM_ID),
    ngx_http_eas_param_var("eas_long_id", LONG_ID),
    ngx_http_eas_param_var("eas_parent_id", PARENT_ID),
    ngx_http_eas_param_var("eas_occurrence", OCCURRENCE),
    ngx_http_eas_param_var("eas_save_in_sent", SAVE_IN_SENT),
    ngx_http_eas_param_var("eas_accept_multipart", ACCEPT_MULTIPART),

    { ngx_string("eas_reason"), NULL, ngx_http_eas_reason_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("eas_auth"), NULL, ngx_http_eas_auth_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("eas_auth_user"), NULL, ngx_http_eas_auth_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("eas_access"), NULL, ngx_http_eas_access_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* ngx_http_eas_verdict.c */

    { ngx_string("eas_backend_status"), NULL,
      ngx_http_eas_backend_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("eas_backend_status_name"), NULL,
      ngx_http_eas_backend_status_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("eas_auth_source_state"), NULL,
      ngx_http_eas_auth_source_state_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    /* ngx_http_eas_longpoll.c */

    { ngx_string("eas_heartbeat"), NULL, ngx_http_eas_heartbeat_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("eas_heartbeat_source"), NULL,
      ngx_http_eas_heartbeat_source_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_eas_variables_add(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_eas_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* fields of the parsed request; not found outside EAS requests */

static ngx_int_t
ngx_http_eas_request_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char              *p;
    eas_str_t           *s;
    eas_request_t       *req;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->parsed) {
        v->not_found = 1;
        return NGX_OK;
    }

    req = &ctx->request;

    switch (data) {

    case NGX_HTTP_EAS_VAR_CMD:
        s = &req->command_name;
        break;

    case NGX_HTTP_EAS_VAR_USER:
        s = &req->user;
        break;

    case NGX_HTTP_EAS_VAR_DEVICE_ID:
        s = &req->device_id;
        break;

    case NGX_HTTP_EAS_VAR_DEVICE_TYPE:
        s = &req->device_type;
        break;

    case NGX_HTTP_EAS_VAR_VERSION:
        s = &req->version;
        break;

    case NGX_HTTP_EAS_VAR_POLICY_KEY:
        s = &req->policy_key;
        break;

    case NGX_HTTP_EAS_VAR_QUERY_FORM:
        if (req->form == EAS_FORM_PLAIN) {
            ngx_http_eas_set_value(v, (u_char *) "plain", 5);

        } else if (req->form == EAS_FORM_BASE64) {
            ngx_http_eas_set_value(v, (u_char *) "base64", 6);

        } else {
            v->not_found = 1;
        }

        return NGX_OK;

    case NGX_HTTP_EAS_VAR_LOCALE:
        if (!req->has_locale) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, sizeof("0x0000") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(p, "0x%04xd", (ngx_int_t) req->locale);
        ngx_http_eas_set_value(v, p, sizeof("0x0000") - 1);

        return NGX_OK;

    default:
        s = &req->params[data - NGX_HTTP_EAS_VAR_PARAM];
        break;
    }

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_eas_set_value(v, s->data, s->len);

    return NGX_OK;
}


/* why the request was refused, by whichever step refused it */

static ngx_int_t
ngx_http_eas_reason_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->reason.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_eas_set_value(v, ctx->reason.data, ctx->reason.len);

    return NGX_OK;
}


/* the pre-auth outcome (data 0) or the authenticated identity (1) */

static ngx_int_t
ngx_http_eas_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t           *s;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = data ? (ctx->authenticated ? &ctx->user : NULL) : &ctx->auth;

    if (s == NULL || s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_eas_set_value(v, s->data, s->len);

    return NGX_OK;
}


/*
 * The location's password file: "ok", or "stale" when it changed and
 * could not be read again (the previous contents are still in use)
 */

static ngx_int_t
ngx_http_eas_auth_source_state_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_eas_preauth_conf_t  *pcf;

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

    if (pcf->realm.len == 0 || pcf->file == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ngx_http_eas_passwd_stale(pcf->file)) {
        ngx_http_eas_set_value(v, (u_char *) "stale", sizeof("stale") - 1);

    } else {
        ngx_http_eas_set_value(v, (u_char *) "ok", sizeof("ok") - 1);
    }

    return NGX_OK;
}


/* the device access decision: "allowed" or "blocked" */

static ngx_int_t
ngx_http_eas_access_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->access == NGX_HTTP_EAS_ACCESS_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ctx->access == NGX_HTTP_EAS_ACCESS_ALLOWED) {
        ngx_http_eas_set_value(v, (u_char *) "allowed", 7);

    } else {
        ngx_http_eas_set_value(v, (u_char *) "blocked", 7);
    }

    return NGX_OK;
}


static void
ngx_http_eas_set_value(ngx_http_variable_value_t *v, const u_char *data,
    size_t len)
{
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) data;
}
