
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_REDIS_H_INCLUDED_
#define _NGX_HTTP_EAS_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


/*
 * Shared state on Redis (docs/scale-out.md): the gateway's own module,
 * ngx_http_eas_redis_module.  The rest of ngx_eas calls in through the
 * hooks below, one line each; every hook does nothing without
 * "eas_shared_state".
 */


/* a lookup answer of ngx_http_eas_redis_lookup(): Redis was asked */
#define NGX_HTTP_EAS_CACHE_ASKED  128


/* preauth: a try the cache reserved is reserved on Redis too */
ngx_uint_t ngx_http_eas_redis_lookup(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_cache_query_t *q,
    ngx_uint_t found);

/* preauth: the source answered (valid or not), or gave no answer */
void ngx_http_eas_redis_answer(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_cache_query_t *q,
    ngx_uint_t valid);
void ngx_http_eas_redis_release(ngx_http_request_t *r, ngx_uint_t failed);

/*
 * admin: a lockout lifted (key NULL: every lockout of the zone).  With
 * a key and a request, NGX_DONE: "done" answers it once Redis did
 * (lifted: "found", or Redis had it; NGX_ERROR: Redis refused or did
 * not answer); otherwise the caller answers with "found".
 */
typedef ngx_int_t (*ngx_http_eas_redis_unlocked_pt)(ngx_http_request_t *r,
    ngx_uint_t kind, ngx_str_t *key, ngx_int_t lifted);

ngx_int_t ngx_http_eas_redis_unlock(ngx_http_request_t *r,
    ngx_shm_zone_t *zone, ngx_uint_t kind, ngx_str_t *key, ngx_uint_t found,
    ngx_http_eas_redis_unlocked_pt done);

/*
 * admin: every lockout of the zone lifted on Redis and the other
 * gateways ("n" lifted here).  NGX_DONE: "done" answers the request
 * once the walk ended (shared NGX_OK), once "timeout" passed with the
 * walk under way (NGX_AGAIN: it goes on), or when Redis refused or did
 * not answer (NGX_ERROR); NGX_DECLINED: Redis is down (or not
 * configured: NGX_ABORT), the caller answers.
 */
typedef ngx_int_t (*ngx_http_eas_redis_lifted_pt)(ngx_http_request_t *r,
    ngx_uint_t n, ngx_int_t shared);

ngx_int_t ngx_http_eas_redis_unlock_every(ngx_http_request_t *r,
    ngx_shm_zone_t *zone, ngx_uint_t n, ngx_http_eas_redis_lifted_pt done);

/* devices: a device counted here for eas_device_max; its verdict */
void ngx_http_eas_redis_device_counted(ngx_http_request_t *r,
    ngx_shm_zone_t *devices, ngx_http_eas_device_update_t *u);
ngx_int_t ngx_http_eas_redis_device(ngx_http_request_t *r,
    ngx_shm_zone_t *devices, ngx_http_eas_device_values_t *values);
ngx_int_t ngx_http_eas_redis_device_delete(ngx_shm_zone_t *devices,
    ngx_str_t *user, ngx_str_t *device_id);
ngx_uint_t ngx_http_eas_redis_inv_room(ngx_uint_t n);

/* devices: a record updated here; one deleted by the admin API */
void ngx_http_eas_redis_inventory_seen(ngx_shm_zone_t *devices,
    ngx_http_eas_device_update_t *u);
ngx_int_t ngx_http_eas_redis_inventory_delete(ngx_shm_zone_t *devices,
    ngx_str_t *user, ngx_str_t *device_id);
void ngx_http_eas_redis_inventory_stale(ngx_shm_zone_t *devices,
    ngx_http_eas_device_t *deleted, ngx_uint_t n);

/* longpoll: a Ping of this device is now the newest */
void ngx_http_eas_redis_ping(ngx_shm_zone_t *devices, ngx_str_t *user,
    ngx_str_t *device_id);

/* status: its part of eas_status, JSON or Prometheus; 1 up, 0 down */
u_char *ngx_http_eas_redis_status(u_char *p, ngx_uint_t prometheus);
ngx_int_t ngx_http_eas_redis_up(void);

/* inventory: the name of this gateway in the records it writes */
void ngx_http_eas_redis_gateway(ngx_str_t *name);


#endif /* _NGX_HTTP_EAS_REDIS_H_INCLUDED_ */
