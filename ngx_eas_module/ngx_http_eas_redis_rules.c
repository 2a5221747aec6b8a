
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"
#include "ngx_http_eas_admin_rules.h"
#include "ngx_http_eas_admin.h"
#include "ngx_http_eas_redis_rules_int.h"


/*
 * The runtime rules of eas_admin_rules shared by the gateways
 * (docs/scale-out.md).  Redis keeps them in one hash per rules zone,
 * "<prefix>r:<zone>": the field is the rule's key (d or u, then the
 * DeviceId lower-cased or the user's identity), the value
 *
 *     ACCESS STAMP WHOLEN WHO VALUE       (WHO and VALUE not apart)
 *
 * with ACCESS allow, block, lost or none (deleted: kept for
 * keep_removals=, so that a gateway that was away cannot bring the rule
 * back; older ones are dropped by the reading script) and STAMP the
 * change's time in milliseconds, of a hybrid logical clock
 * (ngx_http_eas_admin_now(): above the rule's present time).  The
 * newest change of a key wins everywhere (the stricter one for the same
 * millisecond).
 *
 * A change of the admin API is applied to the zone at once, then set on
 * Redis and published in one script ("R" on the gateways' channel), and
 * answered once Redis did so, or did not in "timeout"
 * (ngx_http_eas_redis_rules_answer(): "shared" true or false); the
 * script makes it newer than what Redis had, so that the last change
 * sent through Redis wins whatever the gateways' clocks say; a time
 * more than NGX_HTTP_EAS_ADMIN_SKEW ahead of the clock reading it
 * (Redis's in the script, a gateway's in its zone) is no real change and
 * counts as older than any, so that a forged one never pins a rule.  The
 * message is a notification only: every gateway reads the rule from the
 * hash (ngx_http_eas_redis_rules_event()), applies it to its zone,
 * writes its rules file within a second, and does not announce it
 * again.
 *
 * Each time a worker's subscription is (re)made, and after a change
 * Redis did not take, the worker reconciles: it sends every rule and
 * deletion of its zone (Redis keeps the newer of the two, and publishes
 * what it took), then reads the hash back, a page at a time, and
 * applies what is newer there.  So a change made while Redis was down
 * reaches the others when it is back, a gateway that missed messages
 * catches up, and a Redis that lost its data is filled again.
 *
 * Everything read from Redis is checked as the admin API checks its
 * input; what fails is refused, with one line a minute.
 *
 * Here: a change of the admin API set on Redis and answered;
 * the reconciliation and its retries in ngx_http_eas_redis_rules_sync.c,
 * the notifications read back and applied in
 * ngx_http_eas_redis_rules_read.c.
 */


typedef struct {
    u_char                       field[NGX_HTTP_EAS_REDIS_RULES_FIELD];
    u_char                       value[NGX_HTTP_EAS_REDIS_RULES_VALUE];
} ngx_http_eas_redis_rules_buf_t;


/* a change of the admin API on its way to Redis */
typedef struct {
    ngx_str_t                    what;            /* first: freed as it */
    ngx_http_request_t          *request;         /* waits for the answer */
    ngx_pool_cleanup_t          *cleanup;         /* in the request's pool */
    const char                  *error;           /* its error, or NULL */
    ngx_str_t                    field;           /* in the hash */
} ngx_http_eas_redis_rules_set_t;


static ngx_http_eas_redis_rules_set_t  *ngx_http_eas_redis_rules_last;


static ngx_int_t ngx_http_eas_redis_rules_shared_answer(
    ngx_http_request_t *r, const char *error, ngx_uint_t shared);
static ngx_int_t ngx_http_eas_redis_rules_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, ngx_uint_t shared);
static void ngx_http_eas_redis_rules_pending(ngx_str_t *what,
    ngx_log_t *log);
static void ngx_http_eas_redis_rules_on_set(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_rules_gone(void *data);


/*
 * KEYS[1] the hash; ARGV: channel, node, zone, online ("1": a change of
 * the admin API, made newer than Redis's; "0": a reconciliation, kept
 * only if newer), then field and value pairs.  A time more than
 * NGX_HTTP_EAS_ADMIN_SKEW ahead of Redis's own clock (one clock for
 * every gateway) is no real change: stored, it counts as older than any
 * (..._STAMP_FUTURE), so that a change overwrites it; sent, a change of
 * the admin API gets Redis's time instead, a reconciled one
 * ..._STAMP_FUTURE.  Whatever is taken is published.  Returns how many
 * were taken, how many stored times were far ahead, and how many sent.
 */

static const char  ngx_http_eas_redis_rules_set_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end "
    "local rank = {none = 0, allow = 1, block = 2, lost = 3} "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local ahead = now + " NGX_HTTP_EAS_REDIS_RULES_SKEW " "
    "local n, stored, sent = 0, 0, 0 "
    "for i = 5, #ARGV - 1, 2 do "
    "  local f, v = ARGV[i], ARGV[i + 1] "
    "  local a, s, rest = string.match(v, '^(%l+) (%d+) (.*)$') "
    "  if a and rank[a] then "
    "    s = tonumber(s) "
    "    if s > ahead then "
    "      sent = sent + 1 "
    "      if ARGV[4] == '1' then s = now else s = 1 end "
    "    end "
    "    local take = true "
    "    local old = redis.call('HGET', KEYS[1], f) "
    "    local oa, ot "
    "    if old then oa, ot = string.match(old, '^(%l+) (%d+) ') end "
    "    ot = tonumber(ot) "
    "    if ot and oa and rank[oa] then "
    "      if ot > ahead then "
    "        stored = stored + 1 "
    "        ot = 1 "
    "      end "
    "      if ARGV[4] == '1' then "
    "        if s <= ot then s = ot + 1 end "
    "      elseif s < ot or (s == ot and rank[a] <= rank[oa]) then "
    "        take = false "
    "      end "
    "    end "
    "    if take then "
    "      v = a .. ' ' .. string.format('%d', s) .. ' ' .. rest "
    "      redis.call('HSET', KEYS[1], f, v) "
    "      redis.call('PUBLISH', ARGV[1], 'R ' .. ARGV[2] .. ' 0 0 ' "
    "        .. #ARGV[3] .. ' ' .. #f .. ' ' .. ARGV[3] .. f .. v) "
    "      n = n + 1 "
    "    end "
    "  end "
    "end "
    "return {n, stored, sent}";


/* with eas_shared_state a deleted rule is kept, as a deletion */

ngx_uint_t
ngx_http_eas_redis_rules_shared(void)
{
    return ngx_http_eas_redis_get_conf() != NULL;
}


ngx_shm_zone_t *
ngx_http_eas_redis_rules_zone(void)
{
    ngx_http_eas_main_conf_t  *emcf;

    if (ngx_http_eas_redis_get_conf() == NULL) {
        return NULL;
    }

    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_eas_module);

    return emcf ? emcf->admin_rules : NULL;
}


/*
 * A script on the hash of the zone's rules, "<prefix>r:<zone>" its one
 * key (argv[3]), its arguments in argv[4..argc): NGX_ERROR if the name
 * is too long, else as ngx_http_eas_redis_command()
 */

ngx_int_t
ngx_http_eas_redis_rules_eval(redisCallbackFn *handler, void *data,
    const char *script, size_t len, ngx_shm_zone_t *zone, int argc,
    const char **argv, size_t *argvlen)
{
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      key[NGX_HTTP_EAS_REDIS_RULES_KEY];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf->prefix.len + zone->shm.name.len + 2
        > NGX_HTTP_EAS_REDIS_RULES_KEY)
    {
        return NGX_ERROR;
    }

    argv[3] = (char *) key;
    argvlen[3] = ngx_sprintf(key, "%Vr:%V", &rcf->prefix, &zone->shm.name)
                 - key;

    return ngx_http_eas_redis_eval(handler, data, script, len, 1, argc,
                                   argv, argvlen);
}


/*
 * The admin API changed a rule here (ngx_http_eas_admin_change): on
 * Redis and on every gateway.  Redis down: in force here at once, and
 * sent by the reconciliation once Redis is back.
 */

void
ngx_http_eas_redis_rules_push(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_rule_t *rule, uint64_t stamp, ngx_log_t *log)
{
    ngx_http_eas_admin_entry_t      e;
    ngx_http_eas_redis_rules_set_t *set;

    ngx_http_eas_redis_rules_last = NULL;

    if (ngx_http_eas_redis_rules_zone() != zone) {
        return;
    }

    /* named in the log line if Redis does not take it */

    set = ngx_alloc(sizeof(ngx_http_eas_redis_rules_set_t)
                    + sizeof("device_id \"\"") + 2 * rule->value.len + 1,
                    log);
    if (set) {
        set->what.data = (u_char *) &set[1];
        set->what.len = ngx_sprintf(set->what.data, "%s \"%V\"",
                                    rule->field == NGX_HTTP_EAS_ADMIN_DEVICE
                                    ? "device_id" : "user", &rule->value)
                        - set->what.data;
        set->request = NULL;
        set->cleanup = NULL;
        set->error = NULL;
        set->field.data = set->what.data + set->what.len;
        set->field.len = 1 + rule->value.len;
        set->field.data[0] = (u_char) rule->field;
        ngx_strlow(&set->field.data[1], rule->value.data, rule->value.len);
    }

    e.field = (u_char) rule->field;
    e.access = (u_char) rule->access;
    e.value_len = ngx_min(rule->value.len, EAS_USER_MAX);
    ngx_memcpy(e.value, rule->value.data, e.value_len);
    e.who_len = ngx_min(rule->who.len, NGX_HTTP_EAS_ADMIN_WHO_LEN);
    ngx_memcpy(e.who, rule->who.data, e.who_len);

    if (ngx_http_eas_redis_rules_send(zone, &e, &stamp, 1, 1,
                                      ngx_http_eas_redis_rules_on_set, set)
        == NGX_OK)
    {
        /* the admin API's answer may wait for Redis's */
        ngx_http_eas_redis_rules_last = set;
        return;
    }

    ngx_http_eas_redis_rules_pending(set ? &set->what : NULL, log);
}


/*
 * The admin API's answer to a change just made (and pushed): at once
 * without eas_shared_state; else once Redis took and published it, or
 * did not (bounded by "timeout" of eas_shared_state), saying which:
 * {"ok":true,"shared":true} when the other gateways got it.  error: the
 * change is in force, but the file could not be written: a 500 with
 * the error, and with eas_shared_state "shared" all the same.
 */

ngx_int_t
ngx_http_eas_redis_rules_answer(ngx_http_request_t *r, const char *error)
{
    ngx_http_eas_redis_rules_set_t  *set;

    set = ngx_http_eas_redis_rules_last;
    ngx_http_eas_redis_rules_last = NULL;

    if (ngx_http_eas_redis_rules_zone() == NULL) {
        if (error) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                            "%s", error);
        }

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                       (u_char *) "{\"ok\":true}\n",
                                       sizeof("{\"ok\":true}\n") - 1);
    }

    if (set == NULL) {
        return ngx_http_eas_redis_rules_shared_answer(r, error, 0);
    }

    /*
     * should the request be freed before Redis answers (its connection
     * torn down), the answer finds no request to finalize
     */

    set->cleanup = ngx_pool_cleanup_add(r->pool, 0);
    if (set->cleanup == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    set->cleanup->handler = ngx_http_eas_redis_rules_gone;
    set->cleanup->data = set;
    set->request = r;
    set->error = error;

    /*
     * the request waits for Redis's answer; a client gone (a closed
     * connection, an HTTP/2 stream reset) ends it at once (499), and
     * the answer, when it comes, goes to nobody
     */

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


static void
ngx_http_eas_redis_rules_gone(void *data)
{
    ngx_http_eas_redis_rules_set_t  *set = data;

    set->request = NULL;
    set->cleanup = NULL;
}


/*
 * A change refused (the zone full: status 507), answered: with
 * eas_shared_state with "shared":false, as nothing went to Redis
 */

ngx_int_t
ngx_http_eas_redis_rules_refused(ngx_http_request_t *r, ngx_uint_t status,
    const char *error)
{
    if (ngx_http_eas_redis_rules_zone() == NULL) {
        return ngx_http_eas_admin_error(r, status, "%s", error);
    }

    return ngx_http_eas_redis_rules_error(r, status, error, 0);
}


static ngx_int_t
ngx_http_eas_redis_rules_shared_answer(ngx_http_request_t *r,
    const char *error, ngx_uint_t shared)
{
    if (error) {
        return ngx_http_eas_redis_rules_error(r,
                                              NGX_HTTP_INTERNAL_SERVER_ERROR,
                                              error, shared);
    }

    if (shared) {
        return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                             (u_char *) "{\"ok\":true,\"shared\":true}\n",
                             sizeof("{\"ok\":true,\"shared\":true}\n") - 1);
    }

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                             (u_char *) "{\"ok\":true,\"shared\":false}\n",
                             sizeof("{\"ok\":true,\"shared\":false}\n") - 1);
}


/* {"error":"...","shared":...}, logged as ngx_http_eas_admin_error() */

static ngx_int_t
ngx_http_eas_redis_rules_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, ngx_uint_t shared)
{
    u_char      *p, *buf;
    ngx_uint_t   level;

    /* as ngx_http_eas_admin_error() says it */

    level = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_ERR
                                                       : NGX_LOG_INFO;

    ngx_log_error(level, r->connection->log, 0,
                  "eas admin: %s, shared: %s, answered %ui", error,
                  shared ? "true" : "false", status);

    buf = ngx_pnalloc(r->pool, sizeof("{\"error\":\"\",\"shared\":false}\n")
                               + ngx_strlen(error));
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the errors given here have nothing JSON would escape */

    p = ngx_sprintf(buf, "{\"error\":\"%s\",\"shared\":%s}\n", error,
                    shared ? "true" : "false");

    return ngx_http_eas_admin_send(r, status, buf, p - buf);
}


static void
ngx_http_eas_redis_rules_on_set(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                      *rr = reply;
    ngx_http_eas_redis_rules_set_t  *set = data;

    ngx_int_t            rc;
    ngx_uint_t           shared;
    const char          *error;
    ngx_shm_zone_t      *zone;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (ngx_http_eas_redis_rules_last == set) {
        ngx_http_eas_redis_rules_last = NULL;
    }

    r = set ? set->request : NULL;
    error = set ? set->error : NULL;

    if (set && set->cleanup) {
        set->cleanup->handler = NULL;    /* set may be freed below */
        set->cleanup = NULL;
    }
    shared = (ngx_http_eas_redis_rules_taken(rr) == NGX_OK);

    zone = ngx_http_eas_redis_rules_zone();

    if (shared) {
        if (set && zone) {
            /*
             * Redis may have made it newer than it was here (above a
             * change this gateway had not seen), or given it its own
             * time (this clock far ahead of Redis's): read back, so
             * that this zone has the time the others have
             */

            ngx_http_eas_redis_rules_read_back(&zone->shm.name,
                                               &set->field);
        }

        if (set) {
            ngx_free(set);
        }

    } else {
        if (rr && rr->type == REDIS_REPLY_ERROR) {
            ngx_http_eas_redis_rules_junk("a rule's change", rr->str);
        }

        ngx_http_eas_redis_rules_pending(set ? &set->what : NULL,
                                         ngx_cycle->log);
    }

    if (r) {
        /* what the finalization posted runs too (an HTTP/2 stream's end) */

        c = r->connection;
        ngx_http_set_log_request(c->log, r);

        rc = ngx_http_eas_redis_rules_shared_answer(r, error, shared);
        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
    }
}


/*
 * The set script's reply ({taken, stored far ahead, sent far ahead}):
 * NGX_OK if it ran.  A time far ahead that it met is said once a minute
 * per worker at most.
 */

ngx_int_t
ngx_http_eas_redis_rules_taken(redisReply *rr)
{
    static time_t  logged;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_INTEGER
        || rr->element[1]->type != REDIS_REPLY_INTEGER
        || rr->element[2]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_ERROR;
    }

    if ((rr->element[1]->integer || rr->element[2]->integer)
        && ngx_time() - logged >= 60)
    {
        logged = ngx_time();

        if (rr->element[1]->integer) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "eas: shared state: a time on Redis of a rule "
                          "more than %ds ahead of Redis's clock (forged, "
                          "or of a clock run wild): older than any real "
                          "change, overwritten (said once a minute)",
                          NGX_HTTP_EAS_ADMIN_SKEW / 1000);

        } else {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "eas: shared state: this gateway's time of a "
                          "rule is more than %ds ahead of Redis's clock: "
                          "a change of the admin API takes Redis's time, "
                          "one sent after Redis was away is older than "
                          "any; keep the gateways' clocks in time (NTP) "
                          "(said once a minute)",
                          NGX_HTTP_EAS_ADMIN_SKEW / 1000);
        }
    }

    return NGX_OK;
}


/*
 * Redis was down, dropped the connection before it answered, or refused
 * (an error reply): the rule is in force here, and the reconciliation
 * sends it in a second, and again until Redis takes it.
 */

static void
ngx_http_eas_redis_rules_pending(ngx_str_t *what, ngx_log_t *log)
{
    ngx_str_t  any = ngx_string("a rule");

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "eas: shared state did not take the change of %V: in "
                  "force on this gateway, sent to the others when Redis "
                  "is back", what ? what : &any);

    if (what) {
        ngx_free(what);
    }

    ngx_http_eas_redis_rules_later();
}


/* n rules (and deletions) in one script, on the command connection */

ngx_int_t
ngx_http_eas_redis_rules_send(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_entry_t *e, uint64_t *stamps, ngx_uint_t n,
    ngx_uint_t online, redisCallbackFn *handler, void *data)
{
    u_char                          *p;
    size_t                          *argvlen;
    ngx_int_t                        rc;
    ngx_uint_t                       i, k;
    ngx_str_t                        access;
    const char                     **argv;
    ngx_http_eas_redis_conf_t       *rcf;
    ngx_http_eas_redis_rules_buf_t  *buf;

    rcf = ngx_http_eas_redis_get_conf();

    buf = ngx_alloc(n * sizeof(ngx_http_eas_redis_rules_buf_t)
                    + (8 + 2 * n) * (sizeof(char *) + sizeof(size_t)),
                    ngx_cycle->log);
    if (buf == NULL) {
        return NGX_DECLINED;
    }

    argv = (const char **) &buf[n];
    argvlen = (size_t *) &argv[8 + 2 * n];

    argv[4] = (char *) rcf->channel.data;
    argvlen[4] = rcf->channel.len;
    argv[5] = (char *) rcf->node.data;
    argvlen[5] = rcf->node.len;
    argv[6] = (char *) zone->shm.name.data;
    argvlen[6] = zone->shm.name.len;
    argv[7] = online ? "1" : "0";
    argvlen[7] = 1;

    for (i = 0; i < n; i++) {
        k = 8 + 2 * i;

        buf[i].field[0] = e[i].field;
        ngx_strlow(&buf[i].field[1], e[i].value, e[i].value_len);

        argv[k] = (char *) buf[i].field;
        argvlen[k] = 1 + e[i].value_len;

        if (e[i].access == NGX_HTTP_EAS_ACCESS_NONE) {
            ngx_str_set(&access, "none");

        } else {
            access = *ngx_http_eas_admin_access_name(e[i].access);
        }

        p = ngx_sprintf(buf[i].value, "%V %uL %uz ", &access,
                        stamps[i], e[i].who_len);
        p = ngx_cpymem(p, e[i].who, e[i].who_len);
        p = ngx_cpymem(p, e[i].value, e[i].value_len);

        argv[k + 1] = (char *) buf[i].value;
        argvlen[k + 1] = p - buf[i].value;
    }

    rc = ngx_http_eas_redis_rules_eval(handler, data,
                                       ngx_http_eas_redis_rules_set_lua,
                                       sizeof(ngx_http_eas_redis_rules_set_lua)
                                       - 1, zone, (int) (8 + 2 * n), argv,
                                       argvlen);

    ngx_free(buf);

    return rc == NGX_OK ? NGX_OK : NGX_DECLINED;
}
