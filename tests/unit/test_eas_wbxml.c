
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * Unit tests for the WBXML long-poll scanner and the edge answers
 * (docs/protocol.md sections 5-7, vectors W1-W11).
 *
 * Every case of eas_wbxml_tests[] is a body in hex and the line the
 * scanner must produce: "ping", "sync" then "hb=N" and/or "wait=N" when
 * the body carries them, or "error <token>@<offset>".  Each body is
 * scanned from a malloc() block of exactly its size (AddressSanitizer
 * sees any over-read), then every proper prefix of it is scanned too:
 * a prefix must never be accepted with other values (unless the full
 * body is refused for bytes after a complete document), and must never
 * read past its own end.  An error offset is where the scanner stood:
 * at the offending byte, or just past the string that held a bad value.
 *
 * tests/fuzz/make_corpus.py reads the bodies of eas_wbxml_tests[] for
 * the fuzzing seeds: keep one case per "{ ... }" entry.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_wbxml.h"


#define EAS_TEST_LINE  128


typedef struct {
    const char          *name;
    eas_wbxml_root_e     expect_root;
    const char          *hex;
    const char          *expect;
} eas_wbxml_test_t;


typedef struct {
    const char          *name;
    int                  sync;
    unsigned             status;
    uint32_t             value;
    const char          *hex;
} eas_wbxml_response_test_t;


typedef struct {
    const char          *name;
    unsigned             command;
    unsigned             status;
    const char          *hex;         /* NULL: no top-level Status */
} eas_wbxml_status_test_t;


static size_t eas_test_unhex(const char *hex, unsigned char **out);
static void eas_test_format(int rc, const eas_longpoll_t *lp, char *line);
static void eas_test_check(const char *name, const char *expect,
    const char *got);
static void eas_test_scans(void);
static void eas_test_prefixes(const eas_wbxml_test_t *t,
    const unsigned char *body, size_t len, const eas_longpoll_t *full,
    int rc);
static void eas_test_responses(void);
static void eas_test_statuses(void);
static void eas_test_errors(void);
static void eas_test_top_status(void);
static void eas_test_top_status_format(int rc, const eas_wbxml_status_t *st,
    char *line);
static void eas_test_top_status_prefixes(const char *name,
    const unsigned char *body, size_t len, unsigned command, int full_rc,
    const eas_wbxml_status_t *full);


#define P  EAS_WBXML_ROOT_PING
#define S  EAS_WBXML_ROOT_SYNC


static const eas_wbxml_test_t  eas_wbxml_tests[] = {

    /* the vectors of docs/protocol.md 7.7 */

    { "W1 ping with folders", P,
      "03 01 6A 00 00 0D 45 48 03 34 38 30 00 01 49 4A 4B 03 35 00 01 4C"
      " 03 45 6D 61 69 6C 00 01 01 4A 4B 03 31 30 00 01 4C 03 43 61 6C 65"
      " 6E 64 61 72 00 01 01 01 01",
      "ping hb=480" },
    { "W2 ping heartbeat only", P,
      "03 01 6A 00 00 0D 45 48 03 33 35 34 30 00 01 01",
      "ping hb=3540" },
    { "W4 sync wait after collections", S,
      "03 01 6A 00 45 5C 4F 4B 03 31 00 01 52 03 35 00 01 01 01 64 03 33"
      " 30 00 01 01",
      "sync wait=30" },
    { "W5 sync heartbeat", S,
      "03 01 6A 00 45 5C 4F 4B 03 31 00 01 52 03 35 00 01 01 01 69 03 36"
      " 30 30 00 01 01",
      "sync hb=600" },
    { "W6 sync wait partial", S,
      "03 01 6A 00 45 64 03 33 30 00 01 26 01",
      "sync wait=30" },
    { "W10 ping folders only", P,
      "03 01 6A 00 00 0D 45 49 4A 4B 03 35 00 01 4C 03 45 6D 61 69 6C 00"
      " 01 01 01 01",
      "ping" },
    { "W4 without wait", S,
      "03 01 6A 00 45 5C 4F 4B 03 31 00 01 52 03 35 00 01 01 01 01",
      "sync" },

    /* accepted variants */

    { "opaque digits", P,
      "03 01 6A 00 00 0D 45 48 C3 03 31 32 30 01 01",
      "ping hb=120" },
    { "digits split over two strings", P,
      "03 01 6A 00 00 0D 45 48 03 31 00 03 32 30 00 01 01",
      "ping hb=120" },
    { "empty root", P,
      "03 01 6A 00 00 0D 05",
      "ping" },
    { "root with content and nothing in it", S,
      "03 01 6A 00 45 01",
      "sync" },
    { "string table skipped", P,
      "03 01 6A 03 61 62 00 00 0D 45 48 03 36 30 00 01 01",
      "ping hb=60" },
    { "public id by string table index", P,
      "03 00 00 6A 00 00 0D 45 48 03 36 30 00 01 01",
      "ping hb=60" },
    { "wbxml 1.1", P,
      "01 01 6A 00 00 0D 45 48 03 36 30 00 01 01",
      "ping hb=60" },
    { "both wait and heartbeat", S,
      "03 01 6A 00 45 64 03 31 00 01 69 03 39 30 00 01 01",
      "sync hb=90 wait=1" },
    { "leading zeros", P,
      "03 01 6A 00 00 0D 45 48 03 30 30 36 30 00 01 01",
      "ping hb=60" },
    { "zero", P,
      "03 01 6A 00 00 0D 45 48 03 30 00 01 01",
      "ping hb=0" },
    { "huge value saturates", P,
      "03 01 6A 00 00 0D 45 48 03 39 39 39 39 39 39 39 39 39 39 39 39 00"
      " 01 01",
      "ping hb=4294967295" },
    { "ping heartbeat token deeper is not ours", P,
      "03 01 6A 00 00 0D 45 49 48 03 39 00 01 01 01",
      "ping" },
    { "sync heartbeat token on the ping page is not ours", S,
      "03 01 6A 00 45 00 0D 69 03 39 00 01 00 00 01",
      "sync" },
    { "ping heartbeat token on page 0 is not ours", P,
      "03 01 6A 00 00 0D 45 00 00 48 03 39 00 01 00 0D 01",
      "ping" },
    { "sync wait inside a collection is not ours", S,
      "03 01 6A 00 45 5C 4F 64 03 39 00 01 01 01 01",
      "sync" },
    { "other pages skipped", S,
      "03 01 6A 00 45 5C 4F 5D 00 11 48 03 78 00 01 00 00 01 01 01 69 03"
      " 36 30 00 01 01",
      "sync hb=60" },
    { "opaque mime skipped", S,
      "03 01 6A 00 45 5C 4F 5D C3 05 00 01 03 C3 48 01 01 01 69 03 36 30"
      " 00 01 01",
      "sync hb=60" },
    { "extension tokens skipped", P,
      "03 01 6A 00 00 0D 45 40 61 00 80 05 C0 48 03 37 00 01 01",
      "ping hb=7" },
    { "literal tags skipped", P,
      "03 01 6A 00 00 0D 45 04 00 44 00 03 39 00 01 48 03 38 00 01 01",
      "ping hb=8" },

    /* malformed */

    { "empty", P, "", "error truncated@0" },
    { "version 0", P, "00 01 6A 00", "error version@0" },
    { "version 4", P, "04 01 6A 00", "error version@0" },
    { "charset latin-1", P, "03 01 04 00 00 0D 45 01", "error charset@2" },
    { "header only", P, "03 01 6A 00", "error truncated@4" },
    { "string table past the end", P, "03 01 6A 05 61", "error truncated@4" },
    { "mb_u_int32 six bytes", P, "03 81 81 81 81 81 01",
      "error mb_u_int32@6" },
    { "mb_u_int32 over 32 bits", P, "03 90 80 80 80 00",
      "error mb_u_int32@6" },
    { "mb_u_int32 truncated", P, "03 81", "error truncated@2" },
    { "wrong root for ping", P,
      "03 01 6A 00 45 64 03 33 30 00 01 01", "error root@4" },
    { "wrong root for sync", S,
      "03 01 6A 00 00 0D 45 48 03 36 30 00 01 01", "error root@6" },
    { "ping root on page 0", P, "03 01 6A 00 45 01", "error root@4" },
    { "no end", P, "03 01 6A 00 00 0D 45 48 03 36 30 00 01",
      "error truncated@13" },
    { "string without nul", P, "03 01 6A 00 00 0D 45 48 03 36 30",
      "error truncated@11" },
    { "switch page at the end", P, "03 01 6A 00 00", "error truncated@5" },
    { "opaque past the end", P, "03 01 6A 00 00 0D 45 48 C3 05 31 01 01",
      "error truncated@10" },
    { "opaque length huge", P, "03 01 6A 00 00 0D 45 48 C3 8F FF FF FF 7F",
      "error truncated@14" },
    { "extra end", P, "03 01 6A 00 00 0D 45 01 01", "error trailing@8" },
    { "end before root", P, "03 01 6A 00 01", "error unbalanced@4" },
    { "trailing tag", P, "03 01 6A 00 00 0D 45 01 48",
      "error trailing@8" },
    { "attributes", P, "03 01 6A 00 00 0D C5 01", "error attributes@7" },
    { "processing instruction", P, "03 01 6A 00 43 01",
      "error attributes@5" },
    { "literal with attributes", P, "03 01 6A 00 00 0D 45 84 00 01",
      "error attributes@8" },
    { "letters in heartbeat", P,
      "03 01 6A 00 00 0D 45 48 03 36 30 73 00 01 01", "error value@13" },
    { "negative heartbeat", P,
      "03 01 6A 00 00 0D 45 48 03 2D 36 30 00 01 01", "error value@13" },
    { "space in heartbeat", P,
      "03 01 6A 00 00 0D 45 48 03 20 36 30 00 01 01", "error value@13" },
    { "empty heartbeat string", P,
      "03 01 6A 00 00 0D 45 48 03 00 01 01", "error value@10" },
    { "heartbeat without content", P,
      "03 01 6A 00 00 0D 45 48 01 01", "error value@8" },
    { "heartbeat empty tag", P,
      "03 01 6A 00 00 0D 45 08 01", "error value@7" },
    { "heartbeat twice", P,
      "03 01 6A 00 00 0D 45 48 03 36 30 00 01 48 03 36 30 00 01 01",
      "error duplicate@13" },
    { "wait twice", S,
      "03 01 6A 00 45 64 03 31 00 01 64 03 32 00 01 01",
      "error duplicate@10" },
    { "heartbeat by entity", P,
      "03 01 6A 00 00 0D 45 48 02 36 01 01", "error value@10" },
    { "heartbeat by string table", P,
      "03 01 6A 02 36 00 00 0D 45 48 83 00 01 01", "error value@12" },
    { "element inside heartbeat", P,
      "03 01 6A 00 00 0D 45 48 4B 03 36 00 01 01 01", "error value@13" },

    { NULL, 0, NULL, NULL }
};


static const eas_wbxml_response_test_t  eas_wbxml_response_tests[] = {

    { "W3 ping status 5 max", 0, 5, 3540,
      "03 01 6A 00 00 0D 45 47 03 35 00 01 48 03 33 35 34 30 00 01 01" },
    { "W9 sync status 14 limit", 1, 14, 3540,
      "03 01 6A 00 45 4E 03 31 34 00 01 65 03 33 35 34 30 00 01 01" },
    { "ping status 5 min", 0, 5, 60,
      "03 01 6A 00 00 0D 45 47 03 35 00 01 48 03 36 30 00 01 01" },
    { "ping status 1", 0, 1, 0,
      "03 01 6A 00 00 0D 45 47 03 31 00 01 01" },
    { "sync status 14 wait", 1, 14, 59,
      "03 01 6A 00 45 4E 03 31 34 00 01 65 03 35 39 00 01 01" },
    { "largest", 1, 4294967295U, 4294967295U,
      "03 01 6A 00 45 4E 03 34 32 39 34 39 36 37 32 39 35 00 01 65 03 34"
      " 32 39 34 39 36 37 32 39 35 00 01 01" },

    { NULL, 0, 0, 0, NULL }
};


/* the tokens after the header are what xml2wbxml writes for the XML */
static const eas_wbxml_status_test_t  eas_wbxml_status_tests[] = {

    { "FolderSync 129", EAS_CMD_FOLDER_SYNC, 129,
      "03 01 6A 00 00 07 56 4C 03 31 32 39 00 01 01" },
    { "FolderCreate 129", EAS_CMD_FOLDER_CREATE, 129,
      "03 01 6A 00 00 07 53 4C 03 31 32 39 00 01 01" },
    { "FolderDelete 129", EAS_CMD_FOLDER_DELETE, 129,
      "03 01 6A 00 00 07 54 4C 03 31 32 39 00 01 01" },
    { "FolderUpdate 129", EAS_CMD_FOLDER_UPDATE, 129,
      "03 01 6A 00 00 07 55 4C 03 31 32 39 00 01 01" },
    { "Sync 129", EAS_CMD_SYNC, 129,
      "03 01 6A 00 45 4E 03 31 32 39 00 01 01" },
    { "Ping 129", EAS_CMD_PING, 129,
      "03 01 6A 00 00 0D 45 47 03 31 32 39 00 01 01" },
    { "Provision 129", EAS_CMD_PROVISION, 129,
      "03 01 6A 00 00 0E 45 4B 03 31 32 39 00 01 01" },
    { "Settings 129", EAS_CMD_SETTINGS, 129,
      "03 01 6A 00 00 12 45 46 03 31 32 39 00 01 01" },
    { "Search 129", EAS_CMD_SEARCH, 129,
      "03 01 6A 00 00 0F 45 4C 03 31 32 39 00 01 01" },
    { "ItemOperations 129", EAS_CMD_ITEM_OPERATIONS, 129,
      "03 01 6A 00 00 14 45 4D 03 31 32 39 00 01 01" },
    { "ResolveRecipients 129", EAS_CMD_RESOLVE_RECIPIENTS, 129,
      "03 01 6A 00 00 0A 45 47 03 31 32 39 00 01 01" },
    { "ValidateCert 129", EAS_CMD_VALIDATE_CERT, 129,
      "03 01 6A 00 00 0B 45 4A 03 31 32 39 00 01 01" },
    { "SendMail 129", EAS_CMD_SEND_MAIL, 129,
      "03 01 6A 00 00 15 45 52 03 31 32 39 00 01 01" },
    { "SmartForward 129", EAS_CMD_SMART_FORWARD, 129,
      "03 01 6A 00 00 15 46 52 03 31 32 39 00 01 01" },
    { "SmartReply 129", EAS_CMD_SMART_REPLY, 129,
      "03 01 6A 00 00 15 47 52 03 31 32 39 00 01 01" },
    { "FolderSync 142", EAS_CMD_FOLDER_SYNC, 142,
      "03 01 6A 00 00 07 56 4C 03 31 34 32 00 01 01" },
    { "GetAttachment", EAS_CMD_GET_ATTACHMENT, 129, NULL },
    { "MoveItems", EAS_CMD_MOVE_ITEMS, 129, NULL },
    { "MeetingResponse", EAS_CMD_MEETING_RESPONSE, 129, NULL },
    { "GetItemEstimate", EAS_CMD_GET_ITEM_ESTIMATE, 129, NULL },
    { "Find", EAS_CMD_FIND, 129, NULL },
    { "GetHierarchy", EAS_CMD_GET_HIERARCHY, 129, NULL },
    { "none", EAS_CMD_NONE, 129, NULL },

    { NULL, 0, 0, NULL }
};


/*
 * The top-level Status of a response as the backend sends it: a body in
 * hex and the line eas_wbxml_top_status() must give: "status=N" (then
 * " limit=N"), "again", "declined" or "error <token>@<offset>".  Every
 * proper prefix of a body is read too: it must say "again" (possibly
 * with the status already), never something else.  The encoder's own
 * answers for every command are read back in eas_test_top_status().
 */

typedef struct {
    const char          *name;
    unsigned             command;
    const char          *hex;
    const char          *expect;
} eas_wbxml_top_test_t;


static const eas_wbxml_top_test_t  eas_wbxml_top_tests[] = {

    { "FolderSync 1 then SyncKey", EAS_CMD_FOLDER_SYNC,
      "03 01 6A 00 00 07 56 4C 03 31 00 01 52 03 31 00 01 01",
      "status=1" },
    { "Provision 142 (a backend's own)", EAS_CMD_PROVISION,
      "03 01 6A 00 00 0E 45 4B 03 31 34 32 00 01 01", "status=142" },
    { "Provision Status 1 then RemoteWipe", EAS_CMD_PROVISION,
      "03 01 6A 00 00 0E 45 4B 03 31 00 01 08 01", "status=1" },
    { "Ping 2 with folders", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 03 32 00 01 49 4A 03 35 00 01 01 01",
      "status=2" },
    { "Ping 5 with the backend's limit", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 03 35 00 01 48 03 32 30 00 01 01",
      "status=5 limit=20" },
    { "Ping 5 without a limit", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 03 35 00 01 01", "status=5" },
    { "Sync 14 with the backend's limit", EAS_CMD_SYNC,
      "03 01 6A 00 45 4E 03 31 34 00 01 65 03 33 30 00 01 01",
      "status=14 limit=30" },
    { "Sync with collections: no top-level Status", EAS_CMD_SYNC,
      "03 01 6A 00 45 5C 4F 4B 03 31 00 01 01 01 01", "declined" },
    { "empty Sync root", EAS_CMD_SYNC, "03 01 6A 00 05", "declined" },
    { "another command's root", EAS_CMD_FOLDER_SYNC,
      "03 01 6A 00 00 0D 45 47 03 31 00 01 01", "declined" },
    { "root ends at once", EAS_CMD_PING, "03 01 6A 00 00 0D 45 01",
      "declined" },
    { "page switched twice before Status", EAS_CMD_PING,
      "03 01 6A 00 00 00 00 0D 45 00 0D 47 03 37 00 01 01", "status=7" },
    { "string table skipped", EAS_CMD_PING,
      "03 01 6A 02 41 00 00 0D 45 47 03 31 00 01 01", "status=1" },
    { "status not digits", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 03 31 78 00 01 01", "error value@8" },
    { "status empty", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 03 00 01 01", "error value@8" },
    { "status of eleven digits", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 03 31 32 33 34 35 36 37 38 39 30 31 00 01",
      "error value@8" },
    { "status as opaque", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 C3 01 31 01 01", "error value@8" },
    { "attributes on the root", EAS_CMD_PING,
      "03 01 6A 00 00 0D C5 01", "error attributes@6" },
    { "charset not UTF-8", EAS_CMD_PING, "03 01 04 00 00 0D 45",
      "error charset@2" },
    { "not WBXML (HTML error page)", EAS_CMD_FOLDER_SYNC,
      "3C 68 74 6D 6C 3E", "error version@0" },
    { "Status without END yet", EAS_CMD_PING,
      "03 01 6A 00 00 0D 45 47 03 31 00", "again" },
    { "no top-level Status for MoveItems", EAS_CMD_MOVE_ITEMS,
      "03 01 6A 00 00 05 45 4A 03 31 00 01 01", "declined" },
    { "nothing yet", EAS_CMD_PING, "", "again" },

    { NULL, 0, NULL, NULL }
};


static unsigned  eas_test_passed;
static unsigned  eas_test_failed;


int
main(void)
{
    eas_test_scans();
    eas_test_responses();
    eas_test_statuses();
    eas_test_errors();
    eas_test_top_status();

    printf("test_eas_wbxml: %u passed, %u failed\n",
           eas_test_passed, eas_test_failed);

    return eas_test_failed ? 1 : 0;
}


/* "03 01 6A" into a malloc() block of exactly that many bytes */

static size_t
eas_test_unhex(const char *hex, unsigned char **out)
{
    size_t          n;
    unsigned        byte;
    const char     *p;
    unsigned char  *buf;

    buf = malloc(strlen(hex) / 2 + 1);
    if (buf == NULL) {
        abort();
    }

    n = 0;

    for (p = hex; *p; /* void */ ) {
        if (*p == ' ') {
            p++;
            continue;
        }

        if (sscanf(p, "%2x", &byte) != 1) {
            fprintf(stderr, "bad hex in test: %s\n", hex);
            abort();
        }

        buf[n++] = (unsigned char) byte;
        p += 2;
    }

    *out = malloc(n ? n : 1);
    if (*out == NULL) {
        abort();
    }

    memcpy(*out, buf, n);
    free(buf);

    return n;
}


static void
eas_test_format(int rc, const eas_longpoll_t *lp, char *line)
{
    int  n;

    if (rc != EAS_OK) {
        snprintf(line, EAS_TEST_LINE, "error %s@%zu",
                 eas_wbxml_error_name(lp->error), lp->offset);
        return;
    }

    n = snprintf(line, EAS_TEST_LINE, "%s",
                 lp->root == EAS_WBXML_ROOT_PING ? "ping"
                 : lp->root == EAS_WBXML_ROOT_SYNC ? "sync" : "none");

    if (lp->has_heartbeat) {
        n += snprintf(line + n, EAS_TEST_LINE - n, " hb=%lu",
                      (unsigned long) lp->heartbeat);
    }

    if (lp->has_wait) {
        snprintf(line + n, EAS_TEST_LINE - n, " wait=%lu",
                 (unsigned long) lp->wait);
    }
}


static void
eas_test_check(const char *name, const char *expect, const char *got)
{
    if (strcmp(expect, got) == 0) {
        eas_test_passed++;
        return;
    }

    eas_test_failed++;
    printf("FAIL %s\n  expected: %s\n  got:      %s\n", name, expect, got);
}


static void
eas_test_scans(void)
{
    int                      rc;
    size_t                   len;
    unsigned char           *body;
    eas_longpoll_t           lp;
    const eas_wbxml_test_t  *t;
    char                     line[EAS_TEST_LINE];

    for (t = eas_wbxml_tests; t->name; t++) {
        len = eas_test_unhex(t->hex, &body);

        memset(&lp, 0xA5, sizeof(eas_longpoll_t));
        rc = eas_wbxml_scan(body, len, t->expect_root, &lp);

        eas_test_format(rc, &lp, line);
        eas_test_check(t->name, t->expect, line);

        if (rc == EAS_OK && lp.root != t->expect_root) {
            eas_test_failed++;
            printf("FAIL %s: accepted with another root\n", t->name);
        }

        if (rc != EAS_OK && lp.offset > len) {
            eas_test_failed++;
            printf("FAIL %s: error offset %zu past the end %zu\n",
                   t->name, lp.offset, len);
        }

        eas_test_prefixes(t, body, len, &lp, rc);

        free(body);
    }
}


/*
 * Each proper prefix in its own exact-size block: a truncated body is
 * refused, except where the prefix happens to be a complete document
 * itself (then it must not report a value the full body does not have).
 */

static void
eas_test_prefixes(const eas_wbxml_test_t *t, const unsigned char *body,
    size_t len, const eas_longpoll_t *full, int rc)
{
    int              prc;
    size_t           n;
    unsigned char   *copy;
    eas_longpoll_t   lp;

    for (n = 0; n < len; n++) {
        copy = malloc(n ? n : 1);
        if (copy == NULL) {
            abort();
        }

        memcpy(copy, body, n);

        prc = eas_wbxml_scan(copy, n, t->expect_root, &lp);

        if (prc == EAS_OK
            && ((rc != EAS_OK && full->error != EAS_WBXML_TRAILING)
                || (lp.has_heartbeat
                    && (!full->has_heartbeat
                        || lp.heartbeat > full->heartbeat))))
        {
            eas_test_failed++;
            printf("FAIL %s: prefix of %zu bytes accepted\n", t->name, n);
        }

        if (prc != EAS_OK && lp.offset > n) {
            eas_test_failed++;
            printf("FAIL %s: prefix of %zu bytes: offset %zu\n",
                   t->name, n, lp.offset);
        }

        free(copy);
    }

    eas_test_passed++;
}


static void
eas_test_responses(void)
{
    size_t                            n, len, size;
    unsigned char                    *expect;
    unsigned char                     buf[EAS_WBXML_RESPONSE_MAX];
    const eas_wbxml_response_test_t  *t;

    for (t = eas_wbxml_response_tests; t->name; t++) {
        len = eas_test_unhex(t->hex, &expect);

        n = t->sync ? eas_wbxml_sync_response(t->status, t->value, buf,
                                              sizeof(buf))
                    : eas_wbxml_ping_response(t->status, t->value, buf,
                                              sizeof(buf));

        if (n == len && memcmp(buf, expect, len) == 0) {
            eas_test_passed++;

        } else {
            eas_test_failed++;
            printf("FAIL %s: %zu bytes, expected %zu\n", t->name, n, len);
        }

        /* exactly the length fits, one byte less writes nothing */

        size = len;
        n = t->sync ? eas_wbxml_sync_response(t->status, t->value, buf, size)
                    : eas_wbxml_ping_response(t->status, t->value, buf, size);

        if (n != len) {
            eas_test_failed++;
            printf("FAIL %s: does not fit in %zu bytes\n", t->name, size);
        }

        memset(buf, 0x5A, sizeof(buf));
        size = len - 1;
        n = t->sync ? eas_wbxml_sync_response(t->status, t->value, buf, size)
                    : eas_wbxml_ping_response(t->status, t->value, buf, size);

        if (n != 0 || buf[0] != 0x5A) {
            eas_test_failed++;
            printf("FAIL %s: wrote into %zu bytes\n", t->name, size);

        } else {
            eas_test_passed++;
        }

        free(expect);
    }
}


static void
eas_test_statuses(void)
{
    size_t                          n, len;
    unsigned                        c;
    unsigned char                  *expect;
    unsigned char                   buf[EAS_WBXML_RESPONSE_MAX];
    const eas_wbxml_status_test_t  *t;

    for (t = eas_wbxml_status_tests; t->name; t++) {
        memset(buf, 0x5A, sizeof(buf));

        if (t->hex == NULL) {
            n = eas_wbxml_command_status(t->command, t->status, buf,
                                         sizeof(buf));
            if (n == 0 && buf[0] == 0x5A) {
                eas_test_passed++;

            } else {
                eas_test_failed++;
                printf("FAIL %s: wrote %zu bytes\n", t->name, n);
            }

            continue;
        }

        len = eas_test_unhex(t->hex, &expect);

        n = eas_wbxml_command_status(t->command, t->status, buf, len);

        if (n == len && memcmp(buf, expect, len) == 0) {
            eas_test_passed++;

        } else {
            eas_test_failed++;
            printf("FAIL %s: %zu bytes, expected %zu\n", t->name, n, len);
        }

        memset(buf, 0x5A, sizeof(buf));
        n = eas_wbxml_command_status(t->command, t->status, buf, len - 1);

        if (n != 0 || buf[0] != 0x5A) {
            eas_test_failed++;
            printf("FAIL %s: wrote into %zu bytes\n", t->name, len - 1);

        } else {
            eas_test_passed++;
        }

        free(expect);
    }

    /* every command code, the longest status: 0 or a whole answer */

    for (c = 0; c < 256; c++) {
        n = eas_wbxml_command_status(c, 4294967295U, buf, sizeof(buf));

        if (n == 0
            || (n <= sizeof(buf)
                && memcmp(buf, "\x03\x01\x6a\x00", 4) == 0
                && buf[n - 1] == 0x01))
        {
            eas_test_passed++;

        } else {
            eas_test_failed++;
            printf("FAIL command %u: %zu bytes\n", c, n);
        }
    }
}


static void
eas_test_errors(void)
{
    unsigned  e;

    for (e = 0; e < EAS_WBXML_LAST; e++) {
        if (eas_wbxml_error_name(e) == NULL
            || strcmp(eas_wbxml_error_name(e), "unknown") == 0)
        {
            eas_test_failed++;
            printf("FAIL error %u has no name\n", e);
        }
    }

    eas_test_check("unknown error", "unknown",
                   eas_wbxml_error_name(EAS_WBXML_LAST));
}


static void
eas_test_top_status(void)
{
    int                           rc;
    size_t                        n, len;
    unsigned                      c;
    unsigned char                *body;
    unsigned char                 buf[EAS_WBXML_RESPONSE_MAX];
    eas_wbxml_status_t            st;
    const eas_wbxml_top_test_t   *t;
    char                          line[EAS_TEST_LINE];

    for (t = eas_wbxml_top_tests; t->name; t++) {
        len = eas_test_unhex(t->hex, &body);

        rc = eas_wbxml_top_status(body, len, t->command, &st);
        eas_test_top_status_format(rc, &st, line);
        eas_test_check(t->name, t->expect, line);

        eas_test_top_status_prefixes(t->name, body, len, t->command, rc,
                                     &st);
        free(body);
    }

    /* MS-ASCMD's common status names, and none where it has none */

    eas_test_check("status name 101", "InvalidContent",
                   eas_status_name(101) ? eas_status_name(101) : "-");
    eas_test_check("status name 129", "DeviceIsBlockedForThisUser",
                   eas_status_name(129) ? eas_status_name(129) : "-");
    eas_test_check("status name 142", "DeviceNotProvisioned",
                   eas_status_name(142) ? eas_status_name(142) : "-");
    eas_test_check("status name 157", "-",
                   eas_status_name(157) ? eas_status_name(157) : "-");
    eas_test_check("status name 177", "MaximumDevicesReached",
                   eas_status_name(177) ? eas_status_name(177) : "-");
    eas_test_check("status name 178", "-",
                   eas_status_name(178) ? eas_status_name(178) : "-");
    eas_test_check("status name 100", "-",
                   eas_status_name(100) ? eas_status_name(100) : "-");

    /* the gateway's own answer for every command reads back */

    for (c = 0; c < 256; c++) {
        n = eas_wbxml_command_status(c, 4294967295U, buf, sizeof(buf));
        if (n == 0) {
            continue;
        }

        body = malloc(n);
        if (body == NULL) {
            abort();
        }

        memcpy(body, buf, n);

        rc = eas_wbxml_top_status(body, n, c, &st);

        if (rc == EAS_OK && st.has_status && st.status == 4294967295U) {
            eas_test_passed++;

        } else {
            eas_test_failed++;
            printf("FAIL top status of command %u: rc %d status %u\n", c,
                   rc, (unsigned) st.status);
        }

        eas_test_top_status_prefixes("command answer", body, n, c, rc, &st);
        free(body);
    }
}


static void
eas_test_top_status_format(int rc, const eas_wbxml_status_t *st, char *line)
{
    switch (rc) {

    case EAS_OK:
        if (st->has_limit) {
            snprintf(line, EAS_TEST_LINE, "status=%u limit=%u",
                     (unsigned) st->status, (unsigned) st->limit);

        } else {
            snprintf(line, EAS_TEST_LINE, "status=%u",
                     (unsigned) st->status);
        }

        break;

    case EAS_AGAIN:
        snprintf(line, EAS_TEST_LINE, "again");
        break;

    case EAS_DECLINED:
        snprintf(line, EAS_TEST_LINE, "declined");
        break;

    default:
        snprintf(line, EAS_TEST_LINE, "error %s@%zu",
                 eas_wbxml_error_name(st->error), st->offset);
    }
}


/*
 * A prefix is read from a block of exactly its size: "again" (with the
 * same status if it has one), or, once the full answer is decided by
 * the bytes seen, the same answer.
 */

static void
eas_test_top_status_prefixes(const char *name, const unsigned char *body,
    size_t len, unsigned command, int full_rc,
    const eas_wbxml_status_t *full)
{
    int                  rc;
    size_t               i;
    unsigned char       *copy;
    eas_wbxml_status_t   st;

    for (i = 0; i < len; i++) {
        copy = malloc(i ? i : 1);
        if (copy == NULL) {
            abort();
        }

        memcpy(copy, body, i);

        rc = eas_wbxml_top_status(copy, i, command, &st);

        if ((rc == EAS_AGAIN
             && (!st.has_status || st.status == full->status))
            || (rc == full_rc && rc != EAS_OK)
            || (rc == EAS_OK && full_rc == EAS_OK
                && st.status == full->status
                && st.has_limit == full->has_limit
                && st.limit == full->limit))
        {
            eas_test_passed++;

        } else {
            eas_test_failed++;
            printf("FAIL %s: prefix %zu gave %d\n", name, i, rc);
        }

        free(copy);
    }
}
