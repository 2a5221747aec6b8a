
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_MODULE_H_INCLUDED_
#define _NGX_HTTP_EAS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "eas_proto.h"
#include "eas_basic.h"


/* a SHA-256 digest: cache keys, password-file and source identities */
#define NGX_HTTP_EAS_DIGEST_LEN  32


typedef struct ngx_http_eas_passwd_s  ngx_http_eas_passwd_t;


/* pre-authentication (ngx_http_eas_preauth.c, docs/authentication.md) */
typedef struct {
    ngx_str_t               realm;         /* empty: off */
    ngx_str_t               challenge;     /* Basic realm="..." */
    ngx_shm_zone_t         *zone;          /* eas_preauth_cache zone= */
    time_t                  valid;         /* positive cache lifetime */
    time_t                  invalid;       /* negative cache lifetime */
    ngx_http_eas_passwd_t  *file;          /* eas_preauth_user_file */
    ngx_str_t               uri;           /* eas_preauth_request */
    void                   *thread_pool;   /* ngx_thread_pool_t */
    ngx_flag_t              inline_check;  /* eas_preauth_thread_pool off */
    ngx_uint_t              user_limit;    /* 0: no user lockout */
    ngx_uint_t              address_limit; /* 0: no address lockout */
    time_t                  window;        /* failures are counted in */
    time_t                  lock_time;
    u_char                  source[NGX_HTTP_EAS_DIGEST_LEN]; /* of uri */
    unsigned                set:1;         /* eas_preauth at this level */
} ngx_http_eas_preauth_conf_t;


/* the pre-authentication zone (ngx_http_eas_cache.c) */
#define NGX_HTTP_EAS_CACHE_CREDENTIALS     0   /* node kinds */
#define NGX_HTTP_EAS_CACHE_USER            1
#define NGX_HTTP_EAS_CACHE_ADDRESS         2

#define NGX_HTTP_EAS_CACHE_MISS            0   /* lookup answers */
#define NGX_HTTP_EAS_CACHE_VALID           1
#define NGX_HTTP_EAS_CACHE_INVALID         2
#define NGX_HTTP_EAS_CACHE_USER_LOCKED     4
#define NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED  8


typedef struct {
    ngx_rbtree_node_t       rbnode;        /* key: crc32 of kind and data */
    ngx_queue_t             queue;
    time_t                  expire;        /* the node may go after it */
    time_t                  window_start;  /* user, address */
    time_t                  locked_until;  /* user, address; 0: not */
    ngx_uint_t              failures;      /* user, address */
    u_char                  kind;          /* NGX_HTTP_EAS_CACHE_USER... */
    u_char                  valid;         /* credentials */
    u_short                 len;
    u_char                  data[1];       /* digest, user or address */
} ngx_http_eas_cache_node_t;


typedef struct {
    ngx_rbtree_t            rbtree;
    ngx_rbtree_node_t       sentinel;
    ngx_queue_t             credentials;   /* LRU, most recent first */
    ngx_queue_t             counters;      /* users and addresses */
    u_char                  key[NGX_HTTP_EAS_DIGEST_LEN]; /* HMAC key */
    ngx_atomic_t            hits;
    ngx_atomic_t            misses;
    ngx_atomic_t            lockouts;
} ngx_http_eas_cache_sh_t;


typedef struct {
    ngx_http_eas_cache_sh_t  *sh;
    ngx_slab_pool_t          *shpool;
    void                     *inner;    /* EVP_MD_CTX: the HMAC key */
    void                     *outer;    /* hashed in, per process */
    void                     *work;
} ngx_http_eas_cache_ctx_t;             /* shm_zone->data */


/* methods EAS clients use: every command is a POST, discovery OPTIONS */
#define NGX_HTTP_EAS_DEFAULT_METHODS  (NGX_HTTP_POST|NGX_HTTP_OPTIONS)


typedef struct {
    ngx_flag_t            enable;
    ngx_uint_t            methods;        /* NGX_HTTP_* bit mask */
    ngx_str_t             allow;          /* "OPTIONS, POST" for 405 */
    ngx_http_eas_preauth_conf_t  preauth;
} ngx_http_eas_loc_conf_t;


/* what every step leaves for the later ones and for the log phase */
typedef struct {
    eas_request_t         request;
    ngx_str_t             user;           /* authenticated identity */
    ngx_str_t             reason;         /* $eas_reason; empty if none */
    unsigned              parsed:1;       /* request holds the fields */
    unsigned              authenticated:1; /* user was verified */
    ngx_str_t             auth;           /* $eas_auth: ok, cached, ... */
    void                 *preauth;        /* state of the pre-auth step */
} ngx_http_eas_ctx_t;


ngx_int_t ngx_http_eas_parse_handler(ngx_http_request_t *r);
ngx_http_eas_ctx_t *ngx_http_eas_get_ctx(ngx_http_request_t *r);
void ngx_http_eas_identity(ngx_http_eas_ctx_t *ctx, ngx_str_t *user);
ngx_int_t ngx_http_eas_variables_add(ngx_conf_t *cf);

ngx_int_t ngx_http_eas_preauth_handler(ngx_http_request_t *r);
char *ngx_http_eas_preauth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_eas_preauth_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_preauth_user_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_preauth_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_preauth_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_preauth_lockout(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_eas_preauth_create_conf(ngx_http_eas_preauth_conf_t *conf);
char *ngx_http_eas_preauth_merge_conf(ngx_conf_t *cf,
    ngx_http_eas_preauth_conf_t *prev, ngx_http_eas_preauth_conf_t *conf);

char *ngx_http_eas_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_shm_zone_t *ngx_http_eas_cache_add(ngx_conf_t *cf, ngx_str_t *name);
ngx_int_t ngx_http_eas_cache_digest(ngx_shm_zone_t *zone, u_char *source,
    ngx_str_t *user, ngx_str_t *password, u_char *digest);
ngx_uint_t ngx_http_eas_cache_lookup(ngx_shm_zone_t *zone, u_char *digest,
    ngx_str_t *user, ngx_str_t *addr, time_t *left);
ngx_uint_t ngx_http_eas_cache_update(ngx_shm_zone_t *zone, u_char *digest,
    ngx_uint_t valid, ngx_str_t *user, ngx_str_t *addr,
    ngx_http_eas_preauth_conf_t *pcf, ngx_uint_t *failures);
ngx_int_t ngx_http_eas_cache_clear(ngx_shm_zone_t *zone, ngx_uint_t kind,
    ngx_str_t *key);

ngx_http_eas_passwd_t *ngx_http_eas_passwd_open(ngx_conf_t *cf,
    ngx_str_t *name, ngx_flag_t plain);
void ngx_http_eas_passwd_refresh(ngx_http_eas_passwd_t *pw, ngx_log_t *log);
u_char *ngx_http_eas_passwd_source(ngx_http_eas_passwd_t *pw);
size_t ngx_http_eas_passwd_verify_size(void);
ngx_int_t ngx_http_eas_passwd_find(ngx_http_eas_passwd_t *pw,
    ngx_str_t *user, ngx_str_t *password, void *data);
void ngx_http_eas_passwd_verify(void *data);
ngx_int_t ngx_http_eas_passwd_result(void *data);
ngx_uint_t ngx_http_eas_passwd_unknown(void *data);


extern ngx_module_t  ngx_http_eas_module;
extern void         *ngx_http_eas_cache_tag;


#endif /* _NGX_HTTP_EAS_MODULE_H_INCLUDED_ */
