
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <crypt.h>
#include <grp.h>
#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"
#include "ngx_http_eas_passwd.h"


/*
 * The password-file credential source (docs/authentication.md): an
 * htpasswd file read once into a sorted table, validated line by line
 * at "nginx -t", re-read by each worker when the file changes (checked
 * at most once a second) and by every reload; the reading itself is in
 * ngx_http_eas_passwd_load.c.  Verification runs in a thread: it
 * touches only its ngx_http_eas_passwd_verify_t.
 */


/* supplementary groups of the worker user looked at by "nginx -t" */
#define NGX_HTTP_EAS_PASSWD_GROUPS  256


static void ngx_http_eas_passwd_cleanup(void *data);
static void ngx_http_eas_passwd_files_cleanup(void *data);
static ngx_int_t ngx_http_eas_passwd_reachable(u_char *path, ngx_uid_t uid,
    gid_t *groups, int ngroups, ngx_err_t *err);
static ngx_uint_t ngx_http_eas_passwd_may(ngx_file_info_t *fi, ngx_uid_t uid,
    gid_t *groups, int ngroups, ngx_uint_t bit);


/* the files of the configuration being read, for the worker user check */
static ngx_http_eas_passwd_t  *ngx_http_eas_passwd_files;
static ngx_pool_t             *ngx_http_eas_passwd_files_pool;


/* eas_preauth_user_file: loaded and checked now, so "nginx -t" fails */

ngx_http_eas_passwd_t *
ngx_http_eas_passwd_open(ngx_conf_t *cf, ngx_str_t *name, ngx_flag_t plain)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_eas_passwd_t  *pw;

    pw = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_passwd_t));
    if (pw == NULL) {
        return NULL;
    }

    pw->name = *name;
    pw->plain = plain;

    if (ngx_conf_full_name(cf->cycle, &pw->name, 1) != NGX_OK) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_eas_passwd_cleanup;
    cln->data = pw;

    if (ngx_http_eas_passwd_load(pw, cf, cf->log) != NGX_OK) {
        return NULL;
    }

    pw->checked = ngx_time();

    if (ngx_http_eas_passwd_files_pool != cf->pool) {
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NULL;
        }

        cln->handler = ngx_http_eas_passwd_files_cleanup;
        cln->data = cf->pool;

        ngx_http_eas_passwd_files_pool = cf->pool;
        ngx_http_eas_passwd_files = NULL;
    }

    pw->next = ngx_http_eas_passwd_files;
    ngx_http_eas_passwd_files = pw;

    return pw;
}


/*
 * From init_module, for "nginx -t" and each start: the master reads the
 * file as root, a worker re-reads it as the "user" of nginx.conf.  A file
 * that user cannot read keeps its first contents until the next reload,
 * whatever is written to it: say so now.  (Mode bits only: an ACL that
 * grants more is not seen, and the warning is then a false one.)
 */

void
ngx_http_eas_passwd_check_user(ngx_cycle_t *cycle)
{
    int                     ngroups;
    char                   *group;
    ngx_err_t               err;
    struct group           *gr;
    ngx_core_conf_t        *ccf;
    ngx_http_eas_passwd_t  *pw;
    gid_t                   groups[NGX_HTTP_EAS_PASSWD_GROUPS];

    if (ngx_http_eas_passwd_files_pool != cycle->pool
        || ngx_http_eas_passwd_files == NULL || geteuid() != 0)
    {
        return;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT || ccf->user == 0) {
        return;
    }

    ngroups = NGX_HTTP_EAS_PASSWD_GROUPS;

    if (ccf->username == NULL
        || getgrouplist(ccf->username, ccf->group, groups, &ngroups) < 0)
    {
        groups[0] = ccf->group;
        ngroups = 1;
    }

    gr = getgrgid(ccf->group);
    group = gr ? gr->gr_name : "?";

    for (pw = ngx_http_eas_passwd_files; pw; pw = pw->next) {

        if (ngx_http_eas_passwd_reachable(pw->name.data, ccf->user, groups,
                                          ngroups, &err)
            == NGX_OK)
        {
            continue;
        }

        ngx_log_error(NGX_LOG_WARN, cycle->log, err,
                      "eas_preauth_user_file \"%s\" cannot be read by the "
                      "worker user \"%s\": a change to it is not seen "
                      "until nginx is reloaded (owner root, group \"%s\", "
                      "mode 0640)", pw->name.data,
                      ccf->username ? ccf->username : "?", group);
    }
}


/* search permission on every directory of the path, read on the file */

static ngx_int_t
ngx_http_eas_passwd_reachable(u_char *path, ngx_uid_t uid, gid_t *groups,
    int ngroups, ngx_err_t *err)
{
    u_char           *p;
    u_char            c;
    ngx_file_info_t   fi;

    *err = 0;

    for (p = path + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }

        c = *p;
        *p = '\0';

        if (ngx_file_info(path, &fi) == NGX_FILE_ERROR) {
            *err = ngx_errno;
            *p = c;
            return NGX_ERROR;
        }

        *p = c;

        if (!ngx_http_eas_passwd_may(&fi, uid, groups, ngroups, 1)) {
            *err = NGX_EACCES;
            return NGX_ERROR;
        }
    }

    if (ngx_file_info(path, &fi) == NGX_FILE_ERROR) {
        *err = ngx_errno;
        return NGX_ERROR;
    }

    if (!ngx_http_eas_passwd_may(&fi, uid, groups, ngroups, 4)) {
        *err = NGX_EACCES;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* as the kernel decides: owner, else group, else other (bit: 4 r, 1 x) */

static ngx_uint_t
ngx_http_eas_passwd_may(ngx_file_info_t *fi, ngx_uid_t uid, gid_t *groups,
    int ngroups, ngx_uint_t bit)
{
    int  i;

    if (fi->st_uid == uid) {
        return (fi->st_mode >> 6) & bit;
    }

    for (i = 0; i < ngroups; i++) {
        if (fi->st_gid == groups[i]) {
            return (fi->st_mode >> 3) & bit;
        }
    }

    return fi->st_mode & bit;
}


/*
 * Called before each verification: a file that changed since the last
 * look (at most one stat() a second per worker) is read again; one that
 * no longer reads or parses keeps the previous table, with an error.
 */

void
ngx_http_eas_passwd_refresh(ngx_http_eas_passwd_t *pw, ngx_log_t *log)
{
    time_t           now;
    ngx_int_t        rc;
    ngx_err_t        err;
    struct timeval   tv;
    ngx_file_info_t  fi;

    now = ngx_time();

    if (pw->checked == now) {
        return;
    }

    pw->checked = now;

    /* a file that cannot be seen or read is reported once per change */

    if (ngx_file_info(pw->name.data, &fi) == NGX_FILE_ERROR) {
        err = ngx_errno;

        if (err != pw->stat_err) {
            pw->stat_err = err;

            ngx_log_error(NGX_LOG_ERR, log, err,
                          ngx_file_info_n " \"%s\" failed, "
                          "eas_preauth_user_file keeps the previous "
                          "contents", pw->name.data);
        }

        return;
    }

    pw->stat_err = 0;

    if (ngx_file_uniq(&fi) == pw->uniq
        && ngx_http_eas_passwd_mtime(&fi) == pw->mtime
        && ngx_http_eas_passwd_ctime(&fi) == pw->ctime
        && ngx_file_size(&fi) == pw->size)
    {
        return;
    }

    ngx_gettimeofday(&tv);

    rc = ngx_http_eas_passwd_load(pw, NULL, log);

    ngx_http_eas_metrics_file_load(rc == NGX_OK, &tv);

    if (rc == NGX_OK) {
        pw->stale = 0;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "eas: password file \"%s\" reloaded, %ui users",
                      pw->name.data, pw->nentries);
        return;
    }

    /* reported once: tried again when the file changes again */

    pw->stale = 1;
    pw->uniq = ngx_file_uniq(&fi);
    pw->mtime = ngx_http_eas_passwd_mtime(&fi);
    pw->ctime = ngx_http_eas_passwd_ctime(&fi);
    pw->size = ngx_file_size(&fi);
}


/*
 * $eas_auth_source_state: the file changed and its new contents are not
 * in use, or it cannot be looked at (a change would not be seen)
 */

ngx_uint_t
ngx_http_eas_passwd_stale(ngx_http_eas_passwd_t *pw)
{
    return pw->stale || pw->stat_err;
}


ngx_str_t *
ngx_http_eas_passwd_name(ngx_http_eas_passwd_t *pw)
{
    return &pw->name;
}


/* the identity of the current contents: part of every cache key */

u_char *
ngx_http_eas_passwd_source(ngx_http_eas_passwd_t *pw)
{
    return pw->source;
}


size_t
ngx_http_eas_passwd_verify_size(void)
{
    return sizeof(ngx_http_eas_passwd_verify_t);
}


/*
 * Copy what a verification needs into "data" (verify_size() bytes, a
 * thread task's context): the stored hash and the password.
 * NGX_DECLINED: nothing to verify against (an empty file).
 */

ngx_int_t
ngx_http_eas_passwd_find(ngx_http_eas_passwd_t *pw, ngx_str_t *user,
    ngx_str_t *password, void *data)
{
    ngx_int_t                      rc;
    ngx_uint_t                     lo, hi, mid;
    ngx_http_eas_passwd_entry_t   *e;
    ngx_http_eas_passwd_verify_t  *v = data;

    lo = 0;
    hi = pw->nentries;
    e = NULL;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        rc = ngx_memn2cmp(user->data, pw->entries[mid].user.data, user->len,
                          pw->entries[mid].user.len);

        if (rc == 0) {
            e = &pw->entries[mid];
            break;
        }

        if (rc < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    if (password->len > EAS_BASIC_PASSWORD_MAX || pw->nentries == 0) {
        return NGX_DECLINED;
    }

    /*
     * An unknown user costs the costliest hash of the file (whose answer
     * is then ignored): the time of a refusal does not tell which names
     * the file holds, whatever order its schemes come in.
     */

    v->unknown = (e == NULL);

    if (e == NULL) {
        e = &pw->entries[pw->costliest];

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "eas passwd: unknown user verified against the "
                       "costliest hash, line %ui", e->line);
    }

    v->kind = e->kind;
    v->result = NGX_ERROR;
    v->hash_len = e->hash.len;
    ngx_memcpy(v->hash, e->hash.data, e->hash.len + 1);
    v->password_len = password->len;
    ngx_memcpy(v->password, password->data, password->len);
    v->password[password->len] = '\0';

    return NGX_OK;
}


static void
ngx_http_eas_passwd_files_cleanup(void *data)
{
    if (ngx_http_eas_passwd_files_pool == data) {
        ngx_http_eas_passwd_files_pool = NULL;
        ngx_http_eas_passwd_files = NULL;
    }
}


static void
ngx_http_eas_passwd_cleanup(void *data)
{
    ngx_http_eas_passwd_t  *pw = data;

    if (pw->pool) {
        ngx_destroy_pool(pw->pool);
        pw->pool = NULL;
    }
}


