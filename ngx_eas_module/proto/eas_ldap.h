
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _EAS_LDAP_H_INCLUDED_
#define _EAS_LDAP_H_INCLUDED_


/*
 * LDAP strings built from what a client sent: a user name is escaped
 * per RFC 4515 where it goes into a search filter and per RFC 4514
 * where it goes into a DN, so no name can widen a filter or name
 * another entry.  Templates use %u (the user name without its domain),
 * %d (the domain the caller gives: the directory's name for the domain
 * sent, or its default) and %%.
 */

#include "eas_proto.h"
#include "eas_basic.h"


/* the longest template expansion: every byte of a name escaped */
#define EAS_LDAP_STRING_MAX  2048

#define EAS_LDAP_FILTER      0          /* RFC 4515 value */
#define EAS_LDAP_DN          1          /* RFC 4514 attribute value */


int eas_ldap_escape(unsigned kind, const unsigned char *src, size_t len,
    unsigned char *dst, size_t size, size_t *out);
int eas_ldap_template_check(const unsigned char *tmpl, size_t len);
int eas_ldap_template_has(const unsigned char *tmpl, size_t len,
    unsigned char c);
int eas_ldap_expand(unsigned kind, const unsigned char *tmpl, size_t tlen,
    const eas_user_t *user, const eas_str_t *domain, unsigned char *dst,
    size_t size, size_t *out);


#endif /* _EAS_LDAP_H_INCLUDED_ */
