
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _EAS_BASIC_H_INCLUDED_
#define _EAS_BASIC_H_INCLUDED_


/*
 * Basic credentials (RFC 7617) as ActiveSync devices send them: the
 * Authorization header split into user and password, the user name
 * normalised into the identity the gateway keys on, and a comparison
 * of secrets that takes the same time whatever they hold.
 */

#include "eas_proto.h"


/* limits on the decoded user and password (bytes) */
#define EAS_BASIC_USER_MAX      256
#define EAS_BASIC_PASSWORD_MAX  256

/* the credentials token: base64 of "user:password" at the limits */
#define EAS_BASIC_TOKEN_MAX                                                  \
    (((EAS_BASIC_USER_MAX + 1 + EAS_BASIC_PASSWORD_MAX + 2) / 3) * 4)

/* scratch a caller gives eas_basic_parse(): the decoded token */
#define EAS_BASIC_BUFFER_SIZE   (EAS_BASIC_USER_MAX + 1                      \
                                 + EAS_BASIC_PASSWORD_MAX + 2)


/* why an Authorization header was refused; eas_basic_reason_name() */
typedef enum {
    EAS_BASIC_OK = 0,
    EAS_BASIC_MISSING,          /* no header: set by the caller */
    EAS_BASIC_SCHEME,           /* not "Basic <token>" */
    EAS_BASIC_BASE64,           /* token is not base64 */
    EAS_BASIC_TOO_LONG,         /* token, user or password over a limit */
    EAS_BASIC_NO_COLON,         /* no ":" between user and password */
    EAS_BASIC_EMPTY_USER,
    EAS_BASIC_NUL,              /* NUL byte in user or password */
    EAS_BASIC_USER_INVALID,     /* control byte, or a user form broken */
    EAS_BASIC_LAST
} eas_basic_reason_e;


typedef struct {
    eas_str_t             user;         /* as sent, in the buffer */
    eas_str_t             password;     /* in the buffer */
    eas_basic_reason_e    reason;       /* set on EAS_ERROR */
} eas_basic_t;


/* the parts of a user name: "DOMAIN\user", "user@domain" or "user" */
typedef struct {
    eas_str_t             domain;       /* empty for the bare form */
    eas_str_t             name;
    unsigned              form;         /* EAS_USER_FORM_* */
} eas_user_t;


#define EAS_USER_FORM_BARE       0
#define EAS_USER_FORM_DOWNLEVEL  1      /* DOMAIN\user */
#define EAS_USER_FORM_UPN        2      /* user@domain */


int eas_basic_parse(const unsigned char *value, size_t len,
    unsigned char *buf, size_t size, eas_basic_t *out);
int eas_user_split(const unsigned char *user, size_t len, eas_user_t *out);
size_t eas_user_normalize(const unsigned char *user, size_t len,
    unsigned char *dst, size_t size);

const char *eas_basic_reason_name(eas_basic_reason_e reason);
const char *eas_basic_reason_text(eas_basic_reason_e reason);


#endif /* _EAS_BASIC_H_INCLUDED_ */
