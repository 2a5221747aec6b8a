
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
 * The device inventory shared by the gateways (docs/scale-out.md).
 *
 * Each gateway writes the records of its device zones to Redis, one
 * string key a device, "<prefix>i:<zone>:<user length>:<user><DeviceId>"
 * (lower case), that expires "device_ttl" after the device was last
 * seen, and indexes it in a sorted set "<prefix>iz:<zone>" by the time
 * it was last seen.  The records are not written one request at a
 * time: a worker collects the devices its requests updated (each once,
 * at most NGX_HTTP_EAS_INV_BATCH of them) and writes them every
 * "flush" in one pipeline, a script of NGX_HTTP_EAS_INV_CHUNK records
 * each, that also announces them on the gateways' channel:
 *
 *     I node 0 0 zlen 0 ZONE LEN:RECORD LEN:RECORD ...
 *     D node 0 0 zlen ulen ZONE USER DEVICEID          deleted
 *
 * A device seen for the first time is written in the same pass of the
 * event loop.  While Redis is down the batch is dropped (counted): the
 * next request of each device writes it again.
 *
 * A worker that shuts down gracefully (reload, quit) writes the batch it
 * holds at once (nginx tells the command connection, marked idle, see
 * ngx_http_eas_redis_inv_exiting()), and what the requests it still
 * serves add later when the flush timer fires: that timer is not
 * cancelable, so nginx keeps the worker for it.  Once it wrote, a timer
 * of "timeout", not cancelable either, waits for Redis's answers and is
 * removed by the last.  A worker told to stop at once (SIGTERM), or
 * beyond worker_shutdown_timeout, drops the batch.
 *
 * The first worker of every other gateway imports the records into its
 * own zone, in the order last seen, never counted for eas_device_max
 * there (the user's set on Redis counts the places of every gateway),
 * so that listing a page stays a walk of the local zone.  When its
 * subscription is made (at start, after Redis came back), it reads the
 * index oldest first, NGX_HTTP_EAS_INV_CHUNK records a step, which also
 * brings what was announced while it was away.
 *
 * The records are read back by ngx_http_eas_redis_import.c.  A record
 * is one line of text, the name of the gateway that wrote it (its
 * "gateway=", its host name by default) before one of version 1:
 *
 *     2 GLEN:GATEWAY 1 FIRST LAST HEARTBEAT VERSION COMMAND ACCESS ULEN
 *       DLEN TLEN ALEN RLEN USER DEVICEID TYPE USERAGENT REASON
 *
 * (a record of version 1 alone, from an older gateway, is read too: its
 * gateway is not said).
 *
 * and everything read back is checked before it is used: a record
 * that does not parse, with lengths over the zone's slots or times
 * in the future, is refused (counted, said once a minute).
 */


#define NGX_HTTP_EAS_INV_BATCH   256     /* devices a worker collects */
#define NGX_HTTP_EAS_INV_SLOTS   512     /* its index, a power of 2 */
#define NGX_HTTP_EAS_INV_REFUSED_TTL  3600  /* a refused device's record */
#define NGX_HTTP_EAS_INV_EXIT    0x100000  /* a write of an exiting worker */


/* a device of the batch: its zone and key as the request gave them */
typedef struct {
    ngx_shm_zone_t              *zone;
    uint32_t                     hash;
    u_short                      user_len;
    u_short                      max_devices;   /* of the last update */
    u_char                       device_id_len;
    u_char                       done;
    u_char                       data[EAS_USER_MAX + EAS_DEVICE_ID_MAX];
} ngx_http_eas_inv_entry_t;


/* one chunk's arguments: 9 fixed, 7 a record */
typedef struct {
    const char                  *argv[9 + 7 * NGX_HTTP_EAS_INV_CHUNK];
    size_t                       argvlen[9 + 7 * NGX_HTTP_EAS_INV_CHUNK];
    u_char                       index[NGX_HTTP_EAS_INV_KEY];
    u_char                       deleted[NGX_HTTP_EAS_INV_KEY];
    u_char                       header[128 + 256];
    u_char                       ttl[NGX_TIME_T_LEN];
    u_char                       now[NGX_TIME_T_LEN];
    u_char                       key[NGX_HTTP_EAS_INV_CHUNK]
                                    [NGX_HTTP_EAS_INV_KEY];
    u_char                       set[NGX_HTTP_EAS_INV_CHUNK]
                                    [NGX_HTTP_EAS_INV_KEY];
    u_char                       device[NGX_HTTP_EAS_INV_CHUNK]
                                       [EAS_DEVICE_ID_MAX];
    u_char                       max[NGX_HTTP_EAS_INV_CHUNK]
                                    [NGX_INT_T_LEN];
    u_char                       life[NGX_HTTP_EAS_INV_CHUNK]
                                     [NGX_TIME_T_LEN];
    u_char                       score[NGX_HTTP_EAS_INV_CHUNK]
                                      [NGX_TIME_T_LEN];
    u_char                       record[NGX_HTTP_EAS_INV_CHUNK]
                                       [NGX_HTTP_EAS_INV_RECORD];
} ngx_http_eas_inv_chunk_t;


static void ngx_http_eas_inv_flush(ngx_event_t *ev);
static void ngx_http_eas_inv_exit_wait(ngx_event_t *ev);
static void ngx_http_eas_inv_send(ngx_http_eas_redis_conf_t *rcf,
    ngx_shm_zone_t *zone, ngx_uint_t from);
static void ngx_http_eas_inv_on_write(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_eas_inv_deleted(ngx_shm_zone_t *zone, u_char *p,
    u_char *last);
static size_t ngx_http_eas_inv_read(ngx_shm_zone_t *zone,
    ngx_http_eas_inv_entry_t *e, u_char *record, ngx_uint_t *counted,
    ngx_uint_t *refused, time_t *last_seen);


/*
 * Every script does bounded work, whatever Redis holds: the index's
 * entries older than device_ttl leave it 64 at a write (at most 32
 * records a write come in, so it shrinks back), never all at once.
 *
 * A device counted here for eas_device_max asserts its place in the
 * user's set on Redis at each write of its record: the set may have
 * gone (Redis restarted empty, the set expired, deleted), or missed
 * it (a deletion this gateway did not hear).  It is added again if the
 * set has room; if the set is full with other devices, the script
 * names it (set, DeviceId): this gateway gives its place back and the
 * device's next request asks Redis again, like a new one.  So the
 * limit converges to eas_device_max, and the devices that keep
 * syncing keep their places while there is room.
 *
 * The record of a device refused for eas_device_max and never admitted
 * lives NGX_HTTP_EAS_INV_REFUSED_TTL at most (ARGV[i + 6]), and its
 * index entry is scored as if it were that much from device_ttl, so
 * that the trimming takes it then: a spray of DeviceIds does not stay
 * on Redis for device_ttl.
 *
 * A record deleted on Redis (the admin API of any gateway) is named in
 * the zone's set of deletions KEYS[2] with the time of its deletion
 * (ngx_http_eas_redis_inv_pending.c): a write of it that was seen no later
 * than that is of a request made before the deletion (queued for the
 * next flush, or on its way while the deletion was made) and does not
 * bring it back: it is not written, and the answer names it (after the
 * count, in one string, "LEN:KEY" after one another) so that this
 * gateway removes it too, even when it did not hear the deletion on the
 * channel (its subscription was being made again).  The deletion's time
 * is by Redis's clock (never later); the record's last seen is by the
 * writing gateway's, moved by how far that clock is from Redis's
 * (ARGV[2], its time now) when that is more than two seconds: a gateway
 * running hours behind would else find every record of the device older
 * than the deletion, and keep it out of every listing for those hours.
 */

static const char  ngx_http_eas_inv_write_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end "
    "local ttl = tonumber(ARGV[1]) "
    "local off = tonumber(redis.call('TIME')[1]) - tonumber(ARGV[2]) "
    "if math.abs(off) <= 2 then off = 0 end "
    "local out, lost, gone = {}, {}, {} "
    "for i = 5, #ARGV, 7 do "
    "  local d = redis.call('ZSCORE', KEYS[2], ARGV[i]) "
    "  local r = ARGV[i + 2] "
    "  local g = string.match(r, '^2 (%d+):') "
    "  if g then "
    "    r = string.sub(r, #g + tonumber(g) + 5) "
    "  end "
    "  if d and tonumber(d) >= (tonumber(string.match(r, "
    "                                    '^%d+ %d+ (%d+)')) or 0) + off then "
    "    gone[#gone + 1] = #ARGV[i] .. ':' .. ARGV[i] "
    "  else "
    "  redis.call('SET', ARGV[i], ARGV[i + 2], 'EX', ARGV[i + 6]) "
    "  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i]) "
    "  local set = ARGV[i + 3] "
    "  if set ~= '' then "
    "    if redis.call('SISMEMBER', set, ARGV[i + 4]) == 1 "
    "       or redis.call('SCARD', set) < tonumber(ARGV[i + 5]) then "
    "      redis.call('SADD', set, ARGV[i + 4]) "
    "      redis.call('EXPIRE', set, ttl) "
    "    else "
    "      lost[#lost + 1] = set "
    "      lost[#lost + 1] = ARGV[i + 4] "
    "    end "
    "  end "
    "  out[#out + 1] = #ARGV[i + 2] .. ':' .. ARGV[i + 2] "
    "  end "
    "end "
    "local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', "
    "                       '(' .. (tonumber(ARGV[2]) - ttl), "
    "                       'LIMIT', 0, 64) "
    "if #old > 0 then "
    "  redis.call('ZREM', KEYS[1], unpack(old)) "
    "end "
    "redis.call('EXPIRE', KEYS[1], ttl) "
    "if #out > 0 then "
    "  redis.call('PUBLISH', ARGV[3], ARGV[4] .. table.concat(out)) "
    "end "
    "table.insert(lost, 1, table.concat(gone)) "
    "table.insert(lost, 1, #out) "
    "return lost";


/* this worker's */

static ngx_http_eas_inv_entry_t  *ngx_http_eas_inv_batch;
static ngx_http_eas_inv_chunk_t  *ngx_http_eas_inv_chunk;
static ngx_uint_t                 ngx_http_eas_inv_n;
static uint16_t  ngx_http_eas_inv_slots[NGX_HTTP_EAS_INV_SLOTS];
static ngx_event_t                ngx_http_eas_inv_flush_ev;
static ngx_event_t                ngx_http_eas_inv_exit_ev;
static ngx_uint_t                 ngx_http_eas_inv_exit_writes;

/* the timer's "data": nginx's debug log reads a descriptor from it */
static ngx_connection_t           ngx_http_eas_inv_dummy;


/* this worker's batch, made at its first use */

ngx_int_t
ngx_http_eas_redis_inv_start(void)
{
    ngx_http_eas_redis_conf_t  *rcf;

    if (ngx_http_eas_inv_batch) {
        return NGX_OK;
    }

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || ngx_http_eas_redis_counters() == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_eas_inv_batch = ngx_alloc(NGX_HTTP_EAS_INV_BATCH
                                       * sizeof(ngx_http_eas_inv_entry_t),
                                       ngx_cycle->log);
    if (ngx_http_eas_inv_batch == NULL) {
        return NGX_ERROR;
    }

    ngx_http_eas_inv_chunk = ngx_alloc(sizeof(ngx_http_eas_inv_chunk_t),
                                       ngx_cycle->log);
    if (ngx_http_eas_inv_chunk == NULL) {
        ngx_free(ngx_http_eas_inv_batch);
        ngx_http_eas_inv_batch = NULL;
        return NGX_ERROR;
    }

    ngx_http_eas_inv_dummy.fd = (ngx_socket_t) -1;

    ngx_http_eas_inv_flush_ev.data = &ngx_http_eas_inv_dummy;
    ngx_http_eas_inv_flush_ev.handler = ngx_http_eas_inv_flush;
    ngx_http_eas_inv_flush_ev.log = ngx_cycle->log;

    /* a graceful exit waits for them: not cancelable (above) */
    ngx_http_eas_inv_exit_ev.data = &ngx_http_eas_inv_dummy;
    ngx_http_eas_inv_exit_ev.handler = ngx_http_eas_inv_exit_wait;
    ngx_http_eas_inv_exit_ev.log = ngx_cycle->log;

    return NGX_OK;
}


/*
 * The device zone updated a record (ngx_http_eas_device_update()): the
 * device joins this worker's batch, once; a device seen for the first
 * time is written in this pass of the event loop, the others at the
 * next flush.  No round trip, nothing waits.
 */

void
ngx_http_eas_redis_inventory_seen(ngx_shm_zone_t *devices,
    ngx_http_eas_device_update_t *u)
{
    uint32_t                    hash;
    ngx_uint_t                  i;
    ngx_http_eas_inv_entry_t   *e;
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || u->user.len > EAS_USER_MAX || u->device_id.len == 0
        || u->device_id.len > EAS_DEVICE_ID_MAX
        || ngx_http_eas_redis_inv_start() != NGX_OK)
    {
        return;
    }

    ngx_crc32_init(hash);
    ngx_crc32_update(&hash, u->user.data, u->user.len);
    ngx_crc32_update(&hash, u->device_id.data, u->device_id.len);
    ngx_crc32_final(hash);

    for (i = hash & (NGX_HTTP_EAS_INV_SLOTS - 1);
         ngx_http_eas_inv_slots[i];
         i = (i + 1) & (NGX_HTTP_EAS_INV_SLOTS - 1))
    {
        e = &ngx_http_eas_inv_batch[ngx_http_eas_inv_slots[i] - 1];

        if (e->hash == hash && e->zone == devices
            && e->user_len == u->user.len
            && e->device_id_len == u->device_id.len
            && ngx_memcmp(e->data, u->user.data, u->user.len) == 0
            && ngx_memcmp(e->data + e->user_len, u->device_id.data,
                          u->device_id.len) == 0)
        {
            goto queued;
        }
    }

    if (ngx_http_eas_inv_n == NGX_HTTP_EAS_INV_BATCH) {
        /* full: written now, the index starts again */
        ngx_http_eas_inv_flush(&ngx_http_eas_inv_flush_ev);
        i = hash & (NGX_HTTP_EAS_INV_SLOTS - 1);
    }

    e = &ngx_http_eas_inv_batch[ngx_http_eas_inv_n++];
    ngx_http_eas_inv_slots[i] = (uint16_t) ngx_http_eas_inv_n;

    e->zone = devices;
    e->hash = hash;
    e->user_len = (u_short) u->user.len;
    e->device_id_len = (u_char) u->device_id.len;
    e->max_devices = 0;
    e->done = 0;
    ngx_memcpy(e->data, u->user.data, u->user.len);
    ngx_memcpy(e->data + u->user.len, u->device_id.data, u->device_id.len);

queued:

    if (u->max_devices) {
        e->max_devices = (u_short) ngx_min(u->max_devices, 0xffff);
    }

    if (u->created && !ngx_http_eas_inv_flush_ev.posted) {
        ngx_post_event(&ngx_http_eas_inv_flush_ev, &ngx_posted_events);
        return;
    }

    if (!ngx_http_eas_inv_flush_ev.timer_set
        && !ngx_http_eas_inv_flush_ev.posted)
    {
        ngx_add_timer(&ngx_http_eas_inv_flush_ev, rcf->flush);
    }
}


/* the batch written now (ngx_http_eas_redis_inv_rewrite.c) */

void
ngx_http_eas_redis_inv_flush_now(void)
{
    if (ngx_http_eas_inv_n) {
        ngx_http_eas_inv_flush(&ngx_http_eas_inv_flush_ev);
    }
}


/* the worker starts to shut down gracefully: its batch is written now */

void
ngx_http_eas_redis_inv_exiting(void)
{
    if (ngx_http_eas_inv_n) {
        ngx_http_eas_inv_flush(&ngx_http_eas_inv_flush_ev);
    }
}


/* the batch written: one script per chunk of one zone, one pipeline */

static void
ngx_http_eas_inv_flush(ngx_event_t *ev)
{
    ngx_uint_t                  i;
    ngx_http_eas_redis_conf_t  *rcf;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (ev->posted) {
        ngx_delete_posted_event(ev);
    }

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf != NULL) {
        for (i = 0; i < ngx_http_eas_inv_n; i++) {
            if (!ngx_http_eas_inv_batch[i].done) {
                ngx_http_eas_inv_send(rcf, ngx_http_eas_inv_batch[i].zone, i);
            }
        }
    }

    ngx_http_eas_inv_n = 0;
    ngx_memzero(ngx_http_eas_inv_slots, sizeof(ngx_http_eas_inv_slots));
}


/* up to a chunk of the zone's records, from the batch's entry "from" */

static void
ngx_http_eas_inv_send(ngx_http_eas_redis_conf_t *rcf, ngx_shm_zone_t *zone,
    ngx_uint_t from)
{
    size_t                     len;
    time_t                     last_seen, life;
    ngx_str_t                  user, device_id;
    ngx_uint_t                 i, k, n, argc, counted, refused;
    ngx_http_eas_inv_entry_t  *e;
    ngx_http_eas_inv_chunk_t  *c;

    c = ngx_http_eas_inv_chunk;

    if (rcf->prefix.len + zone->shm.name.len + 64 > sizeof(c->header)) {
        return;
    }

    n = 0;
    argc = 9;

    for (i = from; i < ngx_http_eas_inv_n && n < NGX_HTTP_EAS_INV_CHUNK; i++)
    {
        e = &ngx_http_eas_inv_batch[i];

        if (e->done || e->zone != zone) {
            continue;
        }

        e->done = 1;

        len = ngx_http_eas_inv_read(zone, e, c->record[n], &counted,
                                    &refused, &last_seen);
        if (len == 0) {
            /* deleted, or evicted, since */
            continue;
        }

        user.data = e->data;
        user.len = e->user_len;
        device_id.data = e->data + e->user_len;
        device_id.len = e->device_id_len;

        c->argv[argc] = (char *) c->key[n];
        c->argvlen[argc] = ngx_http_eas_redis_inv_key(c->key[n], rcf, "i:",
                                                      zone, &user, &device_id)
                           - c->key[n];
        argc++;

        /* the index's score: when it was last seen (above: refused) */

        life = rcf->device_ttl;

        if (refused && life > NGX_HTTP_EAS_INV_REFUSED_TTL) {
            last_seen -= life - NGX_HTTP_EAS_INV_REFUSED_TTL;
            life = NGX_HTTP_EAS_INV_REFUSED_TTL;
        }

        c->argv[argc] = (char *) c->score[n];
        c->argvlen[argc] = ngx_sprintf(c->score[n], "%T", last_seen)
                           - c->score[n];
        argc++;

        c->argv[argc] = (char *) c->record[n];
        c->argvlen[argc] = len;
        argc++;

        /*
         * a device counted here keeps the user's set on Redis alive,
         * and asserts its place there
         */

        if (!counted || e->max_devices == 0) {
            c->argvlen[argc] = 0;
            c->argvlen[argc + 1] = 0;
            c->argvlen[argc + 2] = 0;

        } else {
            c->argvlen[argc] = ngx_http_eas_redis_inv_key(c->set[n], rcf,
                                                       "d:", zone, &user,
                                                       NULL)
                               - c->set[n];
            ngx_strlow(c->device[n], device_id.data, device_id.len);
            c->argvlen[argc + 1] = device_id.len;
            c->argvlen[argc + 2] = ngx_sprintf(c->max[n], "%ui",
                                               (ngx_uint_t) e->max_devices)
                                   - c->max[n];
        }

        c->argv[argc] = (char *) c->set[n];
        c->argv[argc + 1] = (char *) c->device[n];
        c->argv[argc + 2] = (char *) c->max[n];
        c->argv[argc + 3] = (char *) c->life[n];
        c->argvlen[argc + 3] = ngx_sprintf(c->life[n], "%T", life)
                               - c->life[n];
        argc += 4;

        n++;
    }

    if (n == 0) {
        return;
    }

    /* argv[0..2] by ngx_http_eas_redis_eval() */

    c->argv[3] = (char *) c->index;
    c->argvlen[3] = ngx_http_eas_redis_inv_key(c->index, rcf, "iz:", zone,
                                               NULL, NULL)
                    - c->index;
    c->argv[4] = (char *) c->deleted;
    c->argvlen[4] = ngx_http_eas_redis_inv_key(c->deleted, rcf, "ix:", zone,
                                               NULL, NULL)
                    - c->deleted;
    c->argv[5] = (char *) c->ttl;
    c->argvlen[5] = ngx_sprintf(c->ttl, "%T", rcf->device_ttl) - c->ttl;
    c->argv[6] = (char *) c->now;
    c->argvlen[6] = ngx_sprintf(c->now, "%T", ngx_time()) - c->now;

    /* ARGV[3], ARGV[4]: the channel, the message's header; then records */

    c->argv[7] = (char *) rcf->channel.data;
    c->argvlen[7] = rcf->channel.len;
    c->argv[8] = (char *) c->header;
    c->argvlen[8] = ngx_sprintf(c->header, "I %V 0 0 %uz 0 %V", &rcf->node,
                                zone->shm.name.len, &zone->shm.name)
                    - c->header;

    /* the answer's data: the zone's rank among the module's, and n */

    for (k = 0; ngx_http_eas_redis_zone_find(NULL, k, &ngx_http_eas_module)
                != zone;
         k++)
    {
        /* void */
    }

    if (ngx_http_eas_redis_eval(ngx_http_eas_inv_on_write,
                                (void *) (uintptr_t)
                                    (k << 8 | n
                                     | (ngx_exiting ? NGX_HTTP_EAS_INV_EXIT
                                                    : 0)),
                                ngx_http_eas_inv_write_lua,
                                sizeof(ngx_http_eas_inv_write_lua) - 1, 2,
                                (int) argc, c->argv, c->argvlen)
        != NGX_OK)
    {
        ngx_http_eas_redis_inv_count(NGX_HTTP_EAS_INV_DROPPED, n);
        return;
    }

    if (ngx_exiting) {
        /* the worker waits for the answer, "timeout" at most */
        ngx_http_eas_inv_exit_writes++;
        ngx_add_timer(&ngx_http_eas_inv_exit_ev, rcf->timeout);
    }
}


/* exiting: Redis did not answer the last writes in time, they are left */

static void
ngx_http_eas_inv_exit_wait(ngx_event_t *ev)
{
    ngx_http_eas_inv_exit_writes = 0;
}


static void
ngx_http_eas_inv_on_write(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply      *rr = reply;
    ngx_uint_t       n = (ngx_uint_t) (uintptr_t) data;

    size_t           i;
    ngx_shm_zone_t  *zone;

    if ((n & NGX_HTTP_EAS_INV_EXIT) && ngx_http_eas_inv_exit_writes
        && --ngx_http_eas_inv_exit_writes == 0
        && ngx_http_eas_inv_exit_ev.timer_set)
    {
        ngx_del_timer(&ngx_http_eas_inv_exit_ev);
    }

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements < 2
        || rr->element[0]->type != REDIS_REPLY_INTEGER
        || rr->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_http_eas_redis_inv_count(NGX_HTTP_EAS_INV_DROPPED, n & 0xff);
        return;
    }

    ngx_http_eas_redis_inv_count(NGX_HTTP_EAS_INV_WRITTEN, n & 0xff);

    zone = ngx_http_eas_redis_zone_find(NULL, (n >> 8) & 0xfff,
                                        &ngx_http_eas_module);

    if (zone == NULL) {
        return;
    }

    if (rr->element[1]->len) {
        ngx_http_eas_inv_deleted(zone, (u_char *) rr->element[1]->str,
                                 (u_char *) rr->element[1]->str
                                 + rr->element[1]->len);
    }

    for (i = 2; i + 1 < rr->elements; i += 2) {
        ngx_http_eas_redis_inv_lost(zone, rr->element[i], rr->element[i + 1]);
    }
}


/*
 * Records the write found deleted on Redis since they were seen here
 * ("LEN:KEY" after one another, the keys as ngx_http_eas_redis_inv_key()
 * made them): removed here too, one line an answer.
 */

static void
ngx_http_eas_inv_deleted(ngx_shm_zone_t *zone, u_char *p, u_char *last)
{
    size_t                      len, ulen, skip;
    u_char                     *key, *end;
    ngx_str_t                   user, device_id;
    ngx_uint_t                  n;
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL) {
        return;
    }

    n = 0;

    while (p < last) {
        key = ngx_http_eas_redis_inv_frame(p, last, &len);

        if (key == NULL) {
            ngx_http_eas_redis_inv_refused(1);
            break;
        }

        p = key + len;

        /* "<prefix>i:<zone>:" then "<user length>:<user>", the DeviceId */

        skip = rcf->prefix.len + 2 + zone->shm.name.len + 1;
        key = len > skip ? ngx_http_eas_redis_inv_frame(key + skip, p, &ulen)
                         : NULL;

        if (key == NULL || ulen > EAS_USER_MAX || key + ulen == p
            || (size_t) (p - key) - ulen > EAS_DEVICE_ID_MAX)
        {
            ngx_http_eas_redis_inv_refused(1);
            continue;
        }

        end = key + ulen;
        user.data = key;
        user.len = ulen;
        device_id.data = end;
        device_id.len = p - end;

        if (ngx_http_eas_device_delete(zone, &user, &device_id) == NGX_OK) {
            n++;
        }
    }

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "eas: shared state: %ui device records of zone \"%V\" "
                      "deleted on Redis after this gateway last saw them "
                      "removed here, not written back", n, &zone->shm.name);
    }
}


/* the record as it is in the zone now, as text; 0: none */

static size_t
ngx_http_eas_inv_read(ngx_shm_zone_t *zone, ngx_http_eas_inv_entry_t *e,
    u_char *record, ngx_uint_t *counted, ngx_uint_t *refused,
    time_t *last_seen)
{
    u_char                       *p, *s;
    ngx_str_t                     user, device_id, gateway;
    ngx_http_eas_devices_ctx_t   *ctx;
    ngx_http_eas_devices_node_t  *dn;

    ctx = zone->data;

    user.data = e->data;
    user.len = e->user_len;
    device_id.data = e->data + e->user_len;
    device_id.len = e->device_id_len;

    dn = ngx_http_eas_devices_lock_record(ctx, &user, &device_id);
    if (dn == NULL) {
        return 0;
    }

    *counted = dn->zn.mark;
    *last_seen = dn->last_seen;

    /* refused for eas_device_max, never admitted */

    s = dn->data + dn->zn.len + dn->user_len + dn->device_id_len
        + NGX_HTTP_EAS_DEVICE_TYPE_LEN + NGX_HTTP_EAS_DEVICE_UA_LEN;

    *refused = !dn->zn.mark
               && ngx_http_eas_redis_inv_refused_max(dn->access, s,
                                                     dn->reason_len);

    /* the gateway that saw it, "2 LEN:NAME " before the record */

    ngx_str_null(&gateway);

    if (dn->gateway == 0) {
        ngx_http_eas_redis_gateway(&gateway);

    } else if (dn->gateway <= ctx->sh->ngateways) {
        gateway.len = ctx->sh->gateways[dn->gateway - 1][0];
        gateway.data = ctx->sh->gateways[dn->gateway - 1] + 1;
    }

    p = record;

    if (gateway.len && gateway.len <= NGX_HTTP_EAS_DEVICE_GATEWAY_LEN) {
        p = ngx_sprintf(p, "2 %uz:%V ", gateway.len, &gateway);
    }

    p = ngx_sprintf(p, "1 %T %T %ui %ui %ui %ui %ui %ui %ui %ui %ui ",
                    dn->first_seen, dn->last_seen, dn->heartbeat,
                    (ngx_uint_t) dn->version, (ngx_uint_t) dn->command,
                    (ngx_uint_t) dn->access, (ngx_uint_t) dn->user_len,
                    (ngx_uint_t) dn->device_id_len,
                    (ngx_uint_t) dn->device_type_len,
                    (ngx_uint_t) dn->user_agent_len,
                    (ngx_uint_t) dn->reason_len);

    s = dn->data + dn->zn.len;
    p = ngx_cpymem(p, s, dn->user_len + dn->device_id_len);
    s += dn->user_len + dn->device_id_len;
    p = ngx_cpymem(p, s, dn->device_type_len);
    s += NGX_HTTP_EAS_DEVICE_TYPE_LEN;
    p = ngx_cpymem(p, s, dn->user_agent_len);
    s += NGX_HTTP_EAS_DEVICE_UA_LEN;
    p = ngx_cpymem(p, s, dn->reason_len);

    ngx_shmtx_unlock(&ctx->zone.shpool->mutex);

    return p - record;
}
