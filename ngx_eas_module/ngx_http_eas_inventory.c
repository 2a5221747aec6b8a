
/*
 * Copyright (C) ngx_eas developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_eas_module.h"
#include "ngx_http_eas_devices.h"
#include "ngx_http_eas_redis.h"


/*
 * "eas_device_inventory": the records of the location's device zone as
 * one JSON document, most recently seen first.  Records are copied out
 * under the zone lock, then formatted without it.
 */


static ngx_int_t ngx_http_eas_inventory_handler(ngx_http_request_t *r);
static u_char *ngx_http_eas_inventory_string(u_char *p, const char *name,
    u_char *data, size_t len);
static size_t ngx_http_eas_inventory_string_size(u_char *data, size_t len);
static size_t ngx_http_eas_utf8_valid(u_char *p, size_t len);
static uint32_t ngx_http_eas_utf8_shown(u_char *p, size_t n);
static u_char *ngx_http_eas_inventory_iso_time(u_char *p, time_t t);


/* "2026-12-07T06:01:39Z" */
#define NGX_HTTP_EAS_ISO_TIME_LEN  (sizeof("-2147483648-12-31T23:59:59Z") - 1)


/* the fixed text of one record, without its values */
#define NGX_HTTP_EAS_INVENTORY_RECORD                                         \
    "{\"user\":\"\",\"device_id\":\"\",\"device_type\":\"\","                \
    "\"user_agent\":\"\",\"protocol_version\":\"\",\"first_seen\":,"         \
    "\"last_seen\":,\"first_seen_iso\":\"\",\"last_seen_iso\":\"\","         \
    "\"last_command\":\"\",\"access\":\"\","                                 \
    "\"reason\":\"\",\"gateway\":\"\",\"user_devices\":,\"heartbeat\":},\n"


char *
ngx_http_eas_device_inventory(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_eas_inventory_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_eas_inventory_handler;

    return NGX_CONF_OK;
}


/* is the location being configured an inventory? */

ngx_uint_t
ngx_http_eas_inventory_location(ngx_conf_t *cf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    return clcf->handler == ngx_http_eas_inventory_handler;
}


/* the location must name a zone: checked once everything is merged */

ngx_int_t
ngx_http_eas_inventory_check(ngx_conf_t *cf,
    ngx_http_eas_devices_conf_t *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_eas_inventory_handler
        && conf->devices == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"eas_device_inventory\" needs a zone: "
                           "add \"eas_devices\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_eas_inventory_handler(ngx_http_request_t *r)
{
    size_t                        size;
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_uint_t                    i, n;
    ngx_http_eas_device_t        *devices;
    ngx_http_eas_devices_conf_t  *dcf;

    static ngx_str_t  json = ngx_string("application/json");

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    dcf = ngx_http_get_module_loc_conf(r, ngx_http_eas_devices_module);

    /* records arriving between the two calls are left for next time */

    n = ngx_http_eas_device_count(dcf->devices);

    devices = NULL;

    if (n) {
        devices = ngx_palloc(r->pool, n * sizeof(ngx_http_eas_device_t));
        if (devices == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = ngx_http_eas_device_list(dcf->devices, devices, n);
    }

    size = sizeof("{\"zone\":\"\",\"devices\":[\n]}\n")
           + ngx_http_eas_inventory_string_size(dcf->devices->shm.name.data,
                                                dcf->devices->shm.name.len);

    for (i = 0; i < n; i++) {
        size += ngx_http_eas_inventory_record_size(&devices[i]);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->last, "{\"zone\":\"", sizeof("{\"zone\":\"") - 1);
    p = ngx_http_eas_json_escape(p, dcf->devices->shm.name.data,
                                 dcf->devices->shm.name.len, NULL);
    p = ngx_cpymem(p, "\",\"devices\":[\n",
                   sizeof("\",\"devices\":[\n") - 1);

    for (i = 0; i < n; i++) {
        p = ngx_http_eas_inventory_record(p, &devices[i]);

        if (i + 1 < n) {
            *p++ = ',';
        }

        *p++ = '\n';
    }

    p = ngx_cpymem(p, "]}\n", sizeof("]}\n") - 1);

    if (ngx_http_eas_answer_private(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eas_send(r, NGX_HTTP_OK, &json, b->pos, p - b->pos);
}


/* the longest ngx_http_eas_inventory_record() may write, with ",\n" */

size_t
ngx_http_eas_inventory_record_size(ngx_http_eas_device_t *d)
{
    return sizeof(NGX_HTTP_EAS_INVENTORY_RECORD) + 4 * NGX_TIME_T_LEN
           + 2 * NGX_HTTP_EAS_ISO_TIME_LEN
           + 2 * NGX_INT_T_LEN + sizeof("blocked") + sizeof("16.1")
           + sizeof("GetItemEstimate")
           + ngx_http_eas_inventory_string_size(d->user, d->user_len)
           + ngx_http_eas_inventory_string_size(d->device_id,
                                                d->device_id_len)
           + ngx_http_eas_inventory_string_size(d->device_type,
                                                d->device_type_len)
           + ngx_http_eas_inventory_string_size(d->user_agent,
                                                d->user_agent_len)
           + ngx_http_eas_inventory_string_size(d->reason, d->reason_len)
           + 6 * NGX_HTTP_EAS_DEVICE_GATEWAY_LEN;
}


u_char *
ngx_http_eas_inventory_record(u_char *p, ngx_http_eas_device_t *d)
{
    ngx_str_t    gateway;
    const char  *access, *command;

    p = ngx_http_eas_inventory_string(p, "{\"user\":\"", d->user,
                                      d->user_len);
    p = ngx_http_eas_inventory_string(p, "\",\"device_id\":\"",
                                      d->device_id, d->device_id_len);
    p = ngx_http_eas_inventory_string(p, "\",\"device_type\":\"",
                                      d->device_type, d->device_type_len);
    p = ngx_http_eas_inventory_string(p, "\",\"user_agent\":\"",
                                      d->user_agent, d->user_agent_len);

    p = ngx_cpymem(p, "\",\"protocol_version\":\"",
                   sizeof("\",\"protocol_version\":\"") - 1);

    if (d->version) {
        p = ngx_sprintf(p, "%ui.%ui", d->version / 10, d->version % 10);
    }

    command = (d->command == EAS_CMD_NONE)
              ? "" : eas_command_name((eas_command_e) d->command);

    switch (d->access) {

    case NGX_HTTP_EAS_ACCESS_ALLOWED:
        access = "allowed";
        break;

    case NGX_HTTP_EAS_ACCESS_BLOCKED:
        access = "blocked";
        break;

    default:
        access = "";
    }

    p = ngx_sprintf(p, "\",\"first_seen\":%T,\"last_seen\":%T,"
                    "\"first_seen_iso\":\"", d->first_seen, d->last_seen);
    p = ngx_http_eas_inventory_iso_time(p, d->first_seen);
    p = ngx_cpymem(p, "\",\"last_seen_iso\":\"",
                   sizeof("\",\"last_seen_iso\":\"") - 1);
    p = ngx_http_eas_inventory_iso_time(p, d->last_seen);
    p = ngx_sprintf(p, "\",\"last_command\":\"%s\",\"access\":\"%s\"",
                    command ? command : "", access);

    p = ngx_http_eas_inventory_string(p, ",\"reason\":\"", d->reason,
                                      d->reason_len);

    /* the gateway that wrote the record last (eas_shared_state) */

    if (d->gateway_len == 0) {
        ngx_http_eas_redis_gateway(&gateway);

    } else if (d->gateway_len > NGX_HTTP_EAS_DEVICE_GATEWAY_LEN) {
        /* a record of a gateway that did not say its name */
        ngx_str_null(&gateway);

    } else {
        gateway.data = d->gateway;
        gateway.len = d->gateway_len;
    }

    p = ngx_http_eas_inventory_string(p, "\",\"gateway\":\"", gateway.data,
                                      gateway.len);

    return ngx_sprintf(p, "\",\"user_devices\":%ui,\"heartbeat\":%ui}",
                       d->user_devices, d->heartbeat);
}


static u_char *
ngx_http_eas_inventory_string(u_char *p, const char *name, u_char *data,
    size_t len)
{
    p = ngx_cpymem(p, name, ngx_strlen(name));

    return ngx_http_eas_json_escape(p, data, len, NULL);
}


static size_t
ngx_http_eas_inventory_string_size(u_char *data, size_t len)
{
    size_t  size;

    (void) ngx_http_eas_json_escape(NULL, data, len, &size);

    return size;
}


/*
 * A JSON string body that is valid UTF-8 whatever bytes a device sent:
 * well-formed UTF-8 sequences are copied, '"', '\\' and control bytes
 * (below 0x20, and DEL) are escaped, and every other byte (a lone
 * continuation byte, an overlong form, a surrogate, a truncated
 * sequence, 0xC0, 0xFF...) becomes \u00XX, its Latin-1 reading.  The
 * characters that are invisible or reorder the text around them (C1
 * controls, the bidirectional controls U+061C, U+200E/F, U+202A-E,
 * U+2066-9, and U+2028/9) are written \uXXXX, never raw.  With dst
 * NULL, only *size (the length written) is computed.
 */

u_char *
ngx_http_eas_json_escape(u_char *dst, u_char *src, size_t len, size_t *size)
{
    size_t     n, total;
    u_char    *end;
    uint32_t   c;

    static u_char  hex[] = "0123456789abcdef";

    total = 0;
    end = src + len;

    while (src < end) {

        if (*src >= 0x80) {
            n = ngx_http_eas_utf8_valid(src, end - src);
            c = ngx_http_eas_utf8_shown(src, n);

            if (c) {
                /* a C1 control, a bidirectional control, U+2028/9 */
                if (dst) {
                    dst = ngx_cpymem(dst, "\\u", 2);
                    *dst++ = hex[(c >> 12) & 0xf];
                    *dst++ = hex[(c >> 8) & 0xf];
                    *dst++ = hex[(c >> 4) & 0xf];
                    *dst++ = hex[c & 0xf];
                }

                total += 6;
                src += n;
                continue;
            }

            if (n) {
                if (dst) {
                    dst = ngx_cpymem(dst, src, n);
                }

                total += n;
                src += n;
                continue;
            }
        }

        if (*src == '"' || *src == '\\') {
            if (dst) {
                *dst++ = '\\';
                *dst++ = *src;
            }

            total += 2;

        } else if (*src < 0x20 || *src >= 0x7f) {
            if (dst) {
                dst = ngx_cpymem(dst, "\\u00", 4);
                *dst++ = hex[*src >> 4];
                *dst++ = hex[*src & 0xf];
            }

            total += 6;

        } else {
            if (dst) {
                *dst++ = *src;
            }

            total++;
        }

        src++;
    }

    if (size) {
        *size = total;
    }

    return dst;
}


/* the length of the well-formed UTF-8 sequence at p (RFC 3629), or 0 */

static size_t
ngx_http_eas_utf8_valid(u_char *p, size_t len)
{
    size_t    n, i;
    uint32_t  c, min;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        c = p[0] & 0x1f;
        min = 0x80;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        c = p[0] & 0x0f;
        min = 0x800;

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        c = p[0] & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (p[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }

    return n;
}


/*
 * The code point of the valid sequence of n bytes at p if it must be
 * shown escaped (ngx_http_eas_json_escape()), else 0: C1 controls,
 * U+061C, U+200E/F, U+2028-U+202E and U+2066-U+2069.
 */

static uint32_t
ngx_http_eas_utf8_shown(u_char *p, size_t n)
{
    uint32_t  c;

    if (n == 2) {
        c = ((uint32_t) (p[0] & 0x1f) << 6) | (p[1] & 0x3f);

        return (c <= 0x9f || c == 0x61c) ? c : 0;
    }

    if (n != 3 || p[0] != 0xe2) {
        return 0;
    }

    c = ((uint32_t) (p[0] & 0x0f) << 12) | ((uint32_t) (p[1] & 0x3f) << 6)
        | (p[2] & 0x3f);

    if (c == 0x200e || c == 0x200f || (c >= 0x2028 && c <= 0x202e)
        || (c >= 0x2066 && c <= 0x2069))
    {
        return c;
    }

    return 0;
}


/* UTC, ISO 8601 with the "Z" designator, as the epoch fields say */

static u_char *
ngx_http_eas_inventory_iso_time(u_char *p, time_t t)
{
    ngx_tm_t  tm;

    ngx_gmtime(t, &tm);

    return ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
}
