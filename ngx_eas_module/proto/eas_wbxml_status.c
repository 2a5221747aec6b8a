
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The top-level Status of a command's WBXML response as the backend
 * wrote it, read from its first bytes as they stream by, without
 * building the document; with a Ping's or a Sync's out-of-range
 * status, the backend's own heartbeat limit.
 */

#include "eas_wbxml_scan.h"


static int eas_wbxml_next_tag(eas_wbxml_scan_t *s, unsigned *page,
    unsigned *token);
static int eas_wbxml_number(eas_wbxml_scan_t *s, uint32_t *value);
static int eas_wbxml_status_error(eas_wbxml_scan_t *s,
    eas_wbxml_status_t *st, int rc);


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
