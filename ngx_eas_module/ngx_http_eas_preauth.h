
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_PREAUTH_H_INCLUDED_
#define _NGX_HTTP_EAS_PREAUTH_H_INCLUDED_


/*
 * The pre-authentication concern, its own nginx module in the shared
 * object, and its header, shared by its files:
 * ngx_http_eas_preauth_module.c (directives, configuration, phase
 * handlers), ngx_http_eas_preauth_conf.c (the directives parsed and
 * merged), ngx_http_eas_preauth.c (the step: credentials, lockout,
 * cache, the answer), ngx_http_eas_preauth_busy.c (its 503 answers),
 * ngx_http_eas_preauth_source.c (the credential
 * sources behind one interface: a thread task for the password file and
 * the directory, a subrequest for eas_preauth_request) and
 * ngx_http_eas_memo.c (a connection's memo of its Authorization header
 * and credential digests).  It includes only the core header; the
 * credential cache, the password file and the directory are declared
 * there and in their own headers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


/* the location configuration of ngx_http_eas_preauth_module */
struct ngx_http_eas_preauth_conf_s {
    ngx_str_t               realm;         /* empty: off */
    ngx_str_t               challenge;     /* Basic realm="..." */
    ngx_shm_zone_t         *zone;          /* eas_preauth_cache zone= */
    time_t                  valid;         /* positive cache lifetime */
    time_t                  invalid;       /* negative cache lifetime */
    ngx_http_eas_passwd_t  *file;          /* eas_preauth_user_file */
    ngx_str_t               uri;           /* eas_preauth_request */
    ngx_flag_t              any_answer;    /* answer=status */
    ngx_msec_t              timeout;       /* eas_preauth_timeout */
    void                   *thread_pool;   /* ngx_thread_pool_t */
    ngx_flag_t              inline_check;  /* eas_preauth_thread_pool off */
    ngx_uint_t              user_limit;    /* 0: no user lockout */
    ngx_uint_t              address_limit; /* 0: no address lockout */
    time_t                  window;        /* failures are counted in */
    time_t                  lock_time;
    time_t                  known;         /* a known-good device lasts */
    ngx_http_eas_ldap_t    *ldap;          /* eas_preauth_ldap */
    time_t                  grace;         /* of the directory, 0: none */
    u_char                  source[NGX_HTTP_EAS_DIGEST_LEN]; /* of uri */
    unsigned                set:1;         /* eas_preauth at this level */
};


#define NGX_HTTP_EAS_PREAUTH_RUNNING  1   /* thread task or subrequest */
#define NGX_HTTP_EAS_PREAUTH_DONE     2   /* the source answered */
#define NGX_HTTP_EAS_PREAUTH_DECIDED  3   /* rc holds the answer */

/* at most one warning of a kind per worker in this time */
#define NGX_HTTP_EAS_PREAUTH_LOG_EVERY  10

#define NGX_HTTP_EAS_PREAUTH_QUEUE_FULL  1
#define NGX_HTTP_EAS_PREAUTH_TIMED_OUT   2


typedef struct {
    time_t                  logged;
    ngx_uint_t              skipped;
} ngx_http_eas_preauth_throttle_t;
#define NGX_HTTP_EAS_PREAUTH_BUSY_RETRY  5  /* s, Retry-After of "busy" */



typedef struct {
    ngx_uint_t              state;
    ngx_int_t               rc;            /* once DECIDED */
    ngx_int_t               result;        /* NGX_OK, _DECLINED, _ERROR */
    ngx_uint_t              status;        /* of the subrequest */
    ngx_uint_t              unknown;       /* no such user in the file */
    ngx_uint_t              stale;         /* a valid answer in grace */
    ngx_uint_t              foreign;       /* 2xx, not from ActiveSync */
    ngx_str_t               extra;         /* the directory's lists */
    ngx_str_t               user;          /* as sent */
    ngx_str_t               identity;      /* normalised */
    ngx_str_t               addr;          /* counted: IPv6 by /64 */
    void                   *verify;        /* the source's task data */
    void                   *job;           /* ngx_http_eas_preauth_job_t */
    const char             *refusal;       /* the directory's reason */
    ngx_uint_t              busy;          /* QUEUE_FULL, TIMED_OUT */
    ngx_http_eas_preauth_conf_t  *conf;    /* of the try reserved */
    ngx_http_eas_cache_query_t  query;
    u_char                  digest[NGX_HTTP_EAS_DIGEST_LEN];
    u_char                  device[NGX_HTTP_EAS_DIGEST_LEN];
    u_char                  secret[NGX_HTTP_EAS_DIGEST_LEN];
} ngx_http_eas_preauth_ctx_t;


/*
 * A thread task and its data live outside the request's pool: they are
 * freed as the task completes (a password check's crypt_data is 32 KiB),
 * and a request that moved on (answered 503 at the deadline, or closed)
 * leaves them to the completion, which then only frees them.
 */

typedef struct {
    ngx_thread_task_t       task;          /* ctx follows this struct */
    ngx_event_t             timer;         /* eas_preauth_timeout */
    ngx_http_request_t     *r;             /* NULL once detached */
    ngx_http_eas_preauth_ctx_t  *pctx;
    size_t                  size;          /* of the task's ctx */
} ngx_http_eas_preauth_job_t;


/* the handlers of the module's directives */
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
char *ngx_http_eas_preauth_ldap(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_ldap_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_eas_preauth_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_preauth_throttle(ngx_http_eas_preauth_throttle_t *t);
void ngx_http_eas_preauth_create_conf(ngx_http_eas_preauth_conf_t *conf);
char *ngx_http_eas_preauth_merge_conf(ngx_conf_t *cf,
    ngx_http_eas_preauth_conf_t *prev, ngx_http_eas_preauth_conf_t *conf);
ngx_int_t ngx_http_eas_preauth_refuse(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *auth, const char *reason, ngx_int_t status);
ngx_int_t ngx_http_eas_preauth_busy(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
ngx_int_t ngx_http_eas_preauth_tries_busy(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
ngx_int_t ngx_http_eas_preauth_full(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
ngx_int_t ngx_http_eas_preauth_retry_after(ngx_http_request_t *r, time_t t);
ngx_int_t ngx_http_eas_preauth_verify(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx,
    ngx_str_t *password);
u_char *ngx_http_eas_preauth_request_source(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf);
ngx_int_t ngx_http_eas_preauth_extra(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_preauth_ctx_t *pctx);
ngx_int_t ngx_http_eas_preauth_finish(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_preauth_ctx_t *pctx);
ngx_int_t ngx_http_eas_memo_digest(ngx_http_request_t *r,
    ngx_shm_zone_t *zone, u_char *source, ngx_str_t *user,
    ngx_str_t *password, u_char *digest);
ngx_int_t ngx_http_eas_memo_device(ngx_http_request_t *r,
    ngx_shm_zone_t *zone, ngx_str_t *user, ngx_str_t *device_id,
    ngx_str_t *password, u_char *device, u_char *secret);
ngx_int_t ngx_http_eas_memo_basic(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_str_t *header, u_char *buf,
    eas_basic_t *basic, u_char *id, size_t *n, void **found);
void ngx_http_eas_memo_basic_keep(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_str_t *header, eas_basic_t *basic,
    u_char *id, size_t n);
ngx_int_t ngx_http_eas_memo_digests(void *found, u_char *source,
    ngx_str_t *device_id, u_char *digest, u_char *device, u_char *secret);
void ngx_http_eas_memo_digests_keep(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_str_t *header, u_char *source,
    ngx_str_t *device_id, u_char *digest, u_char *device, u_char *secret);


extern ngx_module_t  ngx_http_eas_preauth_module;


#endif /* _NGX_HTTP_EAS_PREAUTH_H_INCLUDED_ */
