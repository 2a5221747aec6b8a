
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_basic.h"


typedef struct {
    const char  *name;
    const char  *text;
} eas_basic_reason_entry_t;


static int eas_basic_space(unsigned char c);


/* indexed by eas_basic_reason_e; the names are stable ($eas_reason) */
static const eas_basic_reason_entry_t  eas_basic_reasons[] = {
    { "auth_ok", "credentials accepted" },
    { "auth_missing", "no Authorization header" },
    { "auth_scheme", "Authorization scheme is not Basic" },
    { "auth_base64", "Basic credentials are not valid base64" },
    { "auth_too_long", "Basic credentials too long" },
    { "auth_no_colon", "no colon in Basic credentials" },
    { "auth_empty_user", "empty user in Basic credentials" },
    { "auth_nul", "NUL byte in Basic credentials" },
    { "auth_user_invalid", "invalid user name in Basic credentials" }
};


typedef char  eas_basic_reasons_match[
    (sizeof(eas_basic_reasons) / sizeof(eas_basic_reasons[0])
     == EAS_BASIC_LAST) ? 1 : -1];


/*
 * "Basic" (any case), one or more spaces, the token, optional trailing
 * spaces.  The token is decoded into buf, which must hold
 * EAS_BASIC_BUFFER_SIZE bytes; user and password are slices of buf.
 * The password may hold any byte but NUL; the user no control byte.
 */

int
eas_basic_parse(const unsigned char *value, size_t len, unsigned char *buf,
    size_t size, eas_basic_t *out)
{
    long                  n;
    size_t                i, end;
    const unsigned char  *colon;

    out->user.data = NULL;
    out->user.len = 0;
    out->password.data = NULL;
    out->password.len = 0;
    out->reason = EAS_BASIC_OK;

    if (len < 6
        || (value[0] | 0x20) != 'b' || (value[1] | 0x20) != 'a'
        || (value[2] | 0x20) != 's' || (value[3] | 0x20) != 'i'
        || (value[4] | 0x20) != 'c' || !eas_basic_space(value[5]))
    {
        out->reason = EAS_BASIC_SCHEME;
        return EAS_ERROR;
    }

    for (i = 6; i < len && eas_basic_space(value[i]); i++) {
        /* void */
    }

    for (end = len; end > i && eas_basic_space(value[end - 1]); end--) {
        /* void */
    }

    if (i == end) {
        out->reason = EAS_BASIC_SCHEME;
        return EAS_ERROR;
    }

    if (end - i > EAS_BASIC_TOKEN_MAX) {
        out->reason = EAS_BASIC_TOO_LONG;
        return EAS_ERROR;
    }

    n = eas_base64_decode(value + i, end - i, buf, size);

    if (n < 0) {
        out->reason = (size < EAS_BASIC_BUFFER_SIZE) ? EAS_BASIC_TOO_LONG
                                                     : EAS_BASIC_BASE64;
        return EAS_ERROR;
    }

    colon = memchr(buf, ':', (size_t) n);

    if (colon == NULL) {
        out->reason = memchr(buf, '\0', (size_t) n) ? EAS_BASIC_NUL
                                                    : EAS_BASIC_NO_COLON;
        return EAS_ERROR;
    }

    out->user.data = buf;
    out->user.len = (size_t) (colon - buf);
    out->password.data = colon + 1;
    out->password.len = (size_t) n - out->user.len - 1;

    if (memchr(buf, '\0', (size_t) n) != NULL) {
        out->reason = EAS_BASIC_NUL;

    } else if (out->user.len == 0) {
        out->reason = EAS_BASIC_EMPTY_USER;

    } else if (out->user.len > EAS_BASIC_USER_MAX
               || out->password.len > EAS_BASIC_PASSWORD_MAX)
    {
        out->reason = EAS_BASIC_TOO_LONG;

    } else {
        for (i = 0; i < out->user.len; i++) {
            if (buf[i] < 0x20 || buf[i] == 0x7f) {
                out->reason = EAS_BASIC_USER_INVALID;
                break;
            }
        }
    }

    if (out->reason != EAS_BASIC_OK) {
        out->user.data = NULL;
        out->user.len = 0;
        out->password.data = NULL;
        out->password.len = 0;
        return EAS_ERROR;
    }

    return EAS_OK;
}


/*
 * The three forms devices send (docs/authentication.md):
 *
 *     DOMAIN\user     down-level logon name: split at the "\"
 *     user@domain     user principal name: split at the last "@"
 *     user            bare
 *
 * Both parts of a split must be non-empty; a second "\", or a "\"
 * together with an "@", is refused: no directory has such a name, and
 * accepting it would give one account two spellings.
 */

int
eas_user_split(const unsigned char *user, size_t len, eas_user_t *out)
{
    size_t  i, bs, at, nbs;

    out->domain.data = NULL;
    out->domain.len = 0;
    out->name.data = user;
    out->name.len = len;
    out->form = EAS_USER_FORM_BARE;

    if (len == 0) {
        return EAS_ERROR;
    }

    bs = len;
    at = len;
    nbs = 0;

    for (i = 0; i < len; i++) {
        if (user[i] < 0x20 || user[i] == 0x7f) {
            return EAS_ERROR;
        }

        if (user[i] == '\\') {
            bs = i;
            nbs++;

        } else if (user[i] == '@') {
            at = i;
        }
    }

    if (nbs > 1 || (nbs == 1 && at != len)) {
        return EAS_ERROR;
    }

    if (nbs == 1) {
        if (bs == 0 || bs == len - 1) {
            return EAS_ERROR;
        }

        out->domain.data = user;
        out->domain.len = bs;
        out->name.data = user + bs + 1;
        out->name.len = len - bs - 1;
        out->form = EAS_USER_FORM_DOWNLEVEL;

        return EAS_OK;
    }

    if (at != len) {
        if (at == 0 || at == len - 1) {
            return EAS_ERROR;
        }

        out->name.data = user;
        out->name.len = at;
        out->domain.data = user + at + 1;
        out->domain.len = len - at - 1;
        out->form = EAS_USER_FORM_UPN;
    }

    return EAS_OK;
}


/*
 * The name part of any form, ASCII letters in lower case (directories
 * compare logon names without case), other bytes as sent: the identity
 * of an ASCII name.  A name with other bytes is folded further by the
 * glue (Unicode NFKC_Casefold, ngx_http_eas_user_identity()).
 * Returns its length, or 0 when the name is refused or does not fit.
 */

size_t
eas_user_normalize(const unsigned char *user, size_t len, unsigned char *dst,
    size_t size)
{
    size_t      i;
    eas_user_t  u;

    if (eas_user_split(user, len, &u) != EAS_OK || u.name.len > size) {
        return 0;
    }

    for (i = 0; i < u.name.len; i++) {
        dst[i] = (u.name.data[i] >= 'A' && u.name.data[i] <= 'Z')
                 ? (unsigned char) (u.name.data[i] | 0x20) : u.name.data[i];
    }

    return u.name.len;
}


const char *
eas_basic_reason_name(eas_basic_reason_e reason)
{
    if ((unsigned) reason >= EAS_BASIC_LAST) {
        return NULL;
    }

    return eas_basic_reasons[reason].name;
}


const char *
eas_basic_reason_text(eas_basic_reason_e reason)
{
    if ((unsigned) reason >= EAS_BASIC_LAST) {
        return NULL;
    }

    return eas_basic_reasons[reason].text;
}


static int
eas_basic_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}
