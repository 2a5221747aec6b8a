
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_CONF_H_INCLUDED_
#define _NGX_HTTP_EAS_CONF_H_INCLUDED_


/*
 * The core module's directive helpers (ngx_http_eas_conf.c), for its
 * directive table and location merge in ngx_http_eas_module.c.
 * ngx_http_eas_zone_add(), which every concern uses, is in
 * ngx_http_eas_module.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


char *ngx_http_eas_methods(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_eas_allow_header(ngx_conf_t *cf,
    ngx_http_eas_loc_conf_t *elcf);
char *ngx_http_eas_num_bounds(ngx_conf_t *cf, void *post, void *data);


#endif /* _NGX_HTTP_EAS_CONF_H_INCLUDED_ */
