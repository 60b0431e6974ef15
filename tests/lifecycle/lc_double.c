/* lc_double: a second free of a large block whose range has moved on is
 * named a double free and takes nothing (README, "Misuse").
 *
 * trim    A 1 MiB block is freed, malloc_trim gives its range back to
 *         the OS, the block is freed again.
 * purge   The same, the range going back by the purge delay (10 ms here)
 *         on a later allocator call.
 * evict   The same, the range evicted from the large-block cache by a
 *         later free that overflows it (a 3 MiB cache).
 *         Each: exactly one `hakmem: error: ... double free` line.
 * reuse   32 blocks of 272 KiB are freed; their ranges merge in the
 *         cache; a new thread's superslab is built there (FAST takes 2 MiB
 *         of the cache for it), and it hands out 64-byte blocks: a class
 *         whose blocks start at every page boundary, so each freed large
 *         pointer inside the superslab would be a block start. None of
 *         the blocks handed out may lie at a freed large pointer; a
 *         second free of one of those pointers is a double free; after
 *         it, the next blocks are all distinct from the live ones and
 *         every live block keeps its contents.
 * mtrim, mpurge, mreuse
 *         The same with medium blocks (100 KiB and 64 KiB: runs of pages
 *         in a medium region): the region goes back to the OS whole
 *         (malloc_trim, the purge delay), the freed starts join the ring
 *         of recently freed starts, and a second free is a double free;
 *         mreuse frees 64 blocks of 64 KiB, trims, and builds a new
 *         thread's superslab, which the OS may place in the region's old
 *         range (where it does, no small block may start at a freed
 *         medium pointer; where it does not, nothing more is asked).
 * Release libraries go on after the diagnosis; the debug library aborts
 * in the faulty free.
 */
#include "lc_common.h"

#include <stdbool.h>

#define DB_BIG ((size_t)1 << 20)

/* The block to free twice, kept where the compiler cannot see it freed. */
static void *volatile db_twice;

/* The second free of db_twice, reported after it so the parent can tell
 * an abort inside it (debug) from one after it. */
static void db_free_again(void)
{
    free(db_twice);
    vt_report("returned", "1");
}

/* After the misuse: the heap still works. */
static void db_after(void)
{
    void *v[64];
    for (int i = 0; i < 64; i++) {
        v[i] = malloc(100 + (size_t)i * 4000);
        if (!v[i])
            vt_fail("malloc after the misuse failed");
        vt_stamp(v[i], 100, (unsigned)i);
    }
    for (int i = 0; i < 64; i++) {
        if (vt_check(v[i], 100, (unsigned)i) != (size_t)-1)
            vt_fail("a block lost its contents after the misuse");
        free(v[i]);
    }
    vt_report("after", "ok");
}

/* The size scenarios use: DB_BIG, or a medium one (mtrim, mpurge). */
static size_t db_size = DB_BIG;

/* A medium block's region is back with the OS (malloc_trim: unmapped) or
 * its pages are (the purge delay: FAST unmaps it, LEAN decommits it and
 * keeps the range): else the second free would only meet a block kept
 * for reuse, and nothing was tested. */
static void db_medium_gone(bool unmapped)
{
    if (db_size == DB_BIG)
        return;
    struct hakmem_stats st;
    vt_stats(&st);
    if (st.medium_live != 0 || st.medium_cached_bytes != 0 || (unmapped && st.medium_regions != 0))
        vt_fail("the medium region was not given back (live %llu, cached %llu bytes, regions %llu)",
                (unsigned long long)st.medium_live, (unsigned long long)st.medium_cached_bytes,
                (unsigned long long)st.medium_regions);
}

static int sc_trim(void)
{
    void *p = malloc(db_size);
    if (!p)
        vt_fail("malloc failed");
    memset(p, 1, db_size);
    db_twice = p;
    free(p);
    malloc_trim(0);
    db_medium_gone(true);
    db_free_again();
    db_after();
    return 0;
}

static int sc_purge(void)
{
    void *p = malloc(db_size);
    if (!p)
        vt_fail("malloc failed");
    memset(p, 1, db_size);
    db_twice = p;
    free(p);
    lc_sleep_ms(50);
    /* Allocator calls apply the purge delay (large blocks: they keep no
     * medium region in use; a medium region is found unused by one pass
     * and given back by a later one). */
    for (int i = 0; i < 4; i++) {
        void *q = malloc(2 * DB_BIG + 4096 * (size_t)i);
        if (!q)
            vt_fail("malloc failed");
        free(q);
        lc_sleep_ms(20);
    }
    db_medium_gone(false);
    db_free_again();
    db_after();
    return 0;
}

static int sc_evict(void)
{
    void *a = malloc(2 * DB_BIG);
    void *b = malloc(DB_BIG + DB_BIG / 2);
    if (!a || !b)
        vt_fail("malloc failed");
    memset(a, 1, 2 * DB_BIG);
    memset(b, 1, DB_BIG);
    db_twice = a;
    free(a);
    free(b); /* 3.5 MiB in a 3 MiB cache: the largest range goes */
    db_free_again();
    db_after();
    return 0;
}

/* Above the medium blocks' 256 KiB: mappings of their own. */
#define RU_LARGE 32
#define RU_LSIZE ((size_t)272 << 10)
#define RU_MEDIUM 64
#define RU_MSIZE ((size_t)64 << 10)
#define RU_SMALL 64
/* 8 MiB of 64-byte blocks: more superslabs than the cache and the empty
 * ones kept can give, so those built in the freed blocks' ranges are
 * filled whole, and each freed start inside one lies in a slab serving
 * these blocks. */
#define RU_N 131072

static void **ru_small;
static void *ru_large[RU_MEDIUM];
static int ru_nlarge = RU_LARGE;
static size_t ru_lsize = RU_LSIZE;

static void *ru_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < RU_N; i++) {
        ru_small[i] = malloc(RU_SMALL);
        if (!ru_small[i])
            vt_fail("malloc(%d) failed", RU_SMALL);
        vt_stamp(ru_small[i], RU_SMALL, (unsigned)i);
    }
    return NULL;
}

static int sc_reuse(void)
{
    ru_small = vt_map(RU_N * sizeof *ru_small);
    /* Blocks of exactly ru_lsize: the debug library's blocks carry 17
     * bytes of canary and trailer (hakmem(3), Misuse). */
    const char *variant = getenv("VT_VARIANT");
    size_t lsize = ru_lsize - (variant && strcmp(variant, "debug") == 0 ? 17 : 0);
    for (int i = 0; i < ru_nlarge; i++) {
        ru_large[i] = malloc(lsize);
        if (!ru_large[i])
            vt_fail("malloc failed");
        memset(ru_large[i], 0x33, lsize);
    }
    for (int i = 0; i < ru_nlarge; i++) {
        void *volatile p = ru_large[i];
        free(p);
    }
    bool medium = ru_lsize <= ((size_t)256 << 10);
    if (medium)
        malloc_trim(0); /* the medium region goes back to the OS */
    /* A new thread: a heap of its own, which needs a superslab. */
    pthread_t t;
    if (pthread_create(&t, NULL, ru_thread, NULL) != 0)
        vt_fail("pthread_create");
    pthread_join(t, NULL);
    /* Which freed large pointers now lie inside a superslab that serves
     * these blocks, and do any of the blocks sit exactly there? */
    int inside = 0, coincide = 0;
    void *victim = NULL;
    for (int j = 0; j < ru_nlarge; j++) {
        uintptr_t l = (uintptr_t)ru_large[j];
        int in = 0;
        for (int i = 0; i < RU_N && !in; i++) {
            uintptr_t s = (uintptr_t)ru_small[i];
            if (s == l)
                coincide++;
            /* Same 64 KiB slab of the same superslab as a live block. */
            in = (s >> 16) == (l >> 16) && (l & ((2u << 20) - 1)) >= 65536;
        }
        if (in) {
            inside++;
            if (!victim)
                victim = ru_large[j];
        }
    }
    vt_report("inside", "%d", inside);
    vt_report("coincide", "%d", coincide);
    const char *cache = getenv("HAKMEM_LARGE_CACHE_MB"), *lean = getenv("HAKMEM_SS_MEM_LEAN");
    if (!victim) {
        /* FAST builds superslabs in the large-block cache's ranges; where
         * the OS maps a range again is its choice. */
        if (!medium && !(cache && strcmp(cache, "0") == 0) && !(lean && strcmp(lean, "1") == 0))
            vt_fail("no superslab was built in the freed large blocks' range: nothing was tested");
        vt_report("returned", "1");
        vt_report("after", "ok");
        return 0;
    }
    if (coincide)
        vt_fail("%d small blocks were handed out at the start of a freed large block", coincide);
    db_twice = victim;
    db_free_again();
    /* Nothing was freed: the next blocks are new ones. */
    for (int k = 0; k < 4; k++) {
        void *q = malloc(RU_SMALL);
        if (!q)
            vt_fail("malloc failed");
        for (int i = 0; i < RU_N; i++)
            if (ru_small[i] == q)
                vt_fail("malloc handed out block %d a second time after the double free", i);
    }
    for (int i = 0; i < RU_N; i++) {
        if (vt_check(ru_small[i], RU_SMALL, (unsigned)i) != (size_t)-1)
            vt_fail("block %d lost its contents", i);
        free(ru_small[i]);
    }
    vt_report("after", "ok");
    return 0;
}

#define DB_MEDIUM ((size_t)100 << 10)
static int sc_mtrim(void)
{
    db_size = DB_MEDIUM;
    return sc_trim();
}
static int sc_mpurge(void)
{
    db_size = DB_MEDIUM;
    return sc_purge();
}
static int sc_mreuse(void)
{
    ru_nlarge = RU_MEDIUM;
    ru_lsize = RU_MSIZE;
    return sc_reuse();
}

static const struct vt_scenario scenarios[] = {
    {"trim", sc_trim, 0},
    {"purge", sc_purge, 0},
    {"evict", sc_evict, 0},
    {"reuse", sc_reuse, 0},
    {"mtrim", sc_mtrim, 0},
    {"mpurge", sc_mpurge, 0},
    {"mreuse", sc_mreuse, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
    {VT_DEBUG, {LC_LEAN_OFF}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

static void db_run(int i, const char *scenario, const char *extra, const char *what)
{
    const struct vt_mode *m = modes.m[i];
    const char *env[16];
    const char *x[] = {extra, NULL};
    lc_env(m, x, env, 16);
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, scenario, env, 60, r);
    printf("%s %s", r->desc, r->err);
    lc_assert_misuse(r, m->variant, what);
    vt_assert_r(r, strstr(r->err, "double free") != NULL, "%s: not named a double free", what);
    free(r);
}

START_TEST(test_trim) { db_run(_i, "trim", NULL, "a large block freed again after malloc_trim"); }
END_TEST
START_TEST(test_purge)
{
    db_run(_i, "purge", "HAKMEM_PURGE_DELAY_MS=10", "a large block freed again after the purge delay");
}
END_TEST
START_TEST(test_evict)
{
    db_run(_i, "evict", "HAKMEM_LARGE_CACHE_MB=3", "a large block freed again after its eviction");
}
END_TEST
START_TEST(test_mtrim) { db_run(_i, "mtrim", NULL, "a medium block freed again after malloc_trim"); }
END_TEST
START_TEST(test_mpurge)
{
    db_run(_i, "mpurge", "HAKMEM_PURGE_DELAY_MS=10", "a medium block freed again after the purge delay");
}
END_TEST

static void reuse_run(int i, const char *scenario)
{
    const struct vt_mode *m = modes.m[i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, scenario, m->env, 60, r);
    printf("%s %lld freed large pointers inside a superslab, %lld at a block handed out\n%s", r->desc,
           (long long)vt_num(r, "inside", NULL), (long long)vt_num(r, "coincide", NULL), r->err);
    if (vt_num(r, "inside", NULL) > 0) {
        lc_assert_misuse(r, m->variant, "a large block freed again after a superslab was built in its range");
        vt_assert_r(r, strstr(r->err, "double free") != NULL, "not named a double free");
    } else {
        lc_assert_clean(r, "superslab reuse");
    }
    free(r);
}
START_TEST(test_reuse) { reuse_run(_i, "reuse"); }
END_TEST
START_TEST(test_mreuse) { reuse_run(_i, "mreuse"); }
END_TEST

int main(int argc, char **argv)
{
    const struct lc_case cases[] = {
        {"trim", test_trim, 70, 1},
        {"purge", test_purge, 70, 1},
        {"evict", test_evict, 70, 1},
        {"reuse", test_reuse, 70, 1},
        {"mtrim", test_mtrim, 70, 1},
        {"mpurge", test_mpurge, 70, 1},
        {"mreuse", test_mreuse, 70, 1},
    };
    return lc_main_cases(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_double", cases,
                         sizeof cases / sizeof cases[0]);
}
