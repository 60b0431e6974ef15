/* lc_reclaim: memory freed by other threads comes back into use, or in
 * LEAN back to the OS within the budget, without waiting for the thread
 * that owned it (CONFORMANCE G.31, G.32; DESIGN 3).
 *
 * orphan       A thread allocates 32 MiB of 256-byte blocks and exits with
 *              all of them live; main frees them all. Then main allocates
 *              the same amount again: the resident size must not grow by
 *              more than 1.3 times the first peak (the memory is reused),
 *              and after freeing that and malloc_trim(0) it must be back
 *              within a few MiB of where it started.
 * orphan_trim  The same, but malloc_trim(0) right after main freed the
 *              exited thread's blocks: back within a few MiB.
 * idle         An owner thread allocates 64 MiB of 256-byte blocks and then
 *              waits, alive and idle, on a condition variable while main
 *              frees all its blocks; malloc_trim(0) from main must bring the
 *              resident size back within a few MiB, and main allocating
 *              64 MiB again must stay within 1.3 times the first peak (glibc
 *              holds about 66 MB there).
 * In LEAN (budget 10 MiB, FREE and DONTNEED) orphan and idle also check,
 * before any malloc_trim, that within one second of the frees (no
 * allocator call in between) the resident size is back within the budget
 * plus a few MiB. Resident size is Rss minus LazyFree (smaps_rollup):
 * pages given back with MADV_FREE are the kernel's to take.
 *
 * The exited or idle owner is what defeats reuse: its superslabs, full of
 * blocks freed by another thread, were held until some heap adopted them
 * (orphan) or forever (idle); malloc_trim did not reach either.
 */
#include "lc_common.h"

#define RC_SIZE 256
#define RC_SLACK_KIB (6 * 1024) /* "within a few MiB" */

struct rc_run {
    void **v;
    size_t n;
    int idle; /* the owner waits after allocating, instead of exiting */
};

static pthread_mutex_t rc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rc_cond = PTHREAD_COND_INITIALIZER;
static int rc_allocated, rc_release;

static void rc_alloc_all(void **v, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(RC_SIZE);
        if (!v[i])
            vt_fail("malloc(%d) failed after %zu blocks", RC_SIZE, i);
        *(volatile uint64_t *)v[i] = (uint64_t)i ^ salt;
    }
}

static void rc_free_all(void **v, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++) {
        if (*(volatile uint64_t *)v[i] != ((uint64_t)i ^ salt))
            vt_fail("block %zu lost its stamp", i);
        free(v[i]);
    }
}

static void *rc_owner(void *arg)
{
    struct rc_run *run = arg;
    rc_alloc_all(run->v, run->n, 1);
    pthread_mutex_lock(&rc_lock);
    rc_allocated = 1;
    pthread_cond_broadcast(&rc_cond);
    while (run->idle && !rc_release)
        pthread_cond_wait(&rc_cond, &rc_lock); /* alive, and no allocator call */
    pthread_mutex_unlock(&rc_lock);
    return NULL;
}

/* LEAN: poll for up to a second, without calling the allocator, until the
 * resident size is within the budget (plus slack) of the start. Returns
 * the last value read. */
static long rc_settle(long base, long budget_kib)
{
    long now = lc_rss_kib();
    for (int i = 0; i < 20 && now - base > budget_kib + RC_SLACK_KIB; i++) {
        lc_sleep_ms(50);
        now = lc_rss_kib();
    }
    return now;
}

static int rc_lean(void)
{
    struct hakmem_stats st;
    vt_stats(&st);
    const char *d = getenv("HAKMEM_SS_MEM_LEAN_DECOMMIT");
    return st.lean_mode && !(d && strcmp(d, "OFF") == 0);
}

static long rc_budget_kib(void)
{
    const char *b = getenv("HAKMEM_SS_MEM_LEAN_TARGET_MB");
    return (b ? atol(b) : 10) * 1024;
}

static int rc_scenario(size_t bytes, int idle, int trim_first)
{
    size_t n = bytes / RC_SIZE;
    struct rc_run run = {vt_map(n * sizeof(void *)), n, idle};
    memset(run.v, 0, n * sizeof(void *)); /* resident before the baseline */
    long base = lc_rss_kib();
    vt_report("base_kib", "%ld", base);

    pthread_t t;
    if (pthread_create(&t, NULL, rc_owner, &run) != 0)
        vt_fail("pthread_create");
    pthread_mutex_lock(&rc_lock);
    while (!rc_allocated)
        pthread_cond_wait(&rc_cond, &rc_lock);
    pthread_mutex_unlock(&rc_lock);
    if (!idle)
        pthread_join(t, NULL); /* exited, every block live */
    long peak = lc_rss_kib();
    vt_report("peak_kib", "%ld", peak);

    rc_free_all(run.v, n, 1); /* remote frees: the owner is gone or idle */
    if (rc_lean() && !trim_first)
        vt_report("settled_kib", "%ld", rc_settle(base, rc_budget_kib()));
    if (trim_first || idle) {
        malloc_trim(0);
        vt_report("trimmed_kib", "%ld", lc_rss_kib());
    }
    if (!trim_first) {
        rc_alloc_all(run.v, n, 2);
        vt_report("again_kib", "%ld", lc_rss_kib());
        rc_free_all(run.v, n, 2);
        if (!idle) {
            malloc_trim(0);
            vt_report("trimmed_kib", "%ld", lc_rss_kib());
        }
    }
    if (idle) {
        pthread_mutex_lock(&rc_lock);
        rc_release = 1;
        pthread_cond_broadcast(&rc_cond);
        pthread_mutex_unlock(&rc_lock);
        pthread_join(t, NULL);
    }
    return 0;
}

static int sc_orphan(void) { return rc_scenario((size_t)32 << 20, 0, 0); }
static int sc_orphan_trim(void) { return rc_scenario((size_t)32 << 20, 0, 1); }
static int sc_idle(void) { return rc_scenario((size_t)64 << 20, 1, 0); }

static const struct vt_scenario scenarios[] = {
    {"orphan", sc_orphan, 0},
    {"orphan_trim", sc_orphan_trim, 0},
    {"idle", sc_idle, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET10, LC_FREE}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}},
    {VT_DEBUG, {LC_LEAN_OFF}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

static const char *const rc_scenarios[] = {"orphan", "orphan_trim", "idle"};
#define NSC (sizeof rc_scenarios / sizeof rc_scenarios[0])

/* _i = mode * NSC + scenario */
START_TEST(test_reclaim)
{
    const struct vt_mode *m = modes.m[_i / (int)NSC];
    const char *sc = rc_scenarios[_i % (int)NSC];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, sc, m->env, 60, r);
    lc_assert_clean(r, sc);
    long base = (long)vt_num(r, "base_kib", NULL), peak = (long)vt_num(r, "peak_kib", NULL);
    int has_again, has_settled;
    long again = (long)vt_num(r, "again_kib", &has_again), trimmed = (long)vt_num(r, "trimmed_kib", NULL);
    long settled = (long)vt_num(r, "settled_kib", &has_settled);
    printf("%s resident KiB: start %ld, peak %ld, settled %s%ld, again %s%ld, trimmed %ld\n", r->desc, base, peak,
           has_settled ? "" : "-", has_settled ? settled - base : 0, has_again ? "" : "-",
           has_again ? again - base : 0, trimmed - base);
    vt_assert_r(r, peak - base > 16 * 1024, "the owner's blocks are resident (peak %ld KiB over the start)",
                peak - base);
    if (has_settled && lc_mode_releases(m))
        vt_assert_r(r, settled - base <= lc_mode_budget_mb(m) * 1024 + RC_SLACK_KIB,
                    "within 1 s of the frees, without malloc_trim, %ld KiB are still resident over the start: "
                    "more than the LEAN budget of %ld MiB (+%d KiB)",
                    settled - base, lc_mode_budget_mb(m), RC_SLACK_KIB);
    if (has_again)
        vt_assert_r(r, again - base <= (peak - base) * 13 / 10 + 1024,
                    "allocating the same amount again made %ld KiB resident over the start, more than 1.3 x "
                    "the first peak (%ld KiB): the freed memory was not reused",
                    again - base, peak - base);
    vt_assert_r(r, trimmed - base <= RC_SLACK_KIB,
                "after malloc_trim(0) %ld KiB are still resident over the start (at most %d expected)",
                trimmed - base, RC_SLACK_KIB);
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    return lc_main(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_reclaim", "reclaim", test_reclaim, (int)NSC, 70);
}
