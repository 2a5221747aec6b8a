
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_json.h"


typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    unsigned char        *out;
    unsigned char        *out_end;
} eas_json_t;


static void eas_json_blanks(eas_json_t *j);
static int eas_json_string(eas_json_t *j, eas_str_t *s);
static int eas_json_hex4(eas_json_t *j, uint32_t *v);
static size_t eas_json_digits(eas_json_t *j);
static int eas_json_scalar(eas_json_t *j, eas_str_t *s);
static int eas_json_put(eas_json_t *j, uint32_t c);


int
eas_json_object(const unsigned char *p, size_t len, eas_json_pair_t *pairs,
    size_t max, size_t *n, unsigned char *buf, size_t size)
{
    eas_json_t  j;

    j.p = p;
    j.end = p + len;
    j.out = buf;
    j.out_end = buf + size;
    *n = 0;

    eas_json_blanks(&j);

    if (j.p == j.end || *j.p++ != '{') {
        return EAS_ERROR;
    }

    eas_json_blanks(&j);

    if (j.p < j.end && *j.p == '}') {
        j.p++;
        goto done;
    }

    for ( ;; ) {
        if (*n == max) {
            return EAS_ERROR;
        }

        eas_json_blanks(&j);

        if (eas_json_string(&j, &pairs[*n].name) != EAS_OK) {
            return EAS_ERROR;
        }

        eas_json_blanks(&j);

        if (j.p == j.end || *j.p++ != ':') {
            return EAS_ERROR;
        }

        eas_json_blanks(&j);

        if (j.p == j.end) {
            return EAS_ERROR;
        }

        if (*j.p == '"') {
            if (eas_json_string(&j, &pairs[*n].value) != EAS_OK) {
                return EAS_ERROR;
            }

        } else if (eas_json_scalar(&j, &pairs[*n].value) != EAS_OK) {
            return EAS_ERROR;
        }

        (*n)++;

        eas_json_blanks(&j);

        if (j.p == j.end) {
            return EAS_ERROR;
        }

        if (*j.p == ',') {
            j.p++;
            continue;
        }

        if (*j.p++ == '}') {
            break;
        }

        return EAS_ERROR;
    }

done:

    eas_json_blanks(&j);

    return (j.p == j.end) ? EAS_OK : EAS_ERROR;
}


static void
eas_json_blanks(eas_json_t *j)
{
    while (j->p < j->end
           && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n'
               || *j->p == '\r'))
    {
        j->p++;
    }
}


static int
eas_json_string(eas_json_t *j, eas_str_t *s)
{
    unsigned  c;
    uint32_t  v, w;

    if (j->p == j->end || *j->p++ != '"') {
        return EAS_ERROR;
    }

    s->data = j->out;

    for ( ;; ) {
        if (j->p == j->end) {
            return EAS_ERROR;
        }

        c = *j->p++;

        if (c == '"') {
            break;
        }

        if (c < 0x20) {
            return EAS_ERROR;
        }

        if (c != '\\') {
            /* UTF-8 is passed through as bytes: the caller checks it */

            if (j->out == j->out_end) {
                return EAS_ERROR;
            }

            *j->out++ = (unsigned char) c;

            continue;
        }

        if (j->p == j->end) {
            return EAS_ERROR;
        }

        c = *j->p++;

        switch (c) {

        case '"':
        case '\\':
        case '/':
            v = c;
            break;

        case 'b':
            v = '\b';
            break;

        case 'f':
            v = '\f';
            break;

        case 'n':
            v = '\n';
            break;

        case 'r':
            v = '\r';
            break;

        case 't':
            v = '\t';
            break;

        case 'u':
            if (eas_json_hex4(j, &v) != EAS_OK) {
                return EAS_ERROR;
            }

            if (v >= 0xdc00 && v <= 0xdfff) {
                return EAS_ERROR;
            }

            if (v >= 0xd800 && v <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
                    return EAS_ERROR;
                }

                j->p += 2;

                if (eas_json_hex4(j, &w) != EAS_OK
                    || w < 0xdc00 || w > 0xdfff)
                {
                    return EAS_ERROR;
                }

                v = 0x10000 + ((v - 0xd800) << 10) + (w - 0xdc00);
            }

            if (v == 0) {
                return EAS_ERROR;
            }

            break;

        default:
            return EAS_ERROR;
        }

        if (eas_json_put(j, v) != EAS_OK) {
            return EAS_ERROR;
        }
    }

    s->len = (size_t) (j->out - s->data);

    return EAS_OK;
}


static int
eas_json_hex4(eas_json_t *j, uint32_t *v)
{
    int       i;
    unsigned  c;

    if (j->end - j->p < 4) {
        return EAS_ERROR;
    }

    *v = 0;

    for (i = 0; i < 4; i++) {
        c = *j->p++;

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return EAS_ERROR;
        }

        *v = (*v << 4) | c;
    }

    return EAS_OK;
}


/*
 * A number as JSON writes it, kept as written:
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.  true, false and null
 * are refused: the admin API takes strings and numbers only.
 */

static int
eas_json_scalar(eas_json_t *j, eas_str_t *s)
{
    size_t                digits;
    const unsigned char  *start;

    start = j->p;

    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }

    digits = eas_json_digits(j);

    if (digits == 0 || (digits > 1 && j->p[-(ptrdiff_t) digits] == '0')) {
        return EAS_ERROR;
    }

    if (j->p < j->end && *j->p == '.') {
        j->p++;

        if (eas_json_digits(j) == 0) {
            return EAS_ERROR;
        }
    }

    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;

        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }

        if (eas_json_digits(j) == 0) {
            return EAS_ERROR;
        }
    }

    s->data = start;
    s->len = (size_t) (j->p - start);

    return EAS_OK;
}


static size_t
eas_json_digits(eas_json_t *j)
{
    size_t  n;

    for (n = 0; j->p < j->end && *j->p >= '0' && *j->p <= '9'; n++) {
        j->p++;
    }

    return n;
}


/* one code point, UTF-8 encoded */

static int
eas_json_put(eas_json_t *j, uint32_t c)
{
    size_t  need;

    need = (c < 0x80) ? 1 : (c < 0x800) ? 2 : (c < 0x10000) ? 3 : 4;

    if ((size_t) (j->out_end - j->out) < need) {
        return EAS_ERROR;
    }

    switch (need) {

    case 1:
        *j->out++ = (unsigned char) c;
        break;

    case 2:
        *j->out++ = (unsigned char) (0xc0 | (c >> 6));
        *j->out++ = (unsigned char) (0x80 | (c & 0x3f));
        break;

    case 3:
        *j->out++ = (unsigned char) (0xe0 | (c >> 12));
        *j->out++ = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
        *j->out++ = (unsigned char) (0x80 | (c & 0x3f));
        break;

    default:
        *j->out++ = (unsigned char) (0xf0 | (c >> 18));
        *j->out++ = (unsigned char) (0x80 | ((c >> 12) & 0x3f));
        *j->out++ = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
        *j->out++ = (unsigned char) (0x80 | (c & 0x3f));
    }

    return EAS_OK;
}
