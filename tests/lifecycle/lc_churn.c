/* lc_churn: memory a busy program stopped using goes back while it stays
 * busy (README, "Threads that come and go" and the purge delay).
 *
 * slab_purge  Four slabs of 176-byte blocks are filled and freed; then the
 *             same thread keeps allocating and freeing two slabs' worth of
 *             1000-byte blocks every 20 ms for 1.5 s (a slab of its
 *             superslab becomes unused at every round). With a purge delay
 *             of 200 ms the pages of the slabs unused since the start must
 *             go back meanwhile: the committed gauge falls by at least
 *             three slabs (192 KiB). (It used to be one age per superslab,
 *             renewed by every slab that became unused, so a superslab in
 *             steady use never gave back any of its unused slabs.)
 * producer    A producer thread fills 40 slabs of 176-byte blocks, frees one
 *             block of each itself (the slabs are back on its class list)
 *             and hands the rest to a consumer, which frees them (remote
 *             frees); then it goes on handing out ten blocks every 5 ms: it
 *             stays busy, and every block it hands out comes back from the
 *             consumer. Its slabs
 *             that every block came back to must go back without
 *             malloc_trim, within 3 s, by the sweep of other threads' calls
 *             (its class keeps at most its head and one more).
 * Modes: FAST (purge delay 200 ms), LEAN off and on, debug.
 */
#include "lc_common.h"

#define CH_SIZE 176
#define CH_PER_SLAB (65536 / CH_SIZE + 1)

/* ------------------------------------------------------------------------ */
/* slab_purge */

static void ch_round(void)
{
    void *v[130];
    for (int i = 0; i < 130; i++) {
        v[i] = malloc(1000);
        if (!v[i])
            vt_fail("malloc failed");
        *(volatile char *)v[i] = 1;
    }
    for (int i = 0; i < 130; i++)
        free(v[i]);
    /* A large block's free applies the purge delay, as any call does. */
    void *volatile big = malloc(4 << 20);
    free(big);
}

static int sc_slab_purge(void)
{
    size_t n = 4 * CH_PER_SLAB;
    void **v = vt_map(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(CH_SIZE);
        if (!v[i])
            vt_fail("malloc failed");
        memset(v[i], 7, CH_SIZE);
    }
    ch_round(); /* the other class's slabs exist before the baseline */
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    struct hakmem_stats st0, st1;
    vt_stats(&st0);
    double end = vt_now() + 1.5;
    while (vt_now() < end) {
        ch_round();
        lc_sleep_ms(20);
    }
    vt_stats(&st1);
    vt_report("committed_drop_kib", "%lld",
              ((long long)st0.bytes_committed - (long long)st1.bytes_committed) / 1024);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* producer */

#define PR_BURST (40 * CH_PER_SLAB)

static void *_Atomic pr_box[PR_BURST];
static _Atomic int pr_stop;
static _Atomic long pr_handed;

static _Atomic int pr_burst_done;

static void *pr_consumer(void *arg)
{
    (void)arg;
    long freed = 0;
    while (!atomic_load(&pr_burst_done)) /* the producer fills its 40 slabs first */
        lc_sleep_ms(1);
    while (!atomic_load(&pr_stop) || freed < atomic_load(&pr_handed)) {
        int any = 0;
        for (int i = 0; i < PR_BURST; i++) {
            void *p = atomic_exchange(&pr_box[i], NULL);
            if (p) {
                free(p);
                freed++;
                any = 1;
            }
        }
        if (!any)
            lc_sleep_ms(1);
    }
    return NULL;
}

static void pr_hand(int i)
{
    void *p = malloc(CH_SIZE);
    if (!p)
        vt_fail("malloc failed");
    memset(p, 3, CH_SIZE);
    while (atomic_load(&pr_box[i]))
        sched_yield();
    atomic_store(&pr_box[i], p);
    atomic_fetch_add(&pr_handed, 1);
}

static void *pr_producer(void *arg)
{
    (void)arg;
    /* The burst: 40 slabs filled, one block of each freed here (so they
     * are back on the class list, not parked), the rest handed over. */
    void **mine = vt_map(PR_BURST * sizeof *mine);
    for (int i = 0; i < PR_BURST; i++) {
        mine[i] = malloc(CH_SIZE);
        if (!mine[i])
            vt_fail("malloc failed");
        memset(mine[i], 3, CH_SIZE);
    }
    uintptr_t last = 0;
    for (int i = 0; i < PR_BURST; i++) {
        if ((uintptr_t)mine[i] >> 16 != last) {
            last = (uintptr_t)mine[i] >> 16;
            free(mine[i]);
            continue;
        }
        atomic_store(&pr_box[i], mine[i]);
        atomic_fetch_add(&pr_handed, 1);
    }
    atomic_store(&pr_burst_done, 1);
    for (int k = 0; !atomic_load(&pr_stop); k++) {
        for (int j = 0; j < 10; j++)
            pr_hand((k * 10 + j) % PR_BURST);
        lc_sleep_ms(5);
    }
    return NULL;
}

/* Slabs of the class that serves CH_SIZE (hakmem_stats_classes: the class
 * whose count grows by one for one more block). */
typedef int (*ch_classes_fn)(struct hakmem_class_stats *, size_t);
static long ch_class_slabs(int *cls)
{
    static ch_classes_fn f;
    struct hakmem_class_stats a[128], b[128];
    if (!f)
        f = (ch_classes_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_stats_classes");
    if (!f || f(a, 128) <= 0)
        vt_fail("hakmem_stats_classes unavailable");
    if (*cls < 0) {
        static void *volatile probe;
        probe = malloc(CH_SIZE);
        int n = f(b, 128);
        for (int i = 0; i < n && *cls < 0; i++)
            if (b[i].blocks_in_use == a[i].blocks_in_use + 1)
                *cls = i;
        free(probe);
        if (*cls < 0)
            vt_fail("cannot tell the class of %d bytes", CH_SIZE);
    }
    return (long)a[*cls].slabs;
}

static int sc_producer(void)
{
    int cls = -1;
    ch_class_slabs(&cls);
    pthread_t p, c;
    if (pthread_create(&c, NULL, pr_consumer, NULL) != 0 || pthread_create(&p, NULL, pr_producer, NULL) != 0)
        vt_fail("pthread_create");
    /* The burst handed out: its 40 slabs are full. */
    while (!atomic_load(&pr_burst_done))
        lc_sleep_ms(1);
    long peak = ch_class_slabs(&cls);
    /* This thread's calls run the sweep (other sizes). */
    double end = vt_now() + 3;
    long now_slabs;
    uint32_t seed = 11;
    do {
        void *v[256];
        for (int i = 0; i < 256; i++) {
            v[i] = malloc(256 + vt_xorshift(&seed) % 2000);
            if (!v[i])
                vt_fail("malloc failed");
        }
        for (int i = 0; i < 256; i++)
            free(v[i]);
        now_slabs = ch_class_slabs(&cls);
    } while (now_slabs > 3 && vt_now() < end);
    atomic_store(&pr_stop, 1);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    vt_report("peak_slabs", "%ld", peak);
    vt_report("slabs", "%ld", now_slabs);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"slab_purge", sc_slab_purge, 0},
    {"producer", sc_producer, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

#define CH_DELAY "HAKMEM_PURGE_DELAY_MS=200"
static const struct vt_mode all_modes[] = {
    {VT_FAST, {CH_DELAY}},
    {VT_LEAN, {LC_LEAN_OFF, CH_DELAY}},
    {VT_LEAN, {LC_LEAN_ON, LC_OFF, CH_DELAY}},
    {VT_DEBUG, {LC_LEAN_OFF, CH_DELAY}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

START_TEST(test_slab_purge)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "slab_purge", m->env, 60, r);
    lc_assert_clean(r, "unused slabs of a busy superslab");
    long drop = (long)vt_num(r, "committed_drop_kib", NULL);
    printf("%s committed fell by %ld KiB\n", r->desc, drop);
    vt_assert_r(r, drop >= 192,
                "the pages of slabs unused for 1.5 s (purge delay 200 ms) stayed: committed fell by %ld KiB", drop);
    free(r);
}
END_TEST

START_TEST(test_producer)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "producer", m->env, 60, r);
    lc_assert_clean(r, "a producer whose blocks are all freed by another thread");
    long peak = (long)vt_num(r, "peak_slabs", NULL), now = (long)vt_num(r, "slabs", NULL);
    printf("%s producer's slabs %ld -> %ld\n", r->desc, peak, now);
    vt_assert_r(r, peak >= 40 && now <= 3,
                "a busy producer's slabs emptied by its consumer stayed: %ld of %ld after 3 s", now, peak);
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    const struct lc_case cases[] = {
        {"slab_purge", test_slab_purge, 70, 1},
        {"producer", test_producer, 70, 1},
    };
    return lc_main_cases(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_churn", cases,
                         sizeof cases / sizeof cases[0]);
}
