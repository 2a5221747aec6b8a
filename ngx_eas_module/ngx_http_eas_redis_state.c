
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


static void ngx_http_eas_redis_try_cleanup(void *data);
static void ngx_http_eas_redis_try_timeout(ngx_event_t *ev);
static void ngx_http_eas_redis_refused(const char *what, redisReply *rr);
static void ngx_http_eas_redis_on_reserve(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_on_fail(redisAsyncContext *ac, void *reply,
    void *data);
static ngx_int_t ngx_http_eas_redis_settle(ngx_http_eas_redis_try_t *t,
    ngx_uint_t failed);


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



/* when this worker last said a message was not understood */

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

    argv[3] = (char *) uk;
    argv[4] = (char *) ukl;
    argv[5] = (char *) ak;
    argv[6] = (char *) akl;
    argv[7] = (char *) lim[0];
    argv[8] = (char *) lim[1];
    argv[9] = (char *) win;

    argvlen[3] = ngx_http_eas_redis_key(uk, "u:", t->zone, &t->user) - uk;
    argvlen[4] = ngx_http_eas_redis_key(ukl, "ul:", t->zone, &t->user) - ukl;
    argvlen[5] = ngx_http_eas_redis_key(ak, "a:", t->zone, &t->addr) - ak;
    argvlen[6] = ngx_http_eas_redis_key(akl, "al:", t->zone, &t->addr) - akl;
    argvlen[7] = ngx_sprintf(lim[0], "%ui", q->pending_user ? t->user_limit
                                                            : 0) - lim[0];
    argvlen[8] = ngx_sprintf(lim[1], "%ui", q->pending_address
                                            ? t->address_limit : 0) - lim[1];
    argvlen[9] = ngx_sprintf(win, "%T", t->window) - win;

    if (ngx_http_eas_redis_eval(ngx_http_eas_redis_on_reserve, t,
                                ngx_http_eas_redis_reserve_lua,
                                sizeof(ngx_http_eas_redis_reserve_lua) - 1,
                                4, 10, argv, argvlen)
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

void
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


ngx_http_eas_redis_ctx_t *
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

ngx_http_eas_redis_try_t *
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

    return ngx_http_eas_redis_eval(failed ? ngx_http_eas_redis_on_fail : NULL,
                                   NULL, ngx_http_eas_redis_fail_lua,
                                   sizeof(ngx_http_eas_redis_fail_lua) - 1,
                                   5, 18, argv, argvlen);
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






/* "<prefix><kind><zone>:<key>", or "<prefix><kind><zone>" */

u_char *
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
