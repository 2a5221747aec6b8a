
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * What the table-driven unit tests of the core share
 * (tests/unit/test_eas_basic.c, test_eas_ldap.c): the count of checks
 * passed and failed, one check that names the case and what went
 * wrong, and the closing line, whose status is the program's.  Header
 * only: each test is one file, built with the core's sources.
 */


#ifndef _EAS_TEST_H_INCLUDED_
#define _EAS_TEST_H_INCLUDED_


#include <stdio.h>


static unsigned  eas_test_passed;
static unsigned  eas_test_failed;


static void
eas_test_check(int ok, const char *name, const char *what)
{
    if (ok) {
        eas_test_passed++;
        return;
    }

    eas_test_failed++;
    fprintf(stderr, "FAIL: %s: %s\n", name, what);
}


static int
eas_test_report(const char *program)
{
    printf("%s: %u passed, %u failed\n", program, eas_test_passed,
           eas_test_failed);

    return eas_test_failed ? 1 : 0;
}


#endif /* _EAS_TEST_H_INCLUDED_ */
