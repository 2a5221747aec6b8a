
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The core module, ngx_http_eas_module (docs/design.md): its definition
 * and directive table, the main and location configuration and their
 * merge, the phase handlers it registers (the parse step, the access
 * handler that runs the pre-authentication, the enforcement of step 3,
 * the log-phase checks) and the check run once the whole configuration
 * is known.  Its directive helpers are in ngx_http_eas_conf.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"
#include "ngx_http_eas_conf.h"


static ngx_int_t ngx_http_eas_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_eas_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_eas_access_handler(ngx_http_request_t *r);
static void *ngx_http_eas_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_eas_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_eas_init_module(ngx_cycle_t *cycle);
static void *ngx_http_eas_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_eas_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_conf_num_bounds_t  ngx_http_eas_device_max_bounds = {
    ngx_http_eas_num_bounds, 0, 65535
};


static ngx_conf_num_bounds_t  ngx_http_eas_device_status_bounds = {
    ngx_http_eas_num_bounds, 400, 599
};


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

    { ngx_string("eas_preauth_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_cache_zone,
      0,
      0,
      NULL },

    { ngx_string("eas_preauth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_preauth,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_preauth_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eas_preauth_cache,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_preauth_user_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
                        |NGX_CONF_TAKE12,
      ngx_http_eas_preauth_user_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_preauth_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_eas_preauth_request,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_preauth_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_loc_conf_t, preauth.timeout),
      NULL },

    { ngx_string("eas_ldap_server"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_eas_ldap_server,
      0,
      0,
      NULL },

    { ngx_string("eas_preauth_ldap"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_preauth_ldap,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_preauth_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_preauth_thread_pool,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_preauth_lockout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eas_preauth_lockout,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_device_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_eas_device_zone,
      0,
      0,
      NULL },

    { ngx_string("eas_devices"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_devices,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_device_inventory"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_eas_device_inventory,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* the offset of a rule directive is the access it gives */

    { ngx_string("eas_device_allow"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eas_device_rule,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_EAS_ACCESS_ALLOWED,
      NULL },

    { ngx_string("eas_device_block"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_eas_device_rule,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_EAS_ACCESS_BLOCKED,
      NULL },

    { ngx_string("eas_device_rules"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_device_rules,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_device_user_lists"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_device_user_lists,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_device_default"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_eas_device_default,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("eas_device_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_loc_conf_t, device_max),
      &ngx_http_eas_device_max_bounds },

    { ngx_string("eas_device_user_match"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_loc_conf_t, device_user_match),
      NULL },

    { ngx_string("eas_device_block_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_loc_conf_t, device_status),
      &ngx_http_eas_device_status_bounds },

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
    ngx_http_eas_init_module,              /* init module */
    ngx_http_eas_metrics_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_eas_ldap_exit_process,        /* exit process */
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

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_parse_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_access_handler;

    /*
     * The device decision, and every refusal of the edge held, where
     * neither "satisfy any" nor an internal redirect can skip them
     * (ngx_http_eas_access.c); the long-poll module puts its handler
     * right after this one (ngx_http_eas_longpoll_module.c)
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_enforce_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_preauth_log_check;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_metrics_log;

    if (ngx_http_eas_answer_init(cf) != NGX_OK
        || ngx_http_eas_metrics_init(cf) != NGX_OK
        || ngx_http_eas_verdict_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the upstream module has set every balancer: wrap its peer.init */

    return ngx_http_eas_upstream_wrap(cf);
}


/* run by "nginx -t" too, once the whole configuration is known */

static ngx_int_t
ngx_http_eas_init_module(ngx_cycle_t *cycle)
{
    ngx_http_eas_passwd_check_user(cycle);

    return NGX_OK;
}


/*
 * Step 2 of the request flow: pre-authentication, composed like
 * auth_basic: NGX_OK for good credentials (under "satisfy any" that is
 * enough), 401 for missing or wrong ones (another access module may
 * still admit the request under "satisfy any"), NGX_DECLINED where no
 * pre-authentication is configured.  A refusal is remembered in the
 * context: a lockout or a source error holds whatever "satisfy" says,
 * and no refusal is handed to a content handler after an internal
 * redirect (ngx_http_eas_enforce_handler).  Step 3, device access, runs
 * in the precontent phase.  Subrequests are not checked.
 */

static ngx_int_t
ngx_http_eas_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_eas_ctx_t        *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    static ngx_str_t  locked = ngx_string("locked");

    if (r != r->main) {
        return NGX_DECLINED;
    }

    rc = ngx_http_eas_preauth_handler(r);

    if (rc < NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->refused) {
        return rc;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ctx->refused = rc;
    ctx->refused_pass = r->uri_changes;

    /* a lockout holds even where another module would admit the request */

    ctx->refused_soft = (clcf->satisfy == NGX_HTTP_SATISFY_ANY
                         && rc == NGX_HTTP_UNAUTHORIZED
                         && !(ctx->auth.len == locked.len
                              && ngx_strncmp(ctx->auth.data, locked.data,
                                             locked.len)
                                 == 0));

    return rc;
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
     */

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
     *     conf->device_check = 0;
     *     conf->admin = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->methods = NGX_CONF_UNSET_UINT;
    conf->devices = NGX_CONF_UNSET_PTR;
    conf->device_rules = NGX_CONF_UNSET_PTR;
    conf->device_lists = NGX_CONF_UNSET_PTR;
    conf->device_default = NGX_CONF_UNSET_UINT;
    conf->device_max = NGX_CONF_UNSET_UINT;
    conf->device_user_match = NGX_CONF_UNSET;
    conf->device_status = NGX_CONF_UNSET_UINT;
    conf->log_level = NGX_CONF_UNSET_UINT;

    ngx_http_eas_preauth_create_conf(&conf->preauth);

    return conf;
}


static char *
ngx_http_eas_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_eas_loc_conf_t *prev = parent;
    ngx_http_eas_loc_conf_t *conf = child;

    char                      *inert;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_NOTICE);

    inert = ngx_http_eas_inert_directive(cf, conf);

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

    if (ngx_http_eas_preauth_merge_conf(cf, &prev->preauth, &conf->preauth)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eas_devices_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eas_access_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eas_inventory_check(cf, conf) != NGX_OK
        || ngx_http_eas_admin_check(cf, conf) != NGX_OK
        || ngx_http_eas_console_check(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (inert) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" has no effect in location \"%V\" "
                           "where \"eas\" is off: add \"eas on\" to it",
                           inert, &clcf->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

