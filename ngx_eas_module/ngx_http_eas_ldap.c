
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <pthread.h>
#include <ldap.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_ldap.h"


/*
 * The directory credential source at run time (docs/authentication.md,
 * "Directory"; the directives are in ngx_http_eas_ldap_conf.c):
 * OpenLDAP's libldap, called only from the thread pool.
 * Each pool thread keeps its own connection to each directory in
 * thread-specific data, reused from task to task, for the life of the
 * worker, and unbound when the worker exits; the thread function
 * touches only its task, its own thread data and the read-only
 * configuration.  Whether a directory is down is kept in a
 * small zone, so that all workers log one line per change and, while
 * it is down, only one request per "retry" time waits for it.
 */


/* a thread's connection to one directory */
typedef struct {
    ngx_http_eas_ldap_t    *ldap;
    LDAP                   *ld;
    ngx_uint_t              url;
} ngx_http_eas_ldap_handle_t;


typedef struct ngx_http_eas_ldap_thread_s  ngx_http_eas_ldap_thread_t;

struct ngx_http_eas_ldap_thread_s {
    ngx_http_eas_ldap_handle_t  handles[NGX_HTTP_EAS_LDAP_HANDLES];
    ngx_uint_t                  next;      /* replaced when all are used */
    pthread_mutex_t             mutex;     /* held during a task */
    ngx_http_eas_ldap_thread_t *link;      /* every thread's, for exit */
};


static void ngx_http_eas_ldap_key_create(void);
static ngx_http_eas_ldap_thread_t *ngx_http_eas_ldap_thread(void);
static ngx_http_eas_ldap_handle_t *ngx_http_eas_ldap_handle(
    ngx_http_eas_ldap_thread_t *th, ngx_http_eas_ldap_t *ldap);
static ngx_uint_t ngx_http_eas_ldap_connect(ngx_http_eas_ldap_handle_t *h,
    ngx_http_eas_ldap_task_t *t);
static void ngx_http_eas_ldap_close(ngx_http_eas_ldap_handle_t *h);
static ngx_int_t ngx_http_eas_ldap_lists_lookup(ngx_http_request_t *r,
    ngx_http_eas_lists_t *lists, ngx_http_eas_device_values_t *values,
    ngx_uint_t *access, ngx_str_t *reason);


static pthread_key_t   ngx_http_eas_ldap_key;
static pthread_once_t  ngx_http_eas_ldap_once = PTHREAD_ONCE_INIT;
static ngx_int_t       ngx_http_eas_ldap_key_error;

/* the data of every pool thread, unbound when the worker exits */
static pthread_mutex_t              ngx_http_eas_ldap_threads_mutex =
    PTHREAD_MUTEX_INITIALIZER;
static ngx_http_eas_ldap_thread_t  *ngx_http_eas_ldap_threads;

static ngx_str_t  ngx_http_eas_ldap_reason_allowed =
    ngx_string("directory:allowed");
static ngx_str_t  ngx_http_eas_ldap_reason_blocked =
    ngx_string("directory:blocked");


/*
 * While a directory is down, one request per "retry" time asks it
 * again; the others are answered at once (NGX_BUSY) instead of each
 * waiting for the timeouts in a thread.
 */

ngx_int_t
ngx_http_eas_ldap_available(ngx_http_eas_ldap_t *ldap)
{
    time_t        now;
    ngx_atomic_t  probe;

    if (!ldap->sh->down) {
        return NGX_OK;
    }

    now = ngx_time();
    probe = ldap->sh->probe;

    if ((ngx_atomic_uint_t) now >= probe
        && ngx_atomic_cmp_set(&ldap->sh->probe, probe, now + ldap->retry))
    {
        return NGX_OK;
    }

    return NGX_BUSY;
}


size_t
ngx_http_eas_ldap_verify_size(void)
{
    return sizeof(ngx_http_eas_ldap_task_t);
}


/* copies what the thread needs into its task; the password is wiped */

ngx_int_t
ngx_http_eas_ldap_prepare(ngx_http_eas_ldap_t *ldap, ngx_str_t *user,
    ngx_str_t *password, void *data)
{
    ngx_http_eas_ldap_task_t  *t = data;

    if (user->len > EAS_BASIC_USER_MAX
        || password->len > EAS_BASIC_PASSWORD_MAX)
    {
        return NGX_ERROR;
    }

    t->ldap = ldap;
    t->kind = NGX_HTTP_EAS_LDAP_FAILED;
    t->url = 0;
    t->extra_len = 0;
    t->truncated = 0;
    t->identity = 0;
    t->message[0] = '\0';

    t->user_len = user->len;
    ngx_memcpy(t->user, user->data, user->len);
    t->user[user->len] = '\0';

    t->password_len = password->len;
    ngx_memcpy(t->password, password->data, password->len);
    t->password[password->len] = '\0';

    return NGX_OK;
}


/*
 * The thread function: the connection this thread keeps to the
 * directory (made on first use), failing over to the next url when a
 * server does not answer.  A reused connection that fails is made
 * again once before the next server is tried: the server may have
 * restarted since.
 */

void
ngx_http_eas_ldap_verify(void *data, ngx_log_t *log)
{
    ngx_http_eas_ldap_task_t *t = data;

    ngx_uint_t                   tries, reused;
    ngx_http_eas_ldap_t         *ldap;
    ngx_http_eas_ldap_thread_t  *th;
    ngx_http_eas_ldap_handle_t  *h;

    ldap = t->ldap;

    th = ngx_http_eas_ldap_thread();

    if (th == NULL) {
        t->kind = NGX_HTTP_EAS_LDAP_FAILED;
        ngx_cpystrn(t->message, (u_char *) "no thread data",
                    NGX_HTTP_EAS_LDAP_MESSAGE);
        goto done;
    }

    (void) pthread_mutex_lock(&th->mutex);

    h = ngx_http_eas_ldap_handle(th, ldap);

    (void) ngx_atomic_fetch_add(&ldap->sh->binds, 1);

    reused = (h->ld != NULL);
    tries = 0;

    for ( ;; ) {

        t->url = h->url;

        if (h->ld == NULL) {
            t->kind = ngx_http_eas_ldap_connect(h, t);

        } else {
            t->kind = NGX_HTTP_EAS_LDAP_OK;
        }

        if (t->kind == NGX_HTTP_EAS_LDAP_OK) {
            t->kind = ngx_http_eas_ldap_check_user(h->ld, t);
        }

        if (t->kind != NGX_HTTP_EAS_LDAP_DOWN
            && t->kind != NGX_HTTP_EAS_LDAP_FAILED)
        {
            break;
        }

        ngx_http_eas_ldap_close(h);

        if (t->kind == NGX_HTTP_EAS_LDAP_FAILED && !reused) {
            break;
        }

        if (reused) {
            reused = 0;
            continue;
        }

        if (++tries == ldap->nurls) {
            break;
        }

        h->url = (h->url + 1) % ldap->nurls;
    }

    (void) pthread_mutex_unlock(&th->mutex);

done:

    ngx_explicit_memzero(t->password, sizeof(t->password));
}


/* in the event loop: what the thread found, the directory's state */

ngx_int_t
ngx_http_eas_ldap_result(void *data, ngx_log_t *log, ngx_str_t *extra)
{
    ngx_http_eas_ldap_task_t *t = data;

    ngx_http_eas_ldap_t  *ldap;

    ldap = t->ldap;

    extra->data = t->extra;
    extra->len = t->extra_len;

    if (t->kind == NGX_HTTP_EAS_LDAP_DOWN
        || t->kind == NGX_HTTP_EAS_LDAP_FAILED)
    {
        ldap->sh->probe = ngx_time() + ldap->retry;

        if (ngx_atomic_cmp_set(&ldap->sh->down, 0, 1)) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "eas: directory \"%V\" is down: %s; answering "
                          "503, asking it again every %T s",
                          &ldap->name, t->message, ldap->retry);
        }

        return NGX_ERROR;
    }

    if (ldap->sh->down && ngx_atomic_cmp_set(&ldap->sh->down, 1, 0)) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "eas: directory \"%V\" is up again at \"%V\"",
                      &ldap->name, &ldap->urls[t->url]);
    }

    if (t->truncated) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "eas: device lists of user \"%*s\" in directory "
                      "\"%V\" are over %uz bytes, the rest is ignored",
                      t->user_len, t->user, &ldap->name,
                      (size_t) NGX_HTTP_EAS_LDAP_EXTRA_MAX);
    }

    return (t->kind == NGX_HTTP_EAS_LDAP_OK) ? NGX_OK : NGX_DECLINED;
}


/* why a refusal, for the one log line of the request */

const char *
ngx_http_eas_ldap_refusal(void *data)
{
    ngx_http_eas_ldap_task_t *t = data;

    switch (t->kind) {

    case NGX_HTTP_EAS_LDAP_UNKNOWN:
        return "unknown user";

    case NGX_HTTP_EAS_LDAP_AMBIGUOUS:
        return "several directory entries for user";

    case NGX_HTTP_EAS_LDAP_NOT_MEMBER:
        return "not in the required group: user";

    case NGX_HTTP_EAS_LDAP_NO_IDENTITY:
        return "no identity attribute in the directory entry of user";

    default:
        return "invalid password for user";
    }
}


ngx_uint_t
ngx_http_eas_ldap_unknown(void *data)
{
    ngx_http_eas_ldap_task_t *t = data;

    return t->kind == NGX_HTTP_EAS_LDAP_UNKNOWN;
}


/*
 * Connections end with an unbind when the worker exits, from its exit
 * hook: that runs after nginx's thread pools have stopped (the thread
 * pool module is a core module, its exit hook comes first, and it
 * returns once every pool thread has taken its exit task), so no pool
 * thread is in a task any more.  A thread still in one (a pool whose
 * exit could not be posted) holds its mutex and keeps its connections
 * to the end of the process.  Not a thread-specific data destructor:
 * that would run while nginx's main thread goes on to exit(), racing
 * libldap's and the TLS library's own teardown.
 */

void
ngx_http_eas_ldap_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i, n;
    ngx_http_eas_ldap_thread_t  *th;

    n = 0;

    (void) pthread_mutex_lock(&ngx_http_eas_ldap_threads_mutex);

    for (th = ngx_http_eas_ldap_threads; th; th = th->link) {

        if (pthread_mutex_trylock(&th->mutex) != 0) {
            continue;
        }

        for (i = 0; i < NGX_HTTP_EAS_LDAP_HANDLES; i++) {
            if (th->handles[i].ld) {
                ngx_http_eas_ldap_close(&th->handles[i]);
                n++;
            }
        }

        (void) pthread_mutex_unlock(&th->mutex);
    }

    (void) pthread_mutex_unlock(&ngx_http_eas_ldap_threads_mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, cycle->log, 0,
                   "eas ldap: %ui connections unbound at exit", n);
}


static void
ngx_http_eas_ldap_key_create(void)
{
    if (pthread_key_create(&ngx_http_eas_ldap_key, NULL) != 0) {
        ngx_http_eas_ldap_key_error = 1;
    }
}


static ngx_http_eas_ldap_thread_t *
ngx_http_eas_ldap_thread(void)
{
    ngx_http_eas_ldap_thread_t  *th;

    if (pthread_once(&ngx_http_eas_ldap_once, ngx_http_eas_ldap_key_create)
        != 0
        || ngx_http_eas_ldap_key_error)
    {
        return NULL;
    }

    th = pthread_getspecific(ngx_http_eas_ldap_key);

    if (th) {
        return th;
    }

    /* thread data outlives any pool: libc, as libldap's own is */

    th = calloc(1, sizeof(ngx_http_eas_ldap_thread_t));
    if (th == NULL) {
        return NULL;
    }

    if (pthread_mutex_init(&th->mutex, NULL) != 0) {
        free(th);
        return NULL;
    }

    if (pthread_setspecific(ngx_http_eas_ldap_key, th) != 0) {
        (void) pthread_mutex_destroy(&th->mutex);
        free(th);
        return NULL;
    }

    (void) pthread_mutex_lock(&ngx_http_eas_ldap_threads_mutex);

    th->link = ngx_http_eas_ldap_threads;
    ngx_http_eas_ldap_threads = th;

    (void) pthread_mutex_unlock(&ngx_http_eas_ldap_threads_mutex);

    return th;
}


static ngx_http_eas_ldap_handle_t *
ngx_http_eas_ldap_handle(ngx_http_eas_ldap_thread_t *th,
    ngx_http_eas_ldap_t *ldap)
{
    ngx_uint_t                   i;
    ngx_http_eas_ldap_handle_t  *h;

    for (i = 0; i < NGX_HTTP_EAS_LDAP_HANDLES; i++) {
        if (th->handles[i].ldap == ldap) {
            return &th->handles[i];
        }
    }

    for (i = 0; i < NGX_HTTP_EAS_LDAP_HANDLES; i++) {
        if (th->handles[i].ldap == NULL) {
            break;
        }
    }

    if (i == NGX_HTTP_EAS_LDAP_HANDLES) {
        i = th->next;
        th->next = (th->next + 1) % NGX_HTTP_EAS_LDAP_HANDLES;
    }

    h = &th->handles[i];

    ngx_http_eas_ldap_close(h);

    h->ldap = ldap;
    h->url = 0;

    return h;
}


static ngx_uint_t
ngx_http_eas_ldap_connect(ngx_http_eas_ldap_handle_t *h,
    ngx_http_eas_ldap_task_t *t)
{
    int                   rc, n;
    LDAP                 *ld;
    struct timeval        tv;
    ngx_http_eas_ldap_t  *ldap;

    ldap = h->ldap;

    rc = ldap_initialize(&ld, (char *) ldap->urls[h->url].data);

    if (rc != LDAP_SUCCESS) {
        return ngx_http_eas_ldap_error(NULL, t, rc, "initialize");
    }

    h->ld = ld;

    n = LDAP_VERSION3;

    if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &n) != LDAP_OPT_SUCCESS
        || ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)
           != LDAP_OPT_SUCCESS)
    {
        return ngx_http_eas_ldap_error(NULL, t, LDAP_OTHER, "options");
    }

    ngx_http_eas_ldap_timeval(ldap->connect_timeout, &tv);

    if (ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv)
        != LDAP_OPT_SUCCESS)
    {
        return ngx_http_eas_ldap_error(NULL, t, LDAP_OTHER, "options");
    }

    ngx_http_eas_ldap_timeval(ldap->timeout, &tv);

    if (ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS) {
        return ngx_http_eas_ldap_error(NULL, t, LDAP_OTHER, "options");
    }

    n = ldap->verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;

    if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &n)
        != LDAP_OPT_SUCCESS
        || (ldap->ca.len
            && ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
                               ldap->ca.data)
               != LDAP_OPT_SUCCESS))
    {
        return ngx_http_eas_ldap_error(NULL, t, LDAP_OTHER, "TLS options");
    }

    /* a TLS context of this handle's own, with the options above */

    n = 0;

    if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &n) != LDAP_OPT_SUCCESS) {
        return ngx_http_eas_ldap_error(NULL, t, LDAP_OTHER,
                                       "TLS context (CA file)");
    }

    if (ldap->starttls) {
        rc = ldap_start_tls_s(ld, NULL, NULL);

        if (rc != LDAP_SUCCESS) {
            return ngx_http_eas_ldap_error(ld, t, rc, "StartTLS");
        }
    }

    return NGX_HTTP_EAS_LDAP_OK;
}


int
ngx_http_eas_ldap_bind(LDAP *ld, char *dn, u_char *password, size_t len)
{
    struct berval  cred;

    cred.bv_val = (char *) password;
    cred.bv_len = len;

    return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
                            NULL);
}


/* a server that does not answer is DOWN; any other error FAILED */

ngx_uint_t
ngx_http_eas_ldap_error(LDAP *ld, ngx_http_eas_ldap_task_t *t, int rc,
    const char *what)
{
    u_char  *p, *last;
    char    *diag;

    last = t->message + NGX_HTTP_EAS_LDAP_MESSAGE - 1;

    p = ngx_snprintf(t->message, last - t->message, "%s at \"%V\": %s",
                     what, &t->ldap->urls[t->url], ldap_err2string(rc));

    diag = NULL;

    if (ld
        && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag)
           == LDAP_OPT_SUCCESS
        && diag)
    {
        if (*diag) {
            p = ngx_snprintf(p, last - p, " (%s)", diag);
        }

        ldap_memfree(diag);
    }

    *p = '\0';

    switch (rc) {

    case LDAP_SERVER_DOWN:
    case LDAP_TIMEOUT:
    case LDAP_CONNECT_ERROR:
    case LDAP_UNAVAILABLE:
    case LDAP_BUSY:
        return NGX_HTTP_EAS_LDAP_DOWN;

    default:
        return NGX_HTTP_EAS_LDAP_FAILED;
    }
}


void
ngx_http_eas_ldap_timeval(ngx_msec_t ms, struct timeval *tv)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}


static void
ngx_http_eas_ldap_close(ngx_http_eas_ldap_handle_t *h)
{
    if (h->ld) {
        (void) ldap_unbind_ext_s(h->ld, NULL, NULL);
        h->ld = NULL;
    }
}


/*
 * eas_device_user_lists directory: the lists the directory gave with
 * the user's entry (msExchMobileBlockedDeviceIDs first), kept with the
 * credential in the pre-auth cache; DeviceIds compare without case.
 */

ngx_http_eas_lists_t *
ngx_http_eas_ldap_lists(ngx_conf_t *cf)
{
    ngx_http_eas_lists_t  *lists;

    lists = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_lists_t));
    if (lists == NULL) {
        return NULL;
    }

    lists->lookup = ngx_http_eas_ldap_lists_lookup;

    return lists;
}


ngx_uint_t
ngx_http_eas_ldap_lists_used(ngx_http_eas_lists_t *lists)
{
    return lists && lists->lookup == ngx_http_eas_ldap_lists_lookup;
}


/*
 * The identity the directory gave (identity=), from what it answered
 * or from the cache: the first record of the encoded lists.
 */

ngx_int_t
ngx_http_eas_ldap_identity(ngx_str_t *extra, ngx_str_t *identity)
{
    if (extra->len < 2 || extra->data[0] != NGX_HTTP_EAS_LDAP_IDENTITY
        || (size_t) extra->data[1] + 2 > extra->len)
    {
        return NGX_DECLINED;
    }

    identity->data = extra->data + 2;
    identity->len = extra->data[1];

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_ldap_lists_lookup(ngx_http_request_t *r,
    ngx_http_eas_lists_t *lists, ngx_http_eas_device_values_t *values,
    ngx_uint_t *access, ngx_str_t *reason)
{
    u_char              *p, *last, kind;
    size_t               len;
    ngx_str_t           *id;
    ngx_uint_t           allowed;
    ngx_http_eas_ctx_t  *ctx;

    *access = NGX_HTTP_EAS_ACCESS_NONE;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->directory_set) {
        return NGX_OK;
    }

    id = &values->value[NGX_HTTP_EAS_FIELD_DEVICE_ID];

    allowed = 0;
    p = ctx->directory.data;
    last = p + ctx->directory.len;

    while (last - p >= 2) {
        kind = p[0];
        len = p[1];
        p += 2;

        if ((size_t) (last - p) < len) {
            break;
        }

        if (len == id->len && ngx_strncasecmp(p, id->data, len) == 0) {
            if (kind == NGX_HTTP_EAS_LDAP_BLOCKED) {
                *access = NGX_HTTP_EAS_ACCESS_BLOCKED;
                *reason = ngx_http_eas_ldap_reason_blocked;
                return NGX_OK;
            }

            allowed |= (kind == NGX_HTTP_EAS_LDAP_ALLOWED);
        }

        p += len;
    }

    if (allowed) {
        *access = NGX_HTTP_EAS_ACCESS_ALLOWED;
        *reason = ngx_http_eas_ldap_reason_allowed;
    }

    return NGX_OK;
}
