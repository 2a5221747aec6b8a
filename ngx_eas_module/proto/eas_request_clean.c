
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The plain-form query phones send: visible ASCII with no "%", "+" or
 * ";".  Such a query reads the same under every reading
 * eas_request_parse_plain() allows for (nothing to decode, no ";" to
 * split on), and its values already pass the character checks of
 * eas_request_check() (visible ASCII is UTF-8 with no control): one
 * pass, eight bytes at a time, finds its "&" and "=" and checks its
 * bytes; any other query is left to eas_request_parse_plain().
 */

#include "eas_request.h"


/*
 * A block of the query: with SSE2 (every x86-64) sixteen bytes, a bit
 * each in the masks; else eight bytes as a word (SWAR), the high bit of
 * each byte.  eas_clean_block() returns the mask of the bytes the fast
 * reading does not take (below 0x21, above 0x7e, "%", "+", ";") and
 * gives the mask of the separators ("&", "=").
 */

#if defined(__SSE2__) && !defined(EAS_NO_SIMD)

#define EAS_CLEAN_BLOCK  16
#define EAS_CLEAN_BITS   1

#else

#define EAS_CLEAN_BLOCK  8
#define EAS_CLEAN_BITS   8

/* the high bit of a byte exactly where w has the byte c */
#define eas_swar_is(w, c)                                                     \
    (~(((((w) ^ (EAS_SWAR_ONES * (c))) & ~EAS_SWAR_HIGHS) + ~EAS_SWAR_HIGHS) \
       | ((w) ^ (EAS_SWAR_ONES * (c))) | ~EAS_SWAR_HIGHS))

#endif

#if defined(__GNUC__) || defined(__clang__)
#define eas_clean_first(m)  ((unsigned) __builtin_ctzll(m) / EAS_CLEAN_BITS)
#else
static unsigned eas_clean_first(uint64_t m);
#endif


typedef struct {
    eas_reason_e    reason;     /* the first refusal, EAS_REASON_NONE */
    int             field;
    size_t          count;
} eas_clean_t;


static uint64_t eas_clean_block(const unsigned char *p, uint64_t *sep);
static void eas_clean_param(eas_clean_t *st, eas_request_t *req,
    eas_fields_t *fields,
    const unsigned char *p, const unsigned char *eq,
    const unsigned char *amp);


/*
 * EAS_DECLINED: the query is not of that kind (or shorter than a word).
 * A refusal found on the way is given only once every byte is known to
 * be clean, so that the reason is the one the general reading gives.
 */

int
eas_request_parse_clean(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields)
{
    size_t                left;
    uint64_t              sep;
    eas_clean_t           st;
    const unsigned char  *p, *end, *q, *s, *start, *eq;

    p = in->query.data;
    end = p + in->query.len;

    if (in->query.len < EAS_CLEAN_BLOCK) {
        return EAS_DECLINED;
    }

    st.reason = EAS_REASON_NONE;
    st.field = -1;
    st.count = 0;

    /* the fields beyond the request's parameters, read if not sent */

    memset(&fields->value[EAS_PARAM_COUNT], 0,
           (EAS_FIELD_COUNT - EAS_PARAM_COUNT) * sizeof(eas_str_t));

    start = p;
    eq = NULL;

    for (q = p; q < end; q += EAS_CLEAN_BLOCK) {

        left = end - q;

        if (left >= EAS_CLEAN_BLOCK) {
            if (eas_clean_block(q, &sep)) {
                return EAS_DECLINED;
            }

        } else {

            /* the last block overlaps the one before: its bytes again */

            if (eas_clean_block(end - EAS_CLEAN_BLOCK, &sep)) {
                return EAS_DECLINED;
            }

            sep >>= (EAS_CLEAN_BLOCK - left) * EAS_CLEAN_BITS;
        }

        while (sep) {
            s = q + eas_clean_first(sep);
            sep &= sep - 1;

            if (*s == '=') {
                if (eq == NULL) {
                    eq = s;
                }

                continue;
            }

            if (st.reason == EAS_REASON_NONE) {
                eas_clean_param(&st, req, fields, start, eq, s);
            }

            start = s + 1;
            eq = NULL;
        }
    }

    if (st.reason == EAS_REASON_NONE) {
        eas_clean_param(&st, req, fields, start, eq, end);
    }

    if (st.reason != EAS_REASON_NONE) {
        return eas_request_fail(req, st.reason, st.field);
    }

    fields->clean = 1;

    return EAS_OK;
}


/* one "name=value" between p and amp, as eas_request_parse_plain() */

static inline void
eas_clean_param(eas_clean_t *st, eas_request_t *req, eas_fields_t *fields,
    const unsigned char *p, const unsigned char *eq, const unsigned char *amp)
{
    int         field;
    eas_str_t   name, *v;

    if (amp == p) {
        return;
    }

    if (++st->count > EAS_QUERY_PARAMS_MAX) {
        st->reason = EAS_REASON_PARAM_TOO_MANY;
        return;
    }

    name.data = p;
    name.len = (eq ? eq : amp) - p;

    field = eas_plain_field(&name);

    /* nothing to decode: a name that is no name stays none */

    if (field < 0 && !eas_is_name(&name)) {
        st->reason = EAS_REASON_PARAM_NAME_INVALID;
        return;
    }

    if (eq == NULL) {
        st->reason = EAS_REASON_PARAM_NO_VALUE;
        st->field = field;
        return;
    }

    if (field < 0) {
        return;
    }

    if (fields->seen[field]) {
        st->reason = EAS_REASON_PARAM_DUPLICATE;
        st->field = field;
        return;
    }

    fields->seen[field] = 1;

    /* the parameters straight into the request (zeroed), the rest into
     * the fields eas_request_check() reads */

    v = (field < EAS_PARAM_COUNT) ? &req->params[field]
                                  : &fields->value[field];

    v->data = eq + 1;
    v->len = amp - eq - 1;
}


#if defined(__SSE2__) && !defined(EAS_NO_SIMD)

static inline uint64_t
eas_clean_block(const unsigned char *p, uint64_t *sep)
{
    __m128i  x, bad;

    x = _mm_loadu_si128((const __m128i *) (const void *) p);

    /* signed: below 0x21 is also every byte from 0x80 */

    bad = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x21)),
                       _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));
    bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, _mm_set1_epi8('%')));
    bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, _mm_set1_epi8('+')));
    bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, _mm_set1_epi8(';')));

    *sep = (unsigned) _mm_movemask_epi8(
               _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('&')),
                            _mm_cmpeq_epi8(x, _mm_set1_epi8('='))));

    return (unsigned) _mm_movemask_epi8(bad);
}

#else

static inline uint64_t
eas_clean_block(const unsigned char *p, uint64_t *sep)
{
    uint64_t  w;

    /* the first byte in memory the lowest */

    w = eas_word(p);

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__)              \
    && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif

    *sep = eas_swar_is(w, '&') | eas_swar_is(w, '=');

    return eas_swar_below(w, 0x21) | eas_swar_above(w, 0x7e)
           | eas_swar_has(w, '%') | eas_swar_has(w, '+')
           | eas_swar_has(w, ';');
}

#endif


#if !(defined(__GNUC__) || defined(__clang__))

static unsigned
eas_clean_first(uint64_t m)
{
    unsigned  n;

    for (n = 0; (m & 1) == 0; n++) {
        m >>= 1;
    }

    return n / EAS_CLEAN_BITS;
}

#endif
