
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The core module, ngx_http_eas_module (docs/design.md): its definition
 * and directive table, the main and location configuration and their
 * merge, the phase handlers it registers (the parse step, the refusals
 * held at the start of the precontent phase, the metrics' log step) and
 * the order of the precontent steps the modules of the concerns add
 * (ngx_http_eas_step_add()).  Its directive helpers are in
 * ngx_http_eas_conf.c; pre-authentication, device access and long-poll
 * are modules of their own (ngx_http_eas_preauth_module.c,
 * _devices_module.c, _longpoll_module.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"
#include "ngx_http_eas_conf.h"


static ngx_int_t ngx_http_eas_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_eas_init(ngx_conf_t *cf);
static ngx_uint_t ngx_http_eas_parse_refusal(ngx_http_eas_ctx_t *ctx);
static void *ngx_http_eas_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_eas_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_eas_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_eas_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_str_t  ngx_http_eas_reason_method =
    ngx_string("method_not_allowed");


/* the precontent steps registered in this configuration, by step */
static ngx_http_handler_pt  ngx_http_eas_steps[NGX_HTTP_EAS_STEPS];


static ngx_conf_enum_t  ngx_http_eas_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_eas_commands[] = {

    { ngx_string("eas"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_loc_conf_t, enable),
      NULL },

    { ngx_string("eas_methods"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eas_methods,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_loc_conf_t, log_level),
      &ngx_http_eas_log_levels },

    { ngx_string("eas_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_eas_status,
      0,
      0,
      NULL },

    { ngx_string("eas_metrics"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_eas_main_conf_t, metrics),
      NULL },

    { ngx_string("eas_admin_rules"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_eas_admin_rules,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_eas_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_console"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_eas_console,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_upstream_timeouts"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS,
      ngx_http_eas_upstream_timeouts,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_eas_module_ctx = {
    ngx_http_eas_preconfiguration,         /* preconfiguration */
    ngx_http_eas_init,                     /* postconfiguration */

    ngx_http_eas_create_main_conf,         /* create main configuration */
    ngx_http_eas_init_main_conf,           /* init main configuration */

    ngx_http_eas_create_srv_conf,          /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_eas_create_loc_conf,          /* create location configuration */
    ngx_http_eas_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_eas_module = {
    NGX_MODULE_V1,
    &ngx_http_eas_module_ctx,              /* module context */
    ngx_http_eas_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_eas_metrics_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_eas_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_eas_variables_add(cf);
}


/*
 * Parsing joins the location's rewrite phase.  Handlers of a phase run
 * last-registered first, and this module registers after the rewrite
 * module, so the request is parsed before the location's own "if",
 * "set" and "return" run: those can use $eas_* variables, and a
 * malformed request is refused before anything else looks at it.
 */

static ngx_int_t
ngx_http_eas_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /* before the concerns' modules ask which ones are used */

    ngx_http_eas_uses_find(cf);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_parse_handler;

    /*
     * refusals held, the precontent phase's first step: the device
     * decision and the long-poll body come after it (their modules add
     * them), where neither "satisfy any" nor an internal redirect can
     * skip them
     */

    ngx_memzero(ngx_http_eas_steps, sizeof(ngx_http_eas_steps));

    if (ngx_http_eas_step_add(cf, NGX_HTTP_EAS_STEP_REFUSALS,
                              ngx_http_eas_enforce_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_eas_uses(cf, NGX_HTTP_EAS_USES_METRICS)) {
        h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = ngx_http_eas_metrics_log;
    }

    if (ngx_http_eas_answer_init(cf) != NGX_OK
        || ngx_http_eas_metrics_init(cf) != NGX_OK
        || ngx_http_eas_verdict_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * the upstream module has set every balancer: wrap its peer.init,
     * for the read timeout of long-polls only
     */

    if (!ngx_http_eas_uses(cf, NGX_HTTP_EAS_USES_LONGPOLL)) {
        return NGX_OK;
    }

    return ngx_http_eas_upstream_wrap(cf);
}


/*
 * A step of the precontent phase, added by its module's
 * postconfiguration.  nginx runs a phase's handlers last-registered
 * first: a step goes before, in the array, the steps that run ahead of
 * it, so they run in the order of NGX_HTTP_EAS_STEP_*, whichever module
 * comes first in "config"; other modules' handlers keep their places.
 */

ngx_int_t
ngx_http_eas_step_add(ngx_conf_t *cf, ngx_uint_t step,
    ngx_http_handler_pt handler)
{
    ngx_uint_t                  i, k, n;
    ngx_array_t                *a;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    a = &cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers;

    if (ngx_array_push(a) == NULL) {
        return NGX_ERROR;
    }

    h = a->elts;
    n = a->nelts - 1;

    for (i = 0; i < n; i++) {
        for (k = 0; k < step; k++) {
            if (ngx_http_eas_steps[k] != NULL
                && h[i] == ngx_http_eas_steps[k])
            {
                goto found;
            }
        }
    }

found:

    ngx_memmove(&h[i + 1], &h[i], (n - i) * sizeof(ngx_http_handler_pt));
    h[i] = handler;

    ngx_http_eas_steps[step] = handler;

    return NGX_OK;
}


/*
 * The precontent phase's first step, for every main request, before
 * the device decision, the long-poll handler and try_files.  Access
 * modules can admit a request under "satisfy any", and an error_page,
 * X-Accel-Redirect, try_files or "rewrite ... last" can take a request
 * to another location after the edge refused it, or before its checks
 * ran; nothing of that may let a refused request reach a content
 * handler (proxy_pass, fastcgi_pass, grpc_pass...), which would forward
 * it.  So, here:
 *
 *   - a request the edge refused (malformed, pre-authentication,
 *     device) is refused again with the same status in any location
 *     with a content handler; a static error page or "return" still
 *     answers it.  A pre-authentication 401 under "satisfy any" that
 *     another access module overrode in the same location is no
 *     refusal (the "either" of satisfy any); a lockout always is;
 *   - a request that an "eas on" location parsed but that left it
 *     before its checks ran ("rewrite ... last") is refused (403) in a
 *     location without "eas on" that has a content handler;
 *   - in an "eas on" location, nothing: the device decision (step 3)
 *     is the next step, ngx_http_eas_devices_module's.
 *
 * The context survives internal redirects (ngx_http_eas_get_ctx).
 */

ngx_int_t
ngx_http_eas_enforce_handler(ngx_http_request_t *r)
{
    ngx_http_eas_ctx_t        *ctx;
    ngx_http_eas_loc_conf_t   *elcf;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_eas_main_conf_t  *emcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->refused && ctx->refused_soft
        && ctx->refused_pass == r->uri_changes)
    {
        /* satisfy any: another access module admitted it right here */
        ctx->refused = 0;
        ctx->refused_soft = 0;
    }

    if (ctx->refused == 0) {
        ctx->refused = ngx_http_eas_parse_refusal(ctx);
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (ctx->refused) {
        if (clcf->handler == NULL) {
            return NGX_DECLINED;
        }

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: request refused with %ui is not passed to "
                      "location \"%V\"", ctx->refused, &clcf->name);

        return ctx->refused;
    }

    if (!elcf->enable) {
        if (ctx->checked || clcf->handler == NULL) {
            return NGX_DECLINED;
        }

        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: request left its \"eas on\" location before "
                      "its checks, not passed to location \"%V\"",
                      &clcf->name);

        ctx->refused = NGX_HTTP_FORBIDDEN;

        return NGX_HTTP_FORBIDDEN;
    }

    /* no device step anywhere: its decision, "go on", is made here */

    emcf = ngx_http_get_module_main_conf(r, ngx_http_eas_module);

    if (!(emcf->uses & NGX_HTTP_EAS_USES_DEVICES)) {
        ctx->checked = 1;
    }

    return NGX_DECLINED;
}


/*
 * A request the parse step refused (in the rewrite phase) has a reason
 * and no parsed fields; an OPTIONS with an unreadable query has neither.
 */

static ngx_uint_t
ngx_http_eas_parse_refusal(ngx_http_eas_ctx_t *ctx)
{
    if (ctx->parsed || ctx->reason.len == 0) {
        return 0;
    }

    if (ctx->reason.len == ngx_http_eas_reason_method.len
        && ngx_strncmp(ctx->reason.data, ngx_http_eas_reason_method.data,
                       ctx->reason.len)
           == 0)
    {
        return NGX_HTTP_NOT_ALLOWED;
    }

    return NGX_HTTP_BAD_REQUEST;
}


static void *
ngx_http_eas_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_eas_main_conf_t  *emcf;

    emcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_main_conf_t));
    if (emcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     emcf->admin_rules = NULL;
     *     emcf->uses = 0;
     */

    if (ngx_array_init(&emcf->levels, cf->pool, 16, sizeof(void **))
        != NGX_OK)
    {
        return NULL;
    }

    emcf->metrics = NGX_CONF_UNSET;

    return emcf;
}


static char *
ngx_http_eas_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_eas_main_conf_t *emcf = conf;

    ngx_conf_init_value(emcf->metrics, 1);

    return NGX_CONF_OK;
}


static void *
ngx_http_eas_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_eas_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->allow = { 0, NULL };
     *     conf->admin = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->methods = NGX_CONF_UNSET_UINT;
    conf->log_level = NGX_CONF_UNSET_UINT;

    return conf;
}


/*
 * The core comes first in "config": the modules of the concerns merge
 * each level after it, and find "eas" merged there
 * (ngx_http_eas_inert_location()).
 */

static char *
ngx_http_eas_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_eas_loc_conf_t *prev = parent;
    ngx_http_eas_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_NOTICE);

    if (conf->methods == NGX_CONF_UNSET_UINT) {
        conf->methods = prev->methods;
        conf->allow = prev->allow;
    }

    if (conf->methods == NGX_CONF_UNSET_UINT) {
        conf->methods = NGX_HTTP_EAS_DEFAULT_METHODS;
    }

    if (conf->allow.len == 0) {
        if (ngx_http_eas_allow_header(cf, conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_eas_admin_check(cf, conf) != NGX_OK
        || ngx_http_eas_console_check(cf, conf) != NGX_OK
        || ngx_http_eas_uses_level(cf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
