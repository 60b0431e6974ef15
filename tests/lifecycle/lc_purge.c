/* lc_purge: LEAN gives back the slabs that wait to be decommitted once
 * their delay has passed (DESIGN 6: a purge delay applied on the
 * allocator's own calls).
 *
 * Unused slabs of a superslab still in use are not given back one by one:
 * they wait in a pending set (sixteen at a time, after 50 ms), so that a
 * large free costs one syscall per superslab. A set that never reaches the
 * batch size, or whose last slabs came within the delay, stayed resident
 * for good: nothing looked at it again.
 *
 * The scenario, LEAN with a budget of 10 MiB: allocate 64 MiB of 1 KiB
 * blocks, free all of them but one per superslab (2 MiB), so that no
 * superslab can be released whole and every one is left with up to 30
 * unused slabs; then wait 3 s.
 *   calls  a tiny malloc/free every 100 ms during the wait (the program
 *          still calls the allocator): the delay must have been applied by
 *          the end of the wait.
 *   quiet  no call at all during the wait, then one tiny malloc/free: that
 *          first call after the delay must apply it.
 * Either way the resident size (Rss minus LazyFree) must then be within
 * the budget plus a few MiB of the start. A program that makes no call at
 * all after the burst cannot have its pending slabs given back by a purge
 * on the allocator's calls; that needs the opt-in background thread of
 * DESIGN 6, which hakmem does not have: its resident size at the end of
 * the quiet wait is reported (quiet_kib), not checked.
 */
#include "lc_common.h"

#define PG_SIZE 1024
#define PG_BYTES ((size_t)64 << 20)
#define PG_SLACK_KIB (4 * 1024)

static void tiny_call(void)
{
    void *volatile p = malloc(16);
    free(p);
}

static int pg_scenario(int calls)
{
    size_t n = PG_BYTES / PG_SIZE;
    void **v = vt_map(n * sizeof(void *));
    memset(v, 0, n * sizeof(void *));
    long base = lc_rss_kib();
    vt_report("base_kib", "%ld", base);
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(PG_SIZE);
        if (!v[i])
            vt_fail("malloc(%d) failed", PG_SIZE);
        *(volatile uint64_t *)v[i] = i;
    }
    vt_report("peak_kib", "%ld", lc_rss_kib());
    /* Keep the first block seen in each superslab (2 MiB-aligned range). */
    uintptr_t kept_ss[256];
    int nkept = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t ss = (uintptr_t)v[i] >> 21;
        int seen = 0;
        for (int k = 0; k < nkept; k++)
            if (kept_ss[k] == ss)
                seen = 1;
        if (!seen && nkept < 256) {
            kept_ss[nkept++] = ss;
            continue;
        }
        if (*(volatile uint64_t *)v[i] != i)
            vt_fail("block %zu lost its stamp", i);
        free(v[i]);
        v[i] = NULL;
    }
    vt_report("kept", "%d", nkept);
    vt_report("after_free_kib", "%ld", lc_rss_kib());
    if (calls) {
        for (int t = 0; t < 30; t++) {
            lc_sleep_ms(100);
            tiny_call();
        }
    } else {
        lc_sleep_ms(3000);
        vt_report("quiet_kib", "%ld", lc_rss_kib());
        tiny_call();
    }
    vt_report("end_kib", "%ld", lc_rss_kib());
    struct hakmem_stats st;
    vt_stats(&st);
    vt_report("bytes_committed", "%llu", (unsigned long long)st.bytes_committed);
    for (size_t i = 0; i < n; i++)
        if (v[i]) {
            if (*(volatile uint64_t *)v[i] != i)
                vt_fail("kept block %zu lost its stamp", i);
            free(v[i]);
        }
    return 0;
}

static int sc_calls(void) { return pg_scenario(1); }
static int sc_quiet(void) { return pg_scenario(0); }

static const struct vt_scenario scenarios[] = {
    {"calls", sc_calls, 0},
    {"quiet", sc_quiet, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

struct pg_case {
    struct vt_mode mode;
    const char *scenario;
};

static const struct pg_case all_cases[] = {
    {{VT_LEAN, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}}, "calls"},
    {{VT_LEAN, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}}, "quiet"},
    {{VT_LEAN, {LC_LEAN_ON, LC_BUDGET10, LC_FREE}}, "calls"},
    {{VT_DEBUG, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}}, "calls"},
};
#define NCASES (sizeof all_cases / sizeof all_cases[0])
static const struct pg_case *cases[NCASES];
static int ncases;

START_TEST(test_purge)
{
    const struct pg_case *c = cases[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(c->mode.variant, c->scenario, c->mode.env, 60, r);
    lc_assert_clean(r, c->scenario);
    long base = (long)vt_num(r, "base_kib", NULL), end = (long)vt_num(r, "end_kib", NULL);
    long budget = lc_mode_budget_mb(&c->mode) * 1024;
    int quiet;
    long q = (long)vt_num(r, "quiet_kib", &quiet);
    printf("%s resident KiB over the start: peak %lld, after the frees %lld, %s%ld, at the end %ld "
           "(%d superslabs keep one block)\n",
           r->desc, (long long)vt_num(r, "peak_kib", NULL) - base, (long long)vt_num(r, "after_free_kib", NULL) - base,
           quiet ? "after 3 quiet seconds " : "", quiet ? q - base : 0, end - base, (int)vt_num(r, "kept", NULL));
    vt_assert_r(r, end - base <= budget + PG_SLACK_KIB,
                "3 s after the frees %ld KiB are still resident over the start: more than the budget of %ld KiB "
                "(+%d): the slabs waiting to be decommitted were not given back",
                end - base, budget, PG_SLACK_KIB);
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    lc_note_missing();
    for (size_t i = 0; i < NCASES; i++)
        if (vt_have(all_cases[i].mode.variant))
            cases[ncases++] = &all_cases[i];
    if (!ncases) {
        printf("SKIP: no library with LEAN mode is built\n");
        return VT_EXIT_SKIP;
    }
    Suite *s = suite_create("lifecycle_purge");
    TCase *tc = tcase_create("purge");
    tcase_set_timeout(tc, 70);
    tcase_add_loop_test(tc, test_purge, 0, ncases);
    suite_add_tcase(s, tc);
    return lc_run_suite(s);
}
