
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The pre-authentication module (docs/authentication.md): the
 * directives of the pre-authentication concern and its credential
 * sources, its location configuration, the registration of its phase
 * handlers, the access handler that runs step 2 and remembers a
 * refusal, and the log-phase check of stores that disagree.  The
 * directives are parsed in ngx_http_eas_preauth_conf.c (the directory's
 * in ngx_http_eas_ldap_conf.c), the step itself is
 * ngx_http_eas_preauth.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"


static ngx_int_t ngx_http_eas_preauth_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_eas_preauth_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_eas_preauth_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_preauth_log_check(ngx_http_request_t *r);
static void *ngx_http_eas_preauth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_eas_preauth_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_http_eas_preauth_throttle_t  ngx_http_eas_preauth_disagree;


static ngx_command_t  ngx_http_eas_preauth_commands[] = {

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
      offsetof(ngx_http_eas_preauth_conf_t, timeout),
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

      ngx_null_command
};


static ngx_http_module_t  ngx_http_eas_preauth_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_eas_preauth_init,             /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_eas_preauth_create_loc_conf,  /* create location configuration */
    ngx_http_eas_preauth_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_eas_preauth_module = {
    NGX_MODULE_V1,
    &ngx_http_eas_preauth_module_ctx,      /* module context */
    ngx_http_eas_preauth_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_eas_preauth_init_module,      /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_eas_ldap_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * The access handler joins the access phase as auth_basic's does; the
 * log check runs after the request is logged.
 */

static ngx_int_t
ngx_http_eas_preauth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (!ngx_http_eas_uses(cf, NGX_HTTP_EAS_USES_PREAUTH)) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_preauth_access_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_preauth_log_check;

    return NGX_OK;
}


/* run by "nginx -t" too, once the whole configuration is known */

static ngx_int_t
ngx_http_eas_preauth_init_module(ngx_cycle_t *cycle)
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
ngx_http_eas_preauth_access_handler(ngx_http_request_t *r)
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


/*
 * The log phase: the edge accepted the credentials and the backend
 * refused them.  The two credential stores disagree (a source answering
 * yes to everyone, a password changed in one store only): a warning an
 * operator sees, with the user and the source, at most one per worker
 * every NGX_HTTP_EAS_PREAUTH_LOG_EVERY seconds.
 */

static ngx_int_t
ngx_http_eas_preauth_log_check(ngx_http_request_t *r)
{
    ngx_str_t                     source;
    ngx_http_eas_ctx_t           *ctx;
    ngx_http_eas_preauth_conf_t  *pcf;

    if (r != r->main || r->upstream == NULL
        || r->upstream->headers_in.status_n != NGX_HTTP_UNAUTHORIZED)
    {
        return NGX_OK;
    }

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->authenticated) {
        return NGX_OK;
    }

    if (ngx_http_eas_preauth_throttle(&ngx_http_eas_preauth_disagree)
        != NGX_OK)
    {
        return NGX_OK;
    }

    pcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_preauth_module);

    if (pcf->file) {
        source = *ngx_http_eas_passwd_name(pcf->file);

    } else if (pcf->ldap) {
        source = *ngx_http_eas_ldap_name(pcf->ldap);

    } else if (pcf->uri.len) {
        source = pcf->uri;

    } else {
        ngx_str_set(&source, "none");
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "eas: backend answered 401 to user \"%V\" accepted at "
                  "the edge (auth=%V, credential source \"%V\"): the "
                  "credential stores disagree (%ui more not logged)",
                  &ctx->user, &ctx->auth, &source,
                  ngx_http_eas_preauth_disagree.skipped);

    ngx_http_eas_preauth_disagree.skipped = 0;

    return NGX_OK;
}


/* NGX_OK: write the warning now (t->skipped were not written before) */

ngx_int_t
ngx_http_eas_preauth_throttle(ngx_http_eas_preauth_throttle_t *t)
{
    time_t  now;

    now = ngx_time();

    if (t->logged && now - t->logged < NGX_HTTP_EAS_PREAUTH_LOG_EVERY) {
        t->skipped++;
        return NGX_DECLINED;
    }

    t->logged = now;

    return NGX_OK;
}


static void *
ngx_http_eas_preauth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_eas_preauth_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_preauth_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    ngx_http_eas_preauth_create_conf(conf);

    return conf;
}


/*
 * "eas_preauth" in a location where "eas" is off would do nothing
 * (ngx_http_eas_inert()): reported once the rest of the level is
 * checked.
 */

static char *
ngx_http_eas_preauth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_eas_preauth_conf_t *prev = parent;
    ngx_http_eas_preauth_conf_t *conf = child;

    if (ngx_http_eas_preauth_merge_conf(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->set && ngx_http_eas_inert_location(cf)) {
        return ngx_http_eas_inert(cf, "eas_preauth");
    }

    return NGX_CONF_OK;
}
