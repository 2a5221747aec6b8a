
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_redis.h"
#include "ngx_http_eas_redis_int.h"


/*
 * A device record of another gateway read (ngx_http_eas_redis_import.c
 * takes it into the zone): its framing, its fields, and whether a
 * request could have made it.  A record is what some gateway's request
 * wrote, so one whose fields no request could carry (a control byte or
 * a space in a DeviceId, a user that is not UTF-8 or not an identity,
 * a protocol version the parser does not know) is forged or broken and
 * refused like one not understood: never in a zone, never listed.
 */


static ngx_int_t ngx_http_eas_inv_fields(ngx_http_eas_inv_record_t *rec);


/* "LEN:DATA" at p: DATA, and LEN in *len; NULL if it is not one */

u_char *
ngx_http_eas_redis_inv_frame(u_char *p, u_char *last, size_t *len)
{
    ngx_uint_t  digits;

    *len = 0;
    digits = 0;

    while (p < last && *p >= '0' && *p <= '9' && digits++ < 9) {
        *len = *len * 10 + (*p++ - '0');
    }

    if (digits == 0 || p == last || *p++ != ':'
        || (size_t) (last - p) < *len)
    {
        return NULL;
    }

    return p;
}


ngx_int_t
ngx_http_eas_redis_inv_parse(u_char *p, u_char *last,
    ngx_http_eas_inv_record_t *rec)
{
    ngx_uint_t   i, *n;
    static const ngx_uint_t  max[NGX_HTTP_EAS_INV_NUMS] = {
        0x7fffffff, 0x7fffffff, 86400, 999, EAS_CMD_NONE, 2,
        EAS_USER_MAX, EAS_DEVICE_ID_MAX, NGX_HTTP_EAS_DEVICE_TYPE_LEN,
        NGX_HTTP_EAS_DEVICE_UA_LEN, NGX_HTTP_EAS_DEVICE_REASON_LEN
    };

    p = ngx_http_eas_redis_inv_unwrap(p, last);

    if (last - p < 2 || p[0] != '1' || p[1] != ' ') {
        return NGX_ERROR;
    }

    p += 2;
    n = rec->n;

    for (i = 0; i < NGX_HTTP_EAS_INV_NUMS; i++) {
        if (p == last || *p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        n[i] = 0;

        while (p < last && *p >= '0' && *p <= '9') {
            n[i] = n[i] * 10 + (*p++ - '0');

            if (n[i] > max[i]) {
                return NGX_ERROR;
            }
        }

        if (p == last || *p++ != ' ') {
            return NGX_ERROR;
        }
    }

    rec->first_seen = (time_t) n[0];
    rec->last_seen = (time_t) n[1];

    /* a time to come would stay first of every listing */

    if (rec->first_seen == 0 || rec->first_seen > rec->last_seen
        || rec->last_seen > ngx_time() + 300
        || n[7] == 0
        || (size_t) (last - p) != n[6] + n[7] + n[8] + n[9] + n[10])
    {
        return NGX_ERROR;
    }

    rec->user.data = p;
    rec->user.len = n[6];
    rec->device_id.data = p + n[6];
    rec->device_id.len = n[7];
    rec->device_type.data = rec->device_id.data + n[7];
    rec->device_type.len = n[8];
    rec->user_agent.data = rec->device_type.data + n[8];
    rec->user_agent.len = n[9];
    rec->reason.data = rec->user_agent.data + n[9];
    rec->reason.len = n[10];

    return ngx_http_eas_inv_fields(rec);
}


/*
 * The fields as a request that wrote them had them: the DeviceId, the
 * DeviceType and the user as the request parser admits them
 * (eas_device_fields_check()); the user as the zone keys it, an
 * identity folded (the check locks and unlocks on the channel get,
 * ngx_http_eas_redis_lock_key()) or none; the User-Agent a header value
 * nginx reads (no NUL, CR or LF); the reason without a control byte; a
 * protocol version the parser knows (or none), a command it names (or
 * none).
 */

static ngx_int_t
ngx_http_eas_inv_fields(ngx_http_eas_inv_record_t *rec)
{
    u_char      version[NGX_INT_T_LEN * 2 + 1];
    size_t      i;
    unsigned    code;
    eas_str_t   id, type, user;

    id.data = rec->device_id.data;
    id.len = rec->device_id.len;
    type.data = rec->device_type.data;
    type.len = rec->device_type.len;
    user.data = rec->user.data;
    user.len = rec->user.len;

    if (eas_device_fields_check(&id, &type, &user) != EAS_OK) {
        return NGX_ERROR;
    }

    if (rec->user.len
        && ngx_http_eas_redis_lock_key(NGX_HTTP_EAS_CACHE_USER, &rec->user)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < rec->user_agent.len; i++) {
        if (rec->user_agent.data[i] == '\0'
            || rec->user_agent.data[i] == CR
            || rec->user_agent.data[i] == LF)
        {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < rec->reason.len; i++) {
        if (rec->reason.data[i] < 0x20 || rec->reason.data[i] == 0x7f) {
            return NGX_ERROR;
        }
    }

    /* the version as listed ("14.1"), read back by the parser */

    if (rec->n[3]) {
        i = ngx_sprintf(version, "%ui.%ui", rec->n[3] / 10, rec->n[3] % 10)
            - version;

        if (eas_version_parse(version, i, &code) != EAS_OK
            || code != rec->n[3])
        {
            return NGX_ERROR;
        }
    }

    if (rec->n[4] != EAS_CMD_NONE
        && eas_command_name((eas_command_e) rec->n[4]) == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
