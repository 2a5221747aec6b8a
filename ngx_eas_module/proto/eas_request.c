
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


/* what a plain-form name or a base64 field fills, beyond eas_param_e */
#define EAS_FIELD_CMD          EAS_PARAM_COUNT
#define EAS_FIELD_DEVICE_ID    (EAS_PARAM_COUNT + 1)
#define EAS_FIELD_DEVICE_TYPE  (EAS_PARAM_COUNT + 2)
#define EAS_FIELD_COUNT        (EAS_PARAM_COUNT + 3)

/* the smallest base64 query: version, command, locale, three lengths */
#define EAS_BASE64_MIN         7

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

#define eas_plain_name(name, field)  { name, sizeof(name) - 1, field }
#define eas_version(text, code)      { text, sizeof(text) - 1, code }


typedef struct {
    unsigned char  *pos;
    unsigned char  *end;
} eas_buf_t;


typedef struct {
    eas_str_t       value[EAS_FIELD_COUNT];
    unsigned char   seen[EAS_FIELD_COUNT];
} eas_fields_t;


typedef struct {
    const char     *name;
    size_t          len;
    int             field;
} eas_plain_name_t;


typedef struct {
    const char     *text;
    size_t          len;
    unsigned        code;
} eas_version_t;


static int eas_request_form_is_base64(const eas_str_t *query);
static int eas_request_parse_plain(const eas_input_t *in,
    eas_request_t *req, eas_fields_t *fields, eas_buf_t *buf);
static int eas_request_parse_base64(const eas_input_t *in,
    eas_request_t *req, eas_fields_t *fields, eas_buf_t *buf);
static int eas_request_base64_params(eas_request_t *req,
    eas_fields_t *fields, const unsigned char *p, const unsigned char *end,
    eas_buf_t *buf);
static int eas_request_check(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields);
static int eas_request_check_headers(const eas_input_t *in,
    eas_request_t *req);
static int eas_request_fail(eas_request_t *req, eas_reason_e reason,
    int field);
static int eas_request_check_value(eas_request_t *req,
    const eas_str_t *v, int field);
static int eas_percent_decode(const unsigned char *p, size_t len,
    eas_buf_t *buf, eas_str_t *out, int plus);
static int eas_base64_escapes(const eas_str_t *query);
static int eas_escape_value(const unsigned char *p,
    const unsigned char *end);
static int eas_hex_value(unsigned char c);
static uint64_t eas_word(const unsigned char *p);
static const unsigned char *eas_skip_path(const unsigned char *p,
    const unsigned char *end);
static const unsigned char *eas_skip_query(const unsigned char *p,
    const unsigned char *end);
static int eas_is_visible(const eas_str_t *s);
static int eas_is_name(const eas_str_t *s);
static int eas_needs_decoding(const eas_str_t *s);
static int eas_is_utf8(const eas_str_t *s);
static int eas_has_escape(const eas_str_t *s);
static int eas_has_control(const eas_str_t *s);
static int eas_is_dot_segment(const unsigned char *p, size_t len);
static int eas_plain_field(const eas_str_t *name);
static int eas_name_equals(const unsigned char *p, size_t len,
    const char *lower);
static const char *eas_field_name(int field);
static const eas_version_t *eas_version_by_code(unsigned code);


/* plain-form parameter names (MS-ASHTTP 2.2.1.1.1.2), lower case */
static const eas_plain_name_t  eas_plain_names[] = {
    eas_plain_name("cmd", EAS_FIELD_CMD),
    eas_plain_name("user", EAS_PARAM_USER),
    eas_plain_name("deviceid", EAS_FIELD_DEVICE_ID),
    eas_plain_name("devicetype", EAS_FIELD_DEVICE_TYPE),
    eas_plain_name("attachmentname", EAS_PARAM_ATTACHMENT_NAME),
    eas_plain_name("collectionid", EAS_PARAM_COLLECTION_ID),
    eas_plain_name("itemid", EAS_PARAM_ITEM_ID),
    eas_plain_name("longid", EAS_PARAM_LONG_ID),
    eas_plain_name("occurrence", EAS_PARAM_OCCURRENCE),
    eas_plain_name("saveinsent", EAS_PARAM_SAVE_IN_SENT),
    { NULL, 0, 0 }
};


/* MS-ASHTTP 2.2.1.1.2.6 header values; base64 carries code = 10 x v */
static const eas_version_t  eas_versions[] = {
    eas_version("2.0", 20),
    eas_version("2.1", 21),
    eas_version("2.5", 25),
    eas_version("12.0", 120),
    eas_version("12.1", 121),
    eas_version("14.0", 140),
    eas_version("14.1", 141),
    eas_version("16.0", 160),
    eas_version("16.1", 161),
    { NULL, 0, 0 }
};


static const char  eas_hex_digits[] = "0123456789ABCDEF";


/*
 * EAS_CHAR_* of every byte: one table lookup per byte on the paths every
 * request takes.  NAME: letters, digits, "-", "_", ".".  ESCAPE: "%",
 * "+".  PATH: "#", controls, space, DEL, "\\", ";", "%", ".", non-ASCII.
 * QUERY: "#", controls, space, DEL.
 */
static const unsigned char  eas_char_class[256] = {
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


int
eas_request_parse(const eas_input_t *in, eas_request_t *req,
    unsigned char *buf, size_t size)
{
    int           rc;
    eas_buf_t     scratch;
    eas_fields_t  fields;

    memset(req, 0, sizeof(eas_request_t));
    memset(&fields, 0, sizeof(eas_fields_t));

    req->command = EAS_CMD_NONE;

    if (size < eas_request_buffer_size(in->query.len)) {
        return eas_request_fail(req, EAS_REASON_BUFFER_TOO_SMALL, -1);
    }

    scratch.pos = buf;
    scratch.end = buf + size;

    if (in->query.len == 0) {
        if (!in->options) {
            return eas_request_fail(req, EAS_REASON_QUERY_MISSING, -1);
        }

        req->form = EAS_FORM_NONE;
        rc = EAS_OK;

    } else if (eas_request_form_is_base64(&in->query)) {
        req->form = EAS_FORM_BASE64;
        rc = eas_request_parse_base64(in, req, &fields, &scratch);

    } else {
        req->form = EAS_FORM_PLAIN;
        rc = eas_request_parse_plain(in, req, &fields, &scratch);
    }

    if (rc != EAS_OK) {
        return rc;
    }

    return eas_request_check(in, req, &fields);
}


/*
 * The specification gives no discriminator.  A plain query is made of
 * name=value pairs; a base64 query has no "&" and "=" only as padding.
 */

static int
eas_request_form_is_base64(const eas_str_t *query)
{
    const unsigned char  *p, *end, *eq;

    p = query->data;
    end = p + query->len;

    if (memchr(p, '&', query->len) != NULL) {
        return 0;
    }

    eq = memchr(p, '=', query->len);

    if (eq == NULL) {
        return 1;
    }

    for (p = eq; p < end; p++) {
        if (*p != '=') {
            return 0;
        }
    }

    return 1;
}


/*
 * One reading of the query, the one PHP ($_GET), ASP.NET (QueryString)
 * and Python (parse_qs) apply: split on "&", name and value at the first
 * "=", then "%XX" and "+" (a space) decoded in both.  Whatever those
 * readers could take otherwise is refused rather than guessed:
 * docs/requests.md lists each case.
 */

static int
eas_request_parse_plain(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields, eas_buf_t *buf)
{
    int                   field, encoded, encoded_field;
    size_t                count;
    eas_str_t             name, value, raw;
    unsigned char        *mark;
    const unsigned char  *p, *end, *amp, *eq;

    p = in->query.data;
    end = p + in->query.len;

    /* older Python and some frameworks split on ";" as well */

    if (memchr(p, ';', in->query.len) != NULL) {
        return eas_request_fail(req, EAS_REASON_QUERY_SEMICOLON, -1);
    }

    count = 0;
    encoded = 0;
    encoded_field = -1;

    for ( /* void */ ; p < end; p = amp + 1) {

        amp = memchr(p, '&', end - p);
        if (amp == NULL) {
            amp = end;
        }

        /* empty segments ("&&", a trailing "&") name nothing anywhere */

        if (amp == p) {
            continue;
        }

        if (++count > EAS_QUERY_PARAMS_MAX) {
            return eas_request_fail(req, EAS_REASON_PARAM_TOO_MANY, -1);
        }

        eq = memchr(p, '=', amp - p);
        mark = buf->pos;

        raw.data = p;
        raw.len = (eq ? eq : amp) - p;

        /*
         * A name or a value without "%" and "+" reads as it is sent: it
         * is used where it lies, not copied.  A name made only of name
         * characters has neither.
         */

        if (eas_is_name(&raw)) {
            name = raw;

        } else if (eas_percent_decode(raw.data, raw.len, buf, &name, 1)
                   != EAS_OK)
        {
            return eas_request_fail(req, EAS_REASON_PERCENT_ENCODING, -1);

        } else if (!eas_is_name(&name)) {
            return eas_request_fail(req, EAS_REASON_PARAM_NAME_INVALID, -1);
        }

        field = eas_plain_field(&name);

        /* each reader treats a name without "=" its own way */

        if (eq == NULL) {
            return eas_request_fail(req, EAS_REASON_PARAM_NO_VALUE, field);
        }

        /* a name read only once decoded had "%" or "+" in it */

        if (!encoded && name.data != raw.data) {
            encoded = 1;
            encoded_field = field;
        }

        value.data = eq + 1;
        value.len = amp - eq - 1;

        if (eas_needs_decoding(&value)
            && eas_percent_decode(value.data, value.len, buf, &value, 1)
               != EAS_OK)
        {
            return eas_request_fail(req, EAS_REASON_PERCENT_ENCODING, field);
        }

        /* unknown parameters travel on untouched */

        if (field < 0) {
            buf->pos = mark;
            continue;
        }

        /* a known name twice, in any spelling, whatever the values */

        if (fields->seen[field]) {
            return eas_request_fail(req, EAS_REASON_PARAM_DUPLICATE, field);
        }

        fields->seen[field] = 1;

        /* a value used where it lies has no "%" */

        if (value.data != eq + 1 && eas_has_escape(&value)) {
            return eas_request_fail(req, EAS_REASON_DOUBLE_ENCODING, field);
        }

        fields->value[field] = value;
    }

    /* real clients never escape a name: the duplicates are found first */

    if (encoded) {
        return eas_request_fail(req, EAS_REASON_PARAM_NAME_ENCODED,
                                encoded_field);
    }

    return EAS_OK;
}


static int
eas_request_parse_base64(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields, eas_buf_t *buf)
{
    long                  n;
    size_t                len, i;
    uint32_t              key;
    eas_str_t             src;
    const unsigned char  *p, *end;
    unsigned char        *d, *digits;

    src = in->query;

    /*
     * Some clients percent-encode "+", "/" and "="; nothing else may be
     * escaped, and "+" stays a base64 digit.
     */

    if (memchr(src.data, '%', src.len) != NULL) {
        if (eas_base64_escapes(&src) != EAS_OK
            || eas_percent_decode(src.data, src.len, buf, &src, 0) != EAS_OK)
        {
            return eas_request_fail(req, EAS_REASON_PERCENT_ENCODING, -1);
        }

        buf->pos = (unsigned char *) src.data;
    }

    n = eas_base64_decode(src.data, src.len, buf->pos, buf->end - buf->pos);

    if (n < EAS_BASE64_MIN) {
        return eas_request_fail(req, EAS_REASON_BASE64_INVALID, -1);
    }

    p = buf->pos;
    end = p + n;
    buf->pos += n;

    req->version_code = p[0];

    if (p[0] < 121 || eas_version_by_code(p[0]) == NULL) {
        return eas_request_fail(req, EAS_REASON_BASE64_VERSION, -1);
    }

    if (p[1] > EAS_CMD_FIND
        || eas_command_name((eas_command_e) p[1]) == NULL)
    {
        return eas_request_fail(req, EAS_REASON_BASE64_COMMAND, -1);
    }

    req->command = (eas_command_e) p[1];
    req->locale = p[2] | (p[3] << 8);
    req->has_locale = 1;

    /* DeviceId */

    len = p[4];
    p += 5;

    if (len == 0) {
        return eas_request_fail(req, EAS_REASON_DEVICE_ID_MISSING, -1);
    }

    if ((size_t) (end - p) < len + 2) {
        return eas_request_fail(req, EAS_REASON_BASE64_TRUNCATED,
                                EAS_FIELD_DEVICE_ID);
    }

    src.data = p;
    src.len = len;

    if (eas_is_visible(&src)) {
        fields->value[EAS_FIELD_DEVICE_ID] = src;

    } else {
        /* a binary id (a GUID): upper-case hex, as Exchange shows it */

        if (2 * len > EAS_DEVICE_ID_MAX) {
            return eas_request_fail(req, EAS_REASON_DEVICE_ID_INVALID,
                                    EAS_FIELD_DEVICE_ID);
        }

        d = buf->pos;

        for (i = 0; i < len; i++) {
            *buf->pos++ = eas_hex_digits[p[i] >> 4];
            *buf->pos++ = eas_hex_digits[p[i] & 0x0f];
        }

        fields->value[EAS_FIELD_DEVICE_ID].data = d;
        fields->value[EAS_FIELD_DEVICE_ID].len = 2 * len;
        req->device_id_binary = 1;
    }

    fields->seen[EAS_FIELD_DEVICE_ID] = 1;
    p += len;

    /* PolicyKey: absent or a little-endian uint32, shown in decimal */

    len = *p++;

    if (len != 0 && len != 4) {
        return eas_request_fail(req, EAS_REASON_BASE64_POLICY_KEY_LENGTH,
                                -1);
    }

    if ((size_t) (end - p) < len + 1) {
        return eas_request_fail(req, EAS_REASON_BASE64_TRUNCATED, -1);
    }

    if (len == 4) {
        key = (uint32_t) p[0] | (uint32_t) p[1] << 8
              | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;

        /* at most 10 digits, written backwards then reversed */

        digits = buf->pos;

        do {
            *buf->pos++ = (unsigned char) ('0' + key % 10);
            key /= 10;
        } while (key);

        req->policy_key.data = digits;
        req->policy_key.len = buf->pos - digits;

        for (d = buf->pos - 1; digits < d; digits++, d--) {
            i = *digits;
            *digits = *d;
            *d = (unsigned char) i;
        }

        p += 4;
    }

    /* DeviceType */

    len = *p++;

    if (len == 0) {
        return eas_request_fail(req, EAS_REASON_DEVICE_TYPE_MISSING, -1);
    }

    if ((size_t) (end - p) < len) {
        return eas_request_fail(req, EAS_REASON_BASE64_TRUNCATED,
                                EAS_FIELD_DEVICE_TYPE);
    }

    fields->value[EAS_FIELD_DEVICE_TYPE].data = p;
    fields->value[EAS_FIELD_DEVICE_TYPE].len = len;
    fields->seen[EAS_FIELD_DEVICE_TYPE] = 1;
    p += len;

    return eas_request_base64_params(req, fields, p, end, buf);
}


/* Tag(1) Length(1) Value(Length), MS-ASHTTP 2.2.1.1.1.1.1 */

static int
eas_request_base64_params(eas_request_t *req, eas_fields_t *fields,
    const unsigned char *p, const unsigned char *end, eas_buf_t *buf)
{
    size_t          len;
    unsigned        tag, options;
    unsigned char  *d;

    while (p < end) {

        if (end - p < 2) {
            return eas_request_fail(req, EAS_REASON_BASE64_TRAILING, -1);
        }

        tag = p[0];
        len = p[1];
        p += 2;

        if ((size_t) (end - p) < len) {
            return eas_request_fail(req, EAS_REASON_BASE64_TRUNCATED,
                                    tag < EAS_PARAM_SAVE_IN_SENT
                                    ? (int) tag : -1);
        }

        /* unknown tags (Windows Mail sends 0xFF) are skipped */

        if (tag >= EAS_PARAM_SAVE_IN_SENT) {
            p += len;
            continue;
        }

        if (fields->seen[tag]) {
            return eas_request_fail(req, EAS_REASON_PARAM_DUPLICATE,
                                    (int) tag);
        }

        fields->seen[tag] = 1;

        if (tag == EAS_PARAM_OPTIONS) {
            if (len != 1) {
                return eas_request_fail(req, EAS_REASON_PARAM_INVALID,
                                        EAS_PARAM_OPTIONS);
            }

            options = p[0];

            d = buf->pos;
            *buf->pos++ = '0';
            *buf->pos++ = 'x';
            *buf->pos++ = eas_hex_digits[options >> 4];
            *buf->pos++ = eas_hex_digits[options & 0x0f];

            fields->value[EAS_PARAM_OPTIONS].data = d;
            fields->value[EAS_PARAM_OPTIONS].len = 4;

            fields->value[EAS_PARAM_SAVE_IN_SENT].data =
                (const unsigned char *)
                ((options & EAS_OPTION_SAVE_IN_SENT) ? "T" : "F");
            fields->value[EAS_PARAM_SAVE_IN_SENT].len = 1;

            fields->value[EAS_PARAM_ACCEPT_MULTIPART].data =
                (const unsigned char *)
                ((options & EAS_OPTION_ACCEPT_MULTIPART) ? "T" : "F");
            fields->value[EAS_PARAM_ACCEPT_MULTIPART].len = 1;

            p += 1;
            continue;
        }

        fields->value[tag].data = p;
        fields->value[tag].len = len;
        p += len;
    }

    return EAS_OK;
}


/* checks common to both forms, then the fields go into the request */

static int
eas_request_check(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields)
{
    int          i;
    eas_str_t   *v;
    const char  *name;

    /* Cmd (plain form only; base64 has checked its command code) */

    v = &fields->value[EAS_FIELD_CMD];

    if (req->form == EAS_FORM_PLAIN) {

        if (v->len == 0) {
            if (!in->options) {
                return eas_request_fail(req, EAS_REASON_CMD_MISSING, -1);
            }

        } else {
            req->command = eas_command_by_name(v->data, v->len);

            /* capability discovery names no command it needs */

            if (req->command == EAS_CMD_NONE && !in->options) {
                return eas_request_fail(req, EAS_REASON_CMD_UNKNOWN,
                                        EAS_FIELD_CMD);
            }
        }
    }

    if (req->command != EAS_CMD_NONE) {
        name = eas_command_name(req->command);
        req->command_name.data = (const unsigned char *) name;
        req->command_name.len = strlen(name);
    }

    /* DeviceId and DeviceType: required on every POST, visible ASCII */

    v = &fields->value[EAS_FIELD_DEVICE_ID];

    if (v->len == 0) {
        if (!in->options && req->form != EAS_FORM_NONE) {
            return eas_request_fail(req, EAS_REASON_DEVICE_ID_MISSING, -1);
        }

    } else if (v->len > EAS_DEVICE_ID_MAX || !eas_is_visible(v)) {
        return eas_request_fail(req, EAS_REASON_DEVICE_ID_INVALID,
                                EAS_FIELD_DEVICE_ID);
    }

    req->device_id = *v;

    v = &fields->value[EAS_FIELD_DEVICE_TYPE];

    if (v->len == 0) {
        if (!in->options && req->form != EAS_FORM_NONE) {
            return eas_request_fail(req, EAS_REASON_DEVICE_TYPE_MISSING, -1);
        }

    } else if (v->len > EAS_DEVICE_TYPE_MAX || !eas_is_visible(v)) {
        return eas_request_fail(req, EAS_REASON_DEVICE_TYPE_INVALID,
                                EAS_FIELD_DEVICE_TYPE);
    }

    req->device_type = *v;

    /* User: for logs only, UTF-8 allowed, no control characters */

    v = &fields->value[EAS_PARAM_USER];

    if (v->len > EAS_USER_MAX || eas_has_control(v)) {
        return eas_request_fail(req, EAS_REASON_USER_INVALID,
                                EAS_PARAM_USER);
    }

    if (!eas_is_utf8(v)) {
        return eas_request_fail(req, EAS_REASON_UTF8_INVALID,
                                EAS_PARAM_USER);
    }

    req->user = *v;

    /* the other parameters */

    for (i = 0; i < EAS_PARAM_COUNT; i++) {
        v = &fields->value[i];

        if (v->len != 0 && eas_request_check_value(req, v, i) != EAS_OK) {
            return EAS_ERROR;
        }

        req->params[i] = *v;
    }

    v = &req->params[EAS_PARAM_SAVE_IN_SENT];

    if (v->len != 0
        && (v->len != 1 || (v->data[0] != 'T' && v->data[0] != 'F')))
    {
        return eas_request_fail(req, EAS_REASON_PARAM_INVALID,
                                EAS_PARAM_SAVE_IN_SENT);
    }

    return eas_request_check_headers(in, req);
}


/*
 * Text values (User and the parameters): a decoder in a backend must
 * read the same characters, so overlong or otherwise invalid UTF-8,
 * which .NET and Python replace and older decoders fold into ASCII, is
 * refused.
 */

static int
eas_request_check_value(eas_request_t *req, const eas_str_t *v, int field)
{
    if (v->len > EAS_PARAM_MAX || eas_has_control(v)) {
        return eas_request_fail(req, EAS_REASON_PARAM_INVALID, field);
    }

    if (!eas_is_utf8(v)) {
        return eas_request_fail(req, EAS_REASON_UTF8_INVALID, field);
    }

    return EAS_OK;
}


/*
 * The plain form carries the protocol version and the policy key in
 * headers; the base64 form carries both itself and the headers are
 * ignored there (MS-ASHTTP 2.2.1.1.2.6, 2.2.1.1.2.8).
 */

static int
eas_request_check_headers(const eas_input_t *in, eas_request_t *req)
{
    unsigned              code;
    const eas_version_t  *ver;

    if (req->form == EAS_FORM_BASE64) {
        ver = eas_version_by_code(req->version_code);
        req->version.data = (const unsigned char *) ver->text;
        req->version.len = ver->len;
        return EAS_OK;
    }

    if (in->has_accept_multipart && in->accept_multipart.len == 1
        && (in->accept_multipart.data[0] == 'T'
            || in->accept_multipart.data[0] == 'F'))
    {
        req->params[EAS_PARAM_ACCEPT_MULTIPART] = in->accept_multipart;
    }

    if (!in->has_version) {
        if (in->options) {
            goto policy_key;
        }

        return eas_request_fail(req, EAS_REASON_VERSION_MISSING, -1);
    }

    if (eas_version_parse(in->version.data, in->version.len, &code)
        != EAS_OK)
    {
        if (in->options) {
            goto policy_key;
        }

        return eas_request_fail(req, EAS_REASON_VERSION_INVALID, -1);
    }

    ver = eas_version_by_code(code);
    req->version_code = code;
    req->version.data = (const unsigned char *) ver->text;
    req->version.len = ver->len;

policy_key:

    if (in->has_policy_key && in->policy_key.len != 0) {

        if (in->policy_key.len > EAS_POLICY_KEY_MAX
            || !eas_is_visible(&in->policy_key))
        {
            return eas_request_fail(req, EAS_REASON_POLICY_KEY_INVALID, -1);
        }

        req->policy_key = in->policy_key;
    }

    return EAS_OK;
}


/*
 * nginx picks the location on the normalized path ($uri) and proxy_pass
 * without a URI part forwards the target as sent, where a backend can
 * read "..", an encoded slash, a backslash (IIS) or text after "#"
 * otherwise.  A target is accepted only when every reading agrees.
 */

int
eas_target_check(const eas_str_t *target, const eas_str_t *uri,
    eas_reason_e *reason)
{
    int                   c, dots;
    const unsigned char  *p, *end, *path_end, *seg, *next;

    if (target->len == 0) {
        *reason = (uri != NULL && uri->len != 0)
                  ? EAS_REASON_PATH_NOT_CANONICAL : EAS_REASON_NONE;

        return *reason == EAS_REASON_NONE ? EAS_OK : EAS_ERROR;
    }

    end = target->data + target->len;

    path_end = memchr(target->data, '?', target->len);
    if (path_end == NULL) {
        path_end = end;
    }

    /* the first byte refused, path then query, gives the reason */

    dots = 0;

    for (p = eas_skip_path(target->data, path_end); p < path_end; p++) {

        if (!(eas_char_class[*p] & EAS_CHAR_PATH)) {
            continue;
        }

        if (*p == '#') {
            *reason = EAS_REASON_TARGET_FRAGMENT;
            return EAS_ERROR;
        }

        if (*p <= 0x20 || *p >= 0x7f || *p == ';') {
            *reason = EAS_REASON_TARGET_CHARACTER;
            return EAS_ERROR;
        }

        if (*p == '\\') {
            *reason = EAS_REASON_PATH_BACKSLASH;
            return EAS_ERROR;
        }

        /* "." or "%": a dot segment is possible */

        dots = 1;

        if (*p == '%') {
            c = eas_escape_value(p, path_end);

            if (c == '/' || c == '\\') {
                *reason = EAS_REASON_PATH_ENCODED_SLASH;
                return EAS_ERROR;
            }
        }
    }

    for (p = eas_skip_query(p, end); p < end; p++) {

        if (!(eas_char_class[*p] & EAS_CHAR_QUERY)) {
            continue;
        }

        *reason = (*p == '#') ? EAS_REASON_TARGET_FRAGMENT
                              : EAS_REASON_TARGET_CHARACTER;
        return EAS_ERROR;
    }

    for (seg = target->data; dots && seg < path_end; seg = next + 1) {
        next = memchr(seg, '/', path_end - seg);
        if (next == NULL) {
            next = path_end;
        }

        if (eas_is_dot_segment(seg, next - seg)) {
            *reason = EAS_REASON_PATH_DOT_SEGMENT;
            return EAS_ERROR;
        }
    }

    /* any other escape, "//": what nginx matched is not what is sent */

    if (uri != NULL && uri->data != NULL
        && ((size_t) (path_end - target->data) != uri->len
            || memcmp(target->data, uri->data, uri->len) != 0))
    {
        *reason = EAS_REASON_PATH_NOT_CANONICAL;
        return EAS_ERROR;
    }

    *reason = EAS_REASON_NONE;

    return EAS_OK;
}


/* "." or "..", also written "%2E" */

static int
eas_is_dot_segment(const unsigned char *p, size_t len)
{
    size_t                dots;
    const unsigned char  *end;

    dots = 0;
    end = p + len;

    while (p < end) {

        if (*p == '.') {
            p++;

        } else if (*p == '%' && eas_escape_value(p, end) == '.') {
            p += 3;

        } else {
            return 0;
        }

        if (++dots > 2) {
            return 0;
        }
    }

    return dots > 0;
}


int
eas_version_parse(const unsigned char *p, size_t len, unsigned *code)
{
    const eas_version_t  *v;

    for (v = eas_versions; v->text; v++) {
        if (v->len == len && (unsigned char) v->text[0] == p[0]
            && memcmp(v->text, p, len) == 0)
        {
            *code = v->code;
            return EAS_OK;
        }
    }

    return EAS_ERROR;
}


static const eas_version_t *
eas_version_by_code(unsigned code)
{
    const eas_version_t  *v;

    for (v = eas_versions; v->text; v++) {
        if (v->code == code) {
            return v;
        }
    }

    return NULL;
}


static int
eas_request_fail(eas_request_t *req, eas_reason_e reason, int field)
{
    req->reason = reason;
    req->reason_param = field < 0 ? NULL : eas_field_name(field);

    return EAS_ERROR;
}


static const char *
eas_field_name(int field)
{
    switch (field) {

    case EAS_FIELD_CMD:
        return "Cmd";

    case EAS_FIELD_DEVICE_ID:
        return "DeviceId";

    case EAS_FIELD_DEVICE_TYPE:
        return "DeviceType";

    default:
        return eas_param_name((eas_param_e) field);
    }
}


/*
 * Percent-decoding; with "plus", "+" is a space as in an HTML form (and
 * as PHP, ASP.NET and Python read a query), without it "+" stays (a
 * base64 digit).  A "%" not followed by two hex digits is an error (PHP
 * keeps it, ASP.NET reads "%uXXXX"), and so is a decoded NUL (PHP cuts
 * a name there).
 */

static int
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


/* the escapes a base64 query may carry: %2B, %2F, %3D */

static int
eas_base64_escapes(const eas_str_t *query)
{
    int                   c;
    const unsigned char  *p, *end;

    end = query->data + query->len;

    for (p = query->data; p < end; p++) {

        if (*p != '%') {
            continue;
        }

        c = eas_escape_value(p, end);

        if (c != '+' && c != '/' && c != '=') {
            return EAS_ERROR;
        }
    }

    return EAS_OK;
}


/* the byte of the "%XX" at p, or -1 */

static int
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


/* eight bytes of a string as one word, in memory order */

static uint64_t
eas_word(const unsigned char *p)
{
    uint64_t  w;

    memcpy(&w, p, sizeof(uint64_t));

    return w;
}


/* past the words of a target's path with no EAS_CHAR_PATH byte */

static const unsigned char *
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


/* past the words of a target's query with no EAS_CHAR_QUERY byte */

static const unsigned char *
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


static int
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


static int
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

static int
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

static int
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
 * Well-formed UTF-8 (RFC 3629): shortest form only, no surrogates,
 * nothing above U+10FFFF.
 */

static int
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

static int
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


static int
eas_plain_field(const eas_str_t *name)
{
    const eas_plain_name_t  *n;

    for (n = eas_plain_names; n->name; n++) {
        if (n->len == name->len
            && (name->data[0] | 0x20) == (unsigned char) n->name[0]
            && eas_name_equals(name->data, name->len, n->name))
        {
            return n->field;
        }
    }

    return -1;
}


/*
 * A name (eas_is_name() holds) against a table name of lower-case
 * letters of the same length: of the name characters, "| 0x20" turns
 * only "A"-"Z" into letters ("a"-"z"); "_" becomes DEL, the others stay.
 */

static int
eas_name_equals(const unsigned char *p, size_t len, const char *lower)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((p[i] | 0x20) != (unsigned char) lower[i]) {
            return 0;
        }
    }

    return 1;
}
