/*
 * What one HMAC-SHA-256 of a 51-byte input costs with OpenSSL, three
 * ways (docs/design.md, "The keyed digest's pads"):
 *
 *   1  the key's padded blocks hashed once, two SHA-256 states copied
 *      per digest (ngx_http_eas_cache.c)
 *   2  EVP_MAC keyed once, EVP_MAC_CTX_dup() per digest
 *   3  EVP_MAC keyed once, EVP_MAC_init(ctx, NULL, 0, NULL) per digest
 *
 *   cc -O2 -o /tmp/hmac-cost bench/hmac-cost.c -lcrypto
 *   for way in 1 2 3; do for n in 100 1100; do
 *       valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *           /tmp/hmac-cost $way $n 2>&1 | grep refs
 *   done; done
 *
 * (refs(1100) - refs(100)) / 1000 is one digest.  All three print the
 * same first bytes of the digest.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>


static void pads(int n, unsigned char *key, unsigned char *msg,
    unsigned char *out);
static void mac(int way, int n, unsigned char *key, unsigned char *msg,
    unsigned char *out);


int
main(int argc, char **argv)
{
    int            way, n;
    unsigned char  key[32], msg[51], out[32];

    if (argc != 3) {
        fprintf(stderr, "usage: hmac-cost 1|2|3 COUNT\n");
        return 2;
    }

    way = atoi(argv[1]);
    n = atoi(argv[2]);

    memset(key, 7, sizeof(key));
    memset(msg, 9, sizeof(msg));
    memset(out, 0, sizeof(out));

    if (way == 1) {
        pads(n, key, msg, out);

    } else {
        mac(way, n, key, msg, out);
    }

    printf("%02x%02x%02x%02x\n", out[0], out[1], out[2], out[3]);

    return 0;
}


static void
pads(int n, unsigned char *key, unsigned char *msg, unsigned char *out)
{
    int            i;
    EVP_MD_CTX    *inner, *outer, *work;
    unsigned char  ipad[64], opad[64], in[32];

    inner = EVP_MD_CTX_new();
    outer = EVP_MD_CTX_new();
    work = EVP_MD_CTX_new();

    memset(ipad, 0, sizeof(ipad));
    memcpy(ipad, key, 32);
    memcpy(opad, ipad, sizeof(ipad));

    for (i = 0; i < 64; i++) {
        ipad[i] ^= 0x36;
        opad[i] ^= 0x5c;
    }

    EVP_DigestInit_ex(inner, EVP_sha256(), NULL);
    EVP_DigestUpdate(inner, ipad, sizeof(ipad));
    EVP_DigestInit_ex(outer, EVP_sha256(), NULL);
    EVP_DigestUpdate(outer, opad, sizeof(opad));

    for (i = 0; i < n; i++) {
        EVP_MD_CTX_copy_ex(work, inner);
        EVP_DigestUpdate(work, msg, 51);
        EVP_DigestFinal_ex(work, in, NULL);
        EVP_MD_CTX_copy_ex(work, outer);
        EVP_DigestUpdate(work, in, sizeof(in));
        EVP_DigestFinal_ex(work, out, NULL);
    }

    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(work);
}


static void
mac(int way, int n, unsigned char *key, unsigned char *msg,
    unsigned char *out)
{
    int           i;
    size_t        len;
    EVP_MAC      *hmac;
    OSSL_PARAM    params[2];
    EVP_MAC_CTX  *base, *ctx;

    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    base = EVP_MAC_CTX_new(hmac);

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    EVP_MAC_init(base, key, 32, params);

    for (i = 0; i < n; i++) {
        if (way == 2) {
            ctx = EVP_MAC_CTX_dup(base);
            EVP_MAC_update(ctx, msg, 51);
            EVP_MAC_final(ctx, out, &len, 32);
            EVP_MAC_CTX_free(ctx);

        } else {
            EVP_MAC_init(base, NULL, 0, NULL);
            EVP_MAC_update(base, msg, 51);
            EVP_MAC_final(base, out, &len, 32);
        }
    }

    EVP_MAC_CTX_free(base);
    EVP_MAC_free(hmac);
}
