
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"
#include "ngx_http_eas_longpoll.h"


/*
 * What the gateways share through Redis (docs/scale-out.md).
 *
 * Lockouts.  Each user and address counted by a zone has a hash on
 * Redis, "<prefix>u:<zone>:<identity>" ("a:" for an address), with the
 * failures of its window (f) and the failures plus the tries being
 * verified (c), and a key "<prefix>ul:..." ("al:") while it is locked.
 * A try that the zone of this gateway lets go to the credential source
 * is reserved there too, atomically (a script): refused when locked,
 * "busy" when the limit is taken, so that the gateways together verify
 * no more tries than one would.  The answer counts or gives the try
 * back; the failure that reaches the limit locks, and the lock is
 * published: every gateway locks the user in its own zone as well, so
 * that a known-good device keeps working and the rest is refused with
 * no round trip, and so that the last lock known stays in force when
 * Redis goes away.  The strictest of the two answers wins.
 *
 * Published on "<prefix>events", one line each, with the sender's name
 * so that a gateway skips its own:
 *
 *     L node kind seconds zlen klen ZONE KEY     locked
 *     U node kind 0 zlen klen ZONE KEY           lockout lifted
 *     A node 0 0 zlen 0 ZONE                     every lockout lifted
 *     P node 0 0 zlen ulen ZONE USER DEVICEID    a newer Ping
 *     R node 0 0 zlen flen ZONE FIELD VALUE      a runtime rule, in
 *                                                ..._redis_rules.c
 *
 * Zones are known by name: a gateway remembers the zones its own
 * requests used (a gateway that never used a zone has nothing in it to
 * change).
 */


#define NGX_HTTP_EAS_REDIS_FIELDS    6

#define NGX_HTTP_EAS_REDIS_ASKING    1
#define NGX_HTTP_EAS_REDIS_ANSWERED  2
#define NGX_HTTP_EAS_REDIS_USED      3

#define NGX_HTTP_EAS_REDIS_ALLOWED   0
#define NGX_HTTP_EAS_REDIS_ULOCKED   1
#define NGX_HTTP_EAS_REDIS_ALOCKED   2
#define NGX_HTTP_EAS_REDIS_UBUSY     3
#define NGX_HTTP_EAS_REDIS_ABUSY     4
#define NGX_HTTP_EAS_REDIS_FALLBACK  5


/*
 * One verification's place on Redis.  Held by the request until its
 * pool goes, and by Redis while a reservation is asked: freed by the
 * last of the two.
 */
typedef struct {
    ngx_http_request_t          *request;
    ngx_event_t                  timer;
    ngx_shm_zone_t              *zone;
    ngx_str_t                    user;
    ngx_str_t                    addr;
    ngx_uint_t                   user_limit;
    ngx_uint_t                   address_limit;
    time_t                       window;
    time_t                       lock_time;
    ngx_uint_t                   state;
    ngx_uint_t                   answer;
    time_t                       left;
    unsigned                     asked:1;      /* Redis holds it */
    unsigned                     reserved:1;   /* a try held on Redis */
    unsigned                     verifying:1;  /* the source is asked */
} ngx_http_eas_redis_try_t;


/* an unlock the admin API waits for */
typedef struct {
    ngx_http_request_t              *request;
    ngx_uint_t                       kind;
    ngx_str_t                        key;
    ngx_uint_t                       found;      /* this gateway had it */
    ngx_http_eas_redis_unlocked_pt   done;
} ngx_http_eas_redis_unlock_t;


typedef struct {
    ngx_http_eas_redis_try_t    *try;          /* preauth */
    ngx_http_eas_redis_try_t    *device;       /* eas_device_max */
} ngx_http_eas_redis_ctx_t;


static ngx_http_eas_redis_ctx_t *ngx_http_eas_redis_ctx(
    ngx_http_request_t *r, ngx_uint_t create);
static ngx_http_eas_redis_try_t *ngx_http_eas_redis_try(
    ngx_http_request_t *r, ngx_shm_zone_t *zone, ngx_str_t *user,
    ngx_str_t *addr);
static void ngx_http_eas_redis_on_admit(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_eas_redis_on_unlock(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_try_cleanup(void *data);
static void ngx_http_eas_redis_try_timeout(ngx_event_t *ev);
static void ngx_http_eas_redis_refused(const char *what, redisReply *rr);
static void ngx_http_eas_redis_on_reserve(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_on_fail(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_eas_redis_resume(ngx_http_eas_redis_try_t *t);
static ngx_int_t ngx_http_eas_redis_settle(ngx_http_eas_redis_try_t *t,
    ngx_uint_t failed);
static u_char *ngx_http_eas_redis_key(u_char *p, const char *kind,
    ngx_shm_zone_t *zone, ngx_str_t *key);
static ngx_int_t ngx_http_eas_redis_publish(char type, ngx_uint_t kind,
    ngx_shm_zone_t *zone, ngx_str_t *s2, ngx_str_t *s3);


static const char  ngx_http_eas_redis_reserve_lua[] =
    "local lim = {tonumber(ARGV[1]), tonumber(ARGV[2])} "
    "for i = 1, 2 do "
    "  if lim[i] > 0 then "
    "    local t = redis.call('TTL', KEYS[2 * i]) "
    "    if t > 0 then return {i, t} end "
    "  end "
    "end "
    "for i = 1, 2 do "
    "  if lim[i] > 0 then "
    "    local n = redis.call('HGET', KEYS[2 * i - 1], 'c') "
    "    if n and tonumber(n) >= lim[i] then return {i + 2, 0} end "
    "  end "
    "end "
    "for i = 1, 2 do "
    "  if lim[i] > 0 then "
    "    local h = KEYS[2 * i - 1] "
    "    redis.call('HINCRBY', h, 'c', 1) "
    "    if redis.call('TTL', h) < 0 then "
    "      redis.call('EXPIRE', h, ARGV[3]) "
    "    end "
    "  end "
    "end "
    "return {0, 0}";


static const char  ngx_http_eas_redis_fail_lua[] =
    "local lim = {tonumber(ARGV[1]), tonumber(ARGV[2])} "
    "local key = {ARGV[8], ARGV[9]} "
    "local r = 0 "
    "for i = 1, 2 do "
    "  if lim[i] > 0 then "
    "    local h = KEYS[2 * i - 1] "
    "    if redis.call('EXISTS', h) == 1 then "
    "      if redis.call('HINCRBY', h, 'c', -1) < 0 then "
    "        redis.call('HSET', h, 'c', 0) "
    "      end "
    "    end "
    "    if ARGV[10] == '1' and redis.call('EXISTS', KEYS[2 * i]) == 0 then "
    "      redis.call('HINCRBY', h, 'c', 1) "
    "      local f = redis.call('HINCRBY', h, 'f', 1) "
    "      if redis.call('TTL', h) < 0 then "
    "        redis.call('EXPIRE', h, ARGV[3]) "
    "      end "
    "      if f >= lim[i] then "
    "        redis.call('SET', KEYS[2 * i], '1', 'EX', ARGV[4]) "
    "        redis.call('DEL', h) "
    "        redis.call('SADD', KEYS[5], KEYS[2 * i]) "
    "        redis.call('EXPIRE', KEYS[5], ARGV[4]) "
    "        redis.call('PUBLISH', ARGV[5], 'L ' .. ARGV[6] .. ' ' .. i "
    "          .. ' ' .. ARGV[4] .. ' ' .. #ARGV[7] .. ' ' .. #key[i] "
    "          .. ' ' .. ARGV[7] .. key[i]) "
    "        r = r + i "
    "      end "
    "    end "
    "  end "
    "end "
    "return r";


static const char  ngx_http_eas_redis_unlock_lua[] =
    "local n = redis.call('EXISTS', KEYS[2]) "
    "redis.call('DEL', KEYS[1], KEYS[2]) "
    "redis.call('SREM', KEYS[3], KEYS[2]) "
    "redis.call('PUBLISH', ARGV[1], ARGV[2]) "
    "return n";


/*
 * The set of locks lists them, but it may be gone (evicted, deleted):
 * the lock keys of the zone are also looked for with SCAN, in steps of
 * a bounded COUNT, the prefix and zone name escaped from the pattern.
 */

static const char  ngx_http_eas_redis_unlock_all_lua[] =
    "local seen, n = {}, 0 "
    "local function lift(k) "
    "  if seen[k] then return end "
    "  seen[k] = true "
    "  n = n + redis.call('DEL', k) "
    "  local s = string.sub(k, #ARGV[3] + 1) "
    "  redis.call('DEL', ARGV[3] .. string.sub(s, 1, 1) .. string.sub(s, 3)) "
    "end "
    "for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do lift(k) end "
    "local z = string.sub(KEYS[1], #ARGV[3] + 7) "
    "for _, kind in ipairs({'ul:', 'al:'}) do "
    "  local p = string.gsub(ARGV[3] .. kind .. z, '[%*%?%[%]\\]', "
    "                        '\\%0') .. ':*' "
    "  local c = '0' "
    "  repeat "
    "    local r = redis.call('SCAN', c, 'MATCH', p, 'COUNT', 1000) "
    "    c = r[1] "
    "    for _, k in ipairs(r[2]) do lift(k) end "
    "  until c == '0' "
    "end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('PUBLISH', ARGV[1], ARGV[2]) "
    "return n";


/* when this worker last said a message was not understood */

static time_t  ngx_http_eas_redis_junk_logged;
static time_t  ngx_http_eas_redis_refused_logged;


/*
 * The preauth hook, after the zone's lookup: a try that the zone
 * reserved for the credential source is reserved on Redis first.  The
 * first call asks and answers NGX_HTTP_EAS_CACHE_ASKED: the zone's
 * reservation is given back and the handler runs again when Redis has
 * answered (or "timeout" passed); the second call gives Redis's
 * answer, the strictest of the two.
 */

ngx_uint_t
ngx_http_eas_redis_lookup(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_cache_query_t *q,
    ngx_uint_t found)
{
    size_t                      klen;
    ngx_uint_t                  answer;
    ngx_http_eas_redis_ctx_t   *ctx;
    ngx_http_eas_redis_try_t   *t;
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      uk[512], ukl[512], ak[512], akl[512];
    u_char                      lim[2][NGX_INT_T_LEN];
    u_char                      win[NGX_INT_T_LEN];
    const char                 *argv[10];
    size_t                      argvlen[10];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL
        || (found != NGX_HTTP_EAS_CACHE_MISS
            && found != NGX_HTTP_EAS_CACHE_STALE)
        || (!q->pending_user && !q->pending_address))
    {
        return found;
    }

    ctx = ngx_http_eas_redis_ctx(r, 1);
    if (ctx == NULL) {
        return found;
    }

    t = ctx->try;

    if (t && t->state == NGX_HTTP_EAS_REDIS_ANSWERED) {
        t->state = NGX_HTTP_EAS_REDIS_USED;
        answer = t->answer;

        if (answer == NGX_HTTP_EAS_REDIS_ALLOWED) {
            t->verifying = 1;
            return found;
        }

        if (answer == NGX_HTTP_EAS_REDIS_FALLBACK && !rcf->lockout_refuse) {
            return found;
        }

        ngx_http_eas_cache_release(pcf->zone, q, pcf, 0);

        switch (answer) {

        case NGX_HTTP_EAS_REDIS_ULOCKED:
        case NGX_HTTP_EAS_REDIS_ALOCKED:
            ngx_http_eas_cache_lock(pcf->zone,
                                    answer == NGX_HTTP_EAS_REDIS_ULOCKED
                                    ? NGX_HTTP_EAS_CACHE_USER
                                    : NGX_HTTP_EAS_CACHE_ADDRESS,
                                    answer == NGX_HTTP_EAS_REDIS_ULOCKED
                                    ? q->user : q->addr, t->left);
            q->left = t->left;

            return answer == NGX_HTTP_EAS_REDIS_ULOCKED
                   ? NGX_HTTP_EAS_CACHE_USER_LOCKED
                   : NGX_HTTP_EAS_CACHE_ADDRESS_LOCKED;

        case NGX_HTTP_EAS_REDIS_ABUSY:
            q->busy_address = 1;
            return NGX_HTTP_EAS_CACHE_BUSY;

        default: /* user busy, or Redis down with lockout_fallback=refuse */
            return NGX_HTTP_EAS_CACHE_BUSY;
        }
    }

    if (t) {
        /* asked once for this request already */
        return found;
    }

    klen = rcf->prefix.len + 3 + pcf->zone->shm.name.len + 1;

    if (q->user->len + klen > sizeof(uk) || q->addr->len + klen > sizeof(ak))
    {
        return found;
    }

    t = ngx_http_eas_redis_try(r, pcf->zone, q->user, q->addr);
    if (t == NULL) {
        return found;
    }

    t->user_limit = pcf->user_limit;
    t->address_limit = pcf->address_limit;
    t->window = pcf->window;
    t->lock_time = pcf->lock_time;
    ctx->try = t;

    argv[0] = "EVAL";
    argv[1] = ngx_http_eas_redis_reserve_lua;
    argv[2] = "4";
    argv[3] = (char *) uk;
    argv[4] = (char *) ukl;
    argv[5] = (char *) ak;
    argv[6] = (char *) akl;
    argv[7] = (char *) lim[0];
    argv[8] = (char *) lim[1];
    argv[9] = (char *) win;

    argvlen[0] = 4;
    argvlen[1] = sizeof(ngx_http_eas_redis_reserve_lua) - 1;
    argvlen[2] = 1;
    argvlen[3] = ngx_http_eas_redis_key(uk, "u:", t->zone, &t->user) - uk;
    argvlen[4] = ngx_http_eas_redis_key(ukl, "ul:", t->zone, &t->user) - ukl;
    argvlen[5] = ngx_http_eas_redis_key(ak, "a:", t->zone, &t->addr) - ak;
    argvlen[6] = ngx_http_eas_redis_key(akl, "al:", t->zone, &t->addr) - akl;
    argvlen[7] = ngx_sprintf(lim[0], "%ui", q->pending_user ? t->user_limit
                                                            : 0) - lim[0];
    argvlen[8] = ngx_sprintf(lim[1], "%ui", q->pending_address
                                            ? t->address_limit : 0) - lim[1];
    argvlen[9] = ngx_sprintf(win, "%T", t->window) - win;

    if (ngx_http_eas_redis_command(ngx_http_eas_redis_on_reserve, t, 10,
                                   argv, argvlen)
        != NGX_OK)
    {
        /* down: the zone alone decides, or the try waits (refuse) */
        return ngx_http_eas_redis_lookup(r, pcf, q, found);
    }

    t->asked = 1;
    t->state = NGX_HTTP_EAS_REDIS_ASKING;

    t->timer.handler = ngx_http_eas_redis_try_timeout;
    t->timer.data = t;
    t->timer.log = r->connection->log;

    /* not cancelable: the request waits for it */
    ngx_add_timer(&t->timer, rcf->timeout);

    ngx_http_eas_cache_release(pcf->zone, q, pcf, 0);

    return NGX_HTTP_EAS_CACHE_ASKED;
}


/*
 * Redis refused a command of a request (an error reply: out of memory
 * with noeviction, a read-only replica): said once a minute per worker
 * at most, not once a request; the fallback applies to every request
 * all the same (docs/scale-out.md).
 */

static void
ngx_http_eas_redis_refused(const char *what, redisReply *rr)
{
    if (ngx_time() - ngx_http_eas_redis_refused_logged < 60) {
        return;
    }

    ngx_http_eas_redis_refused_logged = ngx_time();

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "eas: shared state: %s failed: %*s (said once a minute)",
                  what, (size_t) rr->len, rr->str);
}


static void
ngx_http_eas_redis_on_reserve(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                *rr = reply;
    ngx_http_eas_redis_try_t  *t = data;

    ngx_uint_t  answer;
    time_t      left;

    t->asked = 0;

    answer = NGX_HTTP_EAS_REDIS_FALLBACK;
    left = 0;

    if (rr && rr->type == REDIS_REPLY_ARRAY && rr->elements == 2
        && rr->element[0]->type == REDIS_REPLY_INTEGER
        && rr->element[1]->type == REDIS_REPLY_INTEGER
        && rr->element[0]->integer >= 0
        && rr->element[0]->integer < NGX_HTTP_EAS_REDIS_FALLBACK)
    {
        answer = (ngx_uint_t) rr->element[0]->integer;
        left = (time_t) rr->element[1]->integer;

    } else if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_http_eas_redis_refused("reserving a try", rr);
    }

    if (t->request == NULL || t->state != NGX_HTTP_EAS_REDIS_ASKING) {
        /* the request went on without it: a try reserved is given back */

        if (answer == NGX_HTTP_EAS_REDIS_ALLOWED) {
            (void) ngx_http_eas_redis_settle(t, 0);
        }

        if (t->request == NULL) {
            ngx_free(t);
        }

        return;
    }

    t->answer = answer;
    t->left = left;
    t->reserved = (answer == NGX_HTTP_EAS_REDIS_ALLOWED);

    ngx_http_eas_redis_resume(t);
}


static void
ngx_http_eas_redis_try_timeout(ngx_event_t *ev)
{
    ngx_http_eas_redis_try_t  *t = ev->data;

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "eas: shared state did not answer in time for user "
                  "\"%V\": decided on this gateway alone", &t->user);

    t->answer = NGX_HTTP_EAS_REDIS_FALLBACK;

    ngx_http_eas_redis_resume(t);
}


/* the request runs its access phase again, past the lookup */

static void
ngx_http_eas_redis_resume(ngx_http_eas_redis_try_t *t)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = t->request;
    c = r->connection;

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    t->state = NGX_HTTP_EAS_REDIS_ANSWERED;

    ngx_http_set_log_request(c->log, r);

    r->write_event_handler(r);
    ngx_http_run_posted_requests(c);
}


/*
 * The source answered: a failure is counted on Redis (and may lock,
 * for every gateway), a success gives the try back.
 */

void
ngx_http_eas_redis_answer(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_http_eas_cache_query_t *q,
    ngx_uint_t valid)
{
    ngx_http_eas_redis_release(r, !valid);
}


/* no answer from the source: given back, or counted (it timed out) */

void
ngx_http_eas_redis_release(ngx_http_request_t *r, ngx_uint_t failed)
{
    ngx_http_eas_redis_ctx_t  *ctx;
    ngx_http_eas_redis_try_t  *t;

    if (ngx_http_eas_redis_get_conf() == NULL) {
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_eas_redis_module);
    t = ctx ? ctx->try : NULL;

    if (t == NULL || !t->reserved) {
        return;
    }

    t->reserved = 0;
    t->verifying = 0;

    (void) ngx_http_eas_redis_settle(t, failed);
}


static ngx_http_eas_redis_ctx_t *
ngx_http_eas_redis_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_http_eas_redis_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eas_redis_module);

    if (ctx || !create) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_eas_redis_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_eas_redis_module);

    return ctx;
}


/* a place on Redis for this request, freed by the last of it and Redis */

static ngx_http_eas_redis_try_t *
ngx_http_eas_redis_try(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    ngx_str_t *user, ngx_str_t *addr)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_eas_redis_try_t  *t;

    t = ngx_alloc(sizeof(ngx_http_eas_redis_try_t) + user->len + addr->len,
                  r->connection->log);
    if (t == NULL) {
        return NULL;
    }

    ngx_memzero(t, sizeof(ngx_http_eas_redis_try_t));

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(t);
        return NULL;
    }

    cln->handler = ngx_http_eas_redis_try_cleanup;
    cln->data = t;

    t->request = r;
    t->zone = zone;
    t->user.data = (u_char *) t + sizeof(ngx_http_eas_redis_try_t);
    t->user.len = user->len;
    ngx_memcpy(t->user.data, user->data, user->len);
    t->addr.data = t->user.data + t->user.len;
    t->addr.len = addr->len;
    ngx_memcpy(t->addr.data, addr->data, addr->len);
    t->state = NGX_HTTP_EAS_REDIS_ANSWERED;
    t->answer = NGX_HTTP_EAS_REDIS_FALLBACK;

    t->timer.handler = ngx_http_eas_redis_try_timeout;
    t->timer.data = t;
    t->timer.log = r->connection->log;

    return t;
}


/*
 * eas_device_max on several gateways: a device this gateway has just
 * counted for its user is added to the user's set on Redis, unless the
 * set is full (the other gateways counted the user's devices); the
 * request waits for the answer, at most "timeout".  A device counted
 * before (every later request) asks nothing.
 */

static const char  ngx_http_eas_redis_admit_lua[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then "
    "  redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "  return 1 "
    "end "
    "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then "
    "  return 0 "
    "end "
    "redis.call('SADD', KEYS[1], ARGV[1]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "return 1";


void
ngx_http_eas_redis_device_counted(ngx_http_request_t *r,
    ngx_shm_zone_t *devices, ngx_http_eas_device_update_t *u)
{
    ngx_str_t                   lower;
    ngx_http_eas_redis_ctx_t   *ctx;
    ngx_http_eas_redis_try_t   *t;
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      key[512], lu[256], dev[256];
    u_char                      max[NGX_INT_T_LEN], ttl[NGX_TIME_T_LEN];
    const char                 *argv[7];
    size_t                      argvlen[7];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || !u->counted || u->max_devices == 0
        || u->user.len + rcf->prefix.len + devices->shm.name.len + 8
           > sizeof(key)
        || u->user.len > sizeof(lu) || u->device_id.len > sizeof(dev))
    {
        return;
    }

    ctx = ngx_http_eas_redis_ctx(r, 1);
    if (ctx == NULL || ctx->device) {
        return;
    }

    t = ngx_http_eas_redis_try(r, devices, &u->user, &u->device_id);
    if (t == NULL) {
        return;
    }

    ctx->device = t;

    /* the zone keys records in lower case: so does Redis */

    lower.data = lu;
    lower.len = t->user.len;
    ngx_strlow(lu, t->user.data, t->user.len);

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_http_eas_redis_admit_lua;
    argvlen[1] = sizeof(ngx_http_eas_redis_admit_lua) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) key;
    argvlen[3] = ngx_http_eas_redis_key(key, "d:", devices, &lower) - key;
    argv[4] = (char *) dev;
    argvlen[4] = t->addr.len;
    ngx_strlow(dev, t->addr.data, t->addr.len);
    argv[5] = (char *) max;
    argvlen[5] = ngx_sprintf(max, "%ui", u->max_devices) - max;
    argv[6] = (char *) ttl;
    argvlen[6] = ngx_sprintf(ttl, "%T", rcf->device_ttl) - ttl;

    if (ngx_http_eas_redis_command(ngx_http_eas_redis_on_admit, t, 7, argv,
                                   argvlen)
        != NGX_OK)
    {
        /* down: counted on this gateway alone */
        return;
    }

    t->asked = 1;
    t->state = NGX_HTTP_EAS_REDIS_ASKING;

    /* not cancelable: the request waits for it */
    ngx_add_timer(&t->timer, rcf->timeout);
}


static void
ngx_http_eas_redis_on_admit(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply                *rr = reply;
    ngx_http_eas_redis_try_t  *t = data;

    t->asked = 0;

    if (t->request == NULL) {
        ngx_free(t);
        return;
    }

    if (t->state != NGX_HTTP_EAS_REDIS_ASKING) {
        return;
    }

    if (rr && rr->type == REDIS_REPLY_INTEGER) {
        t->answer = rr->integer ? NGX_HTTP_EAS_REDIS_ALLOWED
                                : NGX_HTTP_EAS_REDIS_UBUSY;
    }

    ngx_http_eas_redis_resume(t);
}


/*
 * The device step, after the device zone: NGX_AGAIN while Redis is
 * asked (the step runs again), NGX_BUSY when the other gateways hold
 * the user's eas_device_max places (the place counted here is given
 * back, the record says the refusal everywhere), NGX_DECLINED
 * otherwise.
 */

ngx_int_t
ngx_http_eas_redis_device(ngx_http_request_t *r, ngx_shm_zone_t *devices,
    ngx_http_eas_device_values_t *values)
{
    ngx_http_eas_redis_ctx_t  *ctx;
    ngx_http_eas_redis_try_t  *t;

    ctx = ngx_http_get_module_ctx(r, ngx_http_eas_redis_module);
    t = ctx ? ctx->device : NULL;

    if (t == NULL || devices == NULL) {
        return NGX_DECLINED;
    }

    if (t->state == NGX_HTTP_EAS_REDIS_ASKING) {
        return NGX_AGAIN;
    }

    if (t->state != NGX_HTTP_EAS_REDIS_ANSWERED) {
        return NGX_DECLINED;
    }

    t->state = NGX_HTTP_EAS_REDIS_USED;

    if (t->answer != NGX_HTTP_EAS_REDIS_UBUSY) {
        return NGX_DECLINED;
    }

    (void) ngx_http_eas_device_unplace(devices,
                                       &values->value[NGX_HTTP_EAS_FIELD_USER],
                                       &values->value
                                           [NGX_HTTP_EAS_FIELD_DEVICE_ID], 1);

    return NGX_BUSY;
}


/* the admin API deleted a device: its place on Redis goes too */

void
ngx_http_eas_redis_device_delete(ngx_shm_zone_t *devices, ngx_str_t *user,
    ngx_str_t *device_id)
{
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      key[512], lu[256], dev[256];
    ngx_str_t                   lower;
    const char                 *argv[3];
    size_t                      argvlen[3];

    ngx_http_eas_redis_inventory_delete(devices, user, device_id);

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || devices == NULL || user->len > sizeof(lu)
        || device_id->len > sizeof(dev)
        || user->len + rcf->prefix.len + devices->shm.name.len + 8
           > sizeof(key))
    {
        return;
    }

    lower.data = lu;
    lower.len = user->len;
    ngx_strlow(lu, user->data, user->len);
    ngx_strlow(dev, device_id->data, device_id->len);

    argv[0] = "SREM";
    argvlen[0] = 4;
    argv[1] = (char *) key;
    argvlen[1] = ngx_http_eas_redis_key(key, "d:", devices, &lower) - key;
    argv[2] = (char *) dev;
    argvlen[2] = device_id->len;

    (void) ngx_http_eas_redis_command(NULL, NULL, 3, argv, argvlen);
}


/*
 * The request's pool goes: a try whose verification was under way
 * counts as a failure (the client hung up, as the zone counts it); one
 * that never reached the source (the zone answered on the second look)
 * is given back.
 */

static void
ngx_http_eas_redis_try_cleanup(void *data)
{
    ngx_http_eas_redis_try_t  *t = data;

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    if (t->reserved) {
        t->reserved = 0;
        (void) ngx_http_eas_redis_settle(t, t->verifying);
    }

    t->request = NULL;

    if (!t->asked) {
        ngx_free(t);
    }
}


static ngx_int_t
ngx_http_eas_redis_settle(ngx_http_eas_redis_try_t *t, ngx_uint_t failed)
{
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      uk[512], ukl[512], ak[512], akl[512];
    u_char                      set[512], lim[2][NGX_INT_T_LEN];
    u_char                      win[NGX_INT_T_LEN], lt[NGX_INT_T_LEN];
    const char                 *argv[18];
    size_t                      argvlen[18];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL) {
        return NGX_DECLINED;
    }

    argv[0] = "EVAL";
    argv[1] = ngx_http_eas_redis_fail_lua;
    argv[2] = "5";
    argv[3] = (char *) uk;
    argv[4] = (char *) ukl;
    argv[5] = (char *) ak;
    argv[6] = (char *) akl;
    argv[7] = (char *) set;
    argv[8] = (char *) lim[0];
    argv[9] = (char *) lim[1];
    argv[10] = (char *) win;
    argv[11] = (char *) lt;
    argv[12] = (char *) rcf->channel.data;
    argv[13] = (char *) rcf->node.data;
    argv[14] = (char *) t->zone->shm.name.data;
    argv[15] = (char *) t->user.data;

    argvlen[0] = 4;
    argvlen[1] = sizeof(ngx_http_eas_redis_fail_lua) - 1;
    argvlen[2] = 1;
    argvlen[3] = ngx_http_eas_redis_key(uk, "u:", t->zone, &t->user) - uk;
    argvlen[4] = ngx_http_eas_redis_key(ukl, "ul:", t->zone, &t->user) - ukl;
    argvlen[5] = ngx_http_eas_redis_key(ak, "a:", t->zone, &t->addr) - ak;
    argvlen[6] = ngx_http_eas_redis_key(akl, "al:", t->zone, &t->addr) - akl;
    argvlen[7] = ngx_http_eas_redis_key(set, "locks:", t->zone, NULL) - set;
    argvlen[8] = ngx_sprintf(lim[0], "%ui", t->user_limit) - lim[0];
    argvlen[9] = ngx_sprintf(lim[1], "%ui", t->address_limit) - lim[1];
    argvlen[10] = ngx_sprintf(win, "%T", t->window) - win;
    argvlen[11] = ngx_sprintf(lt, "%T", t->lock_time) - lt;
    argvlen[12] = rcf->channel.len;
    argvlen[13] = rcf->node.len;
    argvlen[14] = t->zone->shm.name.len;
    argvlen[15] = t->user.len;

    /* ARGV[9], ARGV[10]: the address, and whether it failed */

    argv[16] = (char *) t->addr.data;
    argvlen[16] = t->addr.len;
    argv[17] = failed ? "1" : "0";
    argvlen[17] = 1;

    return ngx_http_eas_redis_command(failed ? ngx_http_eas_redis_on_fail
                                             : NULL,
                                      NULL, 18, argv, argvlen);
}


/* a failure that locked: this gateway's zone locks at once too */

static void
ngx_http_eas_redis_on_fail(redisAsyncContext *ac, void *reply, void *data)
{
    redisReply  *rr = reply;

    if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_http_eas_redis_refused("counting a failure", rr);
    }

    /* the lock itself comes back on the channel, to every gateway */
}


/*
 * The admin API lifted a lockout here: on Redis too, and on every
 * gateway.
 */

ngx_int_t
ngx_http_eas_redis_unlock(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    ngx_uint_t kind, ngx_str_t *key, ngx_uint_t found,
    ngx_http_eas_redis_unlocked_pt done)
{
    u_char                      *p;
    ngx_str_t                    msg;
    ngx_http_eas_redis_conf_t   *rcf;
    ngx_http_eas_redis_unlock_t *u;
    u_char                      h[512], l[512], set[512], m[1024];
    const char                 *argv[10];
    size_t                      argvlen[10];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || zone == NULL) {
        return NGX_DECLINED;
    }

    if (key && (key->len + rcf->prefix.len + zone->shm.name.len + 8
                > sizeof(h)
                || key->len + zone->shm.name.len + 64 > sizeof(m)))
    {
        return NGX_DECLINED;
    }

    if (zone->shm.name.len + rcf->prefix.len + 8 > sizeof(set)) {
        return NGX_DECLINED;
    }

    msg.data = m;
    p = ngx_sprintf(m, "%c %V %ui 0 %uz %uz %V", key ? 'U' : 'A',
                    &rcf->node, key ? kind : 0, zone->shm.name.len,
                    key ? key->len : 0, &zone->shm.name);
    if (key) {
        p = ngx_cpymem(p, key->data, key->len);
    }

    msg.len = p - m;

    argv[0] = "EVAL";
    argvlen[0] = 4;

    if (key) {
        argv[1] = ngx_http_eas_redis_unlock_lua;
        argvlen[1] = sizeof(ngx_http_eas_redis_unlock_lua) - 1;
        argv[2] = "3";
        argvlen[2] = 1;
        argv[3] = (char *) h;
        argvlen[3] = ngx_http_eas_redis_key(h, kind == NGX_HTTP_EAS_CACHE_USER
                                               ? "u:" : "a:", zone, key) - h;
        argv[4] = (char *) l;
        argvlen[4] = ngx_http_eas_redis_key(l, kind == NGX_HTTP_EAS_CACHE_USER
                                               ? "ul:" : "al:", zone, key)
                     - l;
        argv[5] = (char *) set;
        argvlen[5] = ngx_http_eas_redis_key(set, "locks:", zone, NULL) - set;
        argv[6] = (char *) rcf->channel.data;
        argvlen[6] = rcf->channel.len;
        argv[7] = (char *) msg.data;
        argvlen[7] = msg.len;

        u = NULL;

        if (r && done) {
            u = ngx_palloc(r->pool, sizeof(ngx_http_eas_redis_unlock_t));
            if (u == NULL) {
                return NGX_DECLINED;
            }

            u->request = r;
            u->kind = kind;
            u->key = *key;
            u->found = found;
            u->done = done;
        }

        if (ngx_http_eas_redis_command(u ? ngx_http_eas_redis_on_unlock
                                         : NULL, u, 8, argv, argvlen)
            != NGX_OK)
        {
            if (u) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "eas: shared state is down: the lockout of "
                              "\"%V\" is lifted on this gateway only",
                              key);
            }

            return NGX_DECLINED;
        }

        if (u == NULL) {
            return NGX_DECLINED;
        }

        /* the request waits for Redis's answer */
        r->main->count++;

        return NGX_DONE;
    }

    /*
     * every lockout: the set lists the lock keys ("...ul:Z:KEY"); the
     * hash of each is the same key with "u:" for "ul:" ("a:", "al:")
     */

    argv[1] = ngx_http_eas_redis_unlock_all_lua;
    argvlen[1] = sizeof(ngx_http_eas_redis_unlock_all_lua) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) set;
    argvlen[3] = ngx_http_eas_redis_key(set, "locks:", zone, NULL) - set;
    argv[4] = (char *) rcf->channel.data;
    argvlen[4] = rcf->channel.len;
    argv[5] = (char *) msg.data;
    argvlen[5] = msg.len;
    argv[6] = (char *) rcf->prefix.data;
    argvlen[6] = rcf->prefix.len;

    (void) ngx_http_eas_redis_command(NULL, NULL, 7, argv, argvlen);

    return NGX_DECLINED;
}


/* Redis answered an unlock asked by the admin API: the request ends */

static void
ngx_http_eas_redis_on_unlock(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                   *rr = reply;
    ngx_http_eas_redis_unlock_t  *u = data;

    ngx_int_t            lifted;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = u->request;
    c = r->connection;

    if (rr && rr->type == REDIS_REPLY_INTEGER) {
        lifted = (u->found || rr->integer > 0) ? 1 : 0;

    } else {
        lifted = NGX_ERROR;

        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "eas: shared state: lifting the lockout of \"%V\" "
                      "failed: %*s", &u->key,
                      (size_t) (rr && rr->type == REDIS_REPLY_ERROR
                                ? rr->len : sizeof("no answer") - 1),
                      rr && rr->type == REDIS_REPLY_ERROR
                      ? rr->str : "no answer");
    }

    ngx_http_finalize_request(r, u->done(r, u->kind, &u->key, lifted));
    ngx_http_run_posted_requests(c);
}


/*
 * A Ping about to be held on this gateway: every other gateway counts a
 * newer Ping for the device, and its sweep ends the Ping it holds.
 */

void
ngx_http_eas_redis_ping(ngx_shm_zone_t *devices, ngx_str_t *user,
    ngx_str_t *device_id)
{
    if (ngx_http_eas_redis_get_conf() == NULL) {
        return;
    }

    (void) ngx_http_eas_redis_publish('P', 0, devices, user, device_id);
}


static ngx_int_t
ngx_http_eas_redis_publish(char type, ngx_uint_t kind, ngx_shm_zone_t *zone,
    ngx_str_t *s2, ngx_str_t *s3)
{
    u_char                     *p;
    ngx_http_eas_redis_conf_t  *rcf;
    u_char                      m[1024];
    const char                 *argv[3];
    size_t                      argvlen[3];

    rcf = ngx_http_eas_redis_get_conf();

    if (zone->shm.name.len + s2->len + s3->len + 80 > sizeof(m)) {
        return NGX_DECLINED;
    }

    p = ngx_sprintf(m, "%c %V %ui 0 %uz %uz %V%V%V", type, &rcf->node, kind,
                    zone->shm.name.len, s2->len, &zone->shm.name, s2, s3);

    argv[0] = "PUBLISH";
    argvlen[0] = 7;
    argv[1] = (char *) rcf->channel.data;
    argvlen[1] = rcf->channel.len;
    argv[2] = (char *) m;
    argvlen[2] = p - m;

    return ngx_http_eas_redis_command(NULL, NULL, 3, argv, argvlen);
}


/* a message on the channel, from another gateway (or this one's) */

void
ngx_http_eas_redis_event(u_char *msg, size_t len)
{
    u_char                     *p, *last;
    char                        type;
    time_t                      cap;
    ngx_str_t                   node, zname, s2, s3;
    ngx_uint_t                  i, n[4], generation;
    ngx_shm_zone_t             *zone;
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    p = msg;
    last = msg + len;

    if (len < 2 || p[1] != ' ') {
        goto invalid;
    }

    type = (char) p[0];
    p += 2;

    node.data = p;

    while (p < last && *p != ' ') {
        p++;
    }

    node.len = p - node.data;

    for (i = 0; i < 4; i++) {
        if (p == last || *p != ' ') {
            goto invalid;
        }

        p++;
        n[i] = 0;

        if (p == last || *p < '0' || *p > '9') {
            goto invalid;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            n[i] = n[i] * 10 + (*p++ - '0');

            if (n[i] > 1000000000) {
                goto invalid;
            }
        }
    }

    if (p == last || *p++ != ' ' || (size_t) (last - p) < n[2] + n[3]) {
        goto invalid;
    }

    zname.data = p;
    zname.len = n[2];
    s2.data = p + n[2];
    s2.len = n[3];
    s3.data = s2.data + s2.len;
    s3.len = last - s3.data;

    if (node.len == rcf->node.len
        && ngx_strncmp(node.data, rcf->node.data, node.len) == 0
        && type != 'L')
    {
        /* this gateway did it already */
        return;
    }

    if (type == 'R') {
        ngx_http_eas_redis_rules_event(&zname, &s2, &s3);
        return;
    }

    if (type == 'I' || type == 'D') {
        ngx_http_eas_redis_inventory_event(type, &zname, &s2, &s3);
        return;
    }

    zone = ngx_http_eas_redis_zone_find(zname.data, zname.len,
                                        type == 'P' ? &ngx_http_eas_module
                                                    : ngx_http_eas_cache_tag);
    if (zone == NULL) {
        return;
    }

    switch (type) {

    case 'L':
        if ((n[0] != NGX_HTTP_EAS_CACHE_USER
             && n[0] != NGX_HTTP_EAS_CACHE_ADDRESS)
            || n[1] == 0)
        {
            goto invalid;
        }

        /*
         * what is left of the lock, never longer than this gateway's
         * own lockout time for the zone: a forged "L" on the channel
         * cannot lock anyone for years
         */

        cap = ngx_http_eas_redis_lock_time(zone);

        if (cap > 0) {
            ngx_http_eas_cache_lock(zone, n[0], &s2,
                                    ngx_min((time_t) n[1], cap));
        }
        break;

    case 'U':
        if (n[0] != NGX_HTTP_EAS_CACHE_USER
            && n[0] != NGX_HTTP_EAS_CACHE_ADDRESS)
        {
            goto invalid;
        }

        (void) ngx_http_eas_cache_clear(zone, n[0], &s2);
        break;

    case 'A':
        (void) ngx_http_eas_cache_drop(zone, NGX_HTTP_EAS_CACHE_USER);
        break;

    case 'P':
        /* counted newer where the device has a record: its sweep ends it */
        (void) ngx_http_eas_device_ping(zone, &s2, &s3, 1, &generation);
        ngx_http_eas_longpoll_wake();
        break;

    default:
        goto invalid;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "eas shared state: \"%c\" from \"%V\"", type, &node);

    return;

invalid:

    /* junk on the channel: said once a minute per worker at most */

    if (ngx_time() - ngx_http_eas_redis_junk_logged >= 60) {
        ngx_http_eas_redis_junk_logged = ngx_time();

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "eas: shared state: a message on \"%V\" not "
                      "understood (said once a minute)", &rcf->channel);
    }
}


/* "<prefix><kind><zone>:<key>", or "<prefix><kind><zone>" */

static u_char *
ngx_http_eas_redis_key(u_char *p, const char *kind, ngx_shm_zone_t *zone,
    ngx_str_t *key)
{
    ngx_http_eas_redis_conf_t  *rcf;

    rcf = ngx_http_eas_redis_get_conf();

    p = ngx_cpymem(p, rcf->prefix.data, rcf->prefix.len);
    p = ngx_cpymem(p, kind, ngx_strlen(kind));
    p = ngx_cpymem(p, zone->shm.name.data, zone->shm.name.len);

    if (key) {
        *p++ = ':';
        p = ngx_cpymem(p, key->data, key->len);
    }

    return p;
}


/*
 * A zone of this gateway by its name and kind (pre-auth or devices),
 * from the zones the configuration declared: a lock, an unlock or a
 * Ping of another gateway reaches every zone of that name here, whether
 * a request of this gateway used it yet or not.  With no name, the
 * len-th zone of that kind.
 */

ngx_shm_zone_t *
ngx_http_eas_redis_zone_find(u_char *name, size_t len, void *tag)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == tag && zone[i].data
            && (name == NULL ? len-- == 0
                : zone[i].shm.name.len == len
                  && ngx_strncmp(zone[i].shm.name.data, name, len) == 0))
        {
            return &zone[i];
        }
    }
}
