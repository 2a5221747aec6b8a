
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
 * The runtime rules shared by the gateways (ngx_http_eas_redis_rules.c):
 * each worker's reconciliation with the hash when its subscription is
 * (re)made or a change was not taken (every rule and deletion of the
 * zone sent, then the hash read back a page at a time and applied), and
 * its retry a second later while Redis is away.
 */


static void ngx_http_eas_redis_rules_start(void);
static void ngx_http_eas_redis_rules_next(void);
static void ngx_http_eas_redis_rules_page(void);
static void ngx_http_eas_redis_rules_failed(void);
static void ngx_http_eas_redis_rules_retry(ngx_event_t *ev);
static void ngx_http_eas_redis_rules_on_pushed(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_rules_on_page(redisAsyncContext *ac,
    void *reply, void *data);


/*
 * KEYS[1] the hash, ARGV[1] the cursor, ARGV[2] and [3] the longest
 * field and value, ARGV[4] keep_removals= in ms: a removal older than
 * that by Redis's clock is no longer kept (deleted from the hash, but
 * still in the page: a gateway that was away holding the rule drops
 * it); one more than NGX_HTTP_EAS_ADMIN_SKEW ahead of it is no real
 * change, as old as any (..._STAMP_FUTURE): dropped.  A page of it, in
 * one string, "FLEN VLEN FIELDVALUE" each, the next cursor ("0": the
 * end), and how many entries longer than a rule can be were left out.
 * A reply stays far below the 64 KB a reply may take, whatever the
 * hash holds.
 */

static const char  ngx_http_eas_redis_rules_page_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', 16) "
    "local out, long = {}, 0 "
    "for i = 1, #r[2] - 1, 2 do "
    "  local f, v = r[2][i], r[2][i + 1] "
    "  local gone = tonumber(string.match(v, '^none (%d+) ')) "
    "  if gone and gone > now + " NGX_HTTP_EAS_REDIS_RULES_SKEW " then "
    "    gone = 1 "
    "  end "
    "  if gone and gone + tonumber(ARGV[4]) < now then "
    "    redis.call('HDEL', KEYS[1], f) "
    "  end "
    "  if #f > tonumber(ARGV[2]) or #v > tonumber(ARGV[3]) then "
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

    if (ngx_http_eas_redis_rules_taken(rr) != NGX_OK) {
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
    ngx_int_t                  rc;
    ngx_shm_zone_t            *zone;
    const char                *argv[8];
    size_t                     argvlen[8];
    ngx_http_eas_admin_ctx_t  *ctx;
    u_char                     max[3][NGX_INT64_LEN];

    zone = ngx_http_eas_redis_rules_zone();

    if (zone == NULL) {
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

    argv[7] = (char *) max[2];
    argvlen[7] = ngx_sprintf(max[2], "%uL", ctx->keep) - max[2];

    rc = ngx_http_eas_redis_rules_eval(ngx_http_eas_redis_rules_on_page, NULL,
                                   ngx_http_eas_redis_rules_page_lua,
                                   sizeof(ngx_http_eas_redis_rules_page_lua)
                                   - 1, zone, 8, argv, argvlen);

    if (rc == NGX_ERROR) {
        /* a name too long for a key: never */
        ngx_http_eas_redis_rules_busy = 0;

    } else if (rc != NGX_OK) {
        ngx_http_eas_redis_rules_failed();
    }
}


/* a page of the hash: applied; the next, or the end */

static void
ngx_http_eas_redis_rules_on_page(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply  *rr = reply;

    redisReply      *cur, *blob;
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

    if (ngx_http_eas_redis_rules_entries(zone, blob, "the rules' hash",
                                         &ngx_http_eas_redis_rules_changed,
                                         0)
        != NGX_OK)
    {
        goto junk;
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


void
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
