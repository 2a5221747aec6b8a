
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


/*
 * The upstream read timeout of each request of an "eas_longpoll on"
 * location (docs/longpoll-timeouts.md): what
 * ngx_http_eas_longpoll_read_timeout() says the request needs.
 *
 * Every upstream of the http block, named or implicit, proxy, fastcgi,
 * uwsgi, scgi or grpc alike, gets its peer.init wrapped after the
 * upstream module has initialized it (postconfiguration), so whatever
 * balancer and "keepalive" the block has, in whatever order, the wrapper
 * runs once per request, before the connection is made and the read
 * timer armed.  Only public interfaces are used: the upstream main
 * configuration at start-up, r->upstream->conf at run time.
 *
 * The request's upstream then points at a copy of the location's
 * upstream settings with the read timeout it needs.  The copies are
 * shared by every request of the worker that needs the same location
 * and timeout (a phone asks for one of a few intervals), so a held
 * request costs no copy of its own; the configuration itself is never
 * written.
 */


/* the canonical command name is static and NUL-terminated */
#define ngx_http_eas_command(ctx)  ((char *) (ctx)->request.command_name.data)

/* copies of upstream settings a worker keeps, then one per request */
#define NGX_HTTP_EAS_UPSTREAM_BUCKETS  256
#define NGX_HTTP_EAS_UPSTREAM_COPIES   1024


typedef struct {
    ngx_flag_t                        enabled;    /* obsolete directive */
    ngx_http_upstream_init_peer_pt    original_init_peer;
} ngx_http_eas_upstream_srv_conf_t;


typedef struct ngx_http_eas_upstream_copy_s  ngx_http_eas_upstream_copy_t;

struct ngx_http_eas_upstream_copy_s {
    ngx_http_eas_upstream_copy_t     *next;
    ngx_http_upstream_conf_t         *original;
    ngx_http_upstream_conf_t          conf;
};


/* per process: each worker fills its own after fork */
typedef struct {
    ngx_cycle_t                      *cycle;
    ngx_uint_t                        count;
    ngx_http_eas_upstream_copy_t     *buckets[NGX_HTTP_EAS_UPSTREAM_BUCKETS];
} ngx_http_eas_upstream_copies_t;


static ngx_int_t ngx_http_eas_upstream_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_eas_upstream_init_rr_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_eas_upstream_set_timeout(ngx_http_request_t *r);
static ngx_http_upstream_conf_t *ngx_http_eas_upstream_copy(
    ngx_http_request_t *r, ngx_http_upstream_conf_t *original,
    ngx_msec_t timeout);


static ngx_http_eas_upstream_copies_t  ngx_http_eas_upstream_copies;


/*
 * Kept so that configurations written for the wrapper of earlier
 * versions still load: every upstream is covered now, in any order.
 */

char *
ngx_http_eas_upstream_timeouts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eas_upstream_srv_conf_t *escf = conf;

    if (escf->enabled) {
        return "is duplicate";
    }

    escf->enabled = 1;

    return NGX_CONF_OK;
}


void *
ngx_http_eas_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_eas_upstream_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_upstream_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enabled = 0;
     *     conf->original_init_peer = NULL;
     */

    return conf;
}


/*
 * Postconfiguration: the upstream module's init_main_conf has run
 * every block's init_upstream (its balancer, keepalive, zone), so
 * peer.init is final whatever the order of the directives.  An implicit
 * upstream (proxy_pass to an address, no block) has no server
 * configuration to keep the original in; its peer.init can only be
 * round robin's, else it is left alone.
 */

ngx_int_t
ngx_http_eas_upstream_wrap(ngx_conf_t *cf)
{
    ngx_uint_t                          i;
    ngx_http_upstream_srv_conf_t      **uscfp;
    ngx_http_upstream_main_conf_t      *umcf;
    ngx_http_eas_upstream_srv_conf_t   *escf;

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);

    if (umcf == NULL) {
        return NGX_OK;
    }

    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        if (uscfp[i]->peer.init == NULL
            || uscfp[i]->peer.init == ngx_http_eas_upstream_init_peer
            || uscfp[i]->peer.init == ngx_http_eas_upstream_init_rr_peer)
        {
            continue;
        }

        if (uscfp[i]->srv_conf) {
            escf = ngx_http_conf_upstream_srv_conf(uscfp[i],
                                                   ngx_http_eas_module);
            escf->original_init_peer = uscfp[i]->peer.init;
            uscfp[i]->peer.init = ngx_http_eas_upstream_init_peer;
            continue;
        }

        if (uscfp[i]->peer.init == ngx_http_upstream_init_round_robin_peer) {
            uscfp[i]->peer.init = ngx_http_eas_upstream_init_rr_peer;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_upstream_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_eas_upstream_srv_conf_t  *escf;

    escf = ngx_http_conf_upstream_srv_conf(us, ngx_http_eas_module);

    if (escf->original_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_eas_upstream_set_timeout(r);
}


static ngx_int_t
ngx_http_eas_upstream_init_rr_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    if (ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_eas_upstream_set_timeout(r);
}


static ngx_int_t
ngx_http_eas_upstream_set_timeout(ngx_http_request_t *r)
{
    ngx_msec_t                 timeout;
    ngx_http_eas_ctx_t        *ctx;
    ngx_http_upstream_t       *u;
    ngx_http_upstream_conf_t  *conf;

    timeout = ngx_http_eas_longpoll_read_timeout(r);

    if (timeout == 0) {
        return NGX_OK;
    }

    ctx = ngx_http_eas_get_ctx(r);
    ctx->timeouts_set = 1;

    u = r->upstream;

    if (u->conf->read_timeout == timeout) {
        return NGX_OK;
    }

    conf = ngx_http_eas_upstream_copy(r, u->conf, timeout);
    if (conf == NULL) {
        return NGX_ERROR;
    }

    u->conf = conf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas upstream read timeout %M", timeout);

    return NGX_OK;
}


/*
 * The worker's copy of the location's upstream settings with this read
 * timeout, made at first need from the cycle's pool.  Past
 * NGX_HTTP_EAS_UPSTREAM_COPIES (intervals are any second from 1 to
 * 3540, so the number is bounded anyway) a request gets its own copy.
 */

static ngx_http_upstream_conf_t *
ngx_http_eas_upstream_copy(ngx_http_request_t *r,
    ngx_http_upstream_conf_t *original, ngx_msec_t timeout)
{
    ngx_uint_t                       key;
    ngx_http_upstream_conf_t        *conf;
    ngx_http_eas_upstream_copy_t    *copy;
    ngx_http_eas_upstream_copies_t  *copies;

    copies = &ngx_http_eas_upstream_copies;

    if (copies->cycle != ngx_cycle) {
        /* a new cycle (single-process reload): the old one's are gone */
        ngx_memzero(copies, sizeof(ngx_http_eas_upstream_copies_t));
        copies->cycle = (ngx_cycle_t *) ngx_cycle;
    }

    key = (((uintptr_t) original >> 4) ^ timeout)
          % NGX_HTTP_EAS_UPSTREAM_BUCKETS;

    for (copy = copies->buckets[key]; copy; copy = copy->next) {
        if (copy->original == original && copy->conf.read_timeout == timeout)
        {
            return &copy->conf;
        }
    }

    if (copies->count >= NGX_HTTP_EAS_UPSTREAM_COPIES) {
        conf = ngx_palloc(r->pool, sizeof(ngx_http_upstream_conf_t));
        if (conf == NULL) {
            return NULL;
        }

        ngx_memcpy(conf, original, sizeof(ngx_http_upstream_conf_t));
        conf->read_timeout = timeout;

        return conf;
    }

    copy = ngx_palloc(ngx_cycle->pool, sizeof(ngx_http_eas_upstream_copy_t));
    if (copy == NULL) {
        return NULL;
    }

    ngx_memcpy(&copy->conf, original, sizeof(ngx_http_upstream_conf_t));

    copy->conf.read_timeout = timeout;
    copy->original = original;
    copy->next = copies->buckets[key];

    copies->buckets[key] = copy;
    copies->count++;

    return &copy->conf;
}


/*
 * At the end of a long-poll, for what no wrapper could reach: a
 * proxy_pass with variables that resolves to no upstream block creates
 * its peers without peer.init.
 */

ngx_int_t
ngx_http_eas_longpoll_log_check(ngx_http_request_t *r)
{
    ngx_msec_t           need;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->longpoll || ctx->timeouts_set
        || r->upstream == NULL || r->upstream->conf == NULL)
    {
        return NGX_OK;
    }

    need = ngx_http_eas_longpoll_read_timeout(r);

    if (need != 0 && r->upstream->conf->read_timeout < need) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "eas: %s held for %T s went through an upstream "
                      "whose read timeout the module could not set "
                      "(an address in variables) and its read timeout "
                      "%Mms cannot hold it",
                      ngx_http_eas_command(ctx), ctx->heartbeat,
                      r->upstream->conf->read_timeout);
    }

    return NGX_OK;
}
