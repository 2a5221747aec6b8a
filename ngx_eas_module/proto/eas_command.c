
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


typedef struct {
    eas_command_e   code;
    const char     *name;
    size_t          len;
} eas_command_entry_t;


#define eas_command(code, name)  { code, name, sizeof(name) - 1 }


/* MS-ASHTTP 2.2.1.1.1.1.2, then the legacy plain-only names */
static const eas_command_entry_t  eas_commands[] = {
    eas_command(EAS_CMD_SYNC, "Sync"),
    eas_command(EAS_CMD_SEND_MAIL, "SendMail"),
    eas_command(EAS_CMD_SMART_FORWARD, "SmartForward"),
    eas_command(EAS_CMD_SMART_REPLY, "SmartReply"),
    eas_command(EAS_CMD_GET_ATTACHMENT, "GetAttachment"),
    eas_command(EAS_CMD_FOLDER_SYNC, "FolderSync"),
    eas_command(EAS_CMD_FOLDER_CREATE, "FolderCreate"),
    eas_command(EAS_CMD_FOLDER_DELETE, "FolderDelete"),
    eas_command(EAS_CMD_FOLDER_UPDATE, "FolderUpdate"),
    eas_command(EAS_CMD_MOVE_ITEMS, "MoveItems"),
    eas_command(EAS_CMD_GET_ITEM_ESTIMATE, "GetItemEstimate"),
    eas_command(EAS_CMD_MEETING_RESPONSE, "MeetingResponse"),
    eas_command(EAS_CMD_SEARCH, "Search"),
    eas_command(EAS_CMD_SETTINGS, "Settings"),
    eas_command(EAS_CMD_PING, "Ping"),
    eas_command(EAS_CMD_ITEM_OPERATIONS, "ItemOperations"),
    eas_command(EAS_CMD_PROVISION, "Provision"),
    eas_command(EAS_CMD_RESOLVE_RECIPIENTS, "ResolveRecipients"),
    eas_command(EAS_CMD_VALIDATE_CERT, "ValidateCert"),
    eas_command(EAS_CMD_FIND, "Find"),
    eas_command(EAS_CMD_GET_HIERARCHY, "GetHierarchy"),
    eas_command(EAS_CMD_CREATE_COLLECTION, "CreateCollection"),
    eas_command(EAS_CMD_DELETE_COLLECTION, "DeleteCollection"),
    eas_command(EAS_CMD_MOVE_COLLECTION, "MoveCollection"),
    { EAS_CMD_NONE, NULL, 0 }
};


eas_command_e
eas_command_by_name(const unsigned char *p, size_t len)
{
    size_t                      i;
    const eas_command_entry_t  *e;

    /*
     * Every name is letters only: "| 0x20" folds the case of a letter,
     * and no other byte becomes a letter so.
     */

    for (e = eas_commands; e->name; e++) {

        if (e->len != len
            || (p[0] | 0x20) != (e->name[0] | 0x20))
        {
            continue;
        }

        for (i = 1; i < len; i++) {
            if ((p[i] | 0x20) != (e->name[i] | 0x20)) {
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
