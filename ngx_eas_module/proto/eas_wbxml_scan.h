
/*
 * Copyright (C) ngx_eas developers
 */


#ifndef _EAS_WBXML_SCAN_H_INCLUDED_
#define _EAS_WBXML_SCAN_H_INCLUDED_


/*
 * The WBXML core's own interface, between its files: eas_wbxml.c (the
 * request body scanner), eas_wbxml_status.c (a response's top-level
 * Status) and eas_wbxml_answer.c (the gateway's own answers).  Not for
 * the glue: eas_wbxml.h is the public header.
 */

#include "eas_wbxml.h"


/* global tokens (WBXML 1.3 section 7.1) */
#define EAS_WBXML_SWITCH_PAGE   0x00
#define EAS_WBXML_END           0x01
#define EAS_WBXML_ENTITY        0x02
#define EAS_WBXML_STR_I         0x03
#define EAS_WBXML_LITERAL       0x04
#define EAS_WBXML_EXT_I_0       0x40
#define EAS_WBXML_EXT_I_2       0x42
#define EAS_WBXML_PI            0x43
#define EAS_WBXML_LITERAL_C     0x44
#define EAS_WBXML_EXT_T_0       0x80
#define EAS_WBXML_EXT_T_2       0x82
#define EAS_WBXML_STR_T         0x83
#define EAS_WBXML_LITERAL_A     0x84
#define EAS_WBXML_EXT_0         0xc0
#define EAS_WBXML_EXT_2         0xc2
#define EAS_WBXML_OPAQUE        0xc3
#define EAS_WBXML_LITERAL_AC    0xc4

#define EAS_WBXML_CONTENT       0x40
#define EAS_WBXML_ATTRS         0x80
#define EAS_WBXML_TAG           0x3f

#define EAS_WBXML_UTF8          106

/* what the element being read is to the scanner */
#define EAS_WBXML_IN_OTHER      0
#define EAS_WBXML_IN_HEARTBEAT  1
#define EAS_WBXML_IN_WAIT       2


typedef struct {
    const unsigned char  *start;
    const unsigned char  *p;
    const unsigned char  *end;
    eas_longpoll_t       *lp;

    size_t                depth;       /* open elements */
    unsigned              page;
    unsigned              capture;     /* EAS_WBXML_IN_* at depth 2 */
    unsigned              digits;      /* digits seen in the capture */
    uint32_t              value;
} eas_wbxml_scan_t;


/* a command whose response root has a top-level Status: its tokens */
typedef struct {
    unsigned char         command;
    unsigned char         page;
    unsigned char         root;
    unsigned char         status;
} eas_wbxml_command_root_t;


/* eas_wbxml_answer.c: every such command (MS-ASWBXML 2.1.2.1) */
#define EAS_WBXML_COMMAND_ROOTS  15

extern const eas_wbxml_command_root_t
    eas_wbxml_command_roots[EAS_WBXML_COMMAND_ROOTS];


/* eas_wbxml.c */
int eas_wbxml_fail(eas_wbxml_scan_t *s, eas_wbxml_error_e error);
int eas_wbxml_header(eas_wbxml_scan_t *s);
int eas_wbxml_text(eas_wbxml_scan_t *s, const unsigned char *p, size_t len);


#endif /* _EAS_WBXML_SCAN_H_INCLUDED_ */
