
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
 * (ngx_http_eas_admin_now(): above every time the zone has seen).  The
 * newest change of a key wins everywhere (the stricter one for the same
 * millisecond).
 *
 * A change of the admin API is applied to the zone at once, then set on
 * Redis and published in one script ("R" on the gateways' channel), and
 * answered once Redis did so, or did not in "timeout"
 * (ngx_http_eas_redis_rules_answer(): "shared" true or false); the
 * script makes it newer than what Redis had, so that the last change
 * sent through Redis wins whatever the gateways' clocks say.  The
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
 */


#define NGX_HTTP_EAS_REDIS_RULES_BATCH   32
#define NGX_HTTP_EAS_REDIS_RULES_RETRY   1000     /* ms */
#define NGX_HTTP_EAS_REDIS_RULES_AHEAD   315360000000ULL  /* ms, ten years:
                                                       junk beyond */
#define NGX_HTTP_EAS_REDIS_RULES_PENDING 256      /* keys to read */
#define NGX_HTTP_EAS_REDIS_RULES_READ    64       /* keys a command */
#define NGX_HTTP_EAS_REDIS_RULES_FIELD   (1 + EAS_USER_MAX)
#define NGX_HTTP_EAS_REDIS_RULES_KEY     256
#define NGX_HTTP_EAS_REDIS_RULES_VALUE   (sizeof("block  ") + 2 * NGX_INT_T_LEN\
                                          + NGX_HTTP_EAS_ADMIN_WHO_LEN     \
                                          + EAS_USER_MAX)


typedef struct {
    u_char                       field[NGX_HTTP_EAS_REDIS_RULES_FIELD];
    u_char                       value[NGX_HTTP_EAS_REDIS_RULES_VALUE];
} ngx_http_eas_redis_rules_buf_t;


/* a change of the admin API on its way to Redis */
typedef struct {
    ngx_str_t                    what;            /* first: freed as it */
    ngx_http_request_t          *request;         /* waits for the answer */
} ngx_http_eas_redis_rules_set_t;


static ngx_http_eas_redis_rules_set_t  *ngx_http_eas_redis_rules_last;


static ngx_shm_zone_t *ngx_http_eas_redis_rules_zone(void);
static ngx_int_t ngx_http_eas_redis_rules_shared_answer(
    ngx_http_request_t *r, ngx_uint_t shared);
static ngx_int_t ngx_http_eas_redis_rules_eval(const char **argv,
    size_t *argvlen, const char *script, size_t len, u_char *key,
    ngx_shm_zone_t *zone);
static ngx_int_t ngx_http_eas_redis_rules_number(u_char **pp, u_char *last,
    uint64_t max, uint64_t *n);
static ngx_int_t ngx_http_eas_redis_rules_send(ngx_shm_zone_t *zone,
    ngx_http_eas_admin_entry_t *e, uint64_t *stamps, ngx_uint_t n,
    ngx_uint_t online, redisCallbackFn *handler, void *data);
static void ngx_http_eas_redis_rules_pending(ngx_str_t *what,
    ngx_log_t *log);
static void ngx_http_eas_redis_rules_start(void);
static void ngx_http_eas_redis_rules_next(void);
static void ngx_http_eas_redis_rules_page(void);
static void ngx_http_eas_redis_rules_failed(void);
static void ngx_http_eas_redis_rules_later(void);
static void ngx_http_eas_redis_rules_retry(ngx_event_t *ev);
static void ngx_http_eas_redis_rules_on_set(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_rules_on_pushed(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_rules_on_page(redisAsyncContext *ac,
    void *reply, void *data);
static ngx_int_t ngx_http_eas_redis_rules_take(ngx_shm_zone_t *zone,
    ngx_str_t *field, ngx_str_t *value, const char **why);
static void ngx_http_eas_redis_rules_junk(const char *where,
    const char *why);


/*
 * KEYS[1] the hash; ARGV: channel, node, zone, online ("1": a change of
 * the admin API, made newer than Redis's; "0": a reconciliation, kept
 * only if newer), then field and value pairs.  Whatever is taken is
 * published.  Returns how many were taken.
 */

static const char  ngx_http_eas_redis_rules_set_lua[] =
    "local rank = {none = 0, allow = 1, block = 2, lost = 3} "
    "local n = 0 "
    "for i = 5, #ARGV - 1, 2 do "
    "  local f, v = ARGV[i], ARGV[i + 1] "
    "  local a, s, rest = string.match(v, '^(%l+) (%d+) (.*)$') "
    "  if a and rank[a] then "
    "    s = tonumber(s) "
    "    local take = true "
    "    local old = redis.call('HGET', KEYS[1], f) "
    "    local oa, ot "
    "    if old then oa, ot = string.match(old, '^(%l+) (%d+) ') end "
    "    ot = tonumber(ot) "
    "    if ot and oa and rank[oa] then "
    "      if ARGV[4] == '1' then "
    "        if s <= ot then "
    "          s = ot + 1 "
    "          v = a .. ' ' .. string.format('%d', s) .. ' ' .. rest "
    "        end "
    "      elseif s < ot or (s == ot and rank[a] <= rank[oa]) then "
    "        take = false "
    "      end "
    "    end "
    "    if take then "
    "      redis.call('HSET', KEYS[1], f, v) "
    "      redis.call('PUBLISH', ARGV[1], 'R ' .. ARGV[2] .. ' 0 0 ' "
    "        .. #ARGV[3] .. ' ' .. #f .. ' ' .. ARGV[3] .. f .. v) "
    "      n = n + 1 "
    "    end "
    "  end "
    "end "
    "return n";


/*
 * KEYS[1] the hash, ARGV[1] the cursor, ARGV[2] and [3] the longest
 * field and value, ARGV[4] the time before which a removal is no longer
 * kept (deleted from the hash): a page of it, in one string,
 * "FLEN VLEN FIELDVALUE" each, the next cursor ("0": the end), and how
 * many entries longer than a rule can be were left out.  A reply stays
 * far below the 64 KB a reply may take, whatever the hash holds.
 */

static const char  ngx_http_eas_redis_rules_page_lua[] =
    "local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', 16) "
    "local out, long = {}, 0 "
    "for i = 1, #r[2] - 1, 2 do "
    "  local f, v = r[2][i], r[2][i + 1] "
    "  local gone = string.match(v, '^none (%d+) ') "
    "  if gone and tonumber(gone) < tonumber(ARGV[4]) then "
    "    redis.call('HDEL', KEYS[1], f) "
    "  elseif #f > tonumber(ARGV[2]) or #v > tonumber(ARGV[3]) then "
    "    long = long + 1 "
    "  else "
    "    out[#out + 1] = #f .. ' ' .. #v .. ' ' .. f .. v "
    "  end "
    "end "
    "return {r[1], table.concat(out), long}";


/* this worker's reconciliation */

static ngx_event_t   ngx_http_eas_redis_rules_timer;
static ngx_connection_t  ngx_http_eas_redis_rules_dummy;    /* its data */
static ngx_uint_t    ngx_http_eas_redis_rules_behind;   /* one to do */
static ngx_uint_t    ngx_http_eas_redis_rules_busy;     /* under way */
static ngx_uint_t    ngx_http_eas_redis_rules_again;    /* asked since */
static ngx_uint_t    ngx_http_eas_redis_rules_from;     /* sent so far */
static ngx_uint_t    ngx_http_eas_redis_rules_changed;  /* by the pages */
static u_char        ngx_http_eas_redis_rules_cursor[NGX_INT64_LEN];
static size_t        ngx_http_eas_redis_rules_cursor_len;
static time_t        ngx_http_eas_redis_rules_logged;


/* with eas_shared_state a deleted rule is kept, as a deletion */

ngx_uint_t
ngx_http_eas_redis_rules_shared(void)
{
    return ngx_http_eas_redis_get_conf() != NULL;
}


static ngx_shm_zone_t *
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


/* EVAL script 1 "<prefix>r:<zone>": the hash of the zone's rules */

static ngx_int_t
ngx_http_eas_redis_rules_eval(const char **argv, size_t *argvlen,
    const char *script, size_t len, u_char *key, ngx_shm_zone_t *zone)
{
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf->prefix.len + zone->shm.name.len + 2
        > NGX_HTTP_EAS_REDIS_RULES_KEY)
    {
        return NGX_ERROR;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = script;
    argvlen[1] = len;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) key;
    argvlen[3] = ngx_sprintf(key, "%Vr:%V", &rcf->prefix, &zone->shm.name)
                 - key;

    return NGX_OK;
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
                    + sizeof("device_id \"\"") + rule->value.len, log);
    if (set) {
        set->what.data = (u_char *) &set[1];
        set->what.len = ngx_sprintf(set->what.data, "%s \"%V\"",
                                    rule->field == NGX_HTTP_EAS_ADMIN_DEVICE
                                    ? "device_id" : "user", &rule->value)
                        - set->what.data;
        set->request = NULL;
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
 * {"ok":true,"shared":true} when the other gateways got it.
 */

ngx_int_t
ngx_http_eas_redis_rules_answer(ngx_http_request_t *r)
{
    ngx_http_eas_redis_rules_set_t  *set;

    set = ngx_http_eas_redis_rules_last;
    ngx_http_eas_redis_rules_last = NULL;

    if (ngx_http_eas_redis_rules_zone() == NULL) {
        return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                                       (u_char *) "{\"ok\":true}\n",
                                       sizeof("{\"ok\":true}\n") - 1);
    }

    if (set == NULL) {
        return ngx_http_eas_redis_rules_shared_answer(r, 0);
    }

    set->request = r;
    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_eas_redis_rules_shared_answer(ngx_http_request_t *r,
    ngx_uint_t shared)
{
    if (shared) {
        return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                             (u_char *) "{\"ok\":true,\"shared\":true}\n",
                             sizeof("{\"ok\":true,\"shared\":true}\n") - 1);
    }

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK,
                             (u_char *) "{\"ok\":true,\"shared\":false}\n",
                             sizeof("{\"ok\":true,\"shared\":false}\n") - 1);
}


static void
ngx_http_eas_redis_rules_on_set(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                      *rr = reply;
    ngx_http_eas_redis_rules_set_t  *set = data;

    ngx_int_t            rc;
    ngx_uint_t           shared;
    ngx_http_request_t  *r;

    if (ngx_http_eas_redis_rules_last == set) {
        ngx_http_eas_redis_rules_last = NULL;
    }

    r = set ? set->request : NULL;
    shared = (rr && rr->type == REDIS_REPLY_INTEGER);

    if (shared) {
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
        rc = ngx_http_eas_redis_rules_shared_answer(r, shared);
        ngx_http_finalize_request(r, rc);
    }
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

static ngx_int_t
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
    u_char                           key[NGX_HTTP_EAS_REDIS_RULES_KEY];

    rcf = ngx_http_eas_redis_get_conf();

    buf = ngx_alloc(n * sizeof(ngx_http_eas_redis_rules_buf_t)
                    + (8 + 2 * n) * (sizeof(char *) + sizeof(size_t)),
                    ngx_cycle->log);
    if (buf == NULL) {
        return NGX_DECLINED;
    }

    argv = (const char **) &buf[n];
    argvlen = (size_t *) &argv[8 + 2 * n];

    if (ngx_http_eas_redis_rules_eval(argv, argvlen,
                                      ngx_http_eas_redis_rules_set_lua,
                                      sizeof(ngx_http_eas_redis_rules_set_lua)
                                      - 1, key, zone)
        != NGX_OK)
    {
        ngx_free(buf);
        return NGX_DECLINED;
    }

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

    rc = ngx_http_eas_redis_command(handler, data, (int) (8 + 2 * n), argv,
                                    argvlen);

    ngx_free(buf);

    return rc;
}


/*
 * This worker's subscription was made (at start, or again): what was
 * missed meanwhile, and what was changed here meanwhile, is reconciled.
 */

void
ngx_http_eas_redis_rules_sync(void)
{
    if (ngx_http_eas_redis_rules_zone() == NULL) {
        return;
    }

    ngx_http_eas_redis_rules_behind = 1;

    if (ngx_http_eas_redis_rules_busy) {
        /* the one under way may have read before what was missed */
        ngx_http_eas_redis_rules_again = 1;
        return;
    }

    ngx_http_eas_redis_rules_start();
}


static void
ngx_http_eas_redis_rules_start(void)
{
    if (ngx_http_eas_redis_rules_busy || ngx_exiting || ngx_terminate) {
        return;
    }

    ngx_http_eas_redis_rules_busy = 1;
    ngx_http_eas_redis_rules_again = 0;
    ngx_http_eas_redis_rules_from = 0;
    ngx_http_eas_redis_rules_changed = 0;
    ngx_http_eas_redis_rules_cursor[0] = '0';
    ngx_http_eas_redis_rules_cursor_len = 1;

    ngx_http_eas_redis_rules_next();
}


/* the zone's rules, a batch at a time, then the pages of the hash */

static void
ngx_http_eas_redis_rules_next(void)
{
    uint64_t                    *stamps;
    ngx_int_t                    rc;
    ngx_uint_t                   n;
    ngx_shm_zone_t              *zone;
    ngx_http_eas_admin_entry_t  *e;

    zone = ngx_http_eas_redis_rules_zone();

    if (zone == NULL) {
        ngx_http_eas_redis_rules_busy = 0;
        return;
    }

    e = ngx_alloc(NGX_HTTP_EAS_REDIS_RULES_BATCH
                  * (sizeof(ngx_http_eas_admin_entry_t) + sizeof(uint64_t)),
                  ngx_cycle->log);
    if (e == NULL) {
        ngx_http_eas_redis_rules_failed();
        return;
    }

    stamps = (uint64_t *) &e[NGX_HTTP_EAS_REDIS_RULES_BATCH];

    n = ngx_http_eas_admin_entries(zone, e, stamps,
                                   ngx_http_eas_redis_rules_from,
                                   NGX_HTTP_EAS_REDIS_RULES_BATCH);

    if (n == 0) {
        ngx_free(e);
        ngx_http_eas_redis_rules_page();
        return;
    }

    ngx_http_eas_redis_rules_from += n;

    rc = ngx_http_eas_redis_rules_send(zone, e, stamps, n, 0,
                                       ngx_http_eas_redis_rules_on_pushed,
                                       NULL);
    ngx_free(e);

    if (rc != NGX_OK) {
        ngx_http_eas_redis_rules_failed();
    }
}


static void
ngx_http_eas_redis_rules_on_pushed(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply  *rr = reply;

    if (rr == NULL || rr->type != REDIS_REPLY_INTEGER) {
        if (rr && rr->type == REDIS_REPLY_ERROR) {
            ngx_http_eas_redis_rules_junk("sending the rules", rr->str);
        }

        ngx_http_eas_redis_rules_failed();
        return;
    }

    ngx_http_eas_redis_rules_next();
}


static void
ngx_http_eas_redis_rules_page(void)
{
    uint64_t                   cutoff;
    ngx_time_t                *tp;
    ngx_shm_zone_t            *zone;
    const char                *argv[8];
    size_t                     argvlen[8];
    ngx_http_eas_admin_ctx_t  *ctx;
    u_char                     key[NGX_HTTP_EAS_REDIS_RULES_KEY];
    u_char                     max[3][NGX_INT64_LEN];

    zone = ngx_http_eas_redis_rules_zone();

    if (zone == NULL
        || ngx_http_eas_redis_rules_eval(argv, argvlen,
                                   ngx_http_eas_redis_rules_page_lua,
                                   sizeof(ngx_http_eas_redis_rules_page_lua)
                                   - 1, key, zone)
           != NGX_OK)
    {
        ngx_http_eas_redis_rules_busy = 0;
        return;
    }

    argv[4] = (char *) ngx_http_eas_redis_rules_cursor;
    argvlen[4] = ngx_http_eas_redis_rules_cursor_len;
    argv[5] = (char *) max[0];
    argvlen[5] = ngx_sprintf(max[0], "%uz",
                             (size_t) NGX_HTTP_EAS_REDIS_RULES_FIELD)
                 - max[0];
    argv[6] = (char *) max[1];
    argvlen[6] = ngx_sprintf(max[1], "%uz",
                             (size_t) NGX_HTTP_EAS_REDIS_RULES_VALUE)
                 - max[1];

    ctx = zone->data;
    tp = ngx_timeofday();
    cutoff = (uint64_t) tp->sec * 1000 + tp->msec;
    cutoff = cutoff > ctx->keep ? cutoff - ctx->keep : 0;

    argv[7] = (char *) max[2];
    argvlen[7] = ngx_sprintf(max[2], "%uL", cutoff) - max[2];

    if (ngx_http_eas_redis_command(ngx_http_eas_redis_rules_on_page, NULL, 8,
                                   argv, argvlen)
        != NGX_OK)
    {
        ngx_http_eas_redis_rules_failed();
    }
}


/* a page of the hash: applied; the next, or the end */

static void
ngx_http_eas_redis_rules_on_page(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply  *rr = reply;

    u_char          *p, *last;
    uint64_t         n[2];
    ngx_str_t        field, value;
    redisReply      *cur, *blob;
    const char      *why;
    ngx_shm_zone_t  *zone;

    zone = ngx_http_eas_redis_rules_zone();

    if (rr == NULL || zone == NULL) {
        ngx_http_eas_redis_rules_failed();
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_STRING
        || rr->element[2]->type != REDIS_REPLY_INTEGER
        || rr->element[0]->len == 0
        || rr->element[0]->len > sizeof(ngx_http_eas_redis_rules_cursor))
    {
        ngx_http_eas_redis_rules_junk("reading the rules",
                                      rr->type == REDIS_REPLY_ERROR
                                      ? rr->str : "a reply of another shape");
        ngx_http_eas_redis_rules_failed();
        return;
    }

    cur = rr->element[0];
    blob = rr->element[1];

    if (rr->element[2]->integer != 0) {
        ngx_http_eas_redis_rules_junk("the rules' hash",
                                      "an entry longer than a rule");
    }

    p = (u_char *) blob->str;
    last = p + blob->len;

    while (p < last) {

        /* "FLEN VLEN FIELDVALUE" */

        if (ngx_http_eas_redis_rules_number(&p, last, 65536, &n[0])
            != NGX_OK
            || ngx_http_eas_redis_rules_number(&p, last, 65536, &n[1])
               != NGX_OK
            || (uint64_t) (last - p) < n[0] + n[1])
        {
            goto junk;
        }

        field.data = p;
        field.len = n[0];
        value.data = p + n[0];
        value.len = n[1];
        p += n[0] + n[1];

        why = NULL;

        if (ngx_http_eas_redis_rules_take(zone, &field, &value, &why)
            == NGX_OK)
        {
            ngx_http_eas_redis_rules_changed = 1;
        }

        if (why) {
            ngx_http_eas_redis_rules_junk("the rules' hash", why);
        }
    }

    if (cur->len != 1 || cur->str[0] != '0') {
        ngx_memcpy(ngx_http_eas_redis_rules_cursor, cur->str, cur->len);
        ngx_http_eas_redis_rules_cursor_len = cur->len;
        ngx_http_eas_redis_rules_page();
        return;
    }

    /* reconciled */

    ngx_http_eas_redis_rules_busy = 0;
    ngx_http_eas_redis_rules_behind = 0;

    if (ngx_http_eas_redis_rules_changed) {
        ngx_http_eas_admin_dirty(zone->data);
    }

    if (ngx_http_eas_redis_rules_again) {
        ngx_http_eas_redis_rules_behind = 1;
        ngx_http_eas_redis_rules_start();
    }

    return;

junk:

    ngx_http_eas_redis_rules_junk("the rules' hash", "a page not understood");
    ngx_http_eas_redis_rules_failed();
}


/* the reconciliation stopped: again in a second */

static void
ngx_http_eas_redis_rules_failed(void)
{
    ngx_http_eas_redis_rules_busy = 0;
    ngx_http_eas_redis_rules_later();
}


static void
ngx_http_eas_redis_rules_later(void)
{
    ngx_event_t  *ev;

    ngx_http_eas_redis_rules_behind = 1;

    ev = &ngx_http_eas_redis_rules_timer;

    if (ngx_exiting || ngx_terminate || ev->timer_set
        || ngx_http_eas_redis_get_conf() == NULL)
    {
        return;
    }

    ev->handler = ngx_http_eas_redis_rules_retry;
    /* the debug log of a timer reads its data as a connection */
    ngx_http_eas_redis_rules_dummy.fd = (ngx_socket_t) -1;
    ev->data = &ngx_http_eas_redis_rules_dummy;
    ev->log = ngx_cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_HTTP_EAS_REDIS_RULES_RETRY);
}


static void
ngx_http_eas_redis_rules_retry(ngx_event_t *ev)
{
    if (!ngx_http_eas_redis_rules_behind) {
        return;
    }

    if (ngx_http_eas_redis_up() == 0) {
        /* not counted as a fallback each second: its return syncs */
        ngx_http_eas_redis_rules_later();
        return;
    }

    ngx_http_eas_redis_rules_start();
}


/*
 * "R" on the channel: the rule of FIELD, in the rules zone ZONE, was
 * changed on Redis.  A notification only: the rule is read from the
 * hash (so a message that no gateway wrote there changes nothing), and
 * the keys named while a read is under way are read together, each
 * once, however many messages named it.  Applying one costs a lookup
 * among the keys waiting; the file is written at most once a second
 * (ngx_http_eas_admin_dirty()).  More keys waiting than a worker keeps:
 * a reconciliation reads the whole hash instead.
 */

typedef struct {
    u_short                      len;
    u_char                       field[NGX_HTTP_EAS_REDIS_RULES_FIELD];
} ngx_http_eas_redis_rules_key_t;


static ngx_http_eas_redis_rules_key_t  *ngx_http_eas_redis_rules_keys;
static ngx_uint_t    ngx_http_eas_redis_rules_nkeys;     /* waiting */
static ngx_uint_t    ngx_http_eas_redis_rules_reading;   /* in flight:
                                                            the first n */
static ngx_uint_t    ngx_http_eas_redis_rules_overflow;


static void ngx_http_eas_redis_rules_read(void);
static void ngx_http_eas_redis_rules_on_read(redisAsyncContext *ac,
    void *reply, void *data);


void
ngx_http_eas_redis_rules_event(ngx_str_t *zname, ngx_str_t *field,
    ngx_str_t *value)
{
    ngx_uint_t                       i;
    ngx_shm_zone_t                  *zone;
    ngx_http_eas_redis_rules_key_t  *k;

    zone = ngx_http_eas_redis_rules_zone();

    if (zone == NULL || zname->len != zone->shm.name.len
        || ngx_strncmp(zname->data, zone->shm.name.data, zname->len) != 0)
    {
        /* no such rules zone here */
        return;
    }

    if (field->len < 2 || field->len > NGX_HTTP_EAS_REDIS_RULES_FIELD
        || (field->data[0] != NGX_HTTP_EAS_ADMIN_DEVICE
            && field->data[0] != NGX_HTTP_EAS_ADMIN_USER))
    {
        ngx_http_eas_redis_rules_junk("a rule on the channel",
                                      "not a rule's key");
        return;
    }

    if (ngx_http_eas_redis_rules_keys == NULL) {
        ngx_http_eas_redis_rules_keys = ngx_alloc(
                                 NGX_HTTP_EAS_REDIS_RULES_PENDING
                                 * sizeof(ngx_http_eas_redis_rules_key_t),
                                 ngx_cycle->log);
        if (ngx_http_eas_redis_rules_keys == NULL) {
            ngx_http_eas_redis_rules_later();
            return;
        }
    }

    k = ngx_http_eas_redis_rules_keys;

    /* a key being read may have been read before this change */

    for (i = ngx_http_eas_redis_rules_reading;
         i < ngx_http_eas_redis_rules_nkeys;
         i++)
    {
        if (k[i].len == field->len
            && ngx_memcmp(k[i].field, field->data, field->len) == 0)
        {
            return;
        }
    }

    if (i == NGX_HTTP_EAS_REDIS_RULES_PENDING) {
        /* read all of the hash once the keys waiting are read */
        ngx_http_eas_redis_rules_overflow = 1;
        return;
    }

    k[i].len = (u_short) field->len;
    ngx_memcpy(k[i].field, field->data, field->len);
    ngx_http_eas_redis_rules_nkeys++;

    if (!ngx_http_eas_redis_rules_reading) {
        ngx_http_eas_redis_rules_read();
    }
}


/* HMGET of up to ..._READ keys waiting, the first ones */

static void
ngx_http_eas_redis_rules_read(void)
{
    size_t                           argvlen[2 + NGX_HTTP_EAS_REDIS_RULES_READ];
    ngx_uint_t                       i, n;
    const char                      *argv[2 + NGX_HTTP_EAS_REDIS_RULES_READ];
    ngx_shm_zone_t                  *zone;
    ngx_http_eas_redis_conf_t       *rcf;
    ngx_http_eas_redis_rules_key_t  *k;
    u_char                           key[NGX_HTTP_EAS_REDIS_RULES_KEY];

    zone = ngx_http_eas_redis_rules_zone();
    n = ngx_min(ngx_http_eas_redis_rules_nkeys,
                NGX_HTTP_EAS_REDIS_RULES_READ);

    if (zone == NULL || n == 0) {
        ngx_http_eas_redis_rules_nkeys = 0;
        return;
    }

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf->prefix.len + zone->shm.name.len + 2
        > NGX_HTTP_EAS_REDIS_RULES_KEY)
    {
        ngx_http_eas_redis_rules_nkeys = 0;
        return;
    }

    argv[0] = "HMGET";
    argvlen[0] = 5;
    argv[1] = (char *) key;
    argvlen[1] = ngx_sprintf(key, "%Vr:%V", &rcf->prefix, &zone->shm.name)
                 - key;

    k = ngx_http_eas_redis_rules_keys;

    for (i = 0; i < n; i++) {
        argv[2 + i] = (char *) k[i].field;
        argvlen[2 + i] = k[i].len;
    }

    if (ngx_http_eas_redis_command(ngx_http_eas_redis_rules_on_read,
                                   (void *) (uintptr_t) n, (int) (2 + n),
                                   argv, argvlen)
        != NGX_OK)
    {
        /* Redis down: its return reconciles */
        ngx_http_eas_redis_rules_nkeys = 0;
        ngx_http_eas_redis_rules_overflow = 0;
        ngx_http_eas_redis_rules_later();
        return;
    }

    ngx_http_eas_redis_rules_reading = n;
}


static void
ngx_http_eas_redis_rules_on_read(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply  *rr = reply;

    ngx_str_t                        field, value;
    ngx_uint_t                       i, n, changed;
    const char                      *why;
    ngx_shm_zone_t                  *zone;
    ngx_http_eas_redis_rules_key_t  *k;

    n = (ngx_uint_t) (uintptr_t) data;
    k = ngx_http_eas_redis_rules_keys;
    zone = ngx_http_eas_redis_rules_zone();

    ngx_http_eas_redis_rules_reading = 0;

    if (rr == NULL || zone == NULL || rr->type != REDIS_REPLY_ARRAY
        || rr->elements != n || n > ngx_http_eas_redis_rules_nkeys)
    {
        if (rr && rr->type == REDIS_REPLY_ERROR) {
            ngx_http_eas_redis_rules_junk("reading a rule", rr->str);
        }

        ngx_http_eas_redis_rules_nkeys = 0;
        ngx_http_eas_redis_rules_overflow = 0;
        ngx_http_eas_redis_rules_later();
        return;
    }

    changed = 0;

    for (i = 0; i < n; i++) {
        if (rr->element[i]->type != REDIS_REPLY_STRING) {
            /* not in the hash: nothing to take */
            continue;
        }

        field.data = k[i].field;
        field.len = k[i].len;
        value.data = (u_char *) rr->element[i]->str;
        value.len = rr->element[i]->len;

        why = NULL;

        if (ngx_http_eas_redis_rules_take(zone, &field, &value, &why)
            == NGX_OK)
        {
            changed = 1;
        }

        if (why) {
            ngx_http_eas_redis_rules_junk("a rule on the channel", why);
        }
    }

    if (changed) {
        ngx_http_eas_admin_dirty(zone->data);
    }

    ngx_memmove(k, &k[n],
                (ngx_http_eas_redis_rules_nkeys - n)
                * sizeof(ngx_http_eas_redis_rules_key_t));
    ngx_http_eas_redis_rules_nkeys -= n;

    if (ngx_http_eas_redis_rules_nkeys) {
        ngx_http_eas_redis_rules_read();
        return;
    }

    if (ngx_http_eas_redis_rules_overflow) {
        ngx_http_eas_redis_rules_overflow = 0;
        ngx_http_eas_redis_rules_sync();
    }
}


/*
 * One rule from Redis, checked as the admin API checks its input, and
 * applied if newer.  NGX_OK: the zone changed.  *why: refused.
 */

static ngx_int_t
ngx_http_eas_redis_rules_take(ngx_shm_zone_t *zone, ngx_str_t *field,
    ngx_str_t *value, const char **why)
{
    u_char                     *p, *last;
    size_t                      max;
    uint64_t                    stamp, who_len;
    ngx_int_t                   rc;
    ngx_str_t                   access;
    ngx_uint_t                  i;
    ngx_time_t                 *tp;
    ngx_http_eas_admin_rule_t   rule;
    size_t                      n;
    u_char                      id[EAS_USER_MAX];

    ngx_memzero(&rule, sizeof(ngx_http_eas_admin_rule_t));

    if (field->len < 2
        || (field->data[0] != NGX_HTTP_EAS_ADMIN_DEVICE
            && field->data[0] != NGX_HTTP_EAS_ADMIN_USER))
    {
        *why = "not a rule's key";
        return NGX_DECLINED;
    }

    rule.field = field->data[0];
    max = rule.field == NGX_HTTP_EAS_ADMIN_DEVICE ? EAS_DEVICE_ID_MAX
                                                  : EAS_USER_MAX;

    p = value->data;
    last = p + value->len;

    /* ACCESS */

    access.data = p;

    while (p < last && *p != ' ') {
        p++;
    }

    access.len = p - access.data;

    i = ngx_http_eas_admin_access_parse(&access);

    if (access.len == 4 && ngx_strncmp(access.data, "none", 4) == 0) {
        i = NGX_HTTP_EAS_ACCESS_NONE;

    } else if (i == (ngx_uint_t) NGX_ERROR
               || (i == NGX_HTTP_EAS_ADMIN_LOST_ACCESS
                   && rule.field != NGX_HTTP_EAS_ADMIN_DEVICE))
    {
        *why = "not an access (allow, block, lost for a device, none)";
        return NGX_DECLINED;
    }

    rule.access = i;

    /* STAMP WHOLEN */

    if (p == last || *p++ != ' '
        || ngx_http_eas_redis_rules_number(&p, last, 999999999999999,
                                           &stamp) != NGX_OK
        || ngx_http_eas_redis_rules_number(&p, last,
                                           NGX_HTTP_EAS_ADMIN_WHO_LEN,
                                           &who_len) != NGX_OK
        || (uint64_t) (last - p) < who_len)
    {
        *why = "a time or who made it missing, or too long";
        return NGX_DECLINED;
    }

    tp = ngx_timeofday();

    if (stamp == 0
        || stamp > (uint64_t) tp->sec * 1000 + tp->msec
                   + NGX_HTTP_EAS_REDIS_RULES_AHEAD)
    {
        *why = "a time years ahead";
        return NGX_DECLINED;
    }

    if (rule.access == NGX_HTTP_EAS_ACCESS_NONE
        && ngx_http_eas_admin_expired(zone, stamp))
    {
        /* a removal older than keep_removals=: no longer kept */
        return NGX_DECLINED;
    }

    /* WHO, as ngx_http_eas_admin_who() writes it */

    rule.who.data = p;
    rule.who.len = who_len;

    for (i = 0; i < who_len; i++) {
        if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\') {
            *why = "who made it is not printable";
            return NGX_DECLINED;
        }
    }

    /* VALUE, as the admin API takes it, and the key it has */

    rule.value.data = p + who_len;
    rule.value.len = last - rule.value.data;

    if (rule.value.len == 0 || rule.value.len > max
        || rule.value.data[0] == '~'
        || rule.value.len + 1 != field->len)
    {
        *why = "not a DeviceId or user the admin API takes";
        return NGX_DECLINED;
    }

    for (i = 0; i < rule.value.len; i++) {
        if (rule.value.data[i] < 0x20 || rule.value.data[i] == 0x7f
            || ngx_tolower(rule.value.data[i]) != field->data[1 + i])
        {
            *why = "not a DeviceId or user the admin API takes";
            return NGX_DECLINED;
        }
    }

    /* a user as the admin API keeps it: the identity requests have */

    if (rule.field == NGX_HTTP_EAS_ADMIN_USER
        && (ngx_http_eas_user_identity(NULL, rule.value.data,
                                       rule.value.len, id, sizeof(id), &n)
            != NGX_OK
            || n != rule.value.len
            || ngx_memcmp(id, rule.value.data, n) != 0))
    {
        *why = "a user not folded as requests are";
        return NGX_DECLINED;
    }

    rc = ngx_http_eas_admin_apply(zone, &rule, stamp);

    if (rc == NGX_DONE) {
        /* the same rule, made newer by Redis: nothing to say or write */
        return NGX_DECLINED;
    }

    if (rc == NGX_BUSY) {
        *why = "the eas_admin_rules zone is full";
        return NGX_DECLINED;
    }

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "eas: rule of %s \"%V\" %s by another gateway "
                      "(%V)", rule.field == NGX_HTTP_EAS_ADMIN_DEVICE
                              ? "device_id" : "user", &rule.value,
                      rule.access == NGX_HTTP_EAS_ACCESS_NONE
                      ? "removed"
                      : rule.access == NGX_HTTP_EAS_ACCESS_ALLOWED
                        ? "set to allow"
                        : rule.access == NGX_HTTP_EAS_ACCESS_BLOCKED
                          ? "set to block" : "set to lost", &rule.who);
    }

    return rc;
}


/* "N " with N at most max: *pp moves past it */

static ngx_int_t
ngx_http_eas_redis_rules_number(u_char **pp, u_char *last, uint64_t max,
    uint64_t *n)
{
    u_char  *p;

    p = *pp;
    *n = 0;

    if (p == last || *p < '0' || *p > '9') {
        return NGX_ERROR;
    }

    while (p < last && *p >= '0' && *p <= '9') {
        *n = *n * 10 + (*p++ - '0');

        if (*n > max) {
            return NGX_ERROR;
        }
    }

    if (p == last || *p++ != ' ') {
        return NGX_ERROR;
    }

    *pp = p;

    return NGX_OK;
}


/* refused, or Redis refused: said once a minute per worker at most */

static void
ngx_http_eas_redis_rules_junk(const char *where, const char *why)
{
    if (ngx_time() - ngx_http_eas_redis_rules_logged < 60) {
        return;
    }

    ngx_http_eas_redis_rules_logged = ngx_time();

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "eas: shared state: %s refused: %s (said once a minute)",
                  where, why);
}
