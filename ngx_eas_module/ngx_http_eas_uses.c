
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Which concerns the configuration uses anywhere, so that a request
 * pays nothing for one that no place of the configuration has: the
 * phase handlers and steps of pre-authentication, device access,
 * long-poll and the metrics join the phases only when some level uses
 * them (their modules' postconfiguration asks ngx_http_eas_uses()).
 *
 * Every level a request can run in is seen here: the core module's
 * merge records each server and location configuration as nginx merges
 * it (nginx merges every location before any postconfiguration: nested
 * ones, named ones, regular expressions, and the "if" and "limit_except"
 * blocks, which it merges as locations but keeps out of its location
 * trees), with the settings of the http and server levels inherited.
 * A concern counts as used where its own switch is on, whether "eas" is
 * on there or not (a request parsed elsewhere can be redirected there),
 * so a handler is never left out where it could act; the metrics,
 * counted only where "eas" is on, count as used when some level has
 * "eas on" and "eas_metrics" is on.  The bits are kept in the main
 * configuration: per cycle, never in a global that a reload failing
 * later would leave behind.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_longpoll.h"


/* from the core module's merge: the level being merged */

ngx_int_t
ngx_http_eas_uses_level(ngx_conf_t *cf)
{
    void                     ***level;
    ngx_http_conf_ctx_t        *ctx;
    ngx_http_eas_main_conf_t   *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eas_module);
    ctx = cf->ctx;

    level = ngx_array_push(&emcf->levels);
    if (level == NULL) {
        return NGX_ERROR;
    }

    *level = ctx->loc_conf;

    return NGX_OK;
}


/* from the core module's postconfiguration: every module is merged */

void
ngx_http_eas_uses_find(ngx_conf_t *cf)
{
    void                          ***level, **lc;
    ngx_uint_t                        i, uses, eas;
    ngx_http_eas_main_conf_t         *emcf;
    ngx_http_eas_loc_conf_t          *elcf;
    ngx_http_eas_preauth_conf_t      *pcf;
    ngx_http_eas_devices_conf_t      *dcf;
    ngx_http_eas_longpoll_conf_t     *lpcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eas_module);

    level = emcf->levels.elts;
    uses = 0;
    eas = 0;

    for (i = 0; i < emcf->levels.nelts; i++) {
        lc = level[i];

        elcf = lc[ngx_http_eas_module.ctx_index];
        pcf = lc[ngx_http_eas_preauth_module.ctx_index];
        dcf = lc[ngx_http_eas_devices_module.ctx_index];
        lpcf = lc[ngx_http_eas_longpoll_module.ctx_index];

        if (elcf->enable) {
            eas = 1;
        }

        if (pcf->realm.len) {
            uses |= NGX_HTTP_EAS_USES_PREAUTH;
        }

        if (dcf->device_check) {
            uses |= NGX_HTTP_EAS_USES_DEVICES;
        }

        if (lpcf->longpoll) {
            uses |= NGX_HTTP_EAS_USES_LONGPOLL;
        }
    }

    if (eas && emcf->metrics) {
        uses |= NGX_HTTP_EAS_USES_METRICS;
    }

    emcf->uses = uses;

    /* the levels are not needed once the phases are known */

    emcf->levels.nelts = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cf->log, 0, "eas uses: %ui", uses);
}


ngx_uint_t
ngx_http_eas_uses(ngx_conf_t *cf, ngx_uint_t concern)
{
    ngx_http_eas_main_conf_t  *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_eas_module);

    return emcf->uses & concern;
}
