
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_METRICS_H_INCLUDED_
#define _NGX_HTTP_EAS_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "eas_proto.h"
#include "ngx_http_eas_module.h"


/*
 * The counters (ngx_http_eas_metrics.c, docs/operations.md): one slot
 * per worker process in a small shared zone, each worker adding only to
 * its own slot, summed when the status handler reads them.  Nothing in
 * the request path takes a lock.
 */

/* commands as dense indexes: 0..23 as coded, 64..67 after, then none */
#define NGX_HTTP_EAS_M_COMMANDS        29
#define NGX_HTTP_EAS_M_COMMAND_NONE    28

#define NGX_HTTP_EAS_M_FORWARDED       0   /* decisions */
#define NGX_HTTP_EAS_M_REFUSED         1
#define NGX_HTTP_EAS_M_ANSWERED        2
#define NGX_HTTP_EAS_M_DECISIONS       3

/* refusal classes: the "reason" label */
#define NGX_HTTP_EAS_M_R_MALFORMED     0
#define NGX_HTTP_EAS_M_R_METHOD        1
#define NGX_HTTP_EAS_M_R_AUTH          2
#define NGX_HTTP_EAS_M_R_DEVICE        3
#define NGX_HTTP_EAS_M_R_DEVICE_MAX    4
#define NGX_HTTP_EAS_M_R_OTHER         5
#define NGX_HTTP_EAS_M_REFUSALS        6

/* pre-authentication outcomes: $eas_auth */
#define NGX_HTTP_EAS_M_AUTHS           9

/* backend answers: 1xx..5xx, or none (the gateway's own 502/504) */
#define NGX_HTTP_EAS_M_CLASSES         6

/* top-level EAS Status values counted one by one; above: "other" */
#define NGX_HTTP_EAS_M_EAS_STATUSES    192

/* HTTP verdicts of the backend: the "verdict" array */
#define NGX_HTTP_EAS_M_V_449           0
#define NGX_HTTP_EAS_M_V_401           1
#define NGX_HTTP_EAS_M_V_403           2
#define NGX_HTTP_EAS_M_V_451           3
#define NGX_HTTP_EAS_M_V_503           4
#define NGX_HTTP_EAS_M_VERDICTS        5

/* single counters */
#define NGX_HTTP_EAS_M_HELD_STARTED    0
#define NGX_HTTP_EAS_M_HELD_ENDED      1
#define NGX_HTTP_EAS_M_PING_STATUS5    2   /* answered at the edge */
#define NGX_HTTP_EAS_M_SYNC_STATUS14   3
#define NGX_HTTP_EAS_M_SUPERSEDED      4
#define NGX_HTTP_EAS_M_SHUTDOWN        5
#define NGX_HTTP_EAS_M_CACHE_EVICTED   6
#define NGX_HTTP_EAS_M_DEVICE_EVICTED  7
#define NGX_HTTP_EAS_M_FILE_LOADS      8
#define NGX_HTTP_EAS_M_FILE_ERRORS     9
#define NGX_HTTP_EAS_M_FILE_LOAD_USEC  10
#define NGX_HTTP_EAS_M_BACKEND_LIMIT   11  /* backend 5/14 outside range */
#define NGX_HTTP_EAS_M_SINGLES         12


typedef struct {
    ngx_atomic_t   pid;                    /* owner; 0: free */
    ngx_atomic_t   single[NGX_HTTP_EAS_M_SINGLES];
    ngx_atomic_t   requests[NGX_HTTP_EAS_M_COMMANDS]
                           [NGX_HTTP_EAS_M_DECISIONS];
    ngx_atomic_t   refused[NGX_HTTP_EAS_M_REFUSALS];
    ngx_atomic_t   malformed[EAS_REASON_LAST];
    ngx_atomic_t   auth[NGX_HTTP_EAS_M_AUTHS];
    ngx_atomic_t   upstream[NGX_HTTP_EAS_M_COMMANDS]
                           [NGX_HTTP_EAS_M_CLASSES];
    ngx_atomic_t   verdict[NGX_HTTP_EAS_M_VERDICTS]; /* 449, 401 ... */
    ngx_atomic_t   eas_status[NGX_HTTP_EAS_M_EAS_STATUSES + 1];
    u_char         pad[64];                /* no false sharing */
} ngx_http_eas_metrics_slot_t;


#define NGX_HTTP_EAS_M_SLOTS  64

typedef struct {
    time_t                        start;   /* the zone's first use */
    ngx_atomic_t                  reloads;
    ngx_http_eas_metrics_slot_t   slot[NGX_HTTP_EAS_M_SLOTS];
} ngx_http_eas_metrics_sh_t;


extern ngx_http_eas_metrics_slot_t  *ngx_http_eas_metrics_own;
extern ngx_http_eas_metrics_sh_t    *ngx_http_eas_metrics_sh;


/* lock-free: the worker's own slot, or no-op before the zone is up */
#define ngx_http_eas_metrics_add(field, n)                                    \
    do {                                                                      \
        if (ngx_http_eas_metrics_own) {                                       \
            (void) ngx_atomic_fetch_add(&ngx_http_eas_metrics_own->field, n); \
        }                                                                     \
    } while (0)

#define ngx_http_eas_metrics_count(which)                                     \
    ngx_http_eas_metrics_add(single[which], 1)


ngx_int_t ngx_http_eas_metrics_init(ngx_conf_t *cf);
ngx_int_t ngx_http_eas_metrics_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_eas_metrics_log(ngx_http_request_t *r);
ngx_uint_t ngx_http_eas_metrics_command(ngx_uint_t command);
void ngx_http_eas_metrics_file_load(ngx_uint_t ok, struct timeval *start);
const char *ngx_http_eas_metrics_auth_name(ngx_uint_t i);
const char *ngx_http_eas_metrics_refusal_name(ngx_uint_t i);
const char *ngx_http_eas_metrics_decision_name(ngx_uint_t i);
const char *ngx_http_eas_metrics_class_name(ngx_uint_t i);
const char *ngx_http_eas_metrics_command_name(ngx_uint_t i);
char *ngx_http_eas_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* the backend's verdict (ngx_http_eas_verdict.c) */
ngx_int_t ngx_http_eas_verdict_init(ngx_conf_t *cf);
void ngx_http_eas_verdict_count(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);
ngx_uint_t ngx_http_eas_verdict_code(ngx_uint_t i);


#endif /* _NGX_HTTP_EAS_METRICS_H_INCLUDED_ */
