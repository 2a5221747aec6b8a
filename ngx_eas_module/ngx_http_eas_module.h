
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_MODULE_H_INCLUDED_
#define _NGX_HTTP_EAS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "eas_proto.h"


/* methods EAS clients use: every command is a POST, discovery OPTIONS */
#define NGX_HTTP_EAS_DEFAULT_METHODS  (NGX_HTTP_POST|NGX_HTTP_OPTIONS)


typedef struct {
    ngx_flag_t            enable;
    ngx_uint_t            methods;        /* NGX_HTTP_* bit mask */
    ngx_str_t             allow;          /* "OPTIONS, POST" for 405 */
} ngx_http_eas_loc_conf_t;


/* what every step leaves for the later ones and for the log phase */
typedef struct {
    eas_request_t         request;
    ngx_str_t             user;           /* authenticated identity */
    ngx_str_t             reason;         /* $eas_reason; empty if none */
    unsigned              parsed:1;       /* request holds the fields */
    unsigned              authenticated:1; /* user was verified */
} ngx_http_eas_ctx_t;


ngx_int_t ngx_http_eas_parse_handler(ngx_http_request_t *r);
ngx_http_eas_ctx_t *ngx_http_eas_get_ctx(ngx_http_request_t *r);
void ngx_http_eas_identity(ngx_http_eas_ctx_t *ctx, ngx_str_t *user);
ngx_int_t ngx_http_eas_variables_add(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_eas_module;


#endif /* _NGX_HTTP_EAS_MODULE_H_INCLUDED_ */
