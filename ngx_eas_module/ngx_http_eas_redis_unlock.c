
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
