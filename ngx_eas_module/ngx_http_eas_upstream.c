
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
 */


/* the canonical command name is static and NUL-terminated */
#define ngx_http_eas_command(ctx)  ((char *) (ctx)->request.command_name.data)


typedef struct {
    ngx_flag_t                        enabled;
    ngx_http_upstream_init_pt         original_init_upstream;
    ngx_http_upstream_init_peer_pt    original_init_peer;
} ngx_http_eas_upstream_srv_conf_t;


static ngx_int_t ngx_http_eas_upstream_init(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_eas_upstream_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);


extern ngx_module_t  ngx_http_proxy_module;


char *
ngx_http_eas_upstream_timeouts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eas_upstream_srv_conf_t *escf = conf;

    ngx_http_upstream_srv_conf_t  *uscf;

    if (escf->enabled) {
        return "is duplicate";
    }

    escf->enabled = 1;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    escf->original_init_upstream = uscf->peer.init_upstream
                                   ? uscf->peer.init_upstream
                                   : ngx_http_upstream_init_round_robin;

    uscf->peer.init_upstream = ngx_http_eas_upstream_init;

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
     *     conf->original_init_upstream = NULL;
     *     conf->original_init_peer = NULL;
     */

    return conf;
}


static ngx_int_t
ngx_http_eas_upstream_init(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_eas_upstream_srv_conf_t  *escf;

    escf = ngx_http_conf_upstream_srv_conf(us, ngx_http_eas_module);

    if (escf->original_init_upstream(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    escf->original_init_peer = us->peer.init;

    us->peer.init = ngx_http_eas_upstream_init_peer;

    return NGX_OK;
}


/*
 * Runs as the upstream is set up, before the connection is made and the
 * read timer armed: the request gets its own copy of the upstream
 * settings with the read timeout it needs (the configuration itself is
 * never written at run time).
 */

static ngx_int_t
ngx_http_eas_upstream_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_msec_t                         timeout;
    ngx_http_eas_ctx_t                *ctx;
    ngx_http_upstream_t               *u;
    ngx_http_upstream_conf_t          *conf;
    ngx_http_eas_upstream_srv_conf_t  *escf;

    escf = ngx_http_conf_upstream_srv_conf(us, ngx_http_eas_module);

    if (escf->original_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

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

    conf = ngx_palloc(r->pool, sizeof(ngx_http_upstream_conf_t));
    if (conf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(conf, u->conf, sizeof(ngx_http_upstream_conf_t));

    conf->read_timeout = timeout;
    u->conf = conf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas upstream read timeout %M", timeout);

    return NGX_OK;
}


/*
 * At start-up: a long-poll location whose proxy_pass names an upstream
 * without "eas_upstream_timeouts" keeps proxy_read_timeout, which must
 * then hold the maximum interval plus the margin.  proxy_pass with
 * variables is checked at first use (ngx_http_eas_longpoll_log_check()).
 * The proxy module's location configuration starts with its
 * ngx_http_upstream_conf_t, as every nginx version has it.
 */

ngx_int_t
ngx_http_eas_longpoll_check(ngx_conf_t *cf, ngx_http_eas_loc_conf_t *elcf)
{
    ngx_msec_t                         need;
    ngx_http_upstream_conf_t          *ucf;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_eas_upstream_srv_conf_t  *escf;

    if (!elcf->enable || !elcf->longpoll) {
        return NGX_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    ucf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_proxy_module);

    if (clcf == NULL || ucf == NULL || clcf->handler == NULL) {
        return NGX_OK;
    }

    uscf = ucf->upstream;

    if (uscf == NULL) {
        return NGX_OK;
    }

    if (uscf->srv_conf) {
        escf = ngx_http_conf_upstream_srv_conf(uscf, ngx_http_eas_module);

        if (escf->enabled) {
            return NGX_OK;
        }
    }

    need = (ngx_msec_t) elcf->heartbeat_max * 1000 + elcf->longpoll_margin;

    if (ucf->read_timeout < need) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "eas: \"proxy_read_timeout\" %Mms in location "
                           "\"%V\" cannot hold \"eas_heartbeat_max\" %Ts "
                           "plus \"eas_longpoll_margin\" %Mms: held Pings "
                           "will be cut with 504; add "
                           "\"eas_upstream_timeouts\" to upstream \"%V\"",
                           ucf->read_timeout, &clcf->name,
                           elcf->heartbeat_max, elcf->longpoll_margin,
                           &uscf->host);
    }

    return NGX_OK;
}


/* at first use, for what the start-up check could not see */

ngx_int_t
ngx_http_eas_longpoll_log_check(ngx_http_request_t *r)
{
    ngx_msec_t                need;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || !ctx->longpoll || ctx->timeouts_set
        || r->upstream == NULL || r->upstream->conf == NULL)
    {
        return NGX_OK;
    }

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    need = (ngx_msec_t) ctx->heartbeat * 1000 + elcf->longpoll_margin;

    if (r->upstream->conf->read_timeout < need) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "eas: %s held for %T s went through an upstream "
                      "without \"eas_upstream_timeouts\" and its read "
                      "timeout %Mms cannot hold it",
                      ngx_http_eas_command(ctx), ctx->heartbeat,
                      r->upstream->conf->read_timeout);
    }

    return NGX_OK;
}
