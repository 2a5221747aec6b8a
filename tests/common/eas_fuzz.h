
/*
 * Copyright (C) ngx_eas developers
 */


/*
 * What the libFuzzer harnesses of tests/fuzz/ share: eas_fuzz_assert(),
 * which aborts (so that libFuzzer keeps the input) naming the harness,
 * the line and the invariant broken.  A harness defines EAS_FUZZ_NAME
 * ("fuzz_eas_basic") before it includes this header.
 */


#ifndef _EAS_FUZZ_H_INCLUDED_
#define _EAS_FUZZ_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>


#define eas_fuzz_assert(cond, what)                                          \
    if (!(cond)) {                                                           \
        eas_fuzz_abort(what, __LINE__);                                      \
    }


static void
eas_fuzz_abort(const char *what, int line)
{
    fprintf(stderr, EAS_FUZZ_NAME ": invariant failed at line %d: %s\n",
            line, what);
    abort();
}


#endif /* _EAS_FUZZ_H_INCLUDED_ */
