
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
 * ngx_http_eas_redis_module, the shared state between gateways
 * (docs/scale-out.md): its directive eas_shared_state and the
 * parameters, the configuration, the gateway's small zone (whether
 * Redis is up, logged once per change; the counters) and its part of
 * eas_status.  Each worker's connections to Redis are in
 * ngx_http_eas_redis_link.c.
 */


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


static ngx_uint_t                  ngx_http_eas_redis_worker_up;


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


ngx_http_eas_redis_conf_t *
ngx_http_eas_redis_get_conf(void)
{
    return ngx_http_eas_redis_conf;
}


/* one line per change, for the whole gateway */

void
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

        ngx_http_eas_redis_inv_replay();
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


/* the shared inventory's counters (ngx_http_eas_redis_inventory.c) */

ngx_atomic_t *
ngx_http_eas_redis_counters(void)
{
    return ngx_http_eas_redis_sh ? ngx_http_eas_redis_sh->inventory : NULL;
}


/* whether this worker's command connection is set up */

ngx_uint_t
ngx_http_eas_redis_ready(void)
{
    return ngx_http_eas_redis_worker_up;
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
 * to down, the decisions taken without it, the commands sent, and how
 * many of the workers are subscribed to the channel (each worker's
 * subscription is a connection of its own: up while the command
 * connection may be up too).
 */

u_char *
ngx_http_eas_redis_status(u_char *p, ngx_uint_t prometheus)
{
    ngx_uint_t                n, workers;
    ngx_http_eas_redis_sh_t  *sh;

    sh = ngx_http_eas_redis_sh;

    if (sh == NULL) {
        return p;
    }

    p = ngx_http_eas_redis_inventory_status(p, prometheus);

    n = ngx_http_eas_redis_sub_count(&workers);

    if (!prometheus) {
        return ngx_sprintf(p, "\"shared_state\":{\"up\":%ui,\"downs\":%uA,"
                           "\"fallbacks\":%uA,\"commands\":%uA,"
                           "\"subscribed\":%ui,\"workers\":%ui},\n",
                           sh->up ? 1 : 0, sh->downs, sh->fallbacks,
                           sh->commands, n, workers);
    }

    p = ngx_sprintf(p,
        "# HELP nginx_eas_shared_state_subscribed Workers whose "
        "subscription to the gateways' channel is up.\n"
        "# TYPE nginx_eas_shared_state_subscribed gauge\n"
        "nginx_eas_shared_state_subscribed %ui\n"
        "# HELP nginx_eas_shared_state_workers Workers of this gateway "
        "(each subscribes).\n"
        "# TYPE nginx_eas_shared_state_workers gauge\n"
        "nginx_eas_shared_state_workers %ui\n", n, workers);

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
