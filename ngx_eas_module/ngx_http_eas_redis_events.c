
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
 * What the gateways share besides lockouts: eas_device_max admission
 * (each user's set of counted devices on Redis), the newest Ping of a
 * device (published, so that other gateways end the one they hold), and
 * every message read on the channel, dispatched (the lines are listed in
 * ngx_http_eas_redis_state.c).
 */


static void ngx_http_eas_redis_on_admit(redisAsyncContext *ac, void *reply,
    void *data);
static ngx_int_t ngx_http_eas_redis_publish(char type, ngx_uint_t kind,
    ngx_shm_zone_t *zone, ngx_str_t *s2, ngx_str_t *s3);


/* when this worker last said a message was not understood */

static time_t  ngx_http_eas_redis_junk_logged;
static time_t  ngx_http_eas_redis_name_logged;


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

    argv[3] = (char *) key;
    argvlen[3] = ngx_http_eas_redis_key(key, "d:", devices, &lower) - key;
    argv[4] = (char *) dev;
    argvlen[4] = t->addr.len;
    ngx_strlow(dev, t->addr.data, t->addr.len);
    argv[5] = (char *) max;
    argvlen[5] = ngx_sprintf(max, "%ui", u->max_devices) - max;
    argv[6] = (char *) ttl;
    argvlen[6] = ngx_sprintf(ttl, "%T", rcf->device_ttl) - ttl;

    if (ngx_http_eas_redis_eval(ngx_http_eas_redis_on_admit, t,
                                ngx_http_eas_redis_admit_lua,
                                sizeof(ngx_http_eas_redis_admit_lua) - 1, 1,
                                7, argv, argvlen)
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


/*
 * the admin API deleted a device: its record and its place on Redis go
 * too (ngx_http_eas_redis_inv_pending.c)
 */

ngx_int_t
ngx_http_eas_redis_device_delete(ngx_shm_zone_t *devices, ngx_str_t *user,
    ngx_str_t *device_id)
{
    return ngx_http_eas_redis_inventory_delete(devices, user, device_id);
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

    if ((type == 'L' || type == 'U')
        && (n[0] == NGX_HTTP_EAS_CACHE_USER
            || n[0] == NGX_HTTP_EAS_CACHE_ADDRESS)
        && ngx_http_eas_redis_lock_key(n[0], &s2) != NGX_OK)
    {
        /* a key no gateway counts under: never taken into the zone */

        if (ngx_time() - ngx_http_eas_redis_name_logged >= 60) {
            ngx_http_eas_redis_name_logged = ngx_time();

            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "eas: shared state: a %s on \"%V\" of a %s that "
                          "is no identity or address a gateway locks, "
                          "refused (said once a minute)",
                          type == 'L' ? "lock" : "unlock", &rcf->channel,
                          n[0] == NGX_HTTP_EAS_CACHE_USER ? "user"
                                                          : "address");
        }

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


/*
 * The key of a lock or unlock read on the channel, as a gateway counts
 * under it: a user's identity, folded as requests and the runtime rules
 * are (UTF-8, no control byte, at most EAS_USER_MAX, the identity of
 * itself; with a directory of several domains "identity@domain", the
 * domain in lower case), an address as text (IPv4, IPv6, an IPv6 /64,
 * "unix:").  Anything else is no lock any gateway set.
 */

ngx_int_t
ngx_http_eas_redis_lock_key(ngx_uint_t kind, ngx_str_t *key)
{
    size_t     i;
    in_addr_t  a4;
    u_char     text[NGX_SOCKADDR_STRLEN];
#if (NGX_HAVE_INET6)
    size_t     len;
    u_char     a6[16];
#endif

    if (key->len == 0 || key->len > EAS_USER_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < key->len; i++) {
        if (key->data[i] < 0x20 || key->data[i] == 0x7f) {
            return NGX_DECLINED;
        }
    }

    if (kind == NGX_HTTP_EAS_CACHE_ADDRESS) {
        for (i = 0; i < key->len; i++) {
            if (key->data[i] <= 0x20 || key->data[i] >= 0x7f) {
                return NGX_DECLINED;
            }
        }

        if (key->len == 5 && ngx_strncmp(key->data, "unix:", 5) == 0) {
            return NGX_OK;
        }

        /* as a gateway writes it: "01.2.3.4" or "::1/64" never */

        a4 = ngx_inet_addr(key->data, key->len);

        if (a4 != INADDR_NONE) {
            return (ngx_inet_ntop(AF_INET, &a4, text, sizeof(text))
                    == key->len
                    && ngx_strncmp(text, key->data, key->len) == 0)
                   ? NGX_OK : NGX_DECLINED;
        }

#if (NGX_HAVE_INET6)
        len = key->len;

        if (len > 3 && ngx_strncmp(key->data + len - 3, "/64", 3) == 0) {
            len -= 3;

            /* a /64: the network, its host half zero, as ntop writes it */

            if (ngx_inet6_addr(key->data, len, a6) != NGX_OK) {
                return NGX_DECLINED;
            }

            for (i = 8; i < 16; i++) {
                if (a6[i]) {
                    return NGX_DECLINED;
                }
            }

            return (ngx_inet6_ntop(a6, text, sizeof(text)) == len
                    && ngx_strncmp(text, key->data, len) == 0)
                   ? NGX_OK : NGX_DECLINED;
        }

        /*
         * a whole IPv6 address only as a dual-stack listener gives an
         * IPv4 client ("::ffff:192.0.2.1"): any other is keyed by its /64
         */

        if (ngx_inet6_addr(key->data, len, a6) == NGX_OK
            && ngx_memcmp(a6, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
        {
            return (ngx_inet6_ntop(a6, text, sizeof(text)) == len
                    && ngx_strncmp(text, key->data, len) == 0)
                   ? NGX_OK : NGX_DECLINED;
        }
#endif

        return NGX_DECLINED;
    }

    /* the identity of itself, or of its name part before "@domain" */

    return ngx_http_eas_user_key(key->data, key->len);
}
