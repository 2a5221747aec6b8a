
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _NGX_HTTP_EAS_RULES_H_INCLUDED_
#define _NGX_HTTP_EAS_RULES_H_INCLUDED_


/*
 * The device rules' own header, shared by ngx_http_eas_rules.c (the
 * directives and files, compiled at "nginx -t") and
 * ngx_http_eas_rules_match.c (the decision for one request).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"


/* what ngx_http_eas_rule_match() finds */
#define NGX_HTTP_EAS_RULE_NO_MATCH  0
#define NGX_HTTP_EAS_RULE_MATCH     1
#define NGX_HTTP_EAS_RULE_FAILED    2


typedef struct {
    ngx_uint_t                  field;
    ngx_str_t                   value;      /* lower-cased if caseless */
#if (NGX_PCRE)
    ngx_regex_t                *regex;
#endif
} ngx_http_eas_cond_t;


typedef struct {
    ngx_uint_t                  index;      /* configuration order */
    ngx_uint_t                  access;     /* NGX_HTTP_EAS_ACCESS_* */
    ngx_str_t                  *source;     /* "eas_device_rules:/path" */
    ngx_uint_t                  line;
    ngx_uint_t                  nconds;
    ngx_http_eas_cond_t         conds[1];
} ngx_http_eas_rule_t;


struct ngx_http_eas_rules_s {
    ngx_array_t                 rules;      /* ngx_http_eas_rule_t * */
    ngx_array_t                 scan;       /* ngx_http_eas_rule_t * */
    ngx_hash_t                  exact[NGX_HTTP_EAS_FIELDS];
    ngx_uint_t                  nexact[NGX_HTTP_EAS_FIELDS];
    ngx_uint_t                  lower;      /* 1 << field: the rules read
                                               values->lower[field] */
    unsigned                    compiled:1;
};


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  caseless;   /* exact values */
} ngx_http_eas_field_t;


extern ngx_http_eas_field_t  ngx_http_eas_fields[];


#endif /* _NGX_HTTP_EAS_RULES_H_INCLUDED_ */
