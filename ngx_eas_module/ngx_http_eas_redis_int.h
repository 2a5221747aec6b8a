
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_REDIS_INT_H_INCLUDED_
#define _NGX_HTTP_EAS_REDIS_INT_H_INCLUDED_


#include <hiredis/async.h>


/* between ngx_http_eas_redis.c (connections) and _redis_state.c */

typedef struct {
    ngx_flag_t                   enabled;
    ngx_str_t                    url;           /* as written, for logs */
    char                        *host;          /* resolved, as text */
    in_port_t                    port;
    ngx_uint_t                   db;
    ngx_str_t                    prefix;
    ngx_str_t                    password;
    ngx_str_t                    channel;       /* prefix + "events" */
    ngx_str_t                    node;          /* this gateway, hex */
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   timeout;
    ngx_msec_t                   retry;         /* longest backoff */
    ngx_uint_t                   lockout_refuse;
    ngx_shm_zone_t              *shm_zone;
} ngx_http_eas_redis_conf_t;


ngx_http_eas_redis_conf_t *ngx_http_eas_redis_get_conf(void);
ngx_int_t ngx_http_eas_redis_command(redisCallbackFn *handler, void *data,
    int argc, const char **argv, const size_t *argvlen);
void ngx_http_eas_redis_event(u_char *msg, size_t len);


extern ngx_module_t  ngx_http_eas_redis_module;


#endif /* _NGX_HTTP_EAS_REDIS_INT_H_INCLUDED_ */
