
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The base64 form of an EAS query (MS-ASHTTP 2.2.1.1.1.1): telling it
 * from the plain form, decoding its fixed header and its parameters
 * into the fields the request parser checks.
 */

#include "eas_request.h"


/* the smallest base64 query: version, command, locale, three lengths */
#define EAS_BASE64_MIN         7


static int eas_request_base64_params(eas_request_t *req,
    eas_fields_t *fields, const unsigned char *p, const unsigned char *end,
    eas_buf_t *buf);
static int eas_base64_escapes(const eas_str_t *query);


static const char  eas_hex_digits[] = "0123456789ABCDEF";


/*
 * The specification gives no discriminator.  A plain query is made of
 * name=value pairs; a base64 query has no "&" and "=" only as padding.
 */

int
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


int
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
