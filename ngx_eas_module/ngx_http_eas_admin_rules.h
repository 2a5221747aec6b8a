
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_ADMIN_RULES_H_INCLUDED_
#define _NGX_HTTP_EAS_ADMIN_RULES_H_INCLUDED_


/*
 * The runtime device decisions' own header, shared by
 * ngx_http_eas_admin_rules.c (the directive, the zone, the decision for
 * one request), ngx_http_eas_admin_rules_change.c (the changes, the
 * removals kept and expired, the listing) and
 * ngx_http_eas_admin_rules_file.c (the file read back and rewritten).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


#define NGX_HTTP_EAS_ADMIN_DEVICE  'd'
#define NGX_HTTP_EAS_ADMIN_USER    'u'

#define NGX_HTTP_EAS_ADMIN_LOST    NGX_HTTP_EAS_ADMIN_LOST_ACCESS

/* the largest time of a change, in ms (15 digits): larger is junk */
#define NGX_HTTP_EAS_ADMIN_STAMP_MAX  999999999999999ULL

/*
 * A time more than NGX_HTTP_EAS_ADMIN_SKEW ms ahead of the clock that
 * reads it (a gateway's, or Redis's in its scripts) is no real change
 * (forged, or of a clock run wild): it counts as ..._STAMP_FUTURE,
 * older than any real change (docs/scale-out.md, "Clocks")
 */
#define NGX_HTTP_EAS_ADMIN_SKEW          3600000
#define NGX_HTTP_EAS_ADMIN_STAMP_FUTURE  1

#define NGX_HTTP_EAS_ADMIN_KEY     (1 + EAS_USER_MAX)
#define NGX_HTTP_EAS_ADMIN_WHO     NGX_HTTP_EAS_ADMIN_WHO_LEN


typedef struct {
    ngx_str_node_t                sn;             /* str: the key */
    ngx_queue_t                   queue;          /* in file order */
    time_t                        since;
    uint64_t                      stamp;          /* ms: since, finer */
    ngx_uint_t                    line;           /* in the file */
    u_char                        access;         /* ..._ACCESS_*, LOST;
                                                     NONE: deleted, kept
                                                     for the gateways */
    u_char                        who_len;
    u_short                       len;            /* of the key */
    u_char                        who[NGX_HTTP_EAS_ADMIN_WHO];
    u_char                        data[1];        /* key, then value */
} ngx_http_eas_admin_node_t;


typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   queue;
    ngx_atomic_t                  count;
    ngx_atomic_t                  generation;     /* of the contents */
    ngx_atomic_t                  saved;          /* the file's */
} ngx_http_eas_admin_sh_t;


/* a rule read from the file at configuration time */
typedef struct {
    ngx_http_eas_admin_rule_t     rule;
    uint64_t                      stamp;          /* ms */
} ngx_http_eas_admin_loaded_t;


typedef struct {
    ngx_http_eas_admin_sh_t      *sh;
    ngx_slab_pool_t              *shpool;
    ngx_str_t                     file;
    ngx_array_t                  *loaded;         /* of ..._loaded_t */
    uint64_t                      keep;           /* ms: removals kept */
    void                         *thread_pool;    /* ngx_thread_pool_t */
} ngx_http_eas_admin_ctx_t;


#define NGX_HTTP_EAS_ADMIN_KEEP  (30 * 86400)    /* s: keep_removals= */


ngx_int_t ngx_http_eas_admin_load(ngx_conf_t *cf,
    ngx_http_eas_admin_ctx_t *ctx);
ngx_int_t ngx_http_eas_admin_save(ngx_http_eas_admin_ctx_t *ctx,
    ngx_log_t *log);

/* the file's steps (..._file.c), and its write in a thread (_thread.c) */
ngx_int_t ngx_http_eas_admin_tmp(ngx_http_eas_admin_ctx_t *ctx, u_char *tmp,
    ngx_log_t *log);
ngx_int_t ngx_http_eas_admin_snapshot(ngx_http_eas_admin_ctx_t *ctx,
    u_char **out, size_t *len, ngx_uint_t *generation, ngx_log_t *log);
ngx_int_t ngx_http_eas_admin_put_file(ngx_str_t *file, u_char *tmp,
    u_char *buf, size_t len, ngx_err_t *err, const char **step);
void ngx_http_eas_admin_put_failed(ngx_http_eas_admin_ctx_t *ctx,
    u_char *tmp, const char *step, ngx_err_t err, ngx_log_t *log);
void ngx_http_eas_admin_save_later(ngx_http_eas_admin_ctx_t *ctx,
    ngx_log_t *log);
void ngx_http_eas_admin_dirty(ngx_http_eas_admin_ctx_t *ctx);
void ngx_http_eas_admin_expire(ngx_http_eas_admin_ctx_t *ctx);
ngx_uint_t ngx_http_eas_admin_expired(ngx_shm_zone_t *zone,
    uint64_t stamp);
uint64_t ngx_http_eas_admin_real(uint64_t stamp);

/*
 * Called with the zone locked: a rule put (..._change.c); a rule's key,
 * and its node looked up (ngx_http_eas_admin_rules.c).
 */
ngx_int_t ngx_http_eas_admin_put(ngx_http_eas_admin_ctx_t *ctx,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp);
void ngx_http_eas_admin_key(u_char field, ngx_str_t *value, u_char *key,
    size_t *len);
ngx_http_eas_admin_node_t *ngx_http_eas_admin_find(
    ngx_http_eas_admin_sh_t *sh, u_char *key, size_t len);

/*
 * Several gateways (ngx_http_eas_redis_rules.c): a rule as another
 * gateway made it, applied if it is newer than this zone's (NGX_OK; it
 * is not announced again; own: this gateway's change as Redis keeps
 * it, whose time is taken), and this zone's rules and deletions copied
 * out, from "from" on (returns how many, up to n).
 */
ngx_int_t ngx_http_eas_admin_apply(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp, ngx_uint_t own);
ngx_uint_t ngx_http_eas_admin_entries(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_entry_t *out, uint64_t *stamps, ngx_uint_t from,
    ngx_uint_t n);

/* "allow", "block", "lost": ..._ACCESS_*, ..._LOST; else NGX_ERROR */
ngx_uint_t ngx_http_eas_admin_access_parse(ngx_str_t *name);

/* the hooks of ngx_http_eas_redis_rules.c: shared, and a change made */
ngx_uint_t ngx_http_eas_redis_rules_shared(void);
void ngx_http_eas_redis_rules_push(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp, ngx_log_t *log);
ngx_int_t ngx_http_eas_redis_rules_answer(ngx_http_request_t *r,
    const char *error);
ngx_int_t ngx_http_eas_redis_rules_refused(ngx_http_request_t *r,
    ngx_uint_t status, const char *error);


#endif /* _NGX_HTTP_EAS_ADMIN_RULES_H_INCLUDED_ */
