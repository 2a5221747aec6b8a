
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The invariants every result of eas_request_parse() keeps, shared by
 * the unit test (tests/unit/test_eas_request.c) and the fuzzer
 * (tests/fuzz/fuzz_eas_request.c): the form is in range, every slice
 * points into an input or into the output buffer, the command name is
 * eas_command_name(command), the version parses back to version_code.
 * eas_request_check() returns what is broken, or NULL.  Header only:
 * both programs are one file each, built with the core's sources.
 */


#ifndef _EAS_REQUEST_CHECK_H_INCLUDED_
#define _EAS_REQUEST_CHECK_H_INCLUDED_


#include <string.h>

#include "eas_proto.h"


static int
eas_request_check_inside(const eas_str_t *s, const unsigned char *base,
    size_t size)
{
    size_t  off;

    if (base == NULL || s->data < base) {
        return 0;
    }

    off = (size_t) (s->data - base);

    return off <= size && s->len <= size - off;
}


static const char *
eas_request_check(const eas_input_t *in, const eas_request_t *req,
    const unsigned char *buf, size_t size)
{
    unsigned          i, code;
    const char       *name;
    const eas_str_t  *s;

    static const char  *names[] = {
        "user", "device_id", "device_type", "policy_key"
    };

    if (req->form != EAS_FORM_NONE && req->form != EAS_FORM_PLAIN
        && req->form != EAS_FORM_BASE64)
    {
        return "form out of range";
    }

    for (i = 0; i < 4 + EAS_PARAM_COUNT; i++) {
        switch (i) {
        case 0:
            s = &req->user;
            break;
        case 1:
            s = &req->device_id;
            break;
        case 2:
            s = &req->device_type;
            break;
        case 3:
            s = &req->policy_key;
            break;
        default:
            s = &req->params[i - 4];
        }

        if (s->len == 0) {
            continue;
        }

        if (s->data == NULL) {
            return "NULL slice with a length";
        }

        if (eas_request_check_inside(s, in->query.data, in->query.len)
            || eas_request_check_inside(s, buf, size)
            || eas_request_check_inside(s, in->version.data, in->version.len)
            || eas_request_check_inside(s, in->policy_key.data,
                                        in->policy_key.len)
            || eas_request_check_inside(s, in->accept_multipart.data,
                                        in->accept_multipart.len))
        {
            continue;
        }

        /* flags derived from base64 Options may be static "T"/"F" */

        if ((i == 4 + EAS_PARAM_SAVE_IN_SENT
             || i == 4 + EAS_PARAM_ACCEPT_MULTIPART)
            && s->len == 1 && (s->data[0] == 'T' || s->data[0] == 'F'))
        {
            continue;
        }

        return i < 4 ? names[i] : "a params[] entry";
    }

    if (req->command_name.len != 0) {
        name = eas_command_name(req->command);

        if (name == NULL || strlen(name) != req->command_name.len
            || memcmp(name, req->command_name.data, req->command_name.len)
               != 0)
        {
            return "command_name is not eas_command_name(command)";
        }
    }

    if (req->version.len != 0) {
        if (eas_version_parse(req->version.data, req->version.len, &code)
            != EAS_OK
            || code != req->version_code)
        {
            return "version does not parse back to version_code";
        }
    }

    return NULL;
}


#endif /* _EAS_REQUEST_CHECK_H_INCLUDED_ */
