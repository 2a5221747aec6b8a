
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
 * A device deleted through the admin API, on Redis (docs/scale-out.md):
 * its record, its index entry and its place in the user's set go in
 * one script, which announces the deletion to the other gateways.
 *
 * Each deletion is kept by the worker that made it until Redis answered
 * it: one made while Redis is down, or whose answer the connection did
 * not bring, waits in this worker's queue of NGX_HTTP_EAS_INV_PENDING
 * and is sent again when the worker's connection is set up again
 * (ngx_http_eas_redis_inv_replay()), before the records it writes
 * afterwards.  Full while Redis is down, the admin API refuses the
 * deletion (503) rather than make one the other gateways never hear.
 *
 * A worker that exits while Redis is down loses the deletions it keeps,
 * and says how many (the other gateways keep those devices until they
 * are deleted again, or idle for device_ttl).
 *
 * Sent again, the deletion keeps a record that was seen after it was
 * made (the device came back through another gateway meanwhile): the
 * script compares the record's last seen time with the deletion's.
 * The other gateways were away from Redis too, and may subscribe again
 * after it announced the deletion: once answered, a deletion sent again
 * is sent NGX_HTTP_EAS_INV_ECHOES times more, 1, 4 and 16 seconds after
 * the previous answer, each time with the same comparison.
 */


#define NGX_HTTP_EAS_INV_PENDING  256
#define NGX_HTTP_EAS_INV_ECHOES   3


typedef struct {
    ngx_shm_zone_t              *zone;
    time_t                       at;           /* deleted, here */
    ngx_uint_t                   id;           /* 0: a free entry */
    u_short                      user_len;
    u_char                       device_id_len;
    u_char                       sent;         /* the answer awaited */
    u_char                       answered;     /* once at least */
    u_char                       echoes;       /* sendings left */
    ngx_msec_t                   due;          /* of the next one */
    u_char                       data[EAS_USER_MAX + EAS_DEVICE_ID_MAX];
} ngx_http_eas_inv_pending_t;


static ngx_int_t ngx_http_eas_inv_delete_send(ngx_http_eas_inv_pending_t *d,
    time_t at);
static void ngx_http_eas_inv_on_delete(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_eas_inv_echo(ngx_event_t *ev);


/*
 * KEYS: the record, the index, the user's set, the zone's set of
 * deletions; ARGV: the channel, the message, the DeviceId (lower case),
 * the time the deletion was made if it is sent again (0: now, whatever
 * the record says), the time it was made, how long it is remembered.  A
 * record's last seen time is its third field, after the version and
 * past the name of its gateway (ngx_http_eas_redis_inventory.c).
 *
 * A deletion is remembered in the zone's set of deletions, scored by
 * its time, so that a write of the record seen before it, landing after
 * it, does not bring it back (ngx_http_eas_redis_inventory.c): every
 * such write lands within "flush" and "timeout" of the request.  It is
 * kept twice that, NGX_HTTP_EAS_INV_DELETED_TTL at least.  Entries past
 * it leave the set 64 at a deletion; the set goes with the last of them.
 * The time it is scored by is never later than Redis's own clock, and
 * the set is trimmed by that clock: a deleting gateway whose clock runs
 * ahead would else keep the device's later writes out (and the device
 * out of every listing) for as long as its clock is ahead.
 */

#define NGX_HTTP_EAS_INV_DELETED_TTL  600

static const char  ngx_http_eas_inv_delete_lua[] =
    "if redis.replicate_commands then redis.replicate_commands() end "
    "local now = tonumber(redis.call('TIME')[1]) "
    "local made = math.min(tonumber(ARGV[5]), now) "
    "local at = tonumber(ARGV[4]) "
    "if at > 0 and redis.call('TYPE', KEYS[1]).ok == 'string' then "
    "  local v = redis.call('GET', KEYS[1]) "
    "  local g = string.match(v, '^2 (%d+):') "
    "  if g then "
    "    v = string.sub(v, #g + tonumber(g) + 5) "
    "  end "
    "  local seen = tonumber(string.match(v, '^1 %d+ (%d+) ')) "
    "  if seen and seen > at then "
    "    return 0 "
    "  end "
    "end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('ZREM', KEYS[2], KEYS[1]) "
    "redis.call('SREM', KEYS[3], ARGV[3]) "
    "redis.call('ZADD', KEYS[4], made, KEYS[1]) "
    "local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', "
    "                       '(' .. (now - tonumber(ARGV[6])), "
    "                       'LIMIT', 0, 64) "
    "if #old > 0 then "
    "  redis.call('ZREM', KEYS[4], unpack(old)) "
    "end "
    "redis.call('EXPIRE', KEYS[4], ARGV[6]) "
    "redis.call('PUBLISH', ARGV[1], ARGV[2]) "
    "return 1";


/* this worker's */

static ngx_http_eas_inv_pending_t  *ngx_http_eas_inv_pending;
static ngx_uint_t                   ngx_http_eas_inv_pending_n;
static ngx_uint_t                   ngx_http_eas_inv_pending_id;
static time_t                       ngx_http_eas_inv_full_logged;
static ngx_event_t                  ngx_http_eas_inv_echo_ev;
static ngx_connection_t             ngx_http_eas_inv_echo_dummy;


/*
 * The admin API deleted a device (ngx_http_eas_redis_device_delete()):
 * NGX_OK sent to Redis, NGX_AGAIN kept for when Redis is back, NGX_BUSY
 * Redis is down and the queue full (the caller refuses the deletion),
 * NGX_DECLINED no shared state (or a name Redis cannot be given).
 */

ngx_int_t
ngx_http_eas_redis_inventory_delete(ngx_shm_zone_t *devices,
    ngx_str_t *user, ngx_str_t *device_id)
{
    ngx_uint_t                   i;
    ngx_http_eas_redis_conf_t   *rcf;
    ngx_http_eas_inv_pending_t  *d, one;

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || devices == NULL || user->len > EAS_USER_MAX
        || device_id->len == 0 || device_id->len > EAS_DEVICE_ID_MAX
        || rcf->prefix.len + devices->shm.name.len > 300)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_eas_inv_pending == NULL) {
        ngx_http_eas_inv_pending = ngx_calloc(NGX_HTTP_EAS_INV_PENDING
                                              * sizeof(
                                                  ngx_http_eas_inv_pending_t),
                                              ngx_cycle->log);
    }

    d = NULL;

    if (ngx_http_eas_inv_pending
        && ngx_http_eas_inv_pending_n < NGX_HTTP_EAS_INV_PENDING)
    {
        for (i = 0; ngx_http_eas_inv_pending[i].id; i++) {
            /* void */
        }

        d = &ngx_http_eas_inv_pending[i];
        d->id = ++ngx_http_eas_inv_pending_id;
        ngx_http_eas_inv_pending_n++;

    } else {
        /* sent untracked if Redis is up, refused otherwise */
        d = &one;
        d->id = 0;
    }

    d->zone = devices;
    d->at = ngx_time();
    d->user_len = (u_short) user->len;
    d->device_id_len = (u_char) device_id->len;
    d->sent = 0;
    d->answered = 0;
    d->echoes = 0;
    ngx_memcpy(d->data, user->data, user->len);
    ngx_memcpy(d->data + user->len, device_id->data, device_id->len);

    if (ngx_http_eas_inv_delete_send(d, 0) == NGX_OK) {
        return NGX_OK;
    }

    if (d->id) {
        return NGX_AGAIN;
    }

    if (ngx_time() - ngx_http_eas_inv_full_logged >= 60) {
        ngx_http_eas_inv_full_logged = ngx_time();

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state \"%V\" is down and this worker "
                      "keeps %ui device deletions for it already: "
                      "deletions refused until it is back (said once a "
                      "minute)", &rcf->url,
                      (ngx_uint_t) NGX_HTTP_EAS_INV_PENDING);
    }

    return NGX_BUSY;
}


/* how many deletions this worker can make now, up to n */

ngx_uint_t
ngx_http_eas_redis_inv_room(ngx_uint_t n)
{
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || ngx_http_eas_redis_ready()) {
        return n;
    }

    return ngx_min(n, NGX_HTTP_EAS_INV_PENDING - ngx_http_eas_inv_pending_n);
}


/*
 * This worker's connection is set up again: the deletions it keeps are
 * sent, each kept until Redis answered it.
 */

void
ngx_http_eas_redis_inv_replay(void)
{
    ngx_uint_t                   i, n;
    ngx_http_eas_inv_pending_t  *d;

    if (ngx_http_eas_inv_pending_n == 0) {
        return;
    }

    n = 0;

    for (i = 0; i < NGX_HTTP_EAS_INV_PENDING; i++) {
        d = &ngx_http_eas_inv_pending[i];

        if (d->id && !d->sent
            && ngx_http_eas_inv_delete_send(d, d->at) == NGX_OK)
        {
            d->echoes = NGX_HTTP_EAS_INV_ECHOES;
            n++;
        }
    }

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "eas: shared state: %ui device deletions made while "
                      "it was away sent to it", n);
    }
}


static ngx_int_t
ngx_http_eas_inv_delete_send(ngx_http_eas_inv_pending_t *d, time_t at)
{
    ngx_str_t                   user, device_id;
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      key[NGX_HTTP_EAS_INV_KEY];
    u_char                      index[NGX_HTTP_EAS_INV_KEY];
    u_char                      set[NGX_HTTP_EAS_INV_KEY];
    u_char                      deleted[NGX_HTTP_EAS_INV_KEY];
    u_char                      dev[EAS_DEVICE_ID_MAX];
    u_char                      m[NGX_HTTP_EAS_INV_KEY + 128];
    u_char                      t[NGX_TIME_T_LEN], made[NGX_TIME_T_LEN];
    u_char                      ttl[NGX_TIME_T_LEN];
    const char                 *argv[13];
    size_t                      argvlen[13];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || !ngx_http_eas_redis_ready()) {
        return NGX_DECLINED;
    }

    user.data = d->data;
    user.len = d->user_len;
    device_id.data = d->data + d->user_len;
    device_id.len = d->device_id_len;

    argv[3] = (char *) key;
    argvlen[3] = ngx_http_eas_redis_inv_key(key, rcf, "i:", d->zone, &user,
                                            &device_id)
                 - key;
    argv[4] = (char *) index;
    argvlen[4] = ngx_http_eas_redis_inv_key(index, rcf, "iz:", d->zone, NULL,
                                            NULL)
                 - index;
    argv[5] = (char *) set;
    argvlen[5] = ngx_http_eas_redis_inv_key(set, rcf, "d:", d->zone, &user,
                                            NULL)
                 - set;
    argv[6] = (char *) deleted;
    argvlen[6] = ngx_http_eas_redis_inv_key(deleted, rcf, "ix:", d->zone,
                                            NULL, NULL)
                 - deleted;
    argv[7] = (char *) rcf->channel.data;
    argvlen[7] = rcf->channel.len;
    argv[8] = (char *) m;
    argvlen[8] = ngx_sprintf(m, "D %V 0 0 %uz %uz %V%V%V", &rcf->node,
                             d->zone->shm.name.len, user.len,
                             &d->zone->shm.name, &user, &device_id)
                 - m;
    ngx_strlow(dev, device_id.data, device_id.len);
    argv[9] = (char *) dev;
    argvlen[9] = device_id.len;
    argv[10] = (char *) t;
    argvlen[10] = ngx_sprintf(t, "%T", at) - t;
    argv[11] = (char *) made;
    argvlen[11] = ngx_sprintf(made, "%T", d->at) - made;
    argv[12] = (char *) ttl;
    argvlen[12] = ngx_sprintf(ttl, "%T",
                              ngx_max((time_t) NGX_HTTP_EAS_INV_DELETED_TTL,
                                      (time_t) ((rcf->flush + rcf->timeout)
                                                / 500)))
                  - ttl;

    if (ngx_http_eas_redis_eval(d->id ? ngx_http_eas_inv_on_delete : NULL,
                                (void *) (uintptr_t) d->id,
                                ngx_http_eas_inv_delete_lua,
                                sizeof(ngx_http_eas_inv_delete_lua) - 1, 4,
                                13, argv, argvlen)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    d->sent = 1;

    return NGX_OK;
}


/* Redis answered a deletion: it leaves the queue; no answer, it stays */

static void
ngx_http_eas_inv_on_delete(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply  *rr = reply;
    ngx_uint_t   id = (ngx_uint_t) (uintptr_t) data;

    ngx_str_t                    user, device_id;
    ngx_uint_t                   i;
    ngx_http_eas_inv_pending_t  *d;

    for (i = 0; i < NGX_HTTP_EAS_INV_PENDING; i++) {
        d = &ngx_http_eas_inv_pending[i];

        if (d->id != id) {
            continue;
        }

        d->sent = 0;

        if (rr == NULL || rr->type != REDIS_REPLY_INTEGER) {
            /* sent again when the connection is set up again */
            return;
        }

        if (!d->answered && rr->integer == 1) {
            /*
             * deleted on Redis: and here again, as a fill of this
             * gateway may have read the record back from Redis before
             * the deletion was made there (this gateway does not hear
             * its own message on the channel)
             */

            user.data = d->data;
            user.len = d->user_len;
            device_id.data = d->data + d->user_len;
            device_id.len = d->device_id_len;

            (void) ngx_http_eas_device_delete(d->zone, &user, &device_id);
        }

        d->answered = 1;

        if (d->echoes == 0) {
            d->id = 0;
            ngx_http_eas_inv_pending_n--;
            return;
        }

        /* 1, 4, 16 seconds */
        d->due = ngx_current_msec
                 + (1000 << (2 * (NGX_HTTP_EAS_INV_ECHOES - d->echoes)));
        d->echoes--;

        if (ngx_http_eas_inv_echo_ev.handler == NULL) {
            ngx_http_eas_inv_echo_dummy.fd = (ngx_socket_t) -1;

            ngx_http_eas_inv_echo_ev.data = &ngx_http_eas_inv_echo_dummy;
            ngx_http_eas_inv_echo_ev.handler = ngx_http_eas_inv_echo;
            ngx_http_eas_inv_echo_ev.log = ngx_cycle->log;
            ngx_http_eas_inv_echo_ev.cancelable = 1;
        }

        if (!ngx_http_eas_inv_echo_ev.timer_set) {
            ngx_add_timer(&ngx_http_eas_inv_echo_ev, 1000);
        }

        return;
    }
}


/* the deletions sent again whose time came; the timer again if any left */

static void
ngx_http_eas_inv_echo(ngx_event_t *ev)
{
    ngx_uint_t                   i, left;
    ngx_http_eas_inv_pending_t  *d;

    left = 0;

    for (i = 0; i < NGX_HTTP_EAS_INV_PENDING; i++) {
        d = &ngx_http_eas_inv_pending[i];

        if (d->id == 0 || !d->answered || d->sent) {
            continue;
        }

        if ((ngx_msec_int_t) (d->due - ngx_current_msec) <= 0) {
            /* Redis down: sent again when it is back */
            (void) ngx_http_eas_inv_delete_send(d, d->at);
        }

        left = 1;
    }

    if (left && !ngx_exiting && !ngx_terminate) {
        ngx_add_timer(ev, 1000);
    }
}


/* the worker shuts down: what it still keeps for Redis is said lost */

void
ngx_http_eas_redis_inv_pending_exit(void)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; ngx_http_eas_inv_pending && i < NGX_HTTP_EAS_INV_PENDING;
         i++)
    {
        if (ngx_http_eas_inv_pending[i].id
            && !ngx_http_eas_inv_pending[i].answered)
        {
            n++;
        }
    }

    if (n) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "eas: shared state: %ui device deletions made here "
                      "while it was down, not answered by it, are lost as "
                      "this worker exits: the other gateways may keep "
                      "those devices", n);
    }
}
