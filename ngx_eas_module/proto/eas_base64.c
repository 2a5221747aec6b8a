
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


/* the 6-bit value of each alphabet byte, 64 for any other byte */
static const unsigned char  eas_base64_values[256] = {
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64, 64, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 64,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};


/*
 * RFC 4648 section 4 alphabet ("+" and "/"), padding optional.  The
 * output may overlap the input as long as dst <= src: every 4 input
 * characters produce at most 3 output bytes.
 */

long
eas_base64_decode(const unsigned char *src, size_t len, unsigned char *dst,
    size_t size)
{
    size_t    i, n, out, pad;
    unsigned  v;
    uint32_t  acc;

    pad = 0;

    while (len > 0 && src[len - 1] == '=') {
        len--;
        pad++;
    }

    if (pad > 2 || (pad && (len + pad) % 4 != 0) || len % 4 == 1) {
        return -1;
    }

    out = (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0);

    if (out > size) {
        return -1;
    }

    acc = 0;
    n = 0;
    out = 0;

    for (i = 0; i < len; i++) {
        v = eas_base64_values[src[i]];

        if (v > 63) {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) v;

        if (++n == 4) {
            dst[out++] = (unsigned char) (acc >> 16);
            dst[out++] = (unsigned char) (acc >> 8);
            dst[out++] = (unsigned char) acc;
            acc = 0;
            n = 0;
        }
    }

    if (n == 3) {
        dst[out++] = (unsigned char) (acc >> 10);
        dst[out++] = (unsigned char) (acc >> 2);

    } else if (n == 2) {
        dst[out++] = (unsigned char) (acc >> 4);
    }

    return (long) out;
}

