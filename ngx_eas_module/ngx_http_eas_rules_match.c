
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The device rules' decision for one request (docs/devices.md): the
 * hash tables of exact conditions looked up, the other rules tried in
 * configuration order while they come before the best hash hit, first
 * match wins; the reason named after the rule that decided.  The rules
 * are compiled in ngx_http_eas_rules.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_rules.h"


/*
 * The connection's memo of its last decision (docs/devices.md): the
 * rules are fixed for the configuration's life and decide from the
 * request's four fields alone, so a phone sending the same fields again
 * on its keep-alive (or HTTP/2) connection gets the rule that decided
 * last, without the hashing and the lookups.  Like the digest memo
 * (ngx_http_eas_memo.c) it lives in the connection from its second
 * request on and is freed with it; a decision in which a regular
 * expression could not be evaluated is never remembered (its log line
 * is written every time).
 */

typedef struct {
    ngx_http_eas_rules_t       *rules;    /* NULL: empty */
    ngx_http_eas_rule_t        *best;     /* NULL: no rule matched */
    size_t                      len;
    size_t                      size;     /* allocated */
    u_char                     *data;     /* the fields, each after its
                                             length */
} ngx_http_eas_rules_memo_t;


static ngx_uint_t ngx_http_eas_rule_match(ngx_http_eas_rule_t *rule,
    ngx_http_eas_device_values_t *values, ngx_log_t *log);
static ngx_uint_t ngx_http_eas_rules_memo_same(ngx_http_eas_rules_memo_t *memo,
    ngx_http_eas_device_values_t *values);
static void ngx_http_eas_rules_memo_keep(ngx_http_eas_rules_memo_t *memo,
    ngx_http_eas_rules_t *rules, ngx_http_eas_device_values_t *values,
    ngx_http_eas_rule_t *best);
static void ngx_http_eas_rules_memo_cleanup(void *data);


/*
 * The first rule in configuration order that matches the request:
 * NGX_OK with its access and reason ("source:line", from r->pool),
 * NGX_DECLINED if none does.
 */

ngx_int_t
ngx_http_eas_rules_decide(ngx_http_request_t *r, ngx_http_eas_rules_t *rules,
    ngx_http_eas_device_values_t *values, ngx_uint_t *access,
    ngx_str_t *reason)
{
    ngx_str_t                  *v;
    ngx_uint_t                  f, i, failed, unsure;
    ngx_http_eas_rule_t        *best, *hit, **scan;
    ngx_http_eas_rules_memo_t  *memo;

    best = NULL;
    failed = 0;
    unsure = 0;

    memo = ngx_http_eas_connection_data(r, ngx_http_eas_rules_memo_cleanup,
                                        sizeof(ngx_http_eas_rules_memo_t));

    if (memo && memo->rules == rules
        && ngx_http_eas_rules_memo_same(memo, values))
    {
        best = memo->best;
        goto decided;
    }

    for (f = 0; f < NGX_HTTP_EAS_FIELDS; f++) {

        if (rules->nexact[f] == 0) {
            continue;
        }

        v = &values->lower[f];

        hit = ngx_hash_find(&rules->exact[f], ngx_hash_key(v->data, v->len),
                            v->data, v->len);

        if (hit && !ngx_http_eas_fields[f].caseless
            && ngx_strncmp(values->value[f].data, hit->conds[0].value.data,
                           v->len)
               != 0)
        {
            hit = NULL;
        }

        if (hit && (best == NULL || hit->index < best->index)) {
            best = hit;
        }
    }

    scan = rules->scan.elts;

    for (i = 0; i < rules->scan.nelts; i++) {

        if (best && scan[i]->index > best->index) {
            break;
        }

        switch (ngx_http_eas_rule_match(scan[i], values, r->connection->log)) {

        case NGX_HTTP_EAS_RULE_MATCH:
            best = scan[i];
            break;

        case NGX_HTTP_EAS_RULE_FAILED:

            unsure = 1;

            /* a block that cannot be evaluated blocks; an allow does not */

            if (scan[i]->access != NGX_HTTP_EAS_ACCESS_BLOCKED) {
                continue;
            }

            best = scan[i];
            failed = 1;
            break;

        default:
            continue;
        }

        break;
    }

    if (memo && !unsure) {
        ngx_http_eas_rules_memo_keep(memo, rules, values, best);
    }

decided:

    if (best == NULL) {
        return NGX_DECLINED;
    }

    *access = best->access;

    if (!failed) {
        return ngx_http_eas_reason(r, best->source, best->line, reason);
    }

    /* the rule's "source:line" after "regex_error:" */

    reason->data = ngx_pnalloc(r->pool, sizeof("regex_error::") - 1
                                        + best->source->len + NGX_INT_T_LEN);
    if (reason->data == NULL) {
        return NGX_ERROR;
    }

    reason->len = ngx_sprintf(reason->data, "regex_error:%V:%ui",
                              best->source, best->line)
                  - reason->data;

    return NGX_OK;
}


/* "source:line" in r->pool, the $eas_reason of a rule or list entry */

ngx_int_t
ngx_http_eas_reason(ngx_http_request_t *r, ngx_str_t *source,
    ngx_uint_t line, ngx_str_t *reason)
{
    reason->data = ngx_pnalloc(r->pool, source->len + 1 + NGX_INT_T_LEN);
    if (reason->data == NULL) {
        return NGX_ERROR;
    }

    reason->len = ngx_sprintf(reason->data, "%V:%ui", source, line)
                  - reason->data;

    return NGX_OK;
}


/*
 * NGX_HTTP_EAS_RULE_MATCH when every condition matches, ..._FAILED
 * when a regular expression could not be evaluated (PCRE's match or
 * depth limit: a subject crafted to backtrack), else ..._NO_MATCH.
 * The caller decides what a failure means, never "no match" for a
 * block.  A failure of an allow rule is logged here; that of a block
 * rule is the refusal's line.
 */

static ngx_uint_t
ngx_http_eas_rule_match(ngx_http_eas_rule_t *rule,
    ngx_http_eas_device_values_t *values, ngx_log_t *log)
{
    ngx_int_t             rc;
    ngx_str_t            *v;
    ngx_uint_t            i;
    ngx_http_eas_cond_t  *cond, *failed;

    failed = NULL;

    for (i = 0; i < rule->nconds; i++) {
        cond = &rule->conds[i];

#if (NGX_PCRE)
        if (cond->regex) {
            v = &values->value[cond->field];

            rc = ngx_regex_exec(cond->regex, v, NULL, 0);

            if (rc == NGX_REGEX_NO_MATCHED) {
                return NGX_HTTP_EAS_RULE_NO_MATCH;
            }

            if (rc < 0) {
                /* another condition may still rule the request out */
                failed = cond;
                ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                               "eas rule regex failed: %i", rc);
            }

            continue;
        }
#endif

        v = ngx_http_eas_fields[cond->field].caseless
            ? &values->lower[cond->field] : &values->value[cond->field];

        if (v->len != cond->value.len
            || ngx_strncmp(v->data, cond->value.data, v->len) != 0)
        {
            return NGX_HTTP_EAS_RULE_NO_MATCH;
        }
    }

    if (failed == NULL) {
        return NGX_HTTP_EAS_RULE_MATCH;
    }

    if (rule->access != NGX_HTTP_EAS_ACCESS_BLOCKED) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "eas: device rule %V:%ui not applied: its regular "
                      "expression \"%V\" could not be evaluated",
                      rule->source, rule->line, &failed->value);
    }

    return NGX_HTTP_EAS_RULE_FAILED;
}


/* the fields are those the memo was made of */

static ngx_uint_t
ngx_http_eas_rules_memo_same(ngx_http_eas_rules_memo_t *memo,
    ngx_http_eas_device_values_t *values)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   f;

    p = memo->data;
    last = p + memo->len;

    for (f = 0; f < NGX_HTTP_EAS_FIELDS; f++) {
        if ((size_t) (last - p) < sizeof(size_t)) {
            return 0;
        }

        ngx_memcpy(&len, p, sizeof(size_t));
        p += sizeof(size_t);

        if (len != values->value[f].len || (size_t) (last - p) < len
            || (len && ngx_memcmp(p, values->value[f].data, len) != 0))
        {
            return 0;
        }

        p += len;
    }

    return p == last;
}


static void
ngx_http_eas_rules_memo_keep(ngx_http_eas_rules_memo_t *memo,
    ngx_http_eas_rules_t *rules, ngx_http_eas_device_values_t *values,
    ngx_http_eas_rule_t *best)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   f;

    memo->rules = NULL;

    len = 0;

    for (f = 0; f < NGX_HTTP_EAS_FIELDS; f++) {
        len += sizeof(size_t) + values->value[f].len;
    }

    if (len > memo->size) {
        ngx_free(memo->data);

        memo->size = 0;
        memo->data = ngx_alloc(len, ngx_cycle->log);
        if (memo->data == NULL) {
            return;
        }

        memo->size = len;
    }

    p = memo->data;

    for (f = 0; f < NGX_HTTP_EAS_FIELDS; f++) {
        p = ngx_cpymem(p, &values->value[f].len, sizeof(size_t));

        if (values->value[f].len) {
            p = ngx_cpymem(p, values->value[f].data, values->value[f].len);
        }
    }

    memo->len = len;
    memo->best = best;
    memo->rules = rules;
}


static void
ngx_http_eas_rules_memo_cleanup(void *data)
{
    ngx_http_eas_rules_memo_t  *memo = data;

    ngx_free(memo->data);
}
