
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_rules.h"


/*
 * Device rules: "eas_device_allow" / "eas_device_block" directives and
 * "eas_device_rules" files, in configuration order, first match wins.
 * A rule with one exact condition goes into a hash table of its field,
 * so that a list of 100,000 DeviceIds costs one lookup; every other rule
 * (regular expressions, several conditions) is tried in order, and only
 * while it comes before the best hash hit.
 */


/* what a rules file's lines are added to */
typedef struct {
    ngx_http_eas_rules_t       *rules;
    ngx_str_t                  *source;     /* "eas_device_rules:/path" */
} ngx_http_eas_rules_file_t;


static ngx_http_eas_rules_t *ngx_http_eas_rules_get(ngx_conf_t *cf,
    ngx_http_eas_devices_conf_t *dcf);
static ngx_int_t ngx_http_eas_rules_file_line(ngx_conf_t *cf, void *data,
    ngx_str_t *file, ngx_uint_t line, ngx_array_t *tokens);
static ngx_int_t ngx_http_eas_rule_parse(ngx_conf_t *cf,
    ngx_http_eas_rules_t *rules, ngx_uint_t access, ngx_str_t *tokens,
    ngx_uint_t n, ngx_str_t *source, ngx_uint_t line, ngx_str_t *err);
static ngx_int_t ngx_http_eas_cond_parse(ngx_conf_t *cf, ngx_str_t *token,
    ngx_http_eas_cond_t *cond, ngx_str_t *err);


ngx_http_eas_field_t  ngx_http_eas_fields[] = {
    { ngx_string("device_id"), 1 },
    { ngx_string("device_type"), 1 },
    { ngx_string("user"), 1 },
    { ngx_string("user_agent"), 0 },
};


/* eas_device_allow cond ...; eas_device_block cond ...; */

char *
ngx_http_eas_device_rule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_devices_conf_t *dcf = conf;

    u_char                 errstr[NGX_MAX_CONF_ERRSTR];
    ngx_str_t             *value, *source, err;
    ngx_http_eas_rules_t  *rules;

    rules = ngx_http_eas_rules_get(cf, dcf);
    if (rules == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the reason names the directive and where it is */

    source = ngx_http_eas_reason_source(cf, &cmd->name,
                                       &cf->conf_file->file.name);
    if (source == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    err.len = NGX_MAX_CONF_ERRSTR;
    err.data = errstr;

    if (ngx_http_eas_rule_parse(cf, rules, cmd->offset, &value[1],
                                cf->args->nelts - 1, source,
                                cf->conf_file->line, &err)
        != NGX_OK)
    {
        if (err.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V in \"%V\"", &err,
                               &cmd->name);
        }

        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* eas_device_rules file; */

char *
ngx_http_eas_device_rules(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eas_devices_conf_t *dcf = conf;

    ngx_str_t                  *value, path;
    ngx_http_eas_rules_file_t   ctx;

    ctx.rules = ngx_http_eas_rules_get(cf, dcf);
    if (ctx.rules == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ctx.source = ngx_http_eas_reason_source(cf, &cmd->name, &path);
    if (ctx.source == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_eas_file_read(cf, &path, &cmd->name,
                               ngx_http_eas_rules_file_line, &ctx)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* "directive:file", the start of every reason a rule gives */

ngx_str_t *
ngx_http_eas_reason_source(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *file)
{
    u_char     *p;
    ngx_str_t  *source;

    source = ngx_palloc(cf->pool, sizeof(ngx_str_t));
    if (source == NULL) {
        return NULL;
    }

    source->len = directive->len + 1 + file->len;
    source->data = ngx_pnalloc(cf->pool, source->len);
    if (source->data == NULL) {
        return NULL;
    }

    p = ngx_cpymem(source->data, directive->data, directive->len);
    *p++ = ':';
    ngx_memcpy(p, file->data, file->len);

    return source;
}


/* the rules of this level, created by its first rule directive */

static ngx_http_eas_rules_t *
ngx_http_eas_rules_get(ngx_conf_t *cf, ngx_http_eas_devices_conf_t *dcf)
{
    ngx_http_eas_rules_t  *rules;

    if (dcf->device_rules != NGX_CONF_UNSET_PTR) {
        return dcf->device_rules;
    }

    rules = ngx_pcalloc(cf->pool, sizeof(ngx_http_eas_rules_t));
    if (rules == NULL) {
        return NULL;
    }

    if (ngx_array_init(&rules->rules, cf->pool, 16,
                       sizeof(ngx_http_eas_rule_t *))
        != NGX_OK)
    {
        return NULL;
    }

    dcf->device_rules = rules;

    return rules;
}


static ngx_int_t
ngx_http_eas_rules_file_line(ngx_conf_t *cf, void *data, ngx_str_t *file,
    ngx_uint_t line, ngx_array_t *tokens)
{
    ngx_http_eas_rules_file_t *ctx = data;

    u_char       errstr[NGX_MAX_CONF_ERRSTR];
    ngx_str_t   *token, err;
    ngx_uint_t   access;

    token = tokens->elts;

    if (token[0].len == 5 && ngx_strncmp(token[0].data, "allow", 5) == 0) {
        access = NGX_HTTP_EAS_ACCESS_ALLOWED;

    } else if (token[0].len == 5
               && ngx_strncmp(token[0].data, "block", 5) == 0)
    {
        access = NGX_HTTP_EAS_ACCESS_BLOCKED;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rule \"%V\" in \"%V\" at line %ui: "
                           "a rule starts with \"allow\" or \"block\"",
                           &token[0], file, line);
        return NGX_ERROR;
    }

    if (tokens->nelts < 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "rule without a condition in \"%V\" at line %ui",
                           file, line);
        return NGX_ERROR;
    }

    err.len = NGX_MAX_CONF_ERRSTR;
    err.data = errstr;

    if (ngx_http_eas_rule_parse(cf, ctx->rules, access, &token[1],
                                tokens->nelts - 1, ctx->source, line, &err)
        != NGX_OK)
    {
        if (err.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%V in \"%V\" at line %ui", &err, file, line);
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * One rule from its condition tokens.  NGX_ERROR with a message in err
 * (err->len 0 if memory ran out); the caller says where the rule is.
 */

static ngx_int_t
ngx_http_eas_rule_parse(ngx_conf_t *cf, ngx_http_eas_rules_t *rules,
    ngx_uint_t access, ngx_str_t *tokens, ngx_uint_t n, ngx_str_t *source,
    ngx_uint_t line, ngx_str_t *err)
{
    ngx_uint_t            i, j;
    ngx_http_eas_rule_t  *rule, **rp;

    if (n > NGX_HTTP_EAS_FIELDS) {
        err->len = ngx_snprintf(err->data, err->len,
                                "too many conditions in one device rule")
                   - err->data;
        return NGX_ERROR;
    }

    rule = ngx_pcalloc(cf->pool, offsetof(ngx_http_eas_rule_t, conds)
                                 + n * sizeof(ngx_http_eas_cond_t));
    if (rule == NULL) {
        err->len = 0;
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_eas_cond_parse(cf, &tokens[i], &rule->conds[i], err)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (j = 0; j < i; j++) {
            if (rule->conds[j].field == rule->conds[i].field) {
                err->len = ngx_snprintf(err->data, err->len,
                                        "duplicate field in \"%V\" in one "
                                        "device rule", &tokens[i])
                           - err->data;
                return NGX_ERROR;
            }
        }
    }

    rule->nconds = n;
    rule->access = access;
    rule->source = source;
    rule->line = line;
    rule->index = rules->rules.nelts;

    rp = ngx_array_push(&rules->rules);
    if (rp == NULL) {
        err->len = 0;
        return NGX_ERROR;
    }

    *rp = rule;

    return NGX_OK;
}


/* field=value, field=~regex, field=~*regex */

static ngx_int_t
ngx_http_eas_cond_parse(ngx_conf_t *cf, ngx_str_t *token,
    ngx_http_eas_cond_t *cond, ngx_str_t *err)
{
    u_char               *eq;
    size_t                n;
    ngx_str_t             value;
    ngx_uint_t            i;
    u_char                folded[EAS_BASIC_USER_MAX];
#if (NGX_PCRE)
    u_char                errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t   rc;
#endif

    eq = ngx_strlchr(token->data, token->data + token->len, '=');

    if (eq == NULL || eq + 1 == token->data + token->len) {
        err->len = ngx_snprintf(err->data, err->len,
                                "invalid device condition \"%V\": "
                                "use field=value", token)
                   - err->data;
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_EAS_FIELDS; i++) {
        if ((size_t) (eq - token->data) == ngx_http_eas_fields[i].name.len
            && ngx_strncmp(token->data, ngx_http_eas_fields[i].name.data,
                           ngx_http_eas_fields[i].name.len)
               == 0)
        {
            break;
        }
    }

    if (i == NGX_HTTP_EAS_FIELDS) {
        err->len = ngx_snprintf(err->data, err->len,
                                "unknown device field in \"%V\": use "
                                "device_id, device_type, user or user_agent",
                                token)
                   - err->data;
        return NGX_ERROR;
    }

    cond->field = i;

    value.data = eq + 1;
    value.len = token->data + token->len - value.data;

    /* user: the identity is folded (ngx_http_eas_fold()), so is the value */

    if (value.len && value.data[0] != '~'
        && i == NGX_HTTP_EAS_FIELD_USER)
    {
        if (ngx_http_eas_fold(value.data, value.len, folded, sizeof(folded),
                              &n)
            != NGX_OK)
        {
            err->len = ngx_snprintf(err->data, err->len,
                                    "\"%V\" can never match: not a user "
                                    "name (not UTF-8, too long, or empty "
                                    "once folded)", token)
                       - err->data;
            return NGX_ERROR;
        }

        value.data = folded;
        value.len = n;
    }

    /* the tokens of a rules file live in the temporary pool: copy */

    cond->value.len = value.len;
    cond->value.data = ngx_pnalloc(cf->pool, value.len);
    if (cond->value.data == NULL) {
        err->len = 0;
        return NGX_ERROR;
    }

    if (value.data[0] != '~') {
        if (ngx_http_eas_fields[i].caseless) {
            ngx_strlow(cond->value.data, value.data, value.len);

        } else {
            ngx_memcpy(cond->value.data, value.data, value.len);
        }

        return NGX_OK;
    }

    ngx_memcpy(cond->value.data, value.data, value.len);

#if (NGX_PCRE)

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern.data = cond->value.data + 1;
    rc.pattern.len = cond->value.len - 1;

    if (rc.pattern.len && rc.pattern.data[0] == '*') {
        rc.pattern.data++;
        rc.pattern.len--;
        rc.options = NGX_REGEX_CASELESS;
    }

    if (rc.pattern.len == 0) {
        err->len = ngx_snprintf(err->data, err->len,
                                "empty regular expression in \"%V\"", token)
                   - err->data;
        return NGX_ERROR;
    }

    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        err->len = ngx_snprintf(err->data, err->len, "%V in \"%V\"",
                                &rc.err, token)
                   - err->data;
        return NGX_ERROR;
    }

    cond->regex = rc.regex;

    return NGX_OK;

#else

    err->len = ngx_snprintf(err->data, err->len,
                            "using regex \"%V\" requires PCRE library",
                            token)
               - err->data;
    return NGX_ERROR;

#endif
}


/*
 * Builds the hash tables once the level's rules are all read; called
 * from merge for the level that defines them (and for the http level,
 * which is never merged itself, when its first child is).
 */

ngx_int_t
ngx_http_eas_rules_compile(ngx_conf_t *cf, ngx_http_eas_rules_t *rules)
{
    size_t                   max;
    ngx_int_t                rc;
    ngx_str_t                key;
    ngx_uint_t               i, j, f, field;
    ngx_http_eas_rule_t    **rule, **rp;
    ngx_hash_keys_arrays_t   keys[NGX_HTTP_EAS_FIELDS];

    if (rules->compiled) {
        return NGX_OK;
    }

    rules->compiled = 1;

    if (ngx_array_init(&rules->scan, cf->pool, 4,
                       sizeof(ngx_http_eas_rule_t *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memzero(keys, sizeof(keys));

    rule = rules->rules.elts;
    max = 0;

    for (i = 0; i < rules->rules.nelts; i++) {

        /* a field no rule names is not lower-cased for it per request */

        for (j = 0; j < rule[i]->nconds; j++) {
            rules->lower |= (ngx_uint_t) 1 << rule[i]->conds[j].field;
        }

        if (rule[i]->nconds != 1
#if (NGX_PCRE)
            || rule[i]->conds[0].regex
#endif
           )
        {
            rp = ngx_array_push(&rules->scan);
            if (rp == NULL) {
                return NGX_ERROR;
            }

            *rp = rule[i];
            continue;
        }

        field = rule[i]->conds[0].field;

        if (keys[field].temp_pool == NULL) {
            keys[field].pool = cf->pool;
            keys[field].temp_pool = cf->temp_pool;

            if (ngx_hash_keys_array_init(&keys[field], NGX_HASH_LARGE)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        /*
         * ngx_hash_t keeps its keys lower-cased: a case-sensitive value
         * goes in as a lower-cased copy, and a hit is checked against the
         * value itself in ngx_http_eas_rules_decide()
         */

        key = rule[i]->conds[0].value;

        if (!ngx_http_eas_fields[field].caseless) {
            key.data = ngx_pnalloc(cf->temp_pool, key.len);
            if (key.data == NULL) {
                return NGX_ERROR;
            }

            ngx_strlow(key.data, rule[i]->conds[0].value.data, key.len);
        }

        rc = ngx_hash_add_key(&keys[field], &key, rule[i],
                              NGX_HASH_READONLY_KEY);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_BUSY && !ngx_http_eas_fields[field].caseless) {

            /* the same value in another case: tried in order instead */

            rp = ngx_array_push(&rules->scan);
            if (rp == NULL) {
                return NGX_ERROR;
            }

            *rp = rule[i];
        }

        /* NGX_BUSY of a caseless value: the first rule wins anyway */

        max = ngx_max(max, key.len);
    }

    for (f = 0; f < NGX_HTTP_EAS_FIELDS; f++) {

        if (keys[f].temp_pool == NULL || keys[f].keys.nelts == 0) {
            continue;
        }

        if (ngx_http_eas_hash_build(cf, &rules->exact[f], &keys[f], max,
                                    "eas_device_rules_hash")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        rules->nexact[f] = keys[f].keys.nelts;
    }

    return NGX_OK;
}


/*
 * An exact-match table of keys no longer than max.  Twice as many
 * buckets as keys: ngx_hash_init() then starts its search where every
 * bucket fits at the first try, so that 100,000 keys take no longer to
 * build than ten.
 */

ngx_int_t
ngx_http_eas_hash_build(ngx_conf_t *cf, ngx_hash_t *hash,
    ngx_hash_keys_arrays_t *keys, size_t max, char *name)
{
    ngx_hash_init_t  hinit;

    if (keys->keys.nelts == 0) {
        return NGX_OK;
    }

    ngx_memzero(&hinit, sizeof(ngx_hash_init_t));

    hinit.hash = hash;
    hinit.key = ngx_hash_key;
    hinit.max_size = 2 * keys->keys.nelts + 10000;
    hinit.bucket_size = ngx_align(4 * (max + 2 + sizeof(void *))
                                  + sizeof(void *), ngx_cacheline_size);
    hinit.bucket_size = ngx_max(hinit.bucket_size, 256);
    hinit.name = name;
    hinit.pool = cf->pool;

    return ngx_hash_init(&hinit, keys->keys.elts, keys->keys.nelts);
}


/* the rules are inherited only by a level that defines none */

ngx_int_t
ngx_http_eas_rules_merge(ngx_conf_t *cf, ngx_http_eas_rules_t **conf,
    ngx_http_eas_rules_t *prev)
{
    if (*conf == NGX_CONF_UNSET_PTR) {
        *conf = (prev == NGX_CONF_UNSET_PTR) ? NULL : prev;
    }

    if (*conf == NULL) {
        return NGX_OK;
    }

    return ngx_http_eas_rules_compile(cf, *conf);
}


