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

/* The library reads its settings once, at load: a suite that needs
 * settings of its own runs itself again with them. set[] holds
 * "NAME=VALUE" strings, unset[] names (both NULL-terminated); `marker`,
 * set in the second run, says it is done. Returns in the second run only
 * (exit status 99 if the first cannot run again). */
static inline void hk_unit_pin_settings(char **argv, const char *marker, const char *const set[],
                                        const char *const unset[])
{
    if (getenv(marker))
        return;
    setenv(marker, "1", 1);
    for (int i = 0; set[i]; i++) {
        const char *eq = strchr(set[i], '=');
        char name[64];
        if (!eq || (size_t)(eq - set[i]) >= sizeof name)
            abort(); /* the suite's own table is wrong */
        size_t n = (size_t)(eq - set[i]);
        memcpy(name, set[i], n);
        name[n] = '\0';
        setenv(name, eq + 1, 1);
    }
    for (int i = 0; unset[i]; i++)
        unsetenv(unset[i]);
    execv("/proc/self/exe", argv);
    perror("execv /proc/self/exe");
    exit(99);
}

#endif
