
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The long-poll module (docs/directpush.md): the directives of the
 * long-poll concern, their configuration and its checks, and the
 * registration of its phase handlers.  The work itself is in
 * ngx_http_eas_longpoll.c (held Pings and Syncs) and
 * ngx_http_eas_body.c (the body read).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_longpoll.h"


static ngx_int_t ngx_http_eas_longpoll_init(ngx_conf_t *cf);
static void *ngx_http_eas_longpoll_create_conf(ngx_conf_t *cf);
static char *ngx_http_eas_longpoll_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_eas_longpoll_commands[] = {

    { ngx_string("eas_longpoll"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_longpoll_conf_t, longpoll),
      NULL },

    { ngx_string("eas_heartbeat_min"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_longpoll_conf_t, heartbeat_min),
      NULL },

    { ngx_string("eas_heartbeat_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_longpoll_conf_t, heartbeat_max),
      NULL },

    { ngx_string("eas_longpoll_margin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_longpoll_conf_t, longpoll_margin),
      NULL },

    { ngx_string("eas_command_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_longpoll_conf_t, command_timeout),
      NULL },

    { ngx_string("eas_longpoll_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_longpoll_conf_t, longpoll_body_max),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_eas_longpoll_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_eas_longpoll_init,            /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_eas_longpoll_create_conf,     /* create location configuration */
    ngx_http_eas_longpoll_merge_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_eas_longpoll_module = {
    NGX_MODULE_V1,
    &ngx_http_eas_longpoll_module_ctx,     /* module context */
    ngx_http_eas_longpoll_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * The long-poll handler is the precontent phase's last step
 * (NGX_HTTP_EAS_STEP_LONGPOLL): after every access check, the device
 * decision included, so that no body is read for a refused request.
 */

static ngx_int_t
ngx_http_eas_longpoll_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (!ngx_http_eas_uses(cf, NGX_HTTP_EAS_USES_LONGPOLL)) {
        return NGX_OK;
    }

    if (ngx_http_eas_step_add(cf, NGX_HTTP_EAS_STEP_LONGPOLL,
                              ngx_http_eas_longpoll_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_eas_longpoll_log_check;

    return NGX_OK;
}


static void *
ngx_http_eas_longpoll_create_conf(ngx_conf_t *cf)
{
    ngx_http_eas_longpoll_conf_t  *conf;

    conf = ngx_palloc(cf->pool, sizeof(ngx_http_eas_longpoll_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->longpoll = NGX_CONF_UNSET;
    conf->heartbeat_min = NGX_CONF_UNSET;
    conf->heartbeat_max = NGX_CONF_UNSET;
    conf->longpoll_margin = NGX_CONF_UNSET_MSEC;
    conf->command_timeout = NGX_CONF_UNSET_MSEC;
    conf->longpoll_body_max = NGX_CONF_UNSET_SIZE;

    return conf;
}


/* Exchange's range: 60..3540 s, configurable within 1..3540 s */

static char *
ngx_http_eas_longpoll_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_eas_longpoll_conf_t *prev = parent;
    ngx_http_eas_longpoll_conf_t *conf = child;

    ngx_conf_merge_value(conf->longpoll, prev->longpoll, 0);
    ngx_conf_merge_sec_value(conf->heartbeat_min, prev->heartbeat_min, 60);
    ngx_conf_merge_sec_value(conf->heartbeat_max, prev->heartbeat_max, 3540);
    ngx_conf_merge_msec_value(conf->longpoll_margin, prev->longpoll_margin,
                              30000);
    ngx_conf_merge_msec_value(conf->command_timeout, prev->command_timeout,
                              120000);
    ngx_conf_merge_size_value(conf->longpoll_body_max,
                              prev->longpoll_body_max, 16384);

    if (conf->heartbeat_min < 1 || conf->heartbeat_min > 3540) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_heartbeat_min\" must be between 1s and "
                           "3540s, not %Ts", conf->heartbeat_min);
        return NGX_CONF_ERROR;
    }

    if (conf->heartbeat_max < 1 || conf->heartbeat_max > 3540) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_heartbeat_max\" must be between 1s and "
                           "3540s, not %Ts", conf->heartbeat_max);
        return NGX_CONF_ERROR;
    }

    if (conf->heartbeat_min > conf->heartbeat_max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_heartbeat_min\" %Ts is above "
                           "\"eas_heartbeat_max\" %Ts",
                           conf->heartbeat_min, conf->heartbeat_max);
        return NGX_CONF_ERROR;
    }

    if (conf->command_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_command_timeout\" must not be 0");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
