
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


/* the longest name, "ResolveRecipients", and its NUL fit in three words */
#define EAS_COMMAND_WORDS  3
#define EAS_COMMAND_FOLD   0x2020202020202020ULL


typedef struct {
    eas_command_e   code;
    size_t          len;
    /* NUL padded: read as words by eas_command_by_name() */
    char            name[EAS_COMMAND_WORDS * sizeof(uint64_t)];
} eas_command_entry_t;


#define eas_command(code, name)  { code, sizeof(name) - 1, name }


/*
 * MS-ASHTTP 2.2.1.1.1.1.2 and the legacy plain-only names, by length:
 * eas_command_lookup() starts at the first of the length sent
 * (eas_command_first[])
 */
static const eas_command_entry_t  eas_commands[] = {
    eas_command(EAS_CMD_SYNC, "Sync"),
    eas_command(EAS_CMD_PING, "Ping"),
    eas_command(EAS_CMD_FIND, "Find"),
    eas_command(EAS_CMD_SEARCH, "Search"),
    eas_command(EAS_CMD_SEND_MAIL, "SendMail"),
    eas_command(EAS_CMD_SETTINGS, "Settings"),
    eas_command(EAS_CMD_MOVE_ITEMS, "MoveItems"),
    eas_command(EAS_CMD_PROVISION, "Provision"),
    eas_command(EAS_CMD_SMART_REPLY, "SmartReply"),
    eas_command(EAS_CMD_FOLDER_SYNC, "FolderSync"),
    eas_command(EAS_CMD_SMART_FORWARD, "SmartForward"),
    eas_command(EAS_CMD_FOLDER_CREATE, "FolderCreate"),
    eas_command(EAS_CMD_FOLDER_DELETE, "FolderDelete"),
    eas_command(EAS_CMD_FOLDER_UPDATE, "FolderUpdate"),
    eas_command(EAS_CMD_VALIDATE_CERT, "ValidateCert"),
    eas_command(EAS_CMD_GET_HIERARCHY, "GetHierarchy"),
    eas_command(EAS_CMD_GET_ATTACHMENT, "GetAttachment"),
    eas_command(EAS_CMD_ITEM_OPERATIONS, "ItemOperations"),
    eas_command(EAS_CMD_MOVE_COLLECTION, "MoveCollection"),
    eas_command(EAS_CMD_GET_ITEM_ESTIMATE, "GetItemEstimate"),
    eas_command(EAS_CMD_MEETING_RESPONSE, "MeetingResponse"),
    eas_command(EAS_CMD_CREATE_COLLECTION, "CreateCollection"),
    eas_command(EAS_CMD_DELETE_COLLECTION, "DeleteCollection"),
    eas_command(EAS_CMD_RESOLVE_RECIPIENTS, "ResolveRecipients"),
    { EAS_CMD_NONE, 0, "" }
};


/* the first name of each length in eas_commands[]; 24: none */
static const unsigned char  eas_command_first[18] = {
    24, 24, 24, 24, 0, 24, 3, 24, 4, 6, 8, 24, 10, 16, 17, 19, 21, 23
};


eas_command_e
eas_command_by_name(const unsigned char *p, size_t len)
{
    eas_str_t  name;

    return eas_command_lookup(p, len, &name);
}


eas_command_e
eas_command_lookup(const unsigned char *p, size_t len, eas_str_t *name)
{
    uint64_t                    w[EAS_COMMAND_WORDS], k[EAS_COMMAND_WORDS];
    const eas_command_entry_t  *e;

    /*
     * Word by word: the name sent, NUL padded as the table's are, and
     * each name of its length differ in no bit but 0x20 of a byte.
     * Every name is letters only: "| 0x20" folds the case of a letter,
     * and no other byte becomes a letter so (nor a NUL of the padding).
     */

    if (len == 0 || len >= sizeof(eas_command_first)) {
        return EAS_CMD_NONE;
    }

    memset(w, 0, sizeof(w));
    memcpy(w, p, len);

    for (e = &eas_commands[eas_command_first[len]]; e->len == len; e++) {

        memcpy(k, e->name, sizeof(k));

        if ((((w[0] ^ k[0]) | (w[1] ^ k[1]) | (w[2] ^ k[2]))
             & ~EAS_COMMAND_FOLD)
            == 0)
        {
            name->data = (const unsigned char *) e->name;
            name->len = e->len;
            return e->code;
        }
    }

    return EAS_CMD_NONE;
}


const char *
eas_command_name(eas_command_e cmd)
{
    const eas_command_entry_t  *e;

    for (e = eas_commands; e->len; e++) {
        if (e->code == cmd) {
            return e->name;
        }
    }

    return NULL;
}
