
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
 * The first worker of every other gateway imports the records into its
 * own zone, in the order last seen, never counted for eas_device_max
 * there (the user's set on Redis counts the places of every gateway),
 * so that listing a page stays a walk of the local zone.  When its
 * subscription is made (at start, after Redis came back), it reads the
 * index oldest first, NGX_HTTP_EAS_INV_CHUNK records a step, which also
 * brings what was announced while it was away.
 *
 * A record is one line of text:
 *
 *     1 FIRST LAST HEARTBEAT VERSION COMMAND ACCESS ULEN DLEN TLEN ALEN
 *       RLEN USER DEVICEID TYPE USERAGENT REASON
 *
 * and everything read back is checked before it is used: a record
 * that does not parse, with lengths over the zone's slots or times
 * in the future, is refused (counted, said once a minute).
 */


#define NGX_HTTP_EAS_INV_BATCH   256     /* devices a worker collects */
#define NGX_HTTP_EAS_INV_SLOTS   512     /* its index, a power of 2 */
#define NGX_HTTP_EAS_INV_CHUNK   32      /* records a script, a message */
#define NGX_HTTP_EAS_INV_NUMS    11

/* the longest record: numbers, the strings at their slots' length */
#define NGX_HTTP_EAS_INV_RECORD                                               \
    (2 + NGX_HTTP_EAS_INV_NUMS * (NGX_TIME_T_LEN + 1) + EAS_USER_MAX          \
     + EAS_DEVICE_ID_MAX + NGX_HTTP_EAS_DEVICE_TYPE_LEN                       \
     + NGX_HTTP_EAS_DEVICE_UA_LEN + NGX_HTTP_EAS_DEVICE_REASON_LEN)

/* "<prefix>i:<zone>:<n>:" and the key, or "<prefix>d:<zone>:<user>" */
#define NGX_HTTP_EAS_INV_KEY                                                  \
    (64 + 8 + 256 + 8 + EAS_USER_MAX + EAS_DEVICE_ID_MAX)


/* its counters, in the shared state's zone (ngx_http_eas_redis_counters) */
#define NGX_HTTP_EAS_INV_WRITTEN   0       /* records sent */
#define NGX_HTTP_EAS_INV_DROPPED   1       /* not sent: Redis down */
#define NGX_HTTP_EAS_INV_IMPORTED  2       /* from other gateways */
#define NGX_HTTP_EAS_INV_REFUSED   3       /* records not understood */


typedef struct {
    ngx_shm_zone_t              *zone;
    uint32_t                     hash;
    u_short                      user_len;
    u_char                       device_id_len;
    u_char                       done;
    u_char                       data[EAS_USER_MAX + EAS_DEVICE_ID_MAX];
} ngx_http_eas_inv_entry_t;


/* one chunk's arguments: 8 fixed, 4 a record */
typedef struct {
    const char                  *argv[8 + 4 * NGX_HTTP_EAS_INV_CHUNK];
    size_t                       argvlen[8 + 4 * NGX_HTTP_EAS_INV_CHUNK];
    u_char                       index[NGX_HTTP_EAS_INV_KEY];
    u_char                       header[128 + 256];
    u_char                       ttl[NGX_TIME_T_LEN];
    u_char                       now[NGX_TIME_T_LEN];
    u_char                       key[NGX_HTTP_EAS_INV_CHUNK]
                                    [NGX_HTTP_EAS_INV_KEY];
    u_char                       set[NGX_HTTP_EAS_INV_CHUNK]
                                    [NGX_HTTP_EAS_INV_KEY];
    u_char                       score[NGX_HTTP_EAS_INV_CHUNK]
                                      [NGX_TIME_T_LEN];
    u_char                       record[NGX_HTTP_EAS_INV_CHUNK]
                                       [NGX_HTTP_EAS_INV_RECORD];
} ngx_http_eas_inv_chunk_t;


typedef struct {
    time_t                       first_seen;
    time_t                       last_seen;
    ngx_uint_t                   n[NGX_HTTP_EAS_INV_NUMS];
    ngx_str_t                    user;
    ngx_str_t                    device_id;
    ngx_str_t                    device_type;
    ngx_str_t                    user_agent;
    ngx_str_t                    reason;
} ngx_http_eas_inv_record_t;


static ngx_int_t ngx_http_eas_inv_start(void);
static void ngx_http_eas_inv_flush(ngx_event_t *ev);
static void ngx_http_eas_inv_send(ngx_http_eas_redis_conf_t *rcf,
    ngx_shm_zone_t *zone, ngx_uint_t from);
static void ngx_http_eas_inv_on_write(redisAsyncContext *ac, void *reply,
    void *data);
static size_t ngx_http_eas_inv_read(ngx_shm_zone_t *zone,
    ngx_http_eas_inv_entry_t *e, u_char *record, ngx_uint_t *counted,
    time_t *last_seen);
static u_char *ngx_http_eas_inv_key(u_char *p, ngx_http_eas_redis_conf_t *rcf,
    const char *kind, ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id);
static void ngx_http_eas_inv_fill_step(ngx_event_t *ev);
static void ngx_http_eas_inv_on_fill(redisAsyncContext *ac, void *reply,
    void *data);
static ngx_int_t ngx_http_eas_inv_records(ngx_shm_zone_t *zone, u_char *p,
    u_char *last);
static ngx_int_t ngx_http_eas_inv_parse(u_char *p, u_char *last,
    ngx_http_eas_inv_record_t *rec);
static ngx_int_t ngx_http_eas_inv_import(ngx_shm_zone_t *zone,
    ngx_http_eas_inv_record_t *rec);
static void ngx_http_eas_inv_refused(ngx_uint_t n);
static void ngx_http_eas_inv_count(ngx_uint_t counter, ngx_uint_t n);


static const char  ngx_http_eas_inv_write_lua[] =
    "local ttl = tonumber(ARGV[1]) "
    "local out = {} "
    "for i = 5, #ARGV, 4 do "
    "  redis.call('SET', ARGV[i], ARGV[i + 2], 'EX', ttl) "
    "  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i]) "
    "  if ARGV[i + 3] ~= '' then "
    "    redis.call('EXPIRE', ARGV[i + 3], ttl) "
    "  end "
    "  out[#out + 1] = #ARGV[i + 2] .. ':' .. ARGV[i + 2] "
    "end "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', "
    "           '(' .. (tonumber(ARGV[2]) - ttl)) "
    "redis.call('EXPIRE', KEYS[1], ttl) "
    "redis.call('PUBLISH', ARGV[3], ARGV[4] .. table.concat(out)) "
    "return #out";


/*
 * One step of the fill: the records of ranks ARGV[1] on, ARGV[2] of
 * them; an index entry whose record is gone (expired, deleted, not a
 * string) leaves the index; a record longer than any the gateways
 * write (ARGV[3]) too, counted as refused.
 */

static const char  ngx_http_eas_inv_fill_lua[] =
    "local s = tonumber(ARGV[1]) "
    "local ks = redis.call('ZRANGE', KEYS[1], s, s + tonumber(ARGV[2]) - 1) "
    "local out, gone, long = {}, 0, 0 "
    "if #ks > 0 then "
    "  local vs = redis.call('MGET', unpack(ks)) "
    "  for i = 1, #ks do "
    "    local v = vs[i] "
    "    if v and #v > tonumber(ARGV[3]) then "
    "      long = long + 1 "
    "      v = false "
    "    end "
    "    if v then "
    "      out[#out + 1] = #v .. ':' .. v "
    "    else "
    "      redis.call('ZREM', KEYS[1], ks[i]) "
    "      gone = gone + 1 "
    "    end "
    "  end "
    "end "
    "return {s + #ks - gone, #ks, table.concat(out), long}";


static const char  ngx_http_eas_inv_delete_lua[] =
    "redis.call('DEL', KEYS[1]) "
    "redis.call('ZREM', KEYS[2], KEYS[1]) "
    "redis.call('PUBLISH', ARGV[1], ARGV[2]) "
    "return 1";


/* this worker's */

static ngx_atomic_t              *ngx_http_eas_inv_sh;
static ngx_http_eas_inv_entry_t  *ngx_http_eas_inv_batch;
static ngx_http_eas_inv_chunk_t  *ngx_http_eas_inv_chunk;
static ngx_uint_t                 ngx_http_eas_inv_n;
static uint16_t  ngx_http_eas_inv_slots[NGX_HTTP_EAS_INV_SLOTS];
static ngx_event_t                ngx_http_eas_inv_flush_ev;
static ngx_event_t                ngx_http_eas_inv_fill_ev;
static ngx_uint_t                 ngx_http_eas_inv_fill_zone;
static ngx_uint_t                 ngx_http_eas_inv_fill_next;
static ngx_uint_t                 ngx_http_eas_inv_fill_tries;
static ngx_uint_t                 ngx_http_eas_inv_fill_asked;
static ngx_uint_t                 ngx_http_eas_inv_fill_again;
static time_t                     ngx_http_eas_inv_refused_logged;

/* the timers' "data": nginx's debug log reads a descriptor from it */
static ngx_connection_t           ngx_http_eas_inv_dummy;


/* eas_shared_state's device_ttl=TIME and flush=TIME; NGX_DECLINED: not
 * ours, or not valid (the directive says so) */

ngx_int_t
ngx_http_eas_redis_inventory_param(ngx_http_eas_redis_conf_t *rcf,
    ngx_str_t *v)
{
    time_t     t;
    ngx_int_t  n;
    ngx_str_t  s;

    if (v->len > 11 && ngx_strncmp(v->data, "device_ttl=", 11) == 0) {
        s.data = v->data + 11;
        s.len = v->len - 11;

        t = ngx_parse_time(&s, 1);
        if (t == (time_t) NGX_ERROR || t < 60) {
            return NGX_DECLINED;
        }

        rcf->device_ttl = t;
        return NGX_OK;
    }

    if (v->len > 6 && ngx_strncmp(v->data, "flush=", 6) == 0) {
        s.data = v->data + 6;
        s.len = v->len - 6;

        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n < 10 || n > 60000) {
            return NGX_DECLINED;
        }

        rcf->flush = (ngx_msec_t) n;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* this worker's batch, made at its first use */

static ngx_int_t
ngx_http_eas_inv_start(void)
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

    ngx_http_eas_inv_sh = ngx_http_eas_redis_counters();

    ngx_http_eas_inv_dummy.fd = (ngx_socket_t) -1;

    ngx_http_eas_inv_flush_ev.data = &ngx_http_eas_inv_dummy;
    ngx_http_eas_inv_flush_ev.handler = ngx_http_eas_inv_flush;
    ngx_http_eas_inv_flush_ev.log = ngx_cycle->log;
    ngx_http_eas_inv_flush_ev.cancelable = 1;

    ngx_http_eas_inv_fill_ev.data = &ngx_http_eas_inv_dummy;
    ngx_http_eas_inv_fill_ev.handler = ngx_http_eas_inv_fill_step;
    ngx_http_eas_inv_fill_ev.log = ngx_cycle->log;
    ngx_http_eas_inv_fill_ev.cancelable = 1;

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
        || ngx_http_eas_inv_start() != NGX_OK)
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
    e->done = 0;
    ngx_memcpy(e->data, u->user.data, u->user.len);
    ngx_memcpy(e->data + u->user.len, u->device_id.data, u->device_id.len);

queued:

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
    time_t                     last_seen;
    ngx_str_t                  user, device_id;
    ngx_uint_t                 i, n, argc, counted;
    ngx_http_eas_inv_entry_t  *e;
    ngx_http_eas_inv_chunk_t  *c;

    c = ngx_http_eas_inv_chunk;

    if (rcf->prefix.len + zone->shm.name.len + 64 > sizeof(c->header)) {
        return;
    }

    n = 0;
    argc = 8;

    for (i = from; i < ngx_http_eas_inv_n && n < NGX_HTTP_EAS_INV_CHUNK; i++)
    {
        e = &ngx_http_eas_inv_batch[i];

        if (e->done || e->zone != zone) {
            continue;
        }

        e->done = 1;

        len = ngx_http_eas_inv_read(zone, e, c->record[n], &counted,
                                    &last_seen);
        if (len == 0) {
            /* deleted, or evicted, since */
            continue;
        }

        user.data = e->data;
        user.len = e->user_len;
        device_id.data = e->data + e->user_len;
        device_id.len = e->device_id_len;

        c->argv[argc] = (char *) c->key[n];
        c->argvlen[argc] = ngx_http_eas_inv_key(c->key[n], rcf, "i:", zone,
                                                &user, &device_id)
                           - c->key[n];
        argc++;

        /* the index's score: when it was last seen */
        c->argv[argc] = (char *) c->score[n];
        c->argvlen[argc] = ngx_sprintf(c->score[n], "%T", last_seen)
                           - c->score[n];
        argc++;

        c->argv[argc] = (char *) c->record[n];
        c->argvlen[argc] = len;
        argc++;

        /* a device counted here keeps the user's set on Redis alive */

        c->argv[argc] = (char *) c->set[n];
        c->argvlen[argc] = counted
                           ? (size_t) (ngx_http_eas_inv_key(c->set[n], rcf,
                                                            "d:", zone, &user,
                                                            NULL)
                                       - c->set[n])
                           : 0;
        argc++;

        n++;
    }

    if (n == 0) {
        return;
    }

    c->argv[0] = "EVAL";
    c->argvlen[0] = 4;
    c->argv[1] = ngx_http_eas_inv_write_lua;
    c->argvlen[1] = sizeof(ngx_http_eas_inv_write_lua) - 1;
    c->argv[2] = "1";
    c->argvlen[2] = 1;
    c->argv[3] = (char *) c->index;
    c->argvlen[3] = ngx_http_eas_inv_key(c->index, rcf, "iz:", zone, NULL,
                                         NULL)
                    - c->index;
    c->argv[4] = (char *) c->ttl;
    c->argvlen[4] = ngx_sprintf(c->ttl, "%T", rcf->device_ttl) - c->ttl;
    c->argv[5] = (char *) c->now;
    c->argvlen[5] = ngx_sprintf(c->now, "%T", ngx_time()) - c->now;

    /* ARGV[3], ARGV[4]: the channel, the message's header; then records */

    c->argv[6] = (char *) rcf->channel.data;
    c->argvlen[6] = rcf->channel.len;
    c->argv[7] = (char *) c->header;
    c->argvlen[7] = ngx_sprintf(c->header, "I %V 0 0 %uz 0 %V", &rcf->node,
                                zone->shm.name.len, &zone->shm.name)
                    - c->header;

    if (ngx_http_eas_redis_command(ngx_http_eas_inv_on_write,
                                   (void *) (uintptr_t) n, (int) argc,
                                   c->argv, c->argvlen)
        != NGX_OK)
    {
        ngx_http_eas_inv_count(NGX_HTTP_EAS_INV_DROPPED, n);
    }
}


static void
ngx_http_eas_inv_on_write(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply  *rr = reply;
    ngx_uint_t   n = (ngx_uint_t) (uintptr_t) data;

    if (rr && rr->type == REDIS_REPLY_INTEGER) {
        ngx_http_eas_inv_count(NGX_HTTP_EAS_INV_WRITTEN, n);
        return;
    }

    ngx_http_eas_inv_count(NGX_HTTP_EAS_INV_DROPPED, n);
}


/* the record as it is in the zone now, as text; 0: none */

static size_t
ngx_http_eas_inv_read(ngx_shm_zone_t *zone, ngx_http_eas_inv_entry_t *e,
    u_char *record, ngx_uint_t *counted, time_t *last_seen)
{
    u_char                       *p, *s;
    ngx_str_t                     user, device_id;
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

    p = ngx_sprintf(record, "1 %T %T %ui %ui %ui %ui %ui %ui %ui %ui %ui ",
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


/* "<prefix><kind><zone>", then ":<user>" or ":<n>:<user><DeviceId>" */

static u_char *
ngx_http_eas_inv_key(u_char *p, ngx_http_eas_redis_conf_t *rcf,
    const char *kind, ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *device_id)
{
    p = ngx_cpymem(p, rcf->prefix.data, rcf->prefix.len);
    p = ngx_cpymem(p, kind, ngx_strlen(kind));
    p = ngx_cpymem(p, zone->shm.name.data, zone->shm.name.len);

    if (user == NULL) {
        return p;
    }

    *p++ = ':';

    if (device_id) {
        p = ngx_sprintf(p, "%uz:", user->len);
    }

    ngx_strlow(p, user->data, user->len);
    p += user->len;

    if (device_id) {
        ngx_strlow(p, device_id->data, device_id->len);
        p += device_id->len;
    }

    return p;
}


/*
 * The admin API deleted a device (ngx_http_eas_redis_device_delete()):
 * its record goes from Redis, and from every gateway's zone.
 */

void
ngx_http_eas_redis_inventory_delete(ngx_shm_zone_t *devices,
    ngx_str_t *user, ngx_str_t *device_id)
{
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      key[NGX_HTTP_EAS_INV_KEY];
    u_char                      index[NGX_HTTP_EAS_INV_KEY];
    u_char                      m[NGX_HTTP_EAS_INV_KEY + 128];
    const char                 *argv[7];
    size_t                      argvlen[7];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || devices == NULL || user->len > EAS_USER_MAX
        || device_id->len == 0 || device_id->len > EAS_DEVICE_ID_MAX
        || rcf->prefix.len + devices->shm.name.len > 300)
    {
        return;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_eas_inv_delete_lua;
    argvlen[1] = sizeof(ngx_http_eas_inv_delete_lua) - 1;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) key;
    argvlen[3] = ngx_http_eas_inv_key(key, rcf, "i:", devices, user,
                                      device_id)
                 - key;
    argv[4] = (char *) index;
    argvlen[4] = ngx_http_eas_inv_key(index, rcf, "iz:", devices, NULL, NULL)
                 - index;
    argv[5] = (char *) rcf->channel.data;
    argvlen[5] = rcf->channel.len;
    argv[6] = (char *) m;
    argvlen[6] = ngx_sprintf(m, "D %V 0 0 %uz %uz %V%V%V", &rcf->node,
                             devices->shm.name.len, user->len,
                             &devices->shm.name, user, device_id)
                 - m;

    (void) ngx_http_eas_redis_command(NULL, NULL, 7, argv, argvlen);
}


/*
 * A message of another gateway about its inventory: only the first
 * worker of a gateway writes it into the zone, every worker shares it.
 */

void
ngx_http_eas_redis_inventory_event(char type, ngx_str_t *zname,
    ngx_str_t *s2, ngx_str_t *s3)
{
    ngx_shm_zone_t  *zone;

    if (ngx_worker != 0 || ngx_http_eas_inv_start() != NGX_OK) {
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
            ngx_http_eas_inv_refused(1);
            return;
        }

        (void) ngx_http_eas_device_delete(zone, s2, s3);
        return;
    }

    if (s2->len != 0
        || ngx_http_eas_inv_records(zone, s3->data, s3->data + s3->len)
           != NGX_OK)
    {
        ngx_http_eas_inv_refused(1);
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
    if (ngx_worker != 0 || ngx_http_eas_inv_start() != NGX_OK) {
        return;
    }

    ngx_http_eas_inv_fill_zone = 0;
    ngx_http_eas_inv_fill_next = 0;
    ngx_http_eas_inv_fill_tries = 0;

    if (ngx_http_eas_inv_fill_asked) {
        /* a step is under way: its answer goes on from the start */
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
    u_char                      start[NGX_INT_T_LEN], count[NGX_INT_T_LEN];
    u_char                      max[NGX_INT_T_LEN];
    const char                 *argv[7];
    size_t                      argvlen[7];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || ngx_exiting || ngx_terminate) {
        return;
    }

    zone = ngx_http_eas_redis_zone_find(NULL, ngx_http_eas_inv_fill_zone,
                                        &ngx_http_eas_module);

    if (zone == NULL || rcf->prefix.len + zone->shm.name.len > 300) {
        return;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_eas_inv_fill_lua;
    argvlen[1] = sizeof(ngx_http_eas_inv_fill_lua) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) index;
    argvlen[3] = ngx_http_eas_inv_key(index, rcf, "iz:", zone, NULL, NULL)
                 - index;
    argv[4] = (char *) start;
    argvlen[4] = ngx_sprintf(start, "%ui", ngx_http_eas_inv_fill_next)
                 - start;
    argv[5] = (char *) count;
    argvlen[5] = ngx_sprintf(count, "%ui", (ngx_uint_t)
                                           NGX_HTTP_EAS_INV_CHUNK)
                 - count;
    argv[6] = (char *) max;
    argvlen[6] = ngx_sprintf(max, "%uz", (size_t) NGX_HTTP_EAS_INV_RECORD)
                 - max;

    if (ngx_http_eas_redis_command(ngx_http_eas_inv_on_fill, NULL, 7, argv,
                                   argvlen)
        == NGX_OK)
    {
        ngx_http_eas_inv_fill_asked = 1;
        return;
    }

    /* the command connection is not up yet: a little later, a few times */

    if (++ngx_http_eas_inv_fill_tries < 50) {
        ngx_add_timer(ev, 200);
    }
}


static void
ngx_http_eas_inv_on_fill(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply      *rr = reply;
    ngx_uint_t       restarted;
    ngx_shm_zone_t  *zone;

    ngx_http_eas_inv_fill_asked = 0;

    /* a new subscription while the step was asked: from the start */
    restarted = ngx_http_eas_inv_fill_again;
    ngx_http_eas_inv_fill_again = 0;
    ngx_http_eas_inv_fill_tries = 0;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 4
        || rr->element[0]->type != REDIS_REPLY_INTEGER
        || rr->element[1]->type != REDIS_REPLY_INTEGER
        || rr->element[2]->type != REDIS_REPLY_STRING
        || rr->element[3]->type != REDIS_REPLY_INTEGER
        || rr->element[0]->integer < 0 || rr->element[3]->integer < 0)
    {
        if (rr) {
            ngx_http_eas_inv_refused(1);
            return;
        }

        /*
         * the command connection went away: the step is asked again a
         * little later (from the beginning after a new subscription)
         */

        if (!ngx_exiting && !ngx_terminate
            && ngx_http_eas_redis_get_conf() != NULL
            && ++ngx_http_eas_inv_fill_tries < 50)
        {
            ngx_add_timer(&ngx_http_eas_inv_fill_ev, 200);
        }

        return;
    }

    zone = ngx_http_eas_redis_zone_find(NULL, ngx_http_eas_inv_fill_zone,
                                        &ngx_http_eas_module);

    if (zone && !restarted) {
        if (ngx_http_eas_inv_records(zone, (u_char *) rr->element[2]->str,
                                     (u_char *) rr->element[2]->str
                                     + rr->element[2]->len)
            != NGX_OK)
        {
            ngx_http_eas_inv_refused(1);
        }

        if (rr->element[3]->integer) {
            ngx_http_eas_inv_refused((ngx_uint_t) rr->element[3]->integer);
        }

        if (rr->element[1]->integer < NGX_HTTP_EAS_INV_CHUNK) {
            ngx_http_eas_inv_fill_zone++;
            ngx_http_eas_inv_fill_next = 0;

        } else {
            ngx_http_eas_inv_fill_next = (ngx_uint_t) rr->element[0]->integer;
        }
    }

    ngx_http_eas_inv_fill_step(&ngx_http_eas_inv_fill_ev);
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
    ngx_uint_t                 digits;
    ngx_http_eas_inv_record_t  rec;

    while (p < last) {
        len = 0;
        digits = 0;

        while (p < last && *p >= '0' && *p <= '9' && digits++ < 9) {
            len = len * 10 + (*p++ - '0');
        }

        if (digits == 0 || p == last || *p++ != ':'
            || (size_t) (last - p) < len)
        {
            return NGX_ERROR;
        }

        if (len == 0 || len > NGX_HTTP_EAS_INV_RECORD
            || ngx_http_eas_inv_parse(p, p + len, &rec) != NGX_OK)
        {
            ngx_http_eas_inv_refused(1);

        } else if (ngx_http_eas_inv_import(zone, &rec) == NGX_OK) {
            ngx_http_eas_inv_count(NGX_HTTP_EAS_INV_IMPORTED, 1);
        }

        p += len;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_inv_parse(u_char *p, u_char *last,
    ngx_http_eas_inv_record_t *rec)
{
    ngx_uint_t   i, *n;
    static const ngx_uint_t  max[NGX_HTTP_EAS_INV_NUMS] = {
        0x7fffffff, 0x7fffffff, 86400, 999, EAS_CMD_NONE, 2,
        EAS_USER_MAX, EAS_DEVICE_ID_MAX, NGX_HTTP_EAS_DEVICE_TYPE_LEN,
        NGX_HTTP_EAS_DEVICE_UA_LEN, NGX_HTTP_EAS_DEVICE_REASON_LEN
    };

    if (last - p < 2 || p[0] != '1' || p[1] != ' ') {
        return NGX_ERROR;
    }

    p += 2;
    n = rec->n;

    for (i = 0; i < NGX_HTTP_EAS_INV_NUMS; i++) {
        if (p == last || *p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        n[i] = 0;

        while (p < last && *p >= '0' && *p <= '9') {
            n[i] = n[i] * 10 + (*p++ - '0');

            if (n[i] > max[i]) {
                return NGX_ERROR;
            }
        }

        if (p == last || *p++ != ' ') {
            return NGX_ERROR;
        }
    }

    rec->first_seen = (time_t) n[0];
    rec->last_seen = (time_t) n[1];

    /* a time to come would stay first of every listing */

    if (rec->first_seen == 0 || rec->first_seen > rec->last_seen
        || rec->last_seen > ngx_time() + 300
        || n[7] == 0
        || (size_t) (last - p) != n[6] + n[7] + n[8] + n[9] + n[10])
    {
        return NGX_ERROR;
    }

    rec->user.data = p;
    rec->user.len = n[6];
    rec->device_id.data = p + n[6];
    rec->device_id.len = n[7];
    rec->device_type.data = rec->device_id.data + n[7];
    rec->device_type.len = n[8];
    rec->user_agent.data = rec->device_type.data + n[8];
    rec->user_agent.len = n[9];
    rec->reason.data = rec->user_agent.data + n[9];
    rec->reason.len = n[10];

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

        if (rec->last_seen < dn->last_seen) {
            /* this gateway saw it since */
            ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
            return NGX_DECLINED;
        }

    } else {
        ngx_memzero(&u, sizeof(ngx_http_eas_device_update_t));
        u.user = rec->user;
        u.device_id = rec->device_id;

        dn = ngx_http_eas_devices_create(ctx, &key, &u);

        if (dn == NULL) {
            /* full of records counted here: they stay */
            ngx_shmtx_unlock(&ctx->zone.shpool->mutex);
            return NGX_DECLINED;
        }

        dn->first_seen = rec->first_seen;
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


static void
ngx_http_eas_inv_count(ngx_uint_t counter, ngx_uint_t n)
{
    if (ngx_http_eas_inv_sh) {
        (void) ngx_atomic_fetch_add(&ngx_http_eas_inv_sh[counter], n);
    }
}


static void
ngx_http_eas_inv_refused(ngx_uint_t n)
{
    ngx_http_eas_redis_conf_t  *rcf;

    ngx_http_eas_inv_count(NGX_HTTP_EAS_INV_REFUSED, n);

    if (ngx_time() - ngx_http_eas_inv_refused_logged < 60) {
        return;
    }

    ngx_http_eas_inv_refused_logged = ngx_time();
    rcf = ngx_http_eas_redis_get_conf();

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "eas: shared state \"%V\": a device record not "
                  "understood, refused (said once a minute)", &rcf->url);
}


/* its part of eas_status */

u_char *
ngx_http_eas_redis_inventory_status(u_char *p, ngx_uint_t prometheus)
{
    ngx_atomic_t  *sh;

    sh = ngx_http_eas_redis_counters();

    if (sh == NULL) {
        return p;
    }

    if (!prometheus) {
        return ngx_sprintf(p, "\"shared_inventory\":{\"written\":%uA,"
                           "\"dropped\":%uA,\"imported\":%uA,"
                           "\"refused\":%uA},\n",
                           sh[NGX_HTTP_EAS_INV_WRITTEN],
                           sh[NGX_HTTP_EAS_INV_DROPPED],
                           sh[NGX_HTTP_EAS_INV_IMPORTED],
                           sh[NGX_HTTP_EAS_INV_REFUSED]);
    }

    return ngx_sprintf(p,
        "# HELP nginx_eas_shared_inventory_written_total Device records "
        "written to Redis, batched.\n"
        "# TYPE nginx_eas_shared_inventory_written_total counter\n"
        "nginx_eas_shared_inventory_written_total %uA\n"
        "# HELP nginx_eas_shared_inventory_dropped_total Device records "
        "not written: Redis down or refusing.\n"
        "# TYPE nginx_eas_shared_inventory_dropped_total counter\n"
        "nginx_eas_shared_inventory_dropped_total %uA\n"
        "# HELP nginx_eas_shared_inventory_imported_total Device records "
        "of other gateways taken into the zones.\n"
        "# TYPE nginx_eas_shared_inventory_imported_total counter\n"
        "nginx_eas_shared_inventory_imported_total %uA\n"
        "# HELP nginx_eas_shared_inventory_refused_total Device records "
        "from Redis not understood.\n"
        "# TYPE nginx_eas_shared_inventory_refused_total counter\n"
        "nginx_eas_shared_inventory_refused_total %uA\n",
        sh[NGX_HTTP_EAS_INV_WRITTEN], sh[NGX_HTTP_EAS_INV_DROPPED],
        sh[NGX_HTTP_EAS_INV_IMPORTED], sh[NGX_HTTP_EAS_INV_REFUSED]);
}
