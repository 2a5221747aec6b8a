
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_longpoll.h"


/*
 * Reading the start of a Ping or Sync body before the long-poll step
 * decides (docs/directpush.md, "Bodies that stream"), without taking
 * the body away from proxy_pass.
 *
 * nginx's body API reads a body once: whoever reads second (proxy_pass,
 * after this step) is handed what the first reader got as a finished,
 * buffered body.  So the API cannot read only the start of a body, and
 * reading all of a chunked body writes it to a temporary file before
 * the backend sees a byte, whatever proxy_request_buffering says.
 *
 * A chunked HTTP/1.x body is therefore read here as it came off the
 * connection, up to the cap, and never past its end: each read asks for
 * no more than nginx's own chunked parser says the body still needs at
 * least, so a pipelined request is never read with it.  The bytes stay
 * undecoded in front of the connection's unread bytes, r->header_in,
 * where nginx keeps what it read past the request header; proxy_pass
 * then reads the whole body itself, from its first byte, in the way its
 * configuration says (streamed with proxy_request_buffering off).  The
 * long-poll step scans a decoded copy made by the same parser, so it
 * reads what the backend will be sent.
 *
 * An HTTP/2 body without a content-length has no framing of its own,
 * and the bytes a client sends before the body is read wait in the
 * stream's preread buffer (the stream's initial window,
 * http2_body_preread_size).  It is read with the body API unbuffered,
 * without taking anything off its buffer: no window update is sent, so
 * the client sends at most that window.  A body that ends within it is
 * then whole in memory (moved to a buffer of its own size), and
 * proxy_pass sends it as any body read before; one that goes on past
 * the cap is put back where it came from, the stream's preread buffer,
 * and proxy_pass reads the whole body itself.  That needs
 * client_body_buffer_size below http2_body_preread_size (16k and 64k by
 * default): a larger one would open the window twice.
 *
 * Bodies with a content-length (up to the cap: a larger one is not
 * read at all), and HTTP/3 bodies, go through the body API as before
 * (see the document for why).
 */


static ngx_int_t ngx_http_eas_body_peek(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler);
static void ngx_http_eas_body_peek_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_body_peek_read(ngx_http_request_t *r,
    ngx_http_eas_peek_t *peek);
static ngx_int_t ngx_http_eas_body_parse(ngx_http_request_t *r,
    ngx_http_eas_peek_t *peek);
static ngx_int_t ngx_http_eas_body_grow(ngx_http_request_t *r,
    ngx_http_eas_peek_t *peek);
static ngx_int_t ngx_http_eas_body_continue(ngx_http_request_t *r);
static ngx_int_t ngx_http_eas_body_decode(ngx_http_request_t *r,
    ngx_http_eas_peek_t *peek);
static void ngx_http_eas_body_peeked_all(ngx_http_request_t *r,
    ngx_http_eas_peek_t *peek);
static ngx_int_t ngx_http_eas_parse_chunked(ngx_http_request_t *r,
    ngx_buf_t *b, ngx_http_chunked_t *ctx);


/*
 * As ngx_http_read_client_request_body(): the handler is called once
 * the body (or its start) is there, NGX_AGAIN or NGX_OK is returned,
 * or an HTTP status when the request is to be ended.
 */

ngx_int_t
ngx_http_eas_body_read(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler)
{
    if (r->headers_in.chunked
        && r->http_version < NGX_HTTP_VERSION_20
        && r == r->main
        && r->request_body == NULL
        && !r->discard_body)
    {
        return ngx_http_eas_body_peek(r, max, handler);
    }

#if (NGX_HTTP_V2)
    if (ngx_http_eas_body_v2(r)) {
        return ngx_http_eas_body_peek_v2(r, max, handler);
    }
#endif

    return ngx_http_read_client_request_body(r, handler);
}


/*
 * NGX_OK: the whole body was peeked, *body is its decoded copy;
 * NGX_ABORT: peeked, but it goes on past the cap (proxy_pass streams
 * it); NGX_DECLINED: not peeked, the body (if any) is r->request_body.
 */

ngx_int_t
ngx_http_eas_body_peeked(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_http_eas_ctx_t   *ctx;
    ngx_http_eas_peek_t  *peek;

    ctx = ngx_http_eas_get_ctx(r);

    if (ctx == NULL || ctx->peek == NULL) {
        return NGX_DECLINED;
    }

    peek = ctx->peek;

    if (peek->state != NGX_HTTP_EAS_PEEK_COMPLETE) {
        return NGX_ABORT;
    }

    if (r->request_body != NULL) {
        /* HTTP/2: read whole by the body API */
        return NGX_DECLINED;
    }

    *body = peek->body;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_body_peek(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler)
{
    ngx_int_t             rc;
    ngx_http_eas_ctx_t   *ctx;
    ngx_http_eas_peek_t  *peek;

    r->main->count++;

    ctx = ngx_http_eas_get_ctx(r);

    peek = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_peek_t));
    if (peek == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     peek->raw = NULL;
     *     peek->chunked = { 0 };
     *     peek->parsed = 0;
     *     peek->decoded = 0;
     *     peek->body = { 0, NULL };
     *     peek->state = NGX_HTTP_EAS_PEEK_READING;
     */

    peek->max = max;
    peek->handler = handler;

    ctx->peek = peek;

    rc = ngx_http_eas_body_peek_read(r, peek);

    if (rc == NGX_OK) {
        ngx_http_eas_body_peeked_all(r, peek);
        return NGX_OK;
    }

    if (rc == NGX_AGAIN) {
        r->read_event_handler = ngx_http_eas_body_peek_handler;
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_AGAIN;
    }

failed:

    r->main->count--;

    return rc;
}


static void
ngx_http_eas_body_peek_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_connection_t     *c;
    ngx_http_eas_ctx_t   *ctx;

    c = r->connection;
    ctx = ngx_http_eas_get_ctx(r);

    if (c->read->timedout) {
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    rc = ngx_http_eas_body_peek_read(r, ctx->peek);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_eas_body_peeked_all(r, ctx->peek);
}


/* NGX_OK: done (whole body or the cap); NGX_AGAIN; or an HTTP status */

static ngx_int_t
ngx_http_eas_body_peek_read(ngx_http_request_t *r, ngx_http_eas_peek_t *peek)
{
    size_t                     size;
    ssize_t                    n;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;

    for ( ;; ) {

        rc = ngx_http_eas_body_parse(r, peek);

        if (rc != NGX_OK) {
            return rc;
        }

        if (peek->state != NGX_HTTP_EAS_PEEK_READING) {
            return NGX_OK;
        }

        if (peek->raw == NULL || peek->raw->last == peek->raw->end) {

            rc = ngx_http_eas_body_grow(r, peek);

            if (rc != NGX_OK) {
                return rc;
            }

            if (peek->state != NGX_HTTP_EAS_PEEK_READING) {
                return NGX_OK;
            }
        }

        b = peek->raw;

        /* the parser's least count of bytes to come: never past the end */

        size = b->end - b->last;

        if ((off_t) size > peek->chunked.length) {
            size = (size_t) peek->chunked.length;
        }

        if (size == 0) {
            /* cannot be: the parser always wants a byte more */
            peek->state = NGX_HTTP_EAS_PEEK_OVER;
            return NGX_OK;
        }

        n = c->recv(c, b->last, size);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "eas body peek recv %z of %uz", n, size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "client prematurely closed connection");
        }

        if (n == 0 || n == NGX_ERROR) {
            c->error = 1;
            return NGX_HTTP_BAD_REQUEST;
        }

        b->last += n;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ngx_add_timer(c->read, clcf->client_body_timeout);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_AGAIN;
}


/*
 * Parses what was read and not yet parsed, counting the decoded bytes;
 * the state becomes COMPLETE at the body's end, OVER past the cap.
 * The bytes are never changed.  Framing nginx refuses is refused here
 * as nginx would refuse it, before anything is forwarded.
 */

static ngx_int_t
ngx_http_eas_body_parse(ngx_http_request_t *r, ngx_http_eas_peek_t *peek)
{
    off_t       size;
    ngx_int_t   rc;
    ngx_buf_t   b, *in;

    in = r->header_in;

    ngx_memzero(&b, sizeof(ngx_buf_t));

    b.pos = in->pos + peek->parsed;
    b.last = in->last;

    for ( ;; ) {

        rc = ngx_http_eas_parse_chunked(r, &b, &peek->chunked);

        if (rc == NGX_OK) {

            /* chunk data, as much of it as is here */

            size = ngx_min((off_t) (b.last - b.pos), peek->chunked.size);

            b.pos += (size_t) size;
            peek->chunked.size -= size;
            peek->decoded += size;

            if (peek->decoded > (off_t) peek->max) {
                peek->state = NGX_HTTP_EAS_PEEK_OVER;
                break;
            }

            continue;
        }

        if (rc == NGX_DONE) {
            peek->state = NGX_HTTP_EAS_PEEK_COMPLETE;
            break;
        }

        if (rc == NGX_AGAIN) {
            break;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client sent invalid chunked body");

        return NGX_HTTP_BAD_REQUEST;
    }

    peek->parsed = b.pos - in->pos;

    return NGX_OK;
}


/*
 * The bytes read become r->header_in at once: whatever ends the request
 * from now on (a timeout, an answer made here, proxy_pass) finds the
 * body unread, from its first byte.  Grown by doubling up to the cap.
 *
 * The buffer is one of the connection's large header buffers, as nginx
 * makes them (ngx_http_alloc_large_header_buffer()): r->header_in is
 * looked at after the request's pool is gone, when the connection is
 * kept alive, and nginx frees its large header buffers there.  Its
 * memory is a separate allocation (ngx_pmemalign), so that freeing it
 * frees it whatever connection_pool_size is.
 */

static ngx_int_t
ngx_http_eas_body_grow(ngx_http_request_t *r, ngx_http_eas_peek_t *peek)
{
    size_t                  size, len, cap;
    u_char                 *p;
    ngx_buf_t              *b, *old;
    ngx_chain_t            *cl;
    ngx_connection_t       *c;
    ngx_http_connection_t  *hc;

    c = r->connection;
    old = r->header_in;
    len = old->last - old->pos;
    cap = ngx_http_eas_peek_cap(peek->max);

    if (peek->raw != NULL && len >= cap) {

        /* framing beyond all reason: proxy_pass reads the rest */

        peek->state = NGX_HTTP_EAS_PEEK_OVER;
        return NGX_OK;
    }

    size = (peek->raw == NULL) ? len + 256 : 2 * len;
    size = ngx_min(size, cap);
    size = ngx_max(size, len + 1);

    p = ngx_pmemalign(c->pool, size, NGX_ALIGNMENT);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, old->pos, len);

    if (peek->raw == NULL) {

        if (ngx_http_eas_body_continue(r) != NGX_OK) {
            ngx_pfree(c->pool, p);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b = ngx_calloc_buf(c->pool);
        if (b == NULL) {
            ngx_pfree(c->pool, p);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cl = ngx_alloc_chain_link(c->pool);
        if (cl == NULL) {
            ngx_pfree(c->pool, p);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->temporary = 1;

        hc = r->http_connection;

        cl->buf = b;
        cl->next = hc->busy;
        hc->busy = cl;
        hc->nbusy++;

        /* the bytes have moved: the old buffer holds nothing unread now */

        old->pos = old->last;

        peek->raw = b;
        r->header_in = b;

    } else {
        b = peek->raw;
        ngx_pfree(c->pool, b->start);
    }

    b->start = p;
    b->pos = p;
    b->last = p + len;
    b->end = p + size;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "eas body peek buffer %uz, %uz bytes", size, len);

    return NGX_OK;
}


/*
 * "Expect: 100-continue": the client waits for this before it sends
 * the body; nginx's body reader sends it the same way, and will not
 * again (r->expect_tested).
 */

static ngx_int_t
ngx_http_eas_body_continue(ngx_http_request_t *r)
{
    ssize_t     n;
    ngx_str_t  *expect;

    static u_char  line[] = "HTTP/1.1 100 Continue" CRLF CRLF;

    if (r->expect_tested
        || r->headers_in.expect == NULL
        || r->http_version < NGX_HTTP_VERSION_11)
    {
        return NGX_OK;
    }

    r->expect_tested = 1;

    expect = &r->headers_in.expect->value;

    if (expect->len != sizeof("100-continue") - 1
        || ngx_strncasecmp(expect->data, (u_char *) "100-continue",
                           sizeof("100-continue") - 1)
           != 0)
    {
        return NGX_OK;
    }

    n = r->connection->send(r->connection, line, sizeof(line) - 1);

    if (n == (ssize_t) sizeof(line) - 1) {
        return NGX_OK;
    }

    r->connection->error = 1;

    return NGX_ERROR;
}


/*
 * The whole body, read, decoded into one buffer by the same parser;
 * the bytes themselves are left unread.
 */

static ngx_int_t
ngx_http_eas_body_decode(ngx_http_request_t *r, ngx_http_eas_peek_t *peek)
{
    off_t                size;
    u_char              *p;
    ngx_int_t            rc;
    ngx_buf_t            b;
    ngx_http_chunked_t   chunked;

    if (peek->decoded == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) peek->decoded);
    if (p == NULL) {
        return NGX_ERROR;
    }

    peek->body.data = p;

    ngx_memzero(&b, sizeof(ngx_buf_t));
    ngx_memzero(&chunked, sizeof(ngx_http_chunked_t));

    b.pos = r->header_in->pos;
    b.last = r->header_in->last;

    for ( ;; ) {

        rc = ngx_http_eas_parse_chunked(r, &b, &chunked);

        if (rc != NGX_OK) {
            break;
        }

        size = ngx_min((off_t) (b.last - b.pos), chunked.size);

        p = ngx_cpymem(p, b.pos, (size_t) size);

        b.pos += (size_t) size;
        chunked.size -= size;
    }

    peek->body.len = p - peek->body.data;

    if (rc != NGX_DONE || (off_t) peek->body.len != peek->decoded) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "eas: chunked body decoded twice differently");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_eas_body_peeked_all(ngx_http_request_t *r, ngx_http_eas_peek_t *peek)
{
    ngx_connection_t  *c;

    c = r->connection;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (peek->raw != NULL) {
        /* no room: a pipelined request is put in a buffer of nginx's */
        peek->raw->end = peek->raw->last;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "eas body peeked: %s, %O bytes decoded, %uz read",
                   peek->state == NGX_HTTP_EAS_PEEK_COMPLETE ? "whole"
                                                             : "start",
                   peek->decoded, (size_t) (r->header_in->last
                                            - r->header_in->pos));

    if (peek->state == NGX_HTTP_EAS_PEEK_COMPLETE
        && ngx_http_eas_body_decode(r, peek) != NGX_OK)
    {
        peek->state = NGX_HTTP_EAS_PEEK_OVER;
    }

    r->read_event_handler = ngx_http_block_reading;

    peek->handler(r);
}


/* nginx 1.27.2 added the trailer flag; trailers are not kept here */

static ngx_int_t
ngx_http_eas_parse_chunked(ngx_http_request_t *r, ngx_buf_t *b,
    ngx_http_chunked_t *ctx)
{
#if (nginx_version >= 1027002)
    return ngx_http_parse_chunked(r, b, ctx, 0);
#else
    return ngx_http_parse_chunked(r, b, ctx);
#endif
}
