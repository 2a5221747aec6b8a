
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_MODULE_H_INCLUDED_
#define _NGX_HTTP_EAS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "eas_proto.h"


/* methods EAS clients use: every command is a POST, discovery OPTIONS */
#define NGX_HTTP_EAS_DEFAULT_METHODS  (NGX_HTTP_POST|NGX_HTTP_OPTIONS)


typedef struct {
    ngx_flag_t            enable;
    ngx_uint_t            methods;        /* NGX_HTTP_* bit mask */
    ngx_str_t             allow;          /* "OPTIONS, POST" for 405 */
    ngx_shm_zone_t       *devices;        /* eas_devices: inventory zone */

    /* long-poll (ngx_http_eas_longpoll.c) */
    ngx_flag_t            longpoll;
    time_t                heartbeat_min;  /* seconds */
    time_t                heartbeat_max;
    ngx_msec_t            longpoll_margin;
    ngx_msec_t            command_timeout;
    size_t                longpoll_body_max;
} ngx_http_eas_loc_conf_t;


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
    eas_request_t         request;
    ngx_str_t             user;           /* authenticated identity */
    ngx_str_t             reason;         /* $eas_reason; empty if none */
    ngx_uint_t            access;         /* $eas_access: ..._ACCESS_* */
    unsigned              parsed:1;       /* request holds the fields */
    unsigned              authenticated:1; /* user was verified */

    /* long-poll */
    time_t                heartbeat;      /* seconds held, or asked for */
    ngx_uint_t            heartbeat_source; /* NGX_HTTP_EAS_HB_* */
    unsigned              longpoll:1;     /* held: interval + margin */
    unsigned              longpoll_state:2;
    unsigned              timeouts_set:1; /* eas_upstream_timeouts ran */
} ngx_http_eas_ctx_t;


ngx_int_t ngx_http_eas_parse_handler(ngx_http_request_t *r);
ngx_http_eas_ctx_t *ngx_http_eas_get_ctx(ngx_http_request_t *r);
void ngx_http_eas_identity(ngx_http_eas_ctx_t *ctx, ngx_str_t *user);
ngx_int_t ngx_http_eas_variables_add(ngx_conf_t *cf);

ngx_int_t ngx_http_eas_longpoll_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_longpoll_log_check(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_longpoll_check(ngx_conf_t *cf,
    ngx_http_eas_loc_conf_t *elcf);
ngx_msec_t ngx_http_eas_longpoll_read_timeout(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_heartbeat_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_eas_heartbeat_source_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
char *ngx_http_eas_upstream_timeouts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void *ngx_http_eas_create_srv_conf(ngx_conf_t *cf);


/*
 * The device inventory (ngx_http_eas_devices.c): one record per
 * identity + DeviceId in an "eas_device_zone", serving the inventory,
 * the max-devices rule, the remembered heartbeat and the status view.
 * Strings longer than the record keeps are truncated.
 */

#define NGX_HTTP_EAS_DEVICE_TYPE_LEN    64
#define NGX_HTTP_EAS_DEVICE_UA_LEN      128
#define NGX_HTTP_EAS_DEVICE_REASON_LEN  128

#define NGX_HTTP_EAS_ACCESS_NONE        0
#define NGX_HTTP_EAS_ACCESS_ALLOWED     1
#define NGX_HTTP_EAS_ACCESS_BLOCKED     2

/* $eas_reason of a device over its user's eas_device_max */
#define NGX_HTTP_EAS_REASON_MAX_DEVICES "eas_device_max"


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
} ngx_http_eas_device_t;


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
    unsigned              created:1;      /* out: first request seen */
} ngx_http_eas_device_update_t;


ngx_int_t ngx_http_eas_device_update(ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, ngx_log_t *log);
ngx_int_t ngx_http_eas_device_lookup(ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id, ngx_http_eas_device_t *copy);
ngx_int_t ngx_http_eas_device_set_heartbeat(ngx_shm_zone_t *zone,
    ngx_str_t *user, ngx_str_t *device_id, ngx_uint_t seconds);
ngx_uint_t ngx_http_eas_device_list(ngx_shm_zone_t *zone,
    ngx_http_eas_device_t *out, ngx_uint_t n);
ngx_uint_t ngx_http_eas_device_count(ngx_shm_zone_t *zone);
char *ngx_http_eas_device_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_devices(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_eas_device_inventory(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_devices_merge(ngx_conf_t *cf,
    ngx_http_eas_loc_conf_t *prev, ngx_http_eas_loc_conf_t *conf);
ngx_int_t ngx_http_eas_inventory_check(ngx_conf_t *cf,
    ngx_http_eas_loc_conf_t *conf);

/* step 3 of the request flow (ngx_http_eas_access.c) */
ngx_int_t ngx_http_eas_device_access(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_eas_module;


#endif /* _NGX_HTTP_EAS_MODULE_H_INCLUDED_ */
