
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"


/*
 * The device record's update, at most once a second per device and
 * connection (docs/devices.md, "Inventory"): a phone sends request after
 * request on one keep-alive (or HTTP/2) connection, each telling the
 * device zone the same user, DeviceId, DeviceType, User-Agent, version,
 * command and decision.  The connection remembers what it last wrote
 * and when (to the second, the resolution of last_seen) and a request
 * that would write exactly that again in the same second writes
 * nothing: no zone lock, no lookup, and last_seen, which could not move
 * anyway, stays.  Anything else (another second, command, decision,
 * User-Agent...) updates the record as before.  Only an update that
 * changed nothing but the record's place in the zone is remembered: a
 * new record, a count, a refusal for the limit or a full zone never
 * are.  So a record deleted from the admin API is written again by the
 * device's first request of the next second, not of this one.
 *
 * Like the digest memo, it lives in the connection from its second
 * request on (ngx_http_eas_connection_data()), so that a connection
 * sending one request (a held Ping) holds nothing more, and is freed
 * with the connection.  HTTP/3 streams are not remembered.
 */


typedef struct {
    void                       *zone;     /* NULL: empty */
    ngx_uint_t                  user_devices;
    size_t                      len;
    size_t                      size;     /* allocated */
    u_char                     *data;     /* what was written, when */
} ngx_http_eas_devices_seen_t;


static u_char *ngx_http_eas_devices_seen_str(u_char *p, ngx_str_t *s);
static void ngx_http_eas_devices_seen_cleanup(void *data);


/*
 * What the update would write, into buf (NGX_HTTP_EAS_DEVICES_SEEN_MAX
 * bytes): *len, or 0 where it does not fit (never remembered).  Returns
 * 1 if this connection wrote exactly that this second (u->user_devices
 * is then what that update found), else 0.
 */

ngx_uint_t
ngx_http_eas_devices_seen(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, u_char *buf, size_t *len)
{
    u_char                       *p;
    time_t                        now;
    ngx_http_eas_devices_seen_t  *seen;

    *len = 0;

    if (u->user.len + u->device_id.len + u->device_type.len
        + u->user_agent.len + u->reason.len
        > NGX_HTTP_EAS_DEVICES_SEEN_MAX - 5 * sizeof(size_t)
          - sizeof(time_t) - 4 * sizeof(ngx_uint_t))
    {
        return 0;
    }

    now = ngx_time();

    p = ngx_cpymem(buf, &now, sizeof(time_t));
    p = ngx_cpymem(p, &u->version, sizeof(ngx_uint_t));
    p = ngx_cpymem(p, &u->command, sizeof(ngx_uint_t));
    p = ngx_cpymem(p, &u->access, sizeof(ngx_uint_t));
    p = ngx_cpymem(p, &u->max_devices, sizeof(ngx_uint_t));
    p = ngx_http_eas_devices_seen_str(p, &u->user);
    p = ngx_http_eas_devices_seen_str(p, &u->device_id);
    p = ngx_http_eas_devices_seen_str(p, &u->device_type);
    p = ngx_http_eas_devices_seen_str(p, &u->user_agent);
    p = ngx_http_eas_devices_seen_str(p, &u->reason);

    *len = p - buf;

    seen = ngx_http_eas_connection_data(r, ngx_http_eas_devices_seen_cleanup,
                                        sizeof(ngx_http_eas_devices_seen_t));

    if (seen == NULL || seen->zone != zone || seen->len != *len
        || ngx_memcmp(seen->data, buf, *len) != 0)
    {
        return 0;
    }

    u->user_devices = seen->user_devices;

    return 1;
}


/* after ngx_http_eas_device_update(): what it wrote, if it changed
 * nothing else */

void
ngx_http_eas_devices_seen_keep(ngx_http_request_t *r, ngx_shm_zone_t *zone,
    ngx_http_eas_device_update_t *u, u_char *buf, size_t len)
{
    ngx_http_eas_devices_seen_t  *seen;

    if (len == 0) {
        return;
    }

    seen = ngx_http_eas_connection_data(r, ngx_http_eas_devices_seen_cleanup,
                                        sizeof(ngx_http_eas_devices_seen_t));
    if (seen == NULL) {
        return;
    }

    seen->zone = NULL;

    if (u->created || u->counted || u->over_limit || u->zone_full) {
        return;
    }

    if (len > seen->size) {
        ngx_free(seen->data);

        seen->size = 0;
        seen->data = ngx_alloc(len, ngx_cycle->log);
        if (seen->data == NULL) {
            return;
        }

        seen->size = len;
    }

    ngx_memcpy(seen->data, buf, len);
    seen->len = len;
    seen->user_devices = u->user_devices;
    seen->zone = zone;
}


static u_char *
ngx_http_eas_devices_seen_str(u_char *p, ngx_str_t *s)
{
    p = ngx_cpymem(p, &s->len, sizeof(size_t));
    return ngx_cpymem(p, s->data, s->len);
}


static void
ngx_http_eas_devices_seen_cleanup(void *data)
{
    ngx_http_eas_devices_seen_t  *seen = data;

    ngx_free(seen->data);
}
