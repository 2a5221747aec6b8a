
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_ADMIN_H_INCLUDED_
#define _NGX_HTTP_EAS_ADMIN_H_INCLUDED_


/*
 * The admin API's own header (eas_admin, docs/operations.md), shared by
 * ngx_http_eas_admin.c (the directive, the handler, the JSON body and
 * the dispatch), ngx_http_eas_admin_lockouts.c (lockouts, credentials),
 * ngx_http_eas_admin_devices.c (devices, stale devices, rules) and
 * ngx_http_eas_admin_params.c (parameters, audit line, answers).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


#define NGX_HTTP_EAS_ADMIN_LIST_MAX  4096    /* lockouts, rules listed */


typedef struct {
    ngx_shm_zone_t               *preauth;
    ngx_shm_zone_t               *devices;
    ngx_array_t                  *origins;  /* of ngx_str_t, "origin=" */
    ngx_array_t                  *names;    /* the server's exact names */
} ngx_http_eas_admin_conf_t;


/* a resource that takes no parameter */
extern char  *ngx_http_eas_admin_none[];


/* the resources (..._admin_lockouts.c, ..._admin_devices.c) */
ngx_int_t ngx_http_eas_admin_lockouts(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
ngx_int_t ngx_http_eas_admin_credentials(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
ngx_int_t ngx_http_eas_admin_devices(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
ngx_int_t ngx_http_eas_admin_stale(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf);
ngx_int_t ngx_http_eas_admin_rules_api(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_admin_lockout_user(ngx_http_request_t *r,
    ngx_shm_zone_t *zone, ngx_str_t *value, ngx_str_t *key, ngx_str_t *json,
    ngx_str_t *here);
ngx_int_t ngx_http_eas_admin_user_key(ngx_http_request_t *r,
    ngx_str_t *value, ngx_str_t *key, ngx_str_t *json);
ngx_int_t ngx_http_eas_admin_user_refused(ngx_http_request_t *r,
    ngx_int_t rc, ngx_str_t *json);
ngx_int_t ngx_http_eas_admin_conflict(ngx_http_request_t *r,
    ngx_str_t *error, ngx_str_t *keys);
ngx_int_t ngx_http_eas_admin_user_identities(ngx_http_request_t *r,
    ngx_str_t *value, ngx_str_t **keys, ngx_uint_t *n);

/* what they share (..._admin_params.c) */
ngx_int_t ngx_http_eas_admin_params(ngx_http_request_t *r,
    char **names, char *empty);
ngx_int_t ngx_http_eas_admin_all(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_admin_audit_value(ngx_http_request_t *r,
    ngx_str_t *value, ngx_str_t *quoted);
ngx_int_t ngx_http_eas_admin_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_eas_admin_number(ngx_http_request_t *r,
    char *name, ngx_uint_t dflt, ngx_uint_t max, ngx_uint_t *n);
ngx_int_t ngx_http_eas_admin_value(ngx_str_t *value, size_t max);
ngx_int_t ngx_http_eas_admin_who(ngx_http_request_t *r,
    ngx_str_t *who);
void ngx_http_eas_admin_audit(ngx_http_request_t *r,
    const char *action, ngx_str_t *what);
ngx_int_t ngx_http_eas_admin_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);
ngx_int_t ngx_http_eas_admin_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);


#endif /* _NGX_HTTP_EAS_ADMIN_H_INCLUDED_ */
