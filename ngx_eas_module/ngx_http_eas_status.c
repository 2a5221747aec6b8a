
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"
#include "ngx_http_eas_status.h"


/*
 * "eas_status [json|prometheus]": the counters of every worker, summed,
 * and the use of every eas zone, as JSON or in Prometheus' text
 * exposition format 0.0.4 (docs/operations.md).  The format is the
 * directive's, unless the request asks: "?format=json|prometheus", else
 * an Accept naming text/plain or OpenMetrics (what Prometheus sends).
 * The slots are read without a lock: each word is read whole, the sum
 * is as exact as a scrape needs.  A zone's own lock is taken only to
 * read its entry count.
 */


#define NGX_HTTP_EAS_STATUS_JSON        0
#define NGX_HTTP_EAS_STATUS_PROMETHEUS  1


/* the longest sample line, beside its zone name */
#define NGX_HTTP_EAS_STATUS_LINE        192

/* sample lines at most, beside those of the zones */
#define NGX_HTTP_EAS_STATUS_LINES                                             \
    (64 + NGX_HTTP_EAS_M_SINGLES + NGX_HTTP_EAS_M_REFUSALS                    \
     + NGX_HTTP_EAS_M_AUTHS + EAS_REASON_LAST + NGX_HTTP_EAS_M_VERDICTS       \
     + NGX_HTTP_EAS_M_EAS_STATUSES                                            \
     + NGX_HTTP_EAS_M_COMMANDS                                                \
       * (NGX_HTTP_EAS_M_DECISIONS + NGX_HTTP_EAS_M_CLASSES))


static ngx_int_t ngx_http_eas_status_json_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_status_prometheus_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_status_handler(ngx_http_request_t *r,
    ngx_uint_t format);
static ngx_uint_t ngx_http_eas_status_format(ngx_http_request_t *r,
    ngx_uint_t format);
static void ngx_http_eas_status_sum(ngx_http_eas_metrics_slot_t *sum);
static ngx_array_t *ngx_http_eas_status_zones(ngx_http_request_t *r,
    size_t *names);


/* eas_status [json|prometheus]; */

char *
ngx_http_eas_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_eas_status_json_handler
        || clcf->handler == ngx_http_eas_status_prometheus_handler)
    {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 1 || ngx_strcmp(value[1].data, "json") == 0) {
        clcf->handler = ngx_http_eas_status_json_handler;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "prometheus") == 0) {
        clcf->handler = ngx_http_eas_status_prometheus_handler;
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid format \"%V\" in \"%V\": "
                       "json or prometheus", &value[1], &cmd->name);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_eas_status_json_handler(ngx_http_request_t *r)
{
    return ngx_http_eas_status_handler(r, NGX_HTTP_EAS_STATUS_JSON);
}


static ngx_int_t
ngx_http_eas_status_prometheus_handler(ngx_http_request_t *r)
{
    return ngx_http_eas_status_handler(r, NGX_HTTP_EAS_STATUS_PROMETHEUS);
}


static ngx_int_t
ngx_http_eas_status_handler(ngx_http_request_t *r, ngx_uint_t format)
{
    size_t                        size, names;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_str_t                    *type;
    ngx_array_t                  *zones;
    ngx_http_eas_metrics_slot_t  *sum;

    static ngx_str_t  json = ngx_string("application/json");
    static ngx_str_t  prometheus =
        ngx_string("text/plain; version=0.0.4; charset=utf-8");

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    format = ngx_http_eas_status_format(r, format);

    sum = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_metrics_slot_t));
    if (sum == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_eas_status_sum(sum);

    zones = ngx_http_eas_status_zones(r, &names);
    if (zones == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = NGX_HTTP_EAS_STATUS_LINES * NGX_HTTP_EAS_STATUS_LINE
           + zones->nelts * 16 * NGX_HTTP_EAS_STATUS_LINE + 16 * names;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (format == NGX_HTTP_EAS_STATUS_PROMETHEUS) {
        b->last = ngx_http_eas_status_prometheus(b->last, sum, zones);
        type = &prometheus;

    } else {
        b->last = ngx_http_eas_status_json(b->last, sum, zones);
        type = &json;
    }

    if (ngx_http_eas_answer_private(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_send(r, NGX_HTTP_OK, type, b->pos, b->last - b->pos);
}


/*
 * "?format=" wins; else an Accept that names the text format (or
 * OpenMetrics, which Prometheus asks for first and takes the text
 * format in its place) picks Prometheus; else the directive's format.
 */

static ngx_uint_t
ngx_http_eas_status_format(ngx_http_request_t *r, ngx_uint_t format)
{
    ngx_str_t         arg;
    ngx_table_elt_t  *h;

    static ngx_str_t  accept = ngx_string("Accept");

    if (ngx_http_arg(r, (u_char *) "format", 6, &arg) == NGX_OK) {

        if (arg.len == 10 && ngx_strncmp(arg.data, "prometheus", 10) == 0) {
            return NGX_HTTP_EAS_STATUS_PROMETHEUS;
        }

        if (arg.len == 4 && ngx_strncmp(arg.data, "json", 4) == 0) {
            return NGX_HTTP_EAS_STATUS_JSON;
        }

        return format;
    }

    h = ngx_http_eas_header_find(&r->headers_in.headers, &accept);

    if (h == NULL) {
        return format;
    }

    if (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                         (u_char *) "text/plain", 10 - 1)
        != NULL
        || ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                            (u_char *) "application/openmetrics-text",
                            28 - 1)
           != NULL)
    {
        return NGX_HTTP_EAS_STATUS_PROMETHEUS;
    }

    if (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                         (u_char *) "application/json", 16 - 1)
        != NULL)
    {
        return NGX_HTTP_EAS_STATUS_JSON;
    }

    return format;
}


static void
ngx_http_eas_status_sum(ngx_http_eas_metrics_slot_t *sum)
{
    ngx_uint_t                    i, j, n;
    ngx_atomic_t                 *to;
    ngx_http_eas_metrics_slot_t  *slot;
    volatile ngx_atomic_t        *from;

    if (ngx_http_eas_metrics_sh == NULL) {
        return;
    }

    /* the slot is an array of counters after its owner's pid */

    n = offsetof(ngx_http_eas_metrics_slot_t, pad) / sizeof(ngx_atomic_t);

    for (i = 0; i < NGX_HTTP_EAS_M_SLOTS; i++) {
        slot = &ngx_http_eas_metrics_sh->slot[i];

        from = (volatile ngx_atomic_t *) slot;
        to = (ngx_atomic_t *) sum;

        for (j = 1; j < n; j++) {
            to[j] += from[j];
        }
    }
}


/* every eas zone of the running configuration */

static ngx_array_t *
ngx_http_eas_status_zones(ngx_http_request_t *r, size_t *names)
{
    ngx_uint_t                   i;
    ngx_array_t                 *zones;
    ngx_list_part_t             *part;
    ngx_shm_zone_t              *shm_zone;
    ngx_slab_pool_t             *shpool;
    ngx_http_eas_cache_ctx_t    *cctx;
    ngx_http_eas_status_zone_t  *z;

    *names = 0;

    zones = ngx_array_create(r->pool, 4, sizeof(ngx_http_eas_status_zone_t));
    if (zones == NULL) {
        return NULL;
    }

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    shm_zone = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            shm_zone = part->elts;
            i = 0;
        }

        if (shm_zone[i].data == NULL || shm_zone[i].shm.addr == NULL
            || (shm_zone[i].tag != ngx_http_eas_cache_tag
                && shm_zone[i].tag != &ngx_http_eas_module))
        {
            continue;
        }

        z = ngx_array_push(zones);
        if (z == NULL) {
            return NULL;
        }

        shpool = (ngx_slab_pool_t *) shm_zone[i].shm.addr;

        z->name = &shm_zone[i].shm.name;
        z->size = shm_zone[i].shm.size;
        z->used = z->size - shpool->pfree * ngx_pagesize;
        z->entries = 0;
        z->hits = 0;
        z->misses = 0;
        z->lockouts = 0;

        *names += z->name->len;

        if (shm_zone[i].tag == ngx_http_eas_cache_tag) {
            cctx = shm_zone[i].data;

            z->kind = "preauth";
            z->devices = 0;

            if (cctx->sh) {
                z->hits = cctx->sh->hits;
                z->misses = cctx->sh->misses;
                z->lockouts = cctx->sh->lockouts;
                z->entries = ngx_http_eas_zone_nodes(&cctx->zone,
                                                     NGX_HTTP_EAS_ZONE_ALL);
            }

        } else {
            z->kind = "devices";
            z->devices = 1;
            z->entries = ngx_http_eas_device_count(&shm_zone[i]);
        }
    }

    return zones;
}
