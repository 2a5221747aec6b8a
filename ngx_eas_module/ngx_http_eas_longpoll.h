
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_LONGPOLL_H_INCLUDED_
#define _NGX_HTTP_EAS_LONGPOLL_H_INCLUDED_


/*
 * The long-poll concern, its own nginx module in the shared object
 * (ngx_http_eas_longpoll_module.c: directives, configuration, phase
 * handlers; ngx_http_eas_longpoll.c: the held Pings and Syncs;
 * ngx_http_eas_body.c: the body read).  It includes only the core
 * header: the request context it reads and writes is the parser's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


typedef struct {
    ngx_flag_t            longpoll;          /* eas_longpoll */
    time_t                heartbeat_min;     /* seconds */
    time_t                heartbeat_max;
    ngx_msec_t            longpoll_margin;
    ngx_msec_t            command_timeout;
    size_t                longpoll_body_max;
} ngx_http_eas_longpoll_conf_t;


ngx_int_t ngx_http_eas_longpoll_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_longpoll_log_check(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_body_read(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler);
ngx_int_t ngx_http_eas_body_peeked(ngx_http_request_t *r, ngx_str_t *body);

extern ngx_module_t  ngx_http_eas_longpoll_module;


#endif /* _NGX_HTTP_EAS_LONGPOLL_H_INCLUDED_ */
