
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


typedef struct {
    eas_command_e   code;
    const char     *name;
} eas_command_entry_t;


static unsigned char eas_lower(unsigned char c);


/* MS-ASHTTP 2.2.1.1.1.1.2, then the legacy plain-only names */
static const eas_command_entry_t  eas_commands[] = {
    { EAS_CMD_SYNC, "Sync" },
    { EAS_CMD_SEND_MAIL, "SendMail" },
    { EAS_CMD_SMART_FORWARD, "SmartForward" },
    { EAS_CMD_SMART_REPLY, "SmartReply" },
    { EAS_CMD_GET_ATTACHMENT, "GetAttachment" },
    { EAS_CMD_FOLDER_SYNC, "FolderSync" },
    { EAS_CMD_FOLDER_CREATE, "FolderCreate" },
    { EAS_CMD_FOLDER_DELETE, "FolderDelete" },
    { EAS_CMD_FOLDER_UPDATE, "FolderUpdate" },
    { EAS_CMD_MOVE_ITEMS, "MoveItems" },
    { EAS_CMD_GET_ITEM_ESTIMATE, "GetItemEstimate" },
    { EAS_CMD_MEETING_RESPONSE, "MeetingResponse" },
    { EAS_CMD_SEARCH, "Search" },
    { EAS_CMD_SETTINGS, "Settings" },
    { EAS_CMD_PING, "Ping" },
    { EAS_CMD_ITEM_OPERATIONS, "ItemOperations" },
    { EAS_CMD_PROVISION, "Provision" },
    { EAS_CMD_RESOLVE_RECIPIENTS, "ResolveRecipients" },
    { EAS_CMD_VALIDATE_CERT, "ValidateCert" },
    { EAS_CMD_FIND, "Find" },
    { EAS_CMD_GET_HIERARCHY, "GetHierarchy" },
    { EAS_CMD_CREATE_COLLECTION, "CreateCollection" },
    { EAS_CMD_DELETE_COLLECTION, "DeleteCollection" },
    { EAS_CMD_MOVE_COLLECTION, "MoveCollection" },
    { EAS_CMD_NONE, NULL }
};


eas_command_e
eas_command_by_name(const unsigned char *p, size_t len)
{
    size_t                      i;
    const eas_command_entry_t  *e;

    for (e = eas_commands; e->name; e++) {

        if (strlen(e->name) != len) {
            continue;
        }

        for (i = 0; i < len; i++) {
            if (eas_lower(p[i]) != eas_lower((unsigned char) e->name[i])) {
                break;
            }
        }

        if (i == len) {
            return e->code;
        }
    }

    return EAS_CMD_NONE;
}


const char *
eas_command_name(eas_command_e cmd)
{
    const eas_command_entry_t  *e;

    for (e = eas_commands; e->name; e++) {
        if (e->code == cmd) {
            return e->name;
        }
    }

    return NULL;
}


static unsigned char
eas_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}
