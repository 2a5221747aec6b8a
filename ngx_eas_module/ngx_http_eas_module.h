
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

    /* long-poll (ngx_http_eas_longpoll.c) */
    ngx_flag_t            longpoll;
    time_t                heartbeat_min;  /* seconds */
    time_t                heartbeat_max;
    ngx_msec_t            longpoll_margin;
    ngx_msec_t            command_timeout;
    size_t                longpoll_body_max;
} ngx_http_eas_loc_conf_t;


/* where $eas_heartbeat came from: $eas_heartbeat_source */
#define NGX_HTTP_EAS_HB_NONE          0
#define NGX_HTTP_EAS_HB_BODY          1
#define NGX_HTTP_EAS_HB_REMEMBERED    2
#define NGX_HTTP_EAS_HB_DEFAULT       3
#define NGX_HTTP_EAS_HB_UNREAD        4
#define NGX_HTTP_EAS_HB_MALFORMED     5
#define NGX_HTTP_EAS_HB_OUT_OF_RANGE  6


/* what every step leaves for the later ones and for the log phase */
typedef struct {
    eas_request_t         request;
    ngx_str_t             user;           /* authenticated identity */
    ngx_str_t             reason;         /* $eas_reason; empty if none */
    unsigned              parsed:1;       /* request holds the fields */
    unsigned              authenticated:1; /* user was verified */

    /* long-poll */
    time_t                heartbeat;      /* seconds held, or asked for */
    ngx_uint_t            heartbeat_source; /* NGX_HTTP_EAS_HB_* */
    unsigned              longpoll:1;     /* held: interval + margin */
    unsigned              longpoll_state:2;
    unsigned              timeouts_set:1; /* eas_upstream_timeouts ran */
} ngx_http_eas_ctx_t;


ngx_int_t ngx_http_eas_parse_handler(ngx_http_request_t *r);
ngx_http_eas_ctx_t *ngx_http_eas_get_ctx(ngx_http_request_t *r);
void ngx_http_eas_identity(ngx_http_eas_ctx_t *ctx, ngx_str_t *user);
ngx_int_t ngx_http_eas_variables_add(ngx_conf_t *cf);

ngx_int_t ngx_http_eas_longpoll_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_longpoll_log_check(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_longpoll_check(ngx_conf_t *cf,
    ngx_http_eas_loc_conf_t *elcf);
ngx_msec_t ngx_http_eas_longpoll_read_timeout(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_heartbeat_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_eas_heartbeat_source_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
char *ngx_http_eas_upstream_timeouts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void *ngx_http_eas_create_srv_conf(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_eas_module;


#endif /* _NGX_HTTP_EAS_MODULE_H_INCLUDED_ */
