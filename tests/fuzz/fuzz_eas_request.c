
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * libFuzzer harness for eas_request_parse() and the helpers it uses.
 *
 * Input layout (tests/fuzz/make_corpus.py writes seeds in it):
 *
 *     byte 0      flags: 0x01 OPTIONS request, 0x02 MS-ASProtocolVersion
 *                 sent, 0x04 X-MS-PolicyKey sent, 0x08 MS-ASAcceptMultiPart
 *                 sent, 0x10 no query at all (NULL)
 *     then        query NUL version NUL policy key NUL accept-multipart
 *
 * Missing parts are empty.  Every part is copied into a malloc() block of
 * exactly its size and the output buffer is exactly
 * eas_request_buffer_size(query length), so AddressSanitizer sees any
 * access past an end.  On success the result must be self-consistent
 * (see eas_fuzz_check()); a failure must carry a real reason, never
 * buffer_too_small at the contract size.  Any violation aborts.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_proto.h"
#include "../common/eas_request_check.h"

#define EAS_FUZZ_NAME  "fuzz_eas_request"
#include "../common/eas_fuzz.h"


#define EAS_FUZZ_OPTIONS           0x01
#define EAS_FUZZ_VERSION           0x02
#define EAS_FUZZ_POLICY_KEY        0x04
#define EAS_FUZZ_ACCEPT_MULTIPART  0x08
#define EAS_FUZZ_NO_QUERY          0x10


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *eas_fuzz_part(const uint8_t *p, const uint8_t *end,
    eas_str_t *part);
static unsigned char *eas_fuzz_copy(const eas_str_t *src);
static int eas_fuzz_visible(const eas_str_t *s);
static int eas_fuzz_controls(const eas_str_t *s);
static int eas_fuzz_utf8(const eas_str_t *s);
static int eas_fuzz_escape(const eas_str_t *s);
static void eas_fuzz_plain_names(const eas_str_t *query);
static void eas_fuzz_target(const eas_str_t *target);
static void eas_fuzz_check(const eas_input_t *in, const eas_request_t *req,
    const unsigned char *buf, size_t size);
static void eas_fuzz_helpers(const eas_input_t *in);
static void eas_fuzz_general(const eas_input_t *in, int rc,
    const eas_request_t *req);
static int eas_fuzz_same(const eas_str_t *a, const eas_str_t *b);


static const unsigned  eas_fuzz_versions[] = {
    20, 21, 25, 120, 121, 140, 141, 160, 161
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc, rc2;
    size_t          bsize, half;
    unsigned        flags;
    const uint8_t  *p, *end;
    unsigned char  *buf, *small;
    eas_input_t     in;
    eas_request_t   req, req2;

    if (size == 0) {
        return 0;
    }

    flags = data[0];
    p = data + 1;
    end = data + size;

    memset(&in, 0, sizeof(eas_input_t));

    p = eas_fuzz_part(p, end, &in.query);
    p = eas_fuzz_part(p, end, &in.version);
    p = eas_fuzz_part(p, end, &in.policy_key);
    (void) eas_fuzz_part(p, end, &in.accept_multipart);

    in.query.data = eas_fuzz_copy(&in.query);
    in.version.data = eas_fuzz_copy(&in.version);
    in.policy_key.data = eas_fuzz_copy(&in.policy_key);
    in.accept_multipart.data = eas_fuzz_copy(&in.accept_multipart);

    if (flags & EAS_FUZZ_NO_QUERY) {
        free((void *) in.query.data);
        in.query.data = NULL;
        in.query.len = 0;
    }

    in.options = (flags & EAS_FUZZ_OPTIONS) ? 1 : 0;
    in.has_version = (flags & EAS_FUZZ_VERSION) ? 1 : 0;
    in.has_policy_key = (flags & EAS_FUZZ_POLICY_KEY) ? 1 : 0;
    in.has_accept_multipart = (flags & EAS_FUZZ_ACCEPT_MULTIPART) ? 1 : 0;

    eas_fuzz_helpers(&in);

    bsize = eas_request_buffer_size(in.query.len);
    buf = malloc(bsize);
    eas_fuzz_assert(buf != NULL, "out of memory");

    /* poison the output: the parser must set what it reports */
    memset(&req, 0xA5, sizeof(eas_request_t));

    rc = eas_request_parse(&in, &req, buf, bsize);

    if (rc == EAS_OK) {
        eas_fuzz_check(&in, &req, buf, bsize);

    } else {
        eas_fuzz_assert(rc == EAS_ERROR, "rc is neither EAS_OK nor EAS_ERROR");
        eas_fuzz_assert(req.reason > EAS_REASON_NONE
                        && req.reason < EAS_REASON_LAST,
                        "reason out of range");
        eas_fuzz_assert(req.reason != EAS_REASON_BUFFER_TOO_SMALL,
                        "buffer_too_small at eas_request_buffer_size()");
        eas_fuzz_assert(eas_reason_name(req.reason) != NULL,
                        "no reason name");
        eas_fuzz_assert(eas_reason_text(req.reason) != NULL,
                        "no reason text");
    }

    eas_fuzz_general(&in, rc, &req);

    /* the same input gives the same answer */

    memset(&req2, 0, sizeof(eas_request_t));
    rc2 = eas_request_parse(&in, &req2, buf, bsize);

    eas_fuzz_assert(rc2 == rc, "second parse, other rc");

    if (rc == EAS_OK) {
        eas_fuzz_assert(req2.form == req.form
                        && req2.command == req.command
                        && req2.device_id.len == req.device_id.len
                        && req2.user.len == req.user.len,
                        "second parse, other result");
    } else {
        eas_fuzz_assert(req2.reason == req.reason,
                        "second parse, other reason");
    }

    /*
     * A smaller buffer gives the same answer or buffer_too_small, and is
     * never written past its end.
     */

    half = bsize / 2;
    small = malloc(half ? half : 1);
    eas_fuzz_assert(small != NULL, "out of memory");

    memset(&req2, 0, sizeof(eas_request_t));
    rc2 = eas_request_parse(&in, &req2, small, half);

    if (rc2 == EAS_OK) {
        eas_fuzz_assert(rc == EAS_OK, "smaller buffer, other rc");
        eas_fuzz_check(&in, &req2, small, half);

    } else if (req2.reason != EAS_REASON_BUFFER_TOO_SMALL) {
        eas_fuzz_assert(rc == EAS_ERROR && req2.reason == req.reason,
                        "smaller buffer, other reason");
    }

    free(small);
    free(buf);
    free((void *) in.query.data);
    free((void *) in.version.data);
    free((void *) in.policy_key.data);
    free((void *) in.accept_multipart.data);

    return 0;
}


/*
 * The fast reading of a clean plain query (eas_request_clean.c) against
 * the general one: the same query with "&x=%41" after it (an unknown
 * parameter, escaped, so the general reading takes it) gives the same
 * answer, field for field, or the same refusal.
 */

static void
eas_fuzz_general(const eas_input_t *in, int rc, const eas_request_t *req)
{
    int             rc2;
    size_t          i, amps, bsize;
    eas_input_t     in2;
    eas_request_t   req2;
    unsigned char  *query, *buf;

    static const char  tail[] = "&x=%41";

    if (req->form != EAS_FORM_PLAIN) {
        return;
    }

    for (i = 0, amps = 0; i < in->query.len; i++) {
        amps += (in->query.data[i] == '&');
    }

    if (amps >= EAS_QUERY_PARAMS_MAX - 2) {
        return;
    }

    query = malloc(in->query.len + sizeof(tail) - 1);
    eas_fuzz_assert(query != NULL, "out of memory");

    memcpy(query, in->query.data, in->query.len);
    memcpy(query + in->query.len, tail, sizeof(tail) - 1);

    in2 = *in;
    in2.query.data = query;
    in2.query.len = in->query.len + sizeof(tail) - 1;

    bsize = eas_request_buffer_size(in2.query.len);
    buf = malloc(bsize);
    eas_fuzz_assert(buf != NULL, "out of memory");

    memset(&req2, 0xA5, sizeof(eas_request_t));
    rc2 = eas_request_parse(&in2, &req2, buf, bsize);

    eas_fuzz_assert(rc2 == rc, "general reading, other rc");

    if (rc == EAS_OK) {
        eas_fuzz_assert(req2.form == req->form
                        && req2.command == req->command
                        && req2.version_code == req->version_code
                        && eas_fuzz_same(&req2.command_name,
                                         &req->command_name)
                        && eas_fuzz_same(&req2.user, &req->user)
                        && eas_fuzz_same(&req2.device_id, &req->device_id)
                        && eas_fuzz_same(&req2.device_type,
                                         &req->device_type)
                        && eas_fuzz_same(&req2.policy_key,
                                         &req->policy_key)
                        && eas_fuzz_same(&req2.version, &req->version),
                        "general reading, other fields");

        for (i = 0; i < EAS_PARAM_COUNT; i++) {
            eas_fuzz_assert(eas_fuzz_same(&req2.params[i], &req->params[i]),
                            "general reading, other parameter");
        }

    } else {
        eas_fuzz_assert(req2.reason == req->reason
                        && (req2.reason_param == req->reason_param
                            || (req2.reason_param && req->reason_param
                                && strcmp(req2.reason_param,
                                          req->reason_param) == 0)),
                        "general reading, other reason");
    }

    free(buf);
    free(query);
}


static int
eas_fuzz_same(const eas_str_t *a, const eas_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static const uint8_t *
eas_fuzz_part(const uint8_t *p, const uint8_t *end, eas_str_t *part)
{
    const uint8_t  *nul;

    part->data = p;

    nul = (p < end) ? memchr(p, '\0', (size_t) (end - p)) : NULL;

    if (nul == NULL) {
        part->len = (size_t) (end - p);
        return end;
    }

    part->len = (size_t) (nul - p);

    return nul + 1;
}


static unsigned char *
eas_fuzz_copy(const eas_str_t *src)
{
    unsigned char  *p;

    p = malloc(src->len ? src->len : 1);
    eas_fuzz_assert(p != NULL, "out of memory");

    if (src->len) {
        memcpy(p, src->data, src->len);
    }

    return p;
}


static int
eas_fuzz_visible(const eas_str_t *s)
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
eas_fuzz_controls(const eas_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            return 1;
        }
    }

    return 0;
}


static void
eas_fuzz_check(const eas_input_t *in, const eas_request_t *req,
    const unsigned char *buf, size_t size)
{
    size_t            i, n;
    uint64_t          key;
    const char       *what, *name;
    const eas_str_t  *s;

    /* the invariants the unit test checks too */

    what = eas_request_check(in, req, buf, size);
    eas_fuzz_assert(what == NULL, what);

    /* only an OPTIONS request may come without a query */

    eas_fuzz_assert((req->form == EAS_FORM_NONE)
                    == (in->options && in->query.len == 0),
                    "form NONE does not match an OPTIONS without query");

    if (req->command != EAS_CMD_NONE) {
        name = eas_command_name(req->command);

        eas_fuzz_assert(name != NULL && req->command_name.len != 0,
                        "command without a name");
        eas_fuzz_assert(eas_command_by_name(req->command_name.data,
                                            req->command_name.len)
                        == req->command,
                        "command name does not map back");
    }

    if (req->form == EAS_FORM_NONE) {
        return;
    }

    /* POST needs a command and a device */

    if (!in->options) {
        eas_fuzz_assert(req->command != EAS_CMD_NONE, "POST without Cmd");
        eas_fuzz_assert(req->device_id.len != 0, "POST without DeviceId");
        eas_fuzz_assert(req->device_type.len != 0, "POST without DeviceType");
    }

    eas_fuzz_assert(eas_fuzz_visible(&req->device_type),
                    "DeviceType not visible ASCII");

    if (req->device_id_binary) {
        eas_fuzz_assert(req->form == EAS_FORM_BASE64,
                        "binary DeviceId in plain form");
        eas_fuzz_assert(req->device_id.len % 2 == 0
                        && req->device_id.len <= 2 * 255,
                        "hex DeviceId length");

        for (i = 0; i < req->device_id.len; i++) {
            eas_fuzz_assert((req->device_id.data[i] >= '0'
                             && req->device_id.data[i] <= '9')
                            || (req->device_id.data[i] >= 'A'
                                && req->device_id.data[i] <= 'F'),
                            "hex DeviceId not upper-case hex");
        }

    } else {
        eas_fuzz_assert(eas_fuzz_visible(&req->device_id),
                        "DeviceId not visible ASCII");
    }

    if (req->form == EAS_FORM_PLAIN) {
        eas_fuzz_assert(!req->has_locale, "locale in plain form");
        eas_fuzz_assert(req->device_id.len <= EAS_DEVICE_ID_MAX,
                        "DeviceId too long");
        eas_fuzz_assert(req->device_type.len <= EAS_DEVICE_TYPE_MAX,
                        "DeviceType too long");
        eas_fuzz_assert(req->user.len <= EAS_USER_MAX, "User too long");
        eas_fuzz_assert(req->user.len == 0
                        || memchr(req->user.data, '\0', req->user.len)
                           == NULL,
                        "NUL in User");

        if (!in->options) {
            for (n = 0; n < sizeof(eas_fuzz_versions) / sizeof(unsigned);
                 n++)
            {
                if (eas_fuzz_versions[n] == req->version_code) {
                    break;
                }
            }

            eas_fuzz_assert(n < sizeof(eas_fuzz_versions) / sizeof(unsigned),
                            "plain POST without a valid version");
        }

        if (req->policy_key.len != 0) {
            eas_fuzz_assert(req->policy_key.len <= EAS_POLICY_KEY_MAX
                            && eas_fuzz_visible(&req->policy_key),
                            "policy key not 1-64 visible characters");
        }

        s = &req->params[EAS_PARAM_SAVE_IN_SENT];

        eas_fuzz_assert(s->len == 0
                        || (s->len == 1
                            && (s->data[0] == 'T' || s->data[0] == 'F')),
                        "SaveInSent not T or F");

        for (i = 0; i < EAS_PARAM_COUNT; i++) {
            s = &req->params[i];

            eas_fuzz_assert(s->len <= EAS_PARAM_MAX, "parameter too long");

            if (i != EAS_PARAM_USER) {
                eas_fuzz_assert(!eas_fuzz_controls(s),
                                "control character in a parameter");
            }

            eas_fuzz_assert(eas_fuzz_utf8(s), "parameter not UTF-8");
        }

        /* one reading with PHP, ASP.NET and Python (docs/requests.md) */

        eas_fuzz_assert(memchr(in->query.data, ';', in->query.len) == NULL,
                        "\";\" in an accepted plain query");
        eas_fuzz_assert(eas_fuzz_utf8(&req->user), "User not UTF-8");
        eas_fuzz_assert(!eas_fuzz_escape(&req->user)
                        && !eas_fuzz_escape(&req->device_id)
                        && !eas_fuzz_escape(&req->device_type),
                        "escape left in a decoded value");

        eas_fuzz_plain_names(&in->query);

    } else {
        eas_fuzz_assert(req->has_locale, "no locale in base64 form");
        eas_fuzz_assert(req->locale <= 0xffff, "locale over 16 bits");
        eas_fuzz_assert(req->version_code == 121
                        || req->version_code == 140
                        || req->version_code == 141
                        || req->version_code == 160
                        || req->version_code == 161,
                        "base64 version out of range");
        eas_fuzz_assert(req->device_id.len <= 2 * 255,
                        "DeviceId too long");
        eas_fuzz_assert(req->device_type.len <= 255, "DeviceType too long");
        eas_fuzz_assert(req->user.len <= 255, "User too long");

        if (req->policy_key.len != 0) {
            eas_fuzz_assert(req->policy_key.len <= 10, "policy key length");

            key = 0;

            for (i = 0; i < req->policy_key.len; i++) {
                eas_fuzz_assert(req->policy_key.data[i] >= '0'
                                && req->policy_key.data[i] <= '9',
                                "policy key not decimal");
                key = key * 10 + (req->policy_key.data[i] - '0');
            }

            eas_fuzz_assert(key <= 0xffffffff, "policy key over 32 bits");
        }

        for (i = 0; i < EAS_PARAM_COUNT; i++) {
            eas_fuzz_assert(req->params[i].len <= 255, "parameter too long");
        }
    }
}


/*
 * Well-formed UTF-8, written apart from the parser's own check: a code
 * point's bytes are decoded and re-encoded at the shortest length.
 */

static int
eas_fuzz_utf8(const eas_str_t *s)
{
    size_t    i, n, k, shortest;
    uint32_t  cp;

    for (i = 0; i < s->len; i += n) {
        cp = s->data[i];

        if (cp < 0x80) {
            n = 1;
            continue;
        }

        n = cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : cp >= 0xc0 ? 2 : 0;

        if (n == 0 || cp >= 0xf8 || s->len - i < n) {
            return 0;
        }

        cp &= 0x7f >> n;

        for (k = 1; k < n; k++) {
            if (s->data[i + k] < 0x80 || s->data[i + k] > 0xbf) {
                return 0;
            }

            cp = cp << 6 | (s->data[i + k] & 0x3f);
        }

        shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

        if (shortest != n || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff))
        {
            return 0;
        }
    }

    return 1;
}


/* "%" and two hex digits */

static int
eas_fuzz_escape(const eas_str_t *s)
{
    size_t  i;

    for (i = 0; i + 2 < s->len; i++) {
        if (s->data[i] == '%'
            && strchr("0123456789abcdefABCDEF", s->data[i + 1]) != NULL
            && s->data[i + 1] != '\0'
            && strchr("0123456789abcdefABCDEF", s->data[i + 2]) != NULL
            && s->data[i + 2] != '\0')
        {
            return 1;
        }
    }

    return 0;
}


/*
 * An accepted plain query: every non-empty segment has a "=" and a name
 * of letters, digits, "-", "_", "." written without "%" or "+"; each "%"
 * elsewhere starts an escape.
 */

static void
eas_fuzz_plain_names(const eas_str_t *query)
{
    int                   name;
    const unsigned char  *p, *end, *seg;

    end = query->data + query->len;
    seg = query->data;
    name = 1;

    for (p = query->data; p <= end; p++) {

        if (p == end || *p == '&') {
            eas_fuzz_assert(p == seg || !name, "segment without \"=\"");
            seg = p + 1;
            name = 1;
            continue;
        }

        if (*p == '=' && name) {
            eas_fuzz_assert(p > seg, "empty name");
            name = 0;
            continue;
        }

        if (*p == '%') {
            eas_fuzz_assert(end - p >= 3
                            && strchr("0123456789abcdefABCDEF", p[1])
                            && strchr("0123456789abcdefABCDEF", p[2])
                            && p[1] != '\0' && p[2] != '\0'
                            && (p[1] != '0' || p[2] != '0'),
                            "bad escape in an accepted query");
        }

        if (name) {
            eas_fuzz_assert((*p >= 'a' && *p <= 'z')
                            || (*p >= 'A' && *p <= 'Z')
                            || (*p >= '0' && *p <= '9')
                            || *p == '-' || *p == '_' || *p == '.',
                            "name character in an accepted query");
        }
    }
}


/*
 * eas_target_check() over the query bytes taken as a target, with and
 * without a normalized path: an accepted target has no "#", no space or
 * control, no backslash or encoded slash in its path, and, compared with
 * a path, the same path.
 */

static void
eas_fuzz_target(const eas_str_t *target)
{
    int                   rc;
    size_t                i, path;
    eas_str_t             uri;
    eas_reason_e          reason;
    const unsigned char  *q;

    reason = EAS_REASON_LAST;
    rc = eas_target_check(target, NULL, &reason);

    eas_fuzz_assert((rc == EAS_OK) == (reason == EAS_REASON_NONE),
                    "target: reason does not match rc");

    if (rc != EAS_OK) {
        eas_fuzz_assert(reason > EAS_REASON_NONE && reason < EAS_REASON_LAST
                        && eas_reason_name(reason) != NULL,
                        "target: reason out of range");
        return;
    }

    if (target->len == 0) {
        return;
    }

    q = memchr(target->data, '?', target->len);
    path = q ? (size_t) (q - target->data) : target->len;

    for (i = 0; i < target->len; i++) {
        eas_fuzz_assert(target->data[i] != '#' && target->data[i] > 0x20
                        && target->data[i] != 0x7f,
                        "target: accepted '#', space or control");

        if (i < path) {
            eas_fuzz_assert(target->data[i] != '\\'
                            && target->data[i] < 0x80,
                            "target: accepted backslash or non-ASCII");

            if (target->data[i] == '%' && i + 2 < path) {
                eas_fuzz_assert(!((target->data[i + 1] == '2'
                                   && (target->data[i + 2] | 0x20) == 'f')
                                  || (target->data[i + 1] == '5'
                                      && (target->data[i + 2] | 0x20)
                                         == 'c')),
                                "target: accepted an encoded slash");
            }
        }
    }

    /* against its own path it passes, against a shorter one it fails */

    uri.data = target->data;
    uri.len = path;

    eas_fuzz_assert(eas_target_check(target, &uri, &reason) == EAS_OK,
                    "target: refused against its own path");

    if (path > 0) {
        uri.len = path - 1;

        eas_fuzz_assert(eas_target_check(target, &uri, &reason) == EAS_ERROR
                        && reason == EAS_REASON_PATH_NOT_CANONICAL,
                        "target: accepted against another path");
    }
}


/* the helpers on their own, over the same parts */

static void
eas_fuzz_helpers(const eas_input_t *in)
{
    long            rc, rc2;
    size_t          i, n, size;
    unsigned        code;
    const char     *name;
    unsigned char  *dst;
    eas_command_e   cmd;

    if (eas_version_parse(in->version.data, in->version.len, &code)
        == EAS_OK)
    {
        for (n = 0; n < sizeof(eas_fuzz_versions) / sizeof(unsigned); n++) {
            if (eas_fuzz_versions[n] == code) {
                break;
            }
        }

        eas_fuzz_assert(n < sizeof(eas_fuzz_versions) / sizeof(unsigned),
                        "eas_version_parse() accepted an unknown version");
    }

    eas_fuzz_target(&in->query);

    cmd = eas_command_by_name(in->query.data, in->query.len);

    if (cmd != EAS_CMD_NONE) {
        name = eas_command_name(cmd);

        eas_fuzz_assert(name != NULL && strlen(name) == in->query.len,
                        "eas_command_by_name() matched another length");

        for (i = 0; i < in->query.len; i++) {
            eas_fuzz_assert((name[i] | 0x20) == (in->query.data[i] | 0x20),
                            "eas_command_by_name() matched another name");
        }
    }

    /* decoded base64 is at most 3/4 of the input */

    size = in->query.len / 4 * 3 + 3;
    dst = malloc(size);
    eas_fuzz_assert(dst != NULL, "out of memory");

    rc = eas_base64_decode(in->query.data, in->query.len, dst, size);

    eas_fuzz_assert(rc >= -1 && rc <= (long) size, "base64 length");

    free(dst);

    if (rc > 0) {
        /* exactly the decoded size suffices, one byte less does not */

        dst = malloc((size_t) rc);
        eas_fuzz_assert(dst != NULL, "out of memory");

        rc2 = eas_base64_decode(in->query.data, in->query.len, dst,
                                (size_t) rc);
        eas_fuzz_assert(rc2 == rc, "base64 into the exact size");

        rc2 = eas_base64_decode(in->query.data, in->query.len, dst,
                                (size_t) rc - 1);
        eas_fuzz_assert(rc2 == -1, "base64 into one byte less");

        free(dst);
    }
}
