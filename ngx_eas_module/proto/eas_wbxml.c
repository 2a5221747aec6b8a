
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The long-poll facts of a Ping or Sync request body: the streaming
 * WBXML scanner (header, tags, the interval values at depth 2) and the
 * error names; the scanner's pieces shared with eas_wbxml_status.c.
 */

#include "eas_wbxml_scan.h"


static int eas_wbxml_mb_int(eas_wbxml_scan_t *s, uint32_t *value);
static int eas_wbxml_skip_string(eas_wbxml_scan_t *s,
    const unsigned char **str, size_t *len);
static int eas_wbxml_tag(eas_wbxml_scan_t *s, unsigned token,
    eas_wbxml_root_e expect);
static int eas_wbxml_end(eas_wbxml_scan_t *s);


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


int
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
        /* the outputs set on every path (gcc -O2 checks the callers) */
        *str = s->p;
        *len = 0;
        s->p = s->end;
        return eas_wbxml_fail(s, EAS_WBXML_TRUNCATED);
    }

    *str = s->p;
    *len = (size_t) (nul - s->p);
    s->p = nul + 1;

    return EAS_OK;
}


/* version, public id, charset, string table (WBXML 5.3-5.7) */

int
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

int
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


const char *
eas_wbxml_error_name(eas_wbxml_error_e error)
{
    if ((unsigned) error >= EAS_WBXML_LAST) {
        return "unknown";
    }

    return eas_wbxml_errors[error];
}

