
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_LDAP_H_INCLUDED_
#define _NGX_HTTP_EAS_LDAP_H_INCLUDED_


/*
 * A directory of eas_ldap_server, shared by its directives
 * (ngx_http_eas_ldap_conf.c) and the code that asks it
 * (ngx_http_eas_ldap.c).  Read-only once the configuration is read:
 * pool threads read it.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_eas_module.h"


#define NGX_HTTP_EAS_LDAP_URLS        8

#define NGX_HTTP_EAS_LDAP_DEPTH_MAX        32

#define NGX_HTTP_EAS_LDAP_NESTED_OFF       0
#define NGX_HTTP_EAS_LDAP_NESTED_ON        1   /* in-chain, then search */
#define NGX_HTTP_EAS_LDAP_NESTED_IN_CHAIN  2   /* AD's rule only */


/* a domain name a user may send, and the domain it stands for */
typedef struct {
    ngx_str_t               name;          /* lower case */
    ngx_str_t              *domain;        /* as %d has it */
} ngx_http_eas_ldap_alias_t;


typedef struct {
    ngx_atomic_t            down;          /* 0, 1 */
    ngx_atomic_t            probe;         /* a request may try after */
    ngx_atomic_t            binds;         /* user binds attempted */
} ngx_http_eas_ldap_sh_t;


struct ngx_http_eas_ldap_s {
    ngx_str_t               name;
    ngx_str_t               urls[NGX_HTTP_EAS_LDAP_URLS]; /* with NUL */
    ngx_uint_t              nurls;
    ngx_flag_t              starttls;
    ngx_flag_t              verify;
    ngx_str_t               ca;            /* NUL-terminated, or empty */
    ngx_str_t               bind;          /* DN template */
    ngx_str_t               base;
    ngx_str_t               filter;        /* filter template */
    int                     scope;
    ngx_str_t               bind_dn;       /* service account */
    ngx_str_t               bind_password;
    ngx_str_t               group;
    ngx_str_t               member;        /* attribute of the group */
    ngx_uint_t              nested;        /* NGX_HTTP_EAS_LDAP_NESTED_* */
    ngx_uint_t              group_depth;   /* levels, direct is 1 */
    ngx_str_t               group_base;    /* where nested groups are */
    ngx_str_t               domain;        /* %d of a bare user name */
    ngx_array_t            *aliases;       /* ngx_http_eas_ldap_alias_t */
    ngx_str_t               identity;      /* attribute, or empty */
    ngx_uint_t              ndomains;      /* domain= parameters */
    ngx_str_t               allowed;       /* device list attributes */
    ngx_str_t               blocked;
    ngx_flag_t              devices;       /* read them */
    ngx_msec_t              connect_timeout;
    ngx_msec_t              timeout;
    time_t                  grace;
    time_t                  retry;
    ngx_shm_zone_t         *zone;
    ngx_http_eas_ldap_sh_t *sh;
    u_char                  source[NGX_HTTP_EAS_DIGEST_LEN];
};



/*
 * The thread side, shared by ngx_http_eas_ldap.c (connections, the
 * task) and ngx_http_eas_ldap_search.c (what is read from the
 * directory for one verification).
 */

#include <ldap.h>


#define NGX_HTTP_EAS_LDAP_HANDLES     16      /* directories per thread */
#define NGX_HTTP_EAS_LDAP_EXTRA_MAX   NGX_HTTP_EAS_EXTRA_MAX
#define NGX_HTTP_EAS_LDAP_MESSAGE     256
#define NGX_HTTP_EAS_LDAP_GROUPS_MAX  1024    /* nested groups visited */

/* what the directory said */
#define NGX_HTTP_EAS_LDAP_OK          0
#define NGX_HTTP_EAS_LDAP_INVALID     1       /* wrong password */
#define NGX_HTTP_EAS_LDAP_UNKNOWN     2       /* no entry for the name */
#define NGX_HTTP_EAS_LDAP_AMBIGUOUS   3       /* several entries */
#define NGX_HTTP_EAS_LDAP_NOT_MEMBER  4       /* not in the group */
#define NGX_HTTP_EAS_LDAP_DOWN        5       /* no server answered */
#define NGX_HTTP_EAS_LDAP_FAILED      6       /* an answer we cannot use */
#define NGX_HTTP_EAS_LDAP_NO_IDENTITY 7       /* no identity= attribute */

/* an entry of the encoded device lists: kind, length, DeviceId */
#define NGX_HTTP_EAS_LDAP_ALLOWED     'a'
#define NGX_HTTP_EAS_LDAP_BLOCKED     'b'
#define NGX_HTTP_EAS_LDAP_IDENTITY    'i'     /* first, if any */


/* one verification: everything the thread reads or writes */
typedef struct {
    ngx_http_eas_ldap_t    *ldap;
    ngx_uint_t              kind;          /* NGX_HTTP_EAS_LDAP_* */
    ngx_uint_t              url;           /* the server that answered */
    size_t                  user_len;
    size_t                  password_len;
    size_t                  extra_len;
    unsigned                truncated:1;   /* lists over the limit */
    unsigned                identity:1;    /* read from the entry */
    u_char                  user[EAS_BASIC_USER_MAX + 1];
    u_char                  password[EAS_BASIC_PASSWORD_MAX + 1];
    u_char                  message[NGX_HTTP_EAS_LDAP_MESSAGE];
    u_char                  extra[NGX_HTTP_EAS_LDAP_EXTRA_MAX];
} ngx_http_eas_ldap_task_t;

ngx_uint_t ngx_http_eas_ldap_check_user(LDAP *ld,
    ngx_http_eas_ldap_task_t *t);
int ngx_http_eas_ldap_bind(LDAP *ld, char *dn, u_char *password,
    size_t len);
ngx_uint_t ngx_http_eas_ldap_error(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, int rc, const char *what);
void ngx_http_eas_ldap_timeval(ngx_msec_t ms, struct timeval *tv);

char *ngx_http_eas_ldap_finish_conf(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_http_eas_ldap_t *ldap);


/* the directory a shared zone belongs to (ngx_http_eas_ldap_conf.c) */
ngx_http_eas_ldap_t *ngx_http_eas_ldap_of_zone(ngx_shm_zone_t *zone);
ngx_int_t ngx_http_eas_identity_value(ngx_http_eas_ldap_t *ldap, u_char *value,
    size_t len, u_char *dst, size_t size, size_t *n);


#endif /* _NGX_HTTP_EAS_LDAP_H_INCLUDED_ */
