/* lc_misuse: misuse that must never corrupt the heap (CONFORMANCE H.37,
 * H.38), in every variant and LEAN mode.
 *
 * carved      free() of a block that was carved but never handed out: in
 *             a fresh thread (so the slab is fresh and carved in address
 *             order) a = malloc(16), b = malloc(16); b + (b - a) is the
 *             next carved block, on the free list but never returned.
 *             free() of it was accepted silently and put the block on the
 *             free list a second time: two later mallocs returned it.
 * recarved    a real double free after the block's superslab was released
 *             and carved again: in a fresh thread, 200 blocks of 64 bytes
 *             are freed (LEAN, budget 0: the superslab is decommitted; with
 *             DONTNEED its pages read back as zero), one malloc(64) takes
 *             the range back and carves its first page again, then one of
 *             the old blocks is freed a second time. With its free tag
 *             wiped by the decommit it passed for a live block.
 * realloc     realloc() of a freed small block: p = malloc(40); free(p);
 *             realloc(p, 48) returned p (in place: the freed block handed
 *             back, still on the free list); realloc(p, 2000) copied from
 *             the free block and freed it again.
 * Expected everywhere: exactly one `hakmem: error: ...` line; the debug
 * library aborts after it; the others ignore the free (realloc returns
 * NULL) and go on, and a batch of later allocations of the same class are
 * distinct, stamped, and keep their stamps.
 */
#include "lc_common.h"

/* The misuse is deliberate: called through volatile pointers so that the
 * compiler neither warns about it nor optimises it away. */
static void (*volatile bad_free)(void *) = free;
static void *(*volatile bad_realloc)(void *, size_t) = realloc;

/* A batch of `n` blocks of `size` plus the `keep` blocks still live: all
 * distinct, each keeps its own stamp. */
static void batch_distinct(size_t size, void *const *keep, int nkeep, const char *what)
{
    enum { N = 128 };
    void *v[N + 8];
    int n = 0;
    for (int i = 0; i < nkeep && i < 8; i++)
        v[n++] = keep[i];
    for (int i = 0; i < N; i++) {
        void *p = malloc(size);
        if (!p)
            vt_fail("%s: malloc(%zu) failed after the misuse", what, size);
        vt_stamp(p, size, (unsigned)i);
        v[n++] = p;
    }
    int d = lc_find_duplicate(v, n);
    if (d >= 0)
        vt_fail("%s: malloc(%zu) handed out %p twice after the misuse", what, size, v[d]);
    for (int i = nkeep; i < n; i++)
        if (vt_check(v[i], size, (unsigned)(i - nkeep)) != (size_t)-1)
            vt_fail("%s: block %p lost its stamp: it overlaps another", what, v[i]);
    for (int i = nkeep; i < n; i++)
        free(v[i]);
}

static void run_in_thread(void *(*fn)(void *))
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0)
        vt_fail("pthread_create");
    pthread_join(t, NULL);
}

static void *carved_thread(void *arg)
{
    (void)arg;
    char *a = malloc(16), *b = malloc(16);
    if (!a || !b)
        vt_fail("malloc(16) failed");
    if (b <= a || b - a > 64)
        vt_fail("a fresh thread's first two malloc(16) are %p and %p: not carved in address order", (void *)a,
                (void *)b);
    char *never = b + (b - a); /* carved with a and b, never handed out */
    vt_report("stride", "%td", b - a);
    bad_free(never);
    vt_report("returned", "1");
    void *keep[2] = {a, b};
    batch_distinct(16, keep, 2, "carved");
    free(a);
    free(b);
    vt_report("after", "ok");
    return NULL;
}

static int sc_carved(void)
{
    run_in_thread(carved_thread);
    return 0;
}

static void *recarved_thread(void *arg)
{
    (void)arg;
    enum { N = 200 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = malloc(64);
        if (!v[i])
            vt_fail("malloc(64) failed");
        vt_stamp(v[i], 64, (unsigned)i);
    }
    for (int i = 0; i < N; i++)
        free(v[i]);
    void *q = malloc(64);
    if (!q)
        vt_fail("malloc(64) failed");
    /* Whether the freed range came back (it does when the release policy
     * reuses the superslab it just released; the test still applies when
     * it does not: v[5] is then just a stale pointer). */
    vt_report("reused", "%d", ((uintptr_t)q >> 21) == ((uintptr_t)v[0] >> 21));
    bad_free(v[5]);
    vt_report("returned", "1");
    batch_distinct(64, &q, 1, "recarved");
    free(q);
    vt_report("after", "ok");
    return NULL;
}

static int sc_recarved(void)
{
    run_in_thread(recarved_thread);
    return 0;
}

static void realloc_freed(size_t to)
{
    void *p = malloc(40);
    if (!p)
        vt_fail("malloc(40) failed");
    vt_stamp(p, 40, 1);
    uintptr_t was = (uintptr_t)p;
    bad_free(p);
    void *q = bad_realloc(p, to);
    vt_report("returned", "1");
    vt_report("q_null", "%d", q == NULL);
    if (q)
        vt_fail("realloc of a freed block returned %p (the freed block was %#lx), not NULL", q,
                (unsigned long)was);
    batch_distinct(40, NULL, 0, "realloc");
    vt_report("after", "ok");
}

static int sc_realloc_same(void)
{
    realloc_freed(48);
    return 0;
}

static int sc_realloc_grow(void)
{
    realloc_freed(2000);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"carved", sc_carved, 0},
    {"recarved", sc_recarved, 0},
    {"realloc_same", sc_realloc_same, 0},
    {"realloc_grow", sc_realloc_grow, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_OFF}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_OFF}},
    {VT_DEBUG, {LC_LEAN_OFF}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

static const char *const misuse_scenarios[] = {"carved", "recarved", "realloc_same", "realloc_grow"};
#define NMISUSE (sizeof misuse_scenarios / sizeof misuse_scenarios[0])

/* _i = mode * NMISUSE + scenario */
START_TEST(test_misuse)
{
    const struct vt_mode *m = modes.m[_i / (int)NMISUSE];
    const char *sc = misuse_scenarios[_i % (int)NMISUSE];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, sc, m->env, 60, r);
    lc_assert_misuse(r, m->variant, sc);
    if (strcmp(sc, "recarved") == 0 && lc_mode_releases(m) &&
        vt_num(r, "reused", NULL) != 1)
        printf("%s note: the released superslab was not reused: the double free met no re-carved block\n",
               r->desc);
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    return lc_main(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_misuse", "misuse", test_misuse, (int)NMISUSE, 60);
}
