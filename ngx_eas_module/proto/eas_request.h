
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _EAS_REQUEST_H_INCLUDED_
#define _EAS_REQUEST_H_INCLUDED_


/*
 * The request parser's own interface, between its files: eas_request.c
 * (the plain form, the checks, the headers), eas_request_base64.c (the
 * base64 form), eas_request_target.c (the target as sent) and
 * eas_request_text.c (byte classes and decoding).  Not for the glue:
 * eas_proto.h is the public header.
 */

#include "eas_proto.h"


/* what a plain-form name or a base64 field fills, beyond eas_param_e */
#define EAS_FIELD_CMD          EAS_PARAM_COUNT
#define EAS_FIELD_DEVICE_ID    (EAS_PARAM_COUNT + 1)
#define EAS_FIELD_DEVICE_TYPE  (EAS_PARAM_COUNT + 2)
#define EAS_FIELD_COUNT        (EAS_PARAM_COUNT + 3)

/* eas_char_class[]: what a byte is in a query name, value or target */
#define EAS_CHAR_NAME          0x01    /* a parameter name's character */
#define EAS_CHAR_ESCAPE        0x02    /* "%" or "+": a value to decode */
#define EAS_CHAR_PATH          0x04    /* to look at in a target's path */
#define EAS_CHAR_QUERY         0x08    /* refused in a target's query */

/*
 * Eight bytes at a time (SWAR): each macro is nonzero exactly when some
 * byte of the 64-bit word w is below n (n <= 128), above n (n <= 127),
 * or equal to c.  Whole runs of ordinary bytes are passed over so; the
 * byte that matched is then found one byte at a time.
 */
#define EAS_SWAR_ONES          0x0101010101010101ULL
#define EAS_SWAR_HIGHS         0x8080808080808080ULL

#define eas_swar_below(w, n)                                                  \
    (((w) - EAS_SWAR_ONES * (n)) & ~(w) & EAS_SWAR_HIGHS)
#define eas_swar_above(w, n)                                                  \
    ((((w) + EAS_SWAR_ONES * (127 - (n))) | (w)) & EAS_SWAR_HIGHS)
#define eas_swar_has(w, c)                                                    \
    eas_swar_below((w) ^ (EAS_SWAR_ONES * (c)), 1)



typedef struct {
    unsigned char  *pos;
    unsigned char  *end;
} eas_buf_t;


typedef struct {
    eas_str_t       value[EAS_FIELD_COUNT];
    unsigned char   seen[EAS_FIELD_COUNT];
    unsigned char   clean;      /* a query of visible ASCII only, with no
                                   "%", "+" or ";": its values need no
                                   character check (eas_request_clean) */
} eas_fields_t;


typedef struct {
    const char     *text;
    size_t          len;
    unsigned        code;
} eas_version_t;


/* eas_request_text.c: EAS_CHAR_* of every byte */
extern const unsigned char  eas_char_class[256];


/* eas_request.c */
int eas_request_fail(eas_request_t *req, eas_reason_e reason, int field);
const eas_version_t *eas_version_by_code(unsigned code);

/* eas_request_base64.c */
int eas_request_form_is_base64(const eas_str_t *query);
int eas_request_parse_base64(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields, eas_buf_t *buf);

/* eas_request_clean.c */
int eas_request_parse_clean(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields);
int eas_plain_field(const eas_str_t *name);

/* eas_request_text.c */
int eas_percent_decode(const unsigned char *p, size_t len, eas_buf_t *buf,
    eas_str_t *out, int plus);
int eas_escape_value(const unsigned char *p, const unsigned char *end);
int eas_is_utf8(const eas_str_t *s);
int eas_has_escape(const eas_str_t *s);


/*
 * The byte classes every request's fields go through, a few times each:
 * inline here (the parser's files call them, and a call costs as much
 * as the check of a short value), the rest in eas_request_text.c.
 */

/* eight bytes of a string as one word, in memory order */

static inline uint64_t
eas_word(const unsigned char *p)
{
    uint64_t  w;

    memcpy(&w, p, sizeof(uint64_t));

    return w;
}


static inline int
eas_is_visible(const eas_str_t *s)
{
    size_t    i;
    uint64_t  w;

    for (i = 0; s->len - i >= 8; i += 8) {
        w = eas_word(s->data + i);

        if (eas_swar_below(w, 0x21) | eas_swar_above(w, 0x7e)) {
            return 0;
        }
    }

    for ( /* void */ ; i < s->len; i++) {
        if (s->data[i] < 0x21 || s->data[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


static inline int
eas_has_control(const eas_str_t *s)
{
    size_t    i;
    uint64_t  w;

    for (i = 0; s->len - i >= 8; i += 8) {
        w = eas_word(s->data + i);

        if (eas_swar_below(w, 0x20) | eas_swar_has(w, 0x7f)) {
            return 1;
        }
    }

    for ( /* void */ ; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            return 1;
        }
    }

    return 0;
}


/* letters, digits, "-", "_", "." and at least one of them */

static inline int
eas_is_name(const eas_str_t *s)
{
    size_t  i;

    if (s->len == 0) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        if (!(eas_char_class[s->data[i]] & EAS_CHAR_NAME)) {
            return 0;
        }
    }

    return 1;
}


/* a "%" or a "+" */

static inline int
eas_needs_decoding(const eas_str_t *s)
{
    uint64_t              w;
    const unsigned char  *p, *end;

    p = s->data;
    end = p + s->len;

    for ( /* void */ ; end - p >= 8; p += 8) {
        w = eas_word(p);

        if (eas_swar_has(w, '%') | eas_swar_has(w, '+')) {
            return 1;
        }
    }

    for ( /* void */ ; p < end; p++) {
        if (eas_char_class[*p] & EAS_CHAR_ESCAPE) {
            return 1;
        }
    }

    return 0;
}


/*
 * Past a run of a target's path with no EAS_CHAR_PATH byte, and of its
 * query with no EAS_CHAR_QUERY byte: any run the byte loop after it
 * would pass over too.  With SSE2 (every x86-64) sixteen bytes a step,
 * the last sixteen overlapping the step before; else eight (SWAR).
 */

#if defined(__SSE2__) && !defined(EAS_NO_SIMD)

#include <emmintrin.h>


static inline int
eas_path_block(const unsigned char *p)
{
    __m128i  x, m;

    x = _mm_loadu_si128((const __m128i *) (const void *) p);

    /* signed: below 0x21 is also every byte from 0x80 */

    m = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x21)),
                     _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('#')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8(';')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('%')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('.')));

    return _mm_movemask_epi8(m);
}


static inline int
eas_query_block(const unsigned char *p)
{
    __m128i  x, m;

    x = _mm_loadu_si128((const __m128i *) (const void *) p);

    /* unsigned: up to 0x20; bytes from 0x80 may stand in a query */

    m = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x20)), x);
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('#')));

    return _mm_movemask_epi8(m);
}


static inline const unsigned char *
eas_skip_path(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 16) {
        return p;
    }

    for ( /* void */ ; end - p > 16; p += 16) {
        if (eas_path_block(p)) {
            return p;
        }
    }

    return eas_path_block(end - 16) ? p : end;
}


static inline const unsigned char *
eas_skip_query(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 16) {
        return p;
    }

    for ( /* void */ ; end - p > 16; p += 16) {
        if (eas_query_block(p)) {
            return p;
        }
    }

    return eas_query_block(end - 16) ? p : end;
}

#else

static inline const unsigned char *
eas_skip_path(const unsigned char *p, const unsigned char *end)
{
    uint64_t  w;

    for ( /* void */ ; end - p >= 8; p += 8) {
        w = eas_word(p);

        if (eas_swar_below(w, 0x21) | eas_swar_above(w, 0x7e)
            | eas_swar_has(w, '#') | eas_swar_has(w, '\\')
            | eas_swar_has(w, ';') | eas_swar_has(w, '%')
            | eas_swar_has(w, '.'))
        {
            break;
        }
    }

    return p;
}


static inline const unsigned char *
eas_skip_query(const unsigned char *p, const unsigned char *end)
{
    uint64_t  w;

    for ( /* void */ ; end - p >= 8; p += 8) {
        w = eas_word(p);

        if (eas_swar_below(w, 0x21) | eas_swar_has(w, 0x7f)
            | eas_swar_has(w, '#'))
        {
            break;
        }
    }

    return p;
}

#endif


#endif /* _EAS_REQUEST_H_INCLUDED_ */
