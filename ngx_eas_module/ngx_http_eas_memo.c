
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_preauth.h"


/*
 * The connection's memo of its credential digests (docs/authentication.md,
 * "The digest memo").  A phone sends the same Authorization header on
 * every request of a keep-alive (or HTTP/2) connection; the keyed
 * digests of the pre-authentication zone (ngx_http_eas_cache.c) are a
 * function of the zone's key and of their input bytes only, so the
 * connection remembers, per digest, the last input and what it gave,
 * and a request whose input is byte for byte the same (compared in
 * constant time) takes the digest from the memo instead of hashing.
 * The header itself likewise: the same bytes, read by the same location,
 * give the same user, password and identity.
 *
 * Nothing else changes: the digest is looked up in the zone as before
 * (lock first, then the cache entry and its validity), so the memo can
 * only ever hand a request the digest its own credentials have.  It is
 * keyed by the zone (whose key is set once for the zone's life in this
 * process), lives in the connection (the real one under HTTP/2 streams),
 * is made only from a connection's second request on (a connection that
 * sends one request, like a held Ping, holds nothing more), and is wiped
 * and freed when the connection closes or another input replaces it.
 * HTTP/3 streams are not memoized.
 */


#define NGX_HTTP_EAS_MEMO_DIGEST  0
#define NGX_HTTP_EAS_MEMO_DEVICE  1


#define NGX_HTTP_EAS_MEMO_BASIC   2
#define NGX_HTTP_EAS_MEMO_SLOTS   3

/* an Authorization header value longer than this is not remembered */
#define NGX_HTTP_EAS_MEMO_HEADER_MAX  (EAS_BASIC_TOKEN_MAX + 64)

/*
 * The digests kept after the header's output (ngx_http_eas_memo_digests):
 * what they are of besides the header (the source, whether a device
 * key was made and of which DeviceId), then the credentials' digest,
 * the device's key and secret.
 */
#define NGX_HTTP_EAS_MEMO_EXT_IN   (NGX_HTTP_EAS_DIGEST_LEN + 3)
#define NGX_HTTP_EAS_MEMO_EXT_OUT  (3 * NGX_HTTP_EAS_DIGEST_LEN)
#define NGX_HTTP_EAS_MEMO_EXT_MAX  (NGX_HTTP_EAS_MEMO_EXT_IN               \
                                    + EAS_DEVICE_ID_MAX                    \
                                    + NGX_HTTP_EAS_MEMO_EXT_OUT)


typedef struct {
    void                       *key;      /* the zone's or the location's
                                             configuration, NULL: empty */
    size_t                      len;      /* of the input */
    size_t                      out;      /* of the output after it */
    size_t                      ext;      /* of the digests after that
                                             (the header's slot), 0: none */
    size_t                      size;     /* allocated */
    u_char                     *data;     /* input, output */
} ngx_http_eas_memo_slot_t;


typedef struct {
    ngx_http_eas_memo_slot_t    slot[NGX_HTTP_EAS_MEMO_SLOTS];
} ngx_http_eas_memo_t;


static ngx_http_eas_memo_slot_t *ngx_http_eas_memo_get(ngx_http_request_t *r,
    ngx_uint_t which);
static ngx_uint_t ngx_http_eas_memo_find(ngx_http_eas_memo_slot_t *slot,
    void *key, u_char *input, size_t len);
static void ngx_http_eas_memo_store(ngx_http_eas_memo_slot_t *slot,
    void *key, u_char *input, size_t len, u_char *output, size_t n,
    size_t room);
static void ngx_http_eas_memo_cleanup(void *data);


/* ngx_http_eas_cache_digest() through the memo */

ngx_int_t
ngx_http_eas_memo_digest(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    u_char *source, ngx_str_t *user, ngx_str_t *password, u_char *digest)
{
    u_char                    *p;
    ngx_int_t                  rc;
    ngx_http_eas_memo_slot_t  *slot;
    u_char                     in[NGX_HTTP_EAS_DIGEST_LEN + 2
                                  + EAS_BASIC_USER_MAX
                                  + EAS_BASIC_PASSWORD_MAX];

    if (user->len > EAS_BASIC_USER_MAX
        || password->len > EAS_BASIC_PASSWORD_MAX)
    {
        return ngx_http_eas_cache_digest(zone, source, user, password,
                                         digest);
    }

    slot = ngx_http_eas_memo_get(r, NGX_HTTP_EAS_MEMO_DIGEST);

    if (slot == NULL) {
        return ngx_http_eas_cache_digest(zone, source, user, password,
                                         digest);
    }

    /* what the digest is of, and nothing else: the same bytes, the same
     * digest under the same zone's key */

    p = ngx_cpymem(in, source, NGX_HTTP_EAS_DIGEST_LEN);
    *p++ = (u_char) (user->len >> 8);
    *p++ = (u_char) user->len;
    p = ngx_cpymem(p, user->data, user->len);
    p = ngx_cpymem(p, password->data, password->len);

    rc = NGX_OK;

    if (ngx_http_eas_memo_find(slot, zone->data, in, p - in)) {
        ngx_memcpy(digest, slot->data + slot->len, NGX_HTTP_EAS_DIGEST_LEN);

    } else {
        rc = ngx_http_eas_cache_digest(zone, source, user, password, digest);

        if (rc == NGX_OK) {
            ngx_http_eas_memo_store(slot, zone->data, in, p - in, digest,
                                    NGX_HTTP_EAS_DIGEST_LEN, 0);
        }
    }

    ngx_explicit_memzero(in, p - in);

    return rc;
}


/* ngx_http_eas_cache_device() through the memo */

ngx_int_t
ngx_http_eas_memo_device(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    ngx_str_t *user, ngx_str_t *device_id, ngx_str_t *password,
    u_char *device, u_char *secret)
{
    u_char                    *p;
    ngx_int_t                  rc;
    ngx_http_eas_memo_slot_t  *slot;
    u_char                     out[2 * NGX_HTTP_EAS_DIGEST_LEN];
    u_char                     in[2 + EAS_BASIC_USER_MAX + 2
                                  + EAS_DEVICE_ID_MAX
                                  + EAS_BASIC_PASSWORD_MAX];

    if (user->len > EAS_BASIC_USER_MAX
        || device_id->len > EAS_DEVICE_ID_MAX
        || password->len > EAS_BASIC_PASSWORD_MAX)
    {
        return ngx_http_eas_cache_device(zone, user, device_id, password,
                                         device, secret);
    }

    slot = ngx_http_eas_memo_get(r, NGX_HTTP_EAS_MEMO_DEVICE);

    if (slot == NULL) {
        return ngx_http_eas_cache_device(zone, user, device_id, password,
                                         device, secret);
    }

    /* the two lengths first: no two inputs of the digests run together */

    p = in;
    *p++ = (u_char) (user->len >> 8);
    *p++ = (u_char) user->len;
    p = ngx_cpymem(p, user->data, user->len);
    *p++ = (u_char) (device_id->len >> 8);
    *p++ = (u_char) device_id->len;
    p = ngx_cpymem(p, device_id->data, device_id->len);
    p = ngx_cpymem(p, password->data, password->len);

    rc = NGX_OK;

    if (ngx_http_eas_memo_find(slot, zone->data, in, p - in)) {
        ngx_memcpy(device, slot->data + slot->len, NGX_HTTP_EAS_DIGEST_LEN);
        ngx_memcpy(secret, slot->data + slot->len + NGX_HTTP_EAS_DIGEST_LEN,
                   NGX_HTTP_EAS_DIGEST_LEN);

    } else {
        rc = ngx_http_eas_cache_device(zone, user, device_id, password,
                                       device, secret);

        if (rc == NGX_OK) {
            ngx_memcpy(out, device, NGX_HTTP_EAS_DIGEST_LEN);
            ngx_memcpy(out + NGX_HTTP_EAS_DIGEST_LEN, secret,
                       NGX_HTTP_EAS_DIGEST_LEN);

            ngx_http_eas_memo_store(slot, zone->data, in, p - in, out,
                                    sizeof(out), 0);
        }
    }

    ngx_explicit_memzero(in, p - in);
    ngx_explicit_memzero(out, sizeof(out));

    return rc;
}


/*
 * The Authorization header as this location read it last on this
 * connection: the user and password it carried (one after the other in
 * buf, as eas_basic_parse() would point into it) and the identity
 * (ngx_http_eas_user_identity(), of the location's directory), so that
 * the same header again is neither decoded nor folded again.  NGX_OK:
 * found, and *found is the entry for ngx_http_eas_memo_digests();
 * NGX_DECLINED: not remembered, read it.
 */

ngx_int_t
ngx_http_eas_memo_basic(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_str_t *header, u_char *buf,
    eas_basic_t *basic, u_char *id, size_t *n, void **found)
{
    u_char                    *p;
    size_t                     user, password;
    ngx_http_eas_memo_slot_t  *slot;

    if (header->len > NGX_HTTP_EAS_MEMO_HEADER_MAX) {
        return NGX_DECLINED;
    }

    slot = ngx_http_eas_memo_get(r, NGX_HTTP_EAS_MEMO_BASIC);

    if (slot == NULL
        || !ngx_http_eas_memo_find(slot, pcf, header->data, header->len))
    {
        return NGX_DECLINED;
    }

    p = slot->data + slot->len;

    user = (p[0] << 8) | p[1];
    password = (p[2] << 8) | p[3];
    *n = (p[4] << 8) | p[5];
    p += 6;

    basic->user.data = buf;
    basic->user.len = user;
    basic->password.data = buf + user;
    basic->password.len = password;
    basic->reason = EAS_BASIC_OK;

    ngx_memcpy(buf, p, user + password);
    ngx_memcpy(id, p + user + password, *n);

    *found = slot;

    return NGX_OK;
}


/* remembers what ngx_http_eas_memo_basic() finds */

void
ngx_http_eas_memo_basic_keep(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_str_t *header, eas_basic_t *basic,
    u_char *id, size_t n)
{
    u_char                    *p;
    ngx_http_eas_memo_slot_t  *slot;
    u_char                     out[6 + EAS_BASIC_USER_MAX
                                   + EAS_BASIC_PASSWORD_MAX
                                   + EAS_BASIC_USER_MAX];

    if (header->len > NGX_HTTP_EAS_MEMO_HEADER_MAX
        || basic->user.len > EAS_BASIC_USER_MAX
        || basic->password.len > EAS_BASIC_PASSWORD_MAX
        || n > EAS_BASIC_USER_MAX)
    {
        return;
    }

    slot = ngx_http_eas_memo_get(r, NGX_HTTP_EAS_MEMO_BASIC);
    if (slot == NULL) {
        return;
    }

    p = out;
    *p++ = (u_char) (basic->user.len >> 8);
    *p++ = (u_char) basic->user.len;
    *p++ = (u_char) (basic->password.len >> 8);
    *p++ = (u_char) basic->password.len;
    *p++ = (u_char) (n >> 8);
    *p++ = (u_char) n;
    p = ngx_cpymem(p, basic->user.data, basic->user.len);
    p = ngx_cpymem(p, basic->password.data, basic->password.len);
    p = ngx_cpymem(p, id, n);

    /* room for the digests the same header leads to */

    ngx_http_eas_memo_store(slot, pcf, header->data, header->len, out,
                            p - out, NGX_HTTP_EAS_MEMO_EXT_MAX);

    ngx_explicit_memzero(out, p - out);
}


/*
 * The digests the header remembered by ngx_http_eas_memo_basic() led to
 * on this connection last: the credentials' digest of this source and,
 * where the lockout made them (device_id not NULL), the device's key and
 * secret of this DeviceId.  They are a function of the zone's key (the
 * location's zone) and of the user, password, identity (the header's,
 * under this location) and the source and DeviceId compared here, so
 * that a request repeating all of them takes its three digests from one
 * look instead of two memos each rebuilding and comparing its input.
 * NGX_OK: found, written to digest, device and secret; NGX_DECLINED:
 * go through ngx_http_eas_memo_digest() and ngx_http_eas_memo_device(),
 * then ngx_http_eas_memo_digests_keep().
 */

ngx_int_t
ngx_http_eas_memo_digests(void *found, u_char *source, ngx_str_t *device_id,
    u_char *digest, u_char *device, u_char *secret)
{
    u_char                    *p;
    size_t                     n;
    ngx_uint_t                 equal;
    ngx_http_eas_memo_slot_t  *slot;

    /* the header's entry ngx_http_eas_memo_basic() has just matched */

    slot = found;

    if (slot->ext == 0) {
        return NGX_DECLINED;
    }

    p = slot->data + slot->len + slot->out;
    n = device_id ? device_id->len : 0;

    if (slot->ext != NGX_HTTP_EAS_MEMO_EXT_IN + n + NGX_HTTP_EAS_MEMO_EXT_OUT
        || p[NGX_HTTP_EAS_DIGEST_LEN] != (device_id != NULL)
        || p[NGX_HTTP_EAS_DIGEST_LEN + 1] != (u_char) (n >> 8)
        || p[NGX_HTTP_EAS_DIGEST_LEN + 2] != (u_char) n)
    {
        return NGX_DECLINED;
    }

    equal = ngx_http_eas_secret_equal(p, NGX_HTTP_EAS_DIGEST_LEN, source,
                                      NGX_HTTP_EAS_DIGEST_LEN);

    if (n) {
        equal &= ngx_http_eas_secret_equal(p + NGX_HTTP_EAS_MEMO_EXT_IN, n,
                                           device_id->data, n);
    }

    if (!equal) {
        return NGX_DECLINED;
    }

    p += NGX_HTTP_EAS_MEMO_EXT_IN + n;

    ngx_memcpy(digest, p, NGX_HTTP_EAS_DIGEST_LEN);

    if (device_id) {
        ngx_memcpy(device, p + NGX_HTTP_EAS_DIGEST_LEN,
                   NGX_HTTP_EAS_DIGEST_LEN);
        ngx_memcpy(secret, p + 2 * NGX_HTTP_EAS_DIGEST_LEN,
                   NGX_HTTP_EAS_DIGEST_LEN);
    }

    return NGX_OK;
}


/* remembers what ngx_http_eas_memo_digests() finds, with the header's
 * slot holding this header */

void
ngx_http_eas_memo_digests_keep(ngx_http_request_t *r,
    ngx_http_eas_preauth_conf_t *pcf, ngx_str_t *header, u_char *source,
    ngx_str_t *device_id, u_char *digest, u_char *device, u_char *secret)
{
    u_char                    *p;
    size_t                     n;
    ngx_http_eas_memo_slot_t  *slot;

    n = device_id ? device_id->len : 0;

    if (header->len > NGX_HTTP_EAS_MEMO_HEADER_MAX || n > EAS_DEVICE_ID_MAX) {
        return;
    }

    slot = ngx_http_eas_memo_get(r, NGX_HTTP_EAS_MEMO_BASIC);

    if (slot == NULL
        || slot->len + slot->out + NGX_HTTP_EAS_MEMO_EXT_MAX > slot->size
        || !ngx_http_eas_memo_find(slot, pcf, header->data, header->len))
    {
        return;
    }

    p = slot->data + slot->len + slot->out;

    p = ngx_cpymem(p, source, NGX_HTTP_EAS_DIGEST_LEN);
    *p++ = (u_char) (device_id != NULL);
    *p++ = (u_char) (n >> 8);
    *p++ = (u_char) n;

    if (n) {
        p = ngx_cpymem(p, device_id->data, n);
    }

    p = ngx_cpymem(p, digest, NGX_HTTP_EAS_DIGEST_LEN);

    if (device_id) {
        p = ngx_cpymem(p, device, NGX_HTTP_EAS_DIGEST_LEN);
        p = ngx_cpymem(p, secret, NGX_HTTP_EAS_DIGEST_LEN);

    } else {
        ngx_memzero(p, 2 * NGX_HTTP_EAS_DIGEST_LEN);
        p += 2 * NGX_HTTP_EAS_DIGEST_LEN;
    }

    slot->ext = p - (slot->data + slot->len + slot->out);
}


/*
 * The memo of the connection the request came on, made on the second
 * request; NULL: none (the first request, HTTP/3, no memory).
 */

static ngx_http_eas_memo_slot_t *
ngx_http_eas_memo_get(ngx_http_request_t *r, ngx_uint_t which)
{
    ngx_http_eas_memo_t  *memo;

    memo = ngx_http_eas_connection_data(r, ngx_http_eas_memo_cleanup,
                                        sizeof(ngx_http_eas_memo_t));

    return memo ? &memo->slot[which] : NULL;
}


/*
 * What the cleanup entry with this handler keeps in the connection the
 * request came on (the real one under HTTP/2 streams), made zeroed on
 * the connection's second request, so that a connection sending one
 * request (a held Ping) holds nothing more; NULL: none (the first
 * request, HTTP/3, no memory).  Also the device record's
 * (ngx_http_eas_devices_seen.c).
 */

void *
ngx_http_eas_connection_data(ngx_http_request_t *r,
    ngx_pool_cleanup_pt handler, size_t size)
{
    ngx_connection_t    *c;
    ngx_pool_cleanup_t  *cln;

#if (NGX_HTTP_V3)
    if (r->http_version == NGX_HTTP_VERSION_30) {
        return NULL;
    }
#endif

    c = r->connection;

#if (NGX_HTTP_V2)
    if (r->stream) {
        /* streams share the connection, each has a connection of its own */
        c = r->stream->connection->connection;
    }
#endif

    for (cln = c->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == handler) {
            return cln->data;
        }
    }

    if (c->requests < 2) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(c->pool, size);
    if (cln == NULL) {
        return NULL;
    }

    ngx_memzero(cln->data, size);

    cln->handler = handler;

    return cln->data;
}


/* the input is byte for byte the remembered one, under the same key */

static ngx_uint_t
ngx_http_eas_memo_find(ngx_http_eas_memo_slot_t *slot, void *key,
    u_char *input, size_t len)
{
    return slot->key == key
           && ngx_http_eas_secret_equal(slot->data, slot->len, input, len);
}


/* room: bytes kept free after the output (the header's digests) */

static void
ngx_http_eas_memo_store(ngx_http_eas_memo_slot_t *slot, void *key,
    u_char *input, size_t len, u_char *output, size_t n, size_t room)
{
    if (slot->data) {
        ngx_explicit_memzero(slot->data, slot->size);
    }

    slot->key = NULL;
    slot->len = 0;
    slot->out = 0;
    slot->ext = 0;

    if (len + n + room > slot->size) {
        ngx_free(slot->data);

        slot->size = 0;
        slot->data = ngx_alloc(len + n + room, ngx_cycle->log);
        if (slot->data == NULL) {
            return;
        }

        slot->size = len + n + room;
    }

    ngx_memcpy(slot->data, input, len);
    ngx_memcpy(slot->data + len, output, n);
    slot->len = len;
    slot->out = n;
    slot->key = key;
}


static void
ngx_http_eas_memo_cleanup(void *data)
{
    ngx_http_eas_memo_t  *memo = data;

    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_EAS_MEMO_SLOTS; i++) {
        if (memo->slot[i].data) {
            ngx_explicit_memzero(memo->slot[i].data, memo->slot[i].size);
            ngx_free(memo->slot[i].data);
        }
    }

    ngx_explicit_memzero(memo, sizeof(ngx_http_eas_memo_t));
}
