
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

/* eas_request_text.c */
int eas_percent_decode(const unsigned char *p, size_t len, eas_buf_t *buf,
    eas_str_t *out, int plus);
int eas_escape_value(const unsigned char *p, const unsigned char *end);
const unsigned char *eas_skip_path(const unsigned char *p,
    const unsigned char *end);
const unsigned char *eas_skip_query(const unsigned char *p,
    const unsigned char *end);
int eas_is_visible(const eas_str_t *s);
int eas_has_control(const eas_str_t *s);
int eas_is_name(const eas_str_t *s);
int eas_needs_decoding(const eas_str_t *s);
int eas_is_utf8(const eas_str_t *s);
int eas_has_escape(const eas_str_t *s);


#endif /* _EAS_REQUEST_H_INCLUDED_ */
