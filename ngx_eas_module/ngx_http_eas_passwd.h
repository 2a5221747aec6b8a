
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_PASSWD_H_INCLUDED_
#define _NGX_HTTP_EAS_PASSWD_H_INCLUDED_


/*
 * The password-file source's own header, shared by its three files:
 * ngx_http_eas_passwd.c (the file: opened, checked for the worker
 * user, re-read; a user looked up), ngx_http_eas_passwd_load.c (the
 * file read into its table) and ngx_http_eas_passwd_hash.c (the hash
 * kinds and their verification in a thread).
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


/* two writes within a second are two changes, where the system says */
#if (NGX_LINUX)
#define ngx_http_eas_passwd_mtime(fi)                                        \
    ((int64_t) (fi)->st_mtim.tv_sec * 1000000000 + (fi)->st_mtim.tv_nsec)
#define ngx_http_eas_passwd_ctime(fi)                                        \
    ((int64_t) (fi)->st_ctim.tv_sec * 1000000000 + (fi)->st_ctim.tv_nsec)
#else
#define ngx_http_eas_passwd_mtime(fi)  ((int64_t) ngx_file_mtime(fi))
#define ngx_http_eas_passwd_ctime(fi)  ((int64_t) (fi)->st_ctime)
#endif


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


struct ngx_http_eas_passwd_s {
    ngx_str_t               name;          /* NUL-terminated path */
    ngx_flag_t              plain;         /* {PLAIN} lines allowed */
    ngx_pool_t             *pool;          /* holds the current table */
    ngx_http_eas_passwd_entry_t  *entries;
    ngx_uint_t              nentries;
    ngx_uint_t              costliest;     /* entry an unknown user costs */
    ngx_file_uniq_t         uniq;
    int64_t                 mtime;         /* nanoseconds where known */
    int64_t                 ctime;         /* chmod, chown change it */
    off_t                   size;
    time_t                  checked;
    ngx_err_t               stat_err;      /* stat() fails now, logged */
    ngx_uint_t              stale;         /* changed, could not re-read */
    ngx_http_eas_passwd_t  *next;          /* of this configuration */
    u_char                  source[NGX_HTTP_EAS_DIGEST_LEN];
};


ngx_int_t ngx_http_eas_passwd_load(ngx_http_eas_passwd_t *pw,
    ngx_conf_t *cf, ngx_log_t *log);

uint64_t ngx_http_eas_passwd_cost(ngx_http_eas_passwd_entry_t *e);
const char *ngx_http_eas_passwd_kind(ngx_str_t *hash,
    ngx_flag_t plain, ngx_uint_t *kind);


#endif /* _NGX_HTTP_EAS_PASSWD_H_INCLUDED_ */
