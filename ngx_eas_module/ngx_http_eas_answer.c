
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "eas_wbxml.h"


/*
 * What a device gets when the gateway answers a request itself
 * (docs/edge-answers.md): the headers an ActiveSync server sends on every
 * answer, added by one header filter to every answer the backend did not
 * make, and the answer Exchange's device access gives a blocked device.
 */


static ngx_int_t ngx_http_eas_answer_header_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* MS-ASHTTP 2.2.2.1.2: the server's version, responses not cached */
static ngx_str_t  ngx_http_eas_server_header =
    ngx_string("MS-Server-ActiveSync");
static ngx_str_t  ngx_http_eas_server_version = ngx_string("15.1");
static ngx_str_t  ngx_http_eas_cache_header = ngx_string("Cache-Control");
static ngx_str_t  ngx_http_eas_cache_private = ngx_string("private");
static ngx_str_t  ngx_http_eas_answer_type =
    ngx_string("application/vnd.ms-sync.wbxml");


ngx_int_t
ngx_http_eas_answer_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_eas_answer_header_filter;

    return NGX_OK;
}


/*
 * An answer is the gateway's own when the request is an ActiveSync one
 * (it has the module's context, kept across internal redirects) and no
 * backend has answered it: a refusal, an edge answer (Ping Status 5,
 * Sync Status 14, a held Ping answered on shutdown), or nginx's own
 * error page for a backend that failed.  A backend's answer passes
 * untouched.
 */

static ngx_int_t
ngx_http_eas_answer_header_filter(ngx_http_request_t *r)
{
    if (r != r->main
        || (r->upstream && r->upstream->headers_in.status_n)
        || ngx_http_eas_get_ctx(r) == NULL)
    {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_eas_answer_header(r, &ngx_http_eas_server_header,
                                   &ngx_http_eas_server_version)
        != NGX_OK
        || ngx_http_eas_answer_header(r, &ngx_http_eas_cache_header,
                                      &ngx_http_eas_cache_private)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* adds "name: value" unless the answer already has a header of that name */

ngx_int_t
ngx_http_eas_answer_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    if (ngx_http_eas_header_find(&r->headers_out.headers, name) != NULL) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key = *name;
    h->value = *value;

    return NGX_OK;
}


/*
 * A blocked device, as Exchange's device access answers it: from
 * protocol 14.0 on, 200 with the command's top-level Status 129
 * (DeviceIsBlockedForThisUser, MS-ASCMD 2.2.2), which phones show as
 * blocked by the administrator; before 14.0, and for a command without
 * a top-level Status, 403 (MS-ASHTTP 2.2.2.1.1).  An explicit
 * eas_device_block_status overrides both.  Returns the status to
 * finalize with, or NGX_DONE once the answer is sent.
 */

ngx_int_t
ngx_http_eas_answer_blocked(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_eas_ctx_t *ctx)
{
    size_t      len;
    u_char     *out;
    ngx_int_t   rc;

    if (status != 0) {
        return status;
    }

    if (r->method != NGX_HTTP_POST || ctx->request.version_code < 140) {
        return NGX_HTTP_FORBIDDEN;
    }

    out = ngx_pnalloc(r->pool, EAS_WBXML_RESPONSE_MAX);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = eas_wbxml_command_status(ctx->request.command,
                                   EAS_STATUS_DEVICE_BLOCKED, out,
                                   EAS_WBXML_RESPONSE_MAX);
    if (len == 0) {
        return NGX_HTTP_FORBIDDEN;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_finalize_request(r, ngx_http_eas_answer_wbxml(r, out, len));

    return NGX_DONE;
}


/* sends "200" with a WBXML body; returns what to finalize with */

ngx_int_t
ngx_http_eas_answer_wbxml(ngx_http_request_t *r, u_char *data, size_t len)
{
    return ngx_http_eas_send(r, NGX_HTTP_OK, &ngx_http_eas_answer_type, data,
                             len);
}


/*
 * The answers of the admin API, the status and the inventory: not to be
 * kept by a cache or a browser, nor read as another type than given.
 */

ngx_int_t
ngx_http_eas_answer_private(ngx_http_request_t *r)
{
    static ngx_str_t  cc = ngx_string("Cache-Control");
    static ngx_str_t  no_store = ngx_string("no-store");
    static ngx_str_t  xcto = ngx_string("X-Content-Type-Options");
    static ngx_str_t  nosniff = ngx_string("nosniff");

    if (ngx_http_eas_answer_header(r, &cc, &no_store) != NGX_OK
        || ngx_http_eas_answer_header(r, &xcto, &nosniff) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Every body the module makes itself (edge answers, the status, the
 * inventory, the admin API): status, type and bytes in memory; returns
 * what to finalize with.
 */

ngx_int_t
ngx_http_eas_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *type,
    u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* the first header of that name in a list of headers, or NULL */

ngx_table_elt_t *
ngx_http_eas_header_find(ngx_list_t *headers, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0 && h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}
