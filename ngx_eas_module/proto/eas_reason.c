
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


typedef struct {
    const char  *name;
    const char  *text;
} eas_reason_entry_t;


/* indexed by eas_reason_e; the names are stable ($eas_reason) */
static const eas_reason_entry_t  eas_reasons[] = {
    { "none", "no error" },
    { "query_missing", "no query string" },
    { "percent_encoding", "invalid percent-encoding in query" },
    { "param_duplicate", "duplicate parameter" },
    { "param_no_value", "parameter without value" },
    { "param_invalid", "invalid parameter value" },
    { "cmd_missing", "no Cmd parameter" },
    { "cmd_unknown", "unknown command" },
    { "device_id_missing", "no DeviceId" },
    { "device_id_invalid", "invalid DeviceId" },
    { "device_type_missing", "no DeviceType" },
    { "device_type_invalid", "invalid DeviceType" },
    { "user_invalid", "invalid User parameter" },
    { "base64_invalid", "query is not valid base64" },
    { "base64_truncated", "base64 query field runs past the end" },
    { "base64_version", "unsupported protocol version in base64 query" },
    { "base64_command", "unknown command code in base64 query" },
    { "base64_policy_key_length",
      "policy key length in base64 query is neither 0 nor 4" },
    { "base64_trailing", "trailing byte after base64 query parameters" },
    { "version_missing", "no MS-ASProtocolVersion header" },
    { "version_invalid", "unsupported MS-ASProtocolVersion" },
    { "policy_key_invalid", "invalid X-MS-PolicyKey header" },
    { "buffer_too_small", "parser buffer too small" },
    { "param_name_invalid",
      "parameter name empty or not made of letters, digits, \"-\", \"_\","
      " \".\"" },
    { "param_name_encoded", "parameter name written with \"%\" or \"+\"" },
    { "param_too_many", "too many query parameters" },
    { "query_semicolon", "\";\" in query" },
    { "double_encoding", "percent-escape left in a decoded value" },
    { "utf8_invalid", "value is not valid UTF-8" },
    { "target_fragment", "\"#\" in request target" },
    { "target_character",
      "space, control, non-ASCII or \";\" in request target" },
    { "path_dot_segment", "\".\" or \"..\" segment in path" },
    { "path_encoded_slash", "encoded slash or backslash in path" },
    { "path_backslash", "backslash in path" },
    { "path_not_canonical", "path differs from its normalized form" },
    { "header_duplicate", "EAS request header sent twice" }
};


static const char  *eas_params[] = {
    "AttachmentName",
    "CollectionId",
    "CollectionName",
    "ItemId",
    "LongId",
    "ParentId",
    "Occurrence",
    "Options",
    "User",
    "SaveInSent",
    "AcceptMultiPart"
};


/* a compile-time check that the tables follow the enums */
typedef char eas_reasons_complete_t[
    sizeof(eas_reasons) / sizeof(eas_reasons[0]) == EAS_REASON_LAST ? 1 : -1];
typedef char eas_params_complete_t[
    sizeof(eas_params) / sizeof(eas_params[0]) == EAS_PARAM_COUNT ? 1 : -1];


const char *
eas_reason_name(eas_reason_e reason)
{
    if ((unsigned) reason >= EAS_REASON_LAST) {
        return "unknown";
    }

    return eas_reasons[reason].name;
}


const char *
eas_reason_text(eas_reason_e reason)
{
    if ((unsigned) reason >= EAS_REASON_LAST) {
        return "unknown reason";
    }

    return eas_reasons[reason].text;
}


const char *
eas_param_name(eas_param_e param)
{
    if ((unsigned) param >= EAS_PARAM_COUNT) {
        return "unknown";
    }

    return eas_params[param];
}
