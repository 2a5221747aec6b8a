
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_STATUS_H_INCLUDED_
#define _NGX_HTTP_EAS_STATUS_H_INCLUDED_


/*
 * The status page's own header (eas_status, docs/operations.md), shared
 * by ngx_http_eas_status.c (the directive, the handler, the counters
 * summed and the zones read) and ngx_http_eas_status_write.c (what was
 * read, written as JSON or Prometheus text).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_metrics.h"


/* one eas zone, read before formatting */
typedef struct {
    ngx_str_t                    *name;
    const char                   *kind;
    ngx_uint_t                    devices;   /* else a pre-auth zone */
    ngx_uint_t                    size;
    ngx_uint_t                    used;
    ngx_uint_t                    entries;
    ngx_uint_t                    hits;      /* pre-auth */
    ngx_uint_t                    misses;
    ngx_uint_t                    lockouts;
} ngx_http_eas_status_zone_t;


u_char *ngx_http_eas_status_json(u_char *p,
    ngx_http_eas_metrics_slot_t *m, ngx_array_t *zones);
u_char *ngx_http_eas_status_prometheus(u_char *p,
    ngx_http_eas_metrics_slot_t *m, ngx_array_t *zones);


#endif /* _NGX_HTTP_EAS_STATUS_H_INCLUDED_ */
