
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The device access module (docs/devices.md): the directives of device
 * access and of the device inventory, their location configuration and
 * its checks, and the registration of the device decision as the
 * precontent phase's second step.  The decision is
 * ngx_http_eas_access.c; the rules, the per-user lists, the zone and
 * its JSON listing are ngx_http_eas_rules.c, _lists.c, _devices.c and
 * _inventory.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_conf.h"


static ngx_int_t ngx_http_eas_devices_init(ngx_conf_t *cf);
static void *ngx_http_eas_devices_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_eas_devices_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_conf_num_bounds_t  ngx_http_eas_device_max_bounds = {
    ngx_http_eas_num_bounds, 0, 65535
};


static ngx_conf_num_bounds_t  ngx_http_eas_device_status_bounds = {
    ngx_http_eas_num_bounds, 400, 599
};


static ngx_command_t  ngx_http_eas_devices_commands[] = {

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
      offsetof(ngx_http_eas_devices_conf_t, device_max),
      &ngx_http_eas_device_max_bounds },

    { ngx_string("eas_device_user_match"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_devices_conf_t, device_user_match),
      NULL },

    { ngx_string("eas_device_block_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_eas_devices_conf_t, device_status),
      &ngx_http_eas_device_status_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_eas_devices_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_eas_devices_init,             /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_eas_devices_create_loc_conf,  /* create location configuration */
    ngx_http_eas_devices_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_eas_devices_module = {
    NGX_MODULE_V1,
    &ngx_http_eas_devices_module_ctx,      /* module context */
    ngx_http_eas_devices_commands,         /* module directives */
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
 * The device decision is the precontent phase's second step
 * (NGX_HTTP_EAS_STEP_DEVICES): after the core has held every refusal,
 * before the long-poll body is read.
 */

static ngx_int_t
ngx_http_eas_devices_init(ngx_conf_t *cf)
{
    if (!ngx_http_eas_uses(cf, NGX_HTTP_EAS_USES_DEVICES)) {
        return NGX_OK;
    }

    return ngx_http_eas_step_add(cf, NGX_HTTP_EAS_STEP_DEVICES,
                                 ngx_http_eas_devices_handler);
}


/* the device zone of the request's location ("eas_devices"), or NULL */

ngx_shm_zone_t *
ngx_http_eas_devices_zone(ngx_http_request_t *r)
{
    ngx_http_eas_devices_conf_t  *dcf;

    dcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_devices_module);

    return dcf->devices;
}


static void *
ngx_http_eas_devices_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_eas_devices_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_devices_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->device_check = 0;
     */

    conf->devices = NGX_CONF_UNSET_PTR;
    conf->device_rules = NGX_CONF_UNSET_PTR;
    conf->device_lists = NGX_CONF_UNSET_PTR;
    conf->device_default = NGX_CONF_UNSET_UINT;
    conf->device_max = NGX_CONF_UNSET_UINT;
    conf->device_user_match = NGX_CONF_UNSET;
    conf->device_status = NGX_CONF_UNSET_UINT;

    return conf;
}


/*
 * The core and pre-authentication modules come before this one in
 * "config": their settings of the level are merged, and the checks
 * that need them (eas_device_max without eas_preauth...) can read them.
 * A device directive in a location where "eas" is off would do nothing
 * (ngx_http_eas_inert()): reported once the rest of the level is
 * checked.
 */

static char *
ngx_http_eas_devices_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_eas_devices_conf_t *prev = parent;
    ngx_http_eas_devices_conf_t *conf = child;

    char  *inert;

    inert = ngx_http_eas_devices_inert(cf, conf);

    if (ngx_http_eas_devices_merge(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_eas_access_merge(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_eas_inventory_check(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (inert) {
        return ngx_http_eas_inert(cf, inert);
    }

    return NGX_CONF_OK;
}
