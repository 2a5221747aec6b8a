
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The byte-level questions of the request parser: what class a byte
 * is, percent-decoding, and whether a name or value is visible ASCII,
 * a parameter name, UTF-8, or needs decoding; eight bytes at a time
 * where a whole run can be passed over.
 */

#include "eas_request.h"


static int eas_hex_value(unsigned char c);


/*
 * EAS_CHAR_* of every byte: one table lookup per byte on the paths every
 * request takes.  NAME: letters, digits, "-", "_", ".".  ESCAPE: "%",
 * "+".  PATH: "#", controls, space, DEL, "\\", ";", "%", ".", non-ASCII.
 * QUERY: "#", controls, space, DEL.
 */
const unsigned char  eas_char_class[256] = {
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, /* 00 */
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, /* 10 */
    12, 0, 0, 12, 0, 6, 0, 0, 0, 0, 0, 2, 0, 1, 5, 0,              /* 20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 4, 0, 0, 0, 0,                /* 30 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                /* 40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 4, 0, 0, 1,                /* 50 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,                /* 60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 12,               /* 70 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* 80 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* 90 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* a0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* b0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* c0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* d0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* e0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                /* f0 */
};


/*
 * Percent-decoding; with "plus", "+" is a space as in an HTML form (and
 * as PHP, ASP.NET and Python read a query), without it "+" stays (a
 * base64 digit).  A "%" not followed by two hex digits is an error (PHP
 * keeps it, ASP.NET reads "%uXXXX"), and so is a decoded NUL (PHP cuts
 * a name there).
 */

int
eas_percent_decode(const unsigned char *p, size_t len, eas_buf_t *buf,
    eas_str_t *out, int plus)
{
    int                   c;
    unsigned char        *d, *start;
    const unsigned char  *end;

    start = buf->pos;
    d = start;
    end = p + len;

    while (p < end) {

        if (*p == '+' && plus) {
            *d++ = ' ';
            p++;
            continue;
        }

        if (*p != '%') {
            *d++ = *p++;
            continue;
        }

        c = eas_escape_value(p, end);

        if (c <= 0) {
            return EAS_ERROR;
        }

        *d++ = (unsigned char) c;
        p += 3;
    }

    buf->pos = d;
    out->data = start;
    out->len = d - start;

    return EAS_OK;
}


/* the byte of the "%XX" at p, or -1 */

int
eas_escape_value(const unsigned char *p, const unsigned char *end)
{
    int  hi, lo;

    if (end - p < 3) {
        return -1;
    }

    hi = eas_hex_value(p[1]);
    lo = eas_hex_value(p[2]);

    if (hi < 0 || lo < 0) {
        return -1;
    }

    return hi << 4 | lo;
}


static int
eas_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * Well-formed UTF-8 (RFC 3629): shortest form only, no surrogates,
 * nothing above U+10FFFF.
 */

int
eas_is_utf8(const eas_str_t *s)
{
    size_t    i, n, k;
    uint32_t  cp, min;

    /* ASCII words need no decoding */

    for (i = 0; s->len - i >= 8; i += 8) {
        if (eas_word(s->data + i) & EAS_SWAR_HIGHS) {
            break;
        }
    }

    for ( /* void */ ; i < s->len; i += n) {
        cp = s->data[i];

        if (cp < 0x80) {
            n = 1;
            continue;
        }

        if ((cp & 0xe0) == 0xc0) {
            n = 2;
            min = 0x80;
            cp &= 0x1f;

        } else if ((cp & 0xf0) == 0xe0) {
            n = 3;
            min = 0x800;
            cp &= 0x0f;

        } else if ((cp & 0xf8) == 0xf0) {
            n = 4;
            min = 0x10000;
            cp &= 0x07;

        } else {
            return 0;
        }

        if (s->len - i < n) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((s->data[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = cp << 6 | (s->data[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


/*
 * An escape left after decoding ("%2544" read as "%44", or ASP.NET's
 * "%u0044"): a backend that decodes twice would read another value.
 */

int
eas_has_escape(const eas_str_t *s)
{
    size_t                i;
    const unsigned char  *end;

    end = s->data + s->len;

    for (i = 0; i < s->len; i++) {

        if (s->data[i] != '%') {
            continue;
        }

        if (eas_escape_value(s->data + i, end) >= 0) {
            return 1;
        }

        if (s->len - i >= 6 && (s->data[i + 1] | 0x20) == 'u'
            && eas_hex_value(s->data[i + 2]) >= 0
            && eas_hex_value(s->data[i + 3]) >= 0
            && eas_hex_value(s->data[i + 4]) >= 0
            && eas_hex_value(s->data[i + 5]) >= 0)
        {
            return 1;
        }
    }

    return 0;
}
