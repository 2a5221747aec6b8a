
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


static ngx_http_eas_ctx_t *ngx_http_eas_create_ctx(ngx_http_request_t *r);
static void ngx_http_eas_ctx_marker(void *data);
static ngx_int_t ngx_http_eas_query_identity(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);
static ngx_int_t ngx_http_eas_refuse_method(ngx_http_request_t *r,
    ngx_http_eas_loc_conf_t *elcf, ngx_http_eas_ctx_t *ctx);
static ngx_int_t ngx_http_eas_check_target(ngx_http_request_t *r,
    ngx_http_eas_ctx_t *ctx);
static const char *ngx_http_eas_headers(ngx_http_request_t *r,
    eas_input_t *in);
static ngx_inline ngx_uint_t ngx_http_eas_key_is(u_char *key,
    const char *name, size_t len);


static ngx_str_t  ngx_http_eas_method_reason =
    ngx_string("method_not_allowed");


/*
 * Step 1 of the request flow (docs/requests.md): the query and the EAS
 * headers become an eas_request_t kept in the request context.  A
 * malformed request ends here with 400 and one log line.
 */

ngx_int_t
ngx_http_eas_parse_handler(ngx_http_request_t *r)
{
    int                       rc;
    size_t                    size;
    u_char                   *buf;
    const char               *twice;
    eas_input_t               in;
    ngx_http_eas_ctx_t       *ctx;
    ngx_http_eas_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_module);

    if (!elcf->enable || r != r->main) {
        return NGX_DECLINED;
    }

    /* parsed once: an internal redirect keeps the first result */

    if (ngx_http_eas_get_ctx(r) != NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_eas_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & elcf->methods)) {
        ngx_memzero(&ctx->request, sizeof(eas_request_t));
        return ngx_http_eas_refuse_method(r, elcf, ctx);
    }

    if (ngx_http_eas_check_target(r, ctx) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_memzero(&in, sizeof(eas_input_t));

    in.query.data = r->args.data;
    in.query.len = r->args.len;
    in.options = (r->method == NGX_HTTP_OPTIONS);

    /* a header sent twice is read by one backend as a list, by another
     * as its last line: the edge reads no header it cannot read alone */

    twice = ngx_http_eas_headers(r, &in);

    /*
     * the query phones send needs no scratch buffer: it is parsed
     * without one first, and one is allocated only when asked for
     */

    rc = EAS_ERROR;

    if (!twice) {
        rc = eas_request_parse(&in, &ctx->request, NULL, 0);
    }

    if (rc != EAS_OK && !twice
        && ctx->request.reason == EAS_REASON_BUFFER_TOO_SMALL)
    {
        size = eas_request_buffer_size(r->args.len);

        buf = ngx_pnalloc(r->pool, size);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = eas_request_parse(&in, &ctx->request, buf, size);
    }

    if (twice) {
        ngx_memzero(&ctx->request, sizeof(eas_request_t));
        ctx->request.reason = EAS_REASON_HEADER_DUPLICATE;
        ctx->request.reason_param = twice;

    } else if (rc == EAS_OK) {
        ctx->parsed = 1;

        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "eas request: cmd \"%s\" device \"%*s\" version %ui",
                       ctx->request.command_name.len
                       ? (char *) ctx->request.command_name.data : "",
                       ctx->request.device_id.len,
                       ctx->request.device_id.data,
                       (ngx_uint_t) ctx->request.version_code);

        return NGX_DECLINED;
    }

    /*
     * An OPTIONS is as strict as a POST about a query it cannot read
     * alone (a duplicate, ";", a bad escape): forgetting its fields
     * would forward it past the device rules.  The parser forgives it
     * only what is missing or unknown (in.options).
     */

    ctx->reason.data = (u_char *) eas_reason_name(ctx->request.reason);
    ctx->reason.len = ngx_strlen(ctx->reason.data);

    if (ctx->request.reason_param) {
        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: malformed request: %s \"%s\"",
                      eas_reason_text(ctx->request.reason),
                      ctx->request.reason_param);

    } else {
        ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                      "eas: malformed request: %s",
                      eas_reason_text(ctx->request.reason));
    }

    return NGX_HTTP_BAD_REQUEST;
}


/*
 * The context must outlive an internal redirect (an error_page, say) so
 * that the log phase still sees it; as the realip module does, a pool
 * cleanup entry marks it and ngx_http_eas_get_ctx() finds it again.
 */

ngx_http_eas_ctx_t *
ngx_http_eas_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_eas_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eas_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {

        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_eas_ctx_marker) {
                ctx = cln->data;
                break;
            }
        }

        if (ctx) {
            ngx_http_set_ctx(r, ctx, ngx_http_eas_module);
        }
    }

    return ctx;
}


/*
 * The user that later steps (device rules, per-device state) key on:
 * the identity pre-authentication verified, else, where no
 * pre-authentication is configured, the query's User= normalised as
 * a verified name would be (the name part, lower case; empty if none
 * or if it is no user name).
 */

ngx_int_t
ngx_http_eas_identity(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx,
    ngx_str_t *user)
{
    /* made on first use: most requests are pre-authenticated or need
     * no identity at all */

    if (!ctx->authenticated && !ctx->identity) {

        if (ngx_http_eas_query_identity(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->identity = 1;
    }

    *user = ctx->user;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_query_identity(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx)
{
    size_t      i, n;
    u_char      id[EAS_BASIC_USER_MAX];
    eas_user_t  u;

    if (!ctx->parsed || ctx->request.user.len == 0) {
        ngx_str_null(&ctx->user);
        return NGX_OK;
    }

    /*
     * A name part of visible ASCII with no capital letter is its own
     * identity (nothing to fold, no space to squeeze): used where it
     * lies, as phones send it
     */

    if (eas_user_split(ctx->request.user.data, ctx->request.user.len, &u)
        == EAS_OK)
    {
        for (i = 0; i < u.name.len; i++) {
            if (u.name.data[i] < 0x21 || u.name.data[i] > 0x7e
                || (u.name.data[i] >= 'A' && u.name.data[i] <= 'Z'))
            {
                break;
            }
        }

        if (i == u.name.len) {
            ctx->user.data = (u_char *) u.name.data;
            ctx->user.len = u.name.len;
            return NGX_OK;
        }
    }

    if (ngx_http_eas_user_identity(NULL, (u_char *) ctx->request.user.data,
                                   ctx->request.user.len, id, sizeof(id),
                                   &n)
        != NGX_OK)
    {
        ngx_str_null(&ctx->user);
        return NGX_OK;
    }

    ctx->user.data = ngx_pnalloc(r->pool, n);
    if (ctx->user.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->user.data, id, n);
    ctx->user.len = n;

    return NGX_OK;
}


/*
 * The context and its cleanup entry in one allocation, linked as
 * ngx_pool_cleanup_add() links one.  The request's fields are left to
 * whoever fills them (eas_request_parse() sets every one, a refusal
 * before it zeroes them): only the rest is zeroed here.
 */

static ngx_http_eas_ctx_t *
ngx_http_eas_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_eas_ctx_t         *ctx;
    ngx_http_eas_ctx_block_t   *b;

    b = ngx_palloc(r->pool, sizeof(ngx_http_eas_ctx_block_t));
    if (b == NULL) {
        return NULL;
    }

    ctx = &b->ctx;
    ngx_memzero(&ctx->user, sizeof(ngx_http_eas_ctx_t)
                            - offsetof(ngx_http_eas_ctx_t, user));

    cln = &b->cln;
    cln->handler = ngx_http_eas_ctx_marker;
    cln->data = ctx;
    cln->next = r->pool->cleanup;

    r->pool->cleanup = cln;

    ngx_http_set_ctx(r, ctx, ngx_http_eas_module);

    return ctx;
}


static void
ngx_http_eas_ctx_marker(void *data)
{
    /* nothing to release: the entry only lets the context be found */
}


static ngx_int_t
ngx_http_eas_refuse_method(ngx_http_request_t *r,
    ngx_http_eas_loc_conf_t *elcf, ngx_http_eas_ctx_t *ctx)
{
    ngx_table_elt_t  *allow;

    ctx->reason = ngx_http_eas_method_reason;

    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                  "eas: method \"%V\" not allowed", &r->method_name);

    allow = ngx_list_push(&r->headers_out.headers);
    if (allow == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    allow->hash = 1;
#if (nginx_version >= 1023000)
    allow->next = NULL;
#endif
    ngx_str_set(&allow->key, "Allow");
    allow->value = elcf->allow;

    return NGX_HTTP_NOT_ALLOWED;
}


/*
 * The target as the backend will get it, checked for every method: with
 * an unchanged URI proxy_pass forwards r->unparsed_uri, which must say
 * what the normalized r->uri that chose this location says; after a
 * rewrite it forwards r->uri itself (escaped) and r->args.
 */

static ngx_int_t
ngx_http_eas_check_target(ngx_http_request_t *r, ngx_http_eas_ctx_t *ctx)
{
    eas_str_t     target, uri;
    eas_reason_e  reason;

    uri.data = r->uri.data;
    uri.len = r->uri.len;

    if (r->valid_unparsed_uri) {
        target.data = r->unparsed_uri.data;
        target.len = r->unparsed_uri.len;

        if (eas_target_check(&target, &uri, &reason) == EAS_OK) {
            return NGX_OK;
        }

    } else if (eas_target_check(&uri, NULL, &reason) == EAS_OK) {
        return NGX_OK;
    }

    ngx_memzero(&ctx->request, sizeof(eas_request_t));

    ctx->request.reason = reason;
    ctx->reason.data = (u_char *) eas_reason_name(reason);
    ctx->reason.len = ngx_strlen(ctx->reason.data);

    ngx_log_error(NGX_HTTP_EAS_LOG_LEVEL(r), r->connection->log, 0,
                  "eas: malformed request: %s", eas_reason_text(reason));

    return NGX_ERROR;
}


/*
 * The EAS headers, each the first of its name, in one pass over the
 * request's headers; nginx has already lower-cased every name into
 * lowcase_key, so a length and a memcmp() tell them apart.  Returns the
 * name of one sent twice, or NULL.
 */

static const char *
ngx_http_eas_headers(ngx_http_request_t *r, eas_input_t *in)
{
    u_char           *key;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
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

        key = h[i].lowcase_key;

        if (h[i].key.len == sizeof("ms-asprotocolversion") - 1) {

            if (ngx_http_eas_key_is(key, "ms-asprotocolversion",
                                    sizeof("ms-asprotocolversion") - 1))
            {
                if (in->has_version) {
                    return "MS-ASProtocolVersion";
                }

                in->version.data = h[i].value.data;
                in->version.len = h[i].value.len;
                in->has_version = 1;

            } else if (ngx_http_eas_key_is(key, "ms-asacceptmultipart",
                                           sizeof("ms-asacceptmultipart")
                                           - 1))
            {
                if (in->has_accept_multipart) {
                    return "MS-ASAcceptMultiPart";
                }

                in->accept_multipart.data = h[i].value.data;
                in->accept_multipart.len = h[i].value.len;
                in->has_accept_multipart = 1;
            }

        } else if (h[i].key.len == sizeof("x-ms-policykey") - 1
                   && ngx_http_eas_key_is(key, "x-ms-policykey",
                                          sizeof("x-ms-policykey") - 1))
        {
            if (in->has_policy_key) {
                return "X-MS-PolicyKey";
            }

            in->policy_key.data = h[i].value.data;
            in->policy_key.len = h[i].value.len;
            in->has_policy_key = 1;
        }
    }
}


/*
 * A lower-cased header name against one of at least eight bytes: eight
 * bytes a step, the last eight overlapping the step before (inline, the
 * length a constant: a few loads instead of a call to memcmp())
 */

static ngx_inline ngx_uint_t
ngx_http_eas_key_is(u_char *key, const char *name, size_t len)
{
    size_t    i;
    uint64_t  a, b;

    for (i = 0; len - i > 8; i += 8) {
        ngx_memcpy(&a, key + i, sizeof(uint64_t));
        ngx_memcpy(&b, name + i, sizeof(uint64_t));

        if (a != b) {
            return 0;
        }
    }

    ngx_memcpy(&a, key + len - 8, sizeof(uint64_t));
    ngx_memcpy(&b, name + len - 8, sizeof(uint64_t));

    return a == b;
}
