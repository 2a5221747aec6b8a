
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * The WBXML answers the gateway writes itself: a Ping or Sync answered
 * at the edge, and a command's top-level Status (a blocked or
 * unprovisioned device), in as few bytes as the protocol allows.
 */

#include "eas_wbxml_scan.h"


static size_t eas_wbxml_response(unsigned page, unsigned root,
    unsigned status_tag, unsigned status, unsigned value_tag,
    uint32_t value, unsigned char *buf, size_t size);
static unsigned char *eas_wbxml_put_text(unsigned char *p, uint32_t value);


/*
 * Each command whose response root has a top-level Status: the code
 * page, the root and the Status tokens (MS-ASWBXML 2.1.2.1, checked
 * against libwbxml's xml2wbxml in tests/integration/test_edge_answers.py).
 */
const eas_wbxml_command_root_t
    eas_wbxml_command_roots[EAS_WBXML_COMMAND_ROOTS] =
{
    { EAS_CMD_SYNC, 0x00, 0x05, 0x0e },                 /* AirSync */
    { EAS_CMD_SEND_MAIL, 0x15, 0x05, 0x12 },            /* ComposeMail */
    { EAS_CMD_SMART_FORWARD, 0x15, 0x06, 0x12 },
    { EAS_CMD_SMART_REPLY, 0x15, 0x07, 0x12 },
    { EAS_CMD_FOLDER_SYNC, 0x07, 0x16, 0x0c },          /* FolderHierarchy */
    { EAS_CMD_FOLDER_CREATE, 0x07, 0x13, 0x0c },
    { EAS_CMD_FOLDER_DELETE, 0x07, 0x14, 0x0c },
    { EAS_CMD_FOLDER_UPDATE, 0x07, 0x15, 0x0c },
    { EAS_CMD_SEARCH, 0x0f, 0x05, 0x0c },               /* Search */
    { EAS_CMD_SETTINGS, 0x12, 0x05, 0x06 },             /* Settings */
    { EAS_CMD_PING, 0x0d, 0x05, 0x07 },                 /* Ping */
    { EAS_CMD_ITEM_OPERATIONS, 0x14, 0x05, 0x0d },      /* ItemOperations */
    { EAS_CMD_PROVISION, 0x0e, 0x05, 0x0b },            /* Provision */
    { EAS_CMD_RESOLVE_RECIPIENTS, 0x0a, 0x05, 0x07 },   /* ResolveRecipients */
    { EAS_CMD_VALIDATE_CERT, 0x0b, 0x05, 0x0a }         /* ValidateCert */
};


size_t
eas_wbxml_ping_response(unsigned status, uint32_t heartbeat,
    unsigned char *buf, size_t size)
{
    return eas_wbxml_response(EAS_WBXML_PAGE_PING, EAS_WBXML_PING_PING,
                              EAS_WBXML_PING_STATUS, status,
                              EAS_WBXML_PING_HEARTBEAT, heartbeat,
                              buf, size);
}


size_t
eas_wbxml_sync_response(unsigned status, uint32_t limit,
    unsigned char *buf, size_t size)
{
    return eas_wbxml_response(EAS_WBXML_PAGE_AIRSYNC, EAS_WBXML_SYNC_SYNC,
                              EAS_WBXML_SYNC_STATUS, status,
                              EAS_WBXML_SYNC_LIMIT, limit, buf, size);
}


size_t
eas_wbxml_command_status(unsigned command, unsigned status,
    unsigned char *buf, size_t size)
{
    size_t  i;

    for (i = 0; i < sizeof(eas_wbxml_command_roots)
                    / sizeof(eas_wbxml_command_roots[0]); i++)
    {
        if (eas_wbxml_command_roots[i].command == command) {
            return eas_wbxml_response(eas_wbxml_command_roots[i].page,
                                      eas_wbxml_command_roots[i].root,
                                      eas_wbxml_command_roots[i].status,
                                      status, 0, 0, buf, size);
        }
    }

    return 0;
}


/*
 * 03 01 6A 00: WBXML 1.3, unknown public id, UTF-8, no string table, as
 * EAS clients and Exchange write it; then [SWITCH_PAGE page] root,
 * Status and the optional value as inline strings.
 */

static size_t
eas_wbxml_response(unsigned page, unsigned root, unsigned status_tag,
    unsigned status, unsigned value_tag, uint32_t value, unsigned char *buf,
    size_t size)
{
    unsigned char  *p;
    unsigned char   out[EAS_WBXML_RESPONSE_MAX];

    p = out;

    *p++ = 0x03;
    *p++ = 0x01;
    *p++ = 0x6a;
    *p++ = 0x00;

    if (page != 0) {
        *p++ = EAS_WBXML_SWITCH_PAGE;
        *p++ = (unsigned char) page;
    }

    *p++ = (unsigned char) (root | EAS_WBXML_CONTENT);

    *p++ = (unsigned char) (status_tag | EAS_WBXML_CONTENT);
    p = eas_wbxml_put_text(p, status);
    *p++ = EAS_WBXML_END;

    if (value != 0) {
        *p++ = (unsigned char) (value_tag | EAS_WBXML_CONTENT);
        p = eas_wbxml_put_text(p, value);
        *p++ = EAS_WBXML_END;
    }

    *p++ = EAS_WBXML_END;

    if ((size_t) (p - out) > size) {
        return 0;
    }

    memcpy(buf, out, (size_t) (p - out));

    return (size_t) (p - out);
}


/* STR_I, at most 10 digits, NUL: 12 bytes */

static unsigned char *
eas_wbxml_put_text(unsigned char *p, uint32_t value)
{
    size_t          n;
    unsigned char   digits[10];

    n = 0;

    do {
        digits[n++] = (unsigned char) ('0' + value % 10);
        value /= 10;
    } while (value);

    *p++ = EAS_WBXML_STR_I;

    while (n) {
        *p++ = digits[--n];
    }

    *p++ = '\0';

    return p;
}
