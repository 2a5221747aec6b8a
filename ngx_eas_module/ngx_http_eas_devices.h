
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_DEVICES_H_INCLUDED_
#define _NGX_HTTP_EAS_DEVICES_H_INCLUDED_


/*
 * The device access concern, its own nginx module in the shared object
 * (ngx_http_eas_devices_module.c: directives, configuration, phase
 * handler; ngx_http_eas_access.c: the decision; the rules, lists and
 * inventory files), and the device zone's own parts, shared by
 * ngx_http_eas_devices.c (the zone, its records, the max-devices rule)
 * and ngx_http_eas_devices_admin.c (records listed and deleted for the
 * inventory and the admin API).  Other concerns use the prototypes of
 * ngx_http_eas_module.h.  It includes only the core header.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


/* the location configuration of ngx_http_eas_devices_module */
struct ngx_http_eas_devices_conf_s {
    ngx_shm_zone_t       *devices;        /* eas_devices: inventory zone */
    ngx_http_eas_rules_t *device_rules;   /* eas_device_allow/block/rules */
    ngx_http_eas_lists_t *device_lists;   /* eas_device_user_lists */
    ngx_uint_t            device_default; /* eas_device_default */
    ngx_uint_t            device_max;     /* eas_device_max, 0: none */
    ngx_flag_t            device_user_match; /* eas_device_user_match */
    ngx_uint_t            device_status;  /* eas_device_block_status,
                                             0: as Exchange */
    ngx_flag_t            device_check;   /* the device step runs */
};


/* the handlers of the module's directives */
char *ngx_http_eas_device_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_devices(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_eas_device_inventory(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_device_rule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_device_rules(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_device_user_lists(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_eas_device_default(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_eas_devices_handler(ngx_http_request_t *r);
char *ngx_http_eas_devices_merge(ngx_conf_t *cf,
    ngx_http_eas_devices_conf_t *prev, ngx_http_eas_devices_conf_t *conf);
ngx_int_t ngx_http_eas_inventory_check(ngx_conf_t *cf,
    ngx_http_eas_devices_conf_t *conf);
ngx_uint_t ngx_http_eas_inventory_location(ngx_conf_t *cf);
ngx_int_t ngx_http_eas_lists_check(ngx_conf_t *cf,
    ngx_http_eas_lists_t *lists, ngx_http_eas_preauth_conf_t *pcf);
ngx_int_t ngx_http_eas_rules_users_check(ngx_conf_t *cf,
    ngx_http_eas_rules_t *rules, ngx_http_eas_preauth_conf_t *pcf);
char *ngx_http_eas_access_merge(ngx_conf_t *cf,
    ngx_http_eas_devices_conf_t *prev, ngx_http_eas_devices_conf_t *conf);
char *ngx_http_eas_devices_inert(ngx_conf_t *cf,
    ngx_http_eas_devices_conf_t *conf);

extern ngx_module_t  ngx_http_eas_devices_module;


#define NGX_HTTP_EAS_NODE_DEVICE  0
#define NGX_HTTP_EAS_NODE_USER    1

/* the zone's queues, each most recently seen first */
#define NGX_HTTP_EAS_Q_EVICTABLE  0
#define NGX_HTTP_EAS_Q_COUNTED    1       /* never evicted */
#define NGX_HTTP_EAS_Q_USERS      2       /* user nodes: never evicted */

/* user length (2 bytes), user, DeviceId */
#define NGX_HTTP_EAS_KEY_MAX      (2 + EAS_USER_MAX + EAS_DEVICE_ID_MAX)


typedef struct {
    ngx_http_eas_zone_node_t      zn;             /* mark: counted in the
                                                     user's count */
    time_t                        first_seen;
    time_t                        last_seen;
    ngx_uint_t                    heartbeat;
    ngx_uint_t                    ping;           /* generation, 0: none */
    u_short                       version;
    u_short                       user_len;
    u_char                        command;
    u_char                        access;
    u_char                        device_id_len;
    u_char                        device_type_len;
    u_char                        user_agent_len;
    u_char                        reason_len;
    u_char                        filled;         /* the fill that read it
                                                     on Redis last */
    u_char                        gateway;        /* the gateway that wrote
                                                     it last: 0 this one,
                                                     n the zone's n-th,
                                                     255 not said */
    u_short                       max_devices;    /* eas_device_max of the
                                                     last update, 0 none */
    u_char                        data[1];
} ngx_http_eas_devices_node_t;

/*
 * data[]: key, user and DeviceId as first seen, then DeviceType,
 * User-Agent and reason in fixed slots updated in place
 */


typedef struct {
    ngx_http_eas_zone_node_t      zn;
    ngx_uint_t                    count;          /* devices admitted */
    u_char                        data[1];
} ngx_http_eas_devices_user_t;


/* the names of the gateways whose records the zone holds, as they came */
#define NGX_HTTP_EAS_GATEWAYS     64

typedef struct {
    ngx_http_eas_zone_sh_t        zone;
    ngx_atomic_t                  pings;          /* last generation */
    ngx_uint_t                    ngateways;
    u_char                        gateways[NGX_HTTP_EAS_GATEWAYS]
                                      [1 + NGX_HTTP_EAS_DEVICE_GATEWAY_LEN];
} ngx_http_eas_devices_shctx_t;


typedef struct {
    ngx_http_eas_zone_t           zone;
    ngx_http_eas_devices_shctx_t *sh;

    /* this worker's, for ngx_http_eas_device_pings_changed() */
    ngx_uint_t                     pings_seen;
    ngx_uint_t                     pings_sweep;
    ngx_uint_t                     pings_changed;
} ngx_http_eas_devices_ctx_t;


/* a key built before the lock is taken */
typedef struct {
    uint32_t                      hash;
    size_t                        len;
    size_t                        user_len;
    u_char                        data[NGX_HTTP_EAS_KEY_MAX];
} ngx_http_eas_devices_key_t;

ngx_int_t ngx_http_eas_devices_device_key(ngx_http_eas_devices_key_t *key,
    ngx_str_t *user, ngx_str_t *device_id);
ngx_http_eas_devices_node_t *ngx_http_eas_devices_create(
    ngx_http_eas_devices_ctx_t *ctx, ngx_http_eas_devices_key_t *key,
    ngx_http_eas_device_update_t *u);
void ngx_http_eas_devices_user_key(ngx_http_eas_devices_key_t *key,
    u_char *device_key);
ngx_http_eas_devices_node_t *ngx_http_eas_devices_lock_record(
    ngx_http_eas_devices_ctx_t *ctx, ngx_str_t *user, ngx_str_t *device_id);
ngx_http_eas_zone_node_t *ngx_http_eas_devices_find(
    ngx_http_eas_devices_ctx_t *ctx, ngx_uint_t kind,
    ngx_http_eas_devices_key_t *key);
void ngx_http_eas_devices_copy(ngx_http_eas_devices_ctx_t *ctx,
    ngx_http_eas_devices_node_t *dn, ngx_http_eas_device_t *copy);

/* ngx_http_eas_devices_seen.c: a connection's last update of a record */
#define NGX_HTTP_EAS_DEVICES_SEEN_MAX  1024

ngx_uint_t ngx_http_eas_devices_seen(ngx_http_request_t *r,
    ngx_shm_zone_t *zone, ngx_http_eas_device_update_t *u, u_char *buf,
    size_t *len);
void ngx_http_eas_devices_seen_keep(ngx_http_request_t *r,
    ngx_shm_zone_t *zone, ngx_http_eas_device_update_t *u, u_char *buf,
    size_t len);


#endif /* _NGX_HTTP_EAS_DEVICES_H_INCLUDED_ */
