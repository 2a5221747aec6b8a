
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The request target as sent: accepted only when nginx's normalized
 * path and what a backend reads from the raw target agree (no dot
 * segment, encoded slash, backslash, fragment or stray byte).
 */

#include "eas_request.h"


static int eas_is_dot_segment(const unsigned char *p, size_t len);


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

