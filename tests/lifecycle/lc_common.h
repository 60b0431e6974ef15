/* lc_common.h: what the lifecycle tests (tests/lifecycle) share on top of
 * tests/variants/vt_common.h.
 *
 * Each lifecycle test is, like the variant tests, its own driver: run by
 * `make check` it is a Check suite under glibc that runs itself again as
 * `PROGRAM --scenario NAME` with LD_PRELOAD of each built library and the
 * environment of one mode (vt_spawn). The scenario prints `key=value` lines
 * and the parent checks them, the exit status and stderr. A crash shows as
 * a signal in the status; a hang ends as SIGALRM (the alarm armed by
 * vt_spawn survives exec), so neither can stall the suite.
 *
 * This header adds the modes the tests run under, RSS in the sense that
 * matters for LEAN (resident minus LazyFree), a bounded wait for a forked
 * child, and the parent-side checks most tests share ("clean run",
 * "diagnosed misuse").
 */
#ifndef LC_COMMON_H
#define LC_COMMON_H

#include "../variants/vt_common.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* ------------------------------------------------------------------------ */
/* Modes. LEAN modes give a budget (TARGET_MB) and a decommit strategy. */

#define LC_LEAN_OFF "HAKMEM_SS_MEM_LEAN=0"
#define LC_LEAN_ON "HAKMEM_SS_MEM_LEAN=1"
#define LC_FREE "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"
#define LC_DONTNEED "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"
#define LC_OFF "HAKMEM_SS_MEM_LEAN_DECOMMIT=OFF"
#define LC_BUDGET0 "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"
#define LC_BUDGET10 "HAKMEM_SS_MEM_LEAN_TARGET_MB=10"

/* The modes of a test whose library is built, in table order. */
struct lc_modes {
    const struct vt_mode *m[32];
    int n;
};

__attribute__((unused)) static void lc_select(const struct vt_mode *all, size_t n, struct lc_modes *out)
{
    out->n = 0;
    for (size_t i = 0; i < n && out->n < 32; i++)
        if (vt_have(all[i].variant))
            out->m[out->n++] = &all[i];
}

/* Say once which libraries are missing (their modes are left out). */
__attribute__((unused)) static void lc_note_missing(void)
{
    for (int v = 0; v < VT_NVARIANTS; v++)
        if (!vt_have(v))
            printf("note: the %s library is not built: its cases are skipped\n", vt_variant_names[v]);
}

/* A mode's environment plus `extra` (NULL-terminated) into out[cap]. */
__attribute__((unused)) static void lc_env(const struct vt_mode *m, const char *const *extra, const char **out,
                                           size_t cap)
{
    size_t k = 0;
    for (int i = 0; m->env[i] && k + 1 < cap; i++)
        out[k++] = m->env[i];
    for (int i = 0; extra && extra[i] && k + 1 < cap; i++)
        out[k++] = extra[i];
    out[k] = NULL;
}

/* Is the mode LEAN with pages really given back (FREE or DONTNEED)? */
__attribute__((unused)) static int lc_mode_releases(const struct vt_mode *m)
{
    int lean = 0, off = 0;
    for (int i = 0; m->env[i]; i++) {
        if (strcmp(m->env[i], LC_LEAN_ON) == 0)
            lean = 1;
        if (strcmp(m->env[i], LC_OFF) == 0)
            off = 1;
    }
    return m->variant != VT_FAST && lean && !off;
}

/* The mode's LEAN budget in MiB (10, the default, if not given). */
__attribute__((unused)) static long lc_mode_budget_mb(const struct vt_mode *m)
{
    static const char key[] = "HAKMEM_SS_MEM_LEAN_TARGET_MB=";
    for (int i = 0; m->env[i]; i++)
        if (strncmp(m->env[i], key, sizeof key - 1) == 0)
            return atol(m->env[i] + sizeof key - 1);
    return 10;
}

/* ------------------------------------------------------------------------ */
/* Parent-side checks. */

/* The scenario ran to its end and the library said nothing. */
#define lc_assert_clean(r, what)                                                                   \
    do {                                                                                           \
        vt_assert_r(r, vt_exited_ok(r), "%s: the scenario must run to its end", what);            \
        vt_assert_r(r, vt_count_lines((r)->err, "hakmem: ") == 0, "%s: no `hakmem:` line expected", \
                    what);                                                                         \
    } while (0)

/* A deliberate misuse: exactly one `hakmem: error:` line; the debug library
 * then aborts inside the faulty call (the scenario reports returned=1 right
 * after it, so a later abort for another reason does not count), the others
 * go on (the scenario reports after=ok once the heap proved intact). */
#define lc_assert_misuse(r, variant, what)                                                          \
    do {                                                                                            \
        int lc_errors_ = vt_count_lines((r)->err, "hakmem: error: ");                               \
        if ((variant) == VT_DEBUG) {                                                                \
            vt_assert_r(r, WIFSIGNALED((r)->status) && WTERMSIG((r)->status) == SIGABRT,            \
                        "%s: the debug build must diagnose it and abort", what);                    \
            vt_assert_r(r, vt_str(r, "returned") == NULL,                                           \
                        "%s: the debug build must abort in the faulty call, not after it", what);   \
        } else {                                                                                    \
            vt_assert_r(r, vt_exited_ok(r), "%s: the program must go on after the misuse", what);  \
            vt_assert_r(r, vt_str(r, "after") && strcmp(vt_str(r, "after"), "ok") == 0,            \
                        "%s: the heap must stay intact after the misuse", what);                    \
        }                                                                                           \
        vt_assert_r(r, lc_errors_ == 1, "%s: exactly one `hakmem: error:` line expected, got %d", what, \
                    lc_errors_);                                                                    \
    } while (0)

/* Run the suite; 1 if any test failed. */
static int lc_run_suite(Suite *s);

/* One test case of a program: its name, its test (run once for every
 * (mode, i < per_mode) pair; 0 counts as 1) and its timeout in seconds. */
struct lc_case {
    const char *name;
    const TTest *test;
    double timeout;
    int per_mode;
};

/* main() of a lifecycle test: as a scenario child, run the scenario; as
 * the parent, keep the modes whose library is built (exit 77 if none) and
 * run one TCase per entry of cases[]. */
__attribute__((unused)) static int lc_main_cases(int argc, char **argv, const struct vt_scenario *scenarios,
                                                 const struct vt_mode *all, size_t n, struct lc_modes *modes,
                                                 const char *suite, const struct lc_case *cases, size_t ncases)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    lc_note_missing();
    lc_select(all, n, modes);
    if (!modes->n) {
        printf("SKIP: no library to test\n");
        return VT_EXIT_SKIP;
    }
    Suite *s = suite_create(suite);
    for (size_t k = 0; k < ncases; k++) {
        TCase *tc = tcase_create(cases[k].name);
        tcase_set_timeout(tc, cases[k].timeout);
        tcase_add_loop_test(tc, cases[k].test, 0, modes->n * (cases[k].per_mode > 0 ? cases[k].per_mode : 1));
        suite_add_tcase(s, tc);
    }
    return lc_run_suite(s);
}

/* The same with one test case. */
__attribute__((unused)) static int lc_main(int argc, char **argv, const struct vt_scenario *scenarios,
                                           const struct vt_mode *all, size_t n, struct lc_modes *modes,
                                           const char *suite, const char *tcase, const TTest *test,
                                           int per_mode, int timeout_s)
{
    const struct lc_case one = {tcase, test, timeout_s, per_mode};
    return lc_main_cases(argc, argv, scenarios, all, n, modes, suite, &one, 1);
}

__attribute__((unused)) static int lc_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Scenario side (under hakmem). */

/* Resident bytes that count against a LEAN budget, in KiB: Rss minus
 * LazyFree (pages given back with MADV_FREE stay in Rss until the kernel
 * takes them, but are the kernel's to take). */
__attribute__((unused)) static long lc_rss_kib(void)
{
    long rss = vt_smaps_field("Rss"), lazy = vt_smaps_field("LazyFree");
    if (rss < 0)
        vt_fail("cannot read Rss from /proc/self/smaps_rollup");
    return rss - (lazy > 0 ? lazy : 0);
}

__attribute__((unused)) static void lc_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Wait up to `timeout_s` for child `pid`: 0 with its wait status in
 * *status; -1 if it did not end in time (a hang: it is killed); -2 if
 * waitpid failed. */
__attribute__((unused)) static int lc_wait_child(pid_t pid, double timeout_s, int *status)
{
    double end = vt_now() + timeout_s;
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -2;
        if (vt_now() > end) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

/* Distinct pointers? (n small: quadratic is fine). Returns the index of
 * the second of a duplicate pair, or -1. */
__attribute__((unused)) static int lc_find_duplicate(void *const *v, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (v[i] == v[j])
                return i;
    return -1;
}

#endif /* LC_COMMON_H */
