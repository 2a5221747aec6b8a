
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"
#include "ngx_http_eas_admin_rules.h"
#include "ngx_http_eas_admin.h"
#include "ngx_http_eas_redis_rules_int.h"


/*
 * The runtime rules shared by the gateways (ngx_http_eas_redis_rules.c):
 * the notifications of the channel, the rules they name read back from
 * the hash by a script, checked and applied to the zone; what Redis sent
 * that is refused, said once a minute.
 */


/*
 * "R" on the channel: the rule of FIELD, in the rules zone ZONE, was
 * changed on Redis.  A notification only: the rule is read from the
 * hash (so a message that no gateway wrote there changes nothing), and
 * the keys named while a read is under way are read together, each
 * once, however many messages named it, by a script whose reply stays
 * within what the reader takes whatever the hash holds (one string of
 * the entries there no longer than a rule, and how many were longer).
 * Applying one costs a lookup among the keys waiting; the file is
 * written at most once a second (ngx_http_eas_admin_dirty()).  More
 * keys waiting than a worker keeps: a reconciliation reads the whole
 * hash instead.
 */

typedef struct {
    u_short                      len;
    u_char                       own;      /* this gateway's change */
    u_char                       field[NGX_HTTP_EAS_REDIS_RULES_FIELD];
} ngx_http_eas_redis_rules_key_t;


static ngx_http_eas_redis_rules_key_t  *ngx_http_eas_redis_rules_keys;
static ngx_uint_t    ngx_http_eas_redis_rules_nkeys;     /* waiting */
static ngx_uint_t    ngx_http_eas_redis_rules_reading;   /* in flight:
                                                            the first n */
static ngx_uint_t    ngx_http_eas_redis_rules_overflow;
static ngx_uint_t    ngx_http_eas_redis_rules_own;       /* the next key */
static time_t        ngx_http_eas_redis_rules_logged;
static time_t        ngx_http_eas_redis_rules_ahead_logged;


/*
 * KEYS[1] the hash, ARGV[1] the longest value, ARGV[2..] the fields:
 * "FLEN VLEN FIELDVALUE" of each one there and no longer than a rule,
 * in one string, and how many longer were left out
 */

static const char  ngx_http_eas_redis_rules_read_lua[] =
    "local out, long, max = {}, 0, tonumber(ARGV[1]) "
    "for i = 2, #ARGV do "
    "  local f = ARGV[i] "
    "  local n = redis.call('HSTRLEN', KEYS[1], f) "
    "  if n > max then "
    "    long = long + 1 "
    "  elseif n > 0 then "
    "    local v = redis.call('HGET', KEYS[1], f) "
    "    out[#out + 1] = #f .. ' ' .. #v .. ' ' .. f .. v "
    "  end "
    "end "
    "return {table.concat(out), long}";


static void ngx_http_eas_redis_rules_read(void);
static void ngx_http_eas_redis_rules_on_read(redisAsyncContext *ac,
    void *reply, void *data);
static ngx_uint_t ngx_http_eas_redis_rules_is_own(ngx_str_t *field,
    ngx_uint_t n);
static void ngx_http_eas_redis_rules_ahead(ngx_http_eas_admin_rule_t *rule,
    uint64_t stamp);


/*
 * This gateway's own change, taken by Redis (ngx_http_eas_redis_rules.c):
 * read back as another gateway's would be, but its time is taken even
 * if Redis gave it a lower one than this gateway's (a clock run ahead
 * of Redis's by more than NGX_HTTP_EAS_ADMIN_SKEW), so that this zone
 * has the time the others have.
 */

void
ngx_http_eas_redis_rules_read_back(ngx_str_t *zname, ngx_str_t *field)
{
    ngx_str_t  none = ngx_null_string;

    ngx_http_eas_redis_rules_own = 1;
    ngx_http_eas_redis_rules_event(zname, field, &none);
    ngx_http_eas_redis_rules_own = 0;
}


void
ngx_http_eas_redis_rules_event(ngx_str_t *zname, ngx_str_t *field,
    ngx_str_t *value)
{
    ngx_uint_t                       i;
    ngx_shm_zone_t                  *zone;
    ngx_http_eas_redis_rules_key_t  *k;

    zone = ngx_http_eas_redis_rules_zone();

    if (zone == NULL || zname->len != zone->shm.name.len
        || ngx_strncmp(zname->data, zone->shm.name.data, zname->len) != 0)
    {
        /* no such rules zone here */
        return;
    }

    if (field->len < 2 || field->len > NGX_HTTP_EAS_REDIS_RULES_FIELD
        || (field->data[0] != NGX_HTTP_EAS_ADMIN_DEVICE
            && field->data[0] != NGX_HTTP_EAS_ADMIN_USER))
    {
        ngx_http_eas_redis_rules_junk("a rule on the channel",
                                      "not a rule's key");
        return;
    }

    if (ngx_http_eas_redis_rules_keys == NULL) {
        ngx_http_eas_redis_rules_keys = ngx_alloc(
                                 NGX_HTTP_EAS_REDIS_RULES_PENDING
                                 * sizeof(ngx_http_eas_redis_rules_key_t),
                                 ngx_cycle->log);
        if (ngx_http_eas_redis_rules_keys == NULL) {
            ngx_http_eas_redis_rules_later();
            return;
        }
    }

    k = ngx_http_eas_redis_rules_keys;

    /* a key being read may have been read before this change */

    for (i = ngx_http_eas_redis_rules_reading;
         i < ngx_http_eas_redis_rules_nkeys;
         i++)
    {
        if (k[i].len == field->len
            && ngx_memcmp(k[i].field, field->data, field->len) == 0)
        {
            k[i].own |= ngx_http_eas_redis_rules_own;
            return;
        }
    }

    if (i == NGX_HTTP_EAS_REDIS_RULES_PENDING) {
        /* read all of the hash once the keys waiting are read */
        ngx_http_eas_redis_rules_overflow = 1;
        return;
    }

    k[i].len = (u_short) field->len;
    k[i].own = (u_char) ngx_http_eas_redis_rules_own;
    ngx_memcpy(k[i].field, field->data, field->len);
    ngx_http_eas_redis_rules_nkeys++;

    if (!ngx_http_eas_redis_rules_reading) {
        ngx_http_eas_redis_rules_read();
    }
}


/* the script above on up to ..._READ keys waiting, the first ones */

static void
ngx_http_eas_redis_rules_read(void)
{
    size_t                           argvlen[5 + NGX_HTTP_EAS_REDIS_RULES_READ];
    ngx_int_t                        rc;
    ngx_uint_t                       i, n;
    const char                      *argv[5 + NGX_HTTP_EAS_REDIS_RULES_READ];
    ngx_shm_zone_t                  *zone;
    ngx_http_eas_redis_rules_key_t  *k;
    u_char                           max[NGX_INT64_LEN];

    zone = ngx_http_eas_redis_rules_zone();
    n = ngx_min(ngx_http_eas_redis_rules_nkeys,
                NGX_HTTP_EAS_REDIS_RULES_READ);

    if (zone == NULL || n == 0) {
        ngx_http_eas_redis_rules_nkeys = 0;
        return;
    }

    argv[4] = (char *) max;
    argvlen[4] = ngx_sprintf(max, "%uz",
                             (size_t) NGX_HTTP_EAS_REDIS_RULES_VALUE)
                 - max;

    k = ngx_http_eas_redis_rules_keys;

    for (i = 0; i < n; i++) {
        argv[5 + i] = (char *) k[i].field;
        argvlen[5 + i] = k[i].len;
    }

    rc = ngx_http_eas_redis_rules_eval(ngx_http_eas_redis_rules_on_read,
                                   (void *) (uintptr_t) n,
                                   ngx_http_eas_redis_rules_read_lua,
                                   sizeof(ngx_http_eas_redis_rules_read_lua)
                                   - 1, zone, (int) (5 + n), argv, argvlen);

    if (rc != NGX_OK) {
        /* Redis down: its return reconciles (a name too long: never) */
        ngx_http_eas_redis_rules_nkeys = 0;
        ngx_http_eas_redis_rules_overflow = 0;

        if (rc == NGX_DECLINED) {
            ngx_http_eas_redis_rules_later();
        }

        return;
    }

    ngx_http_eas_redis_rules_reading = n;
}


static void
ngx_http_eas_redis_rules_on_read(redisAsyncContext *ac, void *reply,
    void *data)
{
    redisReply  *rr = reply;

    ngx_uint_t                       n, changed;
    ngx_shm_zone_t                  *zone;
    ngx_http_eas_redis_rules_key_t  *k;

    n = (ngx_uint_t) (uintptr_t) data;
    k = ngx_http_eas_redis_rules_keys;
    zone = ngx_http_eas_redis_rules_zone();

    ngx_http_eas_redis_rules_reading = 0;

    if (rr == NULL || zone == NULL || rr->type != REDIS_REPLY_ARRAY
        || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_INTEGER
        || n > ngx_http_eas_redis_rules_nkeys)
    {
        if (rr && rr->type == REDIS_REPLY_ERROR) {
            ngx_http_eas_redis_rules_junk("reading a rule", rr->str);
        }

        ngx_http_eas_redis_rules_nkeys = 0;
        ngx_http_eas_redis_rules_overflow = 0;
        ngx_http_eas_redis_rules_later();
        return;
    }

    if (rr->element[1]->integer != 0) {
        ngx_http_eas_redis_rules_junk("a rule on the channel",
                                      "an entry longer than a rule");
    }

    changed = 0;

    if (ngx_http_eas_redis_rules_entries(zone, rr->element[0],
                                         "a rule on the channel", &changed,
                                         n)
        != NGX_OK)
    {
        ngx_http_eas_redis_rules_junk("a rule on the channel",
                                      "a reply not understood");
    }

    if (changed) {
        ngx_http_eas_admin_dirty(zone->data);
    }

    ngx_memmove(k, &k[n],
                (ngx_http_eas_redis_rules_nkeys - n)
                * sizeof(ngx_http_eas_redis_rules_key_t));
    ngx_http_eas_redis_rules_nkeys -= n;

    if (ngx_http_eas_redis_rules_nkeys) {
        ngx_http_eas_redis_rules_read();
        return;
    }

    if (ngx_http_eas_redis_rules_overflow) {
        ngx_http_eas_redis_rules_overflow = 0;
        ngx_http_eas_redis_rules_sync();
    }
}


/*
 * "FLEN VLEN FIELDVALUE" entries in one string (the scripts' replies),
 * each taken; *changed set if the zone changed; "own": of the first own
 * keys waiting, those this gateway changed (0: a page of the hash).
 * NGX_ERROR: not understood from there on.
 */

ngx_int_t
ngx_http_eas_redis_rules_entries(ngx_shm_zone_t *zone, redisReply *blob,
    const char *where, ngx_uint_t *changed, ngx_uint_t own)
{
    u_char       *p, *last;
    uint64_t      n[2];
    ngx_str_t     field, value;
    const char   *why;

    p = (u_char *) blob->str;
    last = p + blob->len;

    while (p < last) {

        if (ngx_http_eas_redis_rules_number(&p, last, 65536, &n[0])
            != NGX_OK
            || ngx_http_eas_redis_rules_number(&p, last, 65536, &n[1])
               != NGX_OK
            || (uint64_t) (last - p) < n[0] + n[1])
        {
            return NGX_ERROR;
        }

        field.data = p;
        field.len = n[0];
        value.data = p + n[0];
        value.len = n[1];
        p += n[0] + n[1];

        why = NULL;

        if (ngx_http_eas_redis_rules_take(zone, &field, &value,
                               ngx_http_eas_redis_rules_is_own(&field, own),
                               &why)
            == NGX_OK)
        {
            *changed = 1;
        }

        if (why) {
            ngx_http_eas_redis_rules_junk(where, why);
        }
    }

    return NGX_OK;
}


/* a key of the first n waiting, read back after this gateway's change */

static ngx_uint_t
ngx_http_eas_redis_rules_is_own(ngx_str_t *field, ngx_uint_t n)
{
    ngx_uint_t                       i;
    ngx_http_eas_redis_rules_key_t  *k;

    k = ngx_http_eas_redis_rules_keys;

    for (i = 0; i < n; i++) {
        if (k[i].own && k[i].len == field->len
            && ngx_memcmp(k[i].field, field->data, field->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * One rule from Redis, checked as the admin API checks its input, and
 * applied if newer (own: this gateway's change read back).  NGX_OK: the
 * zone changed.  *why: refused.
 */

ngx_int_t
ngx_http_eas_redis_rules_take(ngx_shm_zone_t *zone, ngx_str_t *field,
    ngx_str_t *value, ngx_uint_t own, const char **why)
{
    u_char                     *p, *last;
    size_t                      max;
    uint64_t                    stamp, who_len;
    ngx_int_t                   rc;
    ngx_str_t                   access;
    ngx_uint_t                  i;
    ngx_http_eas_admin_rule_t   rule;

    ngx_memzero(&rule, sizeof(ngx_http_eas_admin_rule_t));

    if (field->len < 2
        || (field->data[0] != NGX_HTTP_EAS_ADMIN_DEVICE
            && field->data[0] != NGX_HTTP_EAS_ADMIN_USER))
    {
        *why = "not a rule's key";
        return NGX_DECLINED;
    }

    rule.field = field->data[0];
    max = rule.field == NGX_HTTP_EAS_ADMIN_DEVICE ? EAS_DEVICE_ID_MAX
                                                  : EAS_USER_MAX;

    p = value->data;
    last = p + value->len;

    /* ACCESS */

    access.data = p;

    while (p < last && *p != ' ') {
        p++;
    }

    access.len = p - access.data;

    i = ngx_http_eas_admin_access_parse(&access);

    if (access.len == 4 && ngx_strncmp(access.data, "none", 4) == 0) {
        i = NGX_HTTP_EAS_ACCESS_NONE;

    } else if (i == (ngx_uint_t) NGX_ERROR
               || (i == NGX_HTTP_EAS_ADMIN_LOST_ACCESS
                   && rule.field != NGX_HTTP_EAS_ADMIN_DEVICE))
    {
        *why = "not an access (allow, block, lost for a device, none)";
        return NGX_DECLINED;
    }

    rule.access = i;

    /* STAMP WHOLEN */

    if (p == last || *p++ != ' '
        || ngx_http_eas_redis_rules_number(&p, last,
                                           NGX_HTTP_EAS_ADMIN_STAMP_MAX,
                                           &stamp) != NGX_OK
        || ngx_http_eas_redis_rules_number(&p, last,
                                           NGX_HTTP_EAS_ADMIN_WHO_LEN,
                                           &who_len) != NGX_OK
        || (uint64_t) (last - p) < who_len)
    {
        *why = "a time or who made it missing, or too long";
        return NGX_DECLINED;
    }

    /*
     * a time only orders the changes: one ahead of this gateway's clock
     * is taken (refusing it would refuse every change made after it);
     * the bound of the number above keeps it far from overflowing
     */

    if (stamp == 0) {
        *why = "a time of zero";
        return NGX_DECLINED;
    }

    /* WHO, as ngx_http_eas_admin_who() writes it */

    rule.who.data = p;
    rule.who.len = who_len;

    for (i = 0; i < who_len; i++) {
        if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\') {
            *why = "who made it is not printable";
            return NGX_DECLINED;
        }
    }

    /* VALUE, as the admin API takes it, and the key it has */

    rule.value.data = p + who_len;
    rule.value.len = last - rule.value.data;

    if (rule.value.len == 0 || rule.value.len > max
        || rule.value.data[0] == '~'
        || rule.value.len + 1 != field->len)
    {
        *why = "not a DeviceId or user the admin API takes";
        return NGX_DECLINED;
    }

    for (i = 0; i < rule.value.len; i++) {
        if (rule.value.data[i] < 0x20 || rule.value.data[i] == 0x7f
            || ngx_tolower(rule.value.data[i]) != field->data[1 + i])
        {
            *why = "not a DeviceId or user the admin API takes";
            return NGX_DECLINED;
        }
    }

    /* a user as the admin API keeps it: the identity requests have */

    if (rule.field == NGX_HTTP_EAS_ADMIN_USER
        && ngx_http_eas_user_key(rule.value.data, rule.value.len) != NGX_OK)
    {
        *why = "a user not folded as requests are";
        return NGX_DECLINED;
    }

    /*
     * one further ahead than NGX_HTTP_EAS_ADMIN_SKEW is no real change:
     * older than any, so that the admin API overrides it everywhere
     */

    if (ngx_http_eas_admin_real(stamp) != stamp) {
        ngx_http_eas_redis_rules_ahead(&rule, stamp);
        stamp = NGX_HTTP_EAS_ADMIN_STAMP_FUTURE;
    }

    /* a removal older than keep_removals= drops an older rule only */

    rc = ngx_http_eas_admin_apply(zone, &rule, stamp, own);

    if (rc == NGX_DONE) {
        /* the same rule, made newer by Redis: nothing to say or write */
        return NGX_DECLINED;
    }

    if (rc == NGX_BUSY) {
        *why = "the eas_admin_rules zone is full";
        return NGX_DECLINED;
    }

    if (rc == NGX_AGAIN) {
        /* the removal of a rule not held here: kept, nothing to say */
        return NGX_OK;
    }

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "eas: rule of %s \"%V\" %s by another gateway "
                      "(%V)", rule.field == NGX_HTTP_EAS_ADMIN_DEVICE
                              ? "device_id" : "user", &rule.value,
                      rule.access == NGX_HTTP_EAS_ACCESS_NONE
                      ? "removed"
                      : rule.access == NGX_HTTP_EAS_ACCESS_ALLOWED
                        ? "set to allow"
                        : rule.access == NGX_HTTP_EAS_ACCESS_BLOCKED
                          ? "set to block" : "set to lost", &rule.who);
    }

    return rc;
}


/* "N " with N at most max: *pp moves past it */

ngx_int_t
ngx_http_eas_redis_rules_number(u_char **pp, u_char *last, uint64_t max,
    uint64_t *n)
{
    u_char  *p;

    p = *pp;
    *n = 0;

    if (p == last || *p < '0' || *p > '9') {
        return NGX_ERROR;
    }

    while (p < last && *p >= '0' && *p <= '9') {
        *n = *n * 10 + (*p++ - '0');

        if (*n > max) {
            return NGX_ERROR;
        }
    }

    if (p == last || *p++ != ' ') {
        return NGX_ERROR;
    }

    *pp = p;

    return NGX_OK;
}


/*
 * A rule on Redis stamped far ahead of this gateway's clock: said once a
 * minute per worker at most
 */

static void
ngx_http_eas_redis_rules_ahead(ngx_http_eas_admin_rule_t *rule,
    uint64_t stamp)
{
    ngx_time_t  *tp;

    if (ngx_time() - ngx_http_eas_redis_rules_ahead_logged < 60) {
        return;
    }

    ngx_http_eas_redis_rules_ahead_logged = ngx_time();
    tp = ngx_timeofday();

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "eas: shared state: the rule of %s \"%V\" on Redis has "
                  "a time %uLs ahead of this gateway's clock (forged, or "
                  "of a clock run wild): taken as older than any real "
                  "change (said once a minute)",
                  rule->field == NGX_HTTP_EAS_ADMIN_DEVICE
                  ? "device_id" : "user", &rule->value,
                  (stamp - ((uint64_t) tp->sec * 1000 + tp->msec)) / 1000);
}


/* refused, or Redis refused: said once a minute per worker at most */

void
ngx_http_eas_redis_rules_junk(const char *where, const char *why)
{
    if (ngx_time() - ngx_http_eas_redis_rules_logged < 60) {
        return;
    }

    ngx_http_eas_redis_rules_logged = ngx_time();

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "eas: shared state: %s refused: %s (said once a minute)",
                  where, why);
}
