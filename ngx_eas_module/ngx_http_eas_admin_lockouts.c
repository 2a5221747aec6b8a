
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_admin.h"
#include "ngx_http_eas_redis.h"


/*
 * The admin API's resources of the pre-auth zone
 * (ngx_http_eas_admin.c dispatches to them): "lockouts", the users
 * and addresses locked now, listed and lifted (on Redis too with
 * "eas_shared_state"), and "credentials", the cached credentials
 * dropped.
 */


/* the parameters each resource takes; NULL-terminated */

static char  *ngx_http_eas_admin_lockout_args[] =
    { "user", "address", "all", NULL };
static char  *ngx_http_eas_admin_credential_args[] = { "user", "all", NULL };


static ngx_int_t ngx_http_eas_admin_unlocked(ngx_http_request_t *r,
    ngx_uint_t kind, ngx_str_t *key, ngx_int_t lifted);
static ngx_int_t ngx_http_eas_admin_lifted(ngx_http_request_t *r,
    ngx_uint_t n, ngx_int_t shared);
static ngx_int_t ngx_http_eas_admin_ambiguous(ngx_http_request_t *r,
    ngx_str_t *keys, ngx_str_t *here);
static ngx_int_t ngx_http_eas_admin_lockout_key(ngx_http_request_t *r,
    ngx_str_t *key);
static u_char *ngx_http_eas_admin_lockout_raw(u_char *p, u_char *key,
    size_t len);


ngx_int_t
ngx_http_eas_admin_lockouts(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char                  *p, *buf;
    time_t                   now;
    size_t                   size;
    ngx_int_t                rc;
    ngx_str_t                key, raw, what, here;
    ngx_uint_t               i, n, kind, found;
    ngx_http_eas_lockout_t  *locks;

    if (acf->preauth == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no preauth_zone in \"eas_admin\"");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_none, NULL);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        locks = ngx_palloc(r->pool, NGX_HTTP_EAS_ADMIN_LIST_MAX
                                    * sizeof(ngx_http_eas_lockout_t));
        if (locks == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_cache_lockouts(acf->preauth, locks,
                                        NGX_HTTP_EAS_ADMIN_LIST_MAX);

        size = sizeof("{\"lockouts\":[\n]}\n");

        for (i = 0; i < n; i++) {
            size += sizeof("{\"kind\":\"address\",\"key\":\"\",\"failures\":"
                           ",\"until\":,\"left\":},\n")
                    + 2 * NGX_TIME_T_LEN + NGX_INT_T_LEN + 9 * locks[i].len
                    + sizeof(",\"raw\":\"\"");
        }

        buf = ngx_pnalloc(r->pool, size);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        now = ngx_time();
        p = ngx_cpymem(buf, "{\"lockouts\":[\n",
                       sizeof("{\"lockouts\":[\n") - 1);

        for (i = 0; i < n; i++) {
            p = ngx_sprintf(p, "{\"kind\":\"%s\",\"key\":\"",
                            locks[i].kind == NGX_HTTP_EAS_CACHE_USER
                            ? "user" : "address");
            p = ngx_http_eas_json_escape(p, locks[i].key, locks[i].len, NULL);
            p = ngx_http_eas_admin_lockout_raw(p, locks[i].key, locks[i].len);
            p = ngx_sprintf(p, "\",\"failures\":%ui,\"until\":%T,"
                            "\"left\":%T}%s\n", locks[i].failures,
                            locks[i].locked_until,
                            locks[i].locked_until - now,
                            i + 1 < n ? "," : "");
        }

        p = ngx_cpymem(p, "]}\n", 3);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
    }

    if (r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_lockout_args, NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_arg(r, "user", &key) == NGX_OK) {
        kind = NGX_HTTP_EAS_CACHE_USER;

    } else if (ngx_http_eas_admin_arg(r, "address", &key) == NGX_OK) {
        kind = NGX_HTTP_EAS_CACHE_ADDRESS;

    } else {
        rc = ngx_http_eas_admin_all(r);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        n = ngx_http_eas_cache_drop(acf->preauth, NGX_HTTP_EAS_CACHE_USER);

        buf = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 32);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        what.data = buf;
        what.len = ngx_sprintf(buf, "%ui lockouts", n) - buf;
        ngx_http_eas_admin_audit(r, "lift all lockouts", &what);

        /* several gateways: answered once the walk on Redis ended */

        rc = ngx_http_eas_redis_unlock_every(r, acf->preauth, n,
                                             ngx_http_eas_admin_lifted);
        if (rc == NGX_DONE) {
            return NGX_DONE;
        }

        return ngx_http_eas_admin_lifted(r, n, rc);
    }

    if (ngx_http_eas_admin_arg(r, "all", &what) == NGX_OK
        || (kind == NGX_HTTP_EAS_CACHE_USER
            && ngx_http_eas_admin_arg(r, "address", &what) == NGX_OK))
    {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "give one of user=, address= "
                                        "or all=1");
    }

    if (ngx_http_eas_admin_value(&key, EAS_USER_MAX) != NGX_OK) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid user or address");
    }

    if (kind == NGX_HTTP_EAS_CACHE_USER) {

        /* the key listed, or the identity of a name as typed */

        raw = key;
        rc = ngx_http_eas_admin_lockout_user(r, acf->preauth, &raw, &key,
                                             &what, &here);
        if (rc == NGX_BUSY) {
            return ngx_http_eas_admin_ambiguous(r, &what, &here);
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* NGX_DECLINED, no identity: a name listed with "raw", as it is */

    } else if (ngx_http_eas_admin_lockout_key(r, &key) != NGX_OK) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid user or address");
    }

    found = (ngx_http_eas_cache_clear(acf->preauth, kind, &key) == NGX_OK);

    /* several gateways: lifted on every one, answered with Redis's view */

    if (ngx_http_eas_redis_unlock(r, acf->preauth, kind, &key, found,
                                  ngx_http_eas_admin_unlocked)
        == NGX_DONE)
    {
        return NGX_DONE;
    }

    return ngx_http_eas_admin_unlocked(r, kind, &key, found);
}


/*
 * A lockout lifted here, and on Redis with "eas_shared_state" (lifted:
 * 1 if this gateway or Redis had it, NGX_ERROR if Redis refused).
 */

static ngx_int_t
ngx_http_eas_admin_unlocked(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_str_t *key, ngx_int_t lifted)
{
    u_char     *p, *buf;
    ngx_str_t   what;

    if (lifted == NGX_ERROR) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "the shared state did not lift "
                                        "the lockout (see the error log)");
    }

    if (!lifted) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no such counter");
    }

    if (ngx_http_eas_admin_audit_value(r, key, &what) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_eas_admin_audit(r, kind == NGX_HTTP_EAS_CACHE_USER
                                ? "lift lockout of user"
                                : "lift lockout of address", &what);

    /* the key lifted: the name typed may have been another */

    buf = ngx_pnalloc(r->pool, sizeof("{\"lifted\":1,\"key\":\"\"}\n")
                               + 9 * key->len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, "{\"lifted\":1,\"key\":\"",
                   sizeof("{\"lifted\":1,\"key\":\"") - 1);
    p = ngx_http_eas_json_escape(p, key->data, key->len, NULL);
    p = ngx_cpymem(p, "\"}\n", 3);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
}


/*
 * Every lockout lifted here (n of them); "shared" says what became of
 * it on Redis and the other gateways (ngx_http_eas_redis_unlock_every()):
 * NGX_OK lifted everywhere, NGX_AGAIN under way after "timeout" (202),
 * NGX_ERROR Redis refused or did not answer (503), NGX_DECLINED Redis
 * down (this gateway alone), NGX_ABORT no eas_shared_state.
 */

static ngx_int_t
ngx_http_eas_admin_lifted(ngx_http_request_t *r, ngx_uint_t n,
    ngx_int_t shared)
{
    u_char      *p, *buf;
    ngx_uint_t   status;

    buf = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 256);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = NGX_HTTP_OK;

    switch (shared) {

    case NGX_OK:
        p = ngx_sprintf(buf, "{\"lifted\":%ui,\"shared\":true}\n", n);
        break;

    case NGX_AGAIN:
        status = NGX_HTTP_ACCEPTED;
        p = ngx_sprintf(buf, "{\"lifted\":%ui,\"shared\":\"in progress\"}\n",
                        n);
        break;

    case NGX_ERROR:
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        p = ngx_sprintf(buf, "{\"error\":\"every lockout is lifted on "
                        "this gateway; Redis refused or did not answer in "
                        "time, the other gateways may keep theirs (see the "
                        "error log)\",\"lifted\":%ui,\"shared\":false}\n",
                        n);
        break;

    case NGX_DECLINED:
        p = ngx_sprintf(buf, "{\"lifted\":%ui,\"shared\":false}\n", n);
        break;

    default: /* NGX_ABORT */
        p = ngx_sprintf(buf, "{\"lifted\":%ui}\n", n);
        break;
    }

    return ngx_http_eas_admin_send(r, status, buf, p - buf);
}


/*
 * A key that is not UTF-8, or has a control byte (never one this
 * gateway locks, nor one it takes from another: one an older gateway
 * sent, or forged on the channel), is listed also as "raw": its bytes
 * percent-encoded, which "DELETE lockouts?user=RAW" lifts as they are
 * (the "key" shows such a byte as \u00XX, which is another name).
 */

static u_char *
ngx_http_eas_admin_lockout_raw(u_char *p, u_char *key, size_t len)
{
    u_char    *s, *end;
    uint32_t   c;

    static u_char  hex[] = "0123456789ABCDEF";

    s = key;
    end = key + len;

    while (s < end) {
        if (*s < 0x20 || *s == 0x7f) {
            break;
        }

        if (*s < 0x80) {
            s++;
            continue;
        }

        c = ngx_utf8_decode(&s, end - s);

        if (c > 0x10ffff) {
            break;
        }
    }

    if (s == end) {
        return p;
    }

    p = ngx_cpymem(p, "\",\"raw\":\"", sizeof("\",\"raw\":\"") - 1);

    for (s = key; s < end; s++) {
        if ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z')
            || (*s >= 'A' && *s <= 'Z') || *s == '.' || *s == '-'
            || *s == '_')
        {
            *p++ = *s;
            continue;
        }

        *p++ = '%';
        *p++ = hex[*s >> 4];
        *p++ = hex[*s & 0xf];
    }

    return p;
}


/*
 * A bare name with a directory of several domains (a user in each), or
 * a name that matches the locks of several: 409, the keys to choose
 * from and those of them locked on this gateway (Redis and the other
 * gateways may hold others), nothing lifted.
 */

static ngx_int_t
ngx_http_eas_admin_ambiguous(ngx_http_request_t *r, ngx_str_t *keys,
    ngx_str_t *here)
{
    u_char  *buf, *p;

    static char  text[] = "{\"error\":\"the name is a user in several "
                          "domains: lift the lockout of one by its key\","
                          "\"candidates\":%V,\"locked_here\":%V}\n";

    buf = ngx_pnalloc(r->pool, sizeof(text) + keys->len + here->len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, text, keys, here);

    return ngx_http_eas_admin_send(r, NGX_HTTP_CONFLICT, buf, p - buf);
}


/*
 * The key a zone counts an address under: an IPv6 address as its /64
 * (ngx_http_eas_preauth_query()); a user's is
 * ngx_http_eas_admin_lockout_user()'s.
 */

static ngx_int_t
ngx_http_eas_admin_lockout_key(ngx_http_request_t *r, ngx_str_t *key)
{
#if (NGX_HAVE_INET6)
    u_char  *p;
    size_t   n;
    u_char   a6[16];
#endif

#if (NGX_HAVE_INET6)

    if (ngx_strlchr(key->data, key->data + key->len, ':') == NULL
        || (key->len > 3
            && ngx_strncmp(key->data + key->len - 3, "/64", 3) == 0))
    {
        return NGX_OK;
    }

    if (ngx_inet6_addr(key->data, key->len, a6) != NGX_OK) {
        return NGX_ERROR;
    }

    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *) a6)) {
        return NGX_OK;
    }

    ngx_memzero(&a6[8], 8);

    p = ngx_pnalloc(r->pool, NGX_INET6_ADDRSTRLEN + 3);
    if (p == NULL) {
        return NGX_ERROR;
    }

    n = ngx_inet6_ntop(a6, p, NGX_INET6_ADDRSTRLEN);

    key->data = p;
    key->len = ngx_cpymem(p + n, "/64", 3) - p;

#endif

    return NGX_OK;
}


/*
 * "?user=IDENTITY" drops that user's cached answers (after a password
 * change): the user's next request of each device is verified by the
 * source again.  Without it, every cached credential goes, and the
 * known-good devices, which remember a password.
 */

ngx_int_t
ngx_http_eas_admin_credentials(ngx_http_request_t *r,
    ngx_http_eas_admin_conf_t *acf)
{
    u_char      *buf, *p;
    size_t       len;
    ngx_int_t    rc;
    ngx_str_t    what, user, *ids;
    ngx_uint_t   i, n;

    if (acf->preauth == NULL) {
        return ngx_http_eas_admin_error(r, NGX_HTTP_NOT_FOUND,
                                        "no preauth_zone in \"eas_admin\"");
    }

    if (r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_eas_admin_params(r, ngx_http_eas_admin_credential_args,
                                   NULL);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_eas_admin_arg(r, "user", &user) == NGX_OK) {

        if (ngx_http_eas_admin_arg(r, "all", &what) == NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "give user= or all=1");
        }

        /*
         * the name as listed, folded ("JDoe" is "jdoe"), and every
         * identity it stands for ("CORP\\jdoe" is "jdoe", or
         * "jdoe@corp.example" in a forest): never a silent no-op
         */

        if (ngx_http_eas_admin_value(&user, EAS_USER_MAX) != NGX_OK) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid user");
        }

        rc = ngx_http_eas_admin_user_identities(r, &user, &ids, &n);

        if (rc == NGX_DECLINED) {
            return ngx_http_eas_admin_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid user");
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len = sizeof("{\"dropped\":\"user\",\"identities\":[]}\n");

        for (i = 0; i < n; i++) {
            len += 9 * ids[i].len + sizeof("\"\",");
        }

        buf = ngx_pnalloc(r->pool, len);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(buf, "{\"dropped\":\"user\",\"identities\":[",
                       sizeof("{\"dropped\":\"user\",\"identities\":[") - 1);

        for (i = 0; i < n; i++) {
            ngx_http_eas_cache_drop_user(acf->preauth, &ids[i]);

            if (ngx_http_eas_admin_audit_value(r, &ids[i], &what) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_http_eas_admin_audit(r, "drop cached credentials of user",
                                     &what);

            *p++ = '"';
            p = ngx_http_eas_json_escape(p, ids[i].data, ids[i].len, NULL);
            *p++ = '"';

            if (i + 1 < n) {
                *p++ = ',';
            }
        }

        p = ngx_cpymem(p, "]}\n", 3);

        return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
    }

    rc = ngx_http_eas_admin_all(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    n = ngx_http_eas_cache_drop(acf->preauth,
                                NGX_HTTP_EAS_CACHE_CREDENTIALS);
    n += ngx_http_eas_cache_drop(acf->preauth, NGX_HTTP_EAS_CACHE_KNOWN);

    buf = ngx_pnalloc(r->pool, sizeof("{\"dropped\":}\n") + NGX_INT_T_LEN
                               + 32);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    what.data = buf;
    what.len = ngx_sprintf(buf, "%ui entries", n) - buf;
    ngx_http_eas_admin_audit(r, "drop cached credentials", &what);

    p = ngx_sprintf(buf, "{\"dropped\":%ui}\n", n);

    return ngx_http_eas_admin_send(r, NGX_HTTP_OK, buf, p - buf);
}
