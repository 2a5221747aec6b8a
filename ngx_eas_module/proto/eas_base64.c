
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


static int eas_base64_value(unsigned char c);


/*
 * RFC 4648 section 4 alphabet ("+" and "/"), padding optional.  The
 * output may overlap the input as long as dst <= src: every 4 input
 * characters produce at most 3 output bytes.
 */

long
eas_base64_decode(const unsigned char *src, size_t len, unsigned char *dst,
    size_t size)
{
    int       v;
    size_t    i, n, out, pad;
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
        v = eas_base64_value(src[i]);

        if (v < 0) {
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


static int
eas_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}
