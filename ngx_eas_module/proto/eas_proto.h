
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _EAS_PROTO_H_INCLUDED_
#define _EAS_PROTO_H_INCLUDED_


/*
 * The pure ActiveSync protocol core: no nginx headers, no allocation,
 * no globals, no I/O.  Callers pass the input and an output structure;
 * results are slices of the input or of a caller-supplied buffer.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>


#define EAS_OK         0
#define EAS_ERROR     -1
#define EAS_AGAIN     -2
#define EAS_DECLINED  -5


/* limits applied to decoded values (bytes) */
#define EAS_DEVICE_ID_MAX      128
#define EAS_DEVICE_TYPE_MAX    128
#define EAS_USER_MAX           256
#define EAS_POLICY_KEY_MAX     64
#define EAS_PARAM_MAX          1024

/* parameters in a plain-form query (real clients send at most ten) */
#define EAS_QUERY_PARAMS_MAX   64


typedef struct {
    const unsigned char  *data;
    size_t                len;
} eas_str_t;


typedef enum {
    EAS_FORM_NONE = 0,
    EAS_FORM_PLAIN,
    EAS_FORM_BASE64
} eas_form_e;


/* base64 command codes (MS-ASHTTP 2.2.1.1.1.1.2); plain-only names after */
typedef enum {
    EAS_CMD_SYNC = 0,
    EAS_CMD_SEND_MAIL = 1,
    EAS_CMD_SMART_FORWARD = 2,
    EAS_CMD_SMART_REPLY = 3,
    EAS_CMD_GET_ATTACHMENT = 4,
    EAS_CMD_FOLDER_SYNC = 9,
    EAS_CMD_FOLDER_CREATE = 10,
    EAS_CMD_FOLDER_DELETE = 11,
    EAS_CMD_FOLDER_UPDATE = 12,
    EAS_CMD_MOVE_ITEMS = 13,
    EAS_CMD_GET_ITEM_ESTIMATE = 14,
    EAS_CMD_MEETING_RESPONSE = 15,
    EAS_CMD_SEARCH = 16,
    EAS_CMD_SETTINGS = 17,
    EAS_CMD_PING = 18,
    EAS_CMD_ITEM_OPERATIONS = 19,
    EAS_CMD_PROVISION = 20,
    EAS_CMD_RESOLVE_RECIPIENTS = 21,
    EAS_CMD_VALIDATE_CERT = 22,
    EAS_CMD_FIND = 23,
    EAS_CMD_GET_HIERARCHY = 64,
    EAS_CMD_CREATE_COLLECTION,
    EAS_CMD_DELETE_COLLECTION,
    EAS_CMD_MOVE_COLLECTION,
    EAS_CMD_NONE = 255
} eas_command_e;


/* why a request was refused; eas_reason_name()/eas_reason_text() */
typedef enum {
    EAS_REASON_NONE = 0,
    EAS_REASON_QUERY_MISSING,
    EAS_REASON_PERCENT_ENCODING,
    EAS_REASON_PARAM_DUPLICATE,
    EAS_REASON_PARAM_NO_VALUE,
    EAS_REASON_PARAM_INVALID,
    EAS_REASON_CMD_MISSING,
    EAS_REASON_CMD_UNKNOWN,
    EAS_REASON_DEVICE_ID_MISSING,
    EAS_REASON_DEVICE_ID_INVALID,
    EAS_REASON_DEVICE_TYPE_MISSING,
    EAS_REASON_DEVICE_TYPE_INVALID,
    EAS_REASON_USER_INVALID,
    EAS_REASON_BASE64_INVALID,
    EAS_REASON_BASE64_TRUNCATED,
    EAS_REASON_BASE64_VERSION,
    EAS_REASON_BASE64_COMMAND,
    EAS_REASON_BASE64_POLICY_KEY_LENGTH,
    EAS_REASON_BASE64_TRAILING,
    EAS_REASON_VERSION_MISSING,
    EAS_REASON_VERSION_INVALID,
    EAS_REASON_POLICY_KEY_INVALID,
    EAS_REASON_BUFFER_TOO_SMALL,
    EAS_REASON_PARAM_NAME_INVALID,
    EAS_REASON_PARAM_NAME_ENCODED,
    EAS_REASON_PARAM_TOO_MANY,
    EAS_REASON_QUERY_SEMICOLON,
    EAS_REASON_DOUBLE_ENCODING,
    EAS_REASON_UTF8_INVALID,
    EAS_REASON_TARGET_FRAGMENT,
    EAS_REASON_TARGET_CHARACTER,
    EAS_REASON_PATH_DOT_SEGMENT,
    EAS_REASON_PATH_ENCODED_SLASH,
    EAS_REASON_PATH_BACKSLASH,
    EAS_REASON_PATH_NOT_CANONICAL,
    EAS_REASON_HEADER_DUPLICATE,
    EAS_REASON_LAST
} eas_reason_e;


/* parameters other than Cmd/User/DeviceId/DeviceType (base64 tag order) */
typedef enum {
    EAS_PARAM_ATTACHMENT_NAME = 0,
    EAS_PARAM_COLLECTION_ID,
    EAS_PARAM_COLLECTION_NAME,
    EAS_PARAM_ITEM_ID,
    EAS_PARAM_LONG_ID,
    EAS_PARAM_PARENT_ID,
    EAS_PARAM_OCCURRENCE,
    EAS_PARAM_OPTIONS,          /* rendered "0x03" */
    EAS_PARAM_USER,
    EAS_PARAM_SAVE_IN_SENT,     /* "T"/"F": plain SaveInSent, option */
    EAS_PARAM_ACCEPT_MULTIPART, /* "T"/"F": header, option */
    EAS_PARAM_COUNT
} eas_param_e;


/* base64 Options parameter bits (MS-ASHTTP 2.2.1.1.1.1.3) */
#define EAS_OPTION_SAVE_IN_SENT      0x01
#define EAS_OPTION_ACCEPT_MULTIPART  0x02


/* what the caller hands in: the raw query and three raw header values */
typedef struct {
    eas_str_t             query;         /* after "?", not decoded */
    eas_str_t             version;       /* MS-ASProtocolVersion */
    eas_str_t             policy_key;    /* X-MS-PolicyKey */
    eas_str_t             accept_multipart; /* MS-ASAcceptMultiPart */
    unsigned              has_version:1;
    unsigned              has_policy_key:1;
    unsigned              has_accept_multipart:1;
    unsigned              options:1;     /* OPTIONS: fields may be missing */
} eas_input_t;


typedef struct {
    eas_form_e            form;
    eas_command_e         command;
    eas_str_t             command_name;  /* canonical, static storage */

    eas_str_t             user;          /* query User=, decoded */
    eas_str_t             device_id;     /* ASCII as sent, binary as hex */
    eas_str_t             device_type;
    eas_str_t             policy_key;    /* decimal string when present */
    eas_str_t             version;       /* "14.1", static storage */
    eas_str_t             params[EAS_PARAM_COUNT];

    unsigned              version_code;  /* 25, 120, 121, 140, ..., 0 */
    unsigned              locale;        /* LCID from base64, else 0 */
    unsigned              has_locale:1;
    unsigned              device_id_binary:1;

    eas_reason_e          reason;        /* set on EAS_ERROR */
    const char           *reason_param;  /* parameter named in reason */
} eas_request_t;


/*
 * Scratch space needed for a query of "len" bytes: decoded values,
 * hex device ids and the decimal policy key are written there.  A query
 * with nothing to write (a plain one of visible ASCII with no "%", "+"
 * or ";", or none) is parsed with any buffer, even none (NULL, 0); with
 * a smaller buffer than it needs a query fails with
 * EAS_REASON_BUFFER_TOO_SMALL and nothing else.
 */
#define eas_request_buffer_size(len)  (3 * (len) + 64)


int eas_request_parse(const eas_input_t *in, eas_request_t *req,
    unsigned char *buf, size_t size);

/*
 * The request target as sent ("/path?query") against the path nginx
 * normalized ($uri; NULL data: not compared).  EAS_ERROR and *reason
 * when a backend could read the target otherwise than the edge.
 */
int eas_target_check(const eas_str_t *target, const eas_str_t *uri,
    eas_reason_e *reason);

/* the device fields a request could carry (eas_request_fields.c) */
int eas_device_fields_check(const eas_str_t *device_id,
    const eas_str_t *device_type, const eas_str_t *user);

/* a ProtocolVersion string ("14.1") → 141; EAS_ERROR if unknown */
int eas_version_parse(const unsigned char *p, size_t len, unsigned *code);

/* command table */
eas_command_e eas_command_by_name(const unsigned char *p, size_t len);
/* the same, and the table's spelling of the name (static storage) */
eas_command_e eas_command_lookup(const unsigned char *p, size_t len,
    eas_str_t *name);
const char *eas_command_name(eas_command_e cmd);

/* RFC 4648 base64, padding optional; returns decoded length or -1 */
long eas_base64_decode(const unsigned char *src, size_t len,
    unsigned char *dst, size_t size);

/* stable token ("query_missing") and sentence for log lines */
const char *eas_reason_name(eas_reason_e reason);

/* MS-ASCMD's name of a common status (101 and above), or NULL */
const char *eas_status_name(unsigned status);
const char *eas_reason_text(eas_reason_e reason);
const char *eas_param_name(eas_param_e param);


#endif /* _EAS_PROTO_H_INCLUDED_ */
