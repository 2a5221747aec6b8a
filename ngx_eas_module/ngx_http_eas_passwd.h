
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_PASSWD_H_INCLUDED_
#define _NGX_HTTP_EAS_PASSWD_H_INCLUDED_


/*
 * The password-file source's own header, shared by its two files:
 * ngx_http_eas_passwd.c (the file: read, validated, re-read) and
 * ngx_http_eas_passwd_hash.c (the hash kinds and their verification
 * in a thread).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <crypt.h>

#include "ngx_http_eas_module.h"


#define NGX_HTTP_EAS_HASH_MAX         255

#define NGX_HTTP_EAS_HASH_CRYPT       1   /* $2?$ $5$ $6$ $y$ $1$ */
#define NGX_HTTP_EAS_HASH_APR1        2
#define NGX_HTTP_EAS_HASH_SHA         3
#define NGX_HTTP_EAS_HASH_SSHA        4
#define NGX_HTTP_EAS_HASH_PLAIN       5


typedef struct {
    ngx_str_t               user;          /* normalised identity */
    ngx_str_t               hash;          /* NUL-terminated */
    ngx_uint_t              kind;
    ngx_uint_t              line;
} ngx_http_eas_passwd_entry_t;


typedef struct {
    ngx_uint_t              kind;
    ngx_uint_t              unknown;       /* no such user: refuse */
    ngx_int_t               result;        /* NGX_OK, _DECLINED, _ERROR */
    size_t                  password_len;
    size_t                  hash_len;
    u_char                  password[EAS_BASIC_PASSWORD_MAX + 1];
    u_char                  hash[NGX_HTTP_EAS_HASH_MAX + 1];
    struct crypt_data       crypt;
} ngx_http_eas_passwd_verify_t;


uint64_t ngx_http_eas_passwd_cost(ngx_http_eas_passwd_entry_t *e);
const char *ngx_http_eas_passwd_kind(ngx_str_t *hash,
    ngx_flag_t plain, ngx_uint_t *kind);


#endif /* _NGX_HTTP_EAS_PASSWD_H_INCLUDED_ */
