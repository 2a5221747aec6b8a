
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
    int             field;
} eas_plain_name_t;


typedef struct {
    const char     *text;
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
static int eas_percent_decode(const unsigned char *p, size_t len,
    eas_buf_t *buf, eas_str_t *out);
static int eas_hex_value(unsigned char c);
static int eas_is_visible(const eas_str_t *s);
static int eas_has_control(const eas_str_t *s);
static int eas_name_equals(const unsigned char *p, size_t len,
    const char *lower);
static const char *eas_field_name(int field);
static const eas_version_t *eas_version_by_code(unsigned code);


/* plain-form parameter names (MS-ASHTTP 2.2.1.1.1.2), lower case */
static const eas_plain_name_t  eas_plain_names[] = {
    { "cmd", EAS_FIELD_CMD },
    { "user", EAS_PARAM_USER },
    { "deviceid", EAS_FIELD_DEVICE_ID },
    { "devicetype", EAS_FIELD_DEVICE_TYPE },
    { "attachmentname", EAS_PARAM_ATTACHMENT_NAME },
    { "collectionid", EAS_PARAM_COLLECTION_ID },
    { "itemid", EAS_PARAM_ITEM_ID },
    { "longid", EAS_PARAM_LONG_ID },
    { "occurrence", EAS_PARAM_OCCURRENCE },
    { "saveinsent", EAS_PARAM_SAVE_IN_SENT },
    { NULL, 0 }
};


/* MS-ASHTTP 2.2.1.1.2.6 header values; base64 carries code = 10 x v */
static const eas_version_t  eas_versions[] = {
    { "2.0", 20 },
    { "2.1", 21 },
    { "2.5", 25 },
    { "12.0", 120 },
    { "12.1", 121 },
    { "14.0", 140 },
    { "14.1", 141 },
    { "16.0", 160 },
    { "16.1", 161 },
    { NULL, 0 }
};


static const char  eas_hex_digits[] = "0123456789ABCDEF";


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


static int
eas_request_parse_plain(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields, eas_buf_t *buf)
{
    int                      field;
    size_t                   name_len;
    eas_str_t                value;
    const unsigned char     *p, *end, *amp, *eq;
    const eas_plain_name_t  *n;

    p = in->query.data;
    end = p + in->query.len;

    for ( /* void */ ; p < end; p = amp + 1) {

        amp = memchr(p, '&', end - p);
        if (amp == NULL) {
            amp = end;
        }

        eq = memchr(p, '=', amp - p);
        name_len = (eq ? eq : amp) - p;

        field = -1;

        for (n = eas_plain_names; n->name; n++) {
            if (eas_name_equals(p, name_len, n->name)) {
                field = n->field;
                break;
            }
        }

        /* unknown parameters and empty segments travel on untouched */

        if (field < 0) {
            continue;
        }

        if (eq == NULL) {
            return eas_request_fail(req, EAS_REASON_PARAM_NO_VALUE, field);
        }

        if (fields->seen[field]) {
            return eas_request_fail(req, EAS_REASON_PARAM_DUPLICATE, field);
        }

        fields->seen[field] = 1;

        if (eas_percent_decode(eq + 1, amp - eq - 1, buf, &value)
            != EAS_OK)
        {
            return eas_request_fail(req, EAS_REASON_PERCENT_ENCODING, field);
        }

        fields->value[field] = value;
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

    /* some clients percent-encode "+", "/" and "="; decode in place */

    if (memchr(src.data, '%', src.len) != NULL) {
        if (eas_percent_decode(src.data, src.len, buf, &src) != EAS_OK) {
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
    int         i;
    eas_str_t  *v;

    /* Cmd (plain form only; base64 has checked its command code) */

    v = &fields->value[EAS_FIELD_CMD];

    if (req->form == EAS_FORM_PLAIN) {

        if (v->len == 0) {
            if (!in->options) {
                return eas_request_fail(req, EAS_REASON_CMD_MISSING, -1);
            }

        } else {
            req->command = eas_command_by_name(v->data, v->len);

            if (req->command == EAS_CMD_NONE) {
                return eas_request_fail(req, EAS_REASON_CMD_UNKNOWN,
                                        EAS_FIELD_CMD);
            }
        }
    }

    if (req->command != EAS_CMD_NONE) {
        req->command_name.data = (const unsigned char *)
                                 eas_command_name(req->command);
        req->command_name.len = strlen(eas_command_name(req->command));
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

    req->user = *v;

    /* the other parameters */

    for (i = 0; i < EAS_PARAM_COUNT; i++) {
        v = &fields->value[i];

        if (v->len > EAS_PARAM_MAX || eas_has_control(v)) {
            return eas_request_fail(req, EAS_REASON_PARAM_INVALID, i);
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
        req->version.len = strlen(ver->text);
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
    req->version.len = strlen(ver->text);

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


int
eas_version_parse(const unsigned char *p, size_t len, unsigned *code)
{
    const eas_version_t  *v;

    for (v = eas_versions; v->text; v++) {
        if (strlen(v->text) == len && memcmp(v->text, p, len) == 0) {
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
 * RFC 3986 percent-decoding.  "+" stays "+": the query is not an HTML
 * form, and base64 queries use "+" as a digit.  A decoded NUL is refused.
 */

static int
eas_percent_decode(const unsigned char *p, size_t len, eas_buf_t *buf,
    eas_str_t *out)
{
    int                   hi, lo;
    unsigned char        *d, *start;
    const unsigned char  *end;

    start = buf->pos;
    d = start;
    end = p + len;

    while (p < end) {

        if (*p != '%') {
            *d++ = *p++;
            continue;
        }

        if (end - p < 3) {
            return EAS_ERROR;
        }

        hi = eas_hex_value(p[1]);
        lo = eas_hex_value(p[2]);

        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            return EAS_ERROR;
        }

        *d++ = (unsigned char) (hi << 4 | lo);
        p += 3;
    }

    buf->pos = d;
    out->data = start;
    out->len = d - start;

    return EAS_OK;
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


static int
eas_is_visible(const eas_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x21 || s->data[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


static int
eas_has_control(const eas_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            return 1;
        }
    }

    return 0;
}


static int
eas_name_equals(const unsigned char *p, size_t len, const char *lower)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (lower[i] == '\0' || c != (unsigned char) lower[i]) {
            return 0;
        }
    }

    return lower[len] == '\0';
}
