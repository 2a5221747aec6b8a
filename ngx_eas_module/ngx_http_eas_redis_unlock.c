
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
 * Lockouts lifted by the admin API (ngx_http_eas_admin_lockouts.c), here,
 * on Redis and on every gateway: one key, or every lock of a zone.  The
 * lockouts themselves are in ngx_http_eas_redis_state.c.
 */


/* an unlock the admin API waits for */
typedef struct {
    ngx_http_request_t              *request;    /* NULL: it went */
    ngx_pool_cleanup_t              *cleanup;
    ngx_uint_t                       kind;
    ngx_str_t                        key;
    ngx_uint_t                       found;      /* this gateway had it */
    ngx_http_eas_redis_unlocked_pt   done;
} ngx_http_eas_redis_unlock_t;


static void ngx_http_eas_redis_on_unlock(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_unlock_gone(void *data);


static const char  ngx_http_eas_redis_unlock_lua[] =
    "local n = redis.call('EXISTS', KEYS[2]) "
    "redis.call('DEL', KEYS[1], KEYS[2]) "
    "redis.call('SREM', KEYS[3], KEYS[2]) "
    "redis.call('PUBLISH', ARGV[1], ARGV[2]) "
    "return n";


/*
 * Every lock of a zone, a bounded step at a time (Redis runs one script
 * at a time: one that walked the whole database would stop it for as
 * long).  The set of locks lists them, but it may be gone (evicted,
 * deleted): the lock keys of the zone are also looked for with SCAN.
 * KEYS[1] the set; ARGV: channel, message, prefix, cursor ("-": the
 * SCAN is done).  A step lifts up to ..._UNLOCK_POP members of the set
 * and the keys of one SCAN step of ..._UNLOCK_COUNT keys matching the
 * zone's locks (the prefix and zone name escaped from the pattern), and
 * returns the next cursor and whether it was the last step (the SCAN
 * done and the set empty): then the gateways are told.
 */

#define NGX_HTTP_EAS_REDIS_UNLOCK_POP     "100"
#define NGX_HTTP_EAS_REDIS_UNLOCK_COUNT   "1000"
#define NGX_HTTP_EAS_REDIS_UNLOCK_STEPS   1000000

static const char  ngx_http_eas_redis_unlock_all_lua[] =
    "local function lift(k) "
    "  redis.call('DEL', k) "
    "  local s = string.sub(k, #ARGV[3] + 1) "
    "  redis.call('DEL', ARGV[3] .. string.sub(s, 1, 1) .. string.sub(s, 3)) "
    "end "
    "local function esc(s) "
    "  return (string.gsub(s, '[%*%?%[%]\\]', '\\%0')) "
    "end "
    "local popped = redis.call('SPOP', KEYS[1], "
        NGX_HTTP_EAS_REDIS_UNLOCK_POP ") "
    "for _, k in ipairs(popped) do lift(k) end "
    "local c = ARGV[4] "
    "if c ~= '-' then "
    "  local z = string.sub(KEYS[1], #ARGV[3] + 7) "
    "  local r = redis.call('SCAN', c, 'MATCH', "
    "    esc(ARGV[3]) .. '[ua]l:' .. esc(z) .. ':*', "
    "    'COUNT', " NGX_HTTP_EAS_REDIS_UNLOCK_COUNT ") "
    "  for _, k in ipairs(r[2]) do lift(k) end "
    "  c = r[1] "
    "  if c == '0' then c = '-' end "
    "end "
    "if c == '-' and #popped < " NGX_HTTP_EAS_REDIS_UNLOCK_POP " then "
    "  redis.call('PUBLISH', ARGV[1], ARGV[2]) "
    "  return {c, 1} "
    "end "
    "return {c, 0}";


/*
 * a walk of lift-all under way: its arguments, kept between steps, and
 * the admin request waiting for it (NULL: none, or it went)
 */
typedef struct {
    ngx_uint_t                       steps;      /* answered, not last */
    ngx_uint_t                       lifted;     /* on this gateway */
    ngx_http_request_t              *request;
    ngx_pool_cleanup_t              *cleanup;
    ngx_http_eas_redis_lifted_pt     done;
    ngx_event_t                      timer;
    size_t                           len[4];
    u_char                           cursor[NGX_INT64_LEN];
    u_char                           data[1];    /* set, channel,
                                                    message, prefix */
} ngx_http_eas_redis_unlock_all_t;


static ngx_int_t ngx_http_eas_redis_unlock_step(
    ngx_http_eas_redis_unlock_all_t *all);
static void ngx_http_eas_redis_on_unlock_step(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_unlock_answer(
    ngx_http_eas_redis_unlock_all_t *all, ngx_int_t shared);
static void ngx_http_eas_redis_unlock_late(ngx_event_t *ev);
static void ngx_http_eas_redis_unlock_left(void *data);


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

    if (key) {
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
            /*
             * held by Redis until it answers, which may be after the
             * request went (its client closed): the request's cleanup
             * tells it so
             */

            u = ngx_alloc(sizeof(ngx_http_eas_redis_unlock_t),
                          r->connection->log);
            if (u == NULL) {
                return NGX_DECLINED;
            }

            u->cleanup = ngx_pool_cleanup_add(r->pool, 0);
            if (u->cleanup == NULL) {
                ngx_free(u);
                return NGX_DECLINED;
            }

            u->request = r;
            u->kind = kind;
            u->key = *key;
            u->found = found;
            u->done = done;
        }

        if (ngx_http_eas_redis_eval(u ? ngx_http_eas_redis_on_unlock : NULL,
                                    u, ngx_http_eas_redis_unlock_lua,
                                    sizeof(ngx_http_eas_redis_unlock_lua)
                                    - 1, 3, 8, argv, argvlen)
            != NGX_OK)
        {
            if (u) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "eas: shared state is down: the lockout of "
                              "\"%V\" is lifted on this gateway only",
                              key);
                ngx_free(u);
            }

            return NGX_DECLINED;
        }

        if (u == NULL) {
            return NGX_DECLINED;
        }

        u->cleanup->handler = ngx_http_eas_redis_unlock_gone;
        u->cleanup->data = u;

        /* the request waits for Redis's answer; a client gone ends it */
        r->main->count++;
        r->read_event_handler = ngx_http_test_reading;

        return NGX_DONE;
    }

    /* every lockout: the admin API waits with ..._unlock_every() */

    (void) ngx_http_eas_redis_unlock_every(NULL, zone, 0, NULL);

    return NGX_DECLINED;
}


/*
 * Lift-all on Redis: a walk of steps, each sent when the one before is
 * answered, so that Redis serves the others in between (this gateway's
 * locks are lifted already, the other gateways' when the walk ends).
 * The admin request waits for the end of the walk, at most "timeout":
 * then it is answered that the walk goes on (or that Redis did not
 * answer the first step), and the walk goes on without it.  A request
 * that goes first (its client closed) leaves the walk alone.
 */

ngx_int_t
ngx_http_eas_redis_unlock_every(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    ngx_uint_t n, ngx_http_eas_redis_lifted_pt done)
{
    u_char                           *p;
    size_t                            len;
    ngx_int_t                         rc;
    ngx_http_eas_redis_conf_t        *rcf;
    ngx_http_eas_redis_unlock_all_t  *all;
    u_char                            set[512], m[1024];

    rcf = ngx_http_eas_redis_get_conf();

    if (rcf == NULL || zone == NULL) {
        return NGX_ABORT;
    }

    if (zone->shm.name.len + rcf->prefix.len + 8 > sizeof(set)
        || zone->shm.name.len + rcf->node.len + 64 > sizeof(m))
    {
        return NGX_DECLINED;
    }

    /*
     * the set lists the lock keys ("...ul:Z:KEY"); the hash of each is
     * the same key with "u:" for "ul:" ("a:", "al:")
     */

    len = ngx_http_eas_redis_key(set, "locks:", zone, NULL) - set;

    p = ngx_sprintf(m, "A %V 0 0 %uz 0 %V", &rcf->node, zone->shm.name.len,
                    &zone->shm.name);

    all = ngx_alloc(sizeof(ngx_http_eas_redis_unlock_all_t) + len
                    + rcf->channel.len + (p - m) + rcf->prefix.len,
                    ngx_cycle->log);
    if (all == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(all, sizeof(ngx_http_eas_redis_unlock_all_t));

    all->lifted = n;
    all->cursor[0] = '0';
    all->cursor[1] = '\0';
    all->len[0] = len;
    all->len[1] = rcf->channel.len;
    all->len[2] = p - m;
    all->len[3] = rcf->prefix.len;

    all->timer.handler = ngx_http_eas_redis_unlock_late;
    all->timer.data = all;
    all->timer.log = ngx_cycle->log;

    len = p - m;
    p = ngx_cpymem(all->data, set, all->len[0]);
    p = ngx_cpymem(p, rcf->channel.data, rcf->channel.len);
    p = ngx_cpymem(p, m, len);
    ngx_memcpy(p, rcf->prefix.data, rcf->prefix.len);

    if (r && done) {
        all->cleanup = ngx_pool_cleanup_add(r->pool, 0);
        if (all->cleanup == NULL) {
            ngx_free(all);
            return NGX_DECLINED;
        }
    }

    rc = ngx_http_eas_redis_unlock_step(all);

    if (rc != NGX_OK) {
        ngx_free(all);
        return NGX_DECLINED;
    }

    if (all->cleanup == NULL) {
        return NGX_DECLINED;
    }

    all->request = r;
    all->done = done;
    all->cleanup->handler = ngx_http_eas_redis_unlock_left;
    all->cleanup->data = all;

    /* not cancelable: the request waits for it */
    ngx_add_timer(&all->timer, rcf->timeout);

    /* the request waits for the walk; a client gone ends it */
    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_eas_redis_unlock_step(ngx_http_eas_redis_unlock_all_t *all)
{
    u_char       *p;
    size_t        argvlen[8];
    ngx_uint_t    i;
    const char   *argv[8];

    p = all->data;

    for (i = 0; i < 4; i++) {
        argv[3 + i] = (char *) p;
        argvlen[3 + i] = all->len[i];
        p += all->len[i];
    }

    argv[7] = (char *) all->cursor;
    argvlen[7] = ngx_strlen(all->cursor);

    if (ngx_http_eas_redis_eval(ngx_http_eas_redis_on_unlock_step, all,
                                ngx_http_eas_redis_unlock_all_lua,
                                sizeof(ngx_http_eas_redis_unlock_all_lua)
                                - 1, 1, 8, argv, argvlen)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "eas: shared state is down: every lockout is lifted "
                      "on this gateway; on Redis and the others %s",
                      all->steps ? "in part" : "not");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_eas_redis_on_unlock_step(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply                       *rr = reply;
    ngx_http_eas_redis_unlock_all_t  *all = data;

    redisReply  *c;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_INTEGER
        || rr->element[0]->len == 0
        || rr->element[0]->len >= sizeof(all->cursor))
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state: lifting every lockout failed "
                      "after %ui steps: %*s", all->steps,
                      (size_t) (rr && rr->type == REDIS_REPLY_ERROR
                                ? rr->len : sizeof("no answer") - 1),
                      rr && rr->type == REDIS_REPLY_ERROR
                      ? rr->str : "no answer");
        goto failed;
    }

    c = rr->element[0];

    if (rr->element[1]->integer) {
        /* the walk ended, the gateways were told */
        ngx_http_eas_redis_unlock_answer(all, NGX_OK);
        ngx_free(all);
        return;
    }

    if (++all->steps == NGX_HTTP_EAS_REDIS_UNLOCK_STEPS) {
        /* locks made faster than a step lifts them: not for ever */
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state: lifting every lockout stopped "
                      "after %ui steps", all->steps);
        goto failed;
    }

    ngx_memcpy(all->cursor, c->str, c->len);
    all->cursor[c->len] = '\0';

    if (ngx_http_eas_redis_unlock_step(all) == NGX_OK) {
        return;
    }

failed:

    ngx_http_eas_redis_unlock_answer(all, NGX_ERROR);
    ngx_free(all);
}


/* the request waiting for the walk answered, if it is still there */

static void
ngx_http_eas_redis_unlock_answer(ngx_http_eas_redis_unlock_all_t *all,
    ngx_int_t shared)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = all->request;

    if (r == NULL) {
        return;
    }

    all->request = NULL;
    all->cleanup->handler = NULL;

    if (all->timer.timer_set) {
        ngx_del_timer(&all->timer);
    }

    c = r->connection;

    ngx_http_finalize_request(r, all->done(r, all->lifted, shared));
    ngx_http_run_posted_requests(c);
}


/*
 * "timeout" passed: the walk goes on without the request, unless Redis
 * did not answer its first step (then the link is dropped at about the
 * same time, and the walk with it)
 */

static void
ngx_http_eas_redis_unlock_late(ngx_event_t *ev)
{
    ngx_http_eas_redis_unlock_all_t  *all = ev->data;

    if (all->steps == 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state: lifting every lockout: Redis "
                      "did not answer in time");
    }

    ngx_http_eas_redis_unlock_answer(all, all->steps ? NGX_AGAIN
                                                     : NGX_ERROR);
}


/* the request waiting for the walk went (its client closed) */

static void
ngx_http_eas_redis_unlock_left(void *data)
{
    ngx_http_eas_redis_unlock_all_t  *all = data;

    all->request = NULL;

    if (all->timer.timer_set) {
        ngx_del_timer(&all->timer);
    }
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

    if (r == NULL) {
        /* the client went: nobody to answer */
        ngx_free(u);
        return;
    }

    u->cleanup->handler = NULL;
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

    ngx_free(u);
}


/* the request waiting for an unlock went (its client closed) */

static void
ngx_http_eas_redis_unlock_gone(void *data)
{
    ngx_http_eas_redis_unlock_t  *u = data;

    u->request = NULL;
}
