/* lc_adopt: a new heap adopts an abandoned superslab whose last block was
 * freed before the adoption, in LEAN with the cap of decommitted superslabs
 * reached (CONFORMANCE G.34).
 *
 * Adoption takes each slab of the superslab over; a slab with no live
 * block is released at once. Releasing the last one empties the
 * superslab, which goes to superslab_free(): in LEAN with budget 0 it is
 * decommitted, and with the cap of decommitted superslabs already kept
 * (64 of them) it is unmapped. The adoption loop then read the superslab's
 * header again: a crash (SIGSEGV) in the adopting thread.
 *
 * The scenario:
 *  1. thread T1 allocates 100 small blocks and waits (alive, so its
 *     superslab is not abandoned yet);
 *  2. main fills and frees 80 superslabs' worth of 32 KiB blocks, so that
 *     LEAN keeps as many decommitted superslabs as it may (the gauge
 *     ss_decommitted is reported);
 *  3. T1 exits with its blocks live: its superslab is abandoned;
 *  4. main frees all of T1's blocks (remote frees: nothing is adopted);
 *  5. thread T2 allocates: its first refill adopts T1's superslab.
 * Expected: no crash, every block stamped and intact, nothing on stderr.
 * Runs in LEAN (FREE and DONTNEED, budget 0) and, as a check of the same
 * path without releases, in FAST.
 */
#include "lc_common.h"

#define AD_T1_BLOCKS 100
#define AD_T1_SIZE 256
/* 32 KiB: the largest small class, 62 blocks per superslab, one touched
 * page per block: 80 superslabs cost 5000 mallocs. */
#define AD_FILL_SIZE 32768
#define AD_FILL_SS 80
#define AD_FILL_BLOCKS (AD_FILL_SS * 62)

static void *t1_blocks[AD_T1_BLOCKS];
static pthread_mutex_t ad_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ad_cond = PTHREAD_COND_INITIALIZER;
static int ad_t1_ready, ad_t1_go;

static void *t1_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < AD_T1_BLOCKS; i++) {
        t1_blocks[i] = malloc(AD_T1_SIZE);
        if (!t1_blocks[i])
            vt_fail("T1: malloc failed");
        vt_stamp(t1_blocks[i], AD_T1_SIZE, (unsigned)i);
    }
    pthread_mutex_lock(&ad_lock);
    ad_t1_ready = 1;
    pthread_cond_broadcast(&ad_cond);
    while (!ad_t1_go)
        pthread_cond_wait(&ad_cond, &ad_lock);
    pthread_mutex_unlock(&ad_lock);
    return NULL; /* exits with every block live */
}

static void *t2_main(void *arg)
{
    (void)arg;
    enum { N = 2000 };
    void **v = vt_map(N * sizeof(void *));
    for (int i = 0; i < N; i++) {
        size_t sz = 16 + (size_t)(i * 37) % 1009;
        v[i] = malloc(sz);
        if (!v[i])
            vt_fail("T2: malloc(%zu) failed", sz);
        vt_stamp(v[i], 16, (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        if (vt_check(v[i], 16, (unsigned)i) != (size_t)-1)
            vt_fail("T2: block %d lost its stamp", i);
        free(v[i]);
    }
    munmap(v, N * sizeof(void *));
    vt_report("t2", "ok");
    return NULL;
}

static int sc_adopt(void)
{
    pthread_t t1, t2;
    if (pthread_create(&t1, NULL, t1_main, NULL) != 0)
        vt_fail("pthread_create");
    pthread_mutex_lock(&ad_lock);
    while (!ad_t1_ready)
        pthread_cond_wait(&ad_cond, &ad_lock);
    pthread_mutex_unlock(&ad_lock);

    void **fill = vt_map(AD_FILL_BLOCKS * sizeof(void *));
    for (int i = 0; i < AD_FILL_BLOCKS; i++) {
        fill[i] = malloc(AD_FILL_SIZE);
        if (!fill[i])
            vt_fail("fill: malloc failed");
        *(volatile uint64_t *)fill[i] = (uint64_t)i;
    }
    for (int i = 0; i < AD_FILL_BLOCKS; i++) {
        if (*(volatile uint64_t *)fill[i] != (uint64_t)i)
            vt_fail("fill: block %d lost its stamp", i);
        free(fill[i]);
    }
    munmap(fill, AD_FILL_BLOCKS * sizeof(void *));
    struct hakmem_stats st;
    vt_stats(&st);
    vt_report("ss_decommitted", "%llu", (unsigned long long)st.ss_decommitted);

    pthread_mutex_lock(&ad_lock);
    ad_t1_go = 1;
    pthread_cond_broadcast(&ad_cond);
    pthread_mutex_unlock(&ad_lock);
    pthread_join(t1, NULL);

    for (int i = 0; i < AD_T1_BLOCKS; i++) {
        if (vt_check(t1_blocks[i], AD_T1_SIZE, (unsigned)i) != (size_t)-1)
            vt_fail("T1's block %d lost its stamp", i);
        free(t1_blocks[i]);
    }
    vt_report("freed", "ok");

    if (pthread_create(&t2, NULL, t2_main, NULL) != 0)
        vt_fail("pthread_create");
    pthread_join(t2, NULL);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"adopt", sc_adopt, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

START_TEST(test_adopt)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "adopt", m->env, 60, r);
    printf("%s ss_decommitted after the fill: %s\n", r->desc,
           vt_str(r, "ss_decommitted") ? vt_str(r, "ss_decommitted") : "?");
    lc_assert_clean(r, "adopting a superslab emptied by remote frees");
    vt_assert_r(r, vt_str(r, "t2") != NULL, "the adopting thread ran to its end");
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    return lc_main(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_adopt", "adopt", test_adopt, 1, 70);
}
