
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_REDIS_RULES_INT_H_INCLUDED_
#define _NGX_HTTP_EAS_REDIS_RULES_INT_H_INCLUDED_


/*
 * between the three files of the runtime rules shared through Redis:
 * ngx_http_eas_redis_rules.c (a change sent, the admin API's answer),
 * _redis_rules_sync.c (reconciliation, retries) and _redis_rules_read.c
 * (notifications, reads of the keys named, applying); included after
 * ngx_http_eas_redis_int.h and ngx_http_eas_admin_rules.h
 */


#define NGX_HTTP_EAS_REDIS_RULES_BATCH   32
#define NGX_HTTP_EAS_REDIS_RULES_RETRY   1000     /* ms */
#define NGX_HTTP_EAS_REDIS_RULES_PENDING 256      /* keys to read */
#define NGX_HTTP_EAS_REDIS_RULES_READ    64       /* keys a command */
#define NGX_HTTP_EAS_REDIS_RULES_FIELD   (1 + EAS_USER_MAX)
#define NGX_HTTP_EAS_REDIS_RULES_KEY     256
#define NGX_HTTP_EAS_REDIS_RULES_VALUE   (sizeof("block  ") + 2 * NGX_INT_T_LEN\
                                          + NGX_HTTP_EAS_ADMIN_WHO_LEN     \
                                          + EAS_USER_MAX)

/* NGX_HTTP_EAS_ADMIN_SKEW in the scripts' text */
#define NGX_HTTP_EAS_REDIS_RULES_STR(x)  #x
#define NGX_HTTP_EAS_REDIS_RULES_XSTR(x) NGX_HTTP_EAS_REDIS_RULES_STR(x)
#define NGX_HTTP_EAS_REDIS_RULES_SKEW                                     \
    NGX_HTTP_EAS_REDIS_RULES_XSTR(NGX_HTTP_EAS_ADMIN_SKEW)


ngx_shm_zone_t *ngx_http_eas_redis_rules_zone(void);
ngx_int_t ngx_http_eas_redis_rules_eval(redisCallbackFn *handler,
    void *data, const char *script, size_t len, ngx_shm_zone_t *zone,
    int argc, const char **argv, size_t *argvlen);
ngx_int_t ngx_http_eas_redis_rules_send(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_entry_t *e, uint64_t *stamps, ngx_uint_t n,
    ngx_uint_t online, redisCallbackFn *handler, void *data);
void ngx_http_eas_redis_rules_later(void);
ngx_int_t ngx_http_eas_redis_rules_taken(redisReply *rr);
ngx_int_t ngx_http_eas_redis_rules_take(ngx_shm_zone_t *zone,
    ngx_str_t *field, ngx_str_t *value, ngx_uint_t own, const char **why);
ngx_int_t ngx_http_eas_redis_rules_entries(ngx_shm_zone_t *zone,
    redisReply *blob, const char *where, ngx_uint_t *changed,
    ngx_uint_t own);
void ngx_http_eas_redis_rules_read_back(ngx_str_t *zname, ngx_str_t *field);
ngx_int_t ngx_http_eas_redis_rules_number(u_char **pp, u_char *last,
    uint64_t max, uint64_t *n);
void ngx_http_eas_redis_rules_junk(const char *where, const char *why);


#endif /* _NGX_HTTP_EAS_REDIS_RULES_INT_H_INCLUDED_ */
