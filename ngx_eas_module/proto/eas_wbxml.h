
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _EAS_WBXML_H_INCLUDED_
#define _EAS_WBXML_H_INCLUDED_


/*
 * The long-poll facts of a Ping or Sync request body (docs/protocol.md
 * sections 5-7): a streaming WBXML scanner that keeps only the code page
 * and the element path down to depth 2, and the two edge answers the
 * gateway writes itself (Ping Status 5, Sync Status 14).
 */

#include "eas_proto.h"


/* the code pages the scanner needs (MS-ASWBXML 2.1.2.1) */
#define EAS_WBXML_PAGE_AIRSYNC         0x00
#define EAS_WBXML_PAGE_PING            0x0d

/* Ping page tokens */
#define EAS_WBXML_PING_PING            0x05
#define EAS_WBXML_PING_STATUS          0x07
#define EAS_WBXML_PING_HEARTBEAT       0x08

/* AirSync page tokens */
#define EAS_WBXML_SYNC_SYNC            0x05
#define EAS_WBXML_SYNC_STATUS          0x0e
#define EAS_WBXML_SYNC_WAIT            0x24
#define EAS_WBXML_SYNC_LIMIT           0x25
#define EAS_WBXML_SYNC_HEARTBEAT       0x29

/* the common status of a device blocked for its user (MS-ASCMD 2.2.2) */
#define EAS_STATUS_DEVICE_BLOCKED      129

/* "run Provision first" (MS-ASCMD 2.2.2, MS-ASPROV) */
#define EAS_STATUS_NOT_PROVISIONED     142

/* the Ping and Sync statuses the gateway answers with */
#define EAS_PING_STATUS_EXPIRED        1
#define EAS_PING_STATUS_OUT_OF_RANGE   5
#define EAS_SYNC_STATUS_OUT_OF_RANGE   14

/* a response written by eas_wbxml_*_response() never exceeds this */
#define EAS_WBXML_RESPONSE_MAX         48

/* a value with more digits than this saturates at EAS_WBXML_VALUE_MAX */
#define EAS_WBXML_VALUE_MAX            0xffffffffUL


typedef enum {
    EAS_WBXML_ROOT_NONE = 0,
    EAS_WBXML_ROOT_PING,
    EAS_WBXML_ROOT_SYNC
} eas_wbxml_root_e;


/* why a body was not understood; eas_wbxml_error_name() */
typedef enum {
    EAS_WBXML_OK = 0,
    EAS_WBXML_TRUNCATED,            /* input ends inside a token/element */
    EAS_WBXML_VERSION,              /* version byte not 1.1 - 1.3 */
    EAS_WBXML_CHARSET,              /* charset not 106 (UTF-8) */
    EAS_WBXML_MB_INT,               /* mb_u_int32 longer than 32 bits */
    EAS_WBXML_ATTRIBUTES,           /* attributes or PI: never in EAS */
    EAS_WBXML_UNBALANCED,           /* END without an open element */
    EAS_WBXML_TRAILING,             /* bytes after the root element */
    EAS_WBXML_ROOT,                 /* root is not the expected element */
    EAS_WBXML_VALUE,                /* interval not decimal digits */
    EAS_WBXML_DUPLICATE,            /* the same interval element twice */
    EAS_WBXML_LAST
} eas_wbxml_error_e;


typedef struct {
    eas_wbxml_root_e      root;
    uint32_t              heartbeat;     /* seconds, Ping or Sync */
    uint32_t              wait;          /* minutes, Sync only */
    unsigned              has_heartbeat:1;
    unsigned              has_wait:1;
    eas_wbxml_error_e     error;         /* set on EAS_ERROR */
    size_t                offset;        /* where the error was found */
} eas_longpoll_t;


/*
 * Scans a whole request body held in one buffer.  "expect" is the root
 * the command requires (EAS_WBXML_ROOT_PING for Ping, _SYNC for Sync).
 * EAS_OK: lp says which intervals the body carries (none is normal: an
 * empty or Folders-only Ping, a Sync without a wait).  EAS_ERROR:
 * lp->error and lp->offset say why; nothing is read past p + len.
 */
int eas_wbxml_scan(const unsigned char *p, size_t len,
    eas_wbxml_root_e expect, eas_longpoll_t *lp);

/*
 * The gateway's own answers, byte for byte what Exchange sends:
 * <Ping><Status/>[<HeartbeatInterval/>]</Ping> and
 * <Sync><Status/>[<Limit/>]</Sync>; "value" is left out when 0.
 * Return the length written, or 0 if size is too small.
 */
size_t eas_wbxml_ping_response(unsigned status, uint32_t heartbeat,
    unsigned char *buf, size_t size);
size_t eas_wbxml_sync_response(unsigned status, uint32_t limit,
    unsigned char *buf, size_t size);

/*
 * The answer a server gives a command it refuses as a whole: the
 * command's root element holding only its top-level Status, e.g.
 * <FolderSync xmlns="FolderHierarchy:"><Status>129</Status></FolderSync>
 * for a common status code (MS-ASCMD 2.2.2).  "command" is an
 * eas_command_e.  Returns the length written; 0 if the command has no
 * top-level Status (GetAttachment, MoveItems, MeetingResponse, Find,
 * GetItemEstimate and the legacy commands) or size is too small.
 */
size_t eas_wbxml_command_status(unsigned command, unsigned status,
    unsigned char *buf, size_t size);

/*
 * The top-level Status of a command's response, read from its first
 * bytes as they stream by: the header, the command's root element, and
 * its first child if that is the root page's Status (the place every
 * command whose response has one puts it).  For a Ping Status 5 and a
 * Sync Status 14 the next child, HeartbeatInterval or Limit, is read
 * too: the backend's own heartbeat limit.
 */
typedef struct {
    uint32_t              status;
    uint32_t              limit;         /* seconds, Ping/Sync */
    unsigned              has_status:1;
    unsigned              has_limit:1;
    eas_wbxml_error_e     error;         /* set on EAS_ERROR */
    size_t                offset;
} eas_wbxml_status_t;

/*
 * "p, len" is the start of the response seen so far.  EAS_OK: done,
 * st holds the status (and the limit if the status has one); EAS_AGAIN:
 * more bytes could tell more (has_status may already be set);
 * EAS_DECLINED: the response has no top-level Status (another root, an
 * empty root, a first child that is not Status, a command without
 * one); EAS_ERROR: not WBXML as EAS writes it (st->error).  Nothing is
 * read past p + len.
 */
int eas_wbxml_top_status(const unsigned char *p, size_t len,
    unsigned command, eas_wbxml_status_t *st);

/* stable token ("truncated") for logs and $eas_heartbeat_source */
const char *eas_wbxml_error_name(eas_wbxml_error_e error);


#endif /* _EAS_WBXML_H_INCLUDED_ */
