
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


/*
 * One script of the shared state sent: "EVAL script nkeys" put in
 * argv[0..2] here, the keys and arguments already in argv[3..argc) (the
 * first nkeys of them keys), on the command connection
 * (ngx_http_eas_redis_command(): NGX_DECLINED while Redis is down).
 */

ngx_int_t
ngx_http_eas_redis_eval(redisCallbackFn *handler, void *data,
    const char *script, size_t len, ngx_uint_t nkeys, int argc,
    const char **argv, size_t *argvlen)
{
    u_char  n[NGX_INT_T_LEN];

    argv[0] = "EVAL";
    argvlen[0] = sizeof("EVAL") - 1;
    argv[1] = script;
    argvlen[1] = len;
    argv[2] = (char *) n;
    argvlen[2] = ngx_sprintf(n, "%ui", nkeys) - n;

    /* formatted at once: n need not outlive the call */

    return ngx_http_eas_redis_command(handler, data, argc, argv, argvlen);
}
