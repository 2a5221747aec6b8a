
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The request parser (docs/requests.md): an EAS query in either form
 * (plain here, base64 in eas_request_base64.c) into the fields of
 * eas_request_t, each field checked, and the three EAS headers; the
 * protocol versions it knows.
 */

#include "eas_request.h"


#define eas_plain_name(name, field)  { name, sizeof(name) - 1, field }
#define eas_version(text, code)      { text, sizeof(text) - 1, code }


typedef struct {
    const char     *name;
    size_t          len;
    int             field;
} eas_plain_name_t;


static int eas_request_parse_plain(const eas_input_t *in,
    eas_request_t *req, eas_fields_t *fields, eas_buf_t *buf);
static int eas_request_check(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields);
static int eas_request_check_headers(const eas_input_t *in,
    eas_request_t *req);
static int eas_request_check_value(eas_request_t *req,
    const eas_str_t *v, int field);
static int eas_name_equals(const unsigned char *p, size_t len,
    const char *lower);
static const eas_version_t *eas_version_find(const unsigned char *p,
    size_t len);
static const char *eas_field_name(int field);


/*
 * plain-form parameter names (MS-ASHTTP 2.2.1.1.1.2), lower case, by
 * length: eas_plain_field() starts at the first of the length sent
 */
static const eas_plain_name_t  eas_plain_names[] = {
    eas_plain_name("cmd", EAS_FIELD_CMD),                       /* 0 */
    eas_plain_name("user", EAS_PARAM_USER),                     /* 1 */
    eas_plain_name("itemid", EAS_PARAM_ITEM_ID),                /* 2 */
    eas_plain_name("longid", EAS_PARAM_LONG_ID),
    eas_plain_name("deviceid", EAS_FIELD_DEVICE_ID),            /* 4 */
    eas_plain_name("devicetype", EAS_FIELD_DEVICE_TYPE),        /* 5 */
    eas_plain_name("occurrence", EAS_PARAM_OCCURRENCE),
    eas_plain_name("saveinsent", EAS_PARAM_SAVE_IN_SENT),
    eas_plain_name("collectionid", EAS_PARAM_COLLECTION_ID),    /* 8 */
    eas_plain_name("attachmentname", EAS_PARAM_ATTACHMENT_NAME), /* 9 */
    { NULL, 0, 0 }                                              /* 10 */
};

/* the first name of each length in eas_plain_names[]; 10: none */
static const unsigned char  eas_plain_first[15] = {
    10, 10, 10, 0, 1, 10, 2, 10, 4, 10, 5, 10, 8, 10, 9
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


int
eas_request_parse(const eas_input_t *in, eas_request_t *req,
    unsigned char *buf, size_t size)
{
    int           rc;
    eas_buf_t     scratch;
    eas_fields_t  fields;

    /* the fields are zeroed by the reading that fills them */

    memset(req, 0, sizeof(eas_request_t));
    memset(fields.seen, 0, sizeof(fields.seen));
    fields.clean = 0;

    req->command = EAS_CMD_NONE;

    if (in->query.len == 0) {
        if (!in->options) {
            return eas_request_fail(req, EAS_REASON_QUERY_MISSING, -1);
        }

        memset(&fields, 0, sizeof(eas_fields_t));

        req->form = EAS_FORM_NONE;
        rc = EAS_OK;

    } else if (eas_request_form_is_base64(&in->query)) {
        req->form = EAS_FORM_BASE64;
        rc = EAS_DECLINED;

    } else {
        req->form = EAS_FORM_PLAIN;
        rc = eas_request_parse_clean(in, req, &fields);
    }

    /* only the general readings write to the buffer */

    if (rc == EAS_DECLINED) {

        memset(&fields, 0, sizeof(eas_fields_t));

        if (size < eas_request_buffer_size(in->query.len)) {
            return eas_request_fail(req, EAS_REASON_BUFFER_TOO_SMALL, -1);
        }

        scratch.pos = buf;
        scratch.end = buf + size;

        if (req->form == EAS_FORM_BASE64) {
            rc = eas_request_parse_base64(in, req, &fields, &scratch);

        } else {
            rc = eas_request_parse_plain(in, req, &fields, &scratch);
        }
    }

    if (rc != EAS_OK) {
        return rc;
    }

    return eas_request_check(in, req, &fields);
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
         * characters has neither, and so has one that is a known name
         * as sent (letters only): that is the common case, looked up
         * first.
         */

        field = eas_plain_field(&raw);

        if (field >= 0 || eas_is_name(&raw)) {
            name = raw;

        } else if (eas_percent_decode(raw.data, raw.len, buf, &name, 1)
                   != EAS_OK)
        {
            return eas_request_fail(req, EAS_REASON_PERCENT_ENCODING, -1);

        } else if (!eas_is_name(&name)) {
            return eas_request_fail(req, EAS_REASON_PARAM_NAME_INVALID, -1);

        } else {
            field = eas_plain_field(&name);
        }

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


/* checks common to both forms, then the fields go into the request */

static int
eas_request_check(const eas_input_t *in, eas_request_t *req,
    eas_fields_t *fields)
{
    int          i;
    eas_str_t   *v;
    const char  *name;

    /* a clean query's parameters are in place already */

    if (!fields->clean) {
        memcpy(req->params, fields->value, sizeof(req->params));
    }

    /* Cmd (plain form only; base64 has checked its command code) */

    v = &fields->value[EAS_FIELD_CMD];

    if (req->form == EAS_FORM_PLAIN) {

        if (v->len == 0) {
            if (!in->options) {
                return eas_request_fail(req, EAS_REASON_CMD_MISSING, -1);
            }

        } else {
            req->command = eas_command_lookup(v->data, v->len,
                                              &req->command_name);

            /* capability discovery names no command it needs */

            if (req->command == EAS_CMD_NONE && !in->options) {
                return eas_request_fail(req, EAS_REASON_CMD_UNKNOWN,
                                        EAS_FIELD_CMD);
            }
        }

    } else if (req->command != EAS_CMD_NONE) {
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

    } else if (v->len > EAS_DEVICE_ID_MAX
               || (!fields->clean && !eas_is_visible(v)))
    {
        return eas_request_fail(req, EAS_REASON_DEVICE_ID_INVALID,
                                EAS_FIELD_DEVICE_ID);
    }

    req->device_id = *v;

    v = &fields->value[EAS_FIELD_DEVICE_TYPE];

    if (v->len == 0) {
        if (!in->options && req->form != EAS_FORM_NONE) {
            return eas_request_fail(req, EAS_REASON_DEVICE_TYPE_MISSING, -1);
        }

    } else if (v->len > EAS_DEVICE_TYPE_MAX
               || (!fields->clean && !eas_is_visible(v)))
    {
        return eas_request_fail(req, EAS_REASON_DEVICE_TYPE_INVALID,
                                EAS_FIELD_DEVICE_TYPE);
    }

    req->device_type = *v;

    /*
     * User: for logs only, UTF-8 allowed, no control characters; the
     * values of a clean query (eas_request_clean.c) are visible ASCII
     */

    v = &req->params[EAS_PARAM_USER];

    if (v->len > EAS_USER_MAX || (!fields->clean && eas_has_control(v))) {
        return eas_request_fail(req, EAS_REASON_USER_INVALID,
                                EAS_PARAM_USER);
    }

    if (!fields->clean && !eas_is_utf8(v)) {
        return eas_request_fail(req, EAS_REASON_UTF8_INVALID,
                                EAS_PARAM_USER);
    }

    req->user = *v;

    /* the other parameters (User, checked above, is one of them) */

    for (i = 0; i < EAS_PARAM_COUNT; i++) {
        v = &req->params[i];

        /* a clean query's values are shorter than the query */

        if (fields->clean && in->query.len <= EAS_PARAM_MAX) {
            break;
        }

        if (v->len == 0 || i == EAS_PARAM_USER) {
            continue;
        }

        if (fields->clean) {
            if (v->len > EAS_PARAM_MAX) {
                return eas_request_fail(req, EAS_REASON_PARAM_INVALID, i);
            }

        } else if (eas_request_check_value(req, v, i) != EAS_OK) {
            return EAS_ERROR;
        }
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

    ver = eas_version_find(in->version.data, in->version.len);

    if (ver == NULL) {
        if (in->options) {
            goto policy_key;
        }

        return eas_request_fail(req, EAS_REASON_VERSION_INVALID, -1);
    }

    req->version_code = ver->code;
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


int
eas_version_parse(const unsigned char *p, size_t len, unsigned *code)
{
    const eas_version_t  *v;

    v = eas_version_find(p, len);

    if (v == NULL) {
        return EAS_ERROR;
    }

    *code = v->code;

    return EAS_OK;
}


/*
 * Every version is "M.m" or "MM.m", its code ten times it: the digits
 * give the code, and the table's text of that code must be the text
 * sent, byte for byte ("02.0" and "2.00" are none).
 */

static const eas_version_t *
eas_version_find(const unsigned char *p, size_t len)
{
    unsigned              code;
    const eas_version_t  *v;

    if (len == 3 && p[1] == '.') {
        code = (unsigned) (p[0] - '0') * 10 + (unsigned) (p[2] - '0');

    } else if (len == 4 && p[2] == '.') {
        code = (unsigned) (p[0] - '0') * 100 + (unsigned) (p[1] - '0') * 10
               + (unsigned) (p[3] - '0');

    } else {
        return NULL;
    }

    v = eas_version_by_code(code);

    /*
     * The text sent is the table's when the lengths and the first and
     * last bytes agree: "." is in place, and for "MM.m" the code leaves
     * one value for the byte between them (ten times a byte's value is
     * a different number for each byte)
     */

    if (v == NULL || v->len != len || v->text[0] != (char) p[0]
        || v->text[len - 1] != (char) p[len - 1])
    {
        return NULL;
    }

    return v;
}


const eas_version_t *
eas_version_by_code(unsigned code)
{
    /* the order of eas_versions[] */

    switch (code) {

    case 20:
        return &eas_versions[0];

    case 21:
        return &eas_versions[1];

    case 25:
        return &eas_versions[2];

    case 120:
        return &eas_versions[3];

    case 121:
        return &eas_versions[4];

    case 140:
        return &eas_versions[5];

    case 141:
        return &eas_versions[6];

    case 160:
        return &eas_versions[7];

    case 161:
        return &eas_versions[8];

    default:
        return NULL;
    }
}


int
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


int
eas_plain_field(const eas_str_t *name)
{
    const eas_plain_name_t  *n;

    if (name->len >= sizeof(eas_plain_first)) {
        return -1;
    }

    for (n = &eas_plain_names[eas_plain_first[name->len]];
         n->name && n->len == name->len;
         n++)
    {
        if (eas_name_equals(name->data, name->len, n->name)) {
            return n->field;
        }
    }

    return -1;
}


/*
 * Bytes as sent against a table name of lower-case letters of the same
 * length: "| 0x20" turns only "A"-"Z" into letters ("a"-"z"), so the
 * bytes are equal only if they are the name's letters in either case
 * (a match is a name: eas_is_name() holds).
 */

static int
eas_name_equals(const unsigned char *p, size_t len, const char *lower)
{
    size_t                i;
    uint32_t              a, b;
    const unsigned char  *l;

    l = (const unsigned char *) lower;

    /* eight bytes a step, the last eight overlapping the step before */

    if (len >= 8) {
        for (i = 0; len - i > 8; i += 8) {
            if ((eas_word(p + i) | (EAS_SWAR_ONES * 0x20))
                != eas_word(l + i))
            {
                return 0;
            }
        }

        return (eas_word(p + len - 8) | (EAS_SWAR_ONES * 0x20))
               == eas_word(l + len - 8);
    }

    /* four and four, overlapping */

    if (len >= 4) {
        memcpy(&a, p, sizeof(uint32_t));
        memcpy(&b, l, sizeof(uint32_t));

        if ((a | 0x20202020) != b) {
            return 0;
        }

        memcpy(&a, p + len - 4, sizeof(uint32_t));
        memcpy(&b, l + len - 4, sizeof(uint32_t));

        return (a | 0x20202020) == b;
    }

    for (i = 0; i < len; i++) {
        if ((p[i] | 0x20) != l[i]) {
            return 0;
        }
    }

    return 1;
}
