
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


/*
 * The connection layer of the shared state (docs/scale-out.md).  Each
 * worker keeps two connections to Redis: one for commands, pipelined
 * (hiredis queues them; the write event is posted so that every command
 * of one pass of the event loop leaves in one write), and one that is
 * subscribed to the gateways' channel.  hiredis's asynchronous context
 * is attached to nginx's event loop by the small adapter below: its
 * socket becomes an ngx_connection_t, its read and write wishes nginx
 * events.  Nothing here ever blocks: the address is resolved when the
 * configuration is read, connect() is non-blocking, a connection that
 * is not ready within connect_timeout, or that leaves a command
 * unanswered for "timeout", is dropped and made again after a backoff.
 *
 * Whether Redis is up is kept per gateway in a small zone, so that the
 * workers log one line per change between them.
 */


#define NGX_HTTP_EAS_REDIS_RETRY_MIN  50        /* ms, first backoff */


typedef struct {
    ngx_atomic_t                 up;
    ngx_atomic_t                 downs;        /* changes to down */
    ngx_atomic_t                 fallbacks;    /* decisions without it */
    ngx_atomic_t                 commands;
    ngx_atomic_t                 inventory[4]; /* _redis_inventory.c */
} ngx_http_eas_redis_sh_t;


typedef struct {
    redisCallbackFn             *handler;
    void                        *data;
    void                        *next;
    ngx_uint_t                   counted;      /* in the link's inflight */
} ngx_http_eas_redis_call_t;


/*
 * What a reply from Redis may take: the socket's unread bytes past the
 * last whole reply, and the elements of an array.  Every reply of the
 * shared state is small; anything larger drops the connection.
 */
#define NGX_HTTP_EAS_REDIS_BUFFER_MAX    65536
#define NGX_HTTP_EAS_REDIS_ELEMENTS_MAX  16


static char *ngx_http_eas_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_eas_redis_param(ngx_conf_t *cf,
    ngx_http_eas_redis_conf_t *rcf, ngx_str_t *v);
static char *ngx_http_eas_redis_password(ngx_conf_t *cf,
    ngx_http_eas_redis_conf_t *rcf, ngx_str_t *file);
static void *ngx_http_eas_redis_create_conf(ngx_conf_t *cf);
static char *ngx_http_eas_redis_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_eas_redis_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_eas_redis_init_process(ngx_cycle_t *cycle);
static void ngx_http_eas_redis_exit_process(ngx_cycle_t *cycle);
static void ngx_http_eas_redis_connect(ngx_http_eas_redis_link_t *link);
static void ngx_http_eas_redis_retry(ngx_event_t *ev);
static void ngx_http_eas_redis_watch(ngx_event_t *ev);
static void ngx_http_eas_redis_drop(ngx_http_eas_redis_link_t *link,
    const char *why);
static void ngx_http_eas_redis_lost(ngx_http_eas_redis_link_t *link,
    const char *why);
static void ngx_http_eas_redis_state(ngx_uint_t up, const char *why);
static void ngx_http_eas_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_eas_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_eas_redis_on_auth(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_eas_redis_on_ready(redisAsyncContext *ac, void *reply,
    void *data);
static ngx_int_t ngx_http_eas_redis_send(ngx_http_eas_redis_link_t *link,
    redisCallbackFn *handler, void *data, int argc, const char **argv,
    const size_t *argvlen);
static void ngx_http_eas_redis_flush(ngx_http_eas_redis_link_t *link,
    redisAsyncContext *ac);
static ngx_int_t ngx_http_eas_redis_message(ngx_http_eas_redis_link_t *link,
    redisReply *rr);
static void *ngx_http_eas_redis_create_array(const redisReadTask *task,
    int elements);


static ngx_command_t  ngx_http_eas_redis_commands[] = {

    { ngx_string("eas_shared_state"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_eas_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_eas_redis_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_eas_redis_create_conf,        /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    ngx_http_eas_redis_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_eas_redis_module = {
    NGX_MODULE_V1,
    &ngx_http_eas_redis_module_ctx,        /* module context */
    ngx_http_eas_redis_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_eas_redis_init_process,       /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_eas_redis_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* this worker's: two connections, the configuration, a free list */

static ngx_http_eas_redis_link_t   ngx_http_eas_redis_cmd;
static ngx_http_eas_redis_link_t   ngx_http_eas_redis_sub;
static ngx_http_eas_redis_conf_t  *ngx_http_eas_redis_conf;
static ngx_http_eas_redis_sh_t    *ngx_http_eas_redis_sh;
static ngx_http_eas_redis_call_t  *ngx_http_eas_redis_free;
static ngx_uint_t                  ngx_http_eas_redis_worker_up;
static ngx_uint_t                  ngx_http_eas_redis_exiting;
static redisReplyObjectFunctions   ngx_http_eas_redis_fns;
static void                     *(*ngx_http_eas_redis_array)(
                                    const redisReadTask *task, int elements);
static time_t                      ngx_http_eas_redis_odd_logged;


static void *
ngx_http_eas_redis_create_conf(ngx_conf_t *cf)
{
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_redis_conf_t));
    if (rcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rcf->enabled = 0;
     *     rcf->db = 0;
     *     rcf->password = { 0, NULL };
     *     rcf->lockout_refuse = 0;
     */

    return rcf;
}


/*
 * Called for every location after the settings of the pre-auth
 * module are merged (it comes before in the module list): the longest
 * lockout time a location of this gateway sets in each pre-auth zone,
 * the cap of a lock another gateway announces on the channel.
 */

static char *
ngx_http_eas_redis_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_uint_t                       i;
    ngx_http_eas_preauth_conf_t     *pcf;
    ngx_http_eas_redis_conf_t       *rcf;
    ngx_http_eas_redis_lock_time_t  *lt;

    pcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_eas_preauth_module);
    rcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eas_redis_module);

    if (pcf == NULL || pcf->zone == NULL
        || pcf->lock_time == NGX_CONF_UNSET)
    {
        return NGX_CONF_OK;
    }

    if (rcf->lock_times == NULL) {
        rcf->lock_times = ngx_array_create(cf->pool, 4,
                                     sizeof(ngx_http_eas_redis_lock_time_t));
        if (rcf->lock_times == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    lt = rcf->lock_times->elts;

    for (i = 0; i < rcf->lock_times->nelts; i++) {
        if (lt[i].zone == pcf->zone) {
            lt[i].lock_time = ngx_max(lt[i].lock_time, pcf->lock_time);
            return NGX_CONF_OK;
        }
    }

    lt = ngx_array_push(rcf->lock_times);
    if (lt == NULL) {
        return NGX_CONF_ERROR;
    }

    lt->zone = pcf->zone;
    lt->lock_time = pcf->lock_time;

    return NGX_CONF_OK;
}


/* the cap of a lock in the zone announced by another gateway */

time_t
ngx_http_eas_redis_lock_time(ngx_shm_zone_t *zone)
{
    ngx_uint_t                       i;
    ngx_http_eas_redis_conf_t       *rcf;
    ngx_http_eas_redis_lock_time_t  *lt;

    rcf = ngx_http_eas_redis_conf;

    if (rcf != NULL && rcf->lock_times != NULL) {
        lt = rcf->lock_times->elts;

        for (i = 0; i < rcf->lock_times->nelts; i++) {
            if (lt[i].zone == zone) {
                return lt[i].lock_time;
            }
        }
    }

    /* no location of this gateway checks a lockout in the zone */

    return 0;
}


/*
 * eas_shared_state "redis://host[:port]" [db=N] [prefix=TEXT]
 *     [password_file=PATH] [connect_timeout=TIME] [timeout=TIME]
 *     [retry=TIME] [lockout_fallback=local|refuse];
 */

static char *
ngx_http_eas_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_redis_conf_t *rcf = conf;

    u_char           *p;
    size_t            len;
    ngx_str_t        *value, name;
    ngx_url_t         u;
    ngx_uint_t        i;
    u_char            node[8];

    if (rcf->enabled) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len > 9
        && ngx_strncasecmp(value[1].data, (u_char *) "rediss://", 9) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_shared_state\": TLS (\"rediss://\") is not "
                           "supported: hiredis 0.14 has no TLS; reach Redis "
                           "on a trusted network or through a TLS tunnel "
                           "(docs/scale-out.md)");
        return NGX_CONF_ERROR;
    }

    if (value[1].len <= 8
        || ngx_strncasecmp(value[1].data, (u_char *) "redis://", 8) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_shared_state\": \"%V\" is not a "
                           "\"redis://host:port\" address", &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = value[1].data + 8;
    u.url.len = value[1].len - 8;
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_shared_state\": %s in \"%V\"",
                           u.err ? u.err : "no address", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (u.addrs[0].sockaddr->sa_family != AF_INET
#if (NGX_HAVE_INET6)
        && u.addrs[0].sockaddr->sa_family != AF_INET6
#endif
       )
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_shared_state\": \"%V\" is not a TCP "
                           "address", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* the address as text, resolved now: hiredis would resolve blocking */

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                        NGX_SOCKADDR_STRLEN, 0);
    p[len] = '\0';

    rcf->host = (char *) p;
    rcf->port = ngx_inet_get_port(u.addrs[0].sockaddr);
    rcf->url = value[1];

    rcf->connect_timeout = 1000;
    rcf->timeout = 500;
    rcf->retry = 1000;
    ngx_str_set(&rcf->prefix, "eas:");
    rcf->device_ttl = 30 * 86400;
    rcf->flush = 2000;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_eas_redis_param(cf, rcf, &value[i]) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /*
     * the channel every gateway of the prefix and database listens to,
     * "<prefix>db<N>:events": Redis's pub/sub ignores the database, so
     * two clusters apart by "db=" alone would hear each other's locks
     */

    rcf->channel.data = ngx_pnalloc(cf->pool, rcf->prefix.len
                                              + sizeof("db:events") - 1
                                              + NGX_INT_T_LEN);
    if (rcf->channel.data == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->channel.len = ngx_sprintf(rcf->channel.data, "%Vdb%ui:events",
                                   &rcf->prefix, rcf->db)
                       - rcf->channel.data;

    /* this gateway's name on the channel: its own messages come back */

    if (RAND_bytes(node, sizeof(node)) != 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_shared_state\": no random bytes");
        return NGX_CONF_ERROR;
    }

    rcf->node.len = 2 * sizeof(node);
    rcf->node.data = ngx_pnalloc(cf->pool, rcf->node.len);
    if (rcf->node.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_hex_dump(rcf->node.data, node, sizeof(node));

    ngx_str_set(&name, "eas_shared_state");

    rcf->shm_zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                          &ngx_http_eas_redis_module);
    if (rcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->shm_zone->init = ngx_http_eas_redis_init_zone;
    rcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_eas_redis_param(ngx_conf_t *cf, ngx_http_eas_redis_conf_t *rcf,
    ngx_str_t *v)
{
    ngx_int_t    n;
    ngx_str_t    s;
    ngx_msec_t  *ms;

    if (v->len > 3 && ngx_strncmp(v->data, "db=", 3) == 0) {
        n = ngx_atoi(v->data + 3, v->len - 3);
        if (n == NGX_ERROR || n > 65535) {
            goto invalid;
        }

        rcf->db = n;
        return NGX_CONF_OK;
    }

    if (v->len > 7 && ngx_strncmp(v->data, "prefix=", 7) == 0) {
        rcf->prefix.data = v->data + 7;
        rcf->prefix.len = v->len - 7;

        if (rcf->prefix.len > 64) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_eas_redis_inventory_param(rcf, v) == NGX_OK) {
        return NGX_CONF_OK;
    }

    if (v->len > 14 && ngx_strncmp(v->data, "password_file=", 14) == 0) {
        s.data = v->data + 14;
        s.len = v->len - 14;
        return ngx_http_eas_redis_password(cf, rcf, &s);
    }

    if (v->len > 17 && ngx_strncmp(v->data, "lockout_fallback=", 17) == 0) {
        s.data = v->data + 17;
        s.len = v->len - 17;

        if (s.len == 5 && ngx_strncmp(s.data, "local", 5) == 0) {
            rcf->lockout_refuse = 0;

        } else if (s.len == 6 && ngx_strncmp(s.data, "refuse", 6) == 0) {
            rcf->lockout_refuse = 1;

        } else {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (v->len > 16 && ngx_strncmp(v->data, "connect_timeout=", 16) == 0) {
        ms = &rcf->connect_timeout;
        s.data = v->data + 16;
        s.len = v->len - 16;

    } else if (v->len > 8 && ngx_strncmp(v->data, "timeout=", 8) == 0) {
        ms = &rcf->timeout;
        s.data = v->data + 8;
        s.len = v->len - 8;

    } else if (v->len > 6 && ngx_strncmp(v->data, "retry=", 6) == 0) {
        ms = &rcf->retry;
        s.data = v->data + 6;
        s.len = v->len - 6;

    } else {
        goto invalid;
    }

    n = ngx_parse_time(&s, 0);
    if (n == NGX_ERROR || n == 0) {
        goto invalid;
    }

    *ms = (ngx_msec_t) n;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"eas_shared_state\": invalid parameter \"%V\"", v);

    return NGX_CONF_ERROR;
}


/* AUTH's password, from a file of one line (ngx_http_eas_secret_file) */

static char *
ngx_http_eas_redis_password(ngx_conf_t *cf, ngx_http_eas_redis_conf_t *rcf,
    ngx_str_t *file)
{
    static ngx_str_t  what =
        ngx_string("\"password_file\" of \"eas_shared_state\"");

    if (ngx_http_eas_secret_file(cf, file, &what, &rcf->password) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eas_redis_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_eas_redis_sh_t  *sh;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_eas_redis_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    /* assumed up: the first failure is worth a line */
    sh->up = 1;

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_eas_redis_conf_t  *rcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_eas_redis_module);
    if (rcf == NULL || !rcf->enabled) {
        return NGX_OK;
    }

    ngx_http_eas_redis_conf = rcf;
    ngx_http_eas_redis_sh = rcf->shm_zone->data;

    ngx_http_eas_redis_sub.subscriber = 1;

    ngx_http_eas_redis_connect(&ngx_http_eas_redis_cmd);
    ngx_http_eas_redis_connect(&ngx_http_eas_redis_sub);

    return NGX_OK;
}


/*
 * A worker that shut down gracefully must leave no socket open (nginx
 * alerts about each): both connections are freed, and not made again.
 */

static void
ngx_http_eas_redis_exit_process(ngx_cycle_t *cycle)
{
    redisAsyncContext  *ac;

    ngx_http_eas_redis_exiting = 1;

    ac = ngx_http_eas_redis_cmd.ac;

    if (ac) {
        ngx_http_eas_redis_cmd.ac = NULL;
        ngx_http_eas_redis_cmd.ready = 0;
        ngx_http_eas_redis_flush(&ngx_http_eas_redis_cmd, ac);
        redisAsyncFree(ac);
    }

    ac = ngx_http_eas_redis_sub.ac;

    if (ac) {
        ngx_http_eas_redis_sub.ac = NULL;
        ngx_http_eas_redis_sub.ready = 0;
        ngx_http_eas_redis_flush(&ngx_http_eas_redis_sub, ac);
        redisAsyncFree(ac);
    }

    ngx_http_eas_redis_conf = NULL;
}


ngx_http_eas_redis_conf_t *
ngx_http_eas_redis_get_conf(void)
{
    return ngx_http_eas_redis_conf;
}


static void
ngx_http_eas_redis_connect(ngx_http_eas_redis_link_t *link)
{
    redisAsyncContext          *ac;
    ngx_http_eas_redis_conf_t  *rcf;
    const char                 *argv[2];
    size_t                      argvlen[2];
    u_char                      db[NGX_INT_T_LEN];

    rcf = ngx_http_eas_redis_conf;

    link->retry.handler = ngx_http_eas_redis_retry;
    link->retry.data = link;
    link->retry.log = ngx_cycle->log;
    link->retry.cancelable = 1;

    link->watch.handler = ngx_http_eas_redis_watch;
    link->watch.data = link;
    link->watch.log = ngx_cycle->log;
    link->watch.cancelable = 1;

    link->connected = 0;
    link->ready = 0;
    link->inflight = 0;
    link->in_write = 0;
    link->want_write = 0;

    ac = redisAsyncConnect(rcf->host, (int) rcf->port);

    if (ac == NULL || ac->err) {
        ngx_http_eas_redis_lost(link, ac ? ac->errstr : "no memory");

        if (ac) {
            redisAsyncFree(ac);
        }

        return;
    }

    if (ngx_http_eas_redis_attach(ac, link) != NGX_OK) {
        redisAsyncFree(ac);
        ngx_http_eas_redis_lost(link, "no free connection");
        return;
    }

    /* the first write event tells that connect() is done */

    (void) redisAsyncSetConnectCallback(ac, ngx_http_eas_redis_on_connect);
    (void) redisAsyncSetDisconnectCallback(ac,
                                           ngx_http_eas_redis_on_disconnect);

    /*
     * Every reply is read here, not by hiredis's callbacks: its reader
     * takes no array of more than a few elements, and a reply that is
     * not what was asked for drops the connection (hiredis's own
     * subscribe handling asserts on such replies).
     */

    ngx_http_eas_redis_fns = *ac->c.reader->fn;
    ngx_http_eas_redis_array = ngx_http_eas_redis_fns.createArray;
    ngx_http_eas_redis_fns.createArray = ngx_http_eas_redis_create_array;
    ac->c.reader->fn = &ngx_http_eas_redis_fns;

    /* queued now, sent once connected: AUTH, SELECT, PING or SUBSCRIBE */

    if (rcf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) rcf->password.data;
        argvlen[1] = rcf->password.len;

        (void) ngx_http_eas_redis_send(link, ngx_http_eas_redis_on_auth, link,
                                       2, argv, argvlen);
    }

    if (rcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%ui", rcf->db) - db;

        (void) ngx_http_eas_redis_send(link, ngx_http_eas_redis_on_auth, link,
                                       2, argv, argvlen);
    }

    if (link->subscriber) {
        /* its confirmation and every message: ngx_http_eas_redis_message */
        argv[0] = "SUBSCRIBE";
        argvlen[0] = 9;
        argv[1] = (const char *) rcf->channel.data;
        argvlen[1] = rcf->channel.len;

        (void) ngx_http_eas_redis_send(link, NULL, NULL, 2, argv, argvlen);

    } else {
        argv[0] = "PING";
        argvlen[0] = 4;

        (void) ngx_http_eas_redis_send(link, ngx_http_eas_redis_on_ready,
                                       link, 1, argv, argvlen);
    }

    ngx_add_timer(&link->watch, rcf->connect_timeout);
}


static void
ngx_http_eas_redis_retry(ngx_event_t *ev)
{
    ngx_http_eas_redis_link_t  *link = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_http_eas_redis_exiting
        || link->ac)
    {
        return;
    }

    ngx_http_eas_redis_connect(link);
}


/* not ready in connect_timeout, or a command unanswered for "timeout" */

static void
ngx_http_eas_redis_watch(ngx_event_t *ev)
{
    ngx_http_eas_redis_link_t  *link = ev->data;

    if (link->ac == NULL) {
        return;
    }

    if (!link->ready) {
        ngx_http_eas_redis_drop(link, "connect timed out");
        return;
    }

    if (link->inflight == 0) {
        return;
    }

    if ((ngx_msec_int_t) (ngx_current_msec - link->busy_since)
        >= (ngx_msec_int_t) ngx_http_eas_redis_conf->timeout)
    {
        ngx_http_eas_redis_drop(link, "a command timed out");
        return;
    }

    ngx_add_timer(ev, ngx_http_eas_redis_conf->timeout
                      - (ngx_current_msec - link->busy_since));
}


/*
 * From nginx's side (a timer): the context is freed at once, every
 * command waiting on it is called back without a reply.
 */

static void
ngx_http_eas_redis_drop(ngx_http_eas_redis_link_t *link, const char *why)
{
    redisAsyncContext  *ac;

    ac = link->ac;

    ngx_http_eas_redis_lost(link, why);

    if (ac) {
        redisAsyncFree(ac);
    }
}


/* the link is gone: down, and made again after a backoff */

static void
ngx_http_eas_redis_lost(ngx_http_eas_redis_link_t *link, const char *why)
{
    ngx_msec_t          backoff;
    redisAsyncContext  *ac;

    /*
     * the backoff starts again from the shortest only after a link that
     * proved healthy: set up and kept for the longest backoff.  A server
     * that answers the setup and then says something nobody asked (a
     * rogue one, or not Redis) is dropped each time after a longer wait,
     * not 20 times a second.
     */

    if (link->ready
        && ngx_current_msec - link->ready_since
           >= ngx_http_eas_redis_conf->retry)
    {
        link->backoff = 0;
    }

    ac = link->ac;
    link->ac = NULL;
    link->connected = 0;
    link->ready = 0;
    link->inflight = 0;
    link->why = why;

    if (link->watch.timer_set) {
        ngx_del_timer(&link->watch);
    }

    /* every command still waiting is answered: no reply */
    ngx_http_eas_redis_flush(link, ac);

    if (ngx_http_eas_redis_exiting) {
        return;
    }

    if (!link->subscriber) {
        ngx_http_eas_redis_state(0, why);
    }

    if (ngx_exiting || ngx_terminate || link->retry.timer_set) {
        return;
    }

    backoff = link->backoff ? ngx_min(2 * link->backoff,
                                      ngx_http_eas_redis_conf->retry)
                            : NGX_HTTP_EAS_REDIS_RETRY_MIN;
    link->backoff = backoff;

    ngx_add_timer(&link->retry, backoff);
}


/* one line per change, for the whole gateway */

static void
ngx_http_eas_redis_state(ngx_uint_t up, const char *why)
{
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_conf;
    ngx_http_eas_redis_worker_up = up;

    if (up) {
        if (ngx_atomic_cmp_set(&ngx_http_eas_redis_sh->up, 0, 1)) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "eas: shared state \"%V\" is up again",
                          &rcf->url);
        }

        return;
    }

    if (ngx_atomic_cmp_set(&ngx_http_eas_redis_sh->up, 1, 0)) {
        (void) ngx_atomic_fetch_add(&ngx_http_eas_redis_sh->downs, 1);

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state \"%V\" is down (%s): lockouts "
                      "counted %s, device limits and Ping supersede on "
                      "this gateway only until it is back", &rcf->url, why,
                      rcf->lockout_refuse ? "nowhere, tries refused"
                                          : "on this gateway");
    }
}


static void
ngx_http_eas_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_eas_redis_link_t  *link = ac->data;

    if (link->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this */
        ngx_http_eas_redis_lost(link, ac->errstr);
        return;
    }

    link->connected = 1;
}


static void
ngx_http_eas_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_eas_redis_link_t  *link = ac->data;

    if (link->ac != ac) {
        return;
    }

    ngx_http_eas_redis_lost(link, status == REDIS_OK ? "disconnected"
                                                     : ac->errstr);
}


/* AUTH or SELECT refused: said once per change, the link made again */

static void
ngx_http_eas_redis_on_auth(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply                 *rr = reply;
    ngx_http_eas_redis_link_t  *link = data;

    if (link->ac != ac || rr == NULL) {
        return;
    }

    if (rr->type != REDIS_REPLY_ERROR) {
        if (rr->type != REDIS_REPLY_STATUS || rr->len != 2
            || ngx_strncmp(rr->str, "OK", 2) != 0)
        {
            /* not what Redis answers AUTH or SELECT: not Redis */
            ngx_http_eas_redis_drop(link, "an unexpected setup reply");
        }

        return;
    }

    if (!link->subscriber && ngx_http_eas_redis_sh->up) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state \"%V\" refused the connection's "
                      "setup: %*s (check \"password_file\" and \"db\")",
                      &ngx_http_eas_redis_conf->url, (size_t) rr->len,
                      rr->str);
    }

    ngx_http_eas_redis_drop(link, "refused");
}


static void
ngx_http_eas_redis_on_ready(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply                 *rr = reply;
    ngx_http_eas_redis_link_t  *link = data;

    if (link->ac != ac || rr == NULL || rr->type == REDIS_REPLY_ERROR) {
        return;
    }

    if (rr->type != REDIS_REPLY_STATUS || rr->len != 4
        || ngx_strncmp(rr->str, "PONG", 4) != 0)
    {
        /* not what Redis answers PING: not Redis, or it spoke first */
        ngx_http_eas_redis_drop(link, "an unexpected setup reply");
        return;
    }

    if (link->watch.timer_set) {
        ngx_del_timer(&link->watch);
    }

    link->ready = 1;
    link->ready_since = ngx_current_msec;
    ngx_http_eas_redis_state(1, NULL);
}


/*
 * A reply on the subscriber connection past its setup: the
 * confirmation of SUBSCRIBE, or a message on the channel.  Anything
 * else, NGX_ERROR: the connection is dropped.
 */

static ngx_int_t
ngx_http_eas_redis_message(ngx_http_eas_redis_link_t *link, redisReply *rr)
{
    redisReply                 **e;
    ngx_http_eas_redis_conf_t   *rcf;

    rcf = ngx_http_eas_redis_conf;

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 3) {
        return NGX_ERROR;
    }

    e = rr->element;

    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING
        || e[1]->len != rcf->channel.len
        || ngx_strncmp(e[1]->str, rcf->channel.data, rcf->channel.len) != 0)
    {
        return NGX_ERROR;
    }

    if (e[0]->len == 9 && ngx_strncmp(e[0]->str, "subscribe", 9) == 0
        && e[2]->type == REDIS_REPLY_INTEGER)
    {
        if (link->watch.timer_set) {
            ngx_del_timer(&link->watch);
        }

        link->ready = 1;
        link->ready_since = ngx_current_msec;
        ngx_http_eas_redis_rules_sync();
        ngx_http_eas_redis_inventory_fill();
        return NGX_OK;
    }

    if (e[0]->len == 7 && ngx_strncmp(e[0]->str, "message", 7) == 0
        && e[2]->type == REDIS_REPLY_STRING && link->ready)
    {
        ngx_http_eas_redis_event((u_char *) e[2]->str, e[2]->len);
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* hiredis's reader: an array of more elements than asked for is refused */

static void *
ngx_http_eas_redis_create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > NGX_HTTP_EAS_REDIS_ELEMENTS_MAX) {
        return NULL;        /* the reader fails: the connection is dropped */
    }

    return ngx_http_eas_redis_array(task, elements);
}


/*
 * The socket is readable (ngx_http_eas_redis_adapter.c): what it holds
 * is read, and each whole reply goes to the command that asked for it,
 * oldest first, or on the subscriber connection, to
 * ngx_http_eas_redis_message().  A reply nothing asked for, one the
 * reader cannot take, or more unread bytes than a reply may have drop
 * the connection (said once a minute): it is made again after a
 * backoff.
 */

void
ngx_http_eas_redis_read(ngx_http_eas_redis_link_t *link)
{
    void                       *reply, *data;
    const char                 *why;
    redisReader                *reader;
    redisCallbackFn            *handler;
    redisAsyncContext          *ac;
    ngx_http_eas_redis_call_t  *call;

    ac = link->ac;

    if (!(ac->c.flags & REDIS_CONNECTED)) {
        /* the write event ends connect() first, then replies can come */
        return;
    }

    if (redisBufferRead(&ac->c) != REDIS_OK) {
        ngx_http_eas_redis_drop(link, ac->c.err == REDIS_ERR_EOF
                                      ? "Server closed the connection"
                                      : "read failed");
        return;
    }

    reader = ac->c.reader;
    why = NULL;

    for ( ;; ) {
        reply = NULL;

        if (redisGetReplyFromReader(&ac->c, &reply) != REDIS_OK) {
            why = "a reply it could not read";
            break;
        }

        if (reply == NULL) {
            break;
        }

        call = link->calls;

        if (call) {
            link->calls = call->next;

            if (call->counted && link->inflight) {
                link->inflight--;
                link->busy_since = ngx_current_msec;
            }

            handler = call->handler;
            data = call->data;

            call->next = ngx_http_eas_redis_free;
            ngx_http_eas_redis_free = call;

            if (handler) {
                handler(ac, reply, data);
            }

        } else if (!link->subscriber
                   || ngx_http_eas_redis_message(link, reply) != NGX_OK)
        {
            why = "a reply nothing asked for";
        }

        freeReplyObject(reply);

        if (link->ac != ac) {
            /* dropped by a handler */
            return;
        }

        if (why) {
            break;
        }
    }

    if (why == NULL
        && reader->len - reader->pos > NGX_HTTP_EAS_REDIS_BUFFER_MAX)
    {
        why = "a reply larger than the shared state's";
    }

    if (why == NULL) {
        return;
    }

    if (ngx_time() - ngx_http_eas_redis_odd_logged >= 60) {
        ngx_http_eas_redis_odd_logged = ngx_time();

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state \"%V\" sent %s: connection "
                      "dropped (said once a minute)",
                      &ngx_http_eas_redis_conf->url, why);
    }

    ngx_http_eas_redis_drop(link, why);
}


/* a command written to the link's buffer; its reply comes in order */

static ngx_int_t
ngx_http_eas_redis_send(ngx_http_eas_redis_link_t *link,
    redisCallbackFn *handler, void *data, int argc, const char **argv,
    const size_t *argvlen)
{
    redisAsyncContext          *ac;
    ngx_http_eas_redis_call_t  *call, *last;

    ac = link->ac;
    call = NULL;

    if (handler || !link->subscriber) {
        call = ngx_http_eas_redis_free;

        if (call) {
            ngx_http_eas_redis_free = call->next;

        } else {
            call = ngx_alloc(sizeof(ngx_http_eas_redis_call_t),
                             ngx_cycle->log);
            if (call == NULL) {
                return NGX_ERROR;
            }
        }
    }

    if (redisAppendCommandArgv(&ac->c, argc, argv, argvlen) != REDIS_OK) {
        if (call) {
            call->next = ngx_http_eas_redis_free;
            ngx_http_eas_redis_free = call;
        }

        return NGX_ERROR;
    }

    if (call) {
        call->handler = handler;
        call->data = data;
        call->counted = 0;
        call->next = NULL;

        if (link->calls) {
            last = link->last;
            last->next = call;

        } else {
            link->calls = call;
        }

        link->last = call;
    }

    if (ac->ev.addWrite) {
        ac->ev.addWrite(ac->ev.data);
    }

    return NGX_OK;
}


/* the link is gone: each command waiting is called back without a reply */

static void
ngx_http_eas_redis_flush(ngx_http_eas_redis_link_t *link,
    redisAsyncContext *ac)
{
    ngx_http_eas_redis_call_t  *call, *next;

    call = link->calls;
    link->calls = NULL;
    link->last = NULL;

    for ( /* void */ ; call; call = next) {
        next = call->next;

        if (call->handler) {
            call->handler(ac, NULL, call->data);
        }

        call->next = ngx_http_eas_redis_free;
        ngx_http_eas_redis_free = call;
    }
}


/*
 * A command of the shared state, pipelined on this worker's command
 * connection.  NGX_DECLINED while Redis is down: the caller falls
 * back.  "handler" (may be NULL) is called exactly once, with NULL
 * when the link went away first.
 */

ngx_int_t
ngx_http_eas_redis_command(redisCallbackFn *handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_eas_redis_call_t  *call;
    ngx_http_eas_redis_link_t  *link;

    link = &ngx_http_eas_redis_cmd;

    if (ngx_http_eas_redis_conf == NULL || !link->ready) {
        if (ngx_http_eas_redis_sh) {
            (void) ngx_atomic_fetch_add(&ngx_http_eas_redis_sh->fallbacks,
                                        1);
        }

        return NGX_DECLINED;
    }

    if (ngx_http_eas_redis_send(link, handler, data, argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    call = link->last;
    call->counted = 1;

    (void) ngx_atomic_fetch_add(&ngx_http_eas_redis_sh->commands, 1);

    if (link->inflight++ == 0) {
        link->busy_since = ngx_current_msec;

        if (!link->watch.timer_set) {
            ngx_add_timer(&link->watch, ngx_http_eas_redis_conf->timeout);
        }
    }

    return NGX_OK;
}




/* the shared inventory's counters (ngx_http_eas_redis_inventory.c) */

ngx_atomic_t *
ngx_http_eas_redis_counters(void)
{
    return ngx_http_eas_redis_sh ? ngx_http_eas_redis_sh->inventory : NULL;
}


ngx_int_t
ngx_http_eas_redis_up(void)
{
    if (ngx_http_eas_redis_sh == NULL) {
        return -1;
    }

    return ngx_http_eas_redis_sh->up ? 1 : 0;
}


/*
 * Its part of eas_status: up or down (the gateway's view), the changes
 * to down, the decisions taken without it, the commands sent.
 */

u_char *
ngx_http_eas_redis_status(u_char *p, ngx_uint_t prometheus)
{
    ngx_http_eas_redis_sh_t  *sh;

    sh = ngx_http_eas_redis_sh;

    if (sh == NULL) {
        return p;
    }

    p = ngx_http_eas_redis_inventory_status(p, prometheus);

    if (!prometheus) {
        return ngx_sprintf(p, "\"shared_state\":{\"up\":%ui,\"downs\":%uA,"
                           "\"fallbacks\":%uA,\"commands\":%uA},\n",
                           sh->up ? 1 : 0, sh->downs, sh->fallbacks,
                           sh->commands);
    }

    return ngx_sprintf(p,
        "# HELP nginx_eas_shared_state_up Whether Redis of "
        "eas_shared_state answers.\n"
        "# TYPE nginx_eas_shared_state_up gauge\n"
        "nginx_eas_shared_state_up %ui\n"
        "# HELP nginx_eas_shared_state_down_total Changes of the shared "
        "state to down.\n"
        "# TYPE nginx_eas_shared_state_down_total counter\n"
        "nginx_eas_shared_state_down_total %uA\n"
        "# HELP nginx_eas_shared_state_fallbacks_total Commands not sent "
        "while it was down: decided on this gateway alone.\n"
        "# TYPE nginx_eas_shared_state_fallbacks_total counter\n"
        "nginx_eas_shared_state_fallbacks_total %uA\n"
        "# HELP nginx_eas_shared_state_commands_total Commands sent to "
        "Redis.\n"
        "# TYPE nginx_eas_shared_state_commands_total counter\n"
        "nginx_eas_shared_state_commands_total %uA\n",
        sh->up ? 1 : 0, sh->downs, sh->fallbacks, sh->commands);
}
