
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * libFuzzer harness for eas_wbxml_scan() and the edge answers.
 *
 * Input layout (tests/fuzz/make_corpus_wbxml.py writes seeds in it):
 *
 *     byte 0      bit 0x01: the command is Sync (else Ping) for the
 *                 request scanner; bits 1-7 pick, modulo the table
 *                 below, the command whose response the top-level
 *                 Status reader reads
 *     then        the body
 *
 * The body is copied into a malloc() block of exactly its size, so
 * AddressSanitizer sees any read past the end.  Invariants: the answer
 * is EAS_OK or EAS_ERROR with a named error and an offset inside the
 * body; an accepted body has the root the command requires; scanning
 * again gives the same answer; the edge answer written for the value
 * found scans back to the same value.  The top-level Status reader
 * answers one of its four codes, an error named at an offset inside the
 * body, the same answer twice, and on every prefix "again" or the same
 * answer.  Any violation aborts.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eas_wbxml.h"

#define EAS_FUZZ_NAME  "fuzz_eas_wbxml"
#include "../common/eas_fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void eas_fuzz_answer(eas_wbxml_root_e root, uint32_t value);
static void eas_fuzz_top_status(const unsigned char *body, size_t len,
    unsigned command);


/* the responses the top-level Status reader is tried on */
static const unsigned  eas_fuzz_commands[] = {
    EAS_CMD_PING, EAS_CMD_SYNC, EAS_CMD_FOLDER_SYNC, EAS_CMD_PROVISION,
    EAS_CMD_SETTINGS, EAS_CMD_SEARCH, EAS_CMD_ITEM_OPERATIONS,
    EAS_CMD_SEND_MAIL, EAS_CMD_MOVE_ITEMS, EAS_CMD_VALIDATE_CERT,
    EAS_CMD_RESOLVE_RECIPIENTS
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                rc, rc2;
    size_t             len;
    unsigned char     *body;
    eas_longpoll_t     lp, lp2;
    eas_wbxml_root_e   root;

    if (size == 0) {
        return 0;
    }

    root = (data[0] & 0x01) ? EAS_WBXML_ROOT_SYNC : EAS_WBXML_ROOT_PING;
    len = size - 1;

    body = malloc(len ? len : 1);
    eas_fuzz_assert(body != NULL, "out of memory");

    memcpy(body, data + 1, len);

    rc = eas_wbxml_scan(body, len, root, &lp);

    if (rc == EAS_OK) {
        eas_fuzz_assert(lp.root == root, "accepted with another root");
        eas_fuzz_assert(lp.error == EAS_WBXML_OK, "error set on success");

        if (lp.has_heartbeat) {
            eas_fuzz_answer(root, lp.heartbeat);
        }

    } else {
        eas_fuzz_assert(rc == EAS_ERROR, "rc is neither EAS_OK nor EAS_ERROR");
        eas_fuzz_assert(lp.error > EAS_WBXML_OK
                        && lp.error < EAS_WBXML_LAST,
                        "error out of range");
        eas_fuzz_assert(lp.offset <= len, "error offset past the end");
    }

    rc2 = eas_wbxml_scan(body, len, root, &lp2);

    eas_fuzz_assert(rc2 == rc
                    && lp2.has_heartbeat == lp.has_heartbeat
                    && lp2.heartbeat == lp.heartbeat
                    && lp2.has_wait == lp.has_wait
                    && lp2.wait == lp.wait
                    && lp2.error == lp.error,
                    "second scan, other answer");

    eas_fuzz_top_status(body, len,
        eas_fuzz_commands[(data[0] >> 1)
                          % (sizeof(eas_fuzz_commands)
                             / sizeof(eas_fuzz_commands[0]))]);

    free(body);

    return 0;
}


/* what the gateway would answer, read back by the scanner */

static void
eas_fuzz_answer(eas_wbxml_root_e root, uint32_t value)
{
    int              rc;
    size_t           n;
    eas_longpoll_t   lp;
    unsigned char   *buf;

    buf = malloc(EAS_WBXML_RESPONSE_MAX);
    eas_fuzz_assert(buf != NULL, "out of memory");

    if (root == EAS_WBXML_ROOT_PING) {
        n = eas_wbxml_ping_response(EAS_PING_STATUS_OUT_OF_RANGE, value, buf,
                                    EAS_WBXML_RESPONSE_MAX);
    } else {
        n = eas_wbxml_sync_response(EAS_SYNC_STATUS_OUT_OF_RANGE, value, buf,
                                    EAS_WBXML_RESPONSE_MAX);
    }

    eas_fuzz_assert(n > 0 && n <= EAS_WBXML_RESPONSE_MAX,
                    "response does not fit");

    rc = eas_wbxml_scan(buf, n, root, &lp);

    eas_fuzz_assert(rc == EAS_OK, "own response does not scan");

    if (root == EAS_WBXML_ROOT_PING && value != 0) {
        eas_fuzz_assert(lp.has_heartbeat && lp.heartbeat == value,
                        "ping response carries another heartbeat");
    }

    free(buf);
}


static void
eas_fuzz_top_status(const unsigned char *body, size_t len, unsigned command)
{
    int                  rc, rc2;
    size_t               i;
    eas_wbxml_status_t   st, st2;

    rc = eas_wbxml_top_status(body, len, command, &st);

    eas_fuzz_assert(rc == EAS_OK || rc == EAS_AGAIN || rc == EAS_DECLINED
                    || rc == EAS_ERROR, "top status: unknown answer");

    if (rc == EAS_ERROR) {
        eas_fuzz_assert(st.error > EAS_WBXML_OK && st.error < EAS_WBXML_LAST
                        && st.offset <= len, "top status: bad error");
    }

    if (st.has_limit) {
        eas_fuzz_assert(rc == EAS_OK && st.has_status,
                        "top status: a limit without its status");
    }

    rc2 = eas_wbxml_top_status(body, len, command, &st2);

    eas_fuzz_assert(rc2 == rc && st2.status == st.status
                    && st2.has_status == st.has_status
                    && st2.limit == st.limit, "top status: other answer");

    /* a shorter prefix never tells another status */

    for (i = len; i > 0 && i + 16 > len; i--) {
        rc2 = eas_wbxml_top_status(body, i - 1, command, &st2);

        eas_fuzz_assert(!st2.has_status || !st.has_status
                        || st2.status == st.status,
                        "top status: a prefix tells another status");

        eas_fuzz_assert(rc2 != EAS_OK || rc == EAS_OK,
                        "top status: a prefix decided, the whole did not");
    }
}
