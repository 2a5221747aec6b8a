
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
    ngx_http_request_t              *request;
    ngx_uint_t                       kind;
    ngx_str_t                        key;
    ngx_uint_t                       found;      /* this gateway had it */
    ngx_http_eas_redis_unlocked_pt   done;
} ngx_http_eas_redis_unlock_t;


static void ngx_http_eas_redis_on_unlock(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_eas_redis_unlock_all(u_char *set, size_t len,
    ngx_str_t *msg);


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


/* a walk of lift-all under way: its arguments, kept between steps */
typedef struct {
    ngx_uint_t                       steps;
    size_t                           len[4];
    u_char                           cursor[NGX_INT64_LEN];
    u_char                           data[1];    /* set, channel,
                                                    message, prefix */
} ngx_http_eas_redis_unlock_all_t;


static void ngx_http_eas_redis_unlock_step(
    ngx_http_eas_redis_unlock_all_t *all);
static void ngx_http_eas_redis_on_unlock_step(redisAsyncContext *ac,
    void *reply, void *data);


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

    ngx_http_eas_redis_unlock_all(set,
                                  ngx_http_eas_redis_key(set, "locks:", zone,
                                                         NULL) - set,
                                  &msg);

    return NGX_DECLINED;
}


/*
 * Lift-all on Redis: a walk of steps, each sent when the one before is
 * answered, so that Redis serves the others in between; the admin API
 * does not wait for it (this gateway's locks are lifted at once, the
 * other gateways' when the walk ends).
 */

static void
ngx_http_eas_redis_unlock_all(u_char *set, size_t len, ngx_str_t *msg)
{
    u_char                           *p;
    ngx_http_eas_redis_conf_t        *rcf;
    ngx_http_eas_redis_unlock_all_t  *all;

    rcf = ngx_http_eas_redis_get_conf();

    all = ngx_alloc(sizeof(ngx_http_eas_redis_unlock_all_t) + len
                    + rcf->channel.len + msg->len + rcf->prefix.len,
                    ngx_cycle->log);
    if (all == NULL) {
        return;
    }

    all->steps = 0;
    all->cursor[0] = '0';
    all->len[0] = len;
    all->len[1] = rcf->channel.len;
    all->len[2] = msg->len;
    all->len[3] = rcf->prefix.len;
    all->cursor[1] = '\0';

    p = ngx_cpymem(all->data, set, len);
    p = ngx_cpymem(p, rcf->channel.data, rcf->channel.len);
    p = ngx_cpymem(p, msg->data, msg->len);
    ngx_memcpy(p, rcf->prefix.data, rcf->prefix.len);

    ngx_http_eas_redis_unlock_step(all);
}


static void
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
        ngx_free(all);
    }
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
        ngx_free(all);
        return;
    }

    c = rr->element[0];

    if (rr->element[1]->integer) {
        ngx_free(all);
        return;
    }

    if (++all->steps == NGX_HTTP_EAS_REDIS_UNLOCK_STEPS) {
        /* locks made faster than a step lifts them: not for ever */
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "eas: shared state: lifting every lockout stopped "
                      "after %ui steps", all->steps);
        ngx_free(all);
        return;
    }

    ngx_memcpy(all->cursor, c->str, c->len);
    all->cursor[c->len] = '\0';

    ngx_http_eas_redis_unlock_step(all);
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
