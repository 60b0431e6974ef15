/* lc_committed: LEAN's bytes_committed gauge comes back to its baseline
 * after superslabs are unmapped beyond the cap of decommitted ones
 * (DESIGN 3: the gauges are exact).
 *
 * LEAN keeps at most 64 decommitted superslabs (header resident, range
 * kept for reuse); an empty superslab beyond that is unmapped. That path
 * took the superslab's slabs off bytes_committed but not its header slab,
 * so the gauge crept up by 64 KiB for every superslab unmapped that way,
 * round after round. LEAN's release policy decides on that gauge: the
 * creep reads as memory in use and ends up releasing memory it should
 * keep.
 *
 * The scenario (LEAN, budget 0): one warm-up round, then a baseline
 * (bytes_committed after malloc_trim), then four rounds, each allocating
 * 80 superslabs' worth of 32 KiB blocks (16 more than the cap), freeing
 * them all and calling malloc_trim(0). After each round the gauge must be
 * within 4 slabs (256 KiB) of the baseline, and so must ss_live.
 */
#include "lc_common.h"

#define CM_SIZE 32768
#define CM_SS 80
#define CM_BLOCKS (CM_SS * 62)
#define CM_ROUNDS 4
#define CM_SLACK ((long long)4 * 65536)

static void cm_round(void **v)
{
    for (int i = 0; i < CM_BLOCKS; i++) {
        v[i] = malloc(CM_SIZE);
        if (!v[i])
            vt_fail("malloc(%d) failed", CM_SIZE);
        *(volatile uint64_t *)v[i] = (uint64_t)i;
    }
    for (int i = 0; i < CM_BLOCKS; i++) {
        if (*(volatile uint64_t *)v[i] != (uint64_t)i)
            vt_fail("block %d lost its stamp", i);
        free(v[i]);
    }
    malloc_trim(0);
}

static int sc_committed(void)
{
    void **v = vt_map(CM_BLOCKS * sizeof(void *));
    struct hakmem_stats st;
    char k[32];
    cm_round(v);
    vt_stats(&st);
    vt_report("base_committed", "%llu", (unsigned long long)st.bytes_committed);
    vt_report("base_ss_live", "%llu", (unsigned long long)st.ss_live);
    for (int r = 0; r < CM_ROUNDS; r++) {
        cm_round(v);
        vt_stats(&st);
        snprintf(k, sizeof k, "r%d_committed", r);
        vt_report(k, "%llu", (unsigned long long)st.bytes_committed);
        snprintf(k, sizeof k, "r%d_ss_live", r);
        vt_report(k, "%llu", (unsigned long long)st.ss_live);
    }
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"committed", sc_committed, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

START_TEST(test_committed)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    char k[32];
    vt_spawn(m->variant, "committed", m->env, 60, r);
    lc_assert_clean(r, "alloc/free beyond the cap of decommitted superslabs");
    long long base = vt_num(r, "base_committed", NULL), live = vt_num(r, "base_ss_live", NULL);
    printf("%s bytes_committed after each round, from %lld:", r->desc, base);
    for (int i = 0; i < CM_ROUNDS; i++) {
        snprintf(k, sizeof k, "r%d_committed", i);
        printf(" %+lld", vt_num(r, k, NULL) - base);
    }
    printf("\n");
    for (int i = 0; i < CM_ROUNDS; i++) {
        snprintf(k, sizeof k, "r%d_committed", i);
        long long c = vt_num(r, k, NULL);
        vt_assert_r(r, c - base <= CM_SLACK && base - c <= CM_SLACK,
                    "after round %d and malloc_trim, bytes_committed is %lld, %+lld bytes from its baseline", i, c,
                    c - base);
        snprintf(k, sizeof k, "r%d_ss_live", i);
        vt_assert_r(r, vt_num(r, k, NULL) == live, "after round %d, ss_live is %lld, not %lld", i, (long long)vt_num(r, k, NULL),
                    live);
    }
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    return lc_main(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_committed", "committed", test_committed, 1, 70);
}
