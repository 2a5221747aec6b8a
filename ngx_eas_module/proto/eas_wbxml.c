
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_wbxml.h"


/* global tokens (WBXML 1.3 section 7.1) */
#define EAS_WBXML_SWITCH_PAGE   0x00
#define EAS_WBXML_END           0x01
#define EAS_WBXML_ENTITY        0x02
#define EAS_WBXML_STR_I         0x03
#define EAS_WBXML_LITERAL       0x04
#define EAS_WBXML_EXT_I_0       0x40
#define EAS_WBXML_EXT_I_2       0x42
#define EAS_WBXML_PI            0x43
#define EAS_WBXML_LITERAL_C     0x44
#define EAS_WBXML_EXT_T_0       0x80
#define EAS_WBXML_EXT_T_2       0x82
#define EAS_WBXML_STR_T         0x83
#define EAS_WBXML_LITERAL_A     0x84
#define EAS_WBXML_EXT_0         0xc0
#define EAS_WBXML_EXT_2         0xc2
#define EAS_WBXML_OPAQUE        0xc3
#define EAS_WBXML_LITERAL_AC    0xc4

#define EAS_WBXML_CONTENT       0x40
#define EAS_WBXML_ATTRS         0x80
#define EAS_WBXML_TAG           0x3f

#define EAS_WBXML_UTF8          106

/* what the element being read is to the scanner */
#define EAS_WBXML_IN_OTHER      0
#define EAS_WBXML_IN_HEARTBEAT  1
#define EAS_WBXML_IN_WAIT       2


typedef struct {
    const unsigned char  *start;
    const unsigned char  *p;
    const unsigned char  *end;
    eas_longpoll_t       *lp;

    size_t                depth;       /* open elements */
    unsigned              page;
    unsigned              capture;     /* EAS_WBXML_IN_* at depth 2 */
    unsigned              digits;      /* digits seen in the capture */
    uint32_t              value;
} eas_wbxml_scan_t;


static int eas_wbxml_fail(eas_wbxml_scan_t *s, eas_wbxml_error_e error);
static int eas_wbxml_mb_int(eas_wbxml_scan_t *s, uint32_t *value);
static int eas_wbxml_skip_string(eas_wbxml_scan_t *s,
    const unsigned char **str, size_t *len);
static int eas_wbxml_header(eas_wbxml_scan_t *s);
static int eas_wbxml_tag(eas_wbxml_scan_t *s, unsigned token,
    eas_wbxml_root_e expect);
static int eas_wbxml_end(eas_wbxml_scan_t *s);
static int eas_wbxml_text(eas_wbxml_scan_t *s, const unsigned char *p,
    size_t len);
static size_t eas_wbxml_response(unsigned page, unsigned root,
    unsigned status_tag, unsigned status, unsigned value_tag,
    uint32_t value, unsigned char *buf, size_t size);
static unsigned char *eas_wbxml_put_text(unsigned char *p, uint32_t value);
static int eas_wbxml_next_tag(eas_wbxml_scan_t *s, unsigned *page,
    unsigned *token);
static int eas_wbxml_number(eas_wbxml_scan_t *s, uint32_t *value);
static int eas_wbxml_status_error(eas_wbxml_scan_t *s,
    eas_wbxml_status_t *st, int rc);


/*
 * Each command whose response root has a top-level Status: the code
 * page, the root and the Status tokens (MS-ASWBXML 2.1.2.1, checked
 * against libwbxml's xml2wbxml in tests/integration/test_edge_answers.py).
 */
static const struct {
    unsigned char         command;
    unsigned char         page;
    unsigned char         root;
    unsigned char         status;
} eas_wbxml_command_roots[] = {
    { EAS_CMD_SYNC, 0x00, 0x05, 0x0e },                 /* AirSync */
    { EAS_CMD_SEND_MAIL, 0x15, 0x05, 0x12 },            /* ComposeMail */
    { EAS_CMD_SMART_FORWARD, 0x15, 0x06, 0x12 },
    { EAS_CMD_SMART_REPLY, 0x15, 0x07, 0x12 },
    { EAS_CMD_FOLDER_SYNC, 0x07, 0x16, 0x0c },          /* FolderHierarchy */
    { EAS_CMD_FOLDER_CREATE, 0x07, 0x13, 0x0c },
    { EAS_CMD_FOLDER_DELETE, 0x07, 0x14, 0x0c },
    { EAS_CMD_FOLDER_UPDATE, 0x07, 0x15, 0x0c },
    { EAS_CMD_SEARCH, 0x0f, 0x05, 0x0c },               /* Search */
    { EAS_CMD_SETTINGS, 0x12, 0x05, 0x06 },             /* Settings */
    { EAS_CMD_PING, 0x0d, 0x05, 0x07 },                 /* Ping */
    { EAS_CMD_ITEM_OPERATIONS, 0x14, 0x05, 0x0d },      /* ItemOperations */
    { EAS_CMD_PROVISION, 0x0e, 0x05, 0x0b },            /* Provision */
    { EAS_CMD_RESOLVE_RECIPIENTS, 0x0a, 0x05, 0x07 },   /* ResolveRecipients */
    { EAS_CMD_VALIDATE_CERT, 0x0b, 0x05, 0x0a }         /* ValidateCert */
};


static const char  *eas_wbxml_errors[EAS_WBXML_LAST] = {
    "ok",
    "truncated",
    "version",
    "charset",
    "mb_u_int32",
    "attributes",
    "unbalanced",
    "trailing",
    "root",
    "value",
    "duplicate"
};


int
eas_wbxml_scan(const unsigned char *p, size_t len, eas_wbxml_root_e expect,
    eas_longpoll_t *lp)
{
    size_t                n;
    uint32_t              skip;
    unsigned              token;
    eas_wbxml_scan_t      s;
    const unsigned char  *str;

    memset(lp, 0, sizeof(eas_longpoll_t));
    memset(&s, 0, sizeof(eas_wbxml_scan_t));

    s.start = p;
    s.p = p;
    s.end = p + len;
    s.lp = lp;

    if (eas_wbxml_header(&s) != EAS_OK) {
        return EAS_ERROR;
    }

    for ( ;; ) {

        if (s.p == s.end) {
            if (lp->root == EAS_WBXML_ROOT_NONE || s.depth != 0) {
                return eas_wbxml_fail(&s, EAS_WBXML_TRUNCATED);
            }

            return EAS_OK;
        }

        if (lp->root != EAS_WBXML_ROOT_NONE && s.depth == 0) {
            return eas_wbxml_fail(&s, EAS_WBXML_TRAILING);
        }

        token = *s.p++;

        switch (token) {

        case EAS_WBXML_SWITCH_PAGE:
            if (s.p == s.end) {
                return eas_wbxml_fail(&s, EAS_WBXML_TRUNCATED);
            }

            s.page = *s.p++;
            continue;

        case EAS_WBXML_END:
            if (eas_wbxml_end(&s) != EAS_OK) {
                return EAS_ERROR;
            }

            continue;

        case EAS_WBXML_STR_I:
            if (eas_wbxml_skip_string(&s, &str, &n) != EAS_OK) {
                return EAS_ERROR;
            }

            if (eas_wbxml_text(&s, str, n) != EAS_OK) {
                return EAS_ERROR;
            }

            continue;

        case EAS_WBXML_OPAQUE:
            if (eas_wbxml_mb_int(&s, &skip) != EAS_OK) {
                return EAS_ERROR;
            }

            if (skip > (size_t) (s.end - s.p)) {
                return eas_wbxml_fail(&s, EAS_WBXML_TRUNCATED);
            }

            str = s.p;
            s.p += skip;

            if (eas_wbxml_text(&s, str, skip) != EAS_OK) {
                return EAS_ERROR;
            }

            continue;

        case EAS_WBXML_ENTITY:
        case EAS_WBXML_STR_T:
            /* character data the gateway does not resolve */

            if (eas_wbxml_mb_int(&s, &skip) != EAS_OK) {
                return EAS_ERROR;
            }

            if (s.capture != EAS_WBXML_IN_OTHER) {
                return eas_wbxml_fail(&s, EAS_WBXML_VALUE);
            }

            continue;

        case EAS_WBXML_LITERAL:
        case EAS_WBXML_LITERAL_C:
            /* a tag named in the string table: not ours, EAS has none */

            if (eas_wbxml_mb_int(&s, &skip) != EAS_OK) {
                return EAS_ERROR;
            }

            if (token == EAS_WBXML_LITERAL_C) {
                if (eas_wbxml_tag(&s, EAS_WBXML_CONTENT, expect)
                    != EAS_OK)
                {
                    return EAS_ERROR;
                }

            } else if (eas_wbxml_tag(&s, 0, expect) != EAS_OK) {
                return EAS_ERROR;
            }

            continue;

        case EAS_WBXML_PI:
        case EAS_WBXML_LITERAL_A:
        case EAS_WBXML_LITERAL_AC:
            return eas_wbxml_fail(&s, EAS_WBXML_ATTRIBUTES);

        default:
            break;
        }

        if (token >= EAS_WBXML_EXT_I_0 && token <= EAS_WBXML_EXT_I_2) {
            if (eas_wbxml_skip_string(&s, &str, &n) != EAS_OK) {
                return EAS_ERROR;
            }

            continue;
        }

        if (token >= EAS_WBXML_EXT_T_0 && token <= EAS_WBXML_EXT_T_2) {
            if (eas_wbxml_mb_int(&s, &skip) != EAS_OK) {
                return EAS_ERROR;
            }

            continue;
        }

        if (token >= EAS_WBXML_EXT_0 && token <= EAS_WBXML_EXT_2) {
            continue;
        }

        if (token & EAS_WBXML_ATTRS) {
            return eas_wbxml_fail(&s, EAS_WBXML_ATTRIBUTES);
        }

        if (eas_wbxml_tag(&s, token, expect) != EAS_OK) {
            return EAS_ERROR;
        }
    }
}


static int
eas_wbxml_fail(eas_wbxml_scan_t *s, eas_wbxml_error_e error)
{
    s->lp->error = error;
    s->lp->offset = (size_t) (s->p - s->start);

    return EAS_ERROR;
}


/* big-endian base-128, at most 5 bytes and 32 bits (WBXML 5.1) */

static int
eas_wbxml_mb_int(eas_wbxml_scan_t *s, uint32_t *value)
{
    unsigned  i, c;
    uint64_t  v;

    v = 0;

    for (i = 0; i < 5; i++) {
        if (s->p == s->end) {
            return eas_wbxml_fail(s, EAS_WBXML_TRUNCATED);
        }

        c = *s->p++;
        v = (v << 7) | (c & 0x7f);

        if (!(c & 0x80)) {
            if (v > 0xffffffffULL) {
                return eas_wbxml_fail(s, EAS_WBXML_MB_INT);
            }

            *value = (uint32_t) v;
            return EAS_OK;
        }
    }

    return eas_wbxml_fail(s, EAS_WBXML_MB_INT);
}


static int
eas_wbxml_skip_string(eas_wbxml_scan_t *s, const unsigned char **str,
    size_t *len)
{
    const unsigned char  *nul;

    nul = memchr(s->p, '\0', (size_t) (s->end - s->p));
    if (nul == NULL) {
        s->p = s->end;
        return eas_wbxml_fail(s, EAS_WBXML_TRUNCATED);
    }

    *str = s->p;
    *len = (size_t) (nul - s->p);
    s->p = nul + 1;

    return EAS_OK;
}


/* version, public id, charset, string table (WBXML 5.3-5.7) */

static int
eas_wbxml_header(eas_wbxml_scan_t *s)
{
    uint32_t  v;

    if (s->p == s->end) {
        return eas_wbxml_fail(s, EAS_WBXML_TRUNCATED);
    }

    if (*s->p < 0x01 || *s->p > 0x03) {
        return eas_wbxml_fail(s, EAS_WBXML_VERSION);
    }

    s->p++;

    if (eas_wbxml_mb_int(s, &v) != EAS_OK) {
        return EAS_ERROR;
    }

    /* public id 0: "given by a string table index" */

    if (v == 0 && eas_wbxml_mb_int(s, &v) != EAS_OK) {
        return EAS_ERROR;
    }

    if (eas_wbxml_mb_int(s, &v) != EAS_OK) {
        return EAS_ERROR;
    }

    if (v != EAS_WBXML_UTF8) {
        s->p--;
        return eas_wbxml_fail(s, EAS_WBXML_CHARSET);
    }

    if (eas_wbxml_mb_int(s, &v) != EAS_OK) {
        return EAS_ERROR;
    }

    if (v > (size_t) (s->end - s->p)) {
        return eas_wbxml_fail(s, EAS_WBXML_TRUNCATED);
    }

    s->p += v;

    return EAS_OK;
}


/*
 * An element starts: the root must be the command's; at depth 1 (the
 * root's children) the interval elements of the root's page are
 * captured.  "token" is 0 or EAS_WBXML_CONTENT for a literal tag.
 */

static int
eas_wbxml_tag(eas_wbxml_scan_t *s, unsigned token, eas_wbxml_root_e expect)
{
    unsigned         tag, in;
    eas_longpoll_t  *lp;

    lp = s->lp;
    tag = token & EAS_WBXML_TAG;
    in = EAS_WBXML_IN_OTHER;

    if (s->depth == 0) {
        if (expect == EAS_WBXML_ROOT_PING
            && s->page == EAS_WBXML_PAGE_PING
            && tag == EAS_WBXML_PING_PING)
        {
            lp->root = EAS_WBXML_ROOT_PING;

        } else if (expect == EAS_WBXML_ROOT_SYNC
                   && s->page == EAS_WBXML_PAGE_AIRSYNC
                   && tag == EAS_WBXML_SYNC_SYNC)
        {
            lp->root = EAS_WBXML_ROOT_SYNC;

        } else {
            s->p--;
            return eas_wbxml_fail(s, EAS_WBXML_ROOT);
        }

        if (!(token & EAS_WBXML_CONTENT)) {
            /* <Ping/>: a root without content, the document ends */
            return EAS_OK;
        }

    } else if (s->depth == 1) {

        if (lp->root == EAS_WBXML_ROOT_PING
            && s->page == EAS_WBXML_PAGE_PING
            && tag == EAS_WBXML_PING_HEARTBEAT)
        {
            in = EAS_WBXML_IN_HEARTBEAT;

        } else if (lp->root == EAS_WBXML_ROOT_SYNC
                   && s->page == EAS_WBXML_PAGE_AIRSYNC)
        {
            if (tag == EAS_WBXML_SYNC_HEARTBEAT) {
                in = EAS_WBXML_IN_HEARTBEAT;

            } else if (tag == EAS_WBXML_SYNC_WAIT) {
                in = EAS_WBXML_IN_WAIT;
            }
        }

        if (in != EAS_WBXML_IN_OTHER) {
            if ((in == EAS_WBXML_IN_HEARTBEAT && lp->has_heartbeat)
                || (in == EAS_WBXML_IN_WAIT && lp->has_wait))
            {
                s->p--;
                return eas_wbxml_fail(s, EAS_WBXML_DUPLICATE);
            }

            if (!(token & EAS_WBXML_CONTENT)) {
                /* <HeartbeatInterval/> carries no number */
                s->p--;
                return eas_wbxml_fail(s, EAS_WBXML_VALUE);
            }

            s->capture = in;
            s->digits = 0;
            s->value = 0;
        }
    }

    if (token & EAS_WBXML_CONTENT) {
        s->depth++;
    }

    return EAS_OK;
}


static int
eas_wbxml_end(eas_wbxml_scan_t *s)
{
    eas_longpoll_t  *lp;

    if (s->depth == 0) {
        s->p--;
        return eas_wbxml_fail(s, EAS_WBXML_UNBALANCED);
    }

    s->depth--;

    if (s->depth != 1 || s->capture == EAS_WBXML_IN_OTHER) {
        return EAS_OK;
    }

    lp = s->lp;

    if (s->digits == 0) {
        s->p--;
        return eas_wbxml_fail(s, EAS_WBXML_VALUE);
    }

    if (s->capture == EAS_WBXML_IN_HEARTBEAT) {
        lp->heartbeat = s->value;
        lp->has_heartbeat = 1;

    } else {
        lp->wait = s->value;
        lp->has_wait = 1;
    }

    s->capture = EAS_WBXML_IN_OTHER;

    return EAS_OK;
}


/* decimal ASCII (MS-ASDTYPE 2.6), possibly split over several tokens */

static int
eas_wbxml_text(eas_wbxml_scan_t *s, const unsigned char *p, size_t len)
{
    size_t  i;

    if (s->capture == EAS_WBXML_IN_OTHER || s->depth != 2) {
        return EAS_OK;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return eas_wbxml_fail(s, EAS_WBXML_VALUE);
        }

        if (s->value > (EAS_WBXML_VALUE_MAX - (p[i] - '0')) / 10) {
            s->value = (uint32_t) EAS_WBXML_VALUE_MAX;

        } else {
            s->value = s->value * 10 + (p[i] - '0');
        }

        s->digits++;
    }

    return EAS_OK;
}


size_t
eas_wbxml_ping_response(unsigned status, uint32_t heartbeat,
    unsigned char *buf, size_t size)
{
    return eas_wbxml_response(EAS_WBXML_PAGE_PING, EAS_WBXML_PING_PING,
                              EAS_WBXML_PING_STATUS, status,
                              EAS_WBXML_PING_HEARTBEAT, heartbeat,
                              buf, size);
}


size_t
eas_wbxml_sync_response(unsigned status, uint32_t limit,
    unsigned char *buf, size_t size)
{
    return eas_wbxml_response(EAS_WBXML_PAGE_AIRSYNC, EAS_WBXML_SYNC_SYNC,
                              EAS_WBXML_SYNC_STATUS, status,
                              EAS_WBXML_SYNC_LIMIT, limit, buf, size);
}


size_t
eas_wbxml_command_status(unsigned command, unsigned status,
    unsigned char *buf, size_t size)
{
    size_t  i;

    for (i = 0; i < sizeof(eas_wbxml_command_roots)
                    / sizeof(eas_wbxml_command_roots[0]); i++)
    {
        if (eas_wbxml_command_roots[i].command == command) {
            return eas_wbxml_response(eas_wbxml_command_roots[i].page,
                                      eas_wbxml_command_roots[i].root,
                                      eas_wbxml_command_roots[i].status,
                                      status, 0, 0, buf, size);
        }
    }

    return 0;
}


/*
 * 03 01 6A 00: WBXML 1.3, unknown public id, UTF-8, no string table, as
 * EAS clients and Exchange write it; then [SWITCH_PAGE page] root,
 * Status and the optional value as inline strings.
 */

static size_t
eas_wbxml_response(unsigned page, unsigned root, unsigned status_tag,
    unsigned status, unsigned value_tag, uint32_t value, unsigned char *buf,
    size_t size)
{
    unsigned char  *p;
    unsigned char   out[EAS_WBXML_RESPONSE_MAX];

    p = out;

    *p++ = 0x03;
    *p++ = 0x01;
    *p++ = 0x6a;
    *p++ = 0x00;

    if (page != 0) {
        *p++ = EAS_WBXML_SWITCH_PAGE;
        *p++ = (unsigned char) page;
    }

    *p++ = (unsigned char) (root | EAS_WBXML_CONTENT);

    *p++ = (unsigned char) (status_tag | EAS_WBXML_CONTENT);
    p = eas_wbxml_put_text(p, status);
    *p++ = EAS_WBXML_END;

    if (value != 0) {
        *p++ = (unsigned char) (value_tag | EAS_WBXML_CONTENT);
        p = eas_wbxml_put_text(p, value);
        *p++ = EAS_WBXML_END;
    }

    *p++ = EAS_WBXML_END;

    if ((size_t) (p - out) > size) {
        return 0;
    }

    memcpy(buf, out, (size_t) (p - out));

    return (size_t) (p - out);
}


/* STR_I, at most 10 digits, NUL: 12 bytes */

static unsigned char *
eas_wbxml_put_text(unsigned char *p, uint32_t value)
{
    size_t          n;
    unsigned char   digits[10];

    n = 0;

    do {
        digits[n++] = (unsigned char) ('0' + value % 10);
        value /= 10;
    } while (value);

    *p++ = EAS_WBXML_STR_I;

    while (n) {
        *p++ = digits[--n];
    }

    *p++ = '\0';

    return p;
}


const char *
eas_wbxml_error_name(eas_wbxml_error_e error)
{
    if ((unsigned) error >= EAS_WBXML_LAST) {
        return "unknown";
    }

    return eas_wbxml_errors[error];
}


int
eas_wbxml_top_status(const unsigned char *p, size_t len, unsigned command,
    eas_wbxml_status_t *st)
{
    int                rc;
    size_t             i, n;
    unsigned           page, token, limit_page, limit_tag;
    eas_longpoll_t     lp;
    eas_wbxml_scan_t   s;

    memset(st, 0, sizeof(eas_wbxml_status_t));
    memset(&lp, 0, sizeof(eas_longpoll_t));
    memset(&s, 0, sizeof(eas_wbxml_scan_t));

    n = sizeof(eas_wbxml_command_roots) / sizeof(eas_wbxml_command_roots[0]);

    for (i = 0; i < n; i++) {
        if (eas_wbxml_command_roots[i].command == command) {
            break;
        }
    }

    if (i == n) {
        return EAS_DECLINED;
    }

    s.start = p;
    s.p = p;
    s.end = p + len;
    s.lp = &lp;

    if (eas_wbxml_header(&s) != EAS_OK) {
        return eas_wbxml_status_error(&s, st, EAS_ERROR);
    }

    page = 0;

    /* the root */

    rc = eas_wbxml_next_tag(&s, &page, &token);
    if (rc != EAS_OK) {
        return eas_wbxml_status_error(&s, st, rc);
    }

    if (page != eas_wbxml_command_roots[i].page
        || (token & EAS_WBXML_TAG) != eas_wbxml_command_roots[i].root
        || !(token & EAS_WBXML_CONTENT))
    {
        return EAS_DECLINED;
    }

    /* its first child */

    rc = eas_wbxml_next_tag(&s, &page, &token);
    if (rc != EAS_OK) {
        return eas_wbxml_status_error(&s, st, rc);
    }

    if (page != eas_wbxml_command_roots[i].page
        || (token & EAS_WBXML_TAG) != eas_wbxml_command_roots[i].status
        || !(token & EAS_WBXML_CONTENT))
    {
        return EAS_DECLINED;
    }

    rc = eas_wbxml_number(&s, &st->status);
    if (rc != EAS_OK) {
        return eas_wbxml_status_error(&s, st, rc);
    }

    st->has_status = 1;

    if (command == EAS_CMD_PING && st->status == EAS_PING_STATUS_OUT_OF_RANGE)
    {
        limit_page = EAS_WBXML_PAGE_PING;
        limit_tag = EAS_WBXML_PING_HEARTBEAT;

    } else if (command == EAS_CMD_SYNC
               && st->status == EAS_SYNC_STATUS_OUT_OF_RANGE)
    {
        limit_page = EAS_WBXML_PAGE_AIRSYNC;
        limit_tag = EAS_WBXML_SYNC_LIMIT;

    } else {
        return EAS_OK;
    }

    /* the backend's limit, if it sent one next */

    rc = eas_wbxml_next_tag(&s, &page, &token);
    if (rc != EAS_OK) {
        return (rc == EAS_DECLINED) ? EAS_OK
                                    : eas_wbxml_status_error(&s, st, rc);
    }

    if (page != limit_page || (token & EAS_WBXML_TAG) != limit_tag
        || !(token & EAS_WBXML_CONTENT))
    {
        return EAS_OK;
    }

    rc = eas_wbxml_number(&s, &st->limit);
    if (rc != EAS_OK) {
        return eas_wbxml_status_error(&s, st, rc);
    }

    st->has_limit = 1;

    return EAS_OK;
}


/*
 * The next element start after any SWITCH_PAGE: EAS_OK with its page and
 * token, EAS_DECLINED on an END (no more children), EAS_AGAIN when the
 * input ends first, EAS_ERROR on anything else (text, attributes...).
 */

static int
eas_wbxml_next_tag(eas_wbxml_scan_t *s, unsigned *page, unsigned *token)
{
    unsigned  t;

    for ( ;; ) {

        if (s->p == s->end) {
            return EAS_AGAIN;
        }

        t = *s->p;

        if (t == EAS_WBXML_SWITCH_PAGE) {
            if (s->end - s->p < 2) {
                return EAS_AGAIN;
            }

            *page = s->p[1];
            s->p += 2;
            continue;
        }

        if (t == EAS_WBXML_END) {
            return EAS_DECLINED;
        }

        if (t & EAS_WBXML_ATTRS) {
            return eas_wbxml_fail(s, EAS_WBXML_ATTRIBUTES);
        }

        if ((t & EAS_WBXML_TAG) < 0x05) {
            /* a global token where an element must start */
            return eas_wbxml_fail(s, EAS_WBXML_VALUE);
        }

        s->p++;
        *token = t;

        return EAS_OK;
    }
}


/* an element's content: one inline string of 1-10 digits, then END */

static int
eas_wbxml_number(eas_wbxml_scan_t *s, uint32_t *value)
{
    const unsigned char  *nul, *q;

    if (s->p == s->end) {
        return EAS_AGAIN;
    }

    if (*s->p != EAS_WBXML_STR_I) {
        return eas_wbxml_fail(s, EAS_WBXML_VALUE);
    }

    nul = memchr(s->p + 1, '\0', (size_t) (s->end - s->p - 1));
    if (nul == NULL) {
        return EAS_AGAIN;
    }

    /* a bad value is reported where its string starts */

    if (nul == s->p + 1 || nul - s->p - 1 > 10) {
        return eas_wbxml_fail(s, EAS_WBXML_VALUE);
    }

    s->digits = 0;
    s->value = 0;
    s->capture = EAS_WBXML_IN_HEARTBEAT;
    s->depth = 2;

    q = s->p + 1;

    if (eas_wbxml_text(s, q, (size_t) (nul - q)) != EAS_OK) {
        s->lp->offset = (size_t) (s->p - s->start);
        return EAS_ERROR;
    }

    s->p = nul + 1;

    if (s->p == s->end) {
        return EAS_AGAIN;
    }

    if (*s->p != EAS_WBXML_END) {
        return eas_wbxml_fail(s, EAS_WBXML_VALUE);
    }

    s->p++;
    *value = s->value;

    return EAS_OK;
}


static int
eas_wbxml_status_error(eas_wbxml_scan_t *s, eas_wbxml_status_t *st, int rc)
{
    if (rc == EAS_ERROR && s->lp->error == EAS_WBXML_TRUNCATED) {
        rc = EAS_AGAIN;
    }

    if (rc == EAS_ERROR) {
        st->error = s->lp->error;
        st->offset = s->lp->offset;
    }

    return rc;
}
