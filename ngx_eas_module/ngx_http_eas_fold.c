
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "ngx_http_eas_module.h"


/*
 * The folded form of a user name (docs/authentication.md, "Identity"):
 * Unicode NFKC_Casefold, the way directories compare names.  OpenLDAP
 * folds case and compatibility forms, Active Directory compares width-
 * insensitively: "ｊｄｏｅ" (full width), "JDOE" and "jdo\u200Be" bind
 * as one account, so the edge keys its lockout, devices and lists on
 * one name for all of them.  ICU (Debian: libicu-dev) does the Unicode
 * part; ASCII, the usual name, takes a loop of its own.
 */


/* NFKC can lengthen a character up to 18 code units (U+FDFA) */
#define NGX_HTTP_EAS_FOLD_UTF16  (4 * EAS_BASIC_USER_MAX)


static ngx_int_t ngx_http_eas_fold_unicode(u_char *src, size_t len,
    u_char *dst, size_t size, size_t *n);


/*
 * NGX_ERROR: not UTF-8, empty once folded (only ignorable characters),
 * or longer than size.  Thread-safe: the LDAP and password threads
 * call it as the event loop does.
 */

ngx_int_t
ngx_http_eas_fold(u_char *src, size_t len, u_char *dst, size_t size,
    size_t *n)
{
    size_t  i;

    *n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] >= 0x80) {
            return ngx_http_eas_fold_unicode(src, len, dst, size, n);
        }
    }

    if (len == 0 || len > size) {
        return NGX_ERROR;
    }

    /* NFKC_Casefold of ASCII: the letters in lower case, no more */

    ngx_strlow(dst, src, len);
    *n = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_fold_unicode(u_char *src, size_t len, u_char *dst, size_t size,
    size_t *n)
{
    UChar                 u[EAS_BASIC_USER_MAX];
    UChar                 folded[NGX_HTTP_EAS_FOLD_UTF16];
    int32_t               ulen, flen, blen;
    UErrorCode            err;
    const UNormalizer2   *nfkc;

    if (len > EAS_BASIC_USER_MAX) {
        return NGX_ERROR;
    }

    /* ill-formed UTF-8 (overlong, a surrogate, truncated) is an error */

    err = U_ZERO_ERROR;
    u_strFromUTF8(u, EAS_BASIC_USER_MAX, &ulen, (const char *) src,
                  (int32_t) len, &err);

    if (U_FAILURE(err)) {
        return NGX_ERROR;
    }

    err = U_ZERO_ERROR;
    nfkc = unorm2_getNFKCCasefoldInstance(&err);

    if (U_FAILURE(err)) {
        return NGX_ERROR;
    }

    flen = unorm2_normalize(nfkc, u, ulen, folded, NGX_HTTP_EAS_FOLD_UTF16,
                            &err);

    if (U_FAILURE(err) || flen == 0) {
        return NGX_ERROR;
    }

    u_strToUTF8((char *) dst, (int32_t) size, &blen, folded, flen, &err);

    /* a string that fills dst exactly is "not terminated": still whole */

    if (U_FAILURE(err) || blen <= 0 || (size_t) blen > size) {
        return NGX_ERROR;
    }

    *n = blen;

    return NGX_OK;
}
