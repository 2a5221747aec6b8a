
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
#include "eas_ldap.h"


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
static ngx_uint_t ngx_http_eas_ldap_check_user(LDAP *ld,
    ngx_http_eas_ldap_task_t *t);
static ngx_uint_t ngx_http_eas_ldap_find(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, eas_user_t *user, char **dn);
static ngx_uint_t ngx_http_eas_ldap_read(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, char *dn);
static ngx_uint_t ngx_http_eas_ldap_member(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, char *dn);
static ngx_uint_t ngx_http_eas_ldap_group_has(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, const char *rule, char **dns, ngx_uint_t n);
static u_char *ngx_http_eas_ldap_or_filter(ngx_str_t *attr, const char *rule,
    char **dns, ngx_uint_t n);
static int ngx_http_eas_ldap_search(LDAP *ld, ngx_http_eas_ldap_task_t *t,
    char *base, int scope, char *filter, int limit, LDAPMessage **res);
static void ngx_http_eas_ldap_lists_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t);
static void ngx_http_eas_ldap_identity_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t);
static void ngx_http_eas_ldap_values(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t, ngx_str_t *attr, u_char kind);
static int ngx_http_eas_ldap_bind(LDAP *ld, char *dn, u_char *password,
    size_t len);
static ngx_uint_t ngx_http_eas_ldap_error(LDAP *ld,
    ngx_http_eas_ldap_task_t *t, int rc, const char *what);
static void ngx_http_eas_ldap_timeval(ngx_msec_t ms, struct timeval *tv);
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


static ngx_uint_t
ngx_http_eas_ldap_check_user(LDAP *ld, ngx_http_eas_ldap_task_t *t)
{
    int                   rc;
    char                 *dn;
    size_t                n;
    ngx_str_t            *d;
    ngx_uint_t            kind;
    eas_user_t            user;
    eas_str_t             domain;
    ngx_http_eas_ldap_t  *ldap;
    u_char                buf[EAS_LDAP_STRING_MAX];

    ldap = t->ldap;

    /* never an anonymous bind that "succeeds" */

    if (t->password_len == 0) {
        return NGX_HTTP_EAS_LDAP_INVALID;
    }

    if (eas_user_split(t->user, t->user_len, &user) != EAS_OK) {
        return NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    /*
     * %d: the directory's name of the domain sent (checked before the
     * task was posted), never the client's spelling of it
     */

    if (ldap->aliases) {
        d = ngx_http_eas_ldap_domain(ldap, (u_char *) user.domain.data,
                                     user.domain.len);
        if (d == NULL) {
            return NGX_HTTP_EAS_LDAP_UNKNOWN;
        }

        user.domain.data = d->data;
        user.domain.len = d->len;
    }

    domain.data = ldap->domain.data;
    domain.len = ldap->domain.len;

    if (ldap->bind.len == 0) {

        /* search then bind: the service account finds the entry */

        kind = ngx_http_eas_ldap_find(ld, t, &user, &dn);

        if (kind != NGX_HTTP_EAS_LDAP_OK) {
            return kind;
        }

        if (ldap->group.len) {
            kind = ngx_http_eas_ldap_member(ld, t, dn);

            if (kind != NGX_HTTP_EAS_LDAP_OK) {
                ldap_memfree(dn);
                return kind;
            }
        }

        rc = ngx_http_eas_ldap_bind(ld, dn, t->password, t->password_len);

        ldap_memfree(dn);

        if (rc == LDAP_INVALID_CREDENTIALS) {
            return NGX_HTTP_EAS_LDAP_INVALID;
        }

        if (rc != LDAP_SUCCESS) {
            return ngx_http_eas_ldap_error(ld, t, rc, "bind");
        }

        goto identity;
    }

    /* a DN template: the user binds, then reads its own entry */

    if (eas_ldap_expand(EAS_LDAP_DN, ldap->bind.data, ldap->bind.len, &user,
                        &domain, buf, sizeof(buf), &n)
        != EAS_OK)
    {
        return NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    rc = ngx_http_eas_ldap_bind(ld, (char *) buf, t->password,
                                t->password_len);

    if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INVALID_DN_SYNTAX) {
        return NGX_HTTP_EAS_LDAP_INVALID;
    }

    if (rc != LDAP_SUCCESS) {
        return ngx_http_eas_ldap_error(ld, t, rc, "bind");
    }

    if (ldap->filter.len) {
        kind = ngx_http_eas_ldap_find(ld, t, &user, &dn);

        if (kind != NGX_HTTP_EAS_LDAP_OK) {
            return kind;
        }

    } else {
        dn = (char *) buf;

        if (ldap->devices || ldap->identity.len) {
            kind = ngx_http_eas_ldap_read(ld, t, dn);

            if (kind != NGX_HTTP_EAS_LDAP_OK) {
                return kind;
            }
        }
    }

    kind = NGX_HTTP_EAS_LDAP_OK;

    if (ldap->group.len) {
        kind = ngx_http_eas_ldap_member(ld, t, dn);
    }

    if (dn != (char *) buf) {
        ldap_memfree(dn);
    }

    if (kind != NGX_HTTP_EAS_LDAP_OK) {
        return kind;
    }

identity:

    /* identity=: the directory names the user, or nobody passes */

    if (ldap->identity.len && !t->identity) {
        return NGX_HTTP_EAS_LDAP_NO_IDENTITY;
    }

    return NGX_HTTP_EAS_LDAP_OK;
}


/* the filter finds exactly one entry, read with the device lists */

static ngx_uint_t
ngx_http_eas_ldap_find(LDAP *ld, ngx_http_eas_ldap_task_t *t,
    eas_user_t *user, char **dn)
{
    int                   rc, count;
    size_t                n;
    eas_str_t             domain;
    LDAPMessage          *res, *e;
    ngx_http_eas_ldap_t  *ldap;
    u_char                filter[EAS_LDAP_STRING_MAX];

    ldap = t->ldap;

    domain.data = ldap->domain.data;
    domain.len = ldap->domain.len;

    if (eas_ldap_expand(EAS_LDAP_FILTER, ldap->filter.data, ldap->filter.len,
                        user, &domain, filter, sizeof(filter), &n)
        != EAS_OK)
    {
        return NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    if (ldap->bind.len == 0) {
        rc = ngx_http_eas_ldap_bind(ld, (char *) ldap->bind_dn.data,
                                    ldap->bind_password.data,
                                    ldap->bind_password.len);
        if (rc != LDAP_SUCCESS) {
            return ngx_http_eas_ldap_error(ld, t, rc,
                                           "bind of the service account");
        }
    }

    rc = ngx_http_eas_ldap_search(ld, t, (char *) ldap->base.data,
                                  ldap->scope, (char *) filter, 2, &res);

    if (rc == LDAP_SIZELIMIT_EXCEEDED) {
        ldap_msgfree(res);
        return NGX_HTTP_EAS_LDAP_AMBIGUOUS;
    }

    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, rc, "search");
    }

    count = ldap_count_entries(ld, res);

    if (count != 1) {
        ldap_msgfree(res);
        return count ? NGX_HTTP_EAS_LDAP_AMBIGUOUS
                     : NGX_HTTP_EAS_LDAP_UNKNOWN;
    }

    e = ldap_first_entry(ld, res);

    *dn = ldap_get_dn(ld, e);

    if (*dn == NULL) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, LDAP_NO_MEMORY, "entry");
    }

    ngx_http_eas_ldap_lists_read(ld, e, t);

    ldap_msgfree(res);

    return NGX_HTTP_EAS_LDAP_OK;
}


/* the device lists of the entry the user bound as */

static ngx_uint_t
ngx_http_eas_ldap_read(LDAP *ld, ngx_http_eas_ldap_task_t *t, char *dn)
{
    int           rc;
    LDAPMessage  *res, *e;

    rc = ngx_http_eas_ldap_search(ld, t, dn, LDAP_SCOPE_BASE,
                                  "(objectClass=*)", 1, &res);

    if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_INVALID_DN_SYNTAX) {
        /* a UPN or down-level bind name is not an entry: no lists */
        ldap_msgfree(res);
        return NGX_HTTP_EAS_LDAP_OK;
    }

    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, rc, "reading the entry");
    }

    e = ldap_first_entry(ld, res);

    if (e) {
        ngx_http_eas_ldap_lists_read(ld, e, t);
    }

    ldap_msgfree(res);

    return NGX_HTTP_EAS_LDAP_OK;
}


/*
 * The required group: its entry lists the user's DN in its member
 * attribute (a direct member).  With group_nested=, a member of a
 * member group counts too: first AD's LDAP_MATCHING_RULE_IN_CHAIN
 * (one search; other directories find nothing with it, slapd answers
 * success with no entry), then, with "on", a search that any directory
 * answers: the groups that list the user, then the groups that list
 * those, level by level up to group_depth=, each group once (a cycle
 * ends), asking at each level whether the required group lists one of
 * them.  Anything over the bounds is "not a member": fail closed.
 */

static ngx_uint_t
ngx_http_eas_ldap_member(LDAP *ld, ngx_http_eas_ldap_task_t *t, char *dn)
{
    int                   rc;
    char                **members, *d;
    char                 *attrs[2];
    u_char               *filter;
    ngx_uint_t            kind, depth, i, n, first, nvisited, over;
    LDAPMessage          *res, *e;
    struct timeval        tv;
    ngx_http_eas_ldap_t  *ldap;
    char                 *visited[NGX_HTTP_EAS_LDAP_GROUPS_MAX];

    ldap = t->ldap;

    kind = ngx_http_eas_ldap_group_has(ld, t, "", &dn, 1);

    if (kind != NGX_HTTP_EAS_LDAP_NOT_MEMBER
        || ldap->nested == NGX_HTTP_EAS_LDAP_NESTED_OFF)
    {
        return kind;
    }

    kind = ngx_http_eas_ldap_group_has(ld, t, ":1.2.840.113556.1.4.1941:",
                                       &dn, 1);

    if (kind != NGX_HTTP_EAS_LDAP_NOT_MEMBER
        || ldap->nested == NGX_HTTP_EAS_LDAP_NESTED_IN_CHAIN)
    {
        return kind;
    }

    attrs[0] = LDAP_NO_ATTRS;
    attrs[1] = NULL;

    /* visited[first .. nvisited) is the level found last */

    nvisited = 0;
    first = 0;
    over = 0;

    for (depth = 2; depth <= ldap->group_depth; depth++) {

        if (depth == 2) {
            members = &dn;
            n = 1;

        } else {
            members = &visited[first];
            n = nvisited - first;
        }

        filter = ngx_http_eas_ldap_or_filter(&ldap->member, "", members, n);
        if (filter == NULL) {
            break;
        }

        ngx_http_eas_ldap_timeval(ldap->timeout, &tv);

        res = NULL;

        rc = ldap_search_ext_s(ld, (char *) ldap->group_base.data,
                               LDAP_SCOPE_SUBTREE, (char *) filter, attrs, 0,
                               NULL, NULL, &tv, NGX_HTTP_EAS_LDAP_GROUPS_MAX,
                               &res);
        free(filter);

        if (rc == LDAP_SIZELIMIT_EXCEEDED) {
            ldap_msgfree(res);
            break;
        }

        if (rc != LDAP_SUCCESS) {
            ldap_msgfree(res);
            kind = ngx_http_eas_ldap_error(ld, t, rc, "nested group search");
            break;
        }

        first = nvisited;

        for (e = ldap_first_entry(ld, res); e; e = ldap_next_entry(ld, e)) {

            d = ldap_get_dn(ld, e);
            if (d == NULL) {
                continue;
            }

            /* each group once: a cycle ends here */

            for (i = 0; i < nvisited; i++) {
                if (ngx_strcasecmp((u_char *) visited[i], (u_char *) d)
                    == 0)
                {
                    break;
                }
            }

            if (i < nvisited) {
                ldap_memfree(d);
                continue;
            }

            if (nvisited == NGX_HTTP_EAS_LDAP_GROUPS_MAX) {
                ldap_memfree(d);
                over = 1;
                break;
            }

            visited[nvisited++] = d;
        }

        ldap_msgfree(res);

        if (over || nvisited == first) {
            break;
        }

        kind = ngx_http_eas_ldap_group_has(ld, t, "", &visited[first],
                                           nvisited - first);

        if (kind != NGX_HTTP_EAS_LDAP_NOT_MEMBER) {
            break;
        }
    }

    for (i = 0; i < nvisited; i++) {
        ldap_memfree(visited[i]);
    }

    return kind;
}


/* whether the group lists one of the DNs, with the matching rule */

static ngx_uint_t
ngx_http_eas_ldap_group_has(LDAP *ld, ngx_http_eas_ldap_task_t *t,
    const char *rule, char **dns, ngx_uint_t n)
{
    int                   rc, count;
    char                 *attrs[2];
    u_char               *filter;
    LDAPMessage          *res;
    struct timeval        tv;
    ngx_http_eas_ldap_t  *ldap;

    ldap = t->ldap;

    filter = ngx_http_eas_ldap_or_filter(&ldap->member, rule, dns, n);
    if (filter == NULL) {
        return NGX_HTTP_EAS_LDAP_NOT_MEMBER;
    }

    attrs[0] = LDAP_NO_ATTRS;
    attrs[1] = NULL;

    ngx_http_eas_ldap_timeval(ldap->timeout, &tv);

    res = NULL;

    rc = ldap_search_ext_s(ld, (char *) ldap->group.data, LDAP_SCOPE_BASE,
                           (char *) filter, attrs, 0, NULL, NULL, &tv, 1,
                           &res);
    free(filter);

    if (rc != LDAP_SUCCESS) {
        ldap_msgfree(res);
        return ngx_http_eas_ldap_error(ld, t, rc, "group search");
    }

    count = ldap_count_entries(ld, res);

    ldap_msgfree(res);

    return count == 1 ? NGX_HTTP_EAS_LDAP_OK : NGX_HTTP_EAS_LDAP_NOT_MEMBER;
}


/*
 * "(attr<rule>=dn)", or "(|(attr<rule>=dn1)(attr<rule>=dn2)...)", each
 * DN escaped per RFC 4515 by libldap; from libc, freed by the caller.
 */

static u_char *
ngx_http_eas_ldap_or_filter(ngx_str_t *attr, const char *rule, char **dns,
    ngx_uint_t n)
{
    size_t          size, rlen;
    u_char         *filter, *p, *last;
    ngx_uint_t      i;
    struct berval   in, value;

    rlen = ngx_strlen(rule);
    size = sizeof("(|)");

    for (i = 0; i < n; i++) {
        size += sizeof("(=)") + attr->len + rlen + 3 * ngx_strlen(dns[i]);
    }

    filter = malloc(size);
    if (filter == NULL) {
        return NULL;
    }

    p = filter;
    last = filter + size - 1;

    if (n > 1) {
        *p++ = '(';
        *p++ = '|';
    }

    for (i = 0; i < n; i++) {
        in.bv_val = dns[i];
        in.bv_len = ngx_strlen(dns[i]);

        if (ldap_bv2escaped_filter_value(&in, &value) != 0) {
            free(filter);
            return NULL;
        }

        p = ngx_snprintf(p, last - p, "(%V%s=%*s)", attr, rule,
                         value.bv_len, value.bv_val);

        ber_memfree(value.bv_val);
    }

    if (n > 1) {
        *p++ = ')';
    }

    *p = '\0';

    return filter;
}


/* the device list attributes are asked for with every user entry */

static int
ngx_http_eas_ldap_search(LDAP *ld, ngx_http_eas_ldap_task_t *t, char *base,
    int scope, char *filter, int limit, LDAPMessage **res)
{
    char                 *attrs[4];
    ngx_uint_t            n;
    struct timeval        tv;
    ngx_http_eas_ldap_t  *ldap;

    ldap = t->ldap;

    n = 0;

    if (ldap->devices) {
        attrs[n++] = (char *) ldap->allowed.data;
        attrs[n++] = (char *) ldap->blocked.data;
    }

    if (ldap->identity.len) {
        attrs[n++] = (char *) ldap->identity.data;
    }

    if (n == 0) {
        attrs[n++] = LDAP_NO_ATTRS;
    }

    attrs[n] = NULL;

    ngx_http_eas_ldap_timeval(ldap->timeout, &tv);

    *res = NULL;

    return ldap_search_ext_s(ld, base, scope, filter, attrs, 0, NULL, NULL,
                             &tv, limit, res);
}


static void
ngx_http_eas_ldap_lists_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t)
{
    ngx_http_eas_ldap_t  *ldap;

    ldap = t->ldap;

    if (ldap->identity.len) {
        ngx_http_eas_ldap_identity_read(ld, e, t);
    }

    if (!ldap->devices) {
        return;
    }

    ngx_http_eas_ldap_values(ld, e, t, &ldap->blocked,
                             NGX_HTTP_EAS_LDAP_BLOCKED);
    ngx_http_eas_ldap_values(ld, e, t, &ldap->allowed,
                             NGX_HTTP_EAS_LDAP_ALLOWED);
}


/*
 * identity=: the attribute's first value, folded as a user name is
 * (ngx_http_eas_fold()), as the first record of the encoded lists; a
 * value that is no user name (empty, too long, a control byte, not
 * UTF-8) is none.
 */

static void
ngx_http_eas_ldap_identity_read(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t)
{
    u_char          *p;
    size_t           i, len, n;
    struct berval  **vals;
    u_char           id[EAS_BASIC_USER_MAX];

    if (t->identity) {
        return;
    }

    vals = ldap_get_values_len(ld, e, (char *) t->ldap->identity.data);

    if (vals == NULL) {
        return;
    }

    len = vals[0] ? vals[0]->bv_len : 0;

    if (len == 0 || len > EAS_USER_MAX
        || ngx_http_eas_fold((u_char *) vals[0]->bv_val, len, id, sizeof(id),
                             &n)
           != NGX_OK)
    {
        ldap_value_free_len(vals);
        return;
    }

    ldap_value_free_len(vals);

    if (n > EAS_USER_MAX || n > 255
        || t->extra_len + 2 + n > NGX_HTTP_EAS_LDAP_EXTRA_MAX)
    {
        return;
    }

    for (i = 0; i < n; i++) {
        if (id[i] < 0x20 || id[i] == 0x7f) {
            return;
        }
    }

    p = t->extra + t->extra_len;

    p[0] = NGX_HTTP_EAS_LDAP_IDENTITY;
    p[1] = (u_char) n;
    ngx_memcpy(p + 2, id, n);

    t->extra_len += 2 + n;
    t->identity = 1;
}


static void
ngx_http_eas_ldap_values(LDAP *ld, LDAPMessage *e,
    ngx_http_eas_ldap_task_t *t, ngx_str_t *attr, u_char kind)
{
    u_char          *p;
    ngx_uint_t       i;
    struct berval  **vals;

    vals = ldap_get_values_len(ld, e, (char *) attr->data);

    if (vals == NULL) {
        return;
    }

    for (i = 0; vals[i]; i++) {

        if (vals[i]->bv_len == 0 || vals[i]->bv_len > EAS_DEVICE_ID_MAX) {
            continue;
        }

        if (t->extra_len + 2 + vals[i]->bv_len > NGX_HTTP_EAS_LDAP_EXTRA_MAX)
        {
            t->truncated = 1;
            break;
        }

        p = t->extra + t->extra_len;
        *p++ = kind;
        *p++ = (u_char) vals[i]->bv_len;
        ngx_memcpy(p, vals[i]->bv_val, vals[i]->bv_len);

        t->extra_len += 2 + vals[i]->bv_len;
    }

    ldap_value_free_len(vals);
}


static int
ngx_http_eas_ldap_bind(LDAP *ld, char *dn, u_char *password, size_t len)
{
    struct berval  cred;

    cred.bv_val = (char *) password;
    cred.bv_len = len;

    return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
                            NULL);
}


/* a server that does not answer is DOWN; any other error FAILED */

static ngx_uint_t
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


static void
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
