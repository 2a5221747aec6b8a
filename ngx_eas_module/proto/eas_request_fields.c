
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The device fields of a request, checked again where they come from
 * somewhere else than a request (the records other gateways share):
 * the same byte classes and lengths the parser holds a request's
 * DeviceId, DeviceType and User to (eas_request.c), so that nothing a
 * request could not carry passes.
 */

#include "eas_request.h"


/*
 * EAS_OK: a DeviceId of 1 to EAS_DEVICE_ID_MAX visible ASCII bytes, a
 * DeviceType of at most EAS_DEVICE_TYPE_MAX of them (none: a request
 * without one), a user of at most EAS_USER_MAX bytes of UTF-8 without a
 * control character.
 */

int
eas_device_fields_check(const eas_str_t *device_id,
    const eas_str_t *device_type, const eas_str_t *user)
{
    if (device_id->len == 0 || device_id->len > EAS_DEVICE_ID_MAX
        || !eas_is_visible(device_id))
    {
        return EAS_ERROR;
    }

    if (device_type->len > EAS_DEVICE_TYPE_MAX
        || !eas_is_visible(device_type))
    {
        return EAS_ERROR;
    }

    if (user->len > EAS_USER_MAX || eas_has_control(user)
        || !eas_is_utf8(user))
    {
        return EAS_ERROR;
    }

    return EAS_OK;
}
