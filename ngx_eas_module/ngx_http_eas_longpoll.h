
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_LONGPOLL_H_INCLUDED_
#define _NGX_HTTP_EAS_LONGPOLL_H_INCLUDED_


/*
 * The long-poll concern, its own nginx module in the shared object
 * (ngx_http_eas_longpoll_module.c: directives, configuration, phase
 * handlers; ngx_http_eas_longpoll.c: the held Pings and Syncs;
 * ngx_http_eas_body.c: the body read).  It includes only the core
 * header: the request context it reads and writes is the parser's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


typedef struct {
    ngx_flag_t            longpoll;          /* eas_longpoll */
    time_t                heartbeat_min;     /* seconds */
    time_t                heartbeat_max;
    ngx_msec_t            longpoll_margin;
    ngx_msec_t            command_timeout;
    size_t                longpoll_body_max;
} ngx_http_eas_longpoll_conf_t;


/* the parts shared by ngx_http_eas_longpoll.c and _longpoll_hold.c */

/* the canonical command name is static and NUL-terminated */
#define ngx_http_eas_command(ctx)  ((char *) (ctx)->request.command_name.data)

#define NGX_HTTP_EAS_SWEEP_INTERVAL  1000    /* ms */

/* another gateway held a newer Ping: this worker sweeps now */
void ngx_http_eas_longpoll_wake(void);


/*
 * Held long-polls of this worker, so that a worker that is shutting
 * down (reload, SIGQUIT) can answer them at once, and a Ping superseded
 * by a newer one of the same device (on any worker) is ended.  Per
 * process: each worker has its own copy after fork; the timer is armed
 * lazily.
 */
typedef struct {
    ngx_queue_t                       held;
    ngx_event_t                       sweep;
    ngx_uint_t                        sweeps;     /* counted */
    unsigned                          initialized:1;
} ngx_http_eas_longpoll_worker_t;


/*
 * What the sweep needs of a held request is kept here, never read
 * again from the request's location: an internal redirect (error_page,
 * X-Accel-Redirect) moves the request to a location that may have no
 * eas_devices, and takes it off the hold.
 */
typedef struct {
    ngx_queue_t                       queue;
    ngx_http_request_t               *request;
    ngx_shm_zone_t                   *devices;    /* eas_devices, or NULL */
    ngx_msec_t                        deadline;   /* Ping: answered as
                                                     expired then; 0: no */
    ngx_uint_t                        uri_changes; /* as held */
} ngx_http_eas_held_t;


/* the parts shared by ngx_http_eas_body.c and _body_v2.c */

#define NGX_HTTP_EAS_PEEK_READING   0
#define NGX_HTTP_EAS_PEEK_COMPLETE  1
#define NGX_HTTP_EAS_PEEK_OVER      2

/* undecoded bytes read at most: the cap twice, plus room for framing */
#define ngx_http_eas_peek_cap(max)  (2 * (max) + 1024)


struct ngx_http_eas_peek_s {
    ngx_buf_t                        *raw;      /* NULL: all in header_in */
    ngx_http_chunked_t                chunked;  /* state after "parsed" */
    size_t                            parsed;   /* bytes of raw parsed */
    size_t                            max;      /* decoded bytes scanned */
    off_t                             decoded;
    ngx_str_t                         body;     /* the decoded copy */
    ngx_uint_t                        state;
    ngx_http_client_body_handler_pt   handler;
};


ngx_int_t ngx_http_eas_longpoll_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_longpoll_log_check(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_body_read(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler);
ngx_int_t ngx_http_eas_body_peeked(ngx_http_request_t *r, ngx_str_t *body);
ngx_int_t ngx_http_eas_longpoll_hold(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_longpoll_answer(ngx_http_request_t *r,
    u_char *data, size_t len);
ngx_msec_t ngx_http_eas_longpoll_limit(ngx_http_eas_ctx_t *ctx,
    ngx_http_eas_longpoll_conf_t *lpcf);
ngx_int_t ngx_http_eas_longpoll_device(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx, ngx_str_t *user, ngx_str_t *device_id);

extern ngx_module_t  ngx_http_eas_longpoll_module;

#if (NGX_HTTP_V2)
ngx_uint_t ngx_http_eas_body_v2(ngx_http_request_t *r);
ngx_int_t ngx_http_eas_body_peek_v2(ngx_http_request_t *r,
    size_t max, ngx_http_client_body_handler_pt handler);
#endif


#endif /* _NGX_HTTP_EAS_LONGPOLL_H_INCLUDED_ */
