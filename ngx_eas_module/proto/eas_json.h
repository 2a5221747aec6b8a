
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _EAS_JSON_H_INCLUDED_
#define _EAS_JSON_H_INCLUDED_


/*
 * The admin API's JSON input: one flat object whose values are strings
 * or numbers (as JSON writes them), {"access":"block","device_id":"ApplX"}.
 * true, false, null, nested objects and arrays are refused: the API
 * takes none.
 */

#include "eas_proto.h"


typedef struct {
    eas_str_t             name;
    eas_str_t             value;     /* a number as written */
} eas_json_pair_t;


/*
 * Reads p..p+len (leading and trailing blanks allowed).  Decoded names
 * and string values go to buf (size bytes); escapes are decoded, \uXXXX
 * (and surrogate pairs) to UTF-8; a control byte, a lone surrogate or
 * \u0000 is refused.  EAS_OK: *n pairs; EAS_ERROR: malformed, more than
 * max pairs, or buf too small.  Nothing is read past p + len.
 */
int eas_json_object(const unsigned char *p, size_t len,
    eas_json_pair_t *pairs, size_t max, size_t *n, unsigned char *buf,
    size_t size);


#endif /* _EAS_JSON_H_INCLUDED_ */
