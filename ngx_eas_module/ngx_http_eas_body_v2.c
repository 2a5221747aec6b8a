
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The start of an HTTP/2 body without a content-length read for the
 * long-poll step (docs/directpush.md, "Bodies that stream"): read with
 * the body API unbuffered, nothing taken off the stream's preread
 * buffer; a body that ends within the cap is moved to a buffer of its
 * own, one that goes on is put back in the preread buffer for
 * proxy_pass.  ngx_http_eas_body.c has the whole story and HTTP/1.x.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_longpoll.h"


#if (NGX_HTTP_V2)

#include <ngx_http_v2_module.h>


static void ngx_http_eas_body_v2_started(ngx_http_request_t *r);
static void ngx_http_eas_body_v2_handler(ngx_http_request_t *r);
static void ngx_http_eas_body_v2_done(ngx_http_request_t *r,
    ngx_http_eas_peek_t *peek, ngx_uint_t state);
static ngx_int_t ngx_http_eas_body_v2_compact(ngx_http_request_t *r);


ngx_uint_t
ngx_http_eas_body_v2(ngx_http_request_t *r)
{
    ngx_http_v2_srv_conf_t    *h2scf;
    ngx_http_core_loc_conf_t  *clcf;

    /*
     * a content-length up to the cap: read whole, into a buffer of its
     * size, as any body is (the unbuffered read would take a buffer of
     * the whole window for the life of a held request)
     */

    if (r->stream == NULL || !r->headers_in.chunked || r != r->main
        || r->request_body != NULL || r->discard_body)
    {
        return 0;
    }

    h2scf = ngx_http_get_module_srv_conf(r, ngx_http_v2_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    return clcf->client_body_buffer_size < h2scf->preread_size;
}


ngx_int_t
ngx_http_eas_body_peek_v2(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler)
{
    ngx_http_eas_ctx_t   *ctx;
    ngx_http_eas_peek_t  *peek;

    ctx = ngx_http_eas_get_ctx(r);

    peek = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_peek_t));
    if (peek == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    peek->max = max;
    peek->handler = handler;

    ctx->peek = peek;

    r->request_body_no_buffering = 1;

    return ngx_http_read_client_request_body(r,
                                             ngx_http_eas_body_v2_started);
}


/*
 * Called by the body API: at once with the whole body when it came
 * with the request (or there is none), else as soon as reading has
 * started; then on each DATA frame.
 */

static void
ngx_http_eas_body_v2_started(ngx_http_request_t *r)
{
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_eas_get_ctx(r);

    if (r->reading_body) {
        r->read_event_handler = ngx_http_eas_body_v2_handler;
        return;
    }

    ngx_http_eas_body_v2_done(r, ctx->peek, NGX_HTTP_EAS_PEEK_COMPLETE);
}


static void
ngx_http_eas_body_v2_handler(ngx_http_request_t *r)
{
    off_t                     size;
    ngx_int_t                 rc;
    ngx_chain_t              *cl;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_request_body_t  *rb;

    ctx = ngx_http_eas_get_ctx(r);

    rc = ngx_http_read_unbuffered_request_body(r);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (rc == NGX_OK) {
        ngx_http_eas_body_v2_done(r, ctx->peek, NGX_HTTP_EAS_PEEK_COMPLETE);
        return;
    }

    /* nothing is taken off the buffer: it holds all that came */

    rb = r->request_body;
    size = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size > (off_t) ctx->peek->max || rb->buf->last == rb->buf->end) {
        ngx_http_eas_body_v2_done(r, ctx->peek, NGX_HTTP_EAS_PEEK_OVER);
    }
}


static void
ngx_http_eas_body_v2_done(ngx_http_request_t *r, ngx_http_eas_peek_t *peek,
    ngx_uint_t state)
{
    ngx_buf_t                *buf;
    ngx_connection_t         *fc;
    ngx_http_request_body_t  *rb;

    fc = r->connection;
    rb = r->request_body;

    peek->state = state;

    if (state == NGX_HTTP_EAS_PEEK_COMPLETE) {

        /* as the body API leaves a body it read whole */

        if (r->headers_in.chunked) {
            r->headers_in.content_length_n = rb->received;
        }

        r->request_body_no_buffering = 0;

        if (ngx_http_eas_body_v2_compact(r) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

    } else {

        /*
         * The start of a body that goes on: back to the stream's preread
         * buffer, unread, as it was before the body API took it; the
         * body API, called again by proxy_pass, starts from there.
         */

        buf = rb->buf;
        buf->pos = buf->start;

        r->stream->preread = buf;
        r->request_body = NULL;
        r->reading_body = 0;
        r->request_body_no_buffering = 0;

        if (fc->read->timer_set) {
            ngx_del_timer(fc->read);
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, fc->log, 0,
                   "eas body peeked over http2: %s, %O bytes received",
                   state == NGX_HTTP_EAS_PEEK_COMPLETE ? "whole" : "start",
                   rb->received);

    r->read_event_handler = ngx_http_block_reading;

    peek->handler(r);
}


/*
 * A whole body read unbuffered lies in a buffer the size of the
 * stream's window (64k by default), kept as long as the request (a held
 * Ping: up to an hour).  It is moved to one buffer of its own size, in
 * the shape the body API leaves a body it read whole in memory: the
 * data, then the last buffer.
 */

static ngx_int_t
ngx_http_eas_body_v2_compact(ngx_http_request_t *r)
{
    off_t                     size;
    u_char                   *p;
    ngx_buf_t                *b;
    ngx_chain_t              *cl, *out;
    ngx_http_request_body_t  *rb;

    rb = r->request_body;

    if (rb == NULL || rb->buf == NULL || rb->bufs == NULL) {
        return NGX_OK;
    }

    size = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {

        if (!ngx_buf_in_memory(cl->buf)) {
            return NGX_OK;
        }

        size += cl->buf->last - cl->buf->pos;
    }

    if (size >= (off_t) (rb->buf->end - rb->buf->start) / 2) {
        return NGX_OK;
    }

    out = ngx_alloc_chain_link(r->pool);
    if (out == NULL) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, (size_t) size);
    if (p == NULL && size != 0) {
        return NGX_ERROR;
    }

    b->start = p;
    b->pos = p;

    for (cl = rb->bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    b->last = p;
    b->end = p;
    b->temporary = (size != 0);
    b->last_buf = 1;

    out->buf = b;
    out->next = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "eas body of %O bytes moved out of a %uz byte buffer",
                   size, (size_t) (rb->buf->end - rb->buf->start));

    ngx_pfree(r->pool, rb->buf->start);

    rb->buf = NULL;
    rb->bufs = out;
    rb->busy = NULL;
    rb->free = NULL;

    return NGX_OK;
}

#endif /* NGX_HTTP_V2 */
