
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_CACHE_H_INCLUDED_
#define _NGX_HTTP_EAS_CACHE_H_INCLUDED_


/*
 * The pre-authentication zone's own header, shared by its files:
 * ngx_http_eas_cache.c (the zone, its keys and nodes),
 * ngx_http_eas_cache_query.c (what the zone says before and after the
 * credential source is asked: cache, failure counters, lockouts,
 * known-good devices) and ngx_http_eas_cache_admin.c (what the admin
 * API and the directory source read and change).  Other files use the
 * prototypes of ngx_http_eas_module.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


#define NGX_HTTP_EAS_CACHE_EXPIRE  2      /* stale nodes freed per insert */
#define NGX_HTTP_EAS_CACHE_KNOWN_LEN  16  /* of a known device's key and
                                             secret: half a digest */

/* the zone's queues */
#define NGX_HTTP_EAS_CACHE_Q_CREDENTIALS  0
#define NGX_HTTP_EAS_CACHE_Q_COUNTERS     1   /* users and addresses */
#define NGX_HTTP_EAS_CACHE_Q_KNOWN        2

#define ngx_http_eas_cache_free(ctx, node)                                   \
    ngx_http_eas_zone_free(&(ctx)->zone, &(node)->zn)


ngx_http_eas_cache_node_t *ngx_http_eas_cache_find(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, u_char *key, size_t len);
ngx_http_eas_cache_node_t *ngx_http_eas_cache_get(
    ngx_http_eas_cache_ctx_t *ctx, ngx_uint_t kind, u_char *key, size_t len,
    time_t now);
uint32_t ngx_http_eas_cache_hash(ngx_uint_t kind, u_char *key, size_t len);
ngx_uint_t ngx_http_eas_cache_dropped(ngx_http_eas_cache_ctx_t *ctx,
    ngx_str_t *user, time_t verified);
time_t ngx_http_eas_cache_msec(void);
ngx_uint_t ngx_http_eas_cache_queue(ngx_uint_t kind);


#endif /* _NGX_HTTP_EAS_CACHE_H_INCLUDED_ */
