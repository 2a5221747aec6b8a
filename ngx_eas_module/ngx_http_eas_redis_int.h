
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_REDIS_INT_H_INCLUDED_
#define _NGX_HTTP_EAS_REDIS_INT_H_INCLUDED_


#include <hiredis/async.h>


/*
 * between ngx_http_eas_redis.c (configuration, zone), _redis_link.c
 * (connections) and _redis_state.c
 */

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
    ngx_array_t                 *lock_times;   /* of *_lock_time_t */
    time_t                       device_ttl;    /* inventory on Redis */
    ngx_msec_t                   flush;         /* last seen, batched */
    ngx_str_t                    gateway;       /* its name in records */
} ngx_http_eas_redis_conf_t;


/* the longest lockout this gateway sets in a pre-auth zone */
typedef struct {
    ngx_shm_zone_t              *zone;
    time_t                       lock_time;
} ngx_http_eas_redis_lock_time_t;


/* workers whose subscription eas_status tells, each its slot */
#define NGX_HTTP_EAS_REDIS_SLOTS  64

/* the gateway's small zone: whether Redis is up, the counters */
typedef struct {
    ngx_atomic_t                 up;
    ngx_atomic_t                 downs;        /* changes to down */
    ngx_atomic_t                 fallbacks;    /* decisions without it */
    ngx_atomic_t                 commands;
    ngx_atomic_t                 inventory[4]; /* _redis_inventory.c */
    ngx_atomic_t                 subscribed[NGX_HTTP_EAS_REDIS_SLOTS];
                                              /* pids, _redis_sub.c */
} ngx_http_eas_redis_sh_t;


/* one of a worker's two connections */
typedef struct {
    redisAsyncContext           *ac;
    ngx_connection_t            *conn;
    ngx_event_t                  retry;
    ngx_event_t                  watch;
    ngx_msec_t                   backoff;
    ngx_msec_t                   busy_since;
    ngx_msec_t                   ready_since;  /* set up, answered */
    ngx_uint_t                   inflight;
    void                        *calls;        /* waiting for replies, */
    void                        *last;         /* oldest first */
    const char                  *why;          /* of the last drop */
    unsigned                     subscriber:1;
    unsigned                     connected:1;
    unsigned                     ready:1;
    unsigned                     in_write:1;
    unsigned                     want_write:1;
} ngx_http_eas_redis_link_t;


/* this worker's configuration and zone (ngx_http_eas_redis_link.c) */
extern ngx_http_eas_redis_conf_t  *ngx_http_eas_redis_conf;
extern ngx_http_eas_redis_sh_t    *ngx_http_eas_redis_sh;

ngx_int_t ngx_http_eas_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_eas_redis_exit_process(ngx_cycle_t *cycle);
void ngx_http_eas_redis_state(ngx_uint_t up, const char *why);
ngx_http_eas_redis_conf_t *ngx_http_eas_redis_get_conf(void);
time_t ngx_http_eas_redis_lock_time(ngx_shm_zone_t *zone);
ngx_int_t ngx_http_eas_redis_attach(redisAsyncContext *ac,
    ngx_http_eas_redis_link_t *link);
ngx_int_t ngx_http_eas_redis_command(redisCallbackFn *handler, void *data,
    int argc, const char **argv, const size_t *argvlen);
ngx_int_t ngx_http_eas_redis_eval(redisCallbackFn *handler, void *data,
    const char *script, size_t len, ngx_uint_t nkeys, int argc,
    const char **argv, size_t *argvlen);
void ngx_http_eas_redis_event(u_char *msg, size_t len);
void ngx_http_eas_redis_read(ngx_http_eas_redis_link_t *link);
ngx_int_t ngx_http_eas_redis_send(ngx_http_eas_redis_link_t *link,
    redisCallbackFn *handler, void *data, int argc, const char **argv,
    const size_t *argvlen);
void ngx_http_eas_redis_drop(ngx_http_eas_redis_link_t *link,
    const char *why);

/* the subscribed connection past its setup (ngx_http_eas_redis_sub.c) */
ngx_int_t ngx_http_eas_redis_sub_message(ngx_http_eas_redis_link_t *link,
    redisReply *rr);
void ngx_http_eas_redis_sub_lost(void);
ngx_uint_t ngx_http_eas_redis_sub_count(ngx_uint_t *workers);
ngx_shm_zone_t *ngx_http_eas_redis_zone_find(u_char *name, size_t len,
    void *tag);
ngx_atomic_t *ngx_http_eas_redis_counters(void);
ngx_uint_t ngx_http_eas_redis_ready(void);

/*
 * between ngx_http_eas_redis_state.c (lockouts), _redis_unlock.c and
 * _redis_events.c (eas_device_max, Ping, the channel)
 */

#define NGX_HTTP_EAS_REDIS_FIELDS    6

#define NGX_HTTP_EAS_REDIS_ASKING    1
#define NGX_HTTP_EAS_REDIS_ANSWERED  2
#define NGX_HTTP_EAS_REDIS_USED      3

#define NGX_HTTP_EAS_REDIS_ALLOWED   0
#define NGX_HTTP_EAS_REDIS_ULOCKED   1
#define NGX_HTTP_EAS_REDIS_ALOCKED   2
#define NGX_HTTP_EAS_REDIS_UBUSY     3
#define NGX_HTTP_EAS_REDIS_ABUSY     4
#define NGX_HTTP_EAS_REDIS_FALLBACK  5


/*
 * One verification's place on Redis.  Held by the request until its
 * pool goes, and by Redis while a reservation is asked: freed by the
 * last of the two.
 */
typedef struct {
    ngx_http_request_t          *request;
    ngx_event_t                  timer;
    ngx_shm_zone_t              *zone;
    ngx_str_t                    user;
    ngx_str_t                    addr;
    ngx_uint_t                   user_limit;
    ngx_uint_t                   address_limit;
    time_t                       window;
    time_t                       lock_time;
    ngx_uint_t                   state;
    ngx_uint_t                   answer;
    time_t                       left;
    unsigned                     asked:1;      /* Redis holds it */
    unsigned                     reserved:1;   /* a try held on Redis */
    unsigned                     verifying:1;  /* the source is asked */
} ngx_http_eas_redis_try_t;


typedef struct {
    ngx_http_eas_redis_try_t    *try;          /* preauth */
    ngx_http_eas_redis_try_t    *device;       /* eas_device_max */
} ngx_http_eas_redis_ctx_t;


ngx_http_eas_redis_ctx_t *ngx_http_eas_redis_ctx(
    ngx_http_request_t *r, ngx_uint_t create);
ngx_http_eas_redis_try_t *ngx_http_eas_redis_try(
    ngx_http_request_t *r, ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *addr);
void ngx_http_eas_redis_resume(ngx_http_eas_redis_try_t *t);
u_char *ngx_http_eas_redis_key(u_char *p, const char *kind,
    ngx_shm_zone_t *zone, ngx_str_t *key);

/*
 * The shared device inventory: written (ngx_http_eas_redis_inventory.c)
 * and read back (ngx_http_eas_redis_import.c)
 */

#define NGX_HTTP_EAS_INV_CHUNK   32      /* records a script, a message */
#define NGX_HTTP_EAS_INV_NUMS    11

/* the longest record: the gateway's name, numbers, the strings at their
 * slots' length */
#define NGX_HTTP_EAS_INV_RECORD                                               \
    (6 + NGX_HTTP_EAS_DEVICE_GATEWAY_LEN                                      \
     + 2 + NGX_HTTP_EAS_INV_NUMS * (NGX_TIME_T_LEN + 1) + EAS_USER_MAX        \
     + EAS_DEVICE_ID_MAX + NGX_HTTP_EAS_DEVICE_TYPE_LEN                       \
     + NGX_HTTP_EAS_DEVICE_UA_LEN + NGX_HTTP_EAS_DEVICE_REASON_LEN)

/* "<prefix>i:<zone>:<n>:" and the key, or "<prefix>d:<zone>:<user>" */
#define NGX_HTTP_EAS_INV_KEY                                                  \
    (64 + 8 + 256 + 8 + EAS_USER_MAX + EAS_DEVICE_ID_MAX)


/* its counters, in the shared state's zone (ngx_http_eas_redis_counters) */
#define NGX_HTTP_EAS_INV_WRITTEN   0       /* records sent */
#define NGX_HTTP_EAS_INV_DROPPED   1       /* not sent: Redis down */
#define NGX_HTTP_EAS_INV_IMPORTED  2       /* from other gateways */
#define NGX_HTTP_EAS_INV_REFUSED   3       /* records not understood */

ngx_int_t ngx_http_eas_redis_inventory_param(ngx_http_eas_redis_conf_t *rcf,
    ngx_str_t *v);
ngx_int_t ngx_http_eas_redis_inv_start(void);
u_char *ngx_http_eas_redis_inv_key(u_char *p,
    ngx_http_eas_redis_conf_t *rcf, const char *kind, ngx_shm_zone_t *zone,
    ngx_str_t *user, ngx_str_t *device_id);
void ngx_http_eas_redis_inv_count(ngx_uint_t counter, ngx_uint_t n);
void ngx_http_eas_redis_inv_refused(ngx_uint_t n);
ngx_uint_t ngx_http_eas_redis_inv_refused_max(ngx_uint_t access,
    u_char *reason, size_t len);
void ngx_http_eas_redis_inv_lost(ngx_shm_zone_t *zone, redisReply *set,
    redisReply *device);
u_char *ngx_http_eas_redis_inv_unwrap(u_char *p, u_char *last);
void ngx_http_eas_redis_inv_gateway_set(void *ctx, void *node);
void ngx_http_eas_redis_inventory_event(char type, ngx_str_t *zone,
    ngx_str_t *s2, ngx_str_t *s3);
void ngx_http_eas_redis_inventory_fill(void);
void ngx_http_eas_redis_inv_replay(void);
void ngx_http_eas_redis_inv_exiting(void);
void ngx_http_eas_redis_inv_pending_exit(void);
void ngx_http_eas_redis_inv_flush_now(void);
void ngx_http_eas_redis_inv_rewrite(void);

/* a record read back (ngx_http_eas_redis_inv_record.c) */
typedef struct {
    time_t                       first_seen;
    time_t                       last_seen;
    ngx_uint_t                   n[NGX_HTTP_EAS_INV_NUMS];
    ngx_str_t                    user;
    ngx_str_t                    device_id;
    ngx_str_t                    device_type;
    ngx_str_t                    user_agent;
    ngx_str_t                    reason;
} ngx_http_eas_inv_record_t;

u_char *ngx_http_eas_redis_inv_frame(u_char *p, u_char *last, size_t *len);
ngx_int_t ngx_http_eas_redis_inv_parse(u_char *p, u_char *last,
    ngx_http_eas_inv_record_t *rec);
ngx_int_t ngx_http_eas_redis_lock_key(ngx_uint_t kind, ngx_str_t *key);
u_char *ngx_http_eas_redis_inventory_status(u_char *p,
    ngx_uint_t prometheus);

/* the runtime rules (ngx_http_eas_redis_rules_sync.c, _rules_read.c) */
void ngx_http_eas_redis_rules_sync(void);
void ngx_http_eas_redis_rules_event(ngx_str_t *zname, ngx_str_t *field,
    ngx_str_t *value);


extern ngx_module_t  ngx_http_eas_redis_module;


#endif /* _NGX_HTTP_EAS_REDIS_INT_H_INCLUDED_ */
