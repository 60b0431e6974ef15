/* vt_lean_ab: same-binary A/B of FAST and LEAN (DESIGN 1), and CONFORMANCE
 * E.28 (RSS really drops).
 *
 * Scenario `burst`, run under each library and setting: a burst of about
 * 96 MiB of 16..1040-byte objects, every byte written, then all freed in
 * random order; Rss and LazyFree are read from /proc/self/smaps_rollup
 * (open/read, no allocator call) before, at the peak and after.
 *
 *   LEAN=1, DONTNEED     Rss comes back near the pre-burst level: within the
 *                        LEAN budget (TARGET_MB) plus 4 MiB; within 4 MiB when
 *                        TARGET_MB=0
 *   LEAN=1, FREE         the freed pages show as LazyFree (at least half of
 *                        the burst), or Rss dropped (the kernel reclaimed)
 *   LEAN=1, OFF; LEAN=0  Rss stays high (at least 3/4 of the burst kept)
 *   FAST-only library    HAKMEM_SS_MEM_LEAN=1 changes nothing
 * hakmem's own bytes_committed gauge (always kept) must say the same: it
 * rose by at least 3/4 of the burst at the peak; after the frees it is
 * within the LEAN budget plus 4 MiB of its level before the burst in the
 * LEAN FREE and DONTNEED runs, and at least 3/4 of the burst above it
 * where the memory is kept (LEAN off, OFF, FAST-only).
 * lean_mode says whether LEAN was active; stderr stays empty (the library
 * prints nothing unless asked). With the counters built in: lean_decommit
 * > 0 exactly in the LEAN FREE and DONTNEED runs; without them the program
 * ends with exit 77 after the other checks.
 */
#include "vt_common.h"

#include <check.h>

#define BURST_BYTES (96 * VT_MIB)
#define MAX_OBJS ((size_t)400000) /* about 190000 are used (mean size 528) */

static int sc_burst(void)
{
    void **objs = vt_map(MAX_OBJS * sizeof(void *));
    uint32_t *order = vt_map(MAX_OBJS * sizeof(uint32_t));
    memset(objs, 0, MAX_OBJS * sizeof(void *));
    memset(order, 0, MAX_OBJS * sizeof(uint32_t));
    uint32_t seed = 0x9e3779b9u;

    long rss0 = vt_smaps_field("Rss"), lazy0 = vt_smaps_field("LazyFree");
    struct hakmem_stats st;
    vt_stats(&st);
    vt_report("committed0", "%llu", (unsigned long long)st.bytes_committed);
    size_t total = 0, n = 0;
    while (total < BURST_BYTES && n < MAX_OBJS) {
        size_t sz = 16 + vt_xorshift(&seed) % (1040 - 16 + 1);
        unsigned char *p = malloc(sz);
        if (!p)
            vt_fail("malloc(%zu) failed after %zu bytes: %s", sz, total, strerror(errno));
        memset(p, (int)(n & 0xff), sz);
        objs[n++] = p;
        total += sz;
    }
    long rss1 = vt_smaps_field("Rss"), lazy1 = vt_smaps_field("LazyFree");
    vt_stats(&st);
    vt_report("peak_committed", "%llu", (unsigned long long)st.bytes_committed);

    /* Free in random order (Fisher-Yates over the indices). */
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = vt_xorshift(&seed) % (i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = objs[order[i]];
        if (p[0] != (unsigned char)(order[i] & 0xff))
            vt_fail("object %u lost its contents before free", order[i]);
        free(p);
    }
    long rss2 = vt_smaps_field("Rss"), lazy2 = vt_smaps_field("LazyFree");

    vt_report("objects", "%zu", n);
    vt_report("rss0_kb", "%ld", rss0);
    vt_report("rss1_kb", "%ld", rss1);
    vt_report("rss2_kb", "%ld", rss2);
    vt_report("lazy0_kb", "%ld", lazy0);
    vt_report("lazy1_kb", "%ld", lazy1);
    vt_report("lazy2_kb", "%ld", lazy2);
    vt_report_stats("");

    /* The allocator still works after the release, and re-used memory is
     * sound. */
    for (int i = 0; i < 1000; i++) {
        size_t sz = 16 + (size_t)i;
        objs[i] = malloc(sz);
        if (!objs[i])
            vt_fail("malloc after the release failed");
        vt_stamp(objs[i], sz, 3);
    }
    for (int i = 0; i < 1000; i++) {
        if (vt_check(objs[i], 16 + (size_t)i, 3) != (size_t)-1)
            vt_fail("object %d corrupted after the release", i);
        free(objs[i]);
    }
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"burst", sc_burst, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */

enum expect { KEEP, RELEASE_DONTNEED, RELEASE_FREE };

struct config {
    int variant;
    const char *env[5];
    enum expect expect;
    int lean_mode;       /* expected hakmem_stats.lean_mode */
    long bound_kb;       /* RELEASE_*: Rss after may exceed Rss before by this */
};

static const struct config all_configs[] = {
    /* The LEAN-capable library: same binary, A/B. */
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=0"}, KEEP, 0, 0},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}, KEEP, 0, 0},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}, KEEP, 0, 0},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}, RELEASE_DONTNEED, 1,
     (10 + 4) * 1024},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"},
     RELEASE_DONTNEED, 1, 4 * 1024},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}, RELEASE_FREE, 1, (10 + 4) * 1024},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"},
     RELEASE_FREE, 1, 4 * 1024},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=OFF"}, KEEP, 1, 0},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=OFF", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"}, KEEP, 1,
     0},
    /* The debug library carries the LEAN code (off unless asked). */
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}, KEEP, 0, 0},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"},
     RELEASE_DONTNEED, 1, 4 * 1024},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"},
     RELEASE_FREE, 1, 4 * 1024},
    /* The FAST-only library has no LEAN code: the setting changes nothing. */
    {VT_FAST, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"},
     KEEP, 0, 0},
};
#define NCONFIGS (sizeof all_configs / sizeof all_configs[0])

static const struct config *configs[NCONFIGS];
static int nconfigs;
static int counters; /* built in? (vt_counters_built_in, before the forks) */

START_TEST(test_burst)
{
    const struct config *c = configs[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(c->variant, "burst", c->env, 120, r);
    vt_assert_r(r, vt_exited_ok(r), "scenario failed");
    /* The library prints nothing unless asked, and the scenario writes to
     * stdout only: stderr is empty, but for the FAST library, which says
     * in one line per LEAN setting given that it has no LEAN code. */
    if (c->variant == VT_FAST) {
        int lines = 0;
        for (const char *l = r->err; *l; lines++) {
            const char *e = strchr(l, '\n');
            vt_assert_r(r, e && strncmp(l, "hakmem: warning: HAKMEM_SS_MEM_LEAN", 35) == 0 &&
                               memmem(l, (size_t)(e - l), "has no effect: this library (fast) has no LEAN code", 51),
                        "stderr should hold only the LEAN settings' 'has no effect' lines");
            l = e + 1;
        }
        vt_assert_r(r, lines >= 1, "no line says the LEAN settings have no effect");
    } else {
        vt_assert_r(r, r->err_len == 0, "stderr should be empty");
    }

    int has_smaps = vt_num(r, "rss0_kb", NULL) >= 0 && vt_num(r, "lazy0_kb", NULL) >= 0;
    long rss0 = (long)vt_num(r, "rss0_kb", NULL), rss1 = (long)vt_num(r, "rss1_kb", NULL);
    long rss2 = (long)vt_num(r, "rss2_kb", NULL);
    long lazy0 = (long)vt_num(r, "lazy0_kb", NULL), lazy2 = (long)vt_num(r, "lazy2_kb", NULL);
    long burst = rss1 - rss0;
    printf("%s rss %ld -> %ld -> %ld KiB, LazyFree %ld -> %ld KiB, lean_decommit %lld\n", r->desc, rss0, rss1,
           rss2, lazy0, lazy2, (long long)vt_num(r, "lean_decommit", NULL));

    vt_assert_r(r, vt_num(r, "lean_mode", NULL) == c->lean_mode, "lean_mode should be %d", c->lean_mode);

    /* hakmem's own view of its footprint (a gauge: always kept). */
    int64_t c0 = vt_num(r, "committed0", NULL), cpeak = vt_num(r, "peak_committed", NULL);
    int64_t c2 = vt_num(r, "bytes_committed", NULL);
    const int64_t burst_b = (int64_t)BURST_BYTES;
    printf("%s bytes_committed %lld -> %lld -> %lld\n", r->desc, (long long)c0, (long long)cpeak, (long long)c2);
    vt_assert_r(r, cpeak - c0 >= burst_b * 3 / 4, "bytes_committed rose by %lld only at the peak of a %lld-byte burst",
                (long long)(cpeak - c0), (long long)burst_b);
    if (c->expect == KEEP)
        vt_assert_r(r, c2 - c0 >= burst_b * 3 / 4,
                    "the memory is kept: bytes_committed should stay high, %lld of %lld bytes kept",
                    (long long)(c2 - c0), (long long)burst_b);
    else
        vt_assert_r(r, c2 - c0 <= (int64_t)c->bound_kb * 1024,
                    "LEAN gives back what is over its budget: bytes_committed is %lld bytes above its level "
                    "before the burst (bound %ld KiB)",
                    (long long)(c2 - c0), c->bound_kb);

    vt_assert_r(r, vt_num(r, "stats_built_in", NULL) == counters, "stats_built_in differs between runs");
    if (counters) {
        int64_t dec = vt_num(r, "lean_decommit", NULL);
        if (c->expect == KEEP)
            vt_assert_r(r, dec == 0, "no decommit expected, got %lld", (long long)dec);
        else
            vt_assert_r(r, dec > 0, "decommits expected");
    }
    if (!has_smaps) {
        printf("note: /proc/self/smaps_rollup (Rss, LazyFree) unavailable: RSS checks skipped\n");
        free(r);
        return;
    }
    /* The burst really made memory resident. */
    vt_assert_r(r, burst >= (long)(BURST_BYTES / 1024) * 3 / 4, "burst only raised Rss by %ld KiB", burst);
    switch (c->expect) {
    case KEEP:
        vt_assert_r(r, rss2 - rss0 >= burst * 3 / 4, "Rss should stay high: %ld KiB of %ld kept", rss2 - rss0,
                    burst);
        break;
    case RELEASE_DONTNEED:
        vt_assert_r(r, rss2 - rss0 <= c->bound_kb, "Rss after free is %ld KiB above the pre-burst level (bound %ld)",
                    rss2 - rss0, c->bound_kb);
        break;
    case RELEASE_FREE:
        vt_assert_r(r, lazy2 - lazy0 >= burst / 2 || rss2 - rss0 <= c->bound_kb,
                    "neither LazyFree grew (%ld KiB) nor Rss dropped (%ld KiB above)", lazy2 - lazy0, rss2 - rss0);
        break;
    }
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (vt_have(all_configs[i].variant))
            configs[nconfigs++] = &all_configs[i];
    }
    for (int v = 0; v < VT_NVARIANTS; v++)
        if (!vt_have(v))
            printf("note: the %s library is not built: its cases are skipped\n", vt_variant_names[v]);
    if (!nconfigs) {
        printf("SKIP: no library to test\n");
        return VT_EXIT_SKIP;
    }
    counters = vt_counters_built_in();
    Suite *s = suite_create("lean_ab");
    TCase *tc = tcase_create("burst");
    tcase_set_timeout(tc, 150);
    tcase_add_loop_test(tc, test_burst, 0, nconfigs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return vt_finish(failed, counters, "lean_decommit (decommits happen exactly in the LEAN FREE and DONTNEED runs)");
}
