
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


/*
 * The device records of the other gateways (docs/scale-out.md), read
 * back into this gateway's device zones by its first worker: from the
 * channel as they are written, and from Redis when the subscription is
 * made (ngx_http_eas_redis_inventory.c writes them and describes the
 * keys and the record).  Every record is checked before it is used
 * (ngx_http_eas_redis_inv_record.c): as a request would have it;
 * one not understood is refused, counted and said once a minute.
 */


static void ngx_http_eas_inv_fill_step(ngx_event_t *ev);
static void ngx_http_eas_inv_on_fill(redisAsyncContext *ac, void *reply,
    void *data);
static ngx_int_t ngx_http_eas_inv_records(ngx_shm_zone_t *zone, u_char *p,
    u_char *last);
static ngx_int_t ngx_http_eas_inv_import(ngx_shm_zone_t *zone,
    ngx_http_eas_inv_record_t *rec);
static void ngx_http_eas_inv_fill_done(ngx_shm_zone_t *zone);


/*
 * One step of the fill: ARGV[2] records of the index from the one
 * after the cursor, ARGV[1] the score and ARGV[5] the key of the last
 * record the previous step kept (ARGV[1] empty: from the oldest).  The
 * cursor is a place in the index's order, not a rank: a record deleted,
 * trimmed or written again (moved to the end) between two steps moves
 * the ranks of those after it, and a rank would then skip one.  When
 * the cursor's key is still in the index with its score, the step
 * starts right after it; else (deleted, written again) at the first
 * record of its score, so that none is skipped (a few of that second
 * are read twice, which imports them twice, harmlessly).  An index
 * entry whose record is gone (expired, deleted, not a string) leaves
 * the index; a record longer than any the gateways write (ARGV[3]) too,
 * counted as refused.  The first step says whether this gateway's key
 * KEYS[2] was missing (made now, for ARGV[4]): Redis lost its data since
 * this gateway's last fill, and missing records are not deletions.
 * Answer: the new cursor (score, key), the entries read, the records,
 * the refused, whether KEYS[2] was missing.
 */

static const char  ngx_http_eas_inv_fill_lua[] =
    "local n = tonumber(ARGV[2]) "
    "local fresh, r = 0, 0 "
    "if ARGV[1] == '' then "
    "  if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then "
    "    fresh = 1 "
    "  else "
    "    redis.call('EXPIRE', KEYS[2], ARGV[4]) "
    "  end "
    "else "
    "  local s = redis.call('ZSCORE', KEYS[1], ARGV[5]) "
    "  if s and tonumber(s) == tonumber(ARGV[1]) then "
    "    r = redis.call('ZRANK', KEYS[1], ARGV[5]) + 1 "
    "  else "
    "    r = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1]) "
    "  end "
    "end "
    "local ks = redis.call('ZRANGE', KEYS[1], r, r + n - 1, 'WITHSCORES') "
    "local out, long = {}, 0 "
    "local score, key = ARGV[1], ARGV[5] "
    "if #ks > 0 then "
    "  local names = {} "
    "  for i = 1, #ks, 2 do "
    "    names[#names + 1] = ks[i] "
    "  end "
    "  local vs = redis.call('MGET', unpack(names)) "
    "  for i = 1, #names do "
    "    local v = vs[i] "
    "    if v and #v > tonumber(ARGV[3]) then "
    "      long = long + 1 "
    "      v = false "
    "    end "
    "    if v then "
    "      out[#out + 1] = #v .. ':' .. v "
    "      score, key = ks[2 * i], names[i] "
    "    else "
    "      redis.call('ZREM', KEYS[1], names[i]) "
    "    end "
    "  end "
    "end "
    "return {score, key, #ks / 2, table.concat(out), long, fresh}";


/* this worker's fill */

static ngx_event_t                ngx_http_eas_inv_fill_ev;
static ngx_uint_t                 ngx_http_eas_inv_fill_zone;
static ngx_uint_t                 ngx_http_eas_inv_fill_tries;
static ngx_uint_t                 ngx_http_eas_inv_fill_asked;
static ngx_uint_t                 ngx_http_eas_inv_fill_again;

/* the cursor: the score and the key of the last record read */
static u_char                     ngx_http_eas_inv_fill_score[32];
static size_t                     ngx_http_eas_inv_fill_score_len;
static u_char                     ngx_http_eas_inv_fill_key[
                                      NGX_HTTP_EAS_INV_KEY];
static size_t                     ngx_http_eas_inv_fill_key_len;

/*
 * A deletion came on the channel while a step was asked: the step's
 * answer comes on the command connection, the deletion on the
 * subscriber's, and this worker may read them in either order, so the
 * answer may hold the record as it was before Redis deleted it.  The
 * step is asked again (its answer is then read after the deletion),
 * NGX_HTTP_EAS_INV_FILL_REDO times at most in a row.
 */

#define NGX_HTTP_EAS_INV_FILL_REDO  16

static ngx_uint_t                 ngx_http_eas_inv_fill_deleted;
static ngx_uint_t                 ngx_http_eas_inv_fill_redone;

/*
 * Deletions missed: a fill reads every record of a zone on Redis, so a
 * record of the zone that it did not read, and not seen since the fill
 * began, is gone from Redis (deleted while this gateway's subscription
 * was being made again, expired there) and goes from the zone too
 * (ngx_http_eas_device_unfilled()).  Not when Redis lost its data (a
 * Redis that restarted empty is filled again as the devices come back:
 * this gateway's mark "<prefix>filled:<node>" was missing), nor when
 * records of this gateway could not be written since the previous fill
 * began (they are missing from Redis for that reason), nor on the
 * first fill of the worker.  A record of a device idle since Redis lost
 * its data, and not written since, is removed by the next fill that
 * sweeps: its device's next request writes (and counts) it again.
 * Each zone's fill ends with one line saying what it did and why
 * (ngx_http_eas_inv_fill_done()).
 */

static u_char                     ngx_http_eas_inv_filled;
static time_t                     ngx_http_eas_inv_fill_start;
static ngx_atomic_uint_t          ngx_http_eas_inv_fill_dropped;
static ngx_uint_t                 ngx_http_eas_inv_fill_known;
static ngx_uint_t                 ngx_http_eas_inv_fill_sweep;
static const char                *ngx_http_eas_inv_fill_keep;
static ngx_uint_t                 ngx_http_eas_inv_fill_lost;
static ngx_uint_t                 ngx_http_eas_inv_fill_read;

/* the timer's "data": nginx's debug log reads a descriptor from it */
static ngx_connection_t           ngx_http_eas_inv_dummy;

static ngx_str_t                  ngx_http_eas_inv_none = ngx_string("?");


/*
 * A message of another gateway about its inventory: only the first
 * worker of a gateway writes it into the zone, every worker shares it.
 */

void
ngx_http_eas_redis_inventory_event(char type, ngx_str_t *zname,
    ngx_str_t *s2, ngx_str_t *s3)
{
    ngx_shm_zone_t  *zone;

    if (ngx_worker != 0 || ngx_http_eas_redis_inv_start() != NGX_OK) {
        return;
    }

    zone = ngx_http_eas_redis_zone_find(zname->data, zname->len,
                                        &ngx_http_eas_module);
    if (zone == NULL) {
        return;
    }

    if (type == 'D') {
        if (s2->len > EAS_USER_MAX || s3->len == 0
            || s3->len > EAS_DEVICE_ID_MAX)
        {
            ngx_http_eas_redis_inv_refused(1);
            return;
        }

        if (ngx_http_eas_inv_fill_asked) {
            ngx_http_eas_inv_fill_deleted = 1;
        }

        (void) ngx_http_eas_device_delete(zone, s2, s3);
        return;
    }

    if (s2->len != 0
        || ngx_http_eas_inv_records(zone, s3->data, s3->data + s3->len)
           != NGX_OK)
    {
        ngx_http_eas_redis_inv_refused(1);
    }
}


/*
 * The subscription is made (at start, after Redis came back): the first
 * worker reads the inventory of every device zone from Redis, oldest
 * first, a chunk a step.
 */

void
ngx_http_eas_redis_inventory_fill(void)
{
    ngx_atomic_uint_t  dropped;

    if (ngx_worker != 0 || ngx_http_eas_redis_inv_start() != NGX_OK) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "eas shared state: no fill, not the first worker");
        return;
    }

    if (ngx_http_eas_inv_fill_ev.handler == NULL) {
        ngx_http_eas_inv_dummy.fd = (ngx_socket_t) -1;

        ngx_http_eas_inv_fill_ev.data = &ngx_http_eas_inv_dummy;
        ngx_http_eas_inv_fill_ev.handler = ngx_http_eas_inv_fill_step;
        ngx_http_eas_inv_fill_ev.log = ngx_cycle->log;
        ngx_http_eas_inv_fill_ev.cancelable = 1;
    }

    ngx_http_eas_inv_fill_zone = 0;
    ngx_http_eas_inv_fill_score_len = 0;
    ngx_http_eas_inv_fill_key_len = 0;
    ngx_http_eas_inv_fill_read = 0;
    ngx_http_eas_inv_fill_tries = 0;

    /* 1..255: a new record's is 0 */
    ngx_http_eas_inv_filled = (u_char) (ngx_http_eas_inv_filled % 255 + 1);
    ngx_http_eas_inv_fill_start = ngx_time();

    dropped = ngx_http_eas_redis_counters()[NGX_HTTP_EAS_INV_DROPPED];

    ngx_http_eas_inv_fill_lost = dropped - ngx_http_eas_inv_fill_dropped;
    ngx_http_eas_inv_fill_sweep = ngx_http_eas_inv_fill_known
                                  && ngx_http_eas_inv_fill_lost == 0;
    ngx_http_eas_inv_fill_keep = ngx_http_eas_inv_fill_known
                                 ? NULL : "the first fill of this worker";
    ngx_http_eas_inv_fill_dropped = dropped;
    ngx_http_eas_inv_fill_known = 1;

    if (ngx_http_eas_inv_fill_asked) {
        /* a step is under way: its answer goes on from the start */
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "eas: shared state: the fill starts again from the "
                      "oldest record: the subscription was made again "
                      "during it");
        ngx_http_eas_inv_fill_again = 1;
        return;
    }

    if (ngx_http_eas_inv_fill_ev.timer_set) {
        ngx_del_timer(&ngx_http_eas_inv_fill_ev);
    }

    ngx_http_eas_inv_fill_step(&ngx_http_eas_inv_fill_ev);
}


static void
ngx_http_eas_inv_fill_step(ngx_event_t *ev)
{
    ngx_shm_zone_t             *zone;
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      index[NGX_HTTP_EAS_INV_KEY];
    u_char                      mark[NGX_HTTP_EAS_INV_KEY];
    u_char                      count[NGX_INT_T_LEN];
    u_char                      max[NGX_INT_T_LEN];
    u_char                      ttl[NGX_TIME_T_LEN];
    const char                 *argv[10];
    size_t                      argvlen[10];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || ngx_exiting || ngx_terminate) {
        return;
    }

    zone = ngx_http_eas_redis_zone_find(NULL, ngx_http_eas_inv_fill_zone,
                                        &ngx_http_eas_module);

    if (zone == NULL) {
        return;
    }

    if (rcf->prefix.len + zone->shm.name.len > 300) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "eas: shared state: no fill of zone \"%V\": its "
                      "keys would be too long", &zone->shm.name);
        return;
    }

    argv[3] = (char *) index;
    argvlen[3] = ngx_http_eas_redis_inv_key(index, rcf, "iz:", zone, NULL,
                                            NULL)
                 - index;
    argv[4] = (char *) mark;
    argvlen[4] = ngx_sprintf(mark, "%Vfilled:%V", &rcf->prefix, &rcf->node)
                 - mark;
    argv[5] = (char *) ngx_http_eas_inv_fill_score;
    argvlen[5] = ngx_http_eas_inv_fill_score_len;
    argv[6] = (char *) count;
    argvlen[6] = ngx_sprintf(count, "%ui", (ngx_uint_t)
                                           NGX_HTTP_EAS_INV_CHUNK)
                 - count;
    argv[7] = (char *) max;
    argvlen[7] = ngx_sprintf(max, "%uz", (size_t) NGX_HTTP_EAS_INV_RECORD)
                 - max;
    argv[8] = (char *) ttl;
    argvlen[8] = ngx_sprintf(ttl, "%T", rcf->device_ttl) - ttl;
    argv[9] = (char *) ngx_http_eas_inv_fill_key;
    argvlen[9] = ngx_http_eas_inv_fill_key_len;

    if (ngx_http_eas_redis_eval(ngx_http_eas_inv_on_fill, NULL,
                                ngx_http_eas_inv_fill_lua,
                                sizeof(ngx_http_eas_inv_fill_lua) - 1, 2, 10,
                                argv, argvlen)
        == NGX_OK)
    {
        ngx_http_eas_inv_fill_asked = 1;
        return;
    }

    /* the command connection is not up yet: a little later, a few times */

    if (++ngx_http_eas_inv_fill_tries < 50) {
        ngx_add_timer(ev, 200);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "eas: shared state: the fill of zone \"%V\" stopped: "
                  "no command connection to Redis for 10s (the next "
                  "subscription fills again)", &zone->shm.name);
}


static void
ngx_http_eas_inv_on_fill(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply      *rr = reply;
    redisReply     **e;
    ngx_uint_t       restarted, deleted;
    ngx_shm_zone_t  *zone;

    ngx_http_eas_inv_fill_asked = 0;

    /* a deletion read while the step was asked: the step again */
    deleted = ngx_http_eas_inv_fill_deleted
              && ngx_http_eas_inv_fill_redone < NGX_HTTP_EAS_INV_FILL_REDO;
    ngx_http_eas_inv_fill_deleted = 0;
    ngx_http_eas_inv_fill_redone = deleted ? ngx_http_eas_inv_fill_redone + 1
                                           : 0;

    /* a new subscription while the step was asked: from the start */
    restarted = ngx_http_eas_inv_fill_again;
    ngx_http_eas_inv_fill_again = 0;
    ngx_http_eas_inv_fill_tries = 0;

    zone = ngx_http_eas_redis_zone_find(NULL, ngx_http_eas_inv_fill_zone,
                                        &ngx_http_eas_module);
    e = rr ? rr->element : NULL;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 6
        || e[0]->type != REDIS_REPLY_STRING
        || e[0]->len >= sizeof(ngx_http_eas_inv_fill_score)
        || e[1]->type != REDIS_REPLY_STRING
        || e[1]->len > sizeof(ngx_http_eas_inv_fill_key)
        || e[2]->type != REDIS_REPLY_INTEGER
        || e[3]->type != REDIS_REPLY_STRING
        || e[4]->type != REDIS_REPLY_INTEGER
        || e[5]->type != REDIS_REPLY_INTEGER
        || e[2]->integer < 0 || e[4]->integer < 0)
    {
        if (rr && restarted) {
            /* an answer for the fill before: this one starts */
            ngx_http_eas_inv_fill_step(&ngx_http_eas_inv_fill_ev);
            return;
        }

        if (rr) {
            /* the next subscription fills again */
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "eas: shared state: the fill of zone \"%V\" "
                          "stopped: Redis answered \"%*s\"",
                          zone ? &zone->shm.name : &ngx_http_eas_inv_none,
                          rr->type == REDIS_REPLY_ERROR
                          ? ngx_min(rr->len, (size_t) 200) : (size_t) 20,
                          rr->type == REDIS_REPLY_ERROR
                          ? rr->str : "something else (odd)");
            ngx_http_eas_redis_inv_refused(1);
            return;
        }

        /*
         * the command connection went away: the step is asked again a
         * little later (from the beginning after a new subscription)
         */

        if (ngx_exiting || ngx_terminate
            || ngx_http_eas_redis_get_conf() == NULL)
        {
            return;
        }

        if (++ngx_http_eas_inv_fill_tries < 50) {
            ngx_add_timer(&ngx_http_eas_inv_fill_ev, 200);
            return;
        }

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "eas: shared state: the fill of zone \"%V\" "
                      "stopped: its steps got no answer 50 times (the "
                      "next subscription fills again)",
                      zone ? &zone->shm.name : &ngx_http_eas_inv_none);
        return;
    }

    if (zone && !restarted && !deleted) {
        ngx_http_eas_inv_fill_read += (ngx_uint_t) e[2]->integer;

        if (ngx_http_eas_inv_records(zone, (u_char *) e[3]->str,
                                     (u_char *) e[3]->str + e[3]->len)
            != NGX_OK)
        {
            ngx_http_eas_redis_inv_refused(1);
        }

        if (e[4]->integer) {
            ngx_http_eas_redis_inv_refused((ngx_uint_t) e[4]->integer);
        }

        if (e[5]->integer && ngx_http_eas_inv_fill_keep == NULL) {
            /*
             * Redis lost its data since a fill of this worker made the
             * mark: what it lacks was not deleted
             */
            ngx_http_eas_inv_fill_sweep = 0;
            ngx_http_eas_redis_inv_rewrite();
            ngx_http_eas_inv_fill_keep = "Redis lost its data (this "
                                         "gateway's mark was missing)";
        }

        if (e[2]->integer < NGX_HTTP_EAS_INV_CHUNK) {
            ngx_http_eas_inv_fill_done(zone);
            ngx_http_eas_inv_fill_zone++;
            ngx_http_eas_inv_fill_read = 0;
            ngx_http_eas_inv_fill_score_len = 0;
            ngx_http_eas_inv_fill_key_len = 0;

        } else {
            ngx_memcpy(ngx_http_eas_inv_fill_score, e[0]->str, e[0]->len);
            ngx_http_eas_inv_fill_score_len = e[0]->len;
            ngx_memcpy(ngx_http_eas_inv_fill_key, e[1]->str, e[1]->len);
            ngx_http_eas_inv_fill_key_len = e[1]->len;
        }

    } else if (restarted) {
        ngx_http_eas_inv_fill_score_len = 0;
        ngx_http_eas_inv_fill_key_len = 0;
        ngx_http_eas_inv_fill_read = 0;
    }

    ngx_http_eas_inv_fill_step(&ngx_http_eas_inv_fill_ev);
}


/*
 * A zone's fill read its last step: the records gone from Redis go,
 * unless the fill cannot tell them from records Redis lacks for another
 * reason.  One line a zone's fill says which.
 */

static void
ngx_http_eas_inv_fill_done(ngx_shm_zone_t *zone)
{
    ngx_uint_t  n;

    if (ngx_http_eas_inv_fill_sweep) {
        n = ngx_http_eas_device_unfilled(zone, ngx_http_eas_inv_filled,
                                         ngx_http_eas_inv_fill_start);

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "eas: shared state: the fill of zone \"%V\" read "
                      "%ui records; %ui device records gone from Redis "
                      "(deleted or expired while the subscription was made "
                      "again) removed here",
                      &zone->shm.name, ngx_http_eas_inv_fill_read, n);
        return;
    }

    if (ngx_http_eas_inv_fill_keep) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "eas: shared state: the fill of zone \"%V\" read "
                      "%ui records; those it did not find are kept: %s",
                      &zone->shm.name, ngx_http_eas_inv_fill_read,
                      ngx_http_eas_inv_fill_keep);
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "eas: shared state: the fill of zone \"%V\" read %ui "
                  "records; those it did not find are kept: %ui device "
                  "records of this gateway could not be written since the "
                  "previous fill",
                  &zone->shm.name, ngx_http_eas_inv_fill_read,
                  ngx_http_eas_inv_fill_lost);
}


/*
 * "LEN:RECORD" after one another: a record not understood is refused
 * (counted) and the next one read; NGX_ERROR when the framing itself is
 * broken, the rest is left.
 */

static ngx_int_t
ngx_http_eas_inv_records(ngx_shm_zone_t *zone, u_char *p, u_char *last)
{
    size_t                     len;
    ngx_http_eas_inv_record_t  rec;

    while (p < last) {
        p = ngx_http_eas_redis_inv_frame(p, last, &len);

        if (p == NULL) {
            return NGX_ERROR;
        }

        if (len == 0 || len > NGX_HTTP_EAS_INV_RECORD
            || ngx_http_eas_redis_inv_parse(p, p + len, &rec) != NGX_OK)
        {
            ngx_http_eas_redis_inv_refused(1);

        } else if (ngx_http_eas_inv_import(zone, &rec) == NGX_OK) {
            ngx_http_eas_redis_inv_count(NGX_HTTP_EAS_INV_IMPORTED, 1);
        }

        p += len;
    }

    return NGX_OK;
}


/*
 * A record of another gateway in this zone: created if new (never
 * counted here), its fields taken if it is newer than what the zone
 * holds, and put in its queue at the place of its last seen time, so
 * that both queues stay in that order (listing, stale deletion).
 */

static ngx_int_t
ngx_http_eas_inv_import(ngx_shm_zone_t *zone, ngx_http_eas_inv_record_t *rec)
{
    u_char                        *p;
    ngx_queue_t                   *head, *q;
    ngx_http_eas_zone_node_t      *node;
    ngx_http_eas_devices_ctx_t    *ctx;
    ngx_http_eas_devices_key_t     key;
    ngx_http_eas_devices_node_t   *dn, *other;
    ngx_http_eas_device_update_t   u;

    ctx = zone->data;

    if (ngx_http_eas_devices_device_key(&key, &rec->user, &rec->device_id)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&ctx->zone.shpool->mutex);

    node = ngx_http_eas_devices_find(ctx, NGX_HTTP_EAS_NODE_DEVICE, &key);

    if (node) {
        dn = (ngx_http_eas_devices_node_t *) node;

        /* on Redis: a fill does not take it for gone */
        dn->filled = ngx_http_eas_inv_filled;

        if (rec->last_seen < dn->last_seen
            || (rec->last_seen == dn->last_seen && dn->gateway == 0))
        {
            /*
             * this gateway saw it since, or in that second: most often
             * its own record read back by a fill, which stays its own
             * (written again if Redis loses its data)
             */
            ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
            return NGX_DECLINED;
        }

    } else {
        ngx_memzero(&u, sizeof(ngx_http_eas_device_update_t));
        u.user = rec->user;
        u.device_id = rec->device_id;

        /*
         * a device refused for eas_device_max (a spray of DeviceIds)
         * takes free room only: it never evicts the record of a device
         * another gateway admitted
         */

        ctx->zone.no_evict =
            ngx_http_eas_redis_inv_refused_max(rec->n[5], rec->reason.data,
                                               rec->reason.len);

        dn = ngx_http_eas_devices_create(ctx, &key, &u);

        ctx->zone.no_evict = 0;

        if (dn == NULL) {
            /* full of records counted here: they stay */
            ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
            return NGX_DECLINED;
        }

        dn->first_seen = rec->first_seen;
        dn->filled = ngx_http_eas_inv_filled;
    }

    dn->first_seen = ngx_min(dn->first_seen, rec->first_seen);
    dn->last_seen = rec->last_seen;

    if (rec->n[2]) {
        dn->heartbeat = rec->n[2];
    }

    dn->version = (u_short) rec->n[3];
    dn->command = (u_char) rec->n[4];
    dn->access = (u_char) rec->n[5];

    p = dn->data + dn->zn.len + dn->user_len + dn->device_id_len;

    dn->device_type_len = (u_char) rec->device_type.len;
    ngx_memcpy(p, rec->device_type.data, rec->device_type.len);
    p += NGX_HTTP_EAS_DEVICE_TYPE_LEN;

    dn->user_agent_len = (u_char) rec->user_agent.len;
    ngx_memcpy(p, rec->user_agent.data, rec->user_agent.len);
    p += NGX_HTTP_EAS_DEVICE_UA_LEN;

    dn->reason_len = (u_char) rec->reason.len;
    ngx_memcpy(p, rec->reason.data, rec->reason.len);
    ngx_http_eas_redis_inv_gateway_set(ctx, dn);

    /* after the records seen later: most are seen now, at the head */

    head = ngx_http_eas_zone_queue(&ctx->zone, dn->zn.mark
                                               ? NGX_HTTP_EAS_Q_COUNTED
                                               : NGX_HTTP_EAS_Q_EVICTABLE);

    ngx_queue_remove(&dn->zn.queue);

    for (q = ngx_queue_head(head);
         q != ngx_queue_sentinel(head);
         q = ngx_queue_next(q))
    {
        other = ngx_queue_data(q, ngx_http_eas_devices_node_t, zn.queue);

        if (other->last_seen <= dn->last_seen) {
            break;
        }
    }

    /* before q: "tail" of the list q would be the sentinel of */
    ngx_queue_insert_tail(q, &dn->zn.queue);

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return NGX_OK;
}
