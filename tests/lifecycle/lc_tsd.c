/* lc_tsd: malloc from the last round of thread-specific-data destructors
 * leaks no heap and no superslab per thread (CONFORMANCE G.35, C.19).
 *
 * hakmem gives a thread's heap up from a pthread key destructor of its
 * own, created before main, so it runs first in each round. A destructor
 * of the program that allocates afterwards makes a new heap, which
 * registers itself for the next round; glibc runs at most
 * PTHREAD_DESTRUCTOR_ITERATIONS rounds, and a heap made in the last one
 * was never given up: each exiting thread left a superslab behind.
 *
 * The scenario creates a key whose destructor allocates and frees a few
 * blocks and sets the key again (so it runs in every round, up to the
 * last), then runs 200 threads one after the other; each allocates a
 * little, sets the key, frees what it allocated and exits. Afterwards the
 * gauge ss_live (superslabs in use) must not have grown by more than 8
 * (it grew by one per thread), and the resident size not by more than
 * 4 MiB (the threads run one after the other: their stacks and heap
 * structs are reused).
 *
 * late: 400 threads whose FIRST allocation happens in the last round
 * (a key destructor that sets itself again until round
 * PTHREAD_DESTRUCTOR_ITERATIONS, then allocates): hakmem's own exit hook
 * is registered in that round, too late to be run. The heaps those
 * threads made must still be given back: after malloc_trim at most the
 * main thread's heap is live and ss_live is where it was; even without
 * trim, the live heaps stay within twice the live threads plus 32 (the
 * next threads' starts collect the heaps of threads that are gone).
 */
#include "lc_common.h"

#define TSD_THREADS 200

static pthread_key_t tsd_key;
static _Atomic long tsd_rounds_max;

static void tsd_destructor(void *v)
{
    uintptr_t round = (uintptr_t)v;
    void *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = malloc(32 + 48 * (size_t)i);
        if (!p[i])
            vt_fail("malloc in a key destructor failed");
        memset(p[i], (int)round, 32);
    }
    for (int i = 0; i < 4; i++)
        free(p[i]);
    long r = (long)round;
    long m = atomic_load(&tsd_rounds_max);
    while (r > m && !atomic_compare_exchange_weak(&tsd_rounds_max, &m, r))
        ;
    /* Ask for one more round: glibc stops after the last one anyway. */
    pthread_setspecific(tsd_key, (void *)(round + 1));
}

static void *tsd_thread(void *arg)
{
    (void)arg;
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = malloc(24 + 40 * (size_t)i);
        if (!p[i])
            vt_fail("malloc failed");
        memset(p[i], i, 24);
    }
    pthread_setspecific(tsd_key, (void *)1);
    for (int i = 0; i < 8; i++)
        free(p[i]);
    return NULL;
}

static int sc_tsd(void)
{
    struct hakmem_stats st0, st1;
    if (pthread_key_create(&tsd_key, tsd_destructor) != 0)
        vt_fail("pthread_key_create");
    /* One thread first, so that whatever a first thread sets up once is
     * in the baseline. */
    pthread_t t;
    if (pthread_create(&t, NULL, tsd_thread, NULL) != 0)
        vt_fail("pthread_create");
    pthread_join(t, NULL);
    vt_stats(&st0);
    long rss0 = lc_rss_kib();
    for (int i = 0; i < TSD_THREADS; i++) {
        if (pthread_create(&t, NULL, tsd_thread, NULL) != 0)
            vt_fail("pthread_create");
        pthread_join(t, NULL);
    }
    vt_stats(&st1);
    long rss1 = lc_rss_kib();
    vt_report("rounds", "%ld", (long)atomic_load(&tsd_rounds_max));
    vt_report("ss_live_before", "%llu", (unsigned long long)st0.ss_live);
    vt_report("ss_live_after", "%llu", (unsigned long long)st1.ss_live);
    vt_report("rss_growth_kib", "%ld", rss1 - rss0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* late */

#define LATE_THREADS 400
static pthread_key_t late_key;
static _Atomic long late_allocs;

static void late_destructor(void *v)
{
    uintptr_t round = (uintptr_t)v;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, (void *)(round + 1)); /* no allocation yet */
        return;
    }
    /* The last round: this thread's first allocation. */
    void *p = malloc(48);
    if (!p)
        vt_fail("malloc in the last destructor round failed");
    memset(p, 1, 48);
    free(p);
    atomic_fetch_add(&late_allocs, 1);
}

static void *late_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

static int sc_late(void)
{
    struct hakmem_stats st0, st1, st2;
    if (pthread_key_create(&late_key, late_destructor) != 0)
        vt_fail("pthread_key_create");
    malloc_trim(0);
    vt_stats(&st0);
    unsigned long long max_heaps = 0;
    for (int i = 0; i < LATE_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, late_thread, NULL) != 0)
            vt_fail("pthread_create");
        pthread_join(t, NULL);
        vt_stats(&st1);
        if (st1.heaps_live > max_heaps)
            max_heaps = st1.heaps_live;
    }
    malloc_trim(0);
    vt_stats(&st2);
    vt_report("late_allocs", "%ld", (long)atomic_load(&late_allocs));
    vt_report("heaps_before", "%llu", (unsigned long long)st0.heaps_live);
    vt_report("heaps_max", "%llu", max_heaps);
    vt_report("heaps_after", "%llu", (unsigned long long)st2.heaps_live);
    vt_report("ss_live_before", "%llu", (unsigned long long)st0.ss_live);
    vt_report("ss_live_after", "%llu", (unsigned long long)st2.ss_live);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"tsd", sc_tsd, 0},
    {"late", sc_late, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_OFF}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
    {VT_DEBUG, {LC_LEAN_OFF}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

START_TEST(test_tsd)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "tsd", m->env, 60, r);
    lc_assert_clean(r, "malloc in the last round of key destructors");
    long before = (long)vt_num(r, "ss_live_before", NULL), after = (long)vt_num(r, "ss_live_after", NULL);
    long rss = (long)vt_num(r, "rss_growth_kib", NULL);
    printf("%s %d threads: ss_live %ld -> %ld, resident +%ld KiB, destructor rounds %lld\n", r->desc, TSD_THREADS,
           before, after, rss, (long long)vt_num(r, "rounds", NULL));
    vt_assert_r(r, vt_num(r, "rounds", NULL) >= 2, "the key destructor ran in several rounds");
    vt_assert_r(r, after - before < 8, "ss_live grew from %ld to %ld over %d threads: superslabs leak per thread",
                before, after, TSD_THREADS);
    vt_assert_r(r, rss < 4 * 1024, "the resident size grew by %ld KiB over %d threads", rss, TSD_THREADS);
    free(r);
}
END_TEST

START_TEST(test_late)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "late", m->env, 60, r);
    lc_assert_clean(r, "a first malloc in the last round of key destructors");
    long h0 = (long)vt_num(r, "heaps_before", NULL), hmax = (long)vt_num(r, "heaps_max", NULL);
    long h1 = (long)vt_num(r, "heaps_after", NULL);
    long s0 = (long)vt_num(r, "ss_live_before", NULL), s1 = (long)vt_num(r, "ss_live_after", NULL);
    printf("%s %d threads: live heaps %ld -> at most %ld -> %ld after trim, ss_live %ld -> %ld\n", r->desc,
           LATE_THREADS, h0, hmax, h1, s0, s1);
    vt_assert_r(r, vt_num(r, "late_allocs", NULL) == LATE_THREADS, "the last round allocated in %lld threads",
                (long long)vt_num(r, "late_allocs", NULL));
    vt_assert_r(r, h1 <= h0, "%ld heaps live after malloc_trim (%ld before the threads): heaps of exited threads "
                "are orphaned", h1, h0);
    /* README: within twice the threads alive (main and the one starting)
     * plus 32. */
    vt_assert_r(r, hmax <= 2 * 2 + 32, "up to %ld heaps were live at once, with two live threads", hmax);
    vt_assert_r(r, s1 - s0 < 4, "ss_live grew from %ld to %ld over %d threads", s0, s1, LATE_THREADS);
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    const struct lc_case cases[] = {
        {"tsd", test_tsd, 70, 1},
        {"late", test_late, 70, 1},
    };
    return lc_main_cases(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_tsd", cases,
                         sizeof cases / sizeof cases[0]);
}
