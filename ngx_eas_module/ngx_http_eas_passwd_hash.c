
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The hashes of eas_preauth_user_file (docs/authentication.md): which
 * kind a stored hash is and whether it is well formed (at "nginx -t"),
 * what checking it costs, and the check itself, run in a thread: it
 * touches only its ngx_http_eas_passwd_verify_t.  Modern hashes go to
 * libcrypt's crypt_r(); apr1, {SHA} and {SSHA} are computed over
 * OpenSSL's digests (docs/design.md says why apr1's rounds are here).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_passwd.h"


/* an explicit fetch where OpenSSL 3 has it, the legacy digest before */
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
#define ngx_http_eas_md_fetch(name)  EVP_MD_fetch(NULL, name, NULL)
#define ngx_http_eas_md_free(md)     EVP_MD_free(md)
#else
#define ngx_http_eas_md_fetch(name)  ((EVP_MD *) EVP_get_digestbyname(name))
#define ngx_http_eas_md_free(md)
#endif


static ngx_int_t ngx_http_eas_passwd_check_modular(ngx_str_t *hash);
static ngx_int_t ngx_http_eas_crypt64(u_char *p, size_t len);
static size_t ngx_http_eas_crypt64_span(u_char *p, u_char *end);
static ngx_int_t ngx_http_eas_apr1(ngx_http_eas_passwd_verify_t *v);
static ngx_int_t ngx_http_eas_sha(ngx_http_eas_passwd_verify_t *v,
    ngx_uint_t salted);
static u_char *ngx_http_eas_to64(u_char *p, uint32_t v, ngx_uint_t n);


static u_char  ngx_http_eas_itoa64[] =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";


/*
 * The thread part: hash the password as the stored hash says and
 * compare in constant time.  Touches nothing but *data; wipes the
 * password and crypt's scratch space before returning.
 */

void
ngx_http_eas_passwd_verify(void *data)
{
    char                          *out;
    ngx_http_eas_passwd_verify_t  *v = data;

    switch (v->kind) {

    case NGX_HTTP_EAS_HASH_CRYPT:
        out = crypt_r((char *) v->password, (char *) v->hash, &v->crypt);

        if (out == NULL || out[0] == '*') {
            v->result = NGX_ERROR;
            break;
        }

        v->result = ngx_http_eas_secret_equal((u_char *) out,
                                              ngx_strlen(out), v->hash,
                                              v->hash_len)
                    ? NGX_OK : NGX_DECLINED;
        break;

    case NGX_HTTP_EAS_HASH_APR1:
        v->result = ngx_http_eas_apr1(v);
        break;

    case NGX_HTTP_EAS_HASH_SHA:
        v->result = ngx_http_eas_sha(v, 0);
        break;

    case NGX_HTTP_EAS_HASH_SSHA:
        v->result = ngx_http_eas_sha(v, 1);
        break;

    case NGX_HTTP_EAS_HASH_PLAIN:
        v->result = ngx_http_eas_secret_equal(v->password, v->password_len,
                                    v->hash + sizeof("{PLAIN}") - 1,
                                    v->hash_len - (sizeof("{PLAIN}") - 1))
                    ? NGX_OK : NGX_DECLINED;
        break;

    default:
        v->result = NGX_ERROR;
    }

    ngx_explicit_memzero(v->password, sizeof(v->password));
    ngx_explicit_memzero(&v->crypt, sizeof(struct crypt_data));
}


ngx_int_t
ngx_http_eas_passwd_result(void *data)
{
    ngx_http_eas_passwd_verify_t  *v = data;

    if (v->unknown && v->result == NGX_OK) {
        return NGX_DECLINED;
    }

    return v->result;
}


ngx_uint_t
ngx_http_eas_passwd_unknown(void *data)
{
    ngx_http_eas_passwd_verify_t  *v = data;

    return v->unknown;
}


/*
 * The work a hash takes, in rough microseconds of one core (measured
 * with libxcrypt): only the order matters.  $5$/$6$ cost their rounds,
 * bcrypt 2^cost, yescrypt N * r (one crypt64 digit each after the
 * flavor; a longer encoding is beyond any default and ranks first).
 */

uint64_t
ngx_http_eas_passwd_cost(ngx_http_eas_passwd_entry_t *e)
{
    u_char    *p, *q;
    uint64_t   rounds;

    p = e->hash.data;

    switch (e->kind) {

    case NGX_HTTP_EAS_HASH_PLAIN:
        return 0;

    case NGX_HTTP_EAS_HASH_SHA:
    case NGX_HTTP_EAS_HASH_SSHA:
        return 1;

    case NGX_HTTP_EAS_HASH_APR1:
        return 120;

    default: /* NGX_HTTP_EAS_HASH_CRYPT */
        break;
    }

    if (p[1] == '1') {
        return 120;
    }

    if (p[1] == '2') {
        return (uint64_t) 50 << ((p[4] - '0') * 10 + p[5] - '0');
    }

    if (p[1] == '5' || p[1] == '6') {
        rounds = 5000;

        if (ngx_strncmp(p + 3, "rounds=", 7) == 0) {
            rounds = 0;

            for (q = p + 10; *q >= '0' && *q <= '9'; q++) {
                if (rounds < 1000000000) {
                    rounds = rounds * 10 + *q - '0';
                }
            }

            /* crypt clamps the rounds to 1000 .. 999999999 */

            rounds = ngx_max(rounds, 1000);
        }

        return (p[1] == '5') ? rounds / 4 : rounds / 3;
    }

    /* $y$: flavor, N_log2 - 1, r - 1 */

    q = (u_char *) ngx_strchr(ngx_http_eas_itoa64, p[4]);

    if (q == NULL || p[4] == '\0' || p[5] == '$' || p[6] != '$'
        || q - ngx_http_eas_itoa64 >= 47)
    {
        return (uint64_t) -1;
    }

    rounds = (uint64_t) 1 << (q - ngx_http_eas_itoa64 + 1);

    q = (u_char *) ngx_strchr(ngx_http_eas_itoa64, p[5]);

    if (q == NULL || p[5] == '\0' || q - ngx_http_eas_itoa64 >= 47) {
        return (uint64_t) -1;
    }

    return rounds * (q - ngx_http_eas_itoa64 + 1) / 10;
}


/* the kind of a stored hash, or why it is refused */

const char *
ngx_http_eas_passwd_kind(ngx_str_t *hash, ngx_flag_t plain, ngx_uint_t *kind)
{
    long     n;
    u_char  *p;
    u_char   buf[NGX_HTTP_EAS_HASH_MAX + 1];

    if (hash->len == 0) {
        return "empty password hash";
    }

    if (hash->len > NGX_HTTP_EAS_HASH_MAX) {
        return "password hash too long";
    }

    p = hash->data;

    if (ngx_strlchr(p, p + hash->len, '\0') != NULL) {
        return "NUL byte in password hash";
    }

    if (hash->len >= 7 && ngx_strncmp(p, "{PLAIN}", 7) == 0) {
        if (!plain) {
            return "plain text password without the \"plain\" parameter";
        }

        *kind = NGX_HTTP_EAS_HASH_PLAIN;
        return NULL;
    }

    if (hash->len >= 5 && ngx_strncmp(p, "{SHA}", 5) == 0) {
        n = eas_base64_decode(p + 5, hash->len - 5, buf, sizeof(buf));

        if (n != 20) {
            return "invalid {SHA} hash";
        }

        *kind = NGX_HTTP_EAS_HASH_SHA;
        return NULL;
    }

    if (hash->len >= 6 && ngx_strncmp(p, "{SSHA}", 6) == 0) {
        n = eas_base64_decode(p + 6, hash->len - 6, buf, sizeof(buf));

        if (n <= 20) {
            return "invalid {SSHA} hash";
        }

        *kind = NGX_HTTP_EAS_HASH_SSHA;
        return NULL;
    }

    if (p[0] != '$') {
        return "unsupported password hash";
    }

    if (ngx_http_eas_passwd_check_modular(hash) != NGX_OK) {
        return "invalid or unsupported password hash";
    }

    if (hash->len >= 6 && ngx_strncmp(p, "$apr1$", 6) == 0) {
        *kind = NGX_HTTP_EAS_HASH_APR1;
        return NULL;
    }

    /* the system's crypt must know the method ($y$ needs libxcrypt) */

    ngx_memcpy(buf, p, hash->len);
    buf[hash->len] = '\0';

    switch (crypt_checksalt((char *) buf)) {

    case CRYPT_SALT_OK:
    case CRYPT_SALT_METHOD_LEGACY:
    case CRYPT_SALT_TOO_CHEAP:
        break;

    default:
        return "password hash method not enabled in the system's crypt";
    }

    *kind = NGX_HTTP_EAS_HASH_CRYPT;

    return NULL;
}


/*
 * The shapes of the modular crypt formats the module verifies:
 *
 *     $2a$, $2b$, $2y$ NN $ 53 chars              bcrypt
 *     $5$ [rounds=N$] salt $ 43 chars             SHA-256-crypt
 *     $6$ [rounds=N$] salt $ 86 chars             SHA-512-crypt
 *     $y$ params $ salt $ 43 chars                yescrypt
 *     $1$ salt $ 22 chars, $apr1$ salt $ 22       MD5-crypt, Apache's
 */

static ngx_int_t
ngx_http_eas_passwd_check_modular(ngx_str_t *hash)
{
    u_char  *p, *end;
    size_t   n, len;

    p = hash->data;
    end = p + hash->len;
    len = hash->len;

    if (len == 60 && p[1] == '2' && p[3] == '$'
        && (p[2] == 'a' || p[2] == 'b' || p[2] == 'y')
        && p[4] >= '0' && p[4] <= '3' && p[5] >= '0' && p[5] <= '9'
        && p[6] == '$')
    {
        return ngx_http_eas_crypt64(p + 7, 53);
    }

    if (len > 3 && (p[1] == '5' || p[1] == '6') && p[2] == '$') {
        n = (p[1] == '5') ? 43 : 86;
        p += 3;

        if (end - p > 7 && ngx_strncmp(p, "rounds=", 7) == 0) {
            p += 7;

            while (p < end && *p >= '0' && *p <= '9') {
                p++;
            }

            if (p == end || *p++ != '$') {
                return NGX_ERROR;
            }
        }

        while (p < end && *p != '$') {
            p++;
        }

        if (p == end || (size_t) (end - p - 1) != n) {
            return NGX_ERROR;
        }

        return ngx_http_eas_crypt64(p + 1, n);
    }

    if (len > 3 && p[1] == 'y' && p[2] == '$') {
        p += 3;

        /* params and salt: crypt64, each followed by "$" */

        for (n = 0; n < 2; n++) {
            p += ngx_http_eas_crypt64_span(p, end);

            if (p == end || *p++ != '$') {
                return NGX_ERROR;
            }
        }

        if (end - p != 43) {
            return NGX_ERROR;
        }

        return ngx_http_eas_crypt64(p, 43);
    }

    if ((len > 3 && p[1] == '1' && p[2] == '$')
        || (len > 6 && ngx_strncmp(p, "$apr1$", 6) == 0))
    {
        p += (p[1] == '1') ? 3 : 6;

        n = ngx_http_eas_crypt64_span(p, end);

        if (n == 0 || n > 8 || p + n == end || p[n] != '$') {
            return NGX_ERROR;
        }

        p += n + 1;

        if (end - p != 22) {
            return NGX_ERROR;
        }

        return ngx_http_eas_crypt64(p, 22);
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_eas_crypt64(u_char *p, size_t len)
{
    return (ngx_http_eas_crypt64_span(p, p + len) == len) ? NGX_OK
                                                          : NGX_ERROR;
}


static size_t
ngx_http_eas_crypt64_span(u_char *p, u_char *end)
{
    u_char  *start;

    for (start = p; p < end; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z')
              || (*p >= 'A' && *p <= 'Z') || *p == '.' || *p == '/'))
        {
            break;
        }
    }

    return p - start;
}


/*
 * Apache's MD5-crypt ("$apr1$"): MD5-crypt's thousand rounds with
 * Apache's magic.  Neither libcrypt nor libcrypto's API computes it, so
 * the rounds are composed here over OpenSSL's MD5; nginx's
 * ngx_crypt_apr1() allocates from a pool, which a thread may not touch.
 */

static ngx_int_t
ngx_http_eas_apr1(ngx_http_eas_passwd_verify_t *v)
{
    int          ok;
    u_char      *salt, *p, *last;
    size_t       saltlen, keylen;
    ngx_int_t    rc;
    ngx_uint_t   i;
    EVP_MD_CTX  *md5, *ctx1;
    EVP_MD      *md;
    u_char       final[16], out[NGX_HTTP_EAS_HASH_MAX + 1];

    salt = v->hash + sizeof("$apr1$") - 1;
    last = (u_char *) ngx_strchr(salt, '$');
    saltlen = last - salt;
    keylen = v->password_len;

    rc = NGX_ERROR;

    /* fetched once: an implicit fetch in each of the rounds costs */
    md = ngx_http_eas_md_fetch("MD5");
    md5 = EVP_MD_CTX_new();
    ctx1 = EVP_MD_CTX_new();

    if (md == NULL || md5 == NULL || ctx1 == NULL) {
        goto done;
    }

    ok = EVP_DigestInit_ex(md5, md, NULL)
         && EVP_DigestUpdate(md5, v->password, keylen)
         && EVP_DigestUpdate(md5, "$apr1$", sizeof("$apr1$") - 1)
         && EVP_DigestUpdate(md5, salt, saltlen)
         && EVP_DigestInit_ex(ctx1, md, NULL)
         && EVP_DigestUpdate(ctx1, v->password, keylen)
         && EVP_DigestUpdate(ctx1, salt, saltlen)
         && EVP_DigestUpdate(ctx1, v->password, keylen)
         && EVP_DigestFinal_ex(ctx1, final, NULL);

    for (i = keylen; ok && i > 0; i -= (i > 16 ? 16 : i)) {
        ok = EVP_DigestUpdate(md5, final, i > 16 ? 16 : i);
    }

    ngx_memzero(final, sizeof(final));

    for (i = keylen; ok && i; i >>= 1) {
        ok = EVP_DigestUpdate(md5, (i & 1) ? final : v->password, 1);
    }

    ok = ok && EVP_DigestFinal_ex(md5, final, NULL);

    for (i = 0; ok && i < 1000; i++) {
        ok = EVP_DigestInit_ex(ctx1, md, NULL)
             && ((i & 1) ? EVP_DigestUpdate(ctx1, v->password, keylen)
                         : EVP_DigestUpdate(ctx1, final, 16))
             && (i % 3 == 0 || EVP_DigestUpdate(ctx1, salt, saltlen))
             && (i % 7 == 0 || EVP_DigestUpdate(ctx1, v->password, keylen))
             && ((i & 1) ? EVP_DigestUpdate(ctx1, final, 16)
                         : EVP_DigestUpdate(ctx1, v->password, keylen))
             && EVP_DigestFinal_ex(ctx1, final, NULL);
    }

    if (!ok) {
        goto done;
    }

    p = ngx_cpymem(out, v->hash, last + 1 - v->hash);

    p = ngx_http_eas_to64(p, (final[0] << 16) | (final[6] << 8) | final[12],
                          4);
    p = ngx_http_eas_to64(p, (final[1] << 16) | (final[7] << 8) | final[13],
                          4);
    p = ngx_http_eas_to64(p, (final[2] << 16) | (final[8] << 8) | final[14],
                          4);
    p = ngx_http_eas_to64(p, (final[3] << 16) | (final[9] << 8) | final[15],
                          4);
    p = ngx_http_eas_to64(p, (final[4] << 16) | (final[10] << 8) | final[5],
                          4);
    p = ngx_http_eas_to64(p, final[11], 2);

    rc = ngx_http_eas_secret_equal(out, p - out, v->hash, v->hash_len)
         ? NGX_OK : NGX_DECLINED;

done:

    /* EVP_MD_CTX_free() wipes the digest state */
    EVP_MD_CTX_free(md5);
    EVP_MD_CTX_free(ctx1);
    ngx_http_eas_md_free(md);
    ngx_explicit_memzero(final, sizeof(final));

    return rc;
}


/* {SHA}: base64(SHA-1(password)); {SSHA}: base64(SHA-1(pw salt) salt) */

static ngx_int_t
ngx_http_eas_sha(ngx_http_eas_passwd_verify_t *v, ngx_uint_t salted)
{
    int           ok;
    long          n;
    size_t        skip;
    ngx_int_t     rc;
    EVP_MD_CTX   *sha1;
    u_char        stored[NGX_HTTP_EAS_HASH_MAX];
    u_char        digest[EVP_MAX_MD_SIZE];

    skip = salted ? sizeof("{SSHA}") - 1 : sizeof("{SHA}") - 1;

    n = eas_base64_decode(v->hash + skip, v->hash_len - skip, stored,
                          sizeof(stored));

    if (n < 20) {
        return NGX_ERROR;
    }

    sha1 = EVP_MD_CTX_new();
    if (sha1 == NULL) {
        return NGX_ERROR;
    }

    ok = EVP_DigestInit_ex(sha1, EVP_sha1(), NULL)
         && EVP_DigestUpdate(sha1, v->password, v->password_len)
         && (!salted || EVP_DigestUpdate(sha1, stored + 20, n - 20))
         && EVP_DigestFinal_ex(sha1, digest, NULL);

    rc = ok ? (ngx_http_eas_secret_equal(digest, 20, stored, 20)
               ? NGX_OK : NGX_DECLINED)
            : NGX_ERROR;

    EVP_MD_CTX_free(sha1);
    ngx_explicit_memzero(digest, sizeof(digest));

    return rc;
}


static u_char *
ngx_http_eas_to64(u_char *p, uint32_t v, ngx_uint_t n)
{
    while (n--) {
        *p++ = ngx_http_eas_itoa64[v & 0x3f];
        v >>= 6;
    }

    return p;
}
