
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_admin_rules.h"


/*
 * The admin API's resources of device access
 * (ngx_http_eas_admin.c dispatches to them): "devices", the device
 * zone's records listed (filtered, sorted, a page at a time) and
 * deleted, "devices/stale", those not seen for some days, and
 * "rules", the runtime decisions of "eas_admin_rules" listed, set
 * and removed (ngx_http_eas_admin_rules.c keeps them).
 */


#define NGX_HTTP_EAS_ADMIN_PAGE      100     /* devices per page */
#define NGX_HTTP_EAS_ADMIN_PAGE_MAX  1000


/* the parameters each resource takes; NULL-terminated */

static char  *ngx_http_eas_admin_list_args[] =
    { "user", "device_id", "device_type", "decision", "sort", "page",
      "per_page", NULL };
static char  *ngx_http_eas_admin_device_args[] = { "user", "device_id", NULL };
static char  *ngx_http_eas_admin_stale_args[] = { "days", NULL };
static char  *ngx_http_eas_admin_rule_args[] =
    { "access", "device_id", "user", NULL };


static ngx_int_t ngx_http_eas_admin_device_list(ngx_http_request_t *r,
    ngx_http_eas_device_t *devices, ngx_uint_t n, ngx_uint_t total,
    ngx_uint_t page, ngx_uint_t per_page);
static ngx_int_t ngx_http_eas_admin_device_user(ngx_http_request_t *r,
    ngx_str_t *user, ngx_str_t *json);
static ngx_int_t ngx_http_eas_admin_filter(ngx_http_request_t *r,
    ngx_http_eas_device_filter_t *f);


ngx_int_t
ngx_http_eas_admin_devices(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    ngx_int_t                      rc, shared;
    ngx_str_t                      user, device_id, what, qu, qd;
    ngx_uint_t                     n, total, page, per_page;
    ngx_http_eas_device_t         *devices;
    ngx_http_eas_device_filter_t   filter;

    if (acf->devices == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no device_zone in \"eas_admin\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_list_args, NULL);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        if (ngx_http_eas_admin_number(r, "page", 1, NGX_MAX_INT32_VALUE,
                                      &page) != NGX_OK
            || ngx_http_eas_admin_number(r, "per_page",
                                         NGX_HTTP_EAS_ADMIN_PAGE,
                                         NGX_HTTP_EAS_ADMIN_PAGE_MAX,
                                         &per_page) != NGX_OK
            || page == 0 || per_page == 0)
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid page or per_page");
        }

        if (ngx_http_eas_admin_filter(r, &filter) != NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "decision must be allowed, "
                                            "blocked or none; sort "
                                            "last_seen or -last_seen");
        }

        /* user= as requests are keyed: "CORP\\jdoe" is jdoe@corp.example */

        rc = ngx_http_eas_admin_device_user(r, &filter.user, &what);

        if (rc == NGX_BUSY || rc == NGX_ERROR || rc == NGX_DONE) {
            return ngx_http_eas_admin_user_refused(r, rc, &what);
        }

        /* filtered and paged in the zone: only the page is copied */

        filter.skip = (page - 1) * per_page;

        devices = ngx_palloc(r->pool,
                             per_page * sizeof(ngx_http_eas_device_t));
        if (devices == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_device_select(acf->devices, &filter, devices,
                                       per_page, &total);

        return ngx_http_eas_admin_device_list(r, devices, n, total, page,
                                              per_page);
    }

    if (r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    /* user= may be empty: the record of a request that named no user */

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_device_args, "user");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_arg(r, "user", &user) != NGX_OK
        || ngx_http_eas_admin_arg(r, "device_id", &device_id) != NGX_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give user and device_id");
    }

    /* the key as listed, or as requests of that name are keyed */

    rc = ngx_http_eas_admin_device_user(r, &user, &what);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DONE) {
        return ngx_http_eas_admin_user_refused(r, rc, &what);
    }

    /* on Redis first: refused there, it is not made here either */

    shared = ngx_http_eas_redis_device_delete(acf->devices, &user,
                                              &device_id);
    if (shared == NGX_BUSY) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "shared state down and this "
                                        "worker's queue of deletions for "
                                        "it full: try again once it is "
                                        "back");
    }

    if (ngx_http_eas_device_delete(acf->devices, &user, &device_id)
        != NGX_OK)
    {
        /* a bare name in a forest, of no record: the keys it may be */

        if (rc == NGX_BUSY) {
            return ngx_http_eas_admin_user_refused(r, rc, &what);
        }

        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such device");
    }

    if (ngx_http_eas_admin_audit_value(r, &user, &qu) != NGX_OK
        || ngx_http_eas_admin_audit_value(r, &device_id, &qd) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = ngx_pnalloc(r->pool, qu.len + qd.len + sizeof(" of "));
    if (what.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.len = ngx_sprintf(what.data, "%V of %V", &qd, &qu) - what.data;
    ngx_http_eas_admin_audit(r, "delete device", &what);

    /* with eas_shared_state: sent to Redis, or kept until it is back */

    if (shared == NGX_OK) {
        ngx_str_set(&what, "{\"deleted\":1,\"shared\":true}\n");

    } else if (shared == NGX_AGAIN) {
        ngx_str_set(&what, "{\"deleted\":1,\"shared\":false}\n");

    } else {
        ngx_str_set(&what, "{\"deleted\":1}\n");
    }

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK, what.data, what.len);
}


/*
 * A device's user= made the key its record has
 * (ngx_http_eas_admin_user_key()); one it makes no key of stays as it
 * is (an empty one, a record keyed by another form).  NGX_BUSY: a bare
 * name in a forest, *json its candidates, *user the name alone (the
 * record of a request no directory authenticated).
 */

static ngx_int_t
ngx_http_eas_admin_device_user(ngx_http_request_t *r, ngx_str_t *user,
    ngx_str_t *json)
{
    ngx_int_t  rc;
    ngx_str_t  key;

    if (user->len == 0 || ngx_http_eas_admin_value(user, EAS_USER_MAX)
                          != NGX_OK)
    {
        return NGX_DECLINED;
    }

    rc = ngx_http_eas_admin_user_key(r, user, &key, json);

    if (rc == NGX_OK || rc == NGX_BUSY) {
        *user = key;
    }

    return rc;
}


/*
 * The listing's filter: user=, device_id=, device_type= (equal, without
 * case), decision=allowed|blocked|none, sort=-last_seen (newest first,
 * the default) or last_seen (oldest first).
 */

static ngx_int_t
ngx_http_eas_admin_filter(ngx_http_request_t *r,
    ngx_http_eas_device_filter_t *f)
{
    ngx_str_t  v;

    ngx_memzero(f, sizeof(ngx_http_eas_device_filter_t));

    (void) ngx_http_eas_admin_arg(r, "user", &f->user);
    (void) ngx_http_eas_admin_arg(r, "device_id", &f->device_id);
    (void) ngx_http_eas_admin_arg(r, "device_type", &f->device_type);

    f->any_access = 1;

    if (ngx_http_eas_admin_arg(r, "decision", &v) == NGX_OK) {
        f->any_access = 0;

        if (v.len == 7 && ngx_strncmp(v.data, "allowed", 7) == 0) {
            f->access = NGX_HTTP_EAS_ACCESS_ALLOWED;

        } else if (v.len == 7 && ngx_strncmp(v.data, "blocked", 7) == 0) {
            f->access = NGX_HTTP_EAS_ACCESS_BLOCKED;

        } else if (v.len == 4 && ngx_strncmp(v.data, "none", 4) == 0) {
            f->access = NGX_HTTP_EAS_ACCESS_NONE;

        } else {
            return NGX_ERROR;
        }
    }

    if (ngx_http_eas_admin_arg(r, "sort", &v) == NGX_OK) {

        if (v.len == 9 && ngx_strncmp(v.data, "last_seen", 9) == 0) {
            f->oldest_first = 1;

        } else if (!(v.len == 10
                     && ngx_strncmp(v.data, "-last_seen", 10) == 0))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eas_admin_stale(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char                 *p;
    ngx_int_t               rc;
    ngx_str_t               what;
    ngx_uint_t              n, days, delete;
    ngx_http_eas_device_t  *devices;

    if (acf->devices == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no device_zone in \"eas_admin\"");
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_stale_args, NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_number(r, "days", 0, 36500, &days) != NGX_OK
        || days == 0)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give days=N, N at least 1");
    }

    delete = (r->method == NGX_HTTP_DELETE);

    n = ngx_http_eas_device_count(acf->devices);

    /* Redis down: no more deletions than this worker can keep for it */

    if (delete) {
        n = ngx_http_eas_redis_inv_room(n);

        if (n == 0) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "shared state down and this "
                                            "worker's queue of deletions "
                                            "for it full: try again once "
                                            "it is back");
        }
    }

    devices = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ngx_http_eas_device_t));
    if (devices == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = ngx_http_eas_device_stale(acf->devices,
                                  ngx_time() - (time_t) days * 86400,
                                  delete, devices, n);

    if (delete) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN * 2 + 64);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        what.data = p;
        what.len = ngx_sprintf(p, "%ui devices not seen for %ui days", n,
                               days)
                   - p;
        ngx_http_eas_admin_audit(r, "delete stale devices", &what);
    }

    return ngx_http_eas_admin_device_list(r, devices, n, n, 1, n);
}


static ngx_int_t
ngx_http_eas_admin_device_list(ngx_http_request_t *r,
    ngx_http_eas_device_t *devices, ngx_uint_t n, ngx_uint_t total,
    ngx_uint_t page, ngx_uint_t per_page)
{
    u_char      *buf, *p;
    size_t       size;
    ngx_uint_t   i;

    size = sizeof("{\"total\":,\"page\":,\"per_page\":,\"devices\":[\n]}\n")
           + 3 * NGX_INT_T_LEN;

    for (i = 0; i < n; i++) {
        size += ngx_http_eas_inventory_record_size(&devices[i]);
    }

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"total\":%ui,\"page\":%ui,\"per_page\":%ui,"
                    "\"devices\":[\n", total, page, per_page);

    for (i = 0; i < n; i++) {
        p = ngx_http_eas_inventory_record(p, &devices[i]);

        if (i + 1 < n) {
            *p++ = ',';
        }

        *p++ = '\n';
    }

    p = ngx_cpymem(p, "]}\n", 3);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
}


ngx_int_t
ngx_http_eas_admin_rules_api(ngx_http_request_t *r)
{
    u_char                      *buf, *p;
    size_t                       size;
    ngx_int_t                    rc;
    ngx_str_t                    access, what, quoted;
    ngx_uint_t                   i, n, ambiguous;
    ngx_http_eas_main_conf_t    *emcf;
    ngx_http_eas_admin_rule_t    rule;
    ngx_http_eas_admin_entry_t  *rules;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_eas_module);

    if (emcf->admin_rules == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no \"eas_admin_rules\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_none, NULL);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        rules = ngx_palloc(r->pool, NGX_HTTP_EAS_ADMIN_LIST_MAX
                                    * sizeof(ngx_http_eas_admin_entry_t));
        if (rules == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_admin_list(emcf->admin_rules, rules,
                                    NGX_HTTP_EAS_ADMIN_LIST_MAX);

        size = sizeof("{\"file\":\"\",\"rules\":[\n]}\n")
               + 6 * ngx_http_eas_admin_file(emcf->admin_rules)->len;

        for (i = 0; i < n; i++) {
            size += sizeof("{\"device_id\":\"\",\"access\":\"block\","
                           "\"since\":,\"line\":,\"by\":\"\"},\n")
                    + NGX_TIME_T_LEN + NGX_INT_T_LEN
                    + 6 * (rules[i].value_len + rules[i].who_len);
        }

        buf = ngx_pnalloc(r->pool, size);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(buf, "{\"file\":\"", sizeof("{\"file\":\"") - 1);
        p = ngx_http_eas_json_escape(p,
                               ngx_http_eas_admin_file(emcf->admin_rules)->data,
                               ngx_http_eas_admin_file(emcf->admin_rules)->len,
                               NULL);
        p = ngx_cpymem(p, "\",\"rules\":[\n", sizeof("\",\"rules\":[\n") - 1);

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "{\"%s\":\"",
                            rules[i].field == 'd' ? "device_id" : "user");
            p = ngx_http_eas_json_escape(p, rules[i].value,
                                         rules[i].value_len, NULL);
            p = ngx_sprintf(p, "\",\"access\":\"%V\",\"since\":%T,"
                            "\"line\":%ui,\"by\":\"",
                            ngx_http_eas_admin_access_name(rules[i].access),
                            rules[i].since, rules[i].line);
            p = ngx_http_eas_json_escape(p, rules[i].who, rules[i].who_len,
                                         NULL);
            p = ngx_sprintf(p, "\"}%s\n", i + 1 < n ? "," : "");
        }

        p = ngx_cpymem(p, "]}\n", 3);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_rule_args, NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (r->method == NGX_HTTP_DELETE
        && ngx_http_eas_admin_arg(r, "access", &access) == NGX_OK)
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "a rule's delete takes no access=");
    }

    ngx_memzero(&rule, sizeof(ngx_http_eas_admin_rule_t));
    ambiguous = 0;

    if (ngx_http_eas_admin_arg(r, "device_id", &rule.value) == NGX_OK) {
        if (ngx_http_eas_admin_arg(r, "user", &what) == NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "give device_id or user, not "
                                            "both");
        }

        rule.field = 'd';

        if (ngx_http_eas_admin_value(&rule.value, EAS_DEVICE_ID_MAX)
            != NGX_OK)
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid device_id");
        }

    } else if (ngx_http_eas_admin_arg(r, "user", &rule.value) == NGX_OK) {
        rule.field = 'u';

        rc = NGX_DECLINED;

        if (ngx_http_eas_admin_value(&rule.value, EAS_USER_MAX) == NGX_OK) {
            /* the key requests are decided by, "name@domain" in a forest */
            rc = ngx_http_eas_admin_user_key(r, &rule.value, &rule.value,
                                             &what);
        }

        /* a bare name in a forest removes a rule an older version kept */

        if (rc == NGX_BUSY && r->method == NGX_HTTP_DELETE) {
            ambiguous = 1;

        } else if (rc == NGX_DONE && r->method == NGX_HTTP_DELETE) {
            /* identity=: a rule an older version stored "name@domain" */

        } else if (rc != NGX_OK) {
            return ngx_http_eas_admin_user_refused(r, rc, &what);
        }

    } else {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give device_id or user");
    }

    if (r->method == NGX_HTTP_POST) {
        if (ngx_http_eas_admin_arg(r, "access", &access) != NGX_OK) {
            ngx_str_null(&access);
        }

        for (i = NGX_HTTP_EAS_ACCESS_ALLOWED;
             i <= NGX_HTTP_EAS_ADMIN_LOST_ACCESS;
             i++)
        {
            if (access.len == ngx_http_eas_admin_access_name(i)->len
                && ngx_strncmp(access.data,
                               ngx_http_eas_admin_access_name(i)->data,
                               access.len) == 0)
            {
                break;
            }
        }

        if (i > NGX_HTTP_EAS_ADMIN_LOST_ACCESS
            || (i == NGX_HTTP_EAS_ADMIN_LOST_ACCESS && rule.field != 'd'))
        {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "access must be allow, block or "
                                            "lost (lost: device_id only)");
        }

        rule.access = i;
    }

    if (ngx_http_eas_admin_who(r, &rule.who) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_eas_admin_change(emcf->admin_rules, &rule,
                                   r->connection->log);

    if (rc == NGX_DECLINED) {
        return ambiguous ? ngx_http_eas_admin_user_refused(r, NGX_BUSY, &what)
                         : ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                                    "no such rule");
    }

    if (rc == NGX_BUSY) {
        return ngx_http_eas_redis_rules_refused(r,
                                             NGX_HTTP_INSUFFICIENT_STORAGE,
                                             "the eas_admin_rules zone is "
                                             "full");
    }

    if (ngx_http_eas_admin_audit_value(r, &rule.value, &quoted) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, quoted.len + sizeof("device_id \"\" lost"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = p;
    what.len = ngx_sprintf(p, "%s \"%V\" %V",
                           rule.field == 'd' ? "device_id" : "user",
                           &quoted,
                           ngx_http_eas_admin_access_name(rule.access))
               - p;

    ngx_http_eas_admin_audit(r, r->method == NGX_HTTP_POST ? "set rule"
                                                           : "remove rule",
                             &what);

    /* with eas_shared_state, once the other gateways have it */

    return ngx_http_eas_redis_rules_answer(r, rc == NGX_ERROR
                                 ? "in force in every worker, but the file "
                                   "could not be written: see the error log"
                                 : NULL);
}
