/* unit_common.h: what the unit suites share. */
#ifndef HK_UNIT_COMMON_H
#define HK_UNIT_COMMON_H

#include "../integration/hk_test.h"

#include <check.h>

/* Run one suite (fork mode unless CK_FORK=no); the exit status of main. */
static inline int hk_unit_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
