
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_MODULE_H_INCLUDED_
#define _NGX_HTTP_EAS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>

#include "eas_proto.h"
#include "eas_basic.h"
#include "ngx_http_eas_zone.h"


/* a SHA-256 digest: cache keys, password-file and source identities */
#define NGX_HTTP_EAS_DIGEST_LEN  32

/* what a credential source may keep with a credential: device lists */
#define NGX_HTTP_EAS_EXTRA_MAX   4096


typedef struct ngx_http_eas_passwd_s  ngx_http_eas_passwd_t;
typedef struct ngx_http_eas_ldap_s    ngx_http_eas_ldap_t;
typedef struct ngx_http_eas_peek_s    ngx_http_eas_peek_t;


/* pre-authentication, ngx_http_eas_preauth_module (ngx_http_eas_preauth.h) */
typedef struct ngx_http_eas_preauth_conf_s  ngx_http_eas_preauth_conf_t;


/* the pre-authentication zone (ngx_http_eas_cache.c) */
#define NGX_HTTP_EAS_CACHE_CREDENTIALS     0   /* node kinds */
#define NGX_HTTP_EAS_CACHE_USER            1
#define NGX_HTTP_EAS_CACHE_ADDRESS         2
#define NGX_HTTP_EAS_CACHE_KNOWN           3   /* known-good device */

#define NGX_HTTP_EAS_CACHE_MISS            0   /* lookup answers */
#define NGX_HTTP_EAS_CACHE_VALID           1
#define NGX_HTTP_EAS_CACHE_INVALID         2
#define NGX_HTTP_EAS_CACHE_USER_LOCKED     4
#define NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED  8
#define NGX_HTTP_EAS_CACHE_STALE          16  /* valid, in the grace time */
#define NGX_HTTP_EAS_CACHE_FULL           32  /* no room for a counter */
#define NGX_HTTP_EAS_CACHE_BUSY           64  /* as many tries under way
                                                 as the lockout allows */


typedef struct {
    ngx_http_eas_zone_node_t  zn;          /* mark: credentials valid;
                                              count: a user's or an
                                              address's failures */
    time_t                  expire;        /* the node may go after it */
    union {
        time_t              fresh;         /* credentials: valid until,
                                              then stale (grace) */
        ngx_uint_t          pending;       /* user, address: tries being
                                              verified, not yet counted */
    } u;
    time_t                  window_start;  /* user, address; credentials:
                                              verified at, in ms */
    time_t                  locked_until;  /* user, address; 0: not */
    u_char                  data[1];       /* digest, user or address,
                                              then extra: directory data */
} ngx_http_eas_cache_node_t;            /* 96 bytes before data on LP64:
                                           a credential fills 128 */


/* how many users' cached credentials may be dropped before all go */
#define NGX_HTTP_EAS_CACHE_DROPS  64


typedef struct {
    uint32_t                hash;          /* crc32 of the identity */
    time_t                  at;            /* ms: credentials verified up
                                              to then are dropped */
} ngx_http_eas_cache_dropped_t;


typedef struct {
    ngx_http_eas_zone_sh_t  zone;          /* tree, queues, budgets */
    u_char                  key[NGX_HTTP_EAS_DIGEST_LEN]; /* HMAC key */
    ngx_atomic_t            hits;
    ngx_atomic_t            misses;
    ngx_atomic_t            lockouts;
    ngx_uint_t              ndropped;
    ngx_http_eas_cache_dropped_t  dropped[NGX_HTTP_EAS_CACHE_DROPS];
    time_t                  locked_until;  /* the latest end of a lockout
                                              started, 0: none yet */
} ngx_http_eas_cache_sh_t;


/* a lockout in force, copied out for the admin API */
typedef struct {
    ngx_uint_t              kind;          /* ..._CACHE_USER, _ADDRESS */
    time_t                  locked_until;
    ngx_uint_t              failures;
    size_t                  len;
    u_char                  key[EAS_USER_MAX];
} ngx_http_eas_lockout_t;


/* one request's question to the zone, and what it says back */
typedef struct {
    u_char                 *digest;        /* source, user, password */
    ngx_str_t              *user;          /* identity */
    ngx_str_t              *addr;          /* address, IPv6 by /64 */
    u_char                 *device;        /* key of identity + DeviceId */
    u_char                 *secret;        /* of identity + password */
    time_t                  left;          /* of the lockout */
    time_t                  asked;         /* ms: when the cache was asked,
                                              the time an answer is of */
    ngx_uint_t              failures;      /* the user's, after update */
    unsigned                known:1;       /* a known-good device */
    unsigned                log_full:1;    /* say the zone is full */
    unsigned                busy_address:1; /* BUSY: the address's tries */
    unsigned                pending_user:1; /* a try reserved on the user */
    unsigned                pending_address:1; /* ... on the address */
} ngx_http_eas_cache_query_t;


typedef struct {
    ngx_http_eas_zone_t       zone;
    ngx_http_eas_cache_sh_t  *sh;       /* zone.sh, with the cache's own */
    void                     *inner;    /* EVP_MD_CTX: the HMAC key */
    void                     *outer;    /* hashed in, per process */
    void                     *work;
} ngx_http_eas_cache_ctx_t;             /* shm_zone->data */


/* methods EAS clients use: every command is a POST, discovery OPTIONS */
#define NGX_HTTP_EAS_DEFAULT_METHODS  (NGX_HTTP_POST|NGX_HTTP_OPTIONS)


/* device rules (ngx_http_eas_rules.c), per-user lists (..._lists.c) */
typedef struct ngx_http_eas_rules_s        ngx_http_eas_rules_t;
typedef struct ngx_http_eas_lists_s        ngx_http_eas_lists_t;

/* device access, ngx_http_eas_devices_module (ngx_http_eas_devices.h) */
typedef struct ngx_http_eas_devices_conf_s  ngx_http_eas_devices_conf_t;


typedef struct {
    ngx_flag_t            enable;
    void                 *admin;          /* eas_admin (..._admin.c) */
    void                 *console;        /* eas_console (..._console.c) */
    ngx_uint_t            methods;        /* NGX_HTTP_* bit mask */
    ngx_str_t             allow;          /* "OPTIONS, POST" for 405 */
    ngx_uint_t            log_level;      /* eas_log_level */
} ngx_http_eas_loc_conf_t;


/*
 * The level of every line the module writes about one client's request
 * (a refusal, an answer made at the edge): "eas_log_level", notice by
 * default, so that an error_log at notice shows them without nginx's own
 * info lines, some of which quote request headers (Authorization) whole.
 */
#define NGX_HTTP_EAS_LOG_LEVEL(r)                                             \
    (((ngx_http_eas_loc_conf_t *)                                             \
      ngx_http_get_module_loc_conf(r, ngx_http_eas_module))->log_level)


/* where $eas_heartbeat came from: $eas_heartbeat_source */
#define NGX_HTTP_EAS_HB_NONE          0
#define NGX_HTTP_EAS_HB_BODY          1
#define NGX_HTTP_EAS_HB_REMEMBERED    2
#define NGX_HTTP_EAS_HB_DEFAULT       3
#define NGX_HTTP_EAS_HB_UNREAD        4
#define NGX_HTTP_EAS_HB_MALFORMED     5
#define NGX_HTTP_EAS_HB_OUT_OF_RANGE  6


/* what every step leaves for the later ones and for the log phase */
typedef struct {
    eas_request_t         request;        /* first, then user: what
                                             ngx_http_eas_create_ctx()
                                             zeroes starts at user */
    ngx_str_t             user;           /* authenticated identity */
    ngx_str_t             reason;         /* $eas_reason; empty if none */
    ngx_uint_t            access;         /* $eas_access: ..._ACCESS_* */
    ngx_uint_t            refused;        /* the edge's refusal status */
    ngx_uint_t            refused_pass;   /* r->uri_changes when refused */
    unsigned              refused_soft:1; /* satisfy any may admit it */
    unsigned              checked:1;      /* every check of an "eas on"
                                             location passed */
    void                 *device_conf;    /* the location whose device
                                             rules decided, if any */
    unsigned              parsed:1;       /* request holds the fields */
    unsigned              authenticated:1; /* user was verified */
    unsigned              identity:1;     /* user is User='s identity
                                             (ngx_http_eas_identity()) */
    ngx_str_t             auth;           /* $eas_auth: ok, cached, ... */
    void                 *preauth;        /* state of the pre-auth step */
    ngx_str_t             directory;      /* device lists of the user's
                                             directory entry, encoded */
    unsigned              directory_set:1; /* the directory answered */

    /* long-poll */
    time_t                heartbeat;      /* seconds held, or asked for */
    ngx_uint_t            heartbeat_source; /* NGX_HTTP_EAS_HB_* */
    unsigned              longpoll:1;     /* held: interval + margin */
    unsigned              longpoll_state:2;
    unsigned              timeouts_set:1; /* the read timeout was set */
    uint32_t              ping_generation; /* held Ping's; 0: none */
    ngx_http_eas_peek_t  *peek;           /* start of a chunked body */

    void                 *verdict;        /* ngx_http_eas_verdict.c */
} ngx_http_eas_ctx_t;


/* the context and the pool cleanup entry that finds it, one allocation */
typedef struct {
    ngx_http_eas_ctx_t    ctx;
    ngx_pool_cleanup_t    cln;
} ngx_http_eas_ctx_block_t;


ngx_int_t ngx_http_eas_parse_handler(ngx_http_request_t *r);
ngx_http_eas_ctx_t *ngx_http_eas_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_identity(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_str_t *user);
ngx_int_t ngx_http_eas_variables_add(ngx_conf_t *cf);

/* a secret read from a file of one line at nginx -t (..._conf.c) */
#define NGX_HTTP_EAS_SECRET_MAX  1024
ngx_int_t ngx_http_eas_secret_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *what, ngx_str_t *secret);

ngx_shm_zone_t *ngx_http_eas_zone_add(ngx_conf_t *cf, ngx_command_t *cmd,
    void *tag);

ngx_shm_zone_t *ngx_http_eas_cache_add(ngx_conf_t *cf, ngx_str_t *name);
ngx_int_t ngx_http_eas_cache_digest(ngx_shm_zone_t *zone, u_char *source,
    ngx_str_t *user, ngx_str_t *password, u_char *digest);
ngx_int_t ngx_http_eas_cache_device(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_str_t *password, u_char *device,
    u_char *secret);
ngx_uint_t ngx_http_eas_cache_lookup(ngx_shm_zone_t *zone,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf);
ngx_uint_t ngx_http_eas_cache_update(ngx_shm_zone_t *zone,
    ngx_http_eas_cache_query_t *q, ngx_uint_t valid,
    ngx_http_eas_preauth_conf_t *pcf);
void ngx_http_eas_cache_release(ngx_shm_zone_t *zone,
    ngx_http_eas_cache_query_t *q, ngx_http_eas_preauth_conf_t *pcf,
    ngx_uint_t failed);
ngx_uint_t ngx_http_eas_cache_lockouts(ngx_shm_zone_t *zone,
    ngx_http_eas_lockout_t *out, ngx_uint_t n);
ngx_uint_t ngx_http_eas_cache_drop(ngx_shm_zone_t *zone, ngx_uint_t kind);
void ngx_http_eas_cache_drop_user(ngx_shm_zone_t *zone, ngx_str_t *user);
ngx_int_t ngx_http_eas_cache_clear(ngx_shm_zone_t *zone, ngx_uint_t kind,
    ngx_str_t *key);
void ngx_http_eas_cache_lock(ngx_shm_zone_t *zone, ngx_uint_t kind,
    ngx_str_t *key, time_t left);
ngx_int_t ngx_http_eas_cache_get_extra(ngx_shm_zone_t *zone, u_char *digest,
    u_char *buf, size_t size, size_t *len);
ngx_int_t ngx_http_eas_cache_set_extra(ngx_shm_zone_t *zone, u_char *digest,
    u_char *data, size_t len);

/* the directory credential source (ngx_http_eas_ldap.c) */
ngx_int_t ngx_http_eas_ldap_check(ngx_conf_t *cf,
    ngx_http_eas_preauth_conf_t *pcf);
u_char *ngx_http_eas_ldap_source(ngx_http_eas_ldap_t *ldap);
ngx_str_t *ngx_http_eas_ldap_name(ngx_http_eas_ldap_t *ldap);
time_t ngx_http_eas_ldap_retry(ngx_http_eas_ldap_t *ldap);
ngx_int_t ngx_http_eas_ldap_available(ngx_http_eas_ldap_t *ldap);
size_t ngx_http_eas_ldap_verify_size(void);
ngx_int_t ngx_http_eas_ldap_prepare(ngx_http_eas_ldap_t *ldap,
    ngx_str_t *user, ngx_str_t *password, void *data);
void ngx_http_eas_ldap_verify(void *data, ngx_log_t *log);
ngx_int_t ngx_http_eas_ldap_result(void *data, ngx_log_t *log,
    ngx_str_t *extra);
const char *ngx_http_eas_ldap_refusal(void *data);
ngx_uint_t ngx_http_eas_ldap_unknown(void *data);
ngx_http_eas_lists_t *ngx_http_eas_ldap_lists(ngx_conf_t *cf);
ngx_uint_t ngx_http_eas_ldap_lists_used(ngx_http_eas_lists_t *lists);
void ngx_http_eas_ldap_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_eas_ldap_identity(ngx_str_t *extra, ngx_str_t *identity);
ngx_str_t *ngx_http_eas_ldap_domain(ngx_http_eas_ldap_t *ldap, u_char *name,
    size_t len);
ngx_int_t ngx_http_eas_user_identity(ngx_http_eas_ldap_t *ldap, u_char *user,
    size_t len, u_char *dst, size_t size, size_t *n);
ngx_int_t ngx_http_eas_user_key(u_char *data, size_t size);
ngx_int_t ngx_http_eas_fold(u_char *src, size_t len, u_char *dst, size_t size,
    size_t *n);

ngx_http_eas_passwd_t *ngx_http_eas_passwd_open(ngx_conf_t *cf,
    ngx_str_t *name, ngx_flag_t plain);
void ngx_http_eas_passwd_refresh(ngx_http_eas_passwd_t *pw, ngx_log_t *log);
ngx_uint_t ngx_http_eas_passwd_stale(ngx_http_eas_passwd_t *pw);
ngx_str_t *ngx_http_eas_passwd_name(ngx_http_eas_passwd_t *pw);
void ngx_http_eas_passwd_check_user(ngx_cycle_t *cycle);
u_char *ngx_http_eas_passwd_source(ngx_http_eas_passwd_t *pw);
size_t ngx_http_eas_passwd_verify_size(void);
ngx_int_t ngx_http_eas_passwd_find(ngx_http_eas_passwd_t *pw,
    ngx_str_t *user, ngx_str_t *password, void *data);
void ngx_http_eas_passwd_verify(void *data);
ngx_int_t ngx_http_eas_passwd_result(void *data);
ngx_uint_t ngx_http_eas_passwd_unknown(void *data);

ngx_int_t ngx_http_eas_upstream_wrap(ngx_conf_t *cf);
ngx_msec_t ngx_http_eas_longpoll_read_timeout(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_heartbeat_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_eas_heartbeat_source_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_eas_backend_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
char *ngx_http_eas_upstream_timeouts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void *ngx_http_eas_create_srv_conf(ngx_conf_t *cf);


/*
 * The device inventory (ngx_http_eas_devices.c): one record per
 * identity + DeviceId in an "eas_device_zone", serving the inventory,
 * the max-devices rule, the remembered heartbeat, the Ping generation
 * (a superseded Ping is ended) and the status view.
 * Strings longer than the record keeps are truncated.
 */

#define NGX_HTTP_EAS_DEVICE_TYPE_LEN    64
#define NGX_HTTP_EAS_DEVICE_UA_LEN      128
#define NGX_HTTP_EAS_DEVICE_REASON_LEN  128
#define NGX_HTTP_EAS_DEVICE_GATEWAY_LEN 64     /* eas_shared_state gateway= */

#define NGX_HTTP_EAS_ACCESS_NONE        0
#define NGX_HTTP_EAS_ACCESS_ALLOWED     1
#define NGX_HTTP_EAS_ACCESS_BLOCKED     2

/* $eas_reason of a device over its user's eas_device_max */
#define NGX_HTTP_EAS_REASON_MAX_DEVICES "eas_device_max"
/* ... of a device refused because the zone cannot count it */
#define NGX_HTTP_EAS_REASON_ZONE_FULL   "eas_device_zone_full"


/* a record copied out of the zone: plain arrays, safe to copy */
typedef struct {
    time_t                first_seen;
    time_t                last_seen;
    ngx_uint_t            heartbeat;      /* seconds, 0 = none */
    ngx_uint_t            version;        /* eas version code: 141 */
    ngx_uint_t            command;        /* eas_command_e */
    ngx_uint_t            access;         /* NGX_HTTP_EAS_ACCESS_* */
    ngx_uint_t            user_devices;   /* devices counted for user */
    size_t                user_len;
    size_t                device_id_len;
    size_t                device_type_len;
    size_t                user_agent_len;
    size_t                reason_len;
    u_char                user[EAS_USER_MAX];
    u_char                device_id[EAS_DEVICE_ID_MAX];
    u_char                device_type[NGX_HTTP_EAS_DEVICE_TYPE_LEN];
    u_char                user_agent[NGX_HTTP_EAS_DEVICE_UA_LEN];
    u_char                reason[NGX_HTTP_EAS_DEVICE_REASON_LEN];
    size_t                gateway_len;    /* 0: this one's */
    u_char                gateway[NGX_HTTP_EAS_DEVICE_GATEWAY_LEN];
} ngx_http_eas_device_t;


/* what the admin API's device listing asks for */
typedef struct {
    ngx_str_t             user;           /* empty: any; else equal, */
    ngx_str_t             device_id;      /*   without case */
    ngx_str_t             device_type;
    ngx_uint_t            access;         /* NGX_HTTP_EAS_ACCESS_* */
    ngx_uint_t            any_access;     /* access not asked */
    ngx_uint_t            oldest_first;   /* else newest first */
    ngx_uint_t            skip;           /* matches before the page */
} ngx_http_eas_device_filter_t;


/* what one request tells the inventory */
typedef struct {
    ngx_str_t             user;
    ngx_str_t             device_id;
    ngx_str_t             device_type;
    ngx_str_t             user_agent;
    ngx_str_t             reason;         /* of the rules' decision */
    ngx_uint_t            version;
    ngx_uint_t            command;
    ngx_uint_t            access;         /* in: rules; out: final */
    ngx_uint_t            max_devices;    /* 0: no limit */
    ngx_uint_t            user_devices;   /* out */
    unsigned              over_limit:1;   /* out: max_devices blocked */
    unsigned              zone_full:1;    /* out: no room to count it */
    unsigned              created:1;      /* out: first request seen */
    unsigned              counted:1;      /* out: counted by this one */
} ngx_http_eas_device_update_t;


ngx_int_t ngx_http_eas_device_update(ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, ngx_log_t *log);
ngx_int_t ngx_http_eas_device_lookup(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_http_eas_device_t *copy);
ngx_int_t ngx_http_eas_device_set_heartbeat(ngx_shm_zone_t *zone,
    ngx_str_t *user, ngx_str_t *device_id, ngx_uint_t seconds);
ngx_int_t ngx_http_eas_device_ping(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_uint_t newer, ngx_uint_t *generation);
ngx_uint_t ngx_http_eas_device_pings_changed(ngx_shm_zone_t *zone,
    ngx_uint_t sweep);
ngx_uint_t ngx_http_eas_device_list(ngx_shm_zone_t *zone,
    ngx_http_eas_device_t *out, ngx_uint_t n);
ngx_uint_t ngx_http_eas_device_count(ngx_shm_zone_t *zone);
ngx_uint_t ngx_http_eas_device_select(ngx_shm_zone_t *zone,
    ngx_http_eas_device_filter_t *f, ngx_http_eas_device_t *out,
    ngx_uint_t n, ngx_uint_t *total);
ngx_int_t ngx_http_eas_device_delete(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id);
ngx_int_t ngx_http_eas_device_unplace(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_uint_t refused);
ngx_uint_t ngx_http_eas_device_unfilled(ngx_shm_zone_t *zone,
    ngx_uint_t filled, time_t before);
ngx_uint_t ngx_http_eas_device_stale(ngx_shm_zone_t *zone, time_t before,
    ngx_uint_t delete, ngx_http_eas_device_t *out, ngx_uint_t n);
ngx_shm_zone_t *ngx_http_eas_devices_zone(ngx_http_request_t *r);
size_t ngx_http_eas_inventory_record_size(ngx_http_eas_device_t *d);
u_char *ngx_http_eas_inventory_record(u_char *p, ngx_http_eas_device_t *d);
u_char *ngx_http_eas_json_escape(u_char *dst, u_char *src, size_t len,
    size_t *size);

/* the gateway's own answers (ngx_http_eas_answer.c) */
ngx_int_t ngx_http_eas_answer_init(ngx_conf_t *cf);
ngx_int_t ngx_http_eas_answer_blocked(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_eas_ctx_t *ctx);
ngx_int_t ngx_http_eas_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *data, size_t len);
ngx_table_elt_t *ngx_http_eas_header_find(ngx_list_t *headers,
    ngx_str_t *name);
ngx_int_t ngx_http_eas_answer_header(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
ngx_int_t ngx_http_eas_answer_private(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_answer_wbxml(ngx_http_request_t *r, u_char *data,
    size_t len);

/*
 * The precontent phase's steps, in the order they run: refusals held
 * (the core), the device decision (ngx_http_eas_devices_module), the
 * long-poll body (ngx_http_eas_longpoll_module).  Each module adds its
 * own in its postconfiguration (ngx_http_eas_step_add()), whatever the
 * order of the modules.
 */
#define NGX_HTTP_EAS_STEP_REFUSALS  0
#define NGX_HTTP_EAS_STEP_DEVICES   1
#define NGX_HTTP_EAS_STEP_LONGPOLL  2
#define NGX_HTTP_EAS_STEPS          3

ngx_int_t ngx_http_eas_step_add(ngx_conf_t *cf, ngx_uint_t step,
    ngx_http_handler_pt handler);
ngx_int_t ngx_http_eas_enforce_handler(ngx_http_request_t *r);
char *ngx_http_eas_inert(ngx_conf_t *cf, char *name);
ngx_uint_t ngx_http_eas_inert_location(ngx_conf_t *cf);


/* what device rules and per-user lists look at */
#define NGX_HTTP_EAS_FIELD_DEVICE_ID    0
#define NGX_HTTP_EAS_FIELD_DEVICE_TYPE  1
#define NGX_HTTP_EAS_FIELD_USER         2
#define NGX_HTTP_EAS_FIELD_USER_AGENT   3
#define NGX_HTTP_EAS_FIELDS             4

/*
 * The lower-cased copies live only while the device step runs; they go
 * to the scratch space (on the step's stack) when they fit, so that a
 * request held for an hour does not keep them in its pool.
 */
#define NGX_HTTP_EAS_VALUES_SCRATCH     1024

typedef struct {
    ngx_str_t             value[NGX_HTTP_EAS_FIELDS];  /* as sent */
    ngx_str_t             lower[NGX_HTTP_EAS_FIELDS];  /* lower-cased */
    size_t                used;                        /* of scratch */
    u_char                scratch[NGX_HTTP_EAS_VALUES_SCRATCH];
} ngx_http_eas_device_values_t;


/*
 * A source of per-user allowed / blocked DeviceIds: a file now, a
 * directory (msExchMobileAllowedDeviceIDs / ...BlockedDeviceIDs) later.
 * lookup() sets *access to BLOCKED if the device is in the user's block
 * list, else ALLOWED if in the allow list, else NONE, and *reason to the
 * entry that decided; it returns NGX_OK, NGX_ERROR, or (for a source
 * that must wait for an answer) NGX_AGAIN after arranging to resume the
 * request.
 */
typedef ngx_int_t (*ngx_http_eas_list_lookup_pt)(ngx_http_request_t *r,
    ngx_http_eas_lists_t *source, ngx_http_eas_device_values_t *values,
    ngx_uint_t *access, ngx_str_t *reason);

struct ngx_http_eas_lists_s {
    ngx_http_eas_list_lookup_pt   lookup;
    void                         *data;
};


/* one line of a list file, split into tokens (ngx_str_t) */
typedef ngx_int_t (*ngx_http_eas_file_line_pt)(ngx_conf_t *cf, void *data,
    ngx_str_t *file, ngx_uint_t line, ngx_array_t *tokens);

ngx_int_t ngx_http_eas_file_read(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *directive, ngx_http_eas_file_line_pt handler, void *data);
ngx_int_t ngx_http_eas_hash_build(ngx_conf_t *cf, ngx_hash_t *hash,
    ngx_hash_keys_arrays_t *keys, size_t max, char *name);
ngx_int_t ngx_http_eas_reason(ngx_http_request_t *r, ngx_str_t *source,
    ngx_uint_t line, ngx_str_t *reason);
ngx_str_t *ngx_http_eas_reason_source(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file);

ngx_int_t ngx_http_eas_rules_merge(ngx_conf_t *cf,
    ngx_http_eas_rules_t **conf, ngx_http_eas_rules_t *prev);
ngx_int_t ngx_http_eas_rules_compile(ngx_conf_t *cf,
    ngx_http_eas_rules_t *rules);
ngx_int_t ngx_http_eas_rules_decide(ngx_http_request_t *r,
    ngx_http_eas_rules_t *rules, ngx_http_eas_device_values_t *values,
    ngx_uint_t *access, ngx_str_t *reason);



/*
 * Runtime device decisions and the admin API (ngx_http_eas_admin_rules.c,
 * ngx_http_eas_admin.c, docs/operations.md)
 */

#define NGX_HTTP_EAS_ADMIN_LOST_ACCESS  3   /* beside ..._ACCESS_BLOCKED */
#define NGX_HTTP_EAS_ADMIN_WHO_LEN      96

typedef struct {
    ngx_shm_zone_t       *admin_rules;    /* eas_admin_rules */
    ngx_flag_t            metrics;        /* eas_metrics */
    ngx_array_t           levels;         /* of void **: every server and
                                             location merged */
    ngx_uint_t            uses;           /* NGX_HTTP_EAS_USES_* */
} ngx_http_eas_main_conf_t;


/* the concerns some level uses (ngx_http_eas_uses.c) */
#define NGX_HTTP_EAS_USES_PREAUTH   0x01
#define NGX_HTTP_EAS_USES_DEVICES   0x02
#define NGX_HTTP_EAS_USES_LONGPOLL  0x04
#define NGX_HTTP_EAS_USES_METRICS   0x08

ngx_int_t ngx_http_eas_uses_level(ngx_conf_t *cf);
void ngx_http_eas_uses_find(ngx_conf_t *cf);
ngx_uint_t ngx_http_eas_uses(ngx_conf_t *cf, ngx_uint_t concern);

/* a change: access NONE removes */
typedef struct {
    ngx_uint_t            field;          /* 'd' DeviceId, 'u' user */
    ngx_uint_t            access;         /* ..._ACCESS_*, ..._LOST_ACCESS */
    ngx_str_t             value;
    ngx_str_t             who;            /* the admin: address, user */
} ngx_http_eas_admin_rule_t;

/* a rule copied out */
typedef struct {
    u_char                field;
    u_char                access;
    time_t                since;
    ngx_uint_t            line;
    size_t                value_len;
    size_t                who_len;
    u_char                value[EAS_USER_MAX];
    u_char                who[NGX_HTTP_EAS_ADMIN_WHO_LEN];
} ngx_http_eas_admin_entry_t;

char *ngx_http_eas_admin_rules(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_eas_admin_decide(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_http_eas_device_values_t *values,
    ngx_uint_t *access);
ngx_int_t ngx_http_eas_admin_change(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, ngx_log_t *log);
ngx_int_t ngx_http_eas_admin_fold(ngx_pool_t *pool, ngx_str_t *user);
ngx_uint_t ngx_http_eas_admin_list(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_entry_t *out, ngx_uint_t n);
ngx_str_t *ngx_http_eas_admin_file(ngx_shm_zone_t *zone);
ngx_str_t *ngx_http_eas_admin_access_name(ngx_uint_t access);
char *ngx_http_eas_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_eas_admin_check(ngx_conf_t *cf,
    ngx_http_eas_loc_conf_t *conf);

/* the admin console page and the API's CSRF rule (..._console.c) */
char *ngx_http_eas_console(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_eas_console_check(ngx_conf_t *cf,
    ngx_http_eas_loc_conf_t *conf);
ngx_int_t ngx_http_eas_console_handler(ngx_http_request_t *r,
    ngx_str_t *path);
ngx_array_t *ngx_http_eas_console_names(ngx_conf_t *cf);
ngx_int_t ngx_http_eas_console_csrf(ngx_http_request_t *r,
    ngx_array_t *names, ngx_array_t *origins, const char **why);
ngx_int_t ngx_http_eas_console_origin_conf(ngx_pool_t *pool,
    ngx_str_t *url, ngx_str_t *origin);

/* a connection's own data, from its second request (..._memo.c) */
void *ngx_http_eas_connection_data(ngx_http_request_t *r,
    ngx_pool_cleanup_pt handler, size_t size);

extern ngx_module_t  ngx_http_eas_module;
extern void         *ngx_http_eas_cache_tag;


/*
 * Equal secrets (passwords, hashes, device secrets) compared in a time
 * that depends on the lengths only, never on where the first difference
 * is (as OpenSSL's CRYPTO_memcmp(), but eight bytes a step: every word's
 * difference is or-ed in, nothing branches on the data); different
 * lengths are unequal.
 */

static ngx_inline ngx_uint_t
ngx_http_eas_secret_equal(const u_char *a, size_t alen, const u_char *b,
    size_t blen)
{
    size_t    i;
    uint64_t  x, y, diff;

    if (alen != blen) {
        return 0;
    }

    diff = 0;

    if (alen < sizeof(uint64_t)) {
        for (i = 0; i < alen; i++) {
            diff |= (uint64_t) (a[i] ^ b[i]);
        }

        return diff == 0;
    }

    for (i = 0; alen - i > sizeof(uint64_t); i += sizeof(uint64_t)) {
        ngx_memcpy(&x, a + i, sizeof(uint64_t));
        ngx_memcpy(&y, b + i, sizeof(uint64_t));
        diff |= x ^ y;
    }

    /* the last eight bytes, over the end of the last word if need be */

    ngx_memcpy(&x, a + alen - sizeof(uint64_t), sizeof(uint64_t));
    ngx_memcpy(&y, b + alen - sizeof(uint64_t), sizeof(uint64_t));

    return (diff | (x ^ y)) == 0;
}


#endif /* _NGX_HTTP_EAS_MODULE_H_INCLUDED_ */
