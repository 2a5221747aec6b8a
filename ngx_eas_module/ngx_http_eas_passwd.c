
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
 * at most once a second) and by every reload.  Verification runs in a
 * thread: it touches only its ngx_http_eas_passwd_verify_t.
 */


#define NGX_HTTP_EAS_PASSWD_MAX_SIZE  (64 * 1024 * 1024)


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

/* supplementary groups of the worker user looked at by "nginx -t" */
#define NGX_HTTP_EAS_PASSWD_GROUPS  256


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


static ngx_int_t ngx_http_eas_passwd_load(ngx_http_eas_passwd_t *pw,
    ngx_conf_t *cf, ngx_log_t *log);
static ngx_int_t ngx_http_eas_passwd_parse(ngx_http_eas_passwd_t *pw,
    ngx_pool_t *pool, u_char *text, size_t size, ngx_array_t *entries,
    ngx_conf_t *cf, ngx_log_t *log);
static ngx_int_t ngx_http_eas_passwd_cmp(const void *one, const void *two);
static ngx_uint_t ngx_http_eas_passwd_costliest(
    ngx_http_eas_passwd_entry_t *e, ngx_uint_t n);
static void ngx_http_eas_passwd_error(ngx_http_eas_passwd_t *pw,
    ngx_conf_t *cf, ngx_log_t *log, ngx_uint_t line, const char *err,
    ngx_str_t *value);
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


static ngx_int_t
ngx_http_eas_passwd_load(ngx_http_eas_passwd_t *pw, ngx_conf_t *cf,
    ngx_log_t *log)
{
    u_char           *text;
    size_t            size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_uint_t        level;
    ngx_file_t        file;
    ngx_pool_t       *pool;
    ngx_array_t       entries;
    ngx_file_info_t   fi;

    fd = ngx_open_file(pw->name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (cf) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                               ngx_open_file_n " \"%s\" failed",
                               pw->name.data);
        } else {
            ngx_log_error(NGX_LOG_ERR, log, err,
                          ngx_open_file_n " \"%s\" failed, "
                          "eas_preauth_user_file keeps the previous "
                          "contents", pw->name.data);
        }

        return NGX_ERROR;
    }

    pool = NULL;
    text = NULL;
    size = 0;
    level = cf ? NGX_LOG_EMERG : NGX_LOG_ERR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(level, log, ngx_errno,
                      ngx_fd_info_n " \"%s\" failed", pw->name.data);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size > NGX_HTTP_EAS_PASSWD_MAX_SIZE) {
        ngx_log_error(level, log, 0,
                      "password file \"%s\" is too large", pw->name.data);
        goto failed;
    }

    /*
     * The table outlives the request that reloads it, and a table read
     * at configuration time lives as long as the new cycle: its pool logs
     * to the new cycle's log, not to cf->log, which during a reload is
     * the old cycle's and is freed with it.
     */

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE,
                           cf ? &cf->cycle->new_log : ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    text = ngx_alloc(size + 1, log);
    if (text == NULL) {
        goto failed;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = pw->name;
    file.log = log;

    n = ngx_read_file(&file, text, size, 0);

    if (n == NGX_ERROR) {
        goto failed;
    }

    if ((size_t) n != size) {
        ngx_log_error(level, log, 0,
                      ngx_read_file_n " \"%s\" returned only %z bytes "
                      "instead of %uz", pw->name.data, n, size);
        goto failed;
    }

    if (ngx_array_init(&entries, pool, 64,
                       sizeof(ngx_http_eas_passwd_entry_t))
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_http_eas_passwd_parse(pw, pool, text, size, &entries, cf, log)
        != NGX_OK)
    {
        goto failed;
    }

    if (EVP_Digest(text, size, pw->source, NULL, EVP_sha256(), NULL) != 1) {
        goto failed;
    }

    ngx_explicit_memzero(text, size);
    ngx_free(text);

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", pw->name.data);
    }

    if (pw->pool) {
        ngx_destroy_pool(pw->pool);
    }

    pw->pool = pool;
    pw->entries = entries.elts;
    pw->nentries = entries.nelts;
    pw->costliest = ngx_http_eas_passwd_costliest(entries.elts,
                                                  entries.nelts);
    pw->uniq = ngx_file_uniq(&fi);
    pw->mtime = ngx_http_eas_passwd_mtime(&fi);
    pw->ctime = ngx_http_eas_passwd_ctime(&fi);
    pw->size = ngx_file_size(&fi);

    return NGX_OK;

failed:

    if (text) {
        ngx_explicit_memzero(text, size);
        ngx_free(text);
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", pw->name.data);
    }

    return NGX_ERROR;
}


/*
 * "user:hash" per line as htpasswd writes it; empty lines and lines
 * starting with "#" are skipped, a final "\r" is dropped.  Every
 * malformed line is reported; one is enough to refuse the file.
 */

static ngx_int_t
ngx_http_eas_passwd_parse(ngx_http_eas_passwd_t *pw, ngx_pool_t *pool,
    u_char *text, size_t size, ngx_array_t *entries, ngx_conf_t *cf,
    ngx_log_t *log)
{
    u_char                        *p, *end, *eol, *colon;
    size_t                         n;
    ngx_str_t                      user, hash;
    ngx_uint_t                     line, i, bad, kind;
    const char                    *err;
    ngx_http_eas_passwd_entry_t   *e;
    u_char                         id[EAS_BASIC_USER_MAX];

    bad = 0;
    line = 0;
    end = text + size;

    for (p = text; p < end; p = eol + 1) {

        line++;

        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        n = eol - p;

        if (n && p[n - 1] == '\r') {
            n--;
        }

        if (n == 0 || p[0] == '#') {
            continue;
        }

        colon = ngx_strlchr(p, p + n, ':');

        if (colon == NULL) {
            ngx_http_eas_passwd_error(pw, cf, log, line, "no colon", NULL);
            bad++;
            continue;
        }

        user.data = p;
        user.len = colon - p;
        hash.data = colon + 1;
        hash.len = p + n - hash.data;

        /* the name as a device's would be: ngx_http_eas_user_identity() */

        if (user.len > EAS_BASIC_USER_MAX
            || ngx_http_eas_user_identity(NULL, user.data, user.len, id,
                                          sizeof(id), &n)
               != NGX_OK)
        {
            ngx_http_eas_passwd_error(pw, cf, log, line, "invalid user name",
                                      NULL);
            bad++;
            continue;
        }

        err = ngx_http_eas_passwd_kind(&hash, pw->plain, &kind);

        if (err) {
            ngx_http_eas_passwd_error(pw, cf, log, line, err, NULL);
            bad++;
            continue;
        }

        e = ngx_array_push(entries);
        if (e == NULL) {
            return NGX_ERROR;
        }

        e->user.data = ngx_pnalloc(pool, n);
        e->hash.data = ngx_pnalloc(pool, hash.len + 1);

        if (e->user.data == NULL || e->hash.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(e->user.data, id, n);
        e->user.len = n;
        ngx_memcpy(e->hash.data, hash.data, hash.len);
        e->hash.data[hash.len] = '\0';
        e->hash.len = hash.len;
        e->kind = kind;
        e->line = line;
    }

    ngx_sort(entries->elts, entries->nelts,
             sizeof(ngx_http_eas_passwd_entry_t), ngx_http_eas_passwd_cmp);

    e = entries->elts;

    for (i = 1; i < entries->nelts; i++) {
        if (ngx_memn2cmp(e[i].user.data, e[i - 1].user.data, e[i].user.len,
                         e[i - 1].user.len)
            == 0)
        {
            ngx_http_eas_passwd_error(pw, cf, log,
                                      ngx_max(e[i].line, e[i - 1].line),
                                      "duplicate user", &e[i].user);
            bad++;
        }
    }

    return bad ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_eas_passwd_cmp(const void *one, const void *two)
{
    const ngx_http_eas_passwd_entry_t  *a = one;
    const ngx_http_eas_passwd_entry_t  *b = two;

    return ngx_memn2cmp(a->user.data, b->user.data, a->user.len,
                        b->user.len);
}


static ngx_uint_t
ngx_http_eas_passwd_costliest(ngx_http_eas_passwd_entry_t *e, ngx_uint_t n)
{
    uint64_t    cost, max;
    ngx_uint_t  i, costliest;

    max = 0;
    costliest = 0;

    for (i = 0; i < n; i++) {
        cost = ngx_http_eas_passwd_cost(&e[i]);

        if (cost > max) {
            max = cost;
            costliest = i;
        }
    }

    return costliest;
}


/* "file:line: what" as nginx -t or the error log shows it */

static void
ngx_http_eas_passwd_error(ngx_http_eas_passwd_t *pw, ngx_conf_t *cf,
    ngx_log_t *log, ngx_uint_t line, const char *err, ngx_str_t *value)
{
    if (cf) {
        if (value) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "eas_preauth_user_file \"%s:%ui\": %s \"%V\"",
                               pw->name.data, line, err, value);
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "eas_preauth_user_file \"%s:%ui\": %s",
                               pw->name.data, line, err);
        }

        return;
    }

    if (value) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "eas_preauth_user_file \"%s:%ui\": %s \"%V\", the "
                      "previous contents stay in use", pw->name.data, line,
                      err, value);
    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "eas_preauth_user_file \"%s:%ui\": %s, the previous "
                      "contents stay in use", pw->name.data, line, err);
    }
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


