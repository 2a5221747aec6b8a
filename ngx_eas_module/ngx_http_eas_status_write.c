
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"
#include "ngx_http_eas_status.h"
#include "ngx_http_eas_redis.h"


/*
 * The status page written (ngx_http_eas_status.c reads what it
 * shows): the metric families, their help lines and samples, as
 * one JSON object or as Prometheus' text exposition format.
 */


typedef const char *(*ngx_http_eas_status_label_pt)(ngx_uint_t i);


#define NGX_HTTP_EAS_STATUS_ANY      0
#define NGX_HTTP_EAS_STATUS_DEVICES  1
#define NGX_HTTP_EAS_STATUS_PREAUTH  2

/* the per-zone metrics: a field of ngx_http_eas_status_zone_t each */
typedef struct {
    const char                   *name;
    const char                   *type;
    const char                   *help;
    size_t                        offset;
    ngx_uint_t                    zones;     /* NGX_HTTP_EAS_STATUS_ANY... */
} ngx_http_eas_status_metric_t;


/* the counters of one value each; a NULL name: a sample of the above */
typedef struct {
    const char                   *name;
    const char                   *help;
    const char                   *sample;
    ngx_uint_t                    index;     /* in the slot's "single" */
} ngx_http_eas_status_single_t;


static ngx_http_eas_status_single_t  ngx_http_eas_status_singles[] = {
    { "nginx_eas_longpolls_completed_total",
      "Held Ping and Sync requests that ended.",
      "nginx_eas_longpolls_completed_total", NGX_HTTP_EAS_M_HELD_ENDED },
    { "nginx_eas_pings_superseded_total",
      "Held Pings ended by a newer Ping of the device.",
      "nginx_eas_pings_superseded_total", NGX_HTTP_EAS_M_SUPERSEDED },
    { "nginx_eas_longpolls_shutdown_total",
      "Held requests ended by a worker shutting down.",
      "nginx_eas_longpolls_shutdown_total", NGX_HTTP_EAS_M_SHUTDOWN },
    { "nginx_eas_edge_status_total",
      "Heartbeats out of range answered at the edge.",
      "nginx_eas_edge_status_total{command=\"Ping\",status=\"5\"}",
      NGX_HTTP_EAS_M_PING_STATUS5 },
    { NULL, NULL,
      "nginx_eas_edge_status_total{command=\"Sync\",status=\"14\"}",
      NGX_HTTP_EAS_M_SYNC_STATUS14 },
    { "nginx_eas_zone_evictions_total",
      "Entries evicted from a full zone, by zone kind.",
      "nginx_eas_zone_evictions_total{kind=\"preauth\"}",
      NGX_HTTP_EAS_M_CACHE_EVICTED },
    { NULL, NULL,
      "nginx_eas_zone_evictions_total{kind=\"devices\"}",
      NGX_HTTP_EAS_M_DEVICE_EVICTED },
    { "nginx_eas_backend_limit_outside_range_total",
      "Backend Ping Status 5 / Sync Status 14 naming a limit outside "
      "the gateway's heartbeat range.",
      "nginx_eas_backend_limit_outside_range_total",
      NGX_HTTP_EAS_M_BACKEND_LIMIT },
    { "nginx_eas_file_loads_total",
      "Password file loads at run time.",
      "nginx_eas_file_loads_total", NGX_HTTP_EAS_M_FILE_LOADS },
    { "nginx_eas_file_load_errors_total",
      "Password file loads that failed.",
      "nginx_eas_file_load_errors_total", NGX_HTTP_EAS_M_FILE_ERRORS },
    { NULL, NULL, NULL, 0 }
};


static ngx_http_eas_status_metric_t  ngx_http_eas_status_zone_metrics[] = {
    { "nginx_eas_zone_size_bytes", "gauge",
      "Size of a shared memory zone.",
      offsetof(ngx_http_eas_status_zone_t, size),
      NGX_HTTP_EAS_STATUS_ANY },
    { "nginx_eas_zone_used_bytes", "gauge",
      "Bytes of a shared memory zone in use (whole pages).",
      offsetof(ngx_http_eas_status_zone_t, used),
      NGX_HTTP_EAS_STATUS_ANY },
    { "nginx_eas_zone_entries", "gauge",
      "Records in a zone: devices, or cached answers and counters.",
      offsetof(ngx_http_eas_status_zone_t, entries),
      NGX_HTTP_EAS_STATUS_ANY },
    { "nginx_eas_cache_hits_total", "counter",
      "Credential cache lookups that found an entry.",
      offsetof(ngx_http_eas_status_zone_t, hits),
      NGX_HTTP_EAS_STATUS_PREAUTH },
    { "nginx_eas_cache_misses_total", "counter",
      "Credential cache lookups that found none.",
      offsetof(ngx_http_eas_status_zone_t, misses),
      NGX_HTTP_EAS_STATUS_PREAUTH },
    { "nginx_eas_lockouts_total", "counter",
      "Lockouts of a user or an address that started.",
      offsetof(ngx_http_eas_status_zone_t, lockouts),
      NGX_HTTP_EAS_STATUS_PREAUTH },
    { NULL, NULL, NULL, 0, 0 }
};


static u_char *ngx_http_eas_status_json_matrix(u_char *p,
    ngx_atomic_t *counts, ngx_uint_t columns,
    ngx_http_eas_status_label_pt label);
static u_char *ngx_http_eas_status_json_list(u_char *p, ngx_atomic_t *counts,
    ngx_uint_t n, ngx_http_eas_status_label_pt label);
static u_char *ngx_http_eas_status_prometheus_matrix(u_char *p,
    const char *metric, ngx_atomic_t *counts, ngx_uint_t columns,
    const char *column, ngx_http_eas_status_label_pt label);
static u_char *ngx_http_eas_status_family(u_char *p, const char *name,
    const char *type, const char *help);
static u_char *ngx_http_eas_status_zone_sample(u_char *p, const char *name,
    ngx_http_eas_status_zone_t *z, ngx_uint_t value);


u_char *
ngx_http_eas_status_json(u_char *p, ngx_http_eas_metrics_slot_t *m,
    ngx_array_t *zones)
{
    time_t                       start;
    ngx_uint_t                   i, reloads, first;
    ngx_http_eas_status_zone_t  *z;

    start = ngx_http_eas_metrics_sh ? ngx_http_eas_metrics_sh->start : 0;
    reloads = ngx_http_eas_metrics_sh ? ngx_http_eas_metrics_sh->reloads
                                      : 0;

    p = ngx_sprintf(p, "{\"version\":1,\"start\":%T,\"now\":%T,"
                    "\"reloads\":%ui,\n\"requests\":{", start, ngx_time(),
                    reloads);

    p = ngx_http_eas_status_json_matrix(p, &m->requests[0][0],
                                        NGX_HTTP_EAS_M_DECISIONS,
                                        ngx_http_eas_metrics_decision_name);

    p = ngx_cpymem(p, "},\n\"refusals\":{", sizeof("},\n\"refusals\":{") - 1);

    p = ngx_http_eas_status_json_list(p, m->refused, NGX_HTTP_EAS_M_REFUSALS,
                                      ngx_http_eas_metrics_refusal_name);

    p = ngx_cpymem(p, "},\n\"malformed\":{",
                   sizeof("},\n\"malformed\":{") - 1);

    first = 1;

    for (i = 1; i < EAS_REASON_LAST; i++) {
        if (m->malformed[i]) {
            p = ngx_sprintf(p, "%s\"%s\":%uA", first ? "" : ",",
                            eas_reason_name((eas_reason_e) i),
                            m->malformed[i]);
            first = 0;
        }
    }

    p = ngx_cpymem(p, "},\n\"auth\":{", sizeof("},\n\"auth\":{") - 1);

    p = ngx_http_eas_status_json_list(p, m->auth, NGX_HTTP_EAS_M_AUTHS,
                                      ngx_http_eas_metrics_auth_name);

    p = ngx_cpymem(p, "},\n\"upstream\":{", sizeof("},\n\"upstream\":{") - 1);

    p = ngx_http_eas_status_json_matrix(p, &m->upstream[0][0],
                                        NGX_HTTP_EAS_M_CLASSES,
                                        ngx_http_eas_metrics_class_name);

    p = ngx_cpymem(p, "},\n\"backend\":{\"verdicts\":{",
                   sizeof("},\n\"backend\":{\"verdicts\":{") - 1);

    for (i = 0; i < NGX_HTTP_EAS_M_VERDICTS; i++) {
        p = ngx_sprintf(p, "%s\"%ui\":%uA", i ? "," : "",
                        ngx_http_eas_verdict_code(i), m->verdict[i]);
    }

    p = ngx_cpymem(p, "},\"eas_status\":{",
                   sizeof("},\"eas_status\":{") - 1);

    first = 1;

    for (i = 0; i <= NGX_HTTP_EAS_M_EAS_STATUSES; i++) {
        if (m->eas_status[i] == 0) {
            continue;
        }

        if (i == NGX_HTTP_EAS_M_EAS_STATUSES) {
            p = ngx_sprintf(p, "%s\"other\":%uA", first ? "" : ",",
                            m->eas_status[i]);

        } else {
            p = ngx_sprintf(p, "%s\"%ui\":%uA", first ? "" : ",", i,
                            m->eas_status[i]);
        }

        first = 0;
    }

    p = ngx_sprintf(p, "},\"limit_outside_range\":%uA",
                    m->single[NGX_HTTP_EAS_M_BACKEND_LIMIT]);

    p = ngx_sprintf(p, "},\n\"longpoll\":{\"held\":%uA,\"completed\":%uA,"
                    "\"superseded\":%uA,\"worker_shutdown\":%uA,"
                    "\"ping_status_5\":%uA,\"sync_status_14\":%uA},\n",
                    m->single[NGX_HTTP_EAS_M_HELD_STARTED]
                    - m->single[NGX_HTTP_EAS_M_HELD_ENDED],
                    m->single[NGX_HTTP_EAS_M_HELD_ENDED],
                    m->single[NGX_HTTP_EAS_M_SUPERSEDED],
                    m->single[NGX_HTTP_EAS_M_SHUTDOWN],
                    m->single[NGX_HTTP_EAS_M_PING_STATUS5],
                    m->single[NGX_HTTP_EAS_M_SYNC_STATUS14]);

    p = ngx_sprintf(p, "\"evictions\":{\"preauth\":%uA,\"devices\":%uA},\n",
                    m->single[NGX_HTTP_EAS_M_CACHE_EVICTED],
                    m->single[NGX_HTTP_EAS_M_DEVICE_EVICTED]);

    p = ngx_sprintf(p, "\"files\":{\"loads\":%uA,\"errors\":%uA,"
                    "\"load_seconds\":%uA.%06uA},\n",
                    m->single[NGX_HTTP_EAS_M_FILE_LOADS],
                    m->single[NGX_HTTP_EAS_M_FILE_ERRORS],
                    m->single[NGX_HTTP_EAS_M_FILE_LOAD_USEC] / 1000000,
                    m->single[NGX_HTTP_EAS_M_FILE_LOAD_USEC] % 1000000);

    p = ngx_http_eas_redis_status(p, 0);

    p = ngx_cpymem(p, "\"zones\":[", sizeof("\"zones\":[") - 1);

    z = zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        p = ngx_cpymem(p, i ? ",\n{\"name\":\"" : "\n{\"name\":\"",
                       i ? sizeof(",\n{\"name\":\"") - 1
                         : sizeof("\n{\"name\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, z[i].name->data, z[i].name->len);
        p = ngx_sprintf(p, "\",\"kind\":\"%s\",\"size\":%ui,\"used\":%ui,"
                        "\"entries\":%ui", z[i].kind, z[i].size, z[i].used,
                        z[i].entries);

        if (!z[i].devices) {
            p = ngx_sprintf(p, ",\"hits\":%ui,\"misses\":%ui,"
                            "\"lockouts\":%ui",
                            z[i].hits, z[i].misses, z[i].lockouts);
        }

        *p++ = '}';
    }

    return ngx_cpymem(p, "]}\n", sizeof("]}\n") - 1);
}


/* {"Sync":{"forwarded":1,...},...}: the commands with any count */

static u_char *
ngx_http_eas_status_json_matrix(u_char *p, ngx_atomic_t *counts,
    ngx_uint_t columns, ngx_http_eas_status_label_pt label)
{
    ngx_uint_t     i, j, first, any;
    const char    *name;
    ngx_atomic_t  *row;

    first = 1;

    for (i = 0; i < NGX_HTTP_EAS_M_COMMANDS; i++) {
        name = ngx_http_eas_metrics_command_name(i);
        row = counts + i * columns;

        any = 0;
        for (j = 0; j < columns; j++) {
            any |= (row[j] != 0);
        }

        if (name == NULL || !any) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%s\":{", first ? "" : ",", name);
        first = 0;

        p = ngx_http_eas_status_json_list(p, row, columns, label);

        *p++ = '}';
    }

    return p;
}


static u_char *
ngx_http_eas_status_json_list(u_char *p, ngx_atomic_t *counts, ngx_uint_t n,
    ngx_http_eas_status_label_pt label)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", i ? "," : "", label(i),
                        counts[i]);
    }

    return p;
}


/* name{command="Sync",LABEL="..."} N: the non-zero ones */

static u_char *
ngx_http_eas_status_prometheus_matrix(u_char *p, const char *metric,
    ngx_atomic_t *counts, ngx_uint_t columns, const char *column,
    ngx_http_eas_status_label_pt label)
{
    ngx_uint_t     i, j;
    const char    *name;
    ngx_atomic_t  *row;

    for (i = 0; i < NGX_HTTP_EAS_M_COMMANDS; i++) {
        name = ngx_http_eas_metrics_command_name(i);
        row = counts + i * columns;

        if (name == NULL) {
            continue;
        }

        for (j = 0; j < columns; j++) {
            if (row[j]) {
                p = ngx_sprintf(p, "%s{command=\"%s\",%s=\"%s\"} %uA\n",
                                metric, name, column, label(j), row[j]);
            }
        }
    }

    return p;
}


u_char *
ngx_http_eas_status_prometheus(u_char *p, ngx_http_eas_metrics_slot_t *m,
    ngx_array_t *zones)
{
    ngx_uint_t                     i;
    ngx_http_eas_status_zone_t    *z;
    ngx_http_eas_status_metric_t  *metric;
    ngx_http_eas_status_single_t  *single;

    if (ngx_http_eas_metrics_sh) {
        p = ngx_http_eas_status_family(p, "nginx_eas_start_time_seconds",
                "gauge", "Time the counters started, since the epoch.");
        p = ngx_sprintf(p, "nginx_eas_start_time_seconds %T\n",
                        ngx_http_eas_metrics_sh->start);

        p = ngx_http_eas_status_family(p, "nginx_eas_config_reloads_total",
                "counter", "Configuration reloads the counters survived.");
        p = ngx_sprintf(p, "nginx_eas_config_reloads_total %uA\n",
                        ngx_http_eas_metrics_sh->reloads);
    }

    p = ngx_http_eas_status_family(p, "nginx_eas_requests_total", "counter",
            "ActiveSync requests by command and what the gateway did.");

    p = ngx_http_eas_status_prometheus_matrix(p, "nginx_eas_requests_total",
            &m->requests[0][0], NGX_HTTP_EAS_M_DECISIONS, "decision",
            ngx_http_eas_metrics_decision_name);

    p = ngx_http_eas_status_family(p, "nginx_eas_refusals_total", "counter",
            "Requests refused by the gateway, by reason.");

    for (i = 0; i < NGX_HTTP_EAS_M_REFUSALS; i++) {
        p = ngx_sprintf(p, "nginx_eas_refusals_total{reason=\"%s\"} %uA\n",
                        ngx_http_eas_metrics_refusal_name(i), m->refused[i]);
    }

    p = ngx_http_eas_status_family(p, "nginx_eas_malformed_requests_total",
            "counter", "Requests refused as malformed, by parser reason.");

    for (i = 1; i < EAS_REASON_LAST; i++) {
        if (m->malformed[i]) {
            p = ngx_sprintf(p, "nginx_eas_malformed_requests_total"
                            "{reason=\"%s\"} %uA\n",
                            eas_reason_name((eas_reason_e) i),
                            m->malformed[i]);
        }
    }

    p = ngx_http_eas_status_family(p, "nginx_eas_auth_total", "counter",
            "Pre-authentication outcomes.");

    for (i = 0; i < NGX_HTTP_EAS_M_AUTHS; i++) {
        p = ngx_sprintf(p, "nginx_eas_auth_total{outcome=\"%s\"} %uA\n",
                        ngx_http_eas_metrics_auth_name(i), m->auth[i]);
    }

    p = ngx_http_eas_status_family(p, "nginx_eas_upstream_responses_total",
            "counter", "Backend responses by command and status class.");

    p = ngx_http_eas_status_prometheus_matrix(p,
            "nginx_eas_upstream_responses_total", &m->upstream[0][0],
            NGX_HTTP_EAS_M_CLASSES, "class", ngx_http_eas_metrics_class_name);

    p = ngx_http_eas_status_family(p, "nginx_eas_backend_verdicts_total",
            "counter", "Backend answers with an HTTP verdict status.");

    for (i = 0; i < NGX_HTTP_EAS_M_VERDICTS; i++) {
        p = ngx_sprintf(p, "nginx_eas_backend_verdicts_total{status=\"%ui\"} "
                        "%uA\n", ngx_http_eas_verdict_code(i), m->verdict[i]);
    }

    p = ngx_http_eas_status_family(p, "nginx_eas_backend_eas_status_total",
            "counter", "Top-level EAS Status of backend responses.");

    for (i = 0; i <= NGX_HTTP_EAS_M_EAS_STATUSES; i++) {
        if (m->eas_status[i] == 0) {
            continue;
        }

        if (i == NGX_HTTP_EAS_M_EAS_STATUSES) {
            p = ngx_sprintf(p, "nginx_eas_backend_eas_status_total"
                            "{status=\"other\"} %uA\n", m->eas_status[i]);

        } else {
            p = ngx_sprintf(p, "nginx_eas_backend_eas_status_total"
                            "{status=\"%ui\"} %uA\n", i, m->eas_status[i]);
        }
    }

    p = ngx_http_eas_status_family(p, "nginx_eas_longpolls_held", "gauge",
            "Ping and Sync requests held now.");
    p = ngx_sprintf(p, "nginx_eas_longpolls_held %uA\n",
                    m->single[NGX_HTTP_EAS_M_HELD_STARTED]
                    - m->single[NGX_HTTP_EAS_M_HELD_ENDED]);

    for (single = ngx_http_eas_status_singles; single->sample; single++) {
        if (single->name) {
            p = ngx_http_eas_status_family(p, single->name, "counter",
                                           single->help);
        }

        p = ngx_sprintf(p, "%s %uA\n", single->sample,
                        m->single[single->index]);
    }

    p = ngx_http_eas_status_family(p, "nginx_eas_file_load_seconds_total",
            "counter", "Time spent loading password files.");
    p = ngx_sprintf(p, "nginx_eas_file_load_seconds_total %uA.%06uA\n",
                    m->single[NGX_HTTP_EAS_M_FILE_LOAD_USEC] / 1000000,
                    m->single[NGX_HTTP_EAS_M_FILE_LOAD_USEC] % 1000000);

    p = ngx_http_eas_redis_status(p, 1);

    z = zones->elts;

    for (metric = ngx_http_eas_status_zone_metrics; metric->name; metric++) {
        p = ngx_http_eas_status_family(p, metric->name, metric->type,
                                       metric->help);

        for (i = 0; i < zones->nelts; i++) {
            if (metric->zones == NGX_HTTP_EAS_STATUS_ANY
                || (metric->zones == NGX_HTTP_EAS_STATUS_DEVICES)
                   == (z[i].devices != 0))
            {
                p = ngx_http_eas_status_zone_sample(p, metric->name, &z[i],
                        *(ngx_uint_t *) ((u_char *) &z[i] + metric->offset));
            }
        }
    }

    return p;
}


static u_char *
ngx_http_eas_status_family(u_char *p, const char *name, const char *type,
    const char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                       type);
}


/* a zone name is [a-zA-Z0-9_.-]-ish but not checked: escape it */

static u_char *
ngx_http_eas_status_zone_sample(u_char *p, const char *name,
    ngx_http_eas_status_zone_t *z, ngx_uint_t value)
{
    u_char      c;
    ngx_uint_t  i;

    p = ngx_sprintf(p, "%s{zone=\"", name);

    for (i = 0; i < z->name->len; i++) {
        c = z->name->data[i];

        if (c == '\\' || c == '"') {
            *p++ = '\\';
            *p++ = c;

        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = c;
        }
    }

    return ngx_sprintf(p, "\",kind=\"%s\"} %ui\n", z->kind, value);
}
